/*
 * bench/attention — decode attention as in Qwen3-Next's full-attention
 * layers (16 query heads over 2 KV heads, head dim 256, bfloat16 KV cache
 * of 32768 tokens: K and V [1, 2, 32768, 256], q [1, 16, 1, 256]), as
 * bytes of K/V read per second against the read bandwidth measured in
 * the same run (goal >= 70 %); and rms_norm / softmax on 64 MiB of
 * float32 against the read+write bandwidth.
 * Last line: BENCH attention key=value ...
 */
#include "bench_util.h"

#define REPS 15

static double best_eval(am_array (*make)(void *), void *ctx) {
  double best = 1e30;
  for (int r = 0; r < REPS; r++) {
    am_array y = make(ctx);
    double t0 = bench_now();
    if (am_eval(&y, 1) != AM_OK) {
      fprintf(stderr, "eval failed: %s\n", am_last_error());
      exit(1);
    }
    double t = bench_now() - t0;
    if (t < best) best = t;
    am_array_free(y);
  }
  return best;
}

typedef struct {
  am_array q, k, v, x, w;
} bench_in;

static am_array make_sdpa(void *c) {
  bench_in *b = c;
  return am_sdpa(b->q, b->k, b->v, 1.0f / 16, NULL, false, NULL);
}
static am_array make_rms(void *c) {
  bench_in *b = c;
  return am_rms_norm(b->x, b->w, 1e-6f);
}
static am_array make_softmax(void *c) {
  bench_in *b = c;
  return am_softmax(b->x, -1);
}

/* A random evaluated array of dtype dt. */
static am_array rand_array(const int64_t *shape, int nd, am_dtype dt,
                           uint64_t seed) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  float *v = malloc((size_t)n * sizeof *v);
  uint64_t s = seed;
  for (int64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = (float)((s >> 40) & 0xffff) / 32768.0f - 1.0f;
  }
  am_array f = am_array_new_data(v, shape, nd, AM_F32);
  free(v);
  if (dt == AM_F32) return f;
  am_array a = am_astype(f, dt);
  am_array_free(f);
  if (am_eval(&a, 1) != AM_OK) exit(1);
  return a;
}

int main(void) {
  const int64_t lkv = 32768, d = 256;
  int64_t qs[4] = {1, 16, 1, d}, ks[4] = {1, 2, lkv, d};
  bench_in b = {0};
  b.q = rand_array(qs, 4, AM_BF16, 1);
  b.k = rand_array(ks, 4, AM_BF16, 2);
  b.v = rand_array(ks, 4, AM_BF16, 3);
  size_t kv_bytes = 2 * (size_t)(2 * lkv * d) * 2;

  double read_bw = bench_bandwidth_gbs(kv_bytes, false);
  double t_att = best_eval(make_sdpa, &b);
  double att_gbs = (double)kv_bytes / t_att / 1e9;

  /* 64 MiB of float32 rows of 4096 */
  int64_t xs[2] = {4096, 4096};
  size_t x_bytes = (size_t)xs[0] * (size_t)xs[1] * 4;
  b.x = rand_array(xs, 2, AM_F32, 4);
  b.w = rand_array(xs + 1, 1, AM_F32, 5);
  double rw_bw = bench_bandwidth_gbs(x_bytes, true);
  double t_rms = best_eval(make_rms, &b);
  double t_sm = best_eval(make_softmax, &b);
  double rms_gbs = 2.0 * (double)x_bytes / t_rms / 1e9;
  double sm_gbs = 2.0 * (double)x_bytes / t_sm / 1e9;

  int nt = am_get_num_threads();
  printf("threads %d\n", nt);
  printf("decode sdpa (16 q heads / 2 kv heads, D 256, %lld bf16 keys): "
         "%.3f ms, K/V %.1f GB/s of %.1f GB/s read bandwidth (%.0f%%)\n",
         (long long)lkv, t_att * 1e3, att_gbs, read_bw,
         100 * att_gbs / read_bw);
  printf("rms_norm 64 MiB f32: %.3f ms, %.1f GB/s; softmax: %.3f ms, "
         "%.1f GB/s; read+write bandwidth %.1f GB/s (%.0f%%, %.0f%%)\n",
         t_rms * 1e3, rms_gbs, t_sm * 1e3, sm_gbs, rw_bw, 100 * rms_gbs / rw_bw,
         100 * sm_gbs / rw_bw);
  printf("BENCH attention threads=%d decode_ms=%.3f kv_gbs=%.2f "
         "read_bw_gbs=%.2f decode_pct=%.1f rms_norm_gbs=%.2f "
         "softmax_gbs=%.2f rw_bw_gbs=%.2f rms_norm_pct=%.1f "
         "softmax_pct=%.1f goal_pct=70\n",
         nt, t_att * 1e3, att_gbs, read_bw, 100 * att_gbs / read_bw, rms_gbs,
         sm_gbs, rw_bw, 100 * rms_gbs / rw_bw, 100 * sm_gbs / rw_bw);
  am_array_free(b.q);
  am_array_free(b.k);
  am_array_free(b.v);
  am_array_free(b.x);
  am_array_free(b.w);
  return 0;
}
