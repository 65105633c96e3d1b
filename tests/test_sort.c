/*
 * test_sort — sort, argsort, argpartition, topk: NumPy goldens (sort,
 * stable argsort, topk) on contiguous and strided inputs, argpartition
 * checked structurally (a permutation with the partition property),
 * large and adversarial rows, exact integer order, and errors.
 */
#include "test_internal.h"

/* NaN last, as the library orders. */
static int lt(double a, double b) {
  return a < b || (isnan(b) && !isnan(a));
}

/* Checks idx = argpartition(x, kth, axis) (x given as row-major doubles of
 * shape sh): each row a permutation, element kth in sorted position, no
 * larger one before it and no smaller one after. */
static void check_partition(const double *x, const int64_t *sh, int nd,
                            int axis, int64_t kth, am_array idx,
                            const char *what) {
  int64_t total = 1;
  for (int d = 0; d < nd; d++)
    total *= sh[d];
  uint32_t *iv = malloc(sizeof(uint32_t) * (size_t)(total ? total : 1));
  CHECK(am_array_dtype(idx) == AM_U32, "%s: dtype", what);
  if (am_array_read(idx, AM_U32, iv, total) != AM_OK) {
    CHECK(0, "%s: %s", what, am_last_error());
    free(iv);
    return;
  }
  int64_t n = sh[axis], inner = 1;
  for (int d = axis + 1; d < nd; d++)
    inner *= sh[d];
  if (kth < 0) kth += n;
  int64_t rows = n ? total / n : 0;
  char *seen = malloc((size_t)(n ? n : 1));
  double *row = malloc(sizeof(double) * (size_t)(n ? n : 1));
  int bad = 0;
  for (int64_t r = 0; r < rows && !bad; r++) {
    int64_t o = r / inner, in = r % inner, base = o * n * inner + in;
    memset(seen, 0, (size_t)n);
    for (int64_t i = 0; i < n; i++) {
      uint32_t k = iv[base + i * inner];
      if (k >= n || seen[k]) {
        bad = 1;
        break;
      }
      seen[k] = 1;
      row[i] = x[base + (int64_t)k * inner];
    }
    if (bad) break;
    double p = row[kth];
    int64_t smaller = 0; /* how many elements sort strictly before p */
    for (int64_t i = 0; i < n; i++) {
      smaller += lt(x[base + i * inner], p);
      if (i < kth && lt(p, row[i])) bad = 2;
      if (i > kth && lt(row[i], p)) bad = 3;
    }
    if (smaller > kth) bad = 4;
    int64_t notlarger = 0;
    for (int64_t i = 0; i < n; i++)
      notlarger += !lt(p, x[base + i * inner]);
    if (notlarger <= kth) bad = 5;
  }
  CHECK(!bad, "%s: partition property broken (%d)", what, bad);
  free(seen);
  free(row);
  free(iv);
}

/* ------------------------------------------------------------ goldens */

static void run_case(const t_gcase *c, int mode) {
  const t_garr *p = t_gcase_arr(c, "p"), *gx = t_gcase_arr(c, "x");
  if (!p || !gx) return;
  char what[192];
  int axis = (int)p->v[0], k = (int)p->v[1];
  am_scope_push();
  am_array x = t_garr_array(gx);
  x = mode == 0 ? x : mode == 1 ? t_reversed_layout(x) : t_spread(x);
  snprintf(what, sizeof what, "%s sort (layout %d)", c->name, mode);
  t_expect_garr(am_sort(x, axis), t_gcase_arr(c, "sort"), 0, 0, what);
  snprintf(what, sizeof what, "%s argsort (layout %d)", c->name, mode);
  t_expect_garr(am_argsort(x, axis), t_gcase_arr(c, "argsort"), 0, 0, what);
  snprintf(what, sizeof what, "%s topk (layout %d)", c->name, mode);
  t_expect_garr(am_topk(x, k, axis), t_gcase_arr(c, "topk"), 0, 0, what);
  int ax = axis < 0 ? axis + gx->ndim : axis;
  int64_t n = gx->shape[ax];
  for (int64_t kth = -n; kth<n; kth += n> 6 ? n / 3 : 1) {
    snprintf(what, sizeof what, "%s argpartition kth %lld (layout %d)", c->name,
             (long long)kth, mode);
    check_partition(gx->v, gx->shape, gx->ndim, ax, kth,
                    am_argpartition(x, (int)kth, axis), what);
  }
  am_scope_pop();
}

static void test_goldens(void) {
  t_golden *g = t_golden_load("golden/sort.txt");
  if (!g) return;
  CHECK(g->n >= 30, "only %d golden cases", g->n);
  for (int mode = 0; mode < 3; mode++)
    for (int i = 0; i < g->n; i++)
      run_case(&g->cases[i], mode);
  t_golden_free(g);
}

/* ------------------------------------------------------- hand-computed */

static void test_hand(void) {
  am_scope_push();
  int64_t n = 6;
  am_array x = t_arr((double[]){3, NAN, -1, 3, 0, -INFINITY}, &n, 1, AM_F32);
  t_expect(am_sort(x, 0), (double[]){-INFINITY, -1, 0, 3, 3, NAN}, 6, 0, 0,
           "sort nan last");
  t_expect(am_argsort(x, -1), (double[]){5, 2, 4, 0, 3, 1}, 6, 0, 0,
           "argsort stable");
  t_expect(am_topk(x, 3, 0), (double[]){NAN, 3, 3}, 3, 0, 0, "topk nan first");
  t_expect(am_topk(x, 0, 0), NULL, 0, 0, 0, "topk k=0");
  /* columns of a 2-d array */
  int64_t sh[] = {3, 2};
  am_array m = t_arr((double[]){5, 1, 4, 1, 6, 0}, sh, 2, AM_I32);
  t_expect(am_sort(m, 0), (double[]){4, 0, 5, 1, 6, 1}, 6, 0, 0, "sort ax0");
  t_expect(am_argsort(m, 0), (double[]){1, 2, 0, 0, 2, 1}, 6, 0, 0,
           "argsort ax0 stable");
  am_array t = am_topk(m, 2, -2);
  t_expect_shape(t, (int64_t[]){2, 2}, 2, "topk shape");
  t_expect(t, (double[]){6, 1, 5, 1}, 4, 0, 0, "topk ax0");
  CHECK(am_array_dtype(t) == AM_I32, "topk keeps dtype");
  /* int64 compared exactly (these collide as doubles) */
  int64_t big[] = {(1ll << 53) + 1, 1ll << 53,       INT64_MIN,
                   INT64_MAX,       (1ll << 53) + 3, (1ll << 53) + 2};
  am_array b = am_array_new_data(big, &n, 1, AM_I64);
  int64_t got[6];
  CHECK(am_array_read(am_sort(b, 0), AM_I64, got, 6) == AM_OK, "read");
  CHECK(got[0] == INT64_MIN && got[1] == (1ll << 53) &&
            got[2] == (1ll << 53) + 1 && got[3] == (1ll << 53) + 2 &&
            got[4] == (1ll << 53) + 3 && got[5] == INT64_MAX,
        "int64 sort exact");
  uint32_t ord[6];
  CHECK(am_array_read(am_argsort(b, 0), AM_U32, ord, 6) == AM_OK, "read");
  CHECK(ord[0] == 2 && ord[1] == 1 && ord[2] == 0 && ord[3] == 5 &&
            ord[4] == 4 && ord[5] == 3,
        "int64 argsort exact");
  CHECK(am_array_read(am_topk(b, 2, 0), AM_I64, got, 2) == AM_OK, "read");
  CHECK(got[0] == INT64_MAX && got[1] == (1ll << 53) + 3, "int64 topk exact");
  /* float16: NaN payloads and -0.0 survive bit-exactly */
  uint16_t h[] = {0x7e01, 0x8000, 0x3c00, 0x0000, 0xfc00};
  int64_t nh = 5;
  am_array hx = am_array_new_data(h, &nh, 1, AM_F16);
  uint16_t hs[5];
  CHECK(am_array_read(am_sort(hx, 0), AM_F16, hs, 5) == AM_OK, "read");
  CHECK(hs[0] == 0xfc00 && hs[1] == 0x8000 && hs[2] == 0x0000 &&
            hs[3] == 0x3c00 && hs[4] == 0x7e01,
        "f16 sort bits (stable for -0/0)");
  /* 0-d and empty */
  t_expect_error(am_sort(am_scalar(1, AM_F32), 0), AM_ERR_INVALID_ARG, "sort",
                 "0-d");
  am_array e = am_argpartition(am_zeros((int64_t[]){0, 4}, 2, AM_F32), 2, 1);
  t_expect_shape(e, (int64_t[]){0, 4}, 2, "argpartition empty rows");
  CHECK(am_eval(&e, 1) == AM_OK, "argpartition on no rows");
  am_scope_pop();
}

/* ---------------------------------------------------------------- large */

/* argsort of random data with many ties: sorted and stable. */
static void check_argsort(const double *x, int64_t rows, int64_t n,
                          am_array idx, const char *what) {
  uint32_t *iv = malloc(sizeof(uint32_t) * (size_t)(rows * n));
  CHECK(am_array_read(idx, AM_U32, iv, rows * n) == AM_OK, "%s: read", what);
  int bad = 0;
  for (int64_t r = 0; r < rows; r++) {
    const double *row = x + r * n;
    const uint32_t *o = iv + r * n;
    for (int64_t i = 1; i < n; i++) {
      double a = row[o[i - 1]], b = row[o[i]];
      if (lt(b, a) || (!lt(a, b) && o[i - 1] >= o[i])) bad++;
    }
  }
  CHECK(bad == 0, "%s: %d inversions", what, bad);
  free(iv);
}

static void test_large(void) {
  am_scope_push();
  t_rng r = {99};
  int quick = t_quick();
  int64_t rows = 64, n = quick ? 300 : 1000, sh[] = {rows, n};
  double *xv = malloc(sizeof(double) * (size_t)(rows * n));
  for (int64_t i = 0; i < rows * n; i++)
    xv[i] = (double)t_randint(&r, 0, 20) - 10 + (i % 97 == 0 ? NAN : 0);
  am_array x = am_array_new_data(xv, sh, 2, AM_F64);
  check_argsort(xv, rows, n, am_argsort(x, 1), "argsort rows f64");
  check_argsort(xv, rows, n, am_argsort(am_astype(x, AM_F32), -1),
                "argsort rows f32");
  check_argsort(xv, rows, n, am_argsort(am_astype(x, AM_BF16), -1),
                "argsort rows bf16");
  /* sort agrees with argsort */
  double *sv = malloc(sizeof(double) * (size_t)(rows * n));
  uint32_t *iv = malloc(sizeof(uint32_t) * (size_t)(rows * n));
  CHECK(am_array_read(am_sort(x, 1), AM_F64, sv, rows * n) == AM_OK &&
            am_array_read(am_argsort(x, 1), AM_U32, iv, rows * n) == AM_OK,
        "read");
  int bad = 0;
  for (int64_t i = 0; i < rows * n; i++) {
    double w = xv[(i / n) * n + iv[i]];
    bad += !(sv[i] == w || (isnan(sv[i]) && isnan(w)));
  }
  CHECK(bad == 0, "sort vs argsort: %d mismatches", bad);
  /* topk = the end of the sorted row, reversed */
  int64_t k = 37;
  double *tv = malloc(sizeof(double) * (size_t)(rows * k));
  CHECK(am_array_read(am_topk(x, (int)k, 1), AM_F64, tv, rows * k) == AM_OK,
        "read");
  bad = 0;
  for (int64_t rr = 0; rr < rows; rr++)
    for (int64_t i = 0; i < k; i++) {
      double w = sv[rr * n + n - 1 - i], g = tv[rr * k + i];
      bad += !(g == w || (isnan(g) && isnan(w)));
    }
  CHECK(bad == 0, "topk vs sort: %d mismatches", bad);
  /* argpartition over the columns (axis 0, strided rows) */
  for (int64_t kth = 0; kth < rows; kth += 21)
    check_partition(xv, sh, 2, 0, kth, am_argpartition(x, (int)kth, 0),
                    "argpartition axis 0");
  free(xv);
  free(sv);
  free(iv);
  free(tv);
  am_scope_pop();
}

/* Inputs that defeat naive quickselect/quicksort pivots. */
static void test_adversarial(void) {
  int64_t n = t_quick() ? 5000 : 40000;
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int pat = 0; pat < 5; pat++) {
    for (int64_t i = 0; i < n; i++) {
      switch (pat) {
      case 0:
        v[i] = (double)i;
        break; /* sorted */
      case 1:
        v[i] = (double)(n - i);
        break; /* reversed */
      case 2:
        v[i] = 7;
        break; /* all equal */
      case 3:
        v[i] = (double)(i < n / 2 ? i : n - i);
        break; /* organ pipe */
      default:
        v[i] = (double)((i * 7919) % 13);
        break; /* few keys */
      }
    }
    am_scope_push();
    am_array x = am_array_new_data(v, &n, 1, AM_F64);
    char what[64];
    snprintf(what, sizeof what, "argpartition pattern %d", pat);
    check_partition(v, &n, 1, 0, n / 3, am_argpartition(x, (int)(n / 3), 0),
                    what);
    check_partition(v, &n, 1, 0, -1, am_argpartition(x, -1, 0), what);
    snprintf(what, sizeof what, "argsort pattern %d", pat);
    check_argsort(v, 1, n, am_argsort(am_astype(x, AM_I32), 0), what);
    double top[3];
    CHECK(am_array_read(am_topk(x, 3, 0), AM_F64, top, 3) == AM_OK, "read");
    double mx = v[0];
    for (int64_t i = 1; i < n; i++)
      mx = v[i] > mx ? v[i] : mx;
    CHECK(top[0] == mx && top[1] <= top[0] && top[2] <= top[1],
          "topk pattern %d", pat);
    am_scope_pop();
  }
  free(v);
}

/* --------------------------------------------------------------- errors */

static void test_errors(void) {
  am_scope_push();
  int64_t sh[] = {2, 3};
  am_array x = am_zeros(sh, 2, AM_F32);
  t_expect_error(am_sort(x, 2), AM_ERR_INVALID_ARG, "sort", "axis 2");
  t_expect_error(am_argsort(x, -3), AM_ERR_INVALID_ARG, "argsort", "axis -3");
  t_expect_error(am_argpartition(x, 3, 1), AM_ERR_INVALID_ARG, "argpartition",
                 "kth 3");
  t_expect_error(am_argpartition(x, -4, 1), AM_ERR_INVALID_ARG, "argpartition",
                 "kth -4");
  t_expect_error(am_argpartition(am_zeros((int64_t[]){2, 0}, 2, AM_F32), 0, 1),
                 AM_ERR_INVALID_ARG, "argpartition", "empty axis");
  t_expect_error(am_topk(x, 4, -1), AM_ERR_INVALID_ARG, "topk", "k 4");
  t_expect_error(am_topk(x, -1, -1), AM_ERR_INVALID_ARG, "topk", "k -1");
  t_expect_error(am_topk(am_scalar(1, AM_I32), 1, 0), AM_ERR_INVALID_ARG,
                 "topk", "0-d");
  t_expect_error(am_argpartition(am_scalar(1, AM_I32), 0, -1),
                 AM_ERR_INVALID_ARG, "argpartition", "0-d");
  CHECK(am_array_status(am_sort(NULL, 0)) == AM_ERR_INVALID_ARG, "NULL x");
  am_array bad = am_topk(x, 9, 0);
  t_expect_error(am_sort(bad, 0), AM_ERR_INVALID_ARG, "topk", "propagates");
  am_scope_pop();
}

int main(void) {
  test_goldens();
  test_hand();
  test_large();
  test_adversarial();
  test_errors();
  return t_summary();
}
