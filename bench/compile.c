/*
 * bench/compile — what shapeless replay saves.
 *
 * 1. A graph the size of a 48-layer hybrid MoE decode step (> 3,000 nodes;
 *    matmuls are written as broadcast-multiply + sum until the NN ops land,
 *    which keeps the node count and op mix honest). It is compiled
 *    shapeless, traced once with T tokens, then called with other token
 *    counts: we report trace + simplify + fuse time, the time to re-infer
 *    every node's shapes for new input shapes, per node, and the ratio.
 *    Goals: replay <= 1 us per node and <= 2% of a re-trace.
 * 2. A 6-op elementwise chain on 64 MiB, compiled with and without fusion.
 *    Goal: fused >= 2x faster.
 * Last line: BENCH compile key=value ...
 */
#include <amorph.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { LAYERS = 48, D = 64, H = 4, HD = 16, E = 16, TOPK = 4, FF = 32 };

typedef struct {
  am_array norm_w[LAYERS];  /* [D]          */
  am_array wq[LAYERS];      /* [D, H*HD]    */
  am_array wg[LAYERS];      /* [D, E] router */
  am_array experts[LAYERS]; /* [E, D, FF]   */
  am_array wo[LAYERS];      /* [H*HD, D]    */
} model;

/* x [T, D] @ w [D, K] as broadcast multiply + sum: [T, D, 1] * [D, K]. */
static am_array mm(am_array x, am_array w) {
  return am_sum(am_mul(am_expand_dims(x, (int[]){-1}, 1), w), (int[]){-2}, 1,
                false);
}

static am_array rms_norm(am_array x, am_array w) {
  am_array ms = am_mean(am_square(x), (int[]){-1}, 1, true);
  return am_mul(am_mul(x, am_rsqrt(am_add(ms, am_float(1e-6)))), w);
}

static am_array softmax(am_array x, int axis) {
  am_array e = am_exp(am_sub(x, am_max(x, &axis, 1, true)));
  return am_div(e, am_sum(e, &axis, 1, true));
}

static am_array layer(const model *m, int l, am_array h) {
  am_array n = rms_norm(h, m->norm_w[l]);        /* [T, D]        */
  am_array q = am_unflatten(mm(n, m->wq[l]), -1, /* [T, H, HD]    */
                            (int64_t[]){H, HD}, 2);
  am_array q1 = am_slice_axis(q, -1, 0, HD / 2, 1);
  am_array q2 = am_slice_axis(q, -1, HD / 2, AM_END, 1);
  am_array rot = am_concatenate((am_array[]){am_neg(q2), q1}, 2, -1);
  am_array qr = am_add(am_mul(q, am_float(0.9f)), am_mul(rot, am_float(0.1f)));
  am_array att = softmax(am_sum(am_mul(qr, q), (int[]){-1}, 1, false), -1);
  am_array mix = am_mul(am_expand_dims(att, (int[]){-1}, 1), q); /* [T,H,HD] */
  am_array o = mm(am_flatten(mix, 1, 2), m->wo[l]); /* [T, D]        */
  h = am_add(h, am_mul(o, am_sigmoid(o)));
  /* MoE: route each token to its top-k experts. */
  am_array n2 = rms_norm(h, m->norm_w[l]);
  am_array probs = softmax(mm(n2, m->wg[l]), -1); /* [T, E]        */
  am_array top = am_topk(probs, TOPK, -1);        /* [T, K]        */
  am_array idx = am_slice_axis(am_argsort(am_neg(probs), -1), -1, 0, TOPK, 1);
  am_array wsum = am_div(top, am_sum(top, (int[]){-1}, 1, true));
  am_array we = am_take(m->experts[l], idx, 0); /* [T,K,D,FF]    */
  am_array xe =
      am_expand_dims(am_expand_dims(n2, (int[]){1}, 1), (int[]){-1}, 1);
  am_array y = am_sum(am_mul(xe, we), (int[]){-2}, 1, false); /* [T,K,FF]  */
  y = am_mul(y, am_sigmoid(y));
  am_array ys = am_sum(am_mul(y, am_expand_dims(wsum, (int[]){-1}, 1)),
                       (int[]){1}, 1, false);             /* [T, FF]       */
  am_array back = am_tile(ys, (int64_t[]){1, D / FF}, 2); /* [T, D]        */
  return am_add(h, back);
}

static am_status step(void *ctx, const am_array *in, int n_in, am_array *out,
                      int n_out) {
  const model *m = ctx;
  am_array h = in[0];
  for (int l = 0; l < LAYERS; l++)
    h = layer(m, l, h);
  out[0] = am_logsumexp(h, (int[]){-1}, 1, false);
  return AM_OK;
}

static am_array rnd(const int64_t *shape, int nd, unsigned *seed) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  float *v = malloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++)
    v[i] = (float)(rand_r(seed) % 2001 - 1000) * 1e-4f;
  am_array a = am_array_new_data(v, shape, nd, AM_F32);
  free(v);
  return a;
}

/* Two 6-op chains: arithmetic only (memory-bound unfused, so fusion's one
 * pass shows), and one with exp and tanh (compute-bound on few cores). */
static am_status chain(void *ctx, const am_array *in, int n_in, am_array *out,
                       int n_out) {
  am_array x = in[0];
  if (*(const int *)ctx)
    out[0] = am_tanh(
        am_mul(am_add(am_exp(am_neg(am_mul(x, x))), x), am_float(0.5f)));
  else
    out[0] = am_sub(
        am_mul(am_add(am_abs(am_neg(am_mul(x, x))), x), am_float(0.5f)), x);
  return AM_OK;
}

static double time_chain(bool fuse, int transcendental, am_array x) {
  am_compiled f = am_compile(chain, &transcendental, 1, 1,
                             &(am_compile_options){.no_fuse = !fuse});
  double best = 1e30;
  for (int r = 0; r < 6; r++) {
    am_array out[1];
    double t0 = now();
    if (am_compiled_call(f, &x, out) != AM_OK) {
      fprintf(stderr, "chain: %s\n", am_last_error());
      exit(1);
    }
    double t = now() - t0;
    am_array_free(out[0]);
    if (r && t < best) best = t;
  }
  am_compiled_free(f);
  return best;
}

int main(void) {
  unsigned seed = 1;
  model m;
  for (int l = 0; l < LAYERS; l++) {
    m.norm_w[l] = rnd((int64_t[]){D}, 1, &seed);
    m.wq[l] = rnd((int64_t[]){D, H * HD}, 2, &seed);
    m.wg[l] = rnd((int64_t[]){D, E}, 2, &seed);
    m.experts[l] = rnd((int64_t[]){E, D, FF}, 3, &seed);
    m.wo[l] = rnd((int64_t[]){H * HD, D}, 2, &seed);
  }
  am_compiled f =
      am_compile(step, &m, 1, 1, &(am_compile_options){.shapeless = true});
  int64_t tokens[] = {4, 1, 2, 3, 5, 6, 7, 8};
  int n_calls = (int)(sizeof tokens / sizeof *tokens);
  for (int i = 0; i < n_calls; i++) {
    am_array x = rnd((int64_t[]){tokens[i], D}, 2, &seed), out[1];
    if (am_compiled_call(f, &x, out) != AM_OK) {
      fprintf(stderr, "step: %s\n", am_last_error());
      return 1;
    }
    am_array_free(out[0]);
    am_array_free(x);
  }
  am_compile_stats st = am_compiled_stats(f);
  double per_reinfer =
      st.reinfer_seconds / (double)(st.reinfers ? st.reinfers : 1);
  double per_trace = st.trace_seconds / (double)st.traces;
  double ratio = per_reinfer / per_trace;
  double us_node = per_reinfer / (double)st.nodes * 1e6;
  printf("decode-step graph: %llu traced nodes, %llu after simplify+fuse "
         "(%llu fused groups, %llu merged)\n",
         (unsigned long long)st.traced_nodes, (unsigned long long)st.nodes,
         (unsigned long long)st.fused_groups,
         (unsigned long long)st.cse_merged);
  printf("trace + simplify + fuse: %.3f ms per trace; %llu traces, %llu "
         "replays, %llu fallbacks\n",
         per_trace * 1e3, (unsigned long long)st.traces,
         (unsigned long long)st.replays, (unsigned long long)st.fallbacks);
  printf("shapeless replay (re-infer all shapes): %.3f ms = %.3f us/node = "
         "%.2f%% of a trace\n",
         per_reinfer * 1e3, us_node, ratio * 100);

  int64_t n = (int64_t)16 << 20;
  am_array x = rnd((int64_t[]){n}, 1, &seed);
  if (am_eval(&x, 1) != AM_OK) return 1;
  double tf = time_chain(true, 0, x), tu = time_chain(false, 0, x);
  double tf2 = time_chain(true, 1, x), tu2 = time_chain(false, 1, x);
  printf("6-op elementwise chain on 64 MiB: fused %.2f ms, unfused %.2f ms, "
         "speedup %.2fx\n",
         tf * 1e3, tu * 1e3, tu / tf);
  printf("same with exp and tanh:           fused %.2f ms, unfused %.2f ms, "
         "speedup %.2fx\n",
         tf2 * 1e3, tu2 * 1e3, tu2 / tf2);
  printf("BENCH compile nodes=%llu traced_nodes=%llu trace_ms=%.3f "
         "replay_ms=%.4f replay_us_per_node=%.3f replay_over_trace=%.4f "
         "traces=%llu fused_ms=%.2f unfused_ms=%.2f fusion_speedup=%.2f "
         "fusion_speedup_exp_tanh=%.2f\n",
         (unsigned long long)st.nodes, (unsigned long long)st.traced_nodes,
         per_trace * 1e3, per_reinfer * 1e3, us_node, ratio,
         (unsigned long long)st.traces, tf * 1e3, tu * 1e3, tu / tf, tu2 / tf2);
  am_array_free(x);
  am_compiled_free(f);
  for (int l = 0; l < LAYERS; l++) {
    am_array_free(m.norm_w[l]);
    am_array_free(m.wq[l]);
    am_array_free(m.wg[l]);
    am_array_free(m.experts[l]);
    am_array_free(m.wo[l]);
  }
  return 0;
}
