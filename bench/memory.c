/*
 * bench/memory — elementwise ops and reductions on 64 MiB float32 arrays
 * against the memory bandwidth measured in the same run.
 *
 * Limits measured here, on all threads of the pool, best of several reps:
 *  - read:       sum of a 64 MiB array (AVX2 loads when available);
 *  - read+write: b[i] = a[i] * 2 over 64 MiB with ordinary stores, the
 *                same traffic pattern a unary op has (read, write-allocate,
 *                write back).
 * Each op's bytes are its logical traffic (inputs read + output written)
 * divided by its time; unary/binary ops compare to read+write bandwidth
 * (binary ops read twice as much, so the mix is close), reductions to read
 * bandwidth. Last line: BENCH memory key=value ...
 */
#include "bench_util.h"

#define N ((int64_t)16 << 20) /* 16M floats = 64 MiB */
#define REPS 7

/* Times am_eval of the graph `make(x, y)` builds, best of REPS. */
typedef am_array (*make_fn)(am_array x, am_array y);
static double time_op(make_fn make, am_array x, am_array y) {
  double best = 1e30;
  for (int r = 0; r < REPS; r++) {
    am_array out = make(x, y);
    double t0 = bench_now();
    if (am_eval(&out, 1) != AM_OK) {
      fprintf(stderr, "eval failed: %s\n", am_last_error());
      exit(1);
    }
    double t = bench_now() - t0;
    am_array_free(out);
    if (t < best) best = t;
  }
  return best;
}

static am_array op_neg(am_array x, am_array y) {
  return am_neg(x);
}
static am_array op_exp(am_array x, am_array y) {
  return am_exp(x);
}
static am_array op_tanh(am_array x, am_array y) {
  return am_tanh(x);
}
static am_array op_add(am_array x, am_array y) {
  return am_add(x, y);
}
static am_array op_mul(am_array x, am_array y) {
  return am_mul(x, y);
}
static am_array op_max2(am_array x, am_array y) {
  return am_maximum(x, y);
}
static am_array op_sum(am_array x, am_array y) {
  return am_sum(x, NULL, 0, false);
}
static am_array op_max(am_array x, am_array y) {
  return am_max(x, NULL, 0, false);
}
static am_array op_sum_rows(am_array x, am_array y) {
  return am_sum(x, (int[]){-1}, 1, false); /* x viewed as [4096, 4096] */
}
static am_array op_sum_cols(am_array x, am_array y) {
  return am_sum(x, (int[]){0}, 1, false);
}

int main(void) {
  int nt = am_get_num_threads();
  float *a = aligned_alloc(64, N * sizeof(float));
  float *b = aligned_alloc(64, N * sizeof(float));
  for (int64_t i = 0; i < N; i++)
    a[i] = (float)(i % 1000) * 1e-3f - 0.5f;
  for (int64_t i = 0; i < N; i++)
    b[i] = (float)(i % 777) * 1e-3f;
  double bytes = (double)N * 4;
  double read_gbs = bench_bandwidth_gbs((size_t)bytes, false);
  double rw_gbs = bench_bandwidth_gbs((size_t)bytes, true);
  printf("threads %d, arrays of %lld float32 (64 MiB)\n", nt, (long long)N);
  printf("measured read bandwidth       %7.2f GB/s\n", read_gbs);
  printf("measured read+write bandwidth %7.2f GB/s\n", rw_gbs);

  int64_t shape[] = {4096, 4096};
  am_array x = am_array_new_data(a, shape, 2, AM_F32);
  am_array y = am_array_new_data(b, shape, 2, AM_F32);
  struct {
    const char *name;
    make_fn fn;
    int n_read, n_write;
  } ops[] = {
      {"neg", op_neg, 1, 1},           {"exp", op_exp, 1, 1},
      {"tanh", op_tanh, 1, 1},         {"add", op_add, 2, 1},
      {"mul", op_mul, 2, 1},           {"maximum", op_max2, 2, 1},
      {"sum_all", op_sum, 1, 0},       {"max_all", op_max, 1, 0},
      {"sum_rows", op_sum_rows, 1, 0}, {"sum_cols", op_sum_cols, 1, 0},
  };
  /* Time the ops first, then measure the limits once more and keep the
   * best of both measurements: a limit measured low (a busy moment) would
   * flatter every ratio. */
  size_t n_ops = sizeof ops / sizeof *ops;
  double t_op[16];
  for (size_t i = 0; i < n_ops; i++)
    t_op[i] = time_op(ops[i].fn, x, y);
  double r2 = bench_bandwidth_gbs((size_t)bytes, false);
  double w2 = bench_bandwidth_gbs((size_t)bytes, true);
  if (r2 > read_gbs) read_gbs = r2;
  if (w2 > rw_gbs) rw_gbs = w2;
  printf("limits (best of two measurements): read %.2f GB/s, read+write "
         "%.2f GB/s\n",
         read_gbs, rw_gbs);
  char line[2048];
  int k = snprintf(line, sizeof line,
                   "BENCH memory threads=%d read_gbs=%.2f rw_gbs=%.2f", nt,
                   read_gbs, rw_gbs);
  double min_ratio = 1e9;
  printf("%-10s %9s %9s %7s\n", "op", "ms", "GB/s", "ratio");
  for (size_t i = 0; i < n_ops; i++) {
    double t = t_op[i];
    double gbs = bytes * (ops[i].n_read + ops[i].n_write) / t / 1e9;
    double ratio = gbs / (ops[i].n_write ? rw_gbs : read_gbs);
    if (ratio < min_ratio) min_ratio = ratio;
    printf("%-10s %9.3f %9.2f %6.0f%%\n", ops[i].name, t * 1e3, gbs,
           ratio * 100);
    k += snprintf(line + k, sizeof line - (size_t)k, " %s_ratio=%.2f",
                  ops[i].name, ratio);
  }
  printf("%s min_ratio=%.2f\n", line, min_ratio);
  am_array_free(x);
  am_array_free(y);
  free(a);
  free(b);
  return 0;
}
