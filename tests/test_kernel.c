/*
 * test_kernel.c — custom kernels: the Qwen3-Next gated delta-rule step as a
 * CPU kernel against a pure-op reference; the seed case (that kernel,
 * gather_qmm over routed experts and attention over a growing KV cache)
 * compiled shapeless with one trace for >= 20 shapes; fixed output shapes
 * (counted fallbacks, strict error naming the kernel); CSE; errors; CUDA
 * source generation and NVRTC compile to PTX.
 */
#include "test_internal.h"

#include "kernel/gated_delta.h"

/* ---- reference: the five equations of qwen3next.md §3.7 with core ops */
static void gd_reference(am_array q, am_array k, am_array v, am_array g,
                         am_array beta, am_array state, am_array *y,
                         am_array *s_out) {
  int64_t T = am_array_dim(q, 1), Hk = am_array_dim(q, 2),
          Hv = am_array_dim(v, 2);
  am_array S = state, ys[64];
  for (int64_t t = 0; t < T; t++) {
    /* [B,Hk,Dk] -> [B,Hv,1,Dk] (GQA: value head h reads key head h/rep) */
    am_array kt = am_slice_axis(k, 1, t, t + 1, 1);
    am_array qt = am_slice_axis(q, 1, t, t + 1, 1);
    kt = am_repeat(am_squeeze(kt, (int[]){1}, 1), Hv / Hk, 1);
    qt = am_repeat(am_squeeze(qt, (int[]){1}, 1), Hv / Hk, 1);
    kt = am_expand_dims(kt, (int[]){2}, 1);
    qt = am_expand_dims(qt, (int[]){2}, 1);
    am_array vt = am_squeeze(am_slice_axis(v, 1, t, t + 1, 1), (int[]){1}, 1);
    am_array gt = am_squeeze(am_slice_axis(g, 1, t, t + 1, 1), (int[]){1}, 1);
    am_array bt =
        am_squeeze(am_slice_axis(beta, 1, t, t + 1, 1), (int[]){1}, 1);
    S = am_mul(S, am_expand_dims(gt, (int[]){2, 3}, 2));       /* decay */
    am_array m = am_sum(am_mul(S, kt), (int[]){-1}, 1, false); /* S k   */
    am_array d = am_mul(am_sub(vt, m), am_expand_dims(bt, (int[]){2}, 1));
    S = am_add(S, am_mul(kt, am_expand_dims(d, (int[]){3}, 1))); /* rank-1 */
    ys[t] = am_sum(am_mul(S, qt), (int[]){-1}, 1, false);        /* S q   */
  }
  *y = am_stack(ys, (int)T, 1);
  *s_out = S;
}

typedef struct {
  int64_t B, T, Hk, Hv, Dk, Dv;
} gd_dims;

static void gd_inputs(t_rng *r, gd_dims d, am_array *in) {
  int64_t qs[] = {d.B, d.T, d.Hk, d.Dk}, vs[] = {d.B, d.T, d.Hv, d.Dv},
          gs[] = {d.B, d.T, d.Hv}, ss[] = {d.B, d.Hv, d.Dv, d.Dk};
  in[0] = am_mul(t_rand(r, qs, 4, AM_F32, -1, 1), am_float(0.3));
  in[1] = am_l2_normalize(t_rand(r, qs, 4, AM_F32, -1, 1), -1, 1e-6f);
  in[2] = t_rand(r, vs, 4, AM_F32, -1, 1);
  in[3] = t_rand(r, gs, 3, AM_F32, 0.5, 1);
  in[4] = t_rand(r, gs, 3, AM_F32, 0, 1);
  in[5] = t_rand(r, ss, 4, AM_F32, -1, 1);
}

/* max |a - b| <= tol * (1 + max |b|) */
static bool close_to(am_array a, am_array b, double tol) {
  int64_t n = am_array_size(b);
  if (am_array_size(a) != n || am_array_ndim(a) != am_array_ndim(b))
    return false;
  for (int i = 0; i < am_array_ndim(a); i++)
    if (am_array_dim(a, i) != am_array_dim(b, i)) return false;
  double *x = malloc((size_t)(n ? n : 1) * sizeof *x),
         *y = malloc((size_t)(n ? n : 1) * sizeof *y);
  bool ok = !am_array_read(a, AM_F64, x, n) && !am_array_read(b, AM_F64, y, n);
  double mx = 0, err = 0;
  for (int64_t i = 0; ok && i < n; i++) {
    mx = fmax(mx, fabs(y[i]));
    err = fmax(err, fabs(x[i] - y[i]));
    if (isnan(x[i]) != isnan(y[i])) ok = false;
  }
  free(x);
  free(y);
  return ok && err <= tol * (1 + mx);
}

static void test_gated_delta(void) {
  am_kernel kern = gd_kernel_new(true);
  CHECK(kern != NULL, "kernel: %s", am_last_error());
  gd_dims cases[] = {{1, 1, 2, 4, 32, 8},  {2, 3, 2, 4, 32, 16},
                     {1, 5, 1, 3, 8, 5},   {2, 2, 4, 4, 64, 4},
                     {1, 7, 2, 2, 128, 8}, {3, 1, 1, 2, 4, 3}};
  t_rng r = {42};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    am_scope_push();
    am_array in[6], out[2], ry, rs;
    gd_inputs(&r, cases[c], in);
    CHECK(am_kernel_apply(kern, in, 6, NULL, out) == AM_OK, "apply: %s",
          am_last_error());
    gd_reference(in[0], in[1], in[2], in[3], in[4], in[5], &ry, &rs);
    CHECK(close_to(out[0], ry, 1e-5), "case %zu: y differs", c);
    CHECK(close_to(out[1], rs, 1e-5), "case %zu: state differs", c);
    am_scope_pop();
  }
  /* Non-contiguous inputs are made row-contiguous before the kernel. */
  am_scope_push();
  am_array in[6], out[2], ry, rs;
  gd_inputs(&r, (gd_dims){2, 3, 2, 4, 32, 8}, in);
  /* k as a swapaxes view of [B,Hk,T,Dk]; state of [B,Hv,Dk,Dv]. */
  in[1] =
      am_swapaxes(t_rand(&r, (int64_t[]){2, 2, 3, 32}, 4, AM_F32, -1, 1), 1, 2);
  in[5] =
      am_swapaxes(t_rand(&r, (int64_t[]){2, 4, 32, 8}, 4, AM_F32, -1, 1), 2, 3);
  CHECK(am_eval(&in[5], 1) == AM_OK && !am_arr_is_contiguous(in[5]),
        "state view is strided");
  CHECK(am_kernel_apply(kern, in, 6, NULL, out) == AM_OK, "%s",
        am_last_error());
  gd_reference(in[0], in[1], in[2], in[3], in[4], in[5], &ry, &rs);
  CHECK(close_to(out[0], ry, 1e-5) && close_to(out[1], rs, 1e-5),
        "strided inputs");
  am_scope_pop();
  am_kernel_free(kern);
}

/* ---- the seed case: one decode/prefill step, compiled shapeless ---- */

enum { D = 64, E = 8, K = 3, N = 32, H = 4, HKV = 2, DA = 16 };

typedef struct {
  am_kernel kern; /* with or without shape callback */
  bool fixed;     /* apply with fixed output shapes */
  am_array wr, wq, sc, bi;
} seed_ctx;

/* in: q k v g beta state (GDN), x [B,T,D], qa [B,H,T,DA], kc, vc
 * [B,HKV,L,DA]; out: y, new state, MoE out [B,T,N], attention out. */
static am_status seed_step(void *vctx, const am_array *in, int n_in,
                           am_array *out, int n_out) {
  seed_ctx *c = vctx;
  am_kernel_args a = {0}, *ap = NULL;
  if (c->fixed) { /* MLX's model: sizes read at trace time */
    a.n_fixed = 2;
    a.out[0] = (am_kernel_meta){.dtype = AM_F32, .ndim = 4};
    a.out[1] = (am_kernel_meta){.dtype = AM_F32, .ndim = 4};
    memcpy(a.out[0].shape, am_array_shape(in[2]), 4 * sizeof(int64_t));
    memcpy(a.out[1].shape, am_array_shape(in[5]), 4 * sizeof(int64_t));
    ap = &a;
  }
  am_status s = am_kernel_apply(c->kern, in, 6, ap, out);
  if (s) return s;
  /* MoE: top-K experts by router logit, gather_qmm, weighted sum. */
  am_array x = in[6];
  am_array logits = am_matmul(x, c->wr); /* [B,T,E] */
  am_array inds = am_slice_axis(am_argsort(logits, -1), -1, -K, AM_END, 1);
  am_array sc = am_take_along_axis(am_softmax(logits, -1), inds, -1);
  am_array xe = am_expand_dims(x, (int[]){-2, -3}, 2); /* [B,T,1,1,D] */
  am_array ye = am_gather_qmm(xe, c->wq, c->sc, c->bi, NULL, inds, true, 32, 4,
                              AM_QUANT_AFFINE, false); /* [B,T,K,1,N] */
  ye = am_squeeze(ye, (int[]){-2}, 1);
  out[2] = am_sum(am_mul(ye, am_expand_dims(sc, (int[]){-1}, 1)), (int[]){-2},
                  1, false);
  out[3] = am_sdpa(in[7], in[8], in[9], 0.25f, NULL, true, NULL);
  return AM_OK;
}

static void seed_ctx_init(seed_ctx *c, t_rng *r, bool fixed) {
  c->kern = gd_kernel_new(!fixed);
  c->fixed = fixed;
  am_scope_push(); /* temporaries; the weights are kept */
  c->wr = am_keep(t_rand(r, (int64_t[]){D, E}, 2, AM_F32, -1, 1));
  am_array w = t_rand(r, (int64_t[]){E, N, D}, 3, AM_F32, -1, 1), q[3];
  CHECK(am_quantize(w, 32, 4, AM_QUANT_AFFINE, NULL, q) == AM_OK, "%s",
        am_last_error());
  c->wq = am_keep(q[0]);
  c->sc = am_keep(q[1]);
  c->bi = am_keep(q[2]);
  am_scope_pop();
}

static void seed_ctx_free(seed_ctx *c) {
  am_kernel_free(c->kern);
  am_array_free(c->wr);
  am_array_free(c->wq);
  am_array_free(c->sc);
  am_array_free(c->bi);
}

static void seed_inputs(t_rng *r, int64_t B, int64_t T, int64_t L,
                        am_array *in) {
  gd_inputs(r, (gd_dims){B, T, 2, 4, 16, 8}, in);
  in[6] = t_rand(r, (int64_t[]){B, T, D}, 3, AM_F32, -1, 1);
  in[7] = t_rand(r, (int64_t[]){B, H, T, DA}, 4, AM_F32, -1, 1);
  in[8] = t_rand(r, (int64_t[]){B, HKV, L, DA}, 4, AM_F32, -1, 1);
  in[9] = t_rand(r, (int64_t[]){B, HKV, L, DA}, 4, AM_F32, -1, 1);
}

/* Runs f on (B, T, L) and compares with the uncompiled function. */
static am_status seed_call(am_compiled f, seed_ctx *c, t_rng *r, int64_t B,
                           int64_t T, int64_t L, bool *equal) {
  am_scope_push();
  am_array in[10], got[4], want[4];
  seed_inputs(r, B, T, L, in);
  am_status s = am_compiled_call(f, in, got);
  *equal = false;
  if (!s) {
    CHECK(seed_step(c, in, 10, want, 4) == AM_OK, "eager: %s", am_last_error());
    *equal = true;
    for (int j = 0; j < 4; j++)
      *equal &= close_to(got[j], want[j], 1e-5);
  }
  am_scope_pop();
  return s;
}

static void test_seed_shapeless(void) {
  t_rng r = {7};
  seed_ctx c;
  seed_ctx_init(&c, &r, false);
  am_compiled f = am_compile(seed_step, &c, 10, 4,
                             &(am_compile_options){.shapeless = true});
  int calls = 0, equal = 0;
  for (int64_t B = 1; B <= 2; B++)
    for (int64_t T = 1; T <= 4; T *= 2)
      for (int64_t extra = 0; extra < 20; extra += 6) { /* KV cache grows */
        bool eq;
        am_status s = seed_call(f, &c, &r, B, T, T + extra, &eq);
        CHECK(s == AM_OK, "call (B=%lld T=%lld): %s", (long long)B,
              (long long)T, am_last_error());
        calls++;
        equal += eq;
      }
  am_compile_stats st = am_compiled_stats(f);
  CHECK(calls >= 20 && equal == calls, "%d of %d calls equal eager", equal,
        calls);
  CHECK(st.traces == 1 && st.fallbacks == 0,
        "shapeless: %llu traces, %llu fallbacks (%s)",
        (unsigned long long)st.traces, (unsigned long long)st.fallbacks,
        am_compiled_last_fallback(f));
  am_compiled_free(f);
  seed_ctx_free(&c);
}

static void test_seed_fixed(void) {
  t_rng r = {8};
  seed_ctx c;
  seed_ctx_init(&c, &r, true);
  am_compiled f = am_compile(seed_step, &c, 10, 4,
                             &(am_compile_options){.shapeless = true});
  int64_t shapes[][3] = {{1, 1, 3}, {1, 2, 5}, {2, 1, 4}, {1, 1, 9}, {1, 1, 3}};
  int equal = 0;
  for (int i = 0; i < 5; i++) {
    bool eq;
    am_status s =
        seed_call(f, &c, &r, shapes[i][0], shapes[i][1], shapes[i][2], &eq);
    CHECK(s == AM_OK, "fixed call %d: %s", i, am_last_error());
    equal += eq;
  }
  am_compile_stats st = am_compiled_stats(f);
  CHECK(equal == 5, "fixed shapes: %d of 5 calls equal eager", equal);
  /* (B, T) changes twice: two counted re-traces. A new L alone leaves the
   * kernel's inputs as traced, so (1,1,9) replays the first entry. */
  CHECK(st.traces == 3 && st.fallbacks == 2,
        "fixed: %llu traces, %llu fallbacks", (unsigned long long)st.traces,
        (unsigned long long)st.fallbacks);
  CHECK(strstr(am_compiled_last_fallback(f), "gated_delta") != NULL,
        "fallback names the kernel: %s", am_compiled_last_fallback(f));
  am_compiled_free(f);
  /* strict: the re-trace is an error naming the kernel. */
  f = am_compile(seed_step, &c, 10, 4,
                 &(am_compile_options){.shapeless = true, .strict = true});
  bool eq;
  CHECK(seed_call(f, &c, &r, 1, 1, 3, &eq) == AM_OK && eq, "strict first");
  am_status s = seed_call(f, &c, &r, 1, 2, 3, &eq);
  CHECK(s == AM_ERR_CANNOT_INFER && strstr(am_last_error(), "gated_delta"),
        "strict: %s / %s", am_status_str(s), am_last_error());
  am_compiled_free(f);
  seed_ctx_free(&c);
}

/* ---- CSE: equal applications merge, different args do not ---- */

static am_status cse_fn(void *vctx, const am_array *in, int n_in, am_array *out,
                        int n_out) {
  am_kernel k = vctx;
  am_array a[2], b[2], d[2];
  am_kernel_args x = {.n_f = 1, .f = {1.5}}, y = x, z = {.n_f = 1, .f = {2}};
  y.i[5] = 99; /* beyond n_i: ignored */
  am_status s = am_kernel_apply(k, in, 6, &x, a);
  if (!s) s = am_kernel_apply(k, in, 6, &y, b);
  if (!s) s = am_kernel_apply(k, in, 6, &z, d);
  out[0] = am_add(a[0], b[0]);
  out[1] = am_add(a[1], d[1]);
  return s;
}

static void test_cse(void) {
  am_kernel k = gd_kernel_new(true);
  am_compiled f = am_compile(cse_fn, k, 6, 2, NULL);
  t_rng r = {9};
  am_scope_push();
  am_array in[6], got[2], y[2];
  gd_inputs(&r, (gd_dims){1, 2, 2, 4, 32, 8}, in);
  CHECK(am_compiled_call(f, in, got) == AM_OK, "%s", am_last_error());
  am_compile_stats st = am_compiled_stats(f);
  CHECK(st.cse_merged == 1,
        "cse merged %llu nodes (want the one equal "
        "application)",
        (unsigned long long)st.cse_merged);
  CHECK(am_kernel_apply(k, in, 6, NULL, y) == AM_OK, "%s", am_last_error());
  CHECK(close_to(got[0], am_mul(y[0], am_float(2)), 1e-6) &&
            close_to(got[1], am_mul(y[1], am_float(2)), 1e-6),
        "merged result");
  am_scope_pop();
  am_compiled_free(f);
  am_kernel_free(k);
}

/* ---- errors ---- */

static int bad_count(void *u, const am_kernel_meta *in, int n_in,
                     const am_kernel_args *a, am_kernel_meta *out, int mx) {
  out[0] = in[0];
  return 1;
}
static int bad_shape(void *u, const am_kernel_meta *in, int n_in,
                     const am_kernel_args *a, am_kernel_meta *out, int mx) {
  out[0] = in[0];
  out[0].shape[0] = -4;
  return 1;
}
static int same_shape(void *u, const am_kernel_meta *in, int n_in,
                      const am_kernel_args *a, am_kernel_meta *out, int mx) {
  out[0] = in[0];
  return 1;
}
static am_status failing_cpu(const am_kernel_call *c, int64_t b, int64_t e) {
  if (b == 0) {
    am_kernel_fail("boom at task %lld", (long long)b);
    return AM_ERR_INVALID_ARG;
  }
  return AM_OK;
}
static am_status noop_cpu(const am_kernel_call *c, int64_t b, int64_t e) {
  return AM_OK;
}
static int64_t zero_tasks(void *u, const am_kernel_meta *in, int n,
                          const am_kernel_args *a) {
  return 0;
}

static void test_errors(void) {
  am_scope_push();
  am_array x = am_ones((int64_t[]){3, 4}, 2, AM_F32), o[2];
  /* callback failure: wrong dtype for the gated-delta kernel */
  am_kernel gd = gd_kernel_new(true);
  am_array six[6] = {x, x, x, x, x, x};
  CHECK(am_kernel_apply(gd, six, 6, NULL, o) != AM_OK, "gd on bad ranks");
  t_expect_error(o[0], AM_ERR_SHAPE, "kernel 'gated_delta'", "callback fails");
  t_expect_error(o[1], AM_ERR_SHAPE, "ranks must be", "callback message");
  CHECK(am_kernel_apply(gd, six, 5, NULL, o) == AM_ERR_INVALID_ARG,
        "input count");
  t_expect_error(o[0], AM_ERR_INVALID_ARG, "gated_delta", "input count");
  /* no shape callback and no fixed shapes */
  am_kernel nofix = gd_kernel_new(false);
  am_kernel_apply(nofix, six, 6, NULL, o);
  t_expect_error(o[0], AM_ERR_INVALID_ARG, "no shape callback", "no shapes");
  am_kernel_args fx = {.n_fixed = 1};
  am_kernel_apply(nofix, six, 6, &fx, o);
  t_expect_error(o[1], AM_ERR_INVALID_ARG, "fixed output", "fixed count");
  am_kernel_free(nofix);
  am_kernel_free(gd);
  /* wrong output count, invalid shape */
  am_kernel_desc d = {.name = "two_out",
                      .n_in = 1,
                      .n_out = 2,
                      .cpu = noop_cpu,
                      .shapes = bad_count};
  am_kernel k = am_kernel_new(&d);
  am_kernel_apply(k, &x, 1, NULL, o);
  t_expect_error(o[0], AM_ERR_INVALID_ARG, "returned 1 outputs", "count");
  t_expect_error(o[1], AM_ERR_INVALID_ARG, "two_out", "count names kernel");
  am_kernel_free(k);
  d = (am_kernel_desc){.name = "neg",
                       .n_in = 1,
                       .n_out = 1,
                       .cpu = noop_cpu,
                       .shapes = bad_shape};
  k = am_kernel_new(&d);
  am_kernel_apply(k, &x, 1, NULL, o);
  t_expect_error(o[0], AM_ERR_INVALID_ARG, "invalid dtype or shape", "neg");
  am_kernel_free(k);
  /* the kernel reports failure at eval */
  d = (am_kernel_desc){.name = "failing",
                       .n_in = 1,
                       .n_out = 1,
                       .cpu = failing_cpu,
                       .n_tasks = 4,
                       .shapes = same_shape};
  k = am_kernel_new(&d);
  CHECK(am_kernel_apply(k, &x, 1, NULL, o) == AM_OK, "apply");
  CHECK(am_eval(o, 1) == AM_ERR_INVALID_ARG, "eval fails");
  CHECK(strstr(am_last_error(), "kernel 'failing' failed: boom at task 0"),
        "message: %s", am_last_error());
  am_kernel_free(k);
  /* a task callback returning 0 */
  d = (am_kernel_desc){.name = "zt",
                       .n_in = 1,
                       .n_out = 1,
                       .cpu = noop_cpu,
                       .cpu_tasks = zero_tasks,
                       .shapes = same_shape};
  k = am_kernel_new(&d);
  am_kernel_apply(k, &x, 1, NULL, o);
  CHECK(am_eval(o, 1) == AM_ERR_INVALID_ARG && strstr(am_last_error(), "zt"),
        "zero tasks: %s", am_last_error());
  am_kernel_free(k);
  /* init_value fills outputs; fixed shapes need no callback */
  d = (am_kernel_desc){.name = "init", .n_in = 1, .n_out = 1, .cpu = noop_cpu};
  k = am_kernel_new(&d);
  am_kernel_args ia = {.has_init = true, .init_value = 2.5, .n_fixed = 1};
  ia.out[0] = (am_kernel_meta){.dtype = AM_F16, .ndim = 2, .shape = {2, 3}};
  CHECK(am_kernel_apply(k, &x, 1, &ia, o) == AM_OK, "%s", am_last_error());
  t_expect(o[0], (double[]){2.5, 2.5, 2.5, 2.5, 2.5, 2.5}, 6, 0, 0, "init");
  ia.out[0].ndim = -1;
  am_kernel_apply(k, &x, 1, &ia, o);
  t_expect_error(o[0], AM_ERR_INVALID_ARG, "invalid fixed", "bad fixed");
  am_kernel_free(k);
  /* bad descriptors, CUDA-only kernel on CPU, NULLs */
  CHECK(!am_kernel_new(&(am_kernel_desc){
            .name = "1x", .n_in = 1, .n_out = 1, .cpu = noop_cpu}),
        "bad name");
  CHECK(strstr(am_last_error(), "not an identifier"), "%s", am_last_error());
  CHECK(!am_kernel_new(&(am_kernel_desc){.name = "x", .n_in = 1, .n_out = 1}),
        "no implementation");
  CHECK(!am_kernel_new(NULL), "NULL desc");
  const char *names_in[] = {"inp"}, *names_out[] = {"out"};
  am_kernel_cuda_desc cu = {.input_names = names_in,
                            .output_names = names_out,
                            .source = "out[0] = inp[0];"};
  k = am_kernel_new(&(am_kernel_desc){.name = "gpu_only",
                                      .n_in = 1,
                                      .n_out = 1,
                                      .cuda = &cu,
                                      .shapes = same_shape});
  CHECK(am_kernel_apply(k, &x, 1, NULL, o) == AM_OK, "%s", am_last_error());
  CHECK(am_eval(o, 1) == AM_ERR_UNSUPPORTED &&
            strstr(am_last_error(), "gpu_only"),
        "cuda-only on cpu: %s", am_last_error());
  am_kernel_free(k);
  CHECK(am_kernel_apply(NULL, &x, 1, NULL, o) == AM_ERR_INVALID_ARG, "NULL k");
  /* error inputs propagate */
  k = am_kernel_new(&(am_kernel_desc){.name = "prop",
                                      .n_in = 1,
                                      .n_out = 1,
                                      .cpu = noop_cpu,
                                      .shapes = same_shape});
  am_array bad = am_reshape(x, (int64_t[]){5}, 1);
  CHECK(am_kernel_apply(k, &bad, 1, NULL, o) != AM_OK &&
            am_array_status(o[0]) == am_array_status(bad),
        "error input propagates");
  am_kernel_free(k);
  am_scope_pop();
}

/* ---- CUDA: source generation and NVRTC compile to PTX ---- */

/* The mlx-lm gated-delta body (qwen3next.md §7) in CUDA: one warp per
 * state row, grid (32, Dv, B*Hv), threadgroup (32, 4, 1). */
static const char *gd_cuda_body =
    "  int lane = threadIdx.x;\n"
    "  int dv = blockIdx.y * blockDim.y + threadIdx.y;\n"
    "  int n = blockIdx.z, b = n / Hv, hv = n % Hv, hk = hv / (Hv / Hk);\n"
    "  long long T = q_shape[1];\n"
    "  if (dv >= Dv) return;\n"
    "  float st[Dk / 32];\n"
    "  const float* s_in = state_in + ((long long)n * Dv + dv) * Dk;\n"
    "  for (int i = 0; i < Dk / 32; ++i) st[i] = s_in[lane + 32 * i];\n"
    "  for (long long t = 0; t < T; ++t) {\n"
    "    const InT* kt = k + ((b * T + t) * Hk + hk) * Dk;\n"
    "    const InT* qt = q + ((b * T + t) * Hk + hk) * Dk;\n"
    "    long long gi = (b * T + t) * Hv + hv;\n"
    "    float gt = g[gi], bt = static_cast<float>(beta[gi]), m = 0.f;\n"
    "    for (int i = 0; i < Dk / 32; ++i) {\n"
    "      st[i] *= gt;\n"
    "      m += st[i] * static_cast<float>(kt[lane + 32 * i]);\n"
    "    }\n"
    "    for (int o = 16; o > 0; o >>= 1) m += __shfl_xor_sync(~0u, m, o);\n"
    "    float d = (static_cast<float>(v[gi * Dv + dv]) - m) * bt, yv = 0.f;\n"
    "    for (int i = 0; i < Dk / 32; ++i) {\n"
    "      st[i] += static_cast<float>(kt[lane + 32 * i]) * d;\n"
    "      yv += st[i] * static_cast<float>(qt[lane + 32 * i]);\n"
    "    }\n"
    "    for (int o = 16; o > 0; o >>= 1) yv += __shfl_xor_sync(~0u, yv, o);\n"
    "    if (lane == 0) y[gi * Dv + dv] = static_cast<InT>(yv);\n"
    "  }\n"
    "  float* s_out = state_out + ((long long)n * Dv + dv) * Dk;\n"
    "  for (int i = 0; i < Dk / 32; ++i) s_out[lane + 32 * i] = st[i];\n";

static am_status gd_launch(void *u, const am_kernel_meta *in, int n_in,
                           const am_kernel_args *a, am_kernel_launch *L) {
  int64_t B = in[0].shape[0], Hv = in[2].shape[2], Dv = in[2].shape[3];
  *L = (am_kernel_launch){.grid = {32, (int)Dv, (int)(B * Hv)},
                          .threadgroup = {32, 4, 1}};
  return AM_OK;
}

static bool has_entry(const char *ptx, const char *entry) {
  char want[256];
  snprintf(want, sizeof want, ".entry %s(", entry);
  return ptx && strstr(ptx, want) != NULL;
}

static void test_cuda(void) {
  char dir[] = "/tmp/am_kernel_test_XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  setenv("AM_KERNEL_CACHE_DIR", dir, 1);
  const char *gin[] = {"q", "k", "v", "g", "beta", "state_in"},
             *gout[] = {"y", "state_out"};
  am_kernel_cuda_desc cu = {.input_names = gin,
                            .output_names = gout,
                            .source = gd_cuda_body,
                            .launch = gd_launch};
  am_kernel k = am_kernel_new(&(am_kernel_desc){.name = "gated_delta",
                                                .n_in = 6,
                                                .n_out = 2,
                                                .cpu = gd_cpu,
                                                .cpu_tasks = gd_tasks,
                                                .shapes = gd_shapes,
                                                .cuda = &cu});
  CHECK(k != NULL, "%s", am_last_error());
  /* The grid follows the inputs. */
  am_kernel_meta m[6];
  for (int B = 1; B <= 2; B++) {
    gd_dims d = {B, 3, 16, 32, 128, 128};
    int64_t qs[] = {d.B, d.T, d.Hk, d.Dk}, vs[] = {d.B, d.T, d.Hv, d.Dv};
    m[0] = m[1] = (am_kernel_meta){AM_F32, 4, {0}};
    memcpy(m[0].shape, qs, sizeof qs);
    memcpy(m[1].shape, qs, sizeof qs);
    m[2] = (am_kernel_meta){AM_F32, 4, {0}};
    memcpy(m[2].shape, vs, sizeof vs);
    am_kernel_launch L;
    CHECK(am_kernel_cuda_launch_for(k, m, 6, NULL, &L) == AM_OK &&
              L.grid[0] == 32 && L.grid[1] == 128 && L.grid[2] == 32 * B &&
              L.threadgroup[1] == 4,
          "launch for B=%d", B);
  }
  am_dtype ind[6] = {AM_F32, AM_F32, AM_F32, AM_F32, AM_F32, AM_F32},
           outd[2] = {AM_F32, AM_F32};
  am_kernel_targ ta[] = {{"InT", AM_TARG_DTYPE, 0, AM_F32},
                         {"Dk", AM_TARG_INT, 128, 0},
                         {"Dv", AM_TARG_INT, 128, 0},
                         {"Hk", AM_TARG_INT, 16, 0},
                         {"Hv", AM_TARG_INT, 32, 0}};
  char *src = NULL, *entry = NULL, *ptx = NULL;
  CHECK(am_kernel_cuda_source(k, ind, outd, ta, 5, &src, &entry) == AM_OK, "%s",
        am_last_error());
  CHECK(src &&
            strstr(src, "extern \"C\" __global__ void custom_gated_delta_") &&
            strstr(src, "const long long* __restrict__ q_shape") &&
            !strstr(src, "k_shape") && strstr(src, "constexpr int Dk = 128;") &&
            strstr(src, "using InT = float;") &&
            strstr(src, "float* __restrict__ state_out) {"),
        "generated source:\n%s", src ? src : "");
  free(src);
  free(entry);
  am_status s =
      am_kernel_cuda_compile(k, ind, outd, ta, 5, "compute_90", &ptx, &entry);
  if (s == AM_ERR_UNSUPPORTED) {
    printf("note: NVRTC not available, CUDA compile tests skipped (%s)\n",
           am_last_error());
  } else {
    CHECK(s == AM_OK && has_entry(ptx, entry), "gated delta PTX: %s",
          am_last_error());
    uint64_t n0 = am_kernel_nvrtc_compiles();
    char *ptx2 = NULL, *e2 = NULL;
    CHECK(am_kernel_cuda_compile(k, ind, outd, ta, 5, "sm_90", &ptx2, &e2) ==
                  AM_OK &&
              !strcmp(ptx, ptx2) && am_kernel_nvrtc_compiles() == n0,
          "memory cache hit");
    free(ptx2);
    free(e2);
    /* On disk: the file is there. */
    char path[512];
    snprintf(path, sizeof path, "ls %s/gated_delta_*.ptx >/dev/null 2>&1", dir);
    CHECK(system(path) == 0, "PTX cached on disk in %s", dir);
    /* An elementwise kernel on float16 input, with shape args. */
    const char *ein[] = {"inp"}, *eout[] = {"out"};
    am_kernel_cuda_desc ec = {
        .input_names = ein,
        .output_names = eout,
        .source = "  long long n = 1;\n"
                  "  for (int d = 0; d < inp_ndim; ++d) n *= inp_shape[d];\n"
                  "  long long i = blockIdx.x * (long long)blockDim.x + "
                  "threadIdx.x;\n"
                  "  if (i < n) out[i] = __half2float(inp[i]) * Scale;\n"};
    am_kernel ek = am_kernel_new(&(am_kernel_desc){
        .name = "scale_f16", .n_in = 1, .n_out = 1, .cuda = &ec});
    am_dtype hi = AM_F16, fo = AM_F32;
    am_kernel_targ st = {"Scale", AM_TARG_INT, 3, 0};
    char *p3 = NULL, *e3 = NULL;
    s = am_kernel_cuda_compile(ek, &hi, &fo, &st, 1, NULL, &p3, &e3);
    CHECK(s == AM_OK && has_entry(p3, e3), "elementwise PTX: %s",
          am_last_error());
    free(p3);
    free(e3);
    am_kernel_free(ek);
    /* A compile error carries NVRTC's log. */
    ec.source = "  out[0] = undefined_thing + ;\n";
    ek = am_kernel_new(&(am_kernel_desc){
        .name = "broken", .n_in = 1, .n_out = 1, .cuda = &ec});
    s = am_kernel_cuda_compile(ek, &hi, &fo, NULL, 0, NULL, &p3, &e3);
    CHECK(s == AM_ERR_INVALID_ARG && !p3 && !e3 &&
              strstr(am_last_error(), "kernel 'broken'") &&
              strstr(am_last_error(), "undefined_thing"),
          "compile error: %s", am_last_error());
    am_kernel_free(ek);
  }
  free(ptx);
  free(entry);
  am_kernel_free(k);
  char rm[128];
  snprintf(rm, sizeof rm, "rm -rf %s", dir);
  CHECK(system(rm) == 0, "cleanup");
}

/* out = in + 1, safe when out aliases in */
static am_status add1_cpu(const am_kernel_call *c, int64_t b, int64_t e) {
  const float *x = c->in[0].data;
  float *y = c->out[0].data;
  for (int64_t i = 0; i < c->in[0].size; i++)
    y[i] = x[i] + 1;
  return AM_OK;
}

/* inplace: the output takes a dead input's buffer, never a live one's. */
static void test_inplace(void) {
  am_kernel_desc d = {
      .name = "add1", .n_in = 1, .n_out = 1, .cpu = add1_cpu, .inplace = {1}};
  am_kernel k = am_kernel_new(&d);
  CHECK(k != NULL, "%s", am_last_error());
  am_kernel_desc bad = d;
  bad.inplace[0] = 2;
  CHECK(am_kernel_new(&bad) == NULL && strstr(am_last_error(), "inplace"),
        "bad inplace: %s", am_last_error());
  int64_t n = 1000;
  am_kernel_args a = {.n_fixed = 1};
  a.out[0] = (am_kernel_meta){.dtype = AM_F32, .ndim = 1, .shape = {n}};
  /* a live input: a fresh output, the input unchanged */
  am_array x = am_arange(0, (double)n, 1, AM_F32), y;
  CHECK(!am_eval(&x, 1), "%s", am_last_error());
  uint64_t d0 = am_memory_get_stats().n_donated;
  CHECK(!am_kernel_apply(k, &x, 1, &a, &y) && !am_eval(&y, 1), "%s",
        am_last_error());
  const float *xd = am_array_data(x), *yd = am_array_data(y);
  CHECK(xd != yd && xd[5] == 5 && yd[5] == 6 &&
            am_memory_get_stats().n_donated == d0,
        "live input: x %g y %g", xd[5], yd[5]);
  am_array_free(y);
  /* a dead input (its only handle dropped before eval): updated in place */
  am_array zz = am_zeros((int64_t[]){n}, 1, AM_F32);
  am_array z = am_exp(zz);
  am_array_free(zz);
  CHECK(!am_eval(&z, 1), "%s", am_last_error());
  const void *zd = am_array_data(z);
  d0 = am_memory_get_stats().n_donated;
  CHECK(!am_kernel_apply(k, &z, 1, &a, &y), "%s", am_last_error());
  am_array_free(z);
  CHECK(!am_eval(&y, 1), "%s", am_last_error());
  yd = am_array_data(y);
  CHECK(yd && yd[0] == 2 && yd[n - 1] == 2 && (const void *)yd == zd &&
            am_memory_get_stats().n_donated == d0 + 1,
        "dead input: y %g, donations %llu", yd ? yd[0] : -1,
        (unsigned long long)(am_memory_get_stats().n_donated - d0));
  am_array_free(y);
  am_array_free(x);
  am_kernel_free(k);
}

int main(void) {
  test_inplace();
  test_gated_delta();
  test_seed_shapeless();
  test_seed_fixed();
  test_cse();
  test_errors();
  test_cuda();
  return t_summary();
}
