/*
 * bench_gemm — matmul throughput against OpenBLAS called directly.
 *
 *  - float32 2048 x 2048 x 2048 through am_matmul (evaluated, best of
 *    several reps) and through cblas_sgemm on the same data in the same
 *    run: GFLOP/s of both and their ratio (the graph, the output
 *    allocation and the dispatch should cost next to nothing);
 *  - the same product from float16 and bfloat16 inputs (converted to
 *    float32, sgemm, rounded);
 *  - the decode GEMV 1 x 2048 @ 2048 x 8192 (float32 and bfloat16, with the
 *    weight row-major and as a transposed view, x @ W.T), as GB/s of
 *    weight streamed against the read bandwidth measured in the same run.
 * The last line is `BENCH gemm key=value ...`.
 */
#include "bench_util.h"

#include <cblas.h>

static am_array rand_matrix(int64_t rows, int64_t cols, am_dtype dt,
                            uint32_t seed) {
  int64_t n = rows * cols, shape[2] = {rows, cols};
  float *v = malloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
  am_array a = am_array_new_data(v, shape, 2, AM_F32);
  free(v);
  if (dt != AM_F32) {
    am_array c = am_astype(a, dt);
    am_array_free(a);
    a = c;
  }
  if (am_eval(&a, 1) != AM_OK) fprintf(stderr, "eval: %s\n", am_last_error());
  return a;
}

/* Best seconds of `reps` evaluations of a @ b (b transposed view when bt). */
static double time_matmul(am_array a, am_array b, bool bt, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    am_scope_push();
    am_array bb = bt ? am_transpose(b, NULL, 0) : b;
    if (bt && am_eval(&bb, 1) != AM_OK)
      fprintf(stderr, "%s\n", am_last_error());
    am_array y = am_keep(am_matmul(a, bb));
    am_scope_pop();
    double t0 = bench_now();
    if (am_eval(&y, 1) != AM_OK) fprintf(stderr, "%s\n", am_last_error());
    double t = bench_now() - t0;
    if (t < best) best = t;
    am_array_free(y);
  }
  return best;
}

int main(void) {
  const int64_t n = 2048, gk = 2048, gn = 8192;
  int reps = 5;
  double flop = 2.0 * (double)n * n * n;

  /* float32 via am_matmul, then sgemm on the same data */
  am_array a = rand_matrix(n, n, AM_F32, 1), b = rand_matrix(n, n, AM_F32, 2);
  (void)time_matmul(a, b, false, 1); /* warm: OpenBLAS threads, pool */
  double t_am = time_matmul(a, b, false, reps);
  float *c = aligned_alloc(64, (size_t)(n * n) * sizeof *c);
  const float *pa = am_array_data(a), *pb = am_array_data(b);
  double t_blas = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = bench_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n,
                (int)n, 1.0f, pa, (int)n, pb, (int)n, 0.0f, c, (int)n);
    double t = bench_now() - t0;
    if (t < t_blas) t_blas = t;
  }
  free(c);
  double g_am = flop / t_am / 1e9, g_blas = flop / t_blas / 1e9;
  printf("f32 %lldx%lldx%lld: am_matmul %.1f GFLOP/s, cblas_sgemm %.1f "
         "GFLOP/s, ratio %.3f\n",
         (long long)n, (long long)n, (long long)n, g_am, g_blas, g_am / g_blas);

  /* half-precision inputs */
  double g_half[2];
  const am_dtype half[2] = {AM_F16, AM_BF16};
  for (int h = 0; h < 2; h++) {
    am_array ah = am_astype(a, half[h]), bh = am_astype(b, half[h]);
    am_array both[2] = {ah, bh};
    if (am_eval(both, 2) != AM_OK) fprintf(stderr, "%s\n", am_last_error());
    g_half[h] = flop / time_matmul(ah, bh, false, reps) / 1e9;
    printf("%s %lldx%lldx%lld: am_matmul %.1f GFLOP/s\n",
           am_dtype_name(half[h]), (long long)n, (long long)n, (long long)n,
           g_half[h]);
    am_array_free(ah);
    am_array_free(bh);
  }
  am_array_free(a);
  am_array_free(b);

  /* decode GEMV: 1 x gk @ gk x gn, the weight streamed once per call */
  double read = bench_bandwidth_gbs((size_t)(gk * gn) * 4, false);
  double gbs[2][2];
  const am_dtype gd[2] = {AM_F32, AM_BF16};
  for (int d = 0; d < 2; d++) {
    am_array x = rand_matrix(1, gk, gd[d], 3);
    am_array w = rand_matrix(gk, gn, gd[d], 4);  /* [K, N] */
    am_array wt = rand_matrix(gn, gk, gd[d], 5); /* [N, K]: x @ W.T */
    double bytes = (double)(gk * gn) * (double)am_dtype_size(gd[d]);
    (void)time_matmul(x, w, false, 2);
    gbs[d][0] = bytes / time_matmul(x, w, false, 20) / 1e9;
    gbs[d][1] = bytes / time_matmul(x, wt, true, 20) / 1e9;
    printf("gemv %s 1x%lld @ %lldx%lld: %.1f GB/s (W row-major), %.1f GB/s "
           "(x @ W.T); read bandwidth %.1f GB/s\n",
           am_dtype_name(gd[d]), (long long)gk, (long long)gk, (long long)gn,
           gbs[d][0], gbs[d][1], read);
    am_array_free(x);
    am_array_free(w);
    am_array_free(wt);
  }
  printf("BENCH gemm threads=%d f32_gflops=%.1f blas_gflops=%.1f ratio=%.3f "
         "f16_gflops=%.1f bf16_gflops=%.1f gemv_f32_gbs=%.1f "
         "gemv_f32_t_gbs=%.1f gemv_bf16_gbs=%.1f gemv_bf16_t_gbs=%.1f "
         "read_gbs=%.1f gemv_frac=%.2f\n",
         am_get_num_threads(), g_am, g_blas, g_am / g_blas, g_half[0],
         g_half[1], gbs[0][0], gbs[0][1], gbs[1][0], gbs[1][1], read,
         gbs[0][0] / read);
  return 0;
}
