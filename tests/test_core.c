/*
 * test_core — arrays, dtypes, errors, scopes, eval order and memory, the
 * thread pool and the strided iterator.
 */
#include "test_internal.h"

#include <pthread.h>

/* ---------------------------------------------------------------- dtypes */

static void test_dtypes(void) {
  CHECK(am_dtype_size(AM_BF16) == 2 && am_dtype_size(AM_I64) == 8 &&
            am_dtype_size(AM_BOOL) == 1 && am_dtype_size(AM_DTYPE_COUNT) == 0,
        "dtype sizes");
  CHECK(!strcmp(am_dtype_name(AM_BF16), "bfloat16"), "bf16 name");
  /* NumPy/MLX promotion, by hand. */
  struct {
    am_dtype a, b, want;
  } cases[] = {
      {AM_BOOL, AM_I8, AM_I8},     {AM_U8, AM_I8, AM_I32},
      {AM_U8, AM_U32, AM_U32},     {AM_U32, AM_I32, AM_I64},
      {AM_I32, AM_I64, AM_I64},    {AM_U8, AM_I32, AM_I32},
      {AM_I64, AM_F16, AM_F16},    {AM_F16, AM_BF16, AM_F32},
      {AM_BF16, AM_F32, AM_F32},   {AM_F32, AM_F64, AM_F64},
      {AM_BOOL, AM_BOOL, AM_BOOL}, {AM_U32, AM_I64, AM_I64},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    CHECK(am_result_type(cases[i].a, cases[i].b) == cases[i].want &&
              am_result_type(cases[i].b, cases[i].a) == cases[i].want,
          "promote %s,%s", am_dtype_name(cases[i].a),
          am_dtype_name(cases[i].b));
  }
}

static void test_half_conversions(void) {
  struct {
    float f;
    uint16_t h;
  } f16[] = {
      {1.0f, 0x3c00},           {-2.0f, 0xc000},         {65504.0f, 0x7bff},
      {65520.0f, 0x7c00},       {5.9604645e-8f, 0x0001}, {0.0f, 0x0000},
      {-0.0f, 0x8000},          {6.1035156e-5f, 0x0400}, /* smallest normal */
      {1.00048828125f, 0x3c00}, /* halfway 1 and 1+2^-10: to even */
      {1.00146484375f, 0x3c02}, /* halfway, rounds up to even */
  };
  for (size_t i = 0; i < sizeof f16 / sizeof *f16; i++)
    CHECK(am_f32_to_f16(f16[i].f) == f16[i].h, "f32->f16 %g: %#x want %#x",
          f16[i].f, am_f32_to_f16(f16[i].f), f16[i].h);
  for (size_t i = 0; i < 8; i++)
    CHECK(am_f16_to_f32(f16[i].h) == f16[i].f || f16[i].h == 0x7c00,
          "f16->f32 %#x", f16[i].h);
  CHECK(isinf(am_f16_to_f32(0x7c00)) && isnan(am_f16_to_f32(0x7e00)),
        "f16 inf/nan");
  CHECK(isnan(am_f16_to_f32(am_f32_to_f16(NAN))), "f16 nan round trip");
  /* Every finite half survives f16 -> f32 -> f16. */
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00) continue;
    if (am_f32_to_f16(am_f16_to_f32((uint16_t)h)) != h) bad++;
  }
  CHECK(bad == 0, "%d halves did not round-trip", bad);
  CHECK(am_f32_to_bf16(1.0f) == 0x3f80 && am_bf16_to_f32(0x3f80) == 1.0f,
        "bf16 one");
  CHECK(am_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 halfway to even");
  CHECK(am_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 halfway up to even");
  CHECK(isnan(am_bf16_to_f32(am_f32_to_bf16(NAN))), "bf16 nan");
}

/* -------------------------------------------------------- arrays, errors */

static int g_dtor_calls;
static void count_dtor(void *ctx) {
  g_dtor_calls += *(int *)ctx;
}

static void test_creation_and_ownership(void) {
  float src[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[] = {2, 3};
  am_array a = am_array_new_data(src, shape, 2, AM_F32);
  src[0] = 100; /* copied: the array must not see this */
  double want[6] = {1, 2, 3, 4, 5, 6};
  t_expect(a, want, 6, 0, 0, "new_data copies");
  CHECK(am_array_ndim(a) == 2 && am_array_dim(a, -1) == 3 &&
            am_array_size(a) == 6 && am_array_dtype(a) == AM_F32,
        "accessors");
  CHECK(am_array_data(a) && ((const float *)am_array_data(a))[1] == 2,
        "data pointer");
  am_array_free(a);

  /* Borrowed data: destructor runs once, when the last reference goes —
   * including references held by graph nodes built on it. */
  int one = 1;
  g_dtor_calls = 0;
  am_array b =
      am_array_new_data_managed(src, shape, 2, AM_F32, count_dtor, &one);
  am_array c = am_astype(b, AM_F64);
  am_array_free(b);
  CHECK(g_dtor_calls == 0, "dtor ran while a node still needs the data");
  double want2[6] = {100, 2, 3, 4, 5, 6};
  t_expect(c, want2, 6, 0, 0, "borrowed data read through a node");
  am_array_free(c);
  CHECK(g_dtor_calls == 1, "dtor calls %d, want 1", g_dtor_calls);
  /* Ownership passes even when creation fails. */
  int64_t bad_shape[] = {-1};
  am_array e =
      am_array_new_data_managed(src, bad_shape, 1, AM_F32, count_dtor, &one);
  CHECK(g_dtor_calls == 2, "dtor not run on failed creation");
  t_expect_error(e, AM_ERR_SHAPE, "am_array_new_data_managed", "bad shape");
  am_array_free(e);
  am_array_free(NULL); /* no-op */

  /* Scalars: weak ones promote like Python scalars. */
  am_array f = am_float(0.5), i = am_int(3), big = am_int(1ll << 40);
  CHECK(am_array_ndim(f) == 0 && am_array_dtype(f) == AM_F32 &&
            am_array_dtype(i) == AM_I32 && am_array_dtype(big) == AM_I64,
        "scalar dtypes");
  double half = 0.5, three = 3, two40 = (double)(1ll << 40);
  t_expect(f, &half, 1, 0, 0, "am_float");
  t_expect(i, &three, 1, 0, 0, "am_int");
  t_expect(big, &two40, 1, 0, 0, "am_int 64-bit");
  am_array_free(f);
  am_array_free(i);
  am_array_free(big);
}

static void test_errors(void) {
  am_scope_push();
  int64_t shape[] = {2, AM_MAX_DIMS};
  am_array e1 = am_array_new_data(NULL, shape, 2, AM_F32);
  t_expect_error(e1, AM_ERR_INVALID_ARG, "am_array_new_data", "NULL data");
  am_array e2 = am_zeros(shape, AM_MAX_DIMS + 1, AM_F32);
  t_expect_error(e2, AM_ERR_SHAPE, "full", "too many dims");
  am_array e3 = am_arange(0, 10, 0, AM_F32);
  t_expect_error(e3, AM_ERR_INVALID_ARG, "arange", "zero step");
  CHECK(strstr(am_last_error(), "arange") != NULL, "last error: %s",
        am_last_error());
  am_array e4 = am_astype(e3, AM_F64); /* propagates */
  t_expect_error(e4, AM_ERR_INVALID_ARG, "arange", "propagated error");
  am_array e5 = am_astype(NULL, AM_F64);
  t_expect_error(e5, AM_ERR_INVALID_ARG, "astype", "NULL input");
  am_array e6 = am_scalar(1, (am_dtype)99);
  t_expect_error(e6, AM_ERR_DTYPE, "am_scalar", "bad dtype");
  am_clear_error();
  am_array list[] = {am_zeros(shape, 1, AM_F32), e4};
  CHECK(am_eval(list, 2) == AM_ERR_INVALID_ARG, "eval reports the error");
  CHECK(strstr(am_last_error(), "arange"), "eval message: %s", am_last_error());
  CHECK(am_eval(NULL, 0) == AM_OK, "eval of nothing");
  am_array nul = NULL;
  CHECK(am_eval(&nul, 1) == AM_ERR_INVALID_ARG, "eval NULL");
  double buf[4];
  CHECK(am_array_read(list[0], AM_F64, buf, 4) == AM_ERR_SHAPE,
        "read size mismatch");
  CHECK(am_array_read(list[0], AM_F64, NULL, 2) == AM_ERR_INVALID_ARG,
        "read NULL dst");
  CHECK(!strcmp(am_status_str(AM_ERR_OOM), "out of memory") &&
            !strcmp(am_status_str((am_status)1000), "unknown status"),
        "status strings");
  am_scope_pop();
}

static int g_cb_calls;
static void on_error(am_status s, const char *msg, void *user) {
  (void)s;
  (void)msg;
  g_cb_calls += *(int *)user;
}

static void test_error_callback(void) {
  int one = 1;
  am_set_error_callback(on_error, &one);
  am_array e = am_arange(0, 1, 0, AM_F32);
  am_array_free(e);
  am_set_error_callback(NULL, NULL);
  CHECK(g_cb_calls >= 1, "callback not called");
}

/* --------------------------------------------------- creation op values */

static void test_creation_ops(void) {
  am_scope_push();
  int64_t shape[] = {2, 2};
  double w1[4] = {7, 7, 7, 7};
  t_expect(am_full(shape, 2, 7, AM_I32), w1, 4, 0, 0, "full i32");
  double w0[4] = {0};
  t_expect(am_zeros(shape, 2, AM_BF16), w0, 4, 0, 0, "zeros bf16");
  double wo[4] = {1, 1, 1, 1};
  t_expect(am_ones(shape, 2, AM_U8), wo, 4, 0, 0, "ones u8");
  double wa[5] = {-1, -0.5, 0, 0.5, 1};
  t_expect(am_arange(-1, 1.25, 0.5, AM_F32), wa, 5, 0, 0, "arange");
  double wd[3] = {3, 1, -1};
  t_expect(am_arange(3, -2, -2, AM_I64), wd, 3, 0, 0, "arange down");
  am_array empty = am_arange(3, 3, 1, AM_F32);
  CHECK(am_array_size(empty) == 0 && am_eval(&empty, 1) == AM_OK,
        "empty arange");
  am_array like = am_full_like(am_arange(0, 3, 1, AM_I32), 2.5, AM_DTYPE_COUNT);
  double wl[3] = {2, 2, 2}; /* 2.5 truncates into int32 */
  t_expect(like, wl, 3, 0, 0, "full_like keeps dtype");
  CHECK(am_array_dtype(am_zeros_like(like, AM_F16)) == AM_F16,
        "zeros_like dtype");
  int64_t zshape[] = {0, 3};
  am_array z = am_ones(zshape, 2, AM_F32);
  CHECK(am_eval(&z, 1) == AM_OK && am_array_size(z) == 0, "empty full");
  /* f16 store saturates to inf like a real cast. */
  double winf = INFINITY;
  t_expect(am_full(NULL, 0, 1e6, AM_F16), &winf, 1, 0, 0, "f16 overflow");
  am_scope_pop();
}

/* ------------------------------------------------ read, print, strides */

static void test_read_and_views(void) {
  am_scope_push();
  am_array a = am_arange(0, 6, 1, AM_I32);
  /* A transposed view of a 2x3 reshaped by hand: strides (1, 3). */
  int64_t sh[] = {3, 2}, st[] = {1, 3};
  am_array t = t_view(a, sh, 2, st, 0);
  double want[6] = {0, 3, 1, 4, 2, 5};
  t_expect(t, want, 6, 0, 0, "transposed read");
  CHECK(am_array_data(t) == NULL, "non-contiguous data pointer");
  float f[6];
  CHECK(am_array_read(t, AM_F32, f, 6) == AM_OK && f[1] == 3 && f[5] == 5,
        "read converts");
  /* A copy through astype walks the strides. */
  t_expect(am_astype(t, AM_F16), want, 6, 0, 0, "astype of a view");
  /* Broadcast view with a zero stride and an offset. */
  int64_t bsh[] = {2, 3}, bst[] = {0, 1};
  t_expect(am_astype(t_view(a, bsh, 2, bst, 2), AM_F64),
           (double[]){2, 3, 4, 2, 3, 4}, 6, 0, 0, "broadcast view");
  /* Negative stride (reversed) view. */
  int64_t rsh[] = {6}, rst[] = {-1};
  t_expect(am_astype(t_view(a, rsh, 1, rst, 5), AM_I64),
           (double[]){5, 4, 3, 2, 1, 0}, 6, 0, 0, "reversed view");
  FILE *tmp = tmpfile();
  CHECK(tmp && am_array_print(t, tmp) == AM_OK, "print");
  if (tmp) {
    char line[128] = {0};
    rewind(tmp);
    CHECK(fgets(line, sizeof line, tmp) && !strncmp(line, "[[0, 3],", 8),
          "print layout: %s", line);
    fclose(tmp);
  }
  am_scope_pop();
}

/* ------------------------------------------------- scopes and memory */

static void test_scopes_and_memory(void) {
  am_memory_stats base = am_memory_get_stats();
  int64_t n = 1 << 20; /* 4 MiB of f32 */
  am_array kept;
  am_scope_push();
  {
    am_array x = am_arange(0, (double)n, 1, AM_F32);
    am_scope_push(); /* nested scope: its arrays die first */
    am_array y = am_astype(x, AM_F64);
    kept = am_keep(am_astype(y, AM_F32));
    am_scope_pop();
  }
  am_scope_pop();
  /* The whole chain is alive only through `kept`'s node now. */
  am_memory_reset_peak();
  CHECK(am_eval(&kept, 1) == AM_OK, "eval chain");
  am_memory_stats after = am_memory_get_stats();
  /* arange (4 MiB) + f64 copy (8 MiB) + result (4 MiB) at most at once;
   * the intermediates are gone after eval. */
  CHECK(after.peak_bytes - base.active_bytes <= (size_t)18 << 20,
        "peak %zu bytes", after.peak_bytes - base.active_bytes);
  CHECK(after.active_bytes - base.active_bytes <= (size_t)5 << 20,
        "intermediates not freed: %zu active",
        after.active_bytes - base.active_bytes);
  am_array s3 = am_astype(kept, AM_F32);
  CHECK(am_array_size(s3) == n, "size");
  am_array_free(s3);
  CHECK(am_array_read(kept, AM_F32, NULL, 0) == AM_ERR_SHAPE, "read guard");
  am_array_free(kept);
  am_memory_stats end = am_memory_get_stats();
  CHECK(end.active_bytes == base.active_bytes, "leaked %zd bytes",
        (ssize_t)(end.active_bytes - base.active_bytes));
  /* Pool: the same size again is served from the pool. */
  am_array a1 = am_zeros((int64_t[]){n}, 1, AM_F32);
  CHECK(am_eval(&a1, 1) == AM_OK, "eval a1");
  am_array_free(a1);
  uint64_t reuses = am_memory_get_stats().n_reuses;
  am_array a2 = am_zeros((int64_t[]){n}, 1, AM_F32);
  CHECK(am_eval(&a2, 1) == AM_OK, "eval a2");
  CHECK(am_memory_get_stats().n_reuses == reuses + 1, "pool reuse");
  am_array_free(a2);
  am_memory_clear_cache();
  CHECK(am_memory_get_stats().pooled_bytes == 0, "clear cache");
}

static void test_shared_subgraph_and_siblings(void) {
  am_scope_push();
  am_array x = am_arange(0, 4, 1, AM_F32);
  am_array y = am_astype(x, AM_F64);
  am_array z1 = am_astype(y, AM_I32), z2 = am_astype(y, AM_F16);
  am_array both[] = {z1, z2};
  CHECK(am_eval(both, 2) == AM_OK, "eval both");
  CHECK(am_array_is_evaluated(y) && am_array_is_evaluated(x),
        "held intermediates stay readable");
  double want[4] = {0, 1, 2, 3};
  t_expect(y, want, 4, 0, 0, "shared input");
  t_expect(z2, want, 4, 0, 0, "second consumer");
  am_scope_pop();
}

static void test_deep_chain(void) {
  /* 100k nodes: ordering and teardown must not recurse. */
  int n = t_quick() ? 20000 : 100000;
  am_array x = am_arange(0, 3, 1, AM_F32);
  for (int i = 0; i < n; i++) {
    am_array y = am_astype(x, (i & 1) ? AM_F32 : AM_F64);
    am_array_free(x);
    x = y;
  }
  double want[3] = {0, 1, 2};
  t_expect(x, want, 3, 0, 0, "deep chain");
  am_array_free(x);
  /* Same depth, freed without ever evaluating. */
  x = am_arange(0, 3, 1, AM_F32);
  for (int i = 0; i < n; i++) {
    am_array y = am_astype(x, AM_F32);
    am_array_free(x);
    x = y;
  }
  am_array_free(x);
  CHECK(1, "freed");
}

/* ------------------------------------------------------- thread pool */

typedef struct {
  atomic_int *hits;
} hit_ctx;

static void mark(void *c, int64_t b, int64_t e) {
  hit_ctx *h = c;
  for (int64_t i = b; i < e; i++)
    atomic_fetch_add(&h->hits[i], 1);
}

static void nested(void *c, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i++)
    am_parallel_for(4, 1, mark, c);
}

static int check_cover(int64_t n, int64_t grain) {
  atomic_int *hits = calloc((size_t)n + 1, sizeof *hits);
  hit_ctx h = {hits};
  am_parallel_for(n, grain, mark, &h);
  int ok = 1;
  for (int64_t i = 0; i < n; i++)
    ok &= hits[i] == 1;
  free(hits);
  return ok;
}

static void *pool_user(void *arg) {
  int *ok = arg;
  for (int r = 0; r < 200; r++)
    *ok &= check_cover(1000 + r, 7);
  return NULL;
}

static void test_threadpool(void) {
  int64_t sizes[] = {0, 1, 2, 3, 17, 1000, 100003};
  for (int t = 1; t <= 3; t++) {
    am_set_num_threads(t);
    CHECK(am_get_num_threads() == t, "threads %d", t);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
      CHECK(check_cover(sizes[i], 1) && check_cover(sizes[i], 64),
            "cover n=%lld threads=%d", (long long)sizes[i], t);
  }
  atomic_int hits[4] = {0};
  hit_ctx h = {hits};
  am_parallel_for(8, 1, nested, &h); /* nested calls run inline */
  CHECK(hits[0] == 8 && hits[3] == 8, "nested");
  /* Two user threads sharing the pool. */
  int ok1 = 1, ok2 = 1;
  pthread_t t1, t2;
  pthread_create(&t1, NULL, pool_user, &ok1);
  pthread_create(&t2, NULL, pool_user, &ok2);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  CHECK(ok1 && ok2, "concurrent users");
  am_set_num_threads(0); /* back to the default */
}

/* ------------------------------------------------------------ iterator */

typedef struct {
  int64_t rows;
  int64_t elems;
} count_ctx;

static void count_row(void *c, int64_t n, char **p, const int64_t *s) {
  count_ctx *k = c;
  k->rows++;
  k->elems += n;
}

static void test_iter_collapse(void) {
  /* A contiguous 4-d array collapses to one row; a transposed one does
   * not; a broadcast axis keeps its own loop. */
  int64_t shape[] = {2, 3, 4, 5}, cs[4], ts[] = {1, 2, 6, 24};
  am_contig_strides(shape, 4, cs);
  size_t es[2] = {4, 4};
  char *base[2] = {NULL, NULL};
  const int64_t *st[2] = {cs, cs};
  am_iter it;
  am_iter_init(&it, shape, 4, 2, base, st, es);
  CHECK(it.ndim == 1 && it.shape[0] == 120, "collapse contiguous: %d dims",
        it.ndim);
  const int64_t *st2[2] = {cs, ts};
  am_iter_init(&it, shape, 4, 2, base, st2, es);
  CHECK(it.ndim == 4, "no collapse when transposed: %d", it.ndim);
  count_ctx k = {0, 0};
  am_iter_run(&it, 0, am_iter_rows(&it), count_row, &k);
  CHECK(k.rows == 24 && k.elems == 120, "rows %lld elems %lld",
        (long long)k.rows, (long long)k.elems);
  int64_t bs[] = {0, 5, 1, 0}; /* broadcast on axes 0 and 3 */
  int64_t bshape[] = {2, 3, 5, 4};
  int64_t cs2[4];
  am_contig_strides(bshape, 4, cs2);
  const int64_t *st3[2] = {cs2, bs};
  am_iter_init(&it, bshape, 4, 2, base, st3, es);
  CHECK(it.ndim == 3, "partial collapse: %d", it.ndim);
}

/* The profiler counts each evaluated primitive once per node. */
static void test_profile(void) {
  am_profile_enable(true);
  am_profile_reset();
  am_array a = am_ones((int64_t[]){4}, 1, AM_F32);
  am_array b = am_exp(am_neg(a));
  CHECK(!am_eval(&b, 1), "%s", am_last_error());
  am_profile_enable(false);
  am_array c = am_exp(b); /* not counted */
  CHECK(!am_eval(&c, 1), "%s", am_last_error());
  char buf[4096] = "";
  FILE *f = tmpfile();
  if (f) {
    am_profile_print(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
  }
  const char *e = strstr(buf, "\nexp ");
  CHECK(e && strtol(e + 5, NULL, 10) == 1, "profile table:\n%s", buf);
  CHECK(strstr(buf, "\nneg ") != NULL, "neg missing:\n%s", buf);
  am_array_free(a);
  am_array_free(b);
  am_array_free(c);
}

int main(void) {
  test_profile();
  test_dtypes();
  test_half_conversions();
  test_creation_and_ownership();
  test_errors();
  test_error_callback();
  test_creation_ops();
  test_read_and_views();
  test_scopes_and_memory();
  test_shared_subgraph_and_siblings();
  test_deep_chain();
  test_threadpool();
  test_iter_collapse();
  return t_summary();
}
