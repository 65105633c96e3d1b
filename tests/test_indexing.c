/*
 * test_indexing — take, take_along_axis, put_along_axis, slice_update,
 * dynamic_slice, dynamic_slice_update: NumPy goldens (each run on
 * contiguous, column-major and stride-2 inputs), hand-computed cases,
 * errors, in-place writes (donation) and a KV-cache decode loop.
 */
#include "test_internal.h"

/* ------------------------------------------------------------ layouts */

static am_array layout(am_array x, int mode) {
  return mode == 0 ? x : mode == 1 ? t_reversed_layout(x) : t_spread(x);
}

/* ------------------------------------------------------------ goldens */

#define END_MARK 1e18
static int64_t P(const t_garr *p, int i) {
  return p->v[i] >= END_MARK ? AM_END : (int64_t)p->v[i];
}

static am_array garr(const t_gcase *c, const char *key, int mode) {
  const t_garr *a = t_gcase_arr(c, key);
  return a ? layout(t_garr_array(a), mode)
           : am_error_array(AM_ERR_IO, "missing");
}

static void run_golden_case(const t_gcase *c, int mode) {
  const t_garr *p = t_gcase_arr(c, "p");
  if (!p) return;
  char what[192];
  snprintf(what, sizeof what, "%s (layout %d)", c->name, mode);
  am_scope_push();
  am_array x = garr(c, "x", mode), y;
  int axes[AM_MAX_DIMS];
  int64_t a[AM_MAX_DIMS], b[AM_MAX_DIMS], s[AM_MAX_DIMS];
  if (!strncmp(c->name, "take_", 5)) {
    y = am_take(x, garr(c, "idx", mode), (int)P(p, 0));
  } else if (!strncmp(c->name, "tala_", 5)) {
    y = am_take_along_axis(x, garr(c, "idx", mode), (int)P(p, 0));
  } else if (!strncmp(c->name, "pala_", 5)) {
    y = am_put_along_axis(x, garr(c, "idx", mode), garr(c, "v", mode),
                          (int)P(p, 0));
  } else if (!strncmp(c->name, "slu_", 4)) {
    int n = (int)P(p, 0);
    for (int i = 0; i < n; i++) {
      a[i] = P(p, 1 + i);
      b[i] = P(p, 1 + n + i);
      s[i] = P(p, 1 + 2 * n + i);
    }
    y = am_slice_update(x, garr(c, "u", mode), a, b, s, n);
  } else if (!strncmp(c->name, "dsl_", 4)) {
    int n = (int)P(p, 0);
    for (int i = 0; i < n; i++) {
      axes[i] = (int)P(p, 1 + i);
      a[i] = P(p, 1 + n + i);
    }
    y = am_dynamic_slice(x, garr(c, "start", mode), axes, n, a);
  } else if (!strncmp(c->name, "dsu_", 4)) {
    int n = (int)P(p, 0);
    for (int i = 0; i < n; i++)
      axes[i] = (int)P(p, 1 + i);
    y = am_dynamic_slice_update(x, garr(c, "u", mode), garr(c, "start", mode),
                                axes, n);
  } else {
    CHECK(0, "unknown golden case %s", c->name);
    am_scope_pop();
    return;
  }
  t_expect_garr(y, t_gcase_arr(c, "out"), 0, 0, what);
  am_scope_pop();
}

static void test_goldens(void) {
  t_golden *g = t_golden_load("golden/indexing.txt");
  if (!g) return;
  CHECK(g->n >= 100, "only %d golden cases", g->n);
  for (int mode = 0; mode < 3; mode++)
    for (int i = 0; i < g->n; i++)
      run_golden_case(&g->cases[i], mode);
  t_golden_free(g);
}

/* ----------------------------------------------------- hand-computed */

static am_array vec_i64(const int64_t *v, int64_t n) {
  return am_array_new_data(v, &n, 1, AM_I64);
}

static void test_hand(void) {
  am_scope_push();
  /* x = [[0,1,2],[3,4,5]] */
  int64_t sh[] = {2, 3};
  am_array x = t_arr((double[]){0, 1, 2, 3, 4, 5}, sh, 2, AM_F32);
  t_expect(am_take(x, vec_i64((int64_t[]){2, -3, -1}, 3), 1),
           (double[]){2, 0, 2, 5, 3, 5}, 6, 0, 0, "take ax1");
  t_expect(am_take(x, vec_i64((int64_t[]){-1}, 1), 0), (double[]){3, 4, 5}, 3,
           0, 0, "take ax0 neg");
  /* 0-d index: the axis disappears */
  am_array i0 = am_scalar(1, AM_I8);
  am_array y = am_take(x, i0, -1);
  t_expect_shape(y, (int64_t[]){2}, 1, "take 0-d idx shape");
  t_expect(y, (double[]){1, 4}, 2, 0, 0, "take 0-d idx");
  /* 1-d x with 0-d index: a 0-d result */
  y = am_take(am_arange(10, 15, 1, AM_I64), am_scalar(-2, AM_I32), 0);
  t_expect_shape(y, NULL, 0, "take to 0-d");
  t_expect(y, (double[]){13}, 1, 0, 0, "take to 0-d value");
  /* take_along_axis: per-row indices */
  int64_t ish[] = {2, 2};
  am_array idx =
      am_astype(t_arr((double[]){2, 0, 1, 1}, ish, 2, AM_F64), AM_U32);
  t_expect(am_take_along_axis(x, idx, 1), (double[]){2, 0, 4, 4}, 4, 0, 0,
           "take_along_axis");
  /* put_along_axis: duplicates along the axis, last write wins */
  am_array v = t_arr((double[]){10, 20, 30, 40}, ish, 2, AM_F32);
  am_array idx2 =
      am_astype(t_arr((double[]){1, 1, -1, 0}, ish, 2, AM_F64), AM_I32);
  t_expect(am_put_along_axis(x, idx2, v, 1), (double[]){0, 20, 2, 40, 4, 30}, 6,
           0, 0, "put_along_axis dup");
  /* slice_update: x[1, ::-2] = [7, 8] -> row 1 is [8, 4, 7] */
  am_array u = t_arr((double[]){7, 8}, (int64_t[]){2}, 1, AM_F32);
  t_expect(am_slice_update(x, u, (int64_t[]){1, AM_END}, (int64_t[]){2, AM_END},
                           (int64_t[]){1, -2}, 2),
           (double[]){0, 1, 2, 8, 4, 7}, 6, 0, 0, "slice_update neg step");
  /* update of another dtype is cast (MLX): 2.7 -> 2 in int32 */
  am_array xi = am_astype(x, AM_I32);
  t_expect(am_slice_update(xi, am_scalar(-2.7, AM_F64), (int64_t[]){0},
                           (int64_t[]){1}, NULL, 1),
           (double[]){-2, -2, -2, 3, 4, 5}, 6, 0, 0, "slice_update cast");
  /* 0-d x: n = 0 replaces the whole value */
  t_expect(am_slice_update(am_scalar(1, AM_F32), am_scalar(9, AM_F32), NULL,
                           NULL, NULL, 0),
           (double[]){9}, 1, 0, 0, "slice_update 0-d");
  /* dynamic_slice: clamped start [1, 5] with sizes [1, 2] -> x[1, 1:3] */
  am_array st = vec_i64((int64_t[]){1, 5}, 2);
  y = am_dynamic_slice(x, st, (int[]){0, -1}, 2, (int64_t[]){1, 2});
  t_expect_shape(y, (int64_t[]){1, 2}, 2, "dynamic_slice shape");
  t_expect(y, (double[]){4, 5}, 2, 0, 0, "dynamic_slice clamp");
  /* extreme starts clamp without overflow */
  st = vec_i64((int64_t[]){INT64_MIN, INT64_MAX}, 2);
  t_expect(am_dynamic_slice(x, st, (int[]){0, 1}, 2, (int64_t[]){2, 1}),
           (double[]){2, 5}, 2, 0, 0, "dynamic_slice extreme");
  /* 0-d x, no axes: start of shape [0] */
  y = am_dynamic_slice(am_scalar(3, AM_F64), vec_i64(NULL, 0), NULL, 0, NULL);
  t_expect(y, (double[]){3}, 1, 0, 0, "dynamic_slice 0-d");
  /* dynamic_slice_update: window [1,2] at column 2 clamps to column 1 */
  am_array w = t_arr((double[]){-1, -2}, (int64_t[]){1, 2}, 2, AM_F32);
  y = am_dynamic_slice_update(x, w, vec_i64((int64_t[]){2}, 1), (int[]){1}, 1);
  CHECK(am_array_status(y) != AM_OK, "non-listed axis must match");
  w = t_arr((double[]){-1, -2, -3, -4}, (int64_t[]){2, 2}, 2, AM_F32);
  y = am_dynamic_slice_update(x, w, vec_i64((int64_t[]){2}, 1), (int[]){1}, 1);
  t_expect(y, (double[]){0, -1, -2, 3, -3, -4}, 6, 0, 0,
           "dynamic_slice_update clamp");
  /* x still holds its values (update ops copy when x lives) */
  t_expect(x, (double[]){0, 1, 2, 3, 4, 5}, 6, 0, 0, "x unchanged");
  am_scope_pop();
}

/* int64 data and indices beyond 2^53 move exactly. */
static void test_exact_int64(void) {
  am_scope_push();
  int64_t big[] = {INT64_MAX, INT64_MIN, (1ll << 53) + 1, -((1ll << 60) + 3)};
  int64_t n = 4;
  am_array x = am_array_new_data(big, &n, 1, AM_I64);
  am_array y = am_take(x, vec_i64((int64_t[]){3, 2, 1, 0, -2}, 5), 0);
  int64_t got[5] = {0};
  CHECK(am_array_read(y, AM_I64, got, 5) == AM_OK, "read");
  CHECK(got[0] == big[3] && got[1] == big[2] && got[2] == big[1] &&
            got[3] == big[0] && got[4] == big[2],
        "take int64 exact");
  y = am_slice_update(x, vec_i64(big, 2), (int64_t[]){2}, (int64_t[]){4}, NULL,
                      1);
  CHECK(am_array_read(y, AM_I64, got, 4) == AM_OK, "read");
  CHECK(got[2] == INT64_MAX && got[3] == INT64_MIN, "slice_update int64 exact");
  am_scope_pop();
}

/* A gather big enough to run on the thread pool, checked element-wise. */
static void test_large(void) {
  am_scope_push();
  t_rng r = {7};
  int64_t rows = 300, cols = 67, m = 2000;
  int64_t xsh[] = {rows, cols};
  am_array x = t_rand(&r, xsh, 2, AM_F32, -1, 1);
  am_array idx = t_rand(&r, &m, 1, AM_I32, -rows, rows - 1);
  am_array y = am_take(x, idx, 0);
  float *xv = malloc(sizeof(float) * rows * cols);
  float *yv = malloc(sizeof(float) * m * cols);
  int32_t *iv = malloc(sizeof(int32_t) * m);
  CHECK(am_array_read(x, AM_F32, xv, rows * cols) == AM_OK &&
            am_array_read(idx, AM_I32, iv, m) == AM_OK &&
            am_array_read(y, AM_F32, yv, m * cols) == AM_OK,
        "large take eval: %s", am_last_error());
  int bad = 0;
  for (int64_t j = 0; j < m; j++) {
    int64_t k = iv[j] < 0 ? iv[j] + rows : iv[j];
    for (int64_t c = 0; c < cols; c++)
      bad += yv[j * cols + c] != xv[k * cols + c];
  }
  CHECK(bad == 0, "large take: %d mismatches", bad);
  /* the same gather through a transposed x, along axis 1 of x^T */
  am_array xt = t_reversed_layout(am_astype(t_transposed(x), AM_F32));
  y = am_take(xt, idx, 1);
  float *zv = malloc(sizeof(float) * m * cols);
  CHECK(am_array_read(y, AM_F32, zv, m * cols) == AM_OK, "read");
  bad = 0;
  for (int64_t c = 0; c < cols; c++)
    for (int64_t j = 0; j < m; j++) {
      int64_t k = iv[j] < 0 ? iv[j] + rows : iv[j];
      bad += zv[c * m + j] != xv[k * cols + c];
    }
  CHECK(bad == 0, "large strided take: %d mismatches", bad);
  /* large put_along_axis: rows in parallel, last write wins per row */
  int64_t psh[] = {rows, 40};
  am_array pidx = t_rand(&r, psh, 2, AM_I64, -cols, cols - 1);
  am_array pv = t_rand(&r, psh, 2, AM_F32, -5, 5);
  y = am_put_along_axis(x, pidx, pv, 1);
  int64_t *pi = malloc(sizeof(int64_t) * rows * 40);
  float *pvv = malloc(sizeof(float) * rows * 40);
  CHECK(am_array_read(pidx, AM_I64, pi, rows * 40) == AM_OK &&
            am_array_read(pv, AM_F32, pvv, rows * 40) == AM_OK &&
            am_array_read(y, AM_F32, yv, rows * cols) == AM_OK,
        "read");
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < 40; j++) {
      int64_t k = pi[i * 40 + j] < 0 ? pi[i * 40 + j] + cols : pi[i * 40 + j];
      xv[i * cols + k] = pvv[i * 40 + j];
    }
  bad = 0;
  for (int64_t i = 0; i < rows * cols; i++)
    bad += yv[i] != xv[i];
  CHECK(bad == 0, "large put_along_axis: %d mismatches", bad);
  free(xv);
  free(yv);
  free(zv);
  free(iv);
  free(pi);
  free(pvv);
  am_scope_pop();
}

/* -------------------------------------------------------------- errors */

static void expect_eval_error(am_array y, const char *op, const char *needle,
                              const char *what) {
  am_status s = am_eval(&y, 1);
  CHECK(s == AM_ERR_INVALID_ARG, "%s: status %s (%s)", what, am_status_str(s),
        am_last_error());
  CHECK(strstr(am_last_error(), op) && strstr(am_last_error(), needle),
        "%s: message '%s' lacks '%s'", what, am_last_error(), needle);
}

static void test_errors(void) {
  am_scope_push();
  int64_t sh[] = {2, 3};
  am_array x = t_arr((double[]){0, 1, 2, 3, 4, 5}, sh, 2, AM_F32);
  am_array i1 = vec_i64((int64_t[]){0, 1}, 2);
  /* index dtypes */
  t_expect_error(am_take(x, am_astype(i1, AM_BOOL), 0), AM_ERR_DTYPE, "take",
                 "bool indices");
  t_expect_error(am_take(x, am_astype(i1, AM_F32), 0), AM_ERR_DTYPE, "take",
                 "float indices");
  t_expect_error(am_take_along_axis(x, am_astype(i1, AM_F16), 0), AM_ERR_DTYPE,
                 "take_along_axis", "f16 indices");
  /* axes */
  t_expect_error(am_take(x, i1, 2), AM_ERR_INVALID_ARG, "take", "axis 2");
  t_expect_error(am_take(x, i1, -3), AM_ERR_INVALID_ARG, "take", "axis -3");
  t_expect_error(am_take(am_scalar(1, AM_F32), i1, 0), AM_ERR_INVALID_ARG,
                 "take", "0-d x");
  t_expect_error(am_put_along_axis(am_scalar(1, AM_F32), am_scalar(0, AM_I32),
                                   am_scalar(1, AM_F32), 0),
                 AM_ERR_INVALID_ARG, "put_along_axis", "0-d x");
  /* shapes */
  t_expect_error(am_take_along_axis(x, i1, 1), AM_ERR_SHAPE, "take_along_axis",
                 "rank mismatch");
  am_array i23 = am_astype(am_zeros((int64_t[]){3, 1}, 2, AM_F32), AM_I32);
  t_expect_error(am_take_along_axis(x, i23, 1), AM_ERR_SHAPE, "take_along_axis",
                 "no broadcast");
  /* put: indices must broadcast *to* x on the other axes */
  am_array i31 = am_astype(am_zeros((int64_t[]){1, 2}, 2, AM_F32), AM_I32);
  t_expect_error(am_put_along_axis(
                     am_zeros((int64_t[]){1, 3}, 2, AM_F32),
                     am_astype(am_zeros((int64_t[]){2, 1}, 2, AM_F32), AM_I32),
                     am_float(1), 1),
                 AM_ERR_SHAPE, "put_along_axis", "idx larger than x");
  t_expect_error(
      am_put_along_axis(x, i31, am_zeros((int64_t[]){3}, 1, AM_F32), 1),
      AM_ERR_SHAPE, "put_along_axis", "values shape");
  /* slice_update */
  t_expect_error(am_slice_update(x, am_float(1), (int64_t[]){0}, (int64_t[]){1},
                                 (int64_t[]){0}, 1),
                 AM_ERR_INVALID_ARG, "slice_update", "step 0");
  t_expect_error(am_slice_update(x, am_float(1), (int64_t[]){0, 0, 0},
                                 (int64_t[]){1, 1, 1}, NULL, 3),
                 AM_ERR_INVALID_ARG, "slice_update", "too many bounds");
  t_expect_error(am_slice_update(x, am_zeros((int64_t[]){2}, 1, AM_F32),
                                 (int64_t[]){0, 0}, (int64_t[]){1, 3}, NULL, 2),
                 AM_ERR_SHAPE, "slice_update", "update shape");
  t_expect_error(am_slice_update(x, am_zeros((int64_t[]){1, 2, 3}, 3, AM_F32),
                                 NULL, NULL, NULL, 0),
                 AM_ERR_SHAPE, "slice_update", "update rank");
  t_expect_error(am_slice_update(x, am_float(1), NULL, NULL, NULL, 1),
                 AM_ERR_INVALID_ARG, "slice_update", "NULL bounds");
  t_expect_error(am_slice_update(x, am_float(1), NULL, NULL, NULL, 17),
                 AM_ERR_INVALID_ARG, "slice_update", "n 17");
  /* dynamic_slice */
  am_array s1 = vec_i64((int64_t[]){0}, 1);
  t_expect_error(am_dynamic_slice(x, s1, (int[]){1}, 1, (int64_t[]){4}),
                 AM_ERR_SHAPE, "dynamic_slice", "size too big");
  t_expect_error(am_dynamic_slice(x, s1, (int[]){1}, 1, (int64_t[]){-1}),
                 AM_ERR_SHAPE, "dynamic_slice", "negative size");
  t_expect_error(am_dynamic_slice(x, i1, (int[]){1}, 1, (int64_t[]){1}),
                 AM_ERR_SHAPE, "dynamic_slice", "start shape");
  t_expect_error(
      am_dynamic_slice(x, am_astype(s1, AM_F32), (int[]){1}, 1, (int64_t[]){1}),
      AM_ERR_DTYPE, "dynamic_slice", "float start");
  t_expect_error(am_dynamic_slice(x, i1, (int[]){1, -1}, 2, (int64_t[]){1, 1}),
                 AM_ERR_INVALID_ARG, "dynamic_slice", "axis twice");
  t_expect_error(am_dynamic_slice(x, s1, (int[]){2}, 1, (int64_t[]){1}),
                 AM_ERR_INVALID_ARG, "dynamic_slice", "bad axis");
  t_expect_error(am_dynamic_slice(x, s1, NULL, 1, NULL), AM_ERR_INVALID_ARG,
                 "dynamic_slice", "NULL axes");
  /* dynamic_slice_update */
  t_expect_error(am_dynamic_slice_update(x, am_zeros((int64_t[]){3}, 1, AM_F32),
                                         s1, (int[]){1}, 1),
                 AM_ERR_SHAPE, "dynamic_slice_update", "rank");
  t_expect_error(am_dynamic_slice_update(x,
                                         am_zeros((int64_t[]){2, 4}, 2, AM_F32),
                                         s1, (int[]){1}, 1),
                 AM_ERR_SHAPE, "dynamic_slice_update", "too big");
  t_expect_error(am_dynamic_slice_update(x,
                                         am_zeros((int64_t[]){2, 1}, 2, AM_F32),
                                         am_astype(s1, AM_BOOL), (int[]){1}, 1),
                 AM_ERR_DTYPE, "dynamic_slice_update", "bool start");
  t_expect_error(am_dynamic_slice_update(x, x, s1, (int[]){0}, -1),
                 AM_ERR_INVALID_ARG, "dynamic_slice_update", "naxes -1");
  /* NULL and error inputs propagate as error arrays */
  CHECK(am_array_status(am_take(NULL, i1, 0)) == AM_ERR_INVALID_ARG, "NULL x");
  am_array bad = am_take(x, i1, 5);
  t_expect_error(am_dynamic_slice_update(bad, x, s1, (int[]){0}, 1),
                 AM_ERR_INVALID_ARG, "take", "error input propagates");
  am_scope_pop();
}

/* Indices out of range fail at eval, naming the index and the axis size. */
static void test_eval_errors(void) {
  am_scope_push();
  int64_t sh[] = {2, 3};
  am_array x = t_arr((double[]){0, 1, 2, 3, 4, 5}, sh, 2, AM_F32);
  expect_eval_error(am_take(x, vec_i64((int64_t[]){0, 3}, 2), 1), "take",
                    "index 3 out of range for axis 1 of size 3", "take 3");
  expect_eval_error(am_take(x, vec_i64((int64_t[]){-3}, 1), 0), "take",
                    "index -3", "take -3");
  expect_eval_error(am_take(x, vec_i64((int64_t[]){INT64_MIN}, 1), 0), "take",
                    "size 2", "take INT64_MIN");
  am_array u = am_astype(am_full((int64_t[]){1}, 1, 4e9, AM_F64), AM_U32);
  expect_eval_error(am_take(x, u, 1), "take", "index 4000000000", "take u32");
  /* an empty axis has no valid index */
  expect_eval_error(
      am_take(am_zeros((int64_t[]){0, 2}, 2, AM_F32), am_scalar(0, AM_U8), 0),
      "take", "size 0", "take from empty axis");
  int64_t ish[] = {2, 1};
  am_array bi = am_astype(t_arr((double[]){1, -4}, ish, 2, AM_F64), AM_I8);
  expect_eval_error(am_take_along_axis(x, bi, 1), "take_along_axis", "index -4",
                    "take_along_axis");
  expect_eval_error(am_put_along_axis(x, bi, am_float(1), 1), "put_along_axis",
                    "index -4", "put_along_axis");
  /* put_along_axis into a dead x: checked before writing in place */
  am_scope_push();
  am_array xd = t_arr((double[]){0, 1, 2, 3, 4, 5}, sh, 2, AM_F32);
  am_array y = am_keep(am_put_along_axis(xd, bi, am_float(1), 1));
  am_scope_pop();
  expect_eval_error(y, "put_along_axis", "index -4", "put dead x");
  am_array_free(y);
  /* nothing is read or written when the walk is empty */
  am_array e = am_take(x, am_zeros((int64_t[]){0}, 1, AM_I32), 1);
  t_expect_shape(e, (int64_t[]){2, 0}, 2, "empty take shape");
  CHECK(am_eval(&e, 1) == AM_OK, "empty take: %s", am_last_error());
  am_scope_pop();
}

/* ------------------------------------------------- in-place (donation) */

static uint64_t donated(void) {
  return am_memory_get_stats().n_donated;
}

/* op(x) with x dead at eval must write into x's buffer and be right. */
static void test_donation(void) {
  int64_t sh[] = {4, 3};
  double xv[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  for (int op = 0; op < 3; op++) {
    am_scope_push();
    am_array x = t_arr(xv, sh, 2, AM_F32);
    CHECK(am_eval(&x, 1) == AM_OK, "eval x");
    const void *xbuf = am_array_data(x);
    static const double want[3][12] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, -1, 10, -1},
        {0, -6, -7, 3, 4, 5, -5, 7, 8, 9, 10, 11},
        {0, 1, 2, 3, 4, 5, -1, -2, -3, 9, 10, 11}};
    am_array y;
    if (op == 0) {
      y = am_slice_update(x, am_float(-1), (int64_t[]){-1, 0},
                          (int64_t[]){AM_END, AM_END}, (int64_t[]){1, 2}, 2);
    } else if (op == 1) { /* rows 2, 0, -4 of columns 0, 1, 2 */
      int64_t ish[] = {1, 3};
      am_array idx =
          am_astype(t_arr((double[]){2, 0, -4}, ish, 2, AM_F64), AM_I32);
      y = am_put_along_axis(x, idx,
                            t_arr((double[]){-5, -6, -7}, ish, 2, AM_F64), 0);
    } else {
      am_array w = t_arr((double[]){-1, -2, -3}, (int64_t[]){1, 3}, 2, AM_F32);
      y = am_dynamic_slice_update(x, w, vec_i64((int64_t[]){2}, 1), (int[]){0},
                                  1);
    }
    y = am_keep(y);
    am_scope_pop(); /* x dies: only y's node holds it */
    uint64_t before = donated();
    CHECK(am_eval(&y, 1) == AM_OK, "donation op %d: %s", op, am_last_error());
    CHECK(donated() > before, "op %d did not write in place", op);
    CHECK(am_array_data(y) == xbuf, "op %d: output is not x's buffer", op);
    t_expect(y, want[op], 12, 0, 0, "donated result");
    am_array_free(y);
  }
}

/* ---------------------------------------------------------- KV cache */

/* A decode loop: every step writes one position of the cache with a graph
 * of the same structure and params (the position is data), in place. */
static void test_kv_cache(void) {
  enum { L = 8, H = 2, D = 3, STEPS = L + 2 };
  int64_t csh[] = {L, H, D}, ksh[] = {1, H, D}, one = 1;
  am_array cache = am_zeros(csh, 3, AM_F32);
  CHECK(am_eval(&cache, 1) == AM_OK, "eval cache");
  unsigned char params0[256];
  size_t psize = 0;
  uint64_t before = donated();
  for (int t = 0; t < STEPS; t++) {
    am_scope_push();
    int32_t pos = t;
    am_array start = am_array_new_data(&pos, &one, 1, AM_I32);
    am_array kv = am_full(ksh, 3, t + 1, AM_F32);
    am_array next =
        am_keep(am_dynamic_slice_update(cache, kv, start, (int[]){0}, 1));
    am_node *nd = next->node;
    CHECK(nd && nd->op == AM_OP_DYNAMIC_SLICE_UPDATE, "node recorded");
    if (nd && t == 0) {
      psize = nd->params_size;
      memcpy(params0, nd->params, psize);
    } else if (nd) {
      CHECK(nd->params_size == psize && !memcmp(params0, nd->params, psize),
            "step %d: params differ: graph not reusable", t);
    }
    /* the window just written, read back as a view */
    am_array win =
        am_keep(am_dynamic_slice(next, start, (int[]){-3}, 1, (int64_t[]){1}));
    am_scope_pop();
    am_array_free(cache); /* x dead: the write goes in place */
    am_array both[2] = {next, win};
    CHECK(am_eval(both, 2) == AM_OK, "step %d: %s", t, am_last_error());
    double wv[H * D];
    for (int i = 0; i < H * D; i++)
      wv[i] = t + 1;
    t_expect(win, wv, H * D, 0, 0, "window after write");
    am_array_free(win);
    cache = next;
  }
  /* positions past the end clamp to the last row: L..STEPS-1 land on L-1 */
  double want[L * H * D];
  for (int p = 0; p < L; p++)
    for (int i = 0; i < H * D; i++)
      want[p * H * D + i] = p == L - 1 ? STEPS : p + 1;
  t_expect(cache, want, L * H * D, 0, 0, "kv cache");
  CHECK(donated() - before >= STEPS, "kv cache: %llu donations for %d steps",
        (unsigned long long)(donated() - before), STEPS);
  am_array_free(cache);
}

/* embedding = rows of the table, by hand. */
static void test_embedding(void) {
  am_scope_push();
  double tv[6] = {1, 2, 3, 4, 5, 6};
  am_array table = t_arr(tv, (int64_t[]){3, 2}, 2, AM_BF16);
  int32_t idv[4] = {2, 0, -1, 1};
  am_array ids = am_array_new_data(idv, (int64_t[]){2, 2}, 2, AM_I32);
  am_array e = am_embedding(table, ids);
  t_expect_shape(e, (int64_t[]){2, 2, 2}, 3, "embedding shape");
  double want[8] = {5, 6, 1, 2, 5, 6, 3, 4};
  t_expect(e, want, 8, 0, 0, "embedding rows");
  t_expect_error(am_embedding(ids, ids), AM_ERR_SHAPE, "embedding",
                 "integer table");
  am_scope_pop();
}

int main(void) {
  test_embedding();
  test_goldens();
  test_hand();
  test_exact_int64();
  test_large();
  test_errors();
  test_eval_errors();
  test_donation();
  test_kv_cache();
  return t_summary();
}
