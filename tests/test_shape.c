/*
 * test_shape — the shape ops: values against NumPy goldens
 * (scripts/golden_shape.py) on contiguous, strided and column-major
 * inputs of every dtype; views sharing their input's buffer; chains of
 * views; bit-exact copies; large multi-threaded copies; shapeless
 * re-inference; errors.
 */
#include "test_internal.h"

#include <stdint.h>

#define GOLDEN_END 99999 /* the script's stand-in for AM_END */

static t_golden *G;

/* ---------------------------------------------------------------------
 *  Golden helpers
 * --------------------------------------------------------------------- */

static const t_garr *find_arr(const t_gcase *c, const char *key) {
  for (int i = 0; c && i < c->n; i++)
    if (!strcmp(c->arr[i].key, key)) return &c->arr[i];
  return NULL;
}

/* An int64 parameter list from the case; returns its length. */
static int gparams(const t_gcase *c, const char *key, int64_t *out) {
  const t_garr *a = t_gcase_arr(c, key);
  if (!a) return 0;
  for (int64_t i = 0; i < a->n; i++)
    out[i] = a->v[i] >= GOLDEN_END ? AM_END : (int64_t)a->v[i];
  return (int)a->n;
}

static int gparams_int(const t_gcase *c, const char *key, int *out) {
  int64_t v[AM_MAX_DIMS];
  int n = gparams(c, key, v);
  for (int i = 0; i < n; i++)
    out[i] = (int)v[i];
  return n;
}

enum { L_CONTIG, L_STRIDED, L_COLMAJOR, L_COUNT };
static const char *const layout_name[L_COUNT] = {"contig", "strided",
                                                 "colmajor"};

/* The golden array as an input of the given layout: row-major; every
 * other element of a larger buffer (offset 1); or column-major. The
 * strided layouts are made with t_view, independently of the ops. */
static am_array layout_input(const t_garr *g, int layout) {
  if (layout == L_CONTIG) return t_garr_array(g);
  int nd = g->ndim;
  int64_t n = g->n, st[AM_MAX_DIMS], bn = layout == L_STRIDED ? 2 * n + 1 : n;
  double *h = calloc((size_t)(bn ? bn : 1), sizeof *h);
  if (layout == L_STRIDED) {
    am_contig_strides(g->shape, nd, st);
    for (int i = 0; i < nd; i++)
      st[i] *= 2;
    for (int64_t i = 0; i < n; i++)
      h[1 + 2 * i] = g->v[i];
  } else {
    int64_t s = 1;
    for (int i = 0; i < nd; i++) {
      st[i] = s;
      s *= g->shape[i];
    }
    for (int64_t i = 0; i < n; i++) { /* row-major i -> column-major pos */
      int64_t r = i, pos = 0;
      for (int d = nd - 1; d >= 0; d--) {
        pos += (r % g->shape[d]) * st[d];
        r /= g->shape[d];
      }
      h[pos] = g->v[i];
    }
  }
  am_array base = t_arr(h, &bn, 1, g->dtype);
  free(h);
  return t_view(base, g->shape, nd, st, layout == L_STRIDED ? 1 : 0);
}

/* Compares outputs out / out0.. with the case's expectations. */
static void check_outs(const t_gcase *c, am_array *outs, int n,
                       const char *what) {
  for (int k = 0; k < n; k++) {
    char key[16], w[300];
    snprintf(key, sizeof key, n == 1 && find_arr(c, "out") ? "out" : "out%d",
             k);
    snprintf(w, sizeof w, "%s %s", what, key);
    t_expect_garr(outs[k], t_gcase_arr(c, key), 0, 0, w);
  }
}

static bool starts(const char *s, const char *prefix) {
  return !strncmp(s, prefix, strlen(prefix));
}

/* Runs golden case c on inputs of the given layout; fills outs, returns
 * how many, and sets *view when the op must be a view of x. */
static int run_case(const t_gcase *c, int layout, am_array *x0, am_array *outs,
                    bool *view) {
  const char *nm = c->name;
  int64_t a[AM_MAX_DIMS], b[AM_MAX_DIMS], s[AM_MAX_DIMS];
  int ia[AM_MAX_DIMS];
  *view = true;
  am_array xs[8];
  int nx = 0;
  const t_garr *g = find_arr(c, "x");
  if (g) {
    xs[nx++] = layout_input(g, layout);
  } else {
    char key[8];
    for (; nx < 8; nx++) {
      snprintf(key, sizeof key, "x%d", nx);
      if (!(g = find_arr(c, key))) break;
      xs[nx] = layout_input(g, layout);
    }
  }
  am_array x = xs[0];
  *x0 = x;
  if (starts(nm, "reshape_")) {
    int n = gparams(c, "shape", a);
    outs[0] = am_reshape(x, a, n);
    *view = layout != L_COLMAJOR; /* uniformly scaled strides still nest */
  } else if (starts(nm, "flatten_")) {
    gparams(c, "p", a);
    outs[0] = am_flatten(x, (int)a[0], (int)a[1]);
    *view = layout != L_COLMAJOR;
  } else if (starts(nm, "unflatten_")) {
    gparams(c, "p", a);
    int n = gparams(c, "sizes", b);
    outs[0] = am_unflatten(x, (int)a[0], b, n); /* splitting: a view */
  } else if (starts(nm, "transpose_")) {
    int n = find_arr(c, "perm") ? gparams_int(c, "perm", ia) : -1;
    outs[0] = am_transpose(x, n < 0 ? NULL : ia, n < 0 ? 0 : n);
  } else if (starts(nm, "swapaxes_")) {
    gparams(c, "p", a);
    outs[0] = am_swapaxes(x, (int)a[0], (int)a[1]);
  } else if (starts(nm, "expand_dims_")) {
    int n = gparams_int(c, "axes", ia);
    outs[0] = am_expand_dims(x, ia, n);
  } else if (starts(nm, "squeeze_")) {
    int n = find_arr(c, "axes") ? gparams_int(c, "axes", ia) : -1;
    outs[0] = am_squeeze(x, n < 0 ? NULL : ia, n < 0 ? 0 : n);
  } else if (starts(nm, "broadcast_to_")) {
    int n = gparams(c, "shape", a);
    outs[0] = am_broadcast_to(x, a, n);
    /* and the same through broadcast_like, checked by the caller */
    outs[1] = am_broadcast_like(x, am_zeros(a, n, AM_BOOL));
    return 2;
  } else if (starts(nm, "concatenate_") || starts(nm, "stack_")) {
    gparams(c, "p", a);
    outs[0] = nm[0] == 'c' ? am_concatenate(xs, nx, (int)a[0])
                           : am_stack(xs, nx, (int)a[0]);
    *view = false;
  } else if (starts(nm, "split_at_")) {
    int n = gparams(c, "idx", a);
    gparams(c, "p", b);
    CHECK(am_split_at(x, a, n, (int)b[0], outs) == AM_OK, "%s: %s", nm,
          am_last_error());
    return n + 1;
  } else if (starts(nm, "split_")) {
    gparams(c, "p", a);
    CHECK(am_split(x, (int)a[0], (int)a[1], outs) == AM_OK, "%s: %s", nm,
          am_last_error());
    return (int)a[0];
  } else if (starts(nm, "slice_axis_")) {
    gparams(c, "p", a);
    outs[0] = am_slice_axis(x, (int)a[0], a[1], a[2], a[3]);
  } else if (starts(nm, "slice_")) {
    int n = gparams(c, "start", a);
    gparams(c, "stop", b);
    gparams(c, "step", s);
    outs[0] = am_slice(x, a, b, s, n);
  } else if (starts(nm, "pad_")) {
    int n = gparams(c, "low", a);
    gparams(c, "high", b);
    outs[0] = am_pad(x, a, b, n, t_gcase_arr(c, "value")->v[0]);
    *view = false;
  } else if (starts(nm, "repeat_")) {
    gparams(c, "p", a);
    outs[0] = am_repeat(x, a[0], (int)a[1]);
    *view = false;
  } else if (starts(nm, "tile_")) {
    int n = gparams(c, "reps", a);
    outs[0] = am_tile(x, a, n);
    *view = false;
  } else {
    return 0;
  }
  return 1;
}

static void test_golden(void) {
  for (int ci = 0; G && ci < G->n; ci++) {
    const t_gcase *c = &G->cases[ci];
    if (starts(c->name, "chain_")) continue;
    for (int layout = 0; layout < L_COUNT; layout++) {
      am_scope_push();
      am_array outs[16], x;
      bool view;
      char what[256];
      snprintf(what, sizeof what, "%s (%s)", c->name, layout_name[layout]);
      int n = run_case(c, layout, &x, outs, &view);
      CHECK(n > 0, "%s: unknown case", what);
      if (starts(c->name, "broadcast_to_")) {
        const t_garr *want = t_gcase_arr(c, "out");
        t_expect_garr(outs[0], want, 0, 0, what);
        t_expect_garr(outs[1], want, 0, 0, "broadcast_like");
      } else {
        check_outs(c, outs, n, what);
      }
      /* Views share x's buffer; only non-empty outputs are checked, as an
       * empty view may come from anywhere. */
      for (int k = 0; view && k < n; k++)
        if (!am_array_status(outs[k]) && am_array_size(outs[k]))
          CHECK(outs[k]->buf == x->buf, "%s: output %d is not a view", what, k);
      am_scope_pop();
    }
  }
}

/* Chains of views, the same as in the golden script. */
static void test_chains(void) {
  if (!G) return;
  am_scope_push();
  const t_gcase *c = t_golden_case(G, "chain_0");
  am_array x = t_garr_array(t_gcase_arr(c, "x"));
  /* x.T[1:, ::-2].reshape(-1) */
  int64_t st[2] = {1, AM_END}, sp[2] = {AM_END, AM_END}, stp[2] = {1, -2};
  am_array y = am_reshape(am_slice(am_transpose(x, NULL, 0), st, sp, stp, 2),
                          (int64_t[]){-1}, 1);
  t_expect_garr(y, t_gcase_arr(c, "out"), 0, 0, "chain_0");

  /* swapaxes(x, 0, 2)[::-1, 1:3].reshape(5, -1)[:, ::2] */
  c = t_golden_case(G, "chain_1");
  x = t_garr_array(t_gcase_arr(c, "x"));
  int64_t st1[2] = {AM_END, 1}, sp1[2] = {AM_END, 3}, stp1[2] = {-1, 1};
  y = am_slice(am_swapaxes(x, 0, 2), st1, sp1, stp1, 2);
  y = am_slice_axis(am_reshape(y, (int64_t[]){5, -1}, 2), 1, 0, AM_END, 2);
  t_expect_garr(y, t_gcase_arr(c, "out"), 0, 0, "chain_1");

  /* concat([broadcast_to(x[:, None], (2,4,3)),
   *         tile(x.T, (1,1))[None].reshape(2,1,3)], 1)[..., ::-1] */
  c = t_golden_case(G, "chain_2");
  x = t_garr_array(t_gcase_arr(c, "x"));
  am_array p[2];
  p[0] = am_broadcast_to(am_expand_dims(x, (int[]){1}, 1), (int64_t[]){2, 4, 3},
                         3);
  p[1] = am_reshape(
      am_expand_dims(am_tile(am_transpose(x, NULL, 0), (int64_t[]){1, 1}, 2),
                     (int[]){0}, 1),
      (int64_t[]){2, 1, 3}, 3);
  y = am_slice_axis(am_concatenate(p, 2, 1), -1, AM_END, AM_END, -1);
  t_expect_garr(y, t_gcase_arr(c, "out"), 0, 0, "chain_2");

  /* pad(x[::2, ::-1], [(1,0),(0,1)]).reshape(-1)[3:] */
  c = t_golden_case(G, "chain_3");
  x = t_garr_array(t_gcase_arr(c, "x"));
  int64_t st3[2] = {0, AM_END}, sp3[2] = {AM_END, AM_END}, stp3[2] = {2, -1};
  y = am_pad(am_slice(x, st3, sp3, stp3, 2), (int64_t[]){1, 0},
             (int64_t[]){0, 1}, 2, 0);
  y = am_slice_axis(am_reshape(y, (int64_t[]){-1}, 1), 0, 3, AM_END, 1);
  t_expect_garr(y, t_gcase_arr(c, "out"), 0, 0, "chain_3");
  am_scope_pop();
}

/* ---------------------------------------------------------------------
 *  Hand-computed cases
 * --------------------------------------------------------------------- */

static am_array iota(const int64_t *shape, int nd, am_dtype dt) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  return am_reshape(am_arange(0, (double)n, 1, dt), shape, nd);
}

static void test_hand(void) {
  am_scope_push();
  am_array x = am_arange(0, 10, 1, AM_I32); /* 0..9 */
  t_expect(am_slice_axis(x, 0, -3, AM_END, 1), (double[]){7, 8, 9}, 3, 0, 0,
           "x[-3:]");
  t_expect(am_slice_axis(x, 0, AM_END, AM_END, -3), (double[]){9, 6, 3, 0}, 4,
           0, 0, "x[::-3]");
  t_expect(am_slice_axis(x, 0, 2, AM_END, -1), (double[]){2, 1, 0}, 3, 0, 0,
           "x[2::-1]");
  t_expect(am_slice_axis(x, 0, AM_END, 7, -1), (double[]){9, 8}, 2, 0, 0,
           "x[:7:-1]");
  t_expect(am_slice_axis(x, 0, 4, 4, 1), NULL, 0, 0, 0, "x[4:4]");
  t_expect(am_slice_axis(x, 0, INT64_MIN, INT64_MAX - 1, INT64_MAX),
           (double[]){0}, 1, 0, 0, "huge bounds and step");
  t_expect(am_slice_axis(x, 0, AM_END, INT64_MIN, INT64_MIN), (double[]){9}, 1,
           0, 0, "INT64_MIN step");

  am_array parts[3];
  CHECK(!am_split_at(x, (int64_t[]){3, -2}, 2, 0, parts), "split_at");
  t_expect(parts[0], (double[]){0, 1, 2}, 3, 0, 0, "split_at part 0");
  t_expect(parts[1], (double[]){3, 4, 5, 6, 7}, 5, 0, 0, "split_at part 1");
  t_expect(parts[2], (double[]){8, 9}, 2, 0, 0, "split_at part 2");

  am_array m = iota((int64_t[]){2, 3}, 2, AM_F32); /* [[0,1,2],[3,4,5]] */
  t_expect(am_transpose(m, NULL, 0), (double[]){0, 3, 1, 4, 2, 5}, 6, 0, 0,
           "m.T");
  t_expect(am_repeat(m, 2, -1), (double[]){0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5},
           12, 0, 0, "repeat");
  t_expect(am_tile(m, (int64_t[]){2}, 1),
           (double[]){0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}, 12, 0, 0, "tile");
  t_expect(am_pad(m, (int64_t[]){0, 1}, (int64_t[]){0, 0}, 2, -1),
           (double[]){-1, 0, 1, 2, -1, 3, 4, 5}, 8, 0, 0, "pad");
  am_array st = am_stack((am_array[]){m, m}, 2, -1);
  t_expect_shape(st, (int64_t[]){2, 3, 2}, 3, "stack shape");
  t_expect(st, (double[]){0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, 12, 0, 0,
           "stack values");
  /* Pad value cast to the dtype: saturating/truncating like astype. */
  t_expect(
      am_pad(am_astype(m, AM_U8), (int64_t[]){1}, (int64_t[]){0}, 1, 300.7),
      (double[]){255, 255, 255, 0, 1, 2, 3, 4, 5}, 9, 0, 0,
      "pad value saturates to u8");
  am_scope_pop();
}

/* Copies move bytes: int64 values beyond 2^53 and NaN payloads survive. */
static void test_bit_exact(void) {
  am_scope_push();
  int64_t big[6];
  for (int i = 0; i < 6; i++)
    big[i] = ((int64_t)1 << 62) + 2 * i + 1;
  am_array x = am_array_new_data(big, (int64_t[]){2, 3}, 2, AM_I64);
  am_array t = am_transpose(x, NULL, 0);
  am_array ys[] = {
      am_reshape(t, (int64_t[]){-1}, 1), /* copy */
      am_concatenate((am_array[]){t, t}, 2, 0),
      am_tile(t, (int64_t[]){1, 1}, 2),
      am_repeat(t, 1, 0),
      am_pad(t, NULL, NULL, 0, 0),
  };
  for (int k = 0; k < 5; k++) {
    int64_t got[12];
    int64_t n = am_array_size(ys[k]);
    CHECK(am_array_read(ys[k], AM_I64, got, n) == AM_OK, "read %d", k);
    for (int64_t i = 0; i < n; i++) {
      int64_t r = (i % 6) / 2, c = (i % 6) % 2; /* t[r][c] = big[c*3+r] */
      CHECK(got[i] == big[c * 3 + r], "int64 exact copy %d at %lld", k,
            (long long)i);
    }
  }
  uint32_t nan_bits = 0x7fc01234u; /* a NaN with a payload */
  float f[2];
  memcpy(&f[0], &nan_bits, 4);
  f[1] = 1;
  am_array nf = am_array_new_data(f, (int64_t[]){2}, 1, AM_F32);
  am_array r =
      am_tile(am_slice_axis(nf, 0, AM_END, AM_END, -1), (int64_t[]){2}, 1);
  CHECK(am_eval(&r, 1) == AM_OK, "nan eval");
  uint32_t bits[4];
  CHECK(am_array_read(r, AM_F32, bits, 4) == AM_OK, "nan read");
  CHECK(bits[1] == nan_bits && bits[3] == nan_bits, "NaN payload kept");
  am_scope_pop();
}

/* Views share buffers; reshape copies only when the strides demand it. */
static void test_views(void) {
  am_scope_push();
  am_array x = iota((int64_t[]){6, 4}, 2, AM_F32);
  CHECK(am_eval(&x, 1) == AM_OK, "eval");
  /* Every other row: strides [8, 1]. Splitting the last axis is a view,
   * merging rows needs a copy. */
  am_array rows = am_slice_axis(x, 0, 0, AM_END, 2);
  am_array v = am_reshape(rows, (int64_t[]){3, 2, 2}, 3);
  am_array cpy = am_reshape(rows, (int64_t[]){-1}, 1);
  am_array ev[] = {v, cpy};
  CHECK(am_eval(ev, 2) == AM_OK, "eval");
  CHECK(v->buf == x->buf, "split of a strided axis is a view");
  CHECK(cpy->buf != x->buf, "merging strided rows copies");
  t_expect(cpy, (double[]){0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19}, 12, 0, 0,
           "merged rows");
  /* A reversed 1-d array reshaped keeps negative strides as a view. */
  am_array rev =
      am_slice_axis(am_reshape(x, (int64_t[]){-1}, 1), 0, AM_END, AM_END, -1);
  am_array r2 = am_reshape(rev, (int64_t[]){4, -1}, 2);
  CHECK(am_eval(&r2, 1) == AM_OK && r2->buf == x->buf && r2->strides[1] < 0,
        "reshape of a reversed array is a view");
  double want[24];
  for (int i = 0; i < 24; i++)
    want[i] = 23 - i;
  t_expect(r2, want, 24, 0, 0, "reversed reshape");
  /* flatten of a transpose must copy and give the transposed order */
  am_array ft = am_flatten(am_transpose(x, NULL, 0), 0, -1);
  CHECK(am_eval(&ft, 1) == AM_OK && ft->buf != x->buf, "flatten(T) copies");
  for (int i = 0; i < 24; i++)
    want[i] = (i % 6) * 4 + i / 6;
  t_expect(ft, want, 24, 0, 0, "flatten(T)");
  /* broadcast has stride 0 */
  am_array b =
      am_broadcast_to(am_slice_axis(x, 0, 0, 1, 1), (int64_t[]){5, 4}, 2);
  CHECK(am_eval(&b, 1) == AM_OK && b->buf == x->buf && b->strides[0] == 0,
        "broadcast is a stride-0 view");
  /* ops on broadcast views copy right */
  am_array bt = am_tile(b, (int64_t[]){1, 2}, 2);
  double wb[40];
  for (int i = 0; i < 40; i++)
    wb[i] = i % 4;
  t_expect(bt, wb, 40, 0, 0, "tile of a broadcast view");
  am_scope_pop();
}

/* Large arrays go through the thread pool; the expectation is computed
 * from indices, not by the ops. */
static void test_large(void) {
  am_scope_push();
  int64_t R = t_quick() ? 300 : 1000, C = 700;
  am_array x = iota((int64_t[]){R, C}, 2, AM_F32);
  am_array t = am_reshape(am_transpose(x, NULL, 0), (int64_t[]){-1}, 1);
  am_array cc = am_concatenate(
      (am_array[]){x, am_transpose(am_transpose(x, NULL, 0), NULL, 0)}, 2, 1);
  am_array pd = am_pad(x, (int64_t[]){1, 2}, (int64_t[]){0, 1}, 2, -1);
  am_array tl = am_tile(am_slice_axis(x, 1, 0, 3, 1), (int64_t[]){2, 200}, 2);
  am_array rp = am_repeat(am_slice_axis(x, 1, AM_END, AM_END, -1), 2, 0);
  am_array all[] = {t, cc, pd, tl, rp};
  CHECK(am_eval(all, 5) == AM_OK, "large eval: %s", am_last_error());
  float *h = malloc((size_t)(2 * R * C + 4 * (R + 1) * (C + 3)) * sizeof *h);
  int bad = 0;
  CHECK(am_array_read(t, AM_F32, h, R * C) == AM_OK, "read");
  for (int64_t i = 0; i < R * C && bad < 3; i++)
    if (h[i] != (float)((i % R) * C + i / R)) bad++;
  CHECK(!bad, "large transpose copy");
  CHECK(am_array_read(cc, AM_F32, h, 2 * R * C) == AM_OK, "read");
  for (int64_t i = 0; i < 2 * R * C && bad < 3; i++)
    if (h[i] != (float)((i / (2 * C)) * C + (i % (2 * C)) % C)) bad++;
  CHECK(!bad, "large concatenate");
  int64_t PC = C + 3;
  CHECK(am_array_read(pd, AM_F32, h, (R + 1) * PC) == AM_OK, "read");
  for (int64_t i = 0; i < (R + 1) * PC && bad < 3; i++) {
    int64_t r = i / PC - 1, c = i % PC - 2;
    float w = (r < 0 || c < 0 || c >= C) ? -1.f : (float)(r * C + c);
    if (h[i] != w) bad++;
  }
  CHECK(!bad, "large pad");
  CHECK(am_array_read(tl, AM_F32, h, 2 * R * 600) == AM_OK, "read");
  for (int64_t i = 0; i < 2 * R * 600 && bad < 3; i++)
    if (h[i] != (float)(((i / 600) % R) * C + (i % 600) % 3)) bad++;
  CHECK(!bad, "large tile");
  CHECK(am_array_read(rp, AM_F32, h, 2 * R * C) == AM_OK, "read");
  for (int64_t i = 0; i < 2 * R * C && bad < 3; i++)
    if (h[i] != (float)((i / C / 2) * C + (C - 1 - i % C))) bad++;
  CHECK(!bad, "large repeat");
  free(h);
  am_scope_pop();
}

/* 16-d inputs: repeat/tile views need more dims than the iterator has. */
static void test_many_dims(void) {
  am_scope_push();
  int64_t sh[AM_MAX_DIMS];
  for (int i = 0; i < AM_MAX_DIMS; i++)
    sh[i] = 2;
  am_array x = iota(sh, AM_MAX_DIMS, AM_I32); /* 65536 elements */
  x = am_transpose(x, NULL, 0);               /* not contiguous */
  int64_t reps[AM_MAX_DIMS];
  for (int i = 0; i < AM_MAX_DIMS; i++)
    reps[i] = i == 3 || i == 9 ? 2 : 1;
  am_array tl = am_tile(x, reps, AM_MAX_DIMS);
  am_array rp = am_repeat(x, 2, 5);
  am_array ev[] = {tl, rp};
  CHECK(am_eval(ev, 2) == AM_OK, "16-d eval: %s", am_last_error());
  int32_t *h = malloc((size_t)4 * 65536 * sizeof *h);
  int bad = 0;
  /* element at out index (i0..i15): x^T value = sum_d (i_d % 2) 2^d */
  CHECK(am_array_read(tl, AM_I32, h, 4 * 65536) == AM_OK, "read tile");
  for (int64_t f = 0; f < 4 * 65536 && bad < 3; f++) {
    int64_t r = f, v = 0;
    for (int d = AM_MAX_DIMS - 1; d >= 0; d--) {
      int64_t ext = 2 * reps[d], i = r % ext;
      r /= ext;
      v += (i % 2) << d;
    }
    if (h[f] != v) bad++;
  }
  CHECK(!bad, "16-d tile");
  CHECK(am_array_read(rp, AM_I32, h, 2 * 65536) == AM_OK, "read repeat");
  for (int64_t f = 0; f < 2 * 65536 && bad < 3; f++) {
    int64_t r = f, v = 0;
    for (int d = AM_MAX_DIMS - 1; d >= 0; d--) {
      int64_t ext = d == 5 ? 4 : 2, i = r % ext;
      r /= ext;
      v += (d == 5 ? i / 2 : i) << d;
    }
    if (h[f] != v) bad++;
  }
  CHECK(!bad, "16-d repeat");
  free(h);
  am_scope_pop();
}

/* ---------------------------------------------------------------------
 *  Shapeless: params stay relative, inference recomputes
 * --------------------------------------------------------------------- */

static bool node_shape_dependent(am_array y) {
  const am_node *n = y->node;
  return (n->prim->flags & AM_OPF_SHAPE_DEPENDENT) ||
         (n->prim->shape_dependent && n->prim->shape_dependent(n->params));
}

/* Re-records y's node params over a new input, as a replay would. */
static am_array replay(am_array y, am_array *ins, int n_in) {
  return am_op_make(y->node->op, y->node->params, ins, n_in);
}

static void test_shapeless(void) {
  am_scope_push();
  am_array a = am_arange(0, 8, 1, AM_F32), b = am_arange(0, 5, 1, AM_F32);
  am_array s = am_slice_axis(a, -1, -3, AM_END, -2); /* a[-3::-2] */
  am_array sb = replay(s, &b, 1);                    /* b[-3::-2] */
  t_expect(sb, (double[]){2, 0}, 2, 0, 0, "replayed slice");
  CHECK(!node_shape_dependent(s), "slice is shape-relative");

  am_array m = am_reshape(a, (int64_t[]){2, -1}, 2);
  CHECK(!node_shape_dependent(m), "reshape with -1 is shape-relative");
  am_array m6 = replay(m, (am_array[]){am_arange(0, 6, 1, AM_F32)}, 1);
  t_expect_shape(m6, (int64_t[]){2, 3}, 2, "replayed reshape");
  am_array bad = replay(m, &b, 1); /* 5 elements into [2,-1] */
  t_expect_error(bad, AM_ERR_SHAPE, "reshape", "replay not divisible");
  CHECK(node_shape_dependent(am_reshape(a, (int64_t[]){2, 4}, 2)),
        "literal reshape is shape-dependent");
  CHECK(node_shape_dependent(am_unflatten(a, 0, (int64_t[]){2, 4}, 2)),
        "literal unflatten is shape-dependent");
  CHECK(!node_shape_dependent(am_unflatten(a, 0, (int64_t[]){2, -1}, 2)),
        "unflatten with -1 is shape-relative");
  am_array sq = am_reshape(a, (int64_t[]){1, 8}, 2);
  CHECK(node_shape_dependent(am_squeeze(sq, NULL, 0)),
        "squeeze-all is shape-dependent");
  CHECK(!node_shape_dependent(am_squeeze(sq, (int[]){0}, 1)),
        "squeeze of an axis is shape-relative");
  CHECK(node_shape_dependent(am_broadcast_to(a, (int64_t[]){2, 8}, 2)),
        "broadcast_to is shape-dependent");
  CHECK(!node_shape_dependent(am_broadcast_like(a, sq)),
        "broadcast_like is shape-relative");

  /* split into sections recomputed from the new axis size */
  am_array p[2];
  CHECK(!am_split(a, 2, 0, p), "split");
  am_array q[2];
  CHECK(!am_op_make_n(p[0]->node->op, p[0]->node->params,
                      (am_array[]){am_arange(0, 6, 1, AM_F32)}, 1, 2, q),
        "replayed split");
  t_expect(q[1], (double[]){3, 4, 5}, 3, 0, 0, "replayed split part 1");

  /* transpose with reversed axes works at any rank */
  am_array tr = am_transpose(a, NULL, 0);
  am_array t3 =
      replay(tr, (am_array[]){iota((int64_t[]){2, 1, 3}, 3, AM_F32)}, 1);
  t_expect_shape(t3, (int64_t[]){3, 1, 2}, 3, "reversed transpose replay");
  /* a reshape to the same shape is still recorded (no elision) */
  am_array same = am_reshape(a, (int64_t[]){8}, 1);
  CHECK(same != a && same->node && same->node->op == AM_OP_RESHAPE,
        "same-shape reshape recorded");
  am_array full = am_slice_axis(a, 0, 0, AM_END, 1);
  CHECK(full != a && full->node && full->node->op == AM_OP_SLICE,
        "full slice recorded");
  am_scope_pop();
}

/* ---------------------------------------------------------------------
 *  Errors
 * --------------------------------------------------------------------- */

static void test_errors(void) {
  am_scope_push();
  am_array x = iota((int64_t[]){2, 3}, 2, AM_F32);
  am_array y = iota((int64_t[]){2, 4}, 2, AM_F32);
  am_array xi = iota((int64_t[]){2, 3}, 2, AM_I32);
  am_array s0 = am_scalar(1, AM_F32);
  const am_status IA = AM_ERR_INVALID_ARG, SH = AM_ERR_SHAPE;

  t_expect_error(am_reshape(x, (int64_t[]){-1, -1}, 2), IA, "reshape",
                 "-1 twice");
  t_expect_error(am_reshape(x, (int64_t[]){4, 2}, 2), SH, "reshape",
                 "size mismatch");
  t_expect_error(am_reshape(x, (int64_t[]){4, -1}, 2), SH, "reshape",
                 "-1 not divisible");
  t_expect_error(am_reshape(x, (int64_t[]){-2, -3}, 2), IA, "reshape",
                 "negative size");
  t_expect_error(
      am_reshape(am_zeros((int64_t[]){0, 3}, 2, AM_F32), (int64_t[]){0, -1}, 2),
      SH, "reshape", "-1 with zero size");
  t_expect_error(am_reshape(x, NULL, 2), IA, "reshape", "NULL shape");
  t_expect_error(am_reshape(x, (int64_t[]){6}, AM_MAX_DIMS + 1), IA, "reshape",
                 "too many dims");
  CHECK(strstr(am_array_error(am_reshape(x, (int64_t[]){4, 2}, 2)), "[2,3]"),
        "message names the input shape");

  t_expect_error(am_flatten(x, 0, 2), IA, "flatten", "end out of range");
  t_expect_error(am_flatten(x, 1, 0), IA, "flatten", "start after end");
  t_expect_error(am_flatten(s0, 0, 1), IA, "flatten", "0-d axis 1");
  t_expect_error(am_unflatten(x, 2, (int64_t[]){3, 1}, 2), IA, "unflatten",
                 "bad axis");
  t_expect_error(am_unflatten(x, 1, (int64_t[]){2, 2}, 2), SH, "unflatten",
                 "sizes mismatch");
  t_expect_error(am_unflatten(x, 1, (int64_t[]){-1, -1}, 2), IA, "unflatten",
                 "-1 twice");
  t_expect_error(am_unflatten(x, 1, NULL, 0), IA, "unflatten", "no sizes");

  t_expect_error(am_transpose(x, (int[]){0}, 1), IA, "transpose", "short perm");
  t_expect_error(am_transpose(x, (int[]){0, -2}, 2), IA, "transpose",
                 "repeated axis");
  t_expect_error(am_transpose(x, (int[]){0, 2}, 2), IA, "transpose",
                 "axis out of range");
  t_expect_error(am_swapaxes(x, 0, -3), IA, "transpose", "swapaxes axis");

  t_expect_error(am_expand_dims(x, (int[]){3}, 1), IA, "expand_dims",
                 "axis out of range");
  t_expect_error(am_expand_dims(x, (int[]){0, -4}, 2), IA, "expand_dims",
                 "repeated axis");
  int many[AM_MAX_DIMS];
  for (int i = 0; i < AM_MAX_DIMS; i++)
    many[i] = i;
  t_expect_error(am_expand_dims(x, many, AM_MAX_DIMS), SH, "expand_dims",
                 "too many dims");
  t_expect_error(am_squeeze(x, (int[]){0}, 1), SH, "squeeze", "size 2");
  t_expect_error(am_squeeze(x, (int[]){-3}, 1), IA, "squeeze", "bad axis");

  t_expect_error(am_broadcast_to(x, (int64_t[]){2, 4}, 2), SH, "broadcast_to",
                 "incompatible");
  t_expect_error(am_broadcast_to(x, (int64_t[]){3}, 1), SH, "broadcast_to",
                 "fewer dims");
  t_expect_error(am_broadcast_to(x, (int64_t[]){-1, 3}, 2), IA, "broadcast_to",
                 "negative size");
  t_expect_error(am_broadcast_like(x, y), SH, "broadcast_like", "incompatible");

  t_expect_error(am_concatenate((am_array[]){x, y}, 2, 0), SH, "concatenate",
                 "shape mismatch");
  t_expect_error(am_concatenate((am_array[]){x, xi}, 2, 0), AM_ERR_DTYPE,
                 "concatenate", "dtype mismatch");
  t_expect_error(am_concatenate((am_array[]){x, s0}, 2, 0), SH, "concatenate",
                 "ndim mismatch");
  t_expect_error(am_concatenate((am_array[]){s0, s0}, 2, 0), IA, "concatenate",
                 "0-d");
  t_expect_error(am_concatenate((am_array[]){x, x}, 2, 2), IA, "concatenate",
                 "bad axis");
  t_expect_error(am_concatenate(NULL, 0, 0), IA, "concatenate", "none");
  t_expect_error(am_stack((am_array[]){x, y}, 2, 0), SH, "stack",
                 "shape mismatch");
  t_expect_error(am_stack((am_array[]){x, xi}, 2, 0), AM_ERR_DTYPE, "stack",
                 "dtype mismatch");
  t_expect_error(am_stack((am_array[]){x, x}, 2, 3), IA, "stack", "bad axis");
  t_expect_error(am_stack(NULL, 0, 0), IA, "stack", "none");

  am_array parts[4];
  CHECK(am_split(x, 2, 1, parts) == SH, "split not divisible");
  t_expect_error(parts[0], SH, "split", "split not divisible");
  t_expect_error(parts[1], SH, "split", "split not divisible (part 1)");
  CHECK(am_split(x, 2, 2, parts) == IA, "split bad axis");
  t_expect_error(parts[0], IA, "split", "split bad axis");
  CHECK(am_split(x, 0, 0, parts) == IA, "split 0 sections");
  CHECK(strstr(am_last_error(), "split") != NULL, "split 0 sections message");
  CHECK(am_split(x, 2, 0, NULL) == IA, "split NULL outs");
  CHECK(am_split_at(x, NULL, 2, 0, parts) == IA, "split_at NULL indices");
  t_expect_error(parts[2], IA, "split", "split_at NULL indices");
  CHECK(am_split_at(x, (int64_t[]){1}, -1, 0, parts) == IA,
        "split_at negative count");
  CHECK(am_split_at(s0, (int64_t[]){1}, 1, 0, parts) == IA, "split_at of 0-d");
  t_expect_error(parts[1], IA, "split", "split_at of 0-d");

  t_expect_error(am_slice_axis(x, 0, 0, 1, 0), IA, "slice", "step 0");
  t_expect_error(
      am_slice(x, (int64_t[]){0, 0}, (int64_t[]){1, 1}, (int64_t[]){1, 0}, 2),
      IA, "slice", "step 0 on axis 1");
  t_expect_error(
      am_slice(x, (int64_t[]){0, 0, 0}, (int64_t[]){1, 1, 1}, NULL, 3), IA,
      "slice", "too many axes");
  t_expect_error(am_slice_axis(x, 2, 0, 1, 1), IA, "slice", "bad axis");
  t_expect_error(am_slice(x, NULL, NULL, NULL, 1), IA, "slice", "NULL");

  t_expect_error(am_pad(x, (int64_t[]){-1}, (int64_t[]){0}, 1, 0), IA, "pad",
                 "negative width");
  t_expect_error(am_pad(x, (int64_t[]){0, 0, 0}, (int64_t[]){0, 0, 0}, 3, 0),
                 IA, "pad", "too many axes");
  t_expect_error(am_pad(x, NULL, NULL, 1, 0), IA, "pad", "NULL widths");
  t_expect_error(am_repeat(x, -1, 0), IA, "repeat", "negative repeats");
  t_expect_error(am_repeat(x, 2, 2), IA, "repeat", "bad axis");
  t_expect_error(am_repeat(s0, 2, 0), IA, "repeat", "0-d");
  t_expect_error(am_repeat(x, INT64_MAX / 2, 0), SH, "repeat", "overflow");
  t_expect_error(am_tile(x, (int64_t[]){2, -1}, 2), IA, "tile",
                 "negative reps");
  t_expect_error(am_tile(x, NULL, 2), IA, "tile", "NULL reps");

  /* NULL inputs and error inputs propagate, never crash */
  /* (status only: the core's NULL-input message is formatted from
   * am_last_error() into itself and comes out empty) */
  CHECK(am_array_status(am_reshape(NULL, (int64_t[]){-1}, 1)) == IA,
        "NULL input");
  am_array e = am_reshape(x, (int64_t[]){5}, 1);
  am_array e2 = am_tile(am_transpose(e, NULL, 0), (int64_t[]){2}, 1);
  t_expect_error(e2, SH, "reshape", "error propagates");
  CHECK(am_eval(&e2, 1) == SH, "eval of an error array fails");
  CHECK(am_split(e, 3, 0, parts) == SH, "split of an error array");
  t_expect_error(parts[2], SH, "reshape", "split of an error array");
  am_scope_pop();
}

/* Empty and 0-d arrays through every op. */
static void test_empty_scalar(void) {
  am_scope_push();
  am_array z = am_zeros((int64_t[]){3, 0, 2}, 3, AM_F16);
  am_array ys[] = {
      am_reshape(z, (int64_t[]){-1, 2}, 2),
      am_flatten(z, 0, -1),
      am_transpose(z, NULL, 0),
      am_concatenate((am_array[]){z, z}, 2, 1),
      am_pad(z, (int64_t[]){1, 1}, (int64_t[]){0, 0}, 2, 3),
      am_repeat(z, 3, 0),
      am_tile(z, (int64_t[]){2, 2, 2}, 3),
      am_slice_axis(z, 1, AM_END, AM_END, -1),
  };
  CHECK(am_eval(ys, 8) == AM_OK, "empty eval: %s", am_last_error());
  t_expect_shape(ys[0], (int64_t[]){0, 2}, 2, "reshape [-1,2] of empty");
  t_expect_shape(ys[4], (int64_t[]){4, 1, 2}, 3, "pad of empty");
  /* padding an empty axis gives only padding */
  t_expect(ys[4], (double[]){3, 3, 3, 3, 3, 3, 3, 3}, 8, 0, 0,
           "pad of empty values");
  am_array s = am_scalar(4, AM_BF16);
  am_array ss[] = {
      am_reshape(s, (int64_t[]){1, 1}, 2),   am_flatten(s, 0, -1),
      am_expand_dims(s, (int[]){-1}, 1),     am_transpose(s, NULL, 0),
      am_broadcast_to(s, (int64_t[]){2}, 1), am_tile(s, (int64_t[]){3}, 1),
      am_pad(s, NULL, NULL, 0, 0),
  };
  for (int k = 0; k < 7; k++) {
    int64_t n = am_array_size(ss[k]);
    double w[3] = {4, 4, 4};
    t_expect(ss[k], w, n, 0, 0, "scalar op");
  }
  am_scope_pop();
}

int main(void) {
  G = t_golden_load("golden/shape.txt");
  test_golden();
  test_chains();
  test_hand();
  test_bit_exact();
  test_views();
  test_large();
  test_many_dims();
  test_shapeless();
  test_errors();
  test_empty_scalar();
  t_golden_free(G);
  return t_summary();
}
