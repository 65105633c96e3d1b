/*
 * test_linalg — matmul, addmm and conv1d: NumPy/MLX goldens in every
 * input layout (contiguous, transposed storage, every other element) with
 * the SIMD and the portable kernels; larger shapes (thread chunks, the
 * batched, folded and matrix-vector paths) against a naive product;
 * hand-computed cases, promotion, donation, empty arrays, a shapeless
 * compile, and errors.
 *
 * Tolerances scale with bound = |a| @ |b| (per element): the result of
 * dtype t must be within tol(t) * bound of the exact product.
 */
#include "test_internal.h"

/* Test switch in src/ops/linalg.c: portable kernels only. */
extern void am_linalg_force_portable(bool on);

static t_golden *G;

static double tol_of(am_dtype t) {
  switch (t) {
  case AM_F64:
    return 1e-12;
  case AM_F16:
    return 1e-3; /* rounding on store: 2^-11 */
  case AM_BF16:
    return 8e-3; /* 2^-8 */
  default:
    return 1e-5;
  }
}

/* x (shape, dtype) against want, |x - want| <= tol * bound elementwise. */
static void expect_bound(am_array x, const int64_t *shape, int nd, am_dtype dt,
                         const double *want, const double *bound, double tol,
                         const char *what) {
  if (!t_expect_shape(x, shape, nd, what)) return;
  CHECK(am_array_dtype(x) == dt, "%s: dtype %s, want %s", what,
        am_dtype_name(am_array_dtype(x)), am_dtype_name(dt));
  int64_t n = am_array_size(x);
  double *got = malloc((size_t)(n ? n : 1) * sizeof *got);
  if (am_array_read(x, AM_F64, got, n) != AM_OK) {
    CHECK(0, "%s: %s", what, am_last_error());
    free(got);
    return;
  }
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 4; i++)
    if (!(fabs(got[i] - want[i]) <= tol * bound[i])) {
      bad++;
      CHECK(0, "%s: element %lld = %.10g, want %.10g (bound %g)", what,
            (long long)i, got[i], want[i], bound[i]);
    }
  if (!bad) t_pass++;
  free(got);
}

static void expect_garr(am_array x, const t_garr *want, const t_garr *bound,
                        const char *what) {
  if (!want || !bound) return;
  expect_bound(x, want->shape, want->ndim, want->dtype, want->v, bound->v,
               tol_of(want->dtype), what);
}

/* ---------------------------------------------------------------------
 *  Layouts: the same values stored differently
 * --------------------------------------------------------------------- */

enum { L_CONTIG, L_TRANS, L_SPREAD, L_COUNT };
static const char *const k_layout[L_COUNT] = {"contig", "trans", "spread"};

static am_array layout(am_array x, int how) {
  return how == L_TRANS    ? t_reversed_layout(x)
         : how == L_SPREAD ? t_spread(x)
                           : x;
}

/* ---------------------------------------------------------------------
 *  Golden cases
 * --------------------------------------------------------------------- */

static bool prefix(const char *s, const char *p) {
  return !strncmp(s, p, strlen(p));
}

static void run_golden(const t_gcase *c, int portable) {
  am_linalg_force_portable(portable);
  bool is_mm = prefix(c->name, "mm_"), is_addmm = prefix(c->name, "addmm_");
  const t_garr *x0 = t_gcase_arr(c, is_mm || is_addmm ? "a" : "x");
  const t_garr *x1 = t_gcase_arr(c, is_mm || is_addmm ? "b" : "w");
  const t_garr *out = t_gcase_arr(c, "out"), *bound = t_gcase_arr(c, "bound");
  const t_garr *p = is_mm ? NULL : t_gcase_arr(c, "p");
  const t_garr *cc = is_addmm ? t_gcase_arr(c, "c") : NULL;
  if (!x0 || !x1 || !out || !bound || (!is_mm && !p)) return;
  for (int l0 = 0; l0 < L_COUNT; l0++)
    for (int l1 = 0; l1 < L_COUNT; l1++) {
      char what[200];
      snprintf(what, sizeof what, "%s (%s, %s%s)", c->name, k_layout[l0],
               k_layout[l1], portable ? ", portable" : "");
      am_scope_push();
      am_array a = layout(t_garr_array(x0), l0);
      am_array b = layout(t_garr_array(x1), l1);
      am_array r;
      if (is_mm) {
        r = am_matmul(a, b);
      } else if (is_addmm) {
        am_array cv = layout(t_garr_array(cc), (l0 + l1) % L_COUNT);
        r = am_addmm(cv, a, b, (float)p->v[0], (float)p->v[1]);
      } else {
        r = am_conv1d(a, b, (int)p->v[0], (int)p->v[1], (int)p->v[2],
                      (int)p->v[3]);
      }
      expect_garr(r, out, bound, what);
      am_scope_pop();
    }
  am_linalg_force_portable(false);
}

static void test_golden(void) {
  int n[3] = {0, 0, 0};
  for (int i = 0; G && i < G->n; i++) {
    const t_gcase *c = &G->cases[i];
    n[prefix(c->name, "mm_") ? 0 : prefix(c->name, "addmm_") ? 1 : 2]++;
    for (int portable = 0; portable < 2; portable++)
      run_golden(c, portable);
  }
  CHECK(n[0] >= 20 && n[1] >= 8 && n[2] >= 15,
        "golden cases: %d matmul, %d addmm, %d conv1d", n[0], n[1], n[2]);
}

/* ---------------------------------------------------------------------
 *  Hand-computed values
 * --------------------------------------------------------------------- */

static void test_hand(void) {
  am_scope_push();
  int64_t s22[] = {2, 2};
  am_array a = t_arr((double[]){1, 2, 3, 4}, s22, 2, AM_F32);
  am_array b = t_arr((double[]){5, 6, 7, 8}, s22, 2, AM_F32);
  t_expect(am_matmul(a, b), (double[]){19, 22, 43, 50}, 4, 0, 0, "2x2 @ 2x2");
  t_expect(am_matmul(b, a), (double[]){23, 34, 31, 46}, 4, 0, 0, "2x2 @ 2x2 b");
  int64_t s3 = 3;
  am_array u = t_arr((double[]){1, 2, 3}, &s3, 1, AM_F64);
  am_array v = t_arr((double[]){4, 5, 6}, &s3, 1, AM_F64);
  am_array d = am_matmul(u, v);
  t_expect_shape(d, NULL, 0, "dot is 0-d");
  t_expect(d, (double[]){32}, 1, 0, 0, "1-d dot");
  /* a row vector times a matrix, and a matrix times a column */
  am_array ab =
      am_matmul(t_arr((double[]){1, -1}, (int64_t[]){2}, 1, AM_F32), a);
  t_expect_shape(ab, (int64_t[]){2}, 1, "[2] @ [2,2]");
  t_expect(ab, (double[]){-2, -2}, 2, 0, 0, "[2] @ [2,2]");
  t_expect(am_matmul(a, t_arr((double[]){1, -1}, (int64_t[]){2}, 1, AM_F32)),
           (double[]){-1, -1}, 2, 0, 0, "[2,2] @ [2]");
  /* addmm: 2 * a @ I + 3 * [1, 1] */
  am_array id = t_arr((double[]){1, 0, 0, 1}, s22, 2, AM_F32);
  am_array c = t_arr((double[]){1, 1}, (int64_t[]){2}, 1, AM_F32);
  t_expect(am_addmm(c, a, id, 2, 3), (double[]){5, 7, 9, 11}, 4, 0, 0, "addmm");
  /* beta == 0 ignores c, NaN included (as BLAS) */
  am_array cn = t_arr((double[]){NAN, NAN}, (int64_t[]){2}, 1, AM_F32);
  t_expect(am_addmm(cn, a, id, 1, 0), (double[]){1, 2, 3, 4}, 4, 0, 0,
           "addmm beta 0 ignores NaN c");
  /* conv1d: out[t] = x[t] * 1 + x[t + 1] * 10, padded with zeros */
  am_array x = t_arr((double[]){1, 2, 3, 4}, (int64_t[]){1, 4, 1}, 3, AM_F32);
  am_array w = t_arr((double[]){1, 10}, (int64_t[]){1, 2, 1}, 3, AM_F32);
  t_expect(am_conv1d(x, w, 1, 0, 1, 1), (double[]){21, 32, 43}, 3, 0, 0,
           "conv1d");
  t_expect(am_conv1d(x, w, 1, 1, 1, 1), (double[]){10, 21, 32, 43, 4}, 5, 0, 0,
           "conv1d padded");
  t_expect(am_conv1d(x, w, 2, 1, 1, 1), (double[]){10, 32, 4}, 3, 0, 0,
           "conv1d stride 2");
  t_expect(am_conv1d(x, w, 1, 0, 2, 1), (double[]){31, 42}, 2, 0, 0,
           "conv1d dilation 2");
  /* depthwise: channel 0 sums neighbours, channel 1 differences them */
  am_array xd =
      t_arr((double[]){1, 2, 3, 4, 5, 6}, (int64_t[]){1, 3, 2}, 3, AM_F32);
  am_array wd = t_arr((double[]){1, 1, 1, -1}, (int64_t[]){2, 2, 1}, 3, AM_F32);
  t_expect(am_conv1d(xd, wd, 1, 0, 1, 2), (double[]){4, -2, 8, -2}, 4, 0, 0,
           "depthwise");
  am_scope_pop();
}

/* Outer products a [n, 1] @ b [1, m] of half values are exact in float32,
 * so the stored result must be exactly that product rounded once to the
 * half type (nearest even; overflow to inf, subnormals, NaN), with the
 * SIMD and with the portable rounding. */
static void test_rounding(void) {
  static const double av[] = {1.0009765625, -3.5, 200,  0.0009765625, 1.0078125,
                              65504,        NAN,  -0.0, 7.25e-5,      3};
  static const double bv[] = {1.0009765625, 400,        -0.0009765625,
                              0.33325195,   1.00390625, 2.0,
                              INFINITY,     1e-3,       0.5};
  const int n = 10, m = 9;
  static const am_dtype dts[] = {AM_F16, AM_BF16};
  for (int d = 0; d < 2; d++)
    for (int portable = 0; portable < 2; portable++) {
      am_linalg_force_portable(portable);
      am_scope_push();
      am_array a = t_arr(av, (int64_t[]){n, 1}, 2, dts[d]);
      am_array b = t_arr(bv, (int64_t[]){1, m}, 2, dts[d]);
      double ar[10], br[9], prod[90], want[90], got[90];
      CHECK(!am_array_read(a, AM_F64, ar, n) &&
                !am_array_read(b, AM_F64, br, m),
            "read");
      for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
          prod[i * m + j] = ar[i] * br[j]; /* exact in float32 */
      /* the reference rounding: astype of the exact float32 products */
      am_array ref =
          am_astype(t_arr(prod, (int64_t[]){n, m}, 2, AM_F32), dts[d]);
      CHECK(!am_array_read(ref, AM_F64, want, n * m), "read");
      am_array r = am_matmul(a, b);
      am_array rt = am_matmul(t_transposed(b), t_transposed(a));
      CHECK(!am_array_read(r, AM_F64, got, n * m), "read");
      int bad = 0;
      for (int i = 0; i < n * m && bad < 3; i++)
        if (!(got[i] == want[i] || (isnan(got[i]) && isnan(want[i])))) {
          bad++;
          CHECK(0, "%s%s rounding: %g * %g gave %.10g, want %.10g",
                am_dtype_name(dts[d]), portable ? " portable" : "", ar[i / m],
                br[i % m], got[i], want[i]);
        }
      if (!bad) t_pass++;
      CHECK(!am_array_read(rt, AM_F64, got, n * m), "read");
      bad = 0; /* (b^T a^T) [m, n]: the same products transposed */
      for (int j = 0; j < m && bad < 3; j++)
        for (int i = 0; i < n && bad < 3; i++) {
          double g = got[j * n + i], w = want[i * m + j];
          if (!(g == w || (isnan(g) && isnan(w)))) {
            bad++;
            CHECK(0, "%s transposed rounding [%d,%d]: %.10g, want %.10g",
                  am_dtype_name(dts[d]), j, i, g, w);
          }
        }
      if (!bad) t_pass++;
      am_scope_pop();
    }
  am_linalg_force_portable(false);
}

/* ---------------------------------------------------------------------
 *  Larger shapes against a naive product
 * --------------------------------------------------------------------- */

static double *values(am_array x) {
  int64_t n = am_array_size(x);
  double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  CHECK(am_array_read(x, AM_F64, v, n) == AM_OK, "read: %s", am_last_error());
  return v;
}

/* out[i] = a_i @ b_i over nb batches (a batch stride 0 broadcasts). */
static void ref_mm(const double *a, int64_t sa, const double *b, int64_t sb,
                   int64_t nb, int64_t M, int64_t K, int64_t N, double *out,
                   double *bound) {
  for (int64_t i = 0; i < nb; i++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double s = 0, t = 0;
        for (int64_t k = 0; k < K; k++) {
          double x = a[i * sa + m * K + k], y = b[i * sb + k * N + n];
          s += x * y;
          t += fabs(x * y);
        }
        out[(i * M + m) * N + n] = s;
        bound[(i * M + m) * N + n] = t;
      }
}

/* a [nba, M, K] (2-d when nba == 0, 1-d [K] when M < 0) @ b likewise. */
static void big_mm(t_rng *r, am_dtype dt, int64_t nba, int64_t nbb, int64_t M,
                   int64_t K, int64_t N, int la, int lb, const char *name) {
  am_scope_push();
  int64_t sa[3], sb[3], so[3];
  int na = 0, nb = 0, no = 0;
  if (nba) sa[na++] = nba;
  if (M >= 0) sa[na++] = M;
  sa[na++] = K;
  if (nbb) sb[nb++] = nbb;
  sb[nb++] = K;
  if (N >= 0) sb[nb++] = N;
  int64_t nbo = nba > nbb ? nba : nbb;
  if (nbo) so[no++] = nbo;
  if (M >= 0) so[no++] = M;
  if (N >= 0) so[no++] = N;
  am_array a = t_rand(r, sa, na, dt, -1, 1), b = t_rand(r, sb, nb, dt, -1, 1);
  double *av = values(a), *bv = values(b);
  int64_t m = M < 0 ? 1 : M, n = N < 0 ? 1 : N, nbatch = nbo ? nbo : 1;
  double *want = malloc((size_t)(nbatch * m * n) * sizeof *want);
  double *bound = malloc((size_t)(nbatch * m * n) * sizeof *bound);
  ref_mm(av, nba ? m * K : 0, bv, nbb ? K * n : 0, nbatch, m, K, n, want,
         bound);
  char what[200];
  snprintf(what, sizeof what, "%s %s (%s, %s)", name, am_dtype_name(dt),
           k_layout[la], k_layout[lb]);
  am_array out = am_matmul(layout(a, la), layout(b, lb));
  expect_bound(out, so, no, dt, want, bound, tol_of(dt), what);
  free(av);
  free(bv);
  free(want);
  free(bound);
  am_scope_pop();
}

static void test_big(void) {
  t_rng r = {77};
  static const am_dtype dts[] = {AM_F32, AM_F16, AM_BF16, AM_F64};
  for (int i = 0; i < 4; i++) {
    am_dtype dt = dts[i];
    for (int l = 0; l < 2; l++) {
      int lt = l ? L_TRANS : L_CONTIG;
      big_mm(&r, dt, 0, 0, 1, 700, 2100, L_CONTIG, lt, "decode row");
      big_mm(&r, dt, 0, 0, 3, 300, 1100, lt, lt, "few rows");
      big_mm(&r, dt, 0, 0, 8, 200, 300, L_SPREAD, lt, "8 rows");
      big_mm(&r, dt, 2, 0, 5, 200, 300, lt, lt, "batched few rows");
      big_mm(&r, dt, 0, 0, 9, 200, 300, lt, lt, "9 rows (BLAS)");
      big_mm(&r, dt, 0, 0, -1, 700, 2100, L_SPREAD, lt, "1-d row");
      big_mm(&r, dt, 0, 0, 900, 700, -1, lt, L_CONTIG, "matrix @ vector");
      big_mm(&r, dt, 0, 0, 150, 130, 170, lt, L_CONTIG, "gemm");
      big_mm(&r, dt, 0, 0, 150, 130, 170, L_CONTIG, lt, "gemm b");
      big_mm(&r, dt, 3, 0, 40, 50, 60, lt, lt, "folded batch");
      big_mm(&r, dt, 64, 64, 8, 9, 7, lt, L_CONTIG, "many small");
      big_mm(&r, dt, 64, 0, 8, 9, 7, L_CONTIG, lt, "many small bcast");
      big_mm(&r, dt, 6, 6, 1, 300, 200, L_CONTIG, lt, "batched rows");
      big_mm(&r, dt, 6, 0, 1, 300, 200, lt, lt, "batched rows bcast");
      big_mm(&r, dt, 3, 3, 70, 80, 60, lt, L_CONTIG, "batched medium");
    }
  }
  /* the portable kernels on the matrix-vector paths */
  am_linalg_force_portable(true);
  for (int i = 0; i < 3; i++) {
    big_mm(&r, dts[i], 0, 0, 1, 300, 1500, L_CONTIG, L_CONTIG, "portable row");
    big_mm(&r, dts[i], 0, 0, 1, 300, 1500, L_CONTIG, L_TRANS, "portable dot");
  }
  am_linalg_force_portable(false);
  /* another thread count: OpenBLAS follows the pool */
  int nt = am_get_num_threads();
  am_set_num_threads(3);
  big_mm(&r, AM_F32, 0, 0, 200, 150, 170, L_CONTIG, L_CONTIG, "3 threads");
  am_set_num_threads(1);
  big_mm(&r, AM_BF16, 0, 0, 1, 300, 1500, L_CONTIG, L_TRANS, "1 thread");
  am_set_num_threads(nt);
}

/* Depthwise and grouped conv1d on wide inputs against loops. */
static void big_conv(t_rng *r, am_dtype dt, int64_t N, int64_t L, int64_t C,
                     int64_t Cout, int64_t K, int s, int p, int d, int g,
                     const char *name) {
  am_scope_push();
  int64_t sx[3] = {N, L, C}, sw[3] = {Cout, K, C / g};
  am_array x = t_rand(r, sx, 3, dt, -1, 1), w = t_rand(r, sw, 3, dt, -1, 1);
  double *xv = values(x), *wv = values(w);
  int64_t Lo = (L + 2 * p - d * (K - 1) - 1) / s + 1, cig = C / g,
          cog = Cout / g, n = N * Lo * Cout;
  double *want = malloc((size_t)n * sizeof *want);
  double *bound = malloc((size_t)n * sizeof *bound);
  for (int64_t b = 0; b < N; b++)
    for (int64_t t = 0; t < Lo; t++)
      for (int64_t o = 0; o < Cout; o++) {
        double acc = 0, ab = 0;
        int64_t grp = o / cog;
        for (int64_t k = 0; k < K; k++) {
          int64_t pos = t * s + k * d - p;
          if (pos < 0 || pos >= L) continue;
          for (int64_t i = 0; i < cig; i++) {
            double u = xv[(b * L + pos) * C + grp * cig + i];
            double v = wv[(o * K + k) * cig + i];
            acc += u * v;
            ab += fabs(u * v);
          }
        }
        want[(b * Lo + t) * Cout + o] = acc;
        bound[(b * Lo + t) * Cout + o] = ab;
      }
  char what[200];
  snprintf(what, sizeof what, "%s %s", name, am_dtype_name(dt));
  am_array out = am_conv1d(x, w, s, p, d, g);
  expect_bound(out, (int64_t[]){N, Lo, Cout}, 3, dt, want, bound, tol_of(dt),
               what);
  free(xv);
  free(wv);
  free(want);
  free(bound);
  am_scope_pop();
}

static void test_big_conv(void) {
  t_rng r = {99};
  static const am_dtype dts[] = {AM_F32, AM_F16, AM_BF16, AM_F64};
  for (int i = 0; i < 4; i++) {
    am_dtype dt = dts[i];
    /* the DeltaNet short conv: decode (3 state rows + 1) and prefill */
    big_conv(&r, dt, 1, 4, 8192, 8192, 4, 1, 0, 1, 8192, "dw decode");
    big_conv(&r, dt, 2, 40, 1500, 1500, 4, 1, 3, 1, 1500, "dw prefill");
    big_conv(&r, dt, 2, 50, 24, 36, 5, 2, 2, 2, 3, "grouped");
    big_conv(&r, dt, 3, 60, 40, 30, 3, 1, 1, 1, 1, "dense");
    big_conv(&r, dt, 2, 30, 70, 90, 1, 1, 0, 1, 1, "pointwise");
  }
  /* long kernels (beyond the depthwise tap limit) and a wide im2col */
  big_conv(&r, AM_F32, 1, 100, 6, 6, 70, 1, 0, 1, 6, "dw long kernel");
  big_conv(&r, AM_F32, 2, 300, 64, 64, 9, 1, 4, 1, 1, "im2col blocks");
  am_linalg_force_portable(true);
  big_conv(&r, AM_F32, 2, 9, 1100, 1100, 4, 1, 0, 1, 1100, "dw portable");
  am_linalg_force_portable(false);
}

/* ---------------------------------------------------------------------
 *  Promotion, empty arrays, donation, compile
 * --------------------------------------------------------------------- */

static void test_dtypes(void) {
  am_scope_push();
  int64_t s[] = {2, 2};
  double av[] = {1, 2, 3, 4}, bv[] = {1, 0, 0, 1};
  am_array r = am_matmul(t_arr(av, s, 2, AM_F16), t_arr(bv, s, 2, AM_BF16));
  CHECK(am_array_dtype(r) == AM_F32, "f16 @ bf16 -> %s",
        am_dtype_name(am_array_dtype(r)));
  t_expect(r, av, 4, 0, 0, "f16 @ bf16");
  r = am_matmul(t_arr(av, s, 2, AM_F32), t_arr(bv, s, 2, AM_F64));
  CHECK(am_array_dtype(r) == AM_F64, "f32 @ f64 -> %s",
        am_dtype_name(am_array_dtype(r)));
  t_expect(r, av, 4, 0, 0, "f32 @ f64");
  /* a weak scalar c takes a @ b's dtype */
  r = am_addmm(am_float(1.5), t_arr(av, s, 2, AM_F16), t_arr(bv, s, 2, AM_F16),
               1, 2);
  CHECK(am_array_dtype(r) == AM_F16, "weak c keeps f16: %s",
        am_dtype_name(am_array_dtype(r)));
  t_expect(r, (double[]){4, 5, 6, 7}, 4, 0, 0, "addmm weak c");
  r = am_addmm(am_int(1), t_arr(av, s, 2, AM_BF16), t_arr(bv, s, 2, AM_BF16), 1,
               1);
  CHECK(am_array_dtype(r) == AM_BF16, "weak int c keeps bf16");
  t_expect(r, (double[]){2, 3, 4, 5}, 4, 0, 0, "addmm weak int c");
  /* conv1d promotes too */
  am_array cx = t_arr((double[]){1, 2, 3}, (int64_t[]){1, 3, 1}, 3, AM_F16);
  am_array cw = t_arr((double[]){1, 1}, (int64_t[]){1, 2, 1}, 3, AM_F32);
  r = am_conv1d(cx, cw, 1, 0, 1, 1);
  CHECK(am_array_dtype(r) == AM_F32, "conv1d f16 with f32 -> f32");
  t_expect(r, (double[]){3, 5}, 2, 0, 0, "conv1d promoted");
  am_scope_pop();
}

static void test_empty(void) {
  am_scope_push();
  am_array a = am_ones((int64_t[]){3, 0}, 2, AM_F32);
  am_array b = am_ones((int64_t[]){0, 4}, 2, AM_F32);
  am_array r = am_matmul(a, b);
  t_expect_shape(r, (int64_t[]){3, 4}, 2, "K = 0");
  double z[12] = {0};
  t_expect(r, z, 12, 0, 0, "K = 0 gives zeros");
  am_array rb = am_matmul(am_ones((int64_t[]){3, 0}, 2, AM_BF16),
                          am_ones((int64_t[]){0, 4}, 2, AM_BF16));
  t_expect(rb, z, 12, 0, 0, "K = 0 bf16");
  t_expect(am_matmul(am_ones((int64_t[]){1, 0}, 2, AM_F32), b), z, 4, 0, 0,
           "K = 0 row");
  am_array c = am_full((int64_t[]){4}, 1, 2, AM_F32);
  double twos[12] = {6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6};
  t_expect(am_addmm(c, a, b, 1, 3), twos, 12, 0, 0, "addmm K = 0");
  r = am_matmul(am_ones((int64_t[]){0, 3}, 2, AM_F32),
                am_ones((int64_t[]){3, 4}, 2, AM_F32));
  t_expect_shape(r, (int64_t[]){0, 4}, 2, "M = 0");
  t_expect(r, NULL, 0, 0, 0, "M = 0 evaluates");
  r = am_matmul(am_ones((int64_t[]){0, 2, 3}, 3, AM_F16),
                am_ones((int64_t[]){3, 4}, 2, AM_F16));
  t_expect_shape(r, (int64_t[]){0, 2, 4}, 3, "batch 0");
  t_expect(r, NULL, 0, 0, 0, "batch 0 evaluates");
  r = am_matmul(am_ones((int64_t[]){0}, 1, AM_F32),
                am_ones((int64_t[]){0}, 1, AM_F32));
  t_expect(r, z, 1, 0, 0, "empty dot is 0");
  /* conv1d: no batch, no input channels, input only padding */
  r = am_conv1d(am_ones((int64_t[]){0, 5, 2}, 3, AM_F32),
                am_ones((int64_t[]){3, 2, 2}, 3, AM_F32), 1, 0, 1, 1);
  t_expect_shape(r, (int64_t[]){0, 4, 3}, 3, "conv N = 0");
  t_expect(r, NULL, 0, 0, 0, "conv N = 0 evaluates");
  r = am_conv1d(am_ones((int64_t[]){1, 5, 0}, 3, AM_F32),
                am_ones((int64_t[]){2, 3, 0}, 3, AM_F32), 1, 0, 1, 1);
  t_expect(r, z, 6, 0, 0, "conv C_in = 0 gives zeros");
  r = am_conv1d(am_ones((int64_t[]){1, 0, 2}, 3, AM_F32),
                am_ones((int64_t[]){2, 3, 1}, 3, AM_F32), 1, 2, 1, 2);
  t_expect_shape(r, (int64_t[]){1, 2, 2}, 3, "conv L = 0 padded");
  t_expect(r, z, 4, 0, 0, "conv over padding only");
  am_scope_pop();
}

static void test_donation(void) {
  am_scope_push();
  int64_t s[] = {64, 48};
  t_rng r = {3};
  am_array a = t_rand(&r, (int64_t[]){64, 32}, 2, AM_F32, -1, 1);
  am_array b = t_rand(&r, (int64_t[]){32, 48}, 2, AM_F32, -1, 1);
  am_array c = t_rand(&r, s, 2, AM_F32, -1, 1);
  double *av = values(a), *bv = values(b), *cv = values(c);
  am_array out = am_keep(am_addmm(c, a, b, 0.5f, 2.0f));
  am_array plain = am_keep(am_addmm(c, a, b, 0.5f, 2.0f)); /* c alive */
  CHECK(am_eval(&plain, 1) == AM_OK, "eval");
  am_scope_pop(); /* c now lives only in out's graph */
  am_memory_stats s0 = am_memory_get_stats();
  double want[64 * 48], bound[64 * 48];
  ref_mm(av, 0, bv, 0, 1, 64, 32, 48, want, bound);
  for (int i = 0; i < 64 * 48; i++) {
    want[i] = 2 * cv[i] + 0.5 * want[i];
    bound[i] = 2 * fabs(cv[i]) + 0.5 * bound[i];
  }
  CHECK(am_eval(&out, 1) == AM_OK, "eval");
  CHECK(am_memory_get_stats().n_donated == s0.n_donated + 1,
        "addmm reuses a dead c");
  expect_bound(out, s, 2, AM_F32, want, bound, 1e-5, "addmm donated");
  expect_bound(plain, s, 2, AM_F32, want, bound, 1e-5, "addmm not donated");
  am_array_free(out);
  am_array_free(plain);
  free(av);
  free(bv);
  free(cv);
}

typedef struct {
  am_array w;
} lin_ctx;

static am_status linear(void *ctx, const am_array *in, int n_in, am_array *out,
                        int n_out) {
  lin_ctx *c = ctx;
  am_array y = am_matmul(in[0], am_transpose(c->w, NULL, 0));
  out[0] = am_conv1d(am_expand_dims(y, (int[]){0}, 1),
                     am_ones((int64_t[]){3, 2, 1}, 3, AM_F32), 1, 1, 1, 3);
  return AM_OK;
}

/* A shapeless compile replays matmul and conv1d with new row counts. */
static void test_compile(void) {
  am_scope_push();
  am_array w = am_keep(t_arr((double[]){1, 0, 1, 0, 1, 1, 1, 1, 0, 2, 0, 0},
                             (int64_t[]){3, 4}, 2, AM_F32));
  am_scope_pop();
  lin_ctx ctx = {w};
  am_compile_options o = {.shapeless = true};
  am_compiled f = am_compile(linear, &ctx, 1, 1, &o);
  CHECK(f != NULL, "compile: %s", am_last_error());
  for (int64_t m = 1; f && m <= 5; m += 2) {
    am_scope_push();
    double xv[20], y[15], want[18];
    for (int i = 0; i < m * 4; i++)
      xv[i] = (double)((i * 7) % 5) - 2;
    for (int64_t i = 0; i < m; i++) /* y = x @ w^T */
      for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int k = 0; k < 4; k++)
          s += xv[i * 4 + k] *
               ((double[]){1, 0, 1, 0, 1, 1, 1, 1, 0, 2, 0, 0})[j * 4 + k];
        y[i * 3 + j] = s;
      }
    /* depthwise, kernel [1, 1], padding 1: out[t] = y[t-1] + y[t] */
    for (int64_t t = 0; t <= m; t++)
      for (int j = 0; j < 3; j++)
        want[t * 3 + j] =
            (t > 0 ? y[(t - 1) * 3 + j] : 0) + (t < m ? y[t * 3 + j] : 0);
    am_array x = t_arr(xv, (int64_t[]){m, 4}, 2, AM_F32), out;
    CHECK(am_compiled_call(f, &x, &out) == AM_OK, "call: %s", am_last_error());
    t_expect(out, want, (m + 1) * 3, 0, 0, "compiled linear + conv");
    am_scope_pop();
  }
  if (f) {
    am_compile_stats st = am_compiled_stats(f);
    CHECK(st.traces == 1, "one trace for three shapes (%llu)",
          (unsigned long long)st.traces);
    am_compiled_free(f);
  }
  am_array_free(w);
}

/* ---------------------------------------------------------------------
 *  Errors
 * --------------------------------------------------------------------- */

static void test_errors(void) {
  am_scope_push();
  am_array m23 = am_ones((int64_t[]){2, 3}, 2, AM_F32);
  am_array m45 = am_ones((int64_t[]){4, 5}, 2, AM_F32);
  am_array e = am_matmul(m23, m45);
  t_expect_error(e, AM_ERR_SHAPE, "matmul", "inner dims");
  CHECK(strstr(am_array_error(e), "[2,3]") &&
            strstr(am_array_error(e), "[4,5]"),
        "message names the shapes: %s", am_array_error(e));
  t_expect_error(am_matmul(am_ones((int64_t[]){2, 2, 3}, 3, AM_F32),
                           am_ones((int64_t[]){3, 3, 4}, 3, AM_F32)),
                 AM_ERR_SHAPE, "matmul", "batch dims");
  t_expect_error(am_matmul(am_ones((int64_t[]){2, 3}, 2, AM_I32),
                           am_ones((int64_t[]){3, 2}, 2, AM_I32)),
                 AM_ERR_DTYPE, "matmul", "integer operands");
  t_expect_error(am_matmul(m23, am_ones((int64_t[]){3, 2}, 2, AM_I64)),
                 AM_ERR_DTYPE, "matmul", "float with integer");
  t_expect_error(am_matmul(am_ones((int64_t[]){3}, 1, AM_BOOL),
                           am_ones((int64_t[]){3}, 1, AM_BOOL)),
                 AM_ERR_DTYPE, "matmul", "bool operands");
  t_expect_error(am_matmul(am_scalar(2, AM_F32), m23), AM_ERR_SHAPE, "matmul",
                 "0-d operand");
  t_expect_error(am_matmul(NULL, m23), AM_ERR_INVALID_ARG, "matmul", "NULL");
  t_expect_error(am_matmul(e, m23), AM_ERR_SHAPE, "matmul",
                 "an error input propagates");
  t_expect_error(am_addmm(am_ones((int64_t[]){4}, 1, AM_F32), m23,
                          am_ones((int64_t[]){3, 5}, 2, AM_F32), 1, 1),
                 AM_ERR_SHAPE, "addmm", "c does not broadcast");
  t_expect_error(am_addmm(am_ones((int64_t[]){2, 2, 5}, 3, AM_F32), m23,
                          am_ones((int64_t[]){3, 5}, 2, AM_F32), 1, 1),
                 AM_ERR_SHAPE, "addmm", "c has more dims");
  t_expect_error(am_addmm(am_ones((int64_t[]){5}, 1, AM_I32), m23,
                          am_ones((int64_t[]){3, 5}, 2, AM_F32), 1, 1),
                 AM_ERR_DTYPE, "addmm", "integer c");
  t_expect_error(am_addmm(am_ones((int64_t[]){5}, 1, AM_F32), m23, m45, 1, 1),
                 AM_ERR_SHAPE, "addmm", "inner dims");
  t_expect_error(am_addmm(NULL, m23, m45, 1, 1), AM_ERR_INVALID_ARG, "addmm",
                 "NULL c");
  /* conv1d */
  am_array x = am_ones((int64_t[]){2, 5, 4}, 3, AM_F32);
  am_array w = am_ones((int64_t[]){6, 3, 2}, 3, AM_F32);
  t_expect_error(
      am_conv1d(am_ones((int64_t[]){5, 4}, 2, AM_F32), w, 1, 0, 1, 2),
      AM_ERR_SHAPE, "conv1d", "2-d x");
  t_expect_error(
      am_conv1d(x, am_ones((int64_t[]){6, 3}, 2, AM_F32), 1, 0, 1, 1),
      AM_ERR_SHAPE, "conv1d", "2-d w");
  t_expect_error(am_conv1d(x, w, 1, 0, 1, 3), AM_ERR_SHAPE, "conv1d",
                 "groups not dividing C_in");
  t_expect_error(
      am_conv1d(x, am_ones((int64_t[]){5, 3, 2}, 3, AM_F32), 1, 0, 1, 2),
      AM_ERR_SHAPE, "conv1d", "groups not dividing C_out");
  t_expect_error(am_conv1d(x, w, 1, 0, 1, 1), AM_ERR_SHAPE, "conv1d",
                 "w channels");
  t_expect_error(
      am_conv1d(x, am_ones((int64_t[]){6, 6, 2}, 3, AM_F32), 1, 0, 1, 2),
      AM_ERR_SHAPE, "conv1d", "kernel longer than input");
  t_expect_error(am_conv1d(x, w, 1, 0, 3, 2), AM_ERR_SHAPE, "conv1d",
                 "dilated kernel longer than input");
  CHECK(!am_array_status(am_conv1d(x, w, 1, 1, 3, 2)), "padding makes room: %s",
        am_last_error());
  t_expect_error(
      am_conv1d(x, am_ones((int64_t[]){6, 0, 2}, 3, AM_F32), 1, 0, 1, 2),
      AM_ERR_SHAPE, "conv1d", "empty kernel");
  t_expect_error(am_conv1d(x, w, 0, 0, 1, 2), AM_ERR_INVALID_ARG, "conv1d",
                 "stride 0");
  t_expect_error(am_conv1d(x, w, 1, -1, 1, 2), AM_ERR_INVALID_ARG, "conv1d",
                 "negative padding");
  t_expect_error(am_conv1d(x, w, 1, 0, 0, 2), AM_ERR_INVALID_ARG, "conv1d",
                 "dilation 0");
  t_expect_error(am_conv1d(x, w, 1, 0, 1, 0), AM_ERR_INVALID_ARG, "conv1d",
                 "groups 0");
  t_expect_error(am_conv1d(am_ones((int64_t[]){2, 5, 4}, 3, AM_I32),
                           am_ones((int64_t[]){6, 3, 2}, 3, AM_I32), 1, 0, 1,
                           2),
                 AM_ERR_DTYPE, "conv1d", "integer conv");
  t_expect_error(am_conv1d(x, NULL, 1, 0, 1, 2), AM_ERR_INVALID_ARG, "conv1d",
                 "NULL w");
  am_scope_pop();
}

int main(void) {
  G = t_golden_load("golden/linalg.txt");
  test_hand();
  test_golden();
  test_rounding();
  test_big();
  test_big_conv();
  test_dtypes();
  test_empty();
  test_donation();
  test_compile();
  test_errors();
  t_golden_free(G);
  return t_summary();
}
