/*
 * gated_delta.c — the CPU gated delta-rule step (a custom kernel,
 * src/kernel/gated_delta.h) on Qwen3-Next-80B-A3B shapes: Hk=16, Hv=32,
 * Dk=Dv=128, B=1. T=1 (decode) is bound by the state traffic: each step
 * reads and writes the 2 MiB float32 state of one layer. As in the model,
 * the steps cycle over 36 layers' states (72 MiB), so the state comes from
 * memory, and the result is compared with the read+write bandwidth
 * measured in the same run over the same bytes. T=512 (prefill) reports
 * tokens/s and GFLOP/s (about 6 * Dk flops per state element per token).
 * AM_BENCH_QUICK=1 runs a short smoke version.
 */
#include "kernel/gated_delta.h"
#include "bench_util.h"

enum { HK = 16, HV = 32, DK = 128, DV = 128, LAYERS = 36 };

static am_array rnd(const int64_t *shape, int nd, float lo, float hi,
                    uint64_t seed) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  float *v = malloc((size_t)n * sizeof *v);
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < n; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v[i] = lo + (hi - lo) * (float)(s >> 40) / (float)(1 << 24);
  }
  am_array a = am_array_new_data(v, shape, nd, AM_F32);
  free(v);
  return a;
}

/* Seconds per step over `reps` steps cycling over the layer states. */
static double run(am_kernel k, int64_t T, int layers, int reps) {
  int64_t qs[] = {1, T, HK, DK}, vs[] = {1, T, HV, DV}, gs[] = {1, T, HV},
          ss[] = {1, HV, DV, DK};
  am_array in[5] = {rnd(qs, 4, -.1f, .1f, 1), rnd(qs, 4, -.1f, .1f, 2),
                    rnd(vs, 4, -1, 1, 3), rnd(gs, 3, .9f, 1, 4),
                    rnd(gs, 3, 0, 1, 5)};
  am_array *st = malloc((size_t)layers * sizeof *st);
  for (int l = 0; l < layers; l++)
    st[l] = rnd(ss, 4, -1, 1, 10 + (uint64_t)l);
  am_eval(in, 5) == AM_OK &&am_eval(st, layers) == AM_OK
      ? (void)0
      : (void)fprintf(stderr, "%s\n", am_last_error());
  double best = 1e30;
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up round */
    double t0 = bench_now();
    for (int l = 0; l < layers; l++) {
      am_array args[6] = {in[0], in[1], in[2], in[3], in[4], st[l]}, out[2];
      if (am_kernel_apply(k, args, 6, NULL, out) || am_eval(out, 2) != AM_OK) {
        fprintf(stderr, "gated_delta: %s\n", am_last_error());
        exit(1);
      }
      am_array_free(out[0]);
      am_array_free(st[l]);
      st[l] = out[1];
    }
    double dt = (bench_now() - t0) / layers;
    if (r >= 0 && dt < best) best = dt;
  }
  for (int l = 0; l < layers; l++)
    am_array_free(st[l]);
  for (int i = 0; i < 5; i++)
    am_array_free(in[i]);
  free(st);
  return best;
}

int main(void) {
  const char *q = getenv("AM_BENCH_QUICK");
  bool quick = q && *q && *q != '0';
  am_kernel k = gd_kernel_new(true);
  size_t state = (size_t)HV * DV * DK * 4;
  int layers = quick ? 4 : LAYERS;
  double bw = bench_bandwidth_gbs(state * (size_t)layers, true);
  double t1 = run(k, 1, layers, quick ? 2 : 20);
  double gbs1 = 2.0 * (double)state / t1 * 1e-9;
  int64_t T = quick ? 32 : 512;
  double tp = run(k, T, 1, quick ? 1 : 3);
  double gflops = 6.0 * HV * DV * DK * (double)T / tp * 1e-9;
  printf("gated delta step, Hk=%d Hv=%d Dk=%d Dv=%d B=1, %d threads\n", HK, HV,
         DK, DV, am_get_num_threads());
  printf("  T=1:   %.1f us/layer, state %.1f GB/s (read+write) vs %.1f GB/s "
         "measured: %.0f%%\n",
         t1 * 1e6, gbs1, bw, 100 * gbs1 / bw);
  printf("  T=%lld: %.2f ms, %.0f tok/s, %.1f GFLOP/s\n", (long long)T,
         tp * 1e3, (double)T / tp, gflops);
  printf("BENCH gated_delta t1_us=%.1f t1_state_gbs=%.1f rw_gbs=%.1f "
         "t1_frac=%.2f t%lld_ms=%.2f t%lld_tok_s=%.0f t%lld_gflops=%.1f\n",
         t1 * 1e6, gbs1, bw, gbs1 / bw, (long long)T, tp * 1e3, (long long)T,
         (double)T / tp, (long long)T, gflops);
  am_kernel_free(k);
  return 0;
}
