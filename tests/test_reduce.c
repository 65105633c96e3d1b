/*
 * test_reduce — the reduction family: sum, mean, prod, max, min,
 * logsumexp, all, any, argmax, argmin, cumsum.
 *
 *  - golden cases from NumPy (scripts/golden_reduce.py), each run on a
 *    contiguous input and on two strided layouts of the same values
 *    (permuted + gapped, and reversed axes with negative strides);
 *  - hand-computed edge cases: wrapping, NaN/inf, empty, 0-d, keepdims;
 *  - a randomized comparison with a naive reference over random shapes,
 *    axes and layouts;
 *  - large arrays (accuracy of 16M-element float32 sums, and the split
 *    paths with several threads);
 *  - errors: bad axes, empty axes for max/argmax, NULL and error inputs.
 */
#include "test_internal.h"

/* ---------------------------------------------------------------- helpers */

typedef am_array (*red_fn)(am_array, const int *, int, bool);

static const struct {
  const char *name;
  red_fn fn;
} g_red[] = {{"sum", am_sum}, {"mean", am_mean}, {"prod", am_prod},
             {"max", am_max}, {"min", am_min},   {"logsumexp", am_logsumexp},
             {"all", am_all}, {"any", am_any}};

static red_fn red_by_name(const char *name) {
  for (size_t i = 0; i < sizeof g_red / sizeof *g_red; i++)
    if (!strcmp(g_red[i].name, name)) return g_red[i].fn;
  return NULL;
}

/* Tolerances by output dtype: floats are compared with a reference made
 * in float64 and rounded once, so allow about one unit in the last place
 * of the output type. */
static void tol_for(am_dtype t, double *rtol, double *atol) {
  switch (t) {
  case AM_F16:
    *rtol = 2e-3, *atol = 1e-3;
    break;
  case AM_BF16:
    *rtol = 1.6e-2, *atol = 1e-2;
    break;
  case AM_F32:
    *rtol = 1e-5, *atol = 1e-6;
    break;
  case AM_F64:
    *rtol = 1e-12, *atol = 1e-12;
    break;
  default:
    *rtol = 0, *atol = 0;
    break;
  }
}

/* The logical values v (row-major over shape) as an array of dtype laid
 * out in memory by `mode`:
 *   0: contiguous;
 *   1: axes in reverse physical order, innermost step 2, offset 3;
 *   2: natural order, but even axes run backwards (negative strides).
 * Memory outside the view holds 99, so reading it shows in the result. */
static am_array make_layout(const double *v, const int64_t *shape, int nd,
                            am_dtype dt, int mode) {
  if (mode == 0 || nd == 0) return t_arr(v, shape, nd, dt);
  int64_t n = 1, phys[AM_MAX_DIMS], st[AM_MAX_DIMS];
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  int64_t step = mode == 1 ? 2 : 1, off = mode == 1 ? 3 : 0;
  for (int k = nd - 1; k >= 0; k--) { /* physical position k holds axis */
    int ax = mode == 1 ? nd - 1 - k : k;
    phys[ax] = step;
    step *= shape[ax] ? shape[ax] : 1;
  }
  int64_t len = step + off + 1;
  for (int i = 0; i < nd; i++) {
    st[i] = phys[i];
    if (mode == 2 && i % 2 == 0) {
      st[i] = -phys[i];
      if (shape[i]) off += (shape[i] - 1) * phys[i];
    }
  }
  double *buf = malloc((size_t)len * sizeof *buf);
  for (int64_t i = 0; i < len; i++)
    buf[i] = 99;
  for (int64_t i = 0; i < n; i++) { /* logical index -> position */
    int64_t rem = i, pos = off;
    for (int d = nd - 1; d >= 0; d--) {
      pos += (rem % shape[d]) * st[d];
      rem /= shape[d];
    }
    buf[pos] = v[i];
  }
  am_array base = t_arr(buf, &len, 1, dt);
  free(buf);
  return t_view(base, shape, nd, st, off);
}

/* ------------------------------------------------------------ golden data */

static am_array run_golden(const char *op, am_array x, const t_garr *p) {
  const double *pv = p->v;
  if (!strcmp(op, "argmax")) return am_argmax(x, (int)pv[0], pv[1] != 0);
  if (!strcmp(op, "argmin")) return am_argmin(x, (int)pv[0], pv[1] != 0);
  if (!strcmp(op, "cumsum"))
    return am_cumsum(x, (int)pv[0], pv[1] != 0, pv[2] != 0);
  int axes[AM_MAX_DIMS], na = (int)p->n - 2;
  for (int i = 0; i < na; i++)
    axes[i] = (int)pv[2 + i];
  red_fn fn = red_by_name(op);
  if (!fn) return am_error_array(AM_ERR_INVALID_ARG, "unknown op %s", op);
  return fn(x, pv[0] != 0 ? NULL : axes, na, pv[1] != 0);
}

static void test_golden(void) {
  t_golden *g = t_golden_load("golden/reduce.txt");
  if (!g) return;
  int ran = 0;
  for (int c = 0; c < g->n; c++) {
    const t_gcase *gc = &g->cases[c];
    char op[sizeof gc->name];
    snprintf(op, sizeof op, "%s", gc->name);
    char *dot = strchr(op, '.');
    if (dot) *dot = 0;
    const t_garr *x = t_gcase_arr(gc, "x"), *p = t_gcase_arr(gc, "p"),
                 *y = t_gcase_arr(gc, "y");
    if (!x || !p || !y) continue;
    double rtol, atol;
    tol_for(y->dtype, &rtol, &atol);
    for (int mode = 0; mode < 3; mode++) {
      am_scope_push();
      am_array xa = make_layout(x->v, x->shape, x->ndim, x->dtype, mode);
      am_array out = run_golden(op, xa, p);
      char what[160];
      snprintf(what, sizeof what, "%s (layout %d)", gc->name, mode);
      t_expect_garr(out, y, rtol, atol, what);
      am_scope_pop();
    }
    ran++;
  }
  CHECK(ran > 600, "only %d golden cases ran", ran);
  t_golden_free(g);
}

/* ---------------------------------------------------- hand-made edge cases */

static am_array arr1(am_dtype dt, int64_t n, const double *v) {
  return t_arr(v, &n, 1, dt);
}

static void expect_i64(am_array x, int64_t want, const char *what) {
  int64_t got = 0;
  am_status s = am_array_read(x, AM_I64, &got, 1);
  CHECK(s == AM_OK && got == want, "%s: got %lld, want %lld (%s)", what,
        (long long)got, (long long)want, am_last_error());
}

static void test_edges(void) {
  am_scope_push();
  /* integer sums wrap in the input type; bool sums count in int32 */
  am_array s8 = am_sum(arr1(AM_I8, 2, (double[]){100, 100}), NULL, 0, false);
  CHECK(am_array_dtype(s8) == AM_I8, "int8 sum keeps int8");
  t_expect(s8, (double[]){-56}, 1, 0, 0, "int8 sum wraps");
  t_expect(am_sum(arr1(AM_U8, 3, (double[]){200, 100, 1}), NULL, 0, false),
           (double[]){45}, 1, 0, 0, "uint8 sum wraps");
  am_array sb =
      am_sum(arr1(AM_BOOL, 4, (double[]){1, 0, 1, 1}), NULL, 0, false);
  CHECK(am_array_dtype(sb) == AM_I32, "bool sum gives int32");
  t_expect(sb, (double[]){3}, 1, 0, 0, "bool sum");
  /* int64: exact beyond 2^53, and wrapping */
  int64_t big[] = {((int64_t)1 << 53) + 1, 1, INT64_MAX};
  int64_t n2 = 2, n1 = 1;
  expect_i64(am_sum(am_array_new_data(big, &n2, 1, AM_I64), NULL, 0, false),
             ((int64_t)1 << 53) + 2, "int64 sum exact");
  expect_i64(am_sum(am_array_new_data(big + 1, &n2, 1, AM_I64), NULL, 0, false),
             INT64_MIN, "int64 sum wraps");
  expect_i64(
      am_prod(am_array_new_data(big + 2, &n1, 1, AM_I64), NULL, 0, false),
      INT64_MAX, "int64 prod of one");
  int64_t pw[] = {(int64_t)1 << 40, (int64_t)1 << 30};
  expect_i64(am_prod(am_array_new_data(pw, &n2, 1, AM_I64), NULL, 0, false), 0,
             "int64 prod wraps (2^70 mod 2^64)");
  expect_i64(am_max(am_array_new_data(big, &n2, 1, AM_I64), NULL, 0, false),
             ((int64_t)1 << 53) + 1, "int64 max exact");
  /* mean: integers give float32 */
  am_array mi = am_mean(arr1(AM_I32, 2, (double[]){1, 2}), NULL, 0, false);
  CHECK(am_array_dtype(mi) == AM_F32, "int mean is float32");
  t_expect(mi, (double[]){1.5}, 1, 0, 0, "int mean");
  t_expect(am_prod(arr1(AM_I32, 5, (double[]){1, 2, 3, 4, 5}), NULL, 0, false),
           (double[]){120}, 1, 0, 0, "prod");

  /* NaN: max/min propagate it; argmax/argmin take the first NaN */
  double nanv[] = {1, NAN, 3, NAN};
  t_expect(am_max(arr1(AM_F32, 4, nanv), NULL, 0, false), (double[]){NAN}, 1, 0,
           0, "max NaN");
  t_expect(am_min(arr1(AM_F64, 4, nanv), NULL, 0, false), (double[]){NAN}, 1, 0,
           0, "min NaN");
  t_expect(am_argmax(arr1(AM_F32, 4, nanv), 0, false), (double[]){1}, 1, 0, 0,
           "argmax first NaN");
  t_expect(am_argmin(arr1(AM_F16, 4, nanv), -1, false), (double[]){1}, 1, 0, 0,
           "argmin first NaN");
  double ties[] = {1, 3, 0, 3, 0};
  t_expect(am_argmax(arr1(AM_I32, 5, ties), 0, false), (double[]){1}, 1, 0, 0,
           "argmax first of ties");
  t_expect(am_argmin(arr1(AM_U8, 5, ties), 0, false), (double[]){2}, 1, 0, 0,
           "argmin first of ties");
  double ninf[] = {-INFINITY, -INFINITY};
  t_expect(am_argmax(arr1(AM_F32, 2, ninf), 0, false), (double[]){0}, 1, 0, 0,
           "argmax all -inf");
  am_array am = am_argmax(arr1(AM_F32, 2, ninf), 0, true);
  CHECK(am_array_dtype(am) == AM_U32, "argmax gives uint32");
  t_expect_shape(am, (int64_t[]){1}, 1, "argmax keepdims");

  /* logsumexp: stable, and the infinities */
  t_expect(
      am_logsumexp(arr1(AM_F32, 2, (double[]){1000, 1000}), NULL, 0, false),
      (double[]){1000 + log(2.0)}, 1, 1e-6, 0, "logsumexp stable");
  t_expect(am_logsumexp(arr1(AM_F32, 2, ninf), NULL, 0, false),
           (double[]){-INFINITY}, 1, 0, 0, "logsumexp all -inf");
  t_expect(am_logsumexp(arr1(AM_F64, 3, (double[]){1, INFINITY, -INFINITY}),
                        NULL, 0, false),
           (double[]){INFINITY}, 1, 0, 0, "logsumexp +inf");
  t_expect(am_logsumexp(arr1(AM_F32, 3, (double[]){NAN, INFINITY, 1}), NULL, 0,
                        false),
           (double[]){NAN}, 1, 0, 0, "logsumexp NaN");
  am_array li = am_logsumexp(arr1(AM_I8, 2, (double[]){0, 0}), NULL, 0, false);
  CHECK(am_array_dtype(li) == AM_F32, "int logsumexp is float32");
  t_expect(li, (double[]){log(2.0)}, 1, 1e-6, 0, "int logsumexp");

  /* all/any: NaN is true */
  t_expect(am_all(arr1(AM_F32, 2, (double[]){NAN, 2}), NULL, 0, false),
           (double[]){1}, 1, 0, 0, "all NaN true");
  t_expect(am_any(arr1(AM_F16, 2, (double[]){0, -0.0}), NULL, 0, false),
           (double[]){0}, 1, 0, 0, "any -0 false");

  /* empty reductions */
  int64_t e[] = {3, 0};
  am_array ex = am_zeros(e, 2, AM_F32);
  double z3[] = {0, 0, 0}, o3[] = {1, 1, 1}, n3[] = {NAN, NAN, NAN},
         mi3[] = {-INFINITY, -INFINITY, -INFINITY};
  int ax1[] = {1};
  t_expect(am_sum(ex, ax1, 1, false), z3, 3, 0, 0, "empty sum");
  t_expect(am_prod(ex, ax1, 1, false), o3, 3, 0, 0, "empty prod");
  t_expect(am_mean(ex, ax1, 1, false), n3, 3, 0, 0, "empty mean");
  t_expect(am_all(ex, ax1, 1, false), o3, 3, 0, 0, "empty all");
  t_expect(am_any(ex, ax1, 1, false), z3, 3, 0, 0, "empty any");
  t_expect(am_logsumexp(ex, ax1, 1, false), mi3, 3, 0, 0, "empty logsumexp");
  am_array ek = am_max(ex, (int[]){0}, 1, true); /* kept axis empty: fine */
  t_expect_shape(ek, (int64_t[]){1, 0}, 2, "max over a full axis, empty out");
  t_expect(ek, NULL, 0, 0, 0, "max with empty output");
  t_expect(am_cumsum(ex, 1, false, true), NULL, 0, 0, 0, "empty cumsum");

  /* 0-d: axes NULL reduces nothing and keeps the shape () */
  am_array sc = am_sum(am_scalar(2.5, AM_F32), NULL, 0, false);
  t_expect_shape(sc, NULL, 0, "0-d sum shape");
  t_expect(sc, (double[]){2.5}, 1, 0, 0, "0-d sum");
  t_expect(am_max(am_scalar(-1, AM_I8), NULL, 0, true), (double[]){-1}, 1, 0, 0,
           "0-d max");
  t_expect(am_all(am_scalar(0, AM_F32), NULL, 0, false), (double[]){0}, 1, 0, 0,
           "0-d all");

  /* size-1 axes stay in the graph; keepdims; reduce no axes (dtype only) */
  int64_t s131[] = {1, 3, 1};
  double v3[] = {1, 2, 3};
  am_array x131 = t_arr(v3, s131, 3, AM_F32);
  am_array k = am_sum(x131, (int[]){0, -1}, 2, true);
  t_expect_shape(k, s131, 3, "keepdims over size-1 axes");
  t_expect(k, v3, 3, 0, 0, "sum over size-1 axes");
  am_array none =
      am_sum(arr1(AM_BOOL, 3, (double[]){1, 0, 1}), (int[]){0}, 0, false);
  CHECK(am_array_dtype(none) == AM_I32, "sum over no axes converts bool");
  t_expect(none, (double[]){1, 0, 1}, 3, 0, 0, "sum over no axes");

  /* broadcast input (stride 0) and an offset view */
  int64_t bs[] = {4, 3}, bst[] = {0, 1};
  am_array row = arr1(AM_F32, 3, v3);
  am_array bx = t_view(row, bs, 2, bst, 0);
  t_expect(am_sum(bx, (int[]){0}, 1, false), (double[]){4, 8, 12}, 3, 0, 0,
           "sum of a broadcast axis");
  t_expect(am_sum(bx, (int[]){1}, 1, false), (double[]){6, 6, 6, 6}, 4, 0, 0,
           "sum along a broadcast input");
  t_expect(am_argmax(bx, 0, false), (double[]){0, 0, 0}, 3, 0, 0,
           "argmax of equal (broadcast) values");
  t_expect(am_cumsum(bx, 0, false, true),
           (double[]){1, 2, 3, 2, 4, 6, 3, 6, 9, 4, 8, 12}, 12, 0, 0,
           "cumsum of a broadcast axis");

  /* cumsum variants by hand */
  double c4[] = {1, 2, 3, 4};
  t_expect(am_cumsum(arr1(AM_I32, 4, c4), 0, false, true),
           (double[]){1, 3, 6, 10}, 4, 0, 0, "cumsum");
  t_expect(am_cumsum(arr1(AM_I32, 4, c4), 0, true, true),
           (double[]){10, 9, 7, 4}, 4, 0, 0, "cumsum reverse");
  t_expect(am_cumsum(arr1(AM_I32, 4, c4), -1, false, false),
           (double[]){0, 1, 3, 6}, 4, 0, 0, "cumsum exclusive");
  t_expect(am_cumsum(arr1(AM_I32, 4, c4), 0, true, false),
           (double[]){9, 7, 4, 0}, 4, 0, 0, "cumsum reverse exclusive");
  am_array cb =
      am_cumsum(arr1(AM_BOOL, 3, (double[]){1, 1, 0}), 0, false, true);
  CHECK(am_array_dtype(cb) == AM_I32, "bool cumsum gives int32");
  t_expect(cb, (double[]){1, 2, 2}, 3, 0, 0, "bool cumsum");
  t_expect(am_cumsum(arr1(AM_I8, 3, (double[]){100, 100, 100}), 0, false, true),
           (double[]){100, -56, 44}, 3, 0, 0, "int8 cumsum wraps");
  am_scope_pop();
}

/* In-place cumsum: the input buffer is donated to the output. */
static void test_cumsum_donation(void) {
  am_memory_stats before = am_memory_get_stats();
  am_array r = am_arange(0, 5, 1, AM_F64);
  am_array x = am_astype(r, AM_F32);
  am_array_free(r);
  am_array y = am_cumsum(x, 0, false, false);
  am_array_free(x);
  t_expect(y, (double[]){0, 0, 1, 3, 6}, 5, 0, 0, "donated cumsum");
  am_memory_stats after = am_memory_get_stats();
  CHECK(after.n_donated > before.n_donated, "cumsum did not donate");
  am_array_free(y);
}

/* ------------------------------------------------------------------ errors */

static void test_errors(void) {
  am_scope_push();
  int64_t s23[] = {2, 3};
  am_array x = am_zeros(s23, 2, AM_F32);
  t_expect_error(am_sum(x, (int[]){2}, 1, false), AM_ERR_INVALID_ARG, "sum",
                 "axis out of range");
  t_expect_error(am_mean(x, (int[]){-3}, 1, false), AM_ERR_INVALID_ARG, "mean",
                 "negative axis out of range");
  t_expect_error(am_prod(x, (int[]){0, -2}, 2, false), AM_ERR_INVALID_ARG,
                 "prod", "duplicate axes");
  t_expect_error(am_max(x, (int[]){0}, 17, false), AM_ERR_INVALID_ARG, "max",
                 "too many axes");
  t_expect_error(am_min(x, (int[]){0}, -1, false), AM_ERR_INVALID_ARG, "min",
                 "negative axis count");
  t_expect_error(am_argmax(x, 2, false), AM_ERR_INVALID_ARG, "argmax",
                 "argmax axis");
  t_expect_error(am_argmin(am_scalar(1, AM_F32), 0, false), AM_ERR_INVALID_ARG,
                 "argmin", "argmin of 0-d");
  t_expect_error(am_cumsum(x, -3, false, true), AM_ERR_INVALID_ARG, "cumsum",
                 "cumsum axis");
  t_expect_error(am_cumsum(am_scalar(1, AM_F32), 0, false, true),
                 AM_ERR_INVALID_ARG, "cumsum", "cumsum of 0-d");
  t_expect_error(am_sum(am_scalar(1, AM_F32), (int[]){0}, 1, false),
                 AM_ERR_INVALID_ARG, "sum", "axis of a 0-d array");
  /* max/min/arg* have no identity: an empty reduced axis is an error */
  int64_t s30[] = {3, 0}, s0[] = {0};
  am_array e = am_zeros(s30, 2, AM_F32);
  t_expect_error(am_max(e, (int[]){1}, 1, false), AM_ERR_SHAPE, "max",
                 "max over an empty axis");
  t_expect_error(am_min(am_zeros(s0, 1, AM_I32), NULL, 0, false), AM_ERR_SHAPE,
                 "min", "min of an empty array");
  t_expect_error(am_argmax(e, -1, true), AM_ERR_SHAPE, "argmax",
                 "argmax over an empty axis");
  t_expect_error(am_argmin(e, 1, false), AM_ERR_SHAPE, "argmin",
                 "argmin over an empty axis");
  CHECK(strstr(am_array_error(am_max(e, NULL, 0, false)), "[3,0]") != NULL,
        "message names the input shape: %s",
        am_array_error(am_max(e, NULL, 0, false)));
  /* NULL and error inputs */
  /* (status only: the message comes from the core, not from this op) */
  CHECK(am_array_status(am_logsumexp(NULL, NULL, 0, false)) ==
            AM_ERR_INVALID_ARG,
        "NULL input");
  am_array bad = am_sum(x, (int[]){5}, 1, false);
  t_expect_error(am_any(bad, NULL, 0, false), AM_ERR_INVALID_ARG, "sum",
                 "error input propagates");
  am_scope_pop();
}

/* ------------------------------------------- randomized vs naive reference */

/* out[o] over the reduced axes (mask) of row-major v; kind 0 sum, 1 max,
 * 2 argmax over the single masked axis. */
static void naive(const double *v, const int64_t *shape, int nd,
                  const bool *mask, int kind, double *out, int64_t nout) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  for (int64_t o = 0; o < nout; o++)
    out[o] = kind == 0 ? 0 : -INFINITY;
  double *best = calloc((size_t)(nout > 0 ? nout : 1), sizeof *best);
  for (int64_t o = 0; o < nout; o++)
    best[o] = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    int64_t rem = i, o = 0, om = 1, pos = 0;
    for (int d = nd - 1; d >= 0; d--) {
      int64_t id = rem % shape[d];
      rem /= shape[d];
      if (!mask[d]) {
        o += id * om;
        om *= shape[d];
      } else {
        pos = id;
      }
    }
    if (kind == 0)
      out[o] += v[i];
    else if (kind == 1)
      out[o] = v[i] > out[o] ? v[i] : out[o];
    else if (v[i] > best[o]) {
      best[o] = v[i];
      out[o] = (double)pos;
    }
  }
  free(best);
}

static void test_random(void) {
  t_rng r = {42};
  int trials = t_quick() ? 60 : 300;
  for (int t = 0; t < trials; t++) {
    am_scope_push();
    int nd = (int)t_randint(&r, 1, 5);
    int64_t shape[AM_MAX_DIMS], n = 1;
    bool big = t_randint(&r, 0, 9) == 0;
    for (int i = 0; i < nd; i++) {
      shape[i] = t_randint(&r, big ? 5 : 1, big ? 40 : 6);
      n *= shape[i];
    }
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
      v[i] = (double)t_randint(&r, -50, 50);
    bool mask[AM_MAX_DIMS] = {0};
    int axes[AM_MAX_DIMS], na = 0;
    for (int i = 0; i < nd; i++)
      if (t_randint(&r, 0, 1)) {
        mask[i] = true;
        axes[na++] = t_randint(&r, 0, 1) ? i - nd : i;
      }
    int64_t nout = 1;
    for (int i = 0; i < nd; i++)
      if (!mask[i]) nout *= shape[i];
    int mode = (int)t_randint(&r, 0, 2);
    am_dtype dt = t_randint(&r, 0, 1) ? AM_F32 : AM_I32;
    am_array x = make_layout(v, shape, nd, dt, mode);
    double *want = malloc((size_t)(n > 0 ? n : 1) * sizeof *want);
    char what[96];
    snprintf(what, sizeof what, "random %d (nd %d, mode %d)", t, nd, mode);
    naive(v, shape, nd, mask, 0, want, nout);
    t_expect(am_sum(x, axes, na, false), want, nout, 1e-6, 0, what);
    naive(v, shape, nd, mask, 1, want, nout);
    t_expect(am_max(x, axes, na, t & 1), want, nout, 0, 0, what);
    int ax = (int)t_randint(&r, 0, nd - 1);
    bool m1[AM_MAX_DIMS] = {0};
    m1[ax] = true;
    naive(v, shape, nd, m1, 2, want, n / shape[ax]);
    t_expect(am_argmax(x, ax - (t & 1 ? nd : 0), false), want, n / shape[ax], 0,
             0, what);
    free(want);
    free(v);
    am_scope_pop();
  }
}

/* Kernel paths by shape: narrow column blocks widened, short rows folded
 * in parallel chains, wide blocks, mixed axes; exact (integer values). */
static void test_paths(void) {
  static const struct {
    int nd;
    int64_t shape[3];
    int naxes, axes[2];
  } cases[] = {
      {2, {20000, 3}, 1, {0}},      {2, {3000, 7}, 1, {0}},
      {2, {1000, 300}, 1, {0}},     {3, {5, 300, 3}, 2, {0, 1}},
      {2, {640, 9}, 1, {1}},        {2, {7, 5000}, 1, {0}},
      {3, {40, 30, 50}, 2, {0, 2}}, {2, {3, 100000}, 1, {1}},
  };
  t_rng r = {99};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    am_scope_push();
    int nd = cases[c].nd;
    int64_t n = 1, nout = 1;
    bool mask[AM_MAX_DIMS] = {0};
    for (int i = 0; i < cases[c].naxes; i++)
      mask[cases[c].axes[i]] = true;
    for (int i = 0; i < nd; i++) {
      n *= cases[c].shape[i];
      if (!mask[i]) nout *= cases[c].shape[i];
    }
    double *v = malloc((size_t)n * sizeof *v), *want = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++)
      v[i] = (double)t_randint(&r, -50, 50);
    for (int k = 0; k < 3; k++) {
      am_dtype dt = k == 0 ? AM_F32 : k == 1 ? AM_I32 : AM_F64;
      am_array x = t_arr(v, cases[c].shape, nd, dt);
      char what[64];
      snprintf(what, sizeof what, "path case %zu, %s", c, am_dtype_name(dt));
      naive(v, cases[c].shape, nd, mask, 0, want, nout);
      t_expect(am_sum(x, cases[c].axes, cases[c].naxes, false), want, nout, 0,
               0, what);
      naive(v, cases[c].shape, nd, mask, 1, want, nout);
      t_expect(am_max(x, cases[c].axes, cases[c].naxes, false), want, nout, 0,
               0, what);
      if (cases[c].naxes == 1) {
        naive(v, cases[c].shape, nd, mask, 2, want, nout);
        t_expect(am_argmax(x, cases[c].axes[0], false), want, nout, 0, 0, what);
      }
    }
    free(v);
    free(want);
    am_scope_pop();
  }
}

/* -------------------------------------------------- large arrays, threads */

static void test_large(int threads) {
  am_set_num_threads(threads);
  int64_t n = t_quick() ? (1 << 20) : (1 << 24);
  float *f = malloc((size_t)n * sizeof *f);
  t_rng r = {7};
  for (int64_t i = 0; i < n; i++)
    f[i] = (float)t_uniform(&r); /* all positive: the hard case */
  f[n / 3] = 2.0f;               /* the max, twice: argmax reports the first */
  f[n / 2] = 2.0f;
  double ref = 0;
  for (int64_t i = 0; i < n; i++)
    ref += f[i];
  am_scope_push();
  am_array x = am_array_new_data(f, &n, 1, AM_F32);
  char what[64];
  snprintf(what, sizeof what, "16M sum, %d threads", threads);
  t_expect(am_sum(x, NULL, 0, false), &ref, 1, 1e-6, 0, what);
  double mref = ref / (double)n;
  t_expect(am_mean(x, NULL, 0, false), &mref, 1, 1e-6, 0, "large mean");
  t_expect(am_max(x, NULL, 0, false), (double[]){2}, 1, 0, 0, "large max");
  double am = (double)(n / 3);
  t_expect(am_argmax(x, 0, false), &am, 1, 0, 0, "large argmax");
  double lse = 0;
  for (int64_t i = 0; i < n; i++)
    lse += exp((double)f[i] - 2.0);
  lse = 2.0 + log(lse);
  t_expect(am_logsumexp(x, NULL, 0, false), &lse, 1, 1e-6, 0, "large lse");

  /* rows and columns of a [R, C] matrix */
  int64_t C = 1024, R = n / C, sh[] = {R, C};
  am_array m = t_view(x, sh, 2, (int64_t[]){C, 1}, 0);
  double *cols = calloc((size_t)C, sizeof *cols);
  double *rows = calloc((size_t)R, sizeof *rows);
  for (int64_t i = 0; i < R; i++)
    for (int64_t j = 0; j < C; j++) {
      cols[j] += f[i * C + j];
      rows[i] += f[i * C + j];
    }
  t_expect(am_sum(m, (int[]){0}, 1, false), cols, C, 1e-6, 0, "column sums");
  t_expect(am_sum(m, (int[]){-1}, 1, false), rows, R, 1e-6, 0, "row sums");
  /* the same through a transposed view: a column sum in memory */
  am_array mt = t_transposed(m);
  t_expect(am_sum(mt, (int[]){1}, 1, false), cols, C, 1e-6, 0,
           "transposed row sums");
  /* cumsum of a long row (split in two passes) and of columns */
  am_array cs = am_cumsum(x, 0, false, true);
  float *got = malloc((size_t)n * sizeof *got);
  CHECK(am_array_read(cs, AM_F32, got, n) == AM_OK, "cumsum read");
  double run = 0;
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 3; i++) {
    run += f[i];
    if (fabs(got[i] - run) > 1e-6 * run + 1e-6) {
      bad++;
      CHECK(0, "long cumsum[%lld] = %g, want %g", (long long)i, got[i], run);
    }
  }
  CHECK(!bad, "long cumsum");
  am_array csr = am_cumsum(m, 0, true, false); /* reverse exclusive */
  CHECK(am_array_read(csr, AM_F32, got, n) == AM_OK, "column cumsum read");
  memset(cols, 0, (size_t)C * sizeof *cols);
  bad = 0;
  for (int64_t i = R - 1; i >= 0 && bad < 3; i--)
    for (int64_t j = 0; j < C && bad < 3; j++) {
      if (fabs(got[i * C + j] - cols[j]) > 1e-6 * cols[j] + 1e-6) {
        bad++;
        CHECK(0, "column cumsum[%lld,%lld] = %g, want %g", (long long)i,
              (long long)j, got[i * C + j], cols[j]);
      }
      cols[j] += f[i * C + j];
    }
  CHECK(!bad, "column cumsum");
  /* integer cumsum, exact */
  int64_t ni = n / 8;
  am_array xi = am_astype(am_arange(0, (double)ni, 1, AM_F64), AM_I64);
  am_array ci = am_cumsum(xi, -1, false, true);
  int64_t last = 0;
  am_array lastv = t_view(ci, (int64_t[]){1}, 1, (int64_t[]){1}, ni - 1);
  CHECK(am_array_read(lastv, AM_I64, &last, 1) == AM_OK &&
            last == ni * (ni - 1) / 2,
        "int64 cumsum last = %lld", (long long)last);
  am_scope_pop();
  free(got);
  free(cols);
  free(rows);
  free(f);
  am_set_num_threads(0);
}

/* Test hook in reduce.c: caps the kernels' instruction set (0 SSE2,
 * 1 AVX2, 2 AVX-512; -1 restores the default), so each version runs. */
void am_reduce_set_isa_cap(int cap);

int main(void) {
  for (int isa = 0; isa < 3; isa++) {
    am_reduce_set_isa_cap(isa);
    test_golden();
    test_random();
    test_paths();
  }
  am_reduce_set_isa_cap(-1);
  test_edges();
  test_cumsum_donation();
  test_errors();
  am_set_num_threads(4); /* split reductions even on small machines */
  test_paths();
  test_large(4);
  if (!t_quick()) test_large(1);
  return t_summary();
}
