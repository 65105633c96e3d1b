/*
 * bench/qmm.c — quantized matmuls on Qwen3-Next-80B-A3B shapes: hidden
 * 2048, 512 experts of intermediate size 512, top-10 routing, 4-bit affine
 * weights in groups of 64 with bfloat16 scales and biases (MLX layout).
 *
 * Decode (one token):
 *  - gate+up: gather_qmm of x [1,1,1,1,2048] with the stacked [512, 1024,
 *    2048] gate/up projections, 10 random experts per call;
 *  - down: gather_qmm of [1,1,10,1,512] with [512, 2048, 512];
 *  - dense: quantized_matmul 2048 -> 12288 (4 copies cycled, so the weights
 *    come from memory, not the L3).
 * Each reports the GB/s of packed weights + scales + biases read and the
 * ratio to the read bandwidth measured in the same run.
 * Prefill (512 tokens, random top-10): gate+up with the pairs sorted by
 * expert (mlx-lm's _gather_sort: sorted_indices), unsorted (amorph groups
 * the pairs itself), and the naive one-matmul-per-pair path (grouping
 * off), with the number of distinct experts (each read once when grouped).
 *
 * The weights are random words (no quantization pass): ~0.9 GB in all.
 * AM_BENCH_QUICK=1 shrinks the expert count for a smoke run.
 */
#include "bench_util.h"
#include "ops/quant_formats.h"

enum { D = 2048, I = 512, TOPK = 10, GS = 64, BITS = 4, DENSE_N = 12288 };

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void free_ctx(void *p) {
  free(p);
}

/* A borrowed array over freshly filled memory. */
static am_array fill_array(const int64_t *shape, int nd, am_dtype dt,
                           int kind) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  size_t bytes = (size_t)n * am_dtype_size(dt);
  uint64_t *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
  if (!p) {
    fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  size_t nw = (bytes + 7) / 8;
  if (kind == 0) { /* random words */
    for (size_t i = 0; i < nw; i++)
      p[i] = rnd();
  } else { /* bf16 scales (kind 1) or biases (kind 2), small values */
    uint16_t *h = (uint16_t *)p;
    for (int64_t i = 0; i < n; i++) {
      float v = (float)(rnd() >> 40) * 0x1p-24f;
      h[i] = am_f32_to_bf16(kind == 1 ? 0.002f + 0.01f * v : -0.08f * v);
    }
  }
  return am_array_new_data_managed(p, shape, nd, dt, free_ctx, p);
}

typedef struct {
  am_array w, s, b;
  double bytes_per_matrix;
} qweight;

static qweight make_qweight(int64_t e, int64_t rows, int64_t k) {
  qweight q;
  int64_t ws[3] = {e, rows, k * BITS / 32}, ss[3] = {e, rows, k / GS};
  q.w = fill_array(ws, 3, AM_U32, 0);
  q.s = fill_array(ss, 3, AM_BF16, 1);
  q.b = fill_array(ss, 3, AM_BF16, 2);
  q.bytes_per_matrix = (double)rows * (double)(k * BITS / 8) +
                       2.0 * 2.0 * (double)rows * (k / GS);
  return q;
}

static am_array rand_bf16(const int64_t *shape, int nd) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  float *v = malloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++)
    v[i] = (float)((double)(rnd() >> 11) * 0x1p-53 * 2 - 1);
  am_array a = am_astype(am_array_new_data(v, shape, nd, AM_F32), AM_BF16);
  free(v);
  if (am_eval(&a, 1) != AM_OK) exit(1);
  return a;
}

/* Distinct experts for one token. */
static void route(int64_t n_exp, int32_t *out) {
  for (int j = 0; j < TOPK; j++) {
    int32_t e;
    bool dup;
    do {
      e = (int32_t)(rnd() % (uint64_t)n_exp);
      dup = false;
      for (int i = 0; i < j; i++)
        dup |= out[i] == e;
    } while (dup);
    out[j] = e;
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_d);
  return t[n / 2];
}

static void must(am_status s) {
  if (s != AM_OK) {
    fprintf(stderr, "error: %s\n", am_last_error());
    exit(1);
  }
}

int main(void) {
  const char *q = getenv("AM_BENCH_QUICK");
  bool quick = q && *q && *q != '0';
  int64_t E = quick ? 32 : 512;
  int iters = quick ? 5 : 40;
  printf("qmm bench: hidden %d, %lld experts of %d, top-%d, %d-bit g%d, "
         "%d threads\n",
         D, (long long)E, I, TOPK, BITS, GS, am_get_num_threads());
  double t0 = bench_now();
  qweight gu = make_qweight(E, 2 * I, D); /* gate and up, stacked */
  qweight dn = make_qweight(E, D, I);
  qweight dense[4];
  for (int i = 0; i < 4; i++)
    dense[i] = make_qweight(1, DENSE_N, D);
  double bw = bench_bandwidth_gbs((size_t)256 << 20, false);
  printf("setup %.1f s; read bandwidth %.1f GB/s\n", bench_now() - t0, bw);

  /* ---------------------------------------------------------- decode */
  am_array x1 = rand_bf16((int64_t[]){1, 1, 1, 1, D}, 5);
  am_array h1 = rand_bf16((int64_t[]){1, 1, TOPK, 1, I}, 5);
  am_array xd = rand_bf16((int64_t[]){1, D}, 2);
  double *tg = malloc((size_t)iters * sizeof *tg),
         *td = malloc((size_t)iters * sizeof *td),
         *tn = malloc((size_t)iters * sizeof *tn);
  for (int it = 0; it < iters; it++) {
    int32_t ex[TOPK];
    route(E, ex);
    am_array idx = am_array_new_data(ex, (int64_t[]){1, 1, TOPK}, 3, AM_I32);
    must(am_eval(&idx, 1));
    double a = bench_now();
    am_array y = am_gather_qmm(x1, gu.w, gu.s, gu.b, NULL, idx, true, GS, BITS,
                               AM_QUANT_AFFINE, false);
    must(am_eval(&y, 1));
    double b = bench_now();
    am_array z = am_gather_qmm(h1, dn.w, dn.s, dn.b, NULL, idx, true, GS, BITS,
                               AM_QUANT_AFFINE, false);
    must(am_eval(&z, 1));
    double c = bench_now();
    const qweight *dq = &dense[it % 4];
    am_array v = am_quantized_matmul(xd, dq->w, dq->s, dq->b, true, GS, BITS,
                                     AM_QUANT_AFFINE);
    must(am_eval(&v, 1));
    double d = bench_now();
    tg[it] = b - a;
    td[it] = c - b;
    tn[it] = d - c;
    am_array_free(y);
    am_array_free(z);
    am_array_free(v);
    am_array_free(idx);
  }
  double mg = median(tg, iters), md = median(td, iters), mn = median(tn, iters);
  double gbg = TOPK * gu.bytes_per_matrix / mg / 1e9;
  double gbd = TOPK * dn.bytes_per_matrix / md / 1e9;
  double gbn = dense[0].bytes_per_matrix / mn / 1e9;
  printf("decode gate+up  (10 x 2048->1024): %8.1f us  %6.1f GB/s  %4.0f%% "
         "of read bandwidth\n",
         mg * 1e6, gbg, 100 * gbg / bw);
  printf("decode down     (10 x 512->2048):  %8.1f us  %6.1f GB/s  %4.0f%%\n",
         md * 1e6, gbd, 100 * gbd / bw);
  printf("decode dense    (2048->12288):     %8.1f us  %6.1f GB/s  %4.0f%%\n",
         mn * 1e6, gbn, 100 * gbn / bw);

  /* --------------------------------------------------------- prefill */
  int64_t T = quick ? 64 : 512, PP = T * TOPK;
  int32_t *ex = malloc((size_t)PP * sizeof *ex);
  for (int64_t t = 0; t < T; t++)
    route(E, ex + t * TOPK);
  /* mlx-lm's _gather_sort: pairs sorted by expert, tokens gathered */
  int64_t *ord = malloc((size_t)PP * sizeof *ord);
  int64_t *cnt = calloc((size_t)E + 1, sizeof *cnt);
  for (int64_t p = 0; p < PP; p++)
    cnt[ex[p] + 1]++;
  int64_t used = 0;
  for (int64_t e = 0; e < E; e++) {
    used += cnt[e + 1] != 0;
    cnt[e + 1] += cnt[e];
  }
  for (int64_t p = 0; p < PP; p++)
    ord[cnt[ex[p]]++] = p;
  int32_t *ls = malloc((size_t)PP * sizeof *ls), *rs = malloc((size_t)PP * 4);
  for (int64_t i = 0; i < PP; i++) {
    ls[i] = (int32_t)(ord[i] / TOPK);
    rs[i] = ex[ord[i]];
  }
  am_array xp = rand_bf16((int64_t[]){T, 1, D}, 3);
  am_array xp5 = am_reshape(xp, (int64_t[]){1, T, 1, 1, D}, 5);
  am_array lsi = am_array_new_data(ls, &PP, 1, AM_I32);
  am_array rsi = am_array_new_data(rs, &PP, 1, AM_I32);
  am_array exi = am_array_new_data(ex, (int64_t[]){1, T, TOPK}, 3, AM_I32);
  am_array pre[3] = {lsi, rsi, exi};
  must(am_eval(pre, 3));
  double tp[3];
  for (int mode = 0; mode < 3; mode++) { /* sorted, unsorted, naive */
    am_qmm_set_grouping(mode != 2);
    double best = 1e30;
    for (int rep = 0; rep < (mode == 2 ? 1 : 2); rep++) {
      double a = bench_now();
      am_array y = mode == 0
                       ? am_gather_qmm(xp, gu.w, gu.s, gu.b, lsi, rsi, true, GS,
                                       BITS, AM_QUANT_AFFINE, true)
                       : am_gather_qmm(xp5, gu.w, gu.s, gu.b, NULL, exi, true,
                                       GS, BITS, AM_QUANT_AFFINE, false);
      must(am_eval(&y, 1));
      double t = bench_now() - a;
      best = t < best ? t : best;
      am_array_free(y);
    }
    tp[mode] = best;
  }
  am_qmm_set_grouping(true);
  double flops = 2.0 * (double)PP * 2 * I * D;
  printf("prefill gate+up (%lld tokens, %lld pairs, %lld experts used, each "
         "read once when grouped):\n",
         (long long)T, (long long)PP, (long long)used);
  printf("  sorted   %8.1f ms  %6.1f GFLOP/s\n", tp[0] * 1e3,
         flops / tp[0] / 1e9);
  printf("  unsorted %8.1f ms  (grouped inside the kernel)\n", tp[1] * 1e3);
  printf("  naive    %8.1f ms  (one matmul per pair: %.1fx the sorted time)\n",
         tp[2] * 1e3, tp[2] / tp[0]);
  printf("BENCH qmm read_gbs=%.1f decode_gateup_us=%.1f decode_gateup_gbs=%.1f "
         "decode_gateup_pct=%.0f decode_down_us=%.1f decode_down_gbs=%.1f "
         "decode_down_pct=%.0f dense_us=%.1f dense_gbs=%.1f dense_pct=%.0f "
         "prefill_sorted_ms=%.1f prefill_unsorted_ms=%.1f "
         "prefill_naive_ms=%.1f naive_over_sorted=%.2f experts_used=%lld\n",
         bw, mg * 1e6, gbg, 100 * gbg / bw, md * 1e6, gbd, 100 * gbd / bw,
         mn * 1e6, gbn, 100 * gbn / bw, tp[0] * 1e3, tp[1] * 1e3, tp[2] * 1e3,
         tp[2] / tp[0], (long long)used);
  am_array arrs[] = {x1,  h1,   xd,   xp,   xp5,  lsi,  rsi,
                     exi, gu.w, gu.s, gu.b, dn.w, dn.s, dn.b};
  for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++)
    am_array_free(arrs[i]);
  for (int i = 0; i < 4; i++) {
    am_array_free(dense[i].w);
    am_array_free(dense[i].s);
    am_array_free(dense[i].b);
  }
  free(tg);
  free(td);
  free(tn);
  free(ex);
  free(ord);
  free(cnt);
  free(ls);
  free(rs);
  return 0;
}
