/*
 * bench/decode — batch-1 decode and prefill of a Qwen3-Next-80B-A3B-shaped
 * model (qwen3next.md §1: hidden 2048, 16/2 attention heads x 256, 16/32
 * DeltaNet heads x 128, 512 experts top-10 of dim 512 plus a shared one,
 * vocab 151936; 4-bit affine g64, router gates 8-bit) with random weights,
 * against the memory roofline measured in the same run.
 *
 * The full model (48 layers, ~45 GB) does not fit the development machine,
 * so the layer count is cut (--layers, default 4: 3 DeltaNet + 1 attention,
 * the model's own 3:1 pattern); every layer keeps its full shape. Note that
 * with few layers the embedding row and lm_head weigh more in the bytes
 * per token than in the full model.
 *
 * Measured:
 *  - read bandwidth (bench_util.h), before and after; the best is kept;
 *  - decode tok/s at batch 1: a short prompt, a few warm-up steps, then
 *    --decode greedy steps;
 *  - roofline tok/s = bandwidth / active weight bytes per token
 *    (am_llm_model_get_info); ratio = decode / roofline. ratio_state also
 *    counts the recurrent state read and written each step;
 *  - prefill tok/s of a --prefill token prompt (best of 2).
 * Last line: BENCH decode key=value ...
 *
 * On the GPU (--cuda 1, CUDA builds): weights drawn on the device, the
 * bandwidth is a device-to-device copy's (bytes read + written, as HBM
 * figures are quoted), and decode is timed twice: replaying the captured
 * CUDA graph (the default) and launching every kernel (AM_GRAPHS=0).
 *
 *   bench_decode [--layers N] [--decode N] [--prompt N] [--prefill N]
 *                [--threads N] [--cuda 0|1]
 */
#include "amorph_llm.h"
#include "bench_util.h"

#include <string.h>
#ifdef AM_HAVE_CUDA
#include "cuda.h"
#endif

#define BW_BYTES ((size_t)256 << 20) /* well past the last-level cache */
#define WARMUP_STEPS 3

typedef struct opts {
  int layers, decode, prompt, prefill, threads, cuda;
} opts;

static void die(const char *what) {
  fprintf(stderr, "bench_decode: %s: %s\n", what, am_last_error());
  exit(1);
}

static int parse_opts(opts *o, int argc, char **argv) {
  *o = (opts){.layers = 4, .decode = 64, .prompt = 16, .prefill = 512};
  struct {
    const char *name;
    int *dst, lo, hi;
  } t[] = {{"--layers", &o->layers, 1, 48},
           {"--decode", &o->decode, 1, 1 << 20},
           {"--prompt", &o->prompt, 1, 1 << 20},
           {"--prefill", &o->prefill, 0, 1 << 20},
           {"--threads", &o->threads, 0, 1024},
           {"--cuda", &o->cuda, 0, 1}};
  for (int i = 1; i < argc; i++) {
    size_t k = 0, n = sizeof t / sizeof *t;
    while (k < n && strcmp(argv[i], t[k].name))
      k++;
    char *end = NULL;
    long v = k < n && i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
    if (k == n || !end || *end || end == argv[i + 1] || v < t[k].lo ||
        v > t[k].hi) {
      fprintf(stderr, "usage: bench_decode [--layers 1..48] [--decode N] "
                      "[--prompt N] [--prefill N] [--threads N] "
                      "[--cuda 0|1]\n");
      return 2;
    }
    *t[k].dst = (int)v;
    i++;
  }
  return 0;
}

/* The Qwen3-Next-80B-A3B config.json (MLX 4-bit) with `layers` layers. */
static am_llm_config *make_config(int layers) {
  size_t cap = 4096 + (size_t)layers * 160;
  char *j = malloc(cap);
  int k = snprintf(
      j, cap,
      "{\"model_type\": \"qwen3_next\", \"hidden_size\": 2048, "
      "\"num_hidden_layers\": %d, \"vocab_size\": 151936, "
      "\"num_attention_heads\": 16, \"num_key_value_heads\": 2, "
      "\"head_dim\": 256, \"linear_num_key_heads\": 16, "
      "\"linear_num_value_heads\": 32, \"linear_key_head_dim\": 128, "
      "\"linear_value_head_dim\": 128, \"linear_conv_kernel_dim\": 4, "
      "\"num_experts\": 512, \"num_experts_per_tok\": 10, "
      "\"moe_intermediate_size\": 512, "
      "\"shared_expert_intermediate_size\": 512, "
      "\"intermediate_size\": 5120, \"full_attention_interval\": 4, "
      "\"decoder_sparse_step\": 1, \"mlp_only_layers\": [], "
      "\"norm_topk_prob\": true, \"rope_theta\": 10000000, "
      "\"partial_rotary_factor\": 0.25, \"rms_norm_eps\": 1e-06, "
      "\"max_position_embeddings\": 262144, \"tie_word_embeddings\": false, "
      "\"bos_token_id\": 151643, \"eos_token_id\": 151645, "
      "\"quantization\": {\"group_size\": 64, \"bits\": 4, "
      "\"mode\": \"affine\"",
      layers);
  for (int l = 0; l < layers; l++)
    k += snprintf(j + k, cap - (size_t)k,
                  ", \"model.layers.%d.mlp.gate\": {\"group_size\": 64, "
                  "\"bits\": 8}, \"model.layers.%d.mlp.shared_expert_gate\": "
                  "{\"group_size\": 64, \"bits\": 8}",
                  l, l);
  k += snprintf(j + k, cap - (size_t)k, "}}");
  am_llm_config *cfg = NULL;
  am_status s = am_llm_config_parse(j, (size_t)k, "bench_decode config", &cfg);
  free(j);
  if (s != AM_OK) die("config");
  return cfg;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int32_t random_token(int64_t vocab) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (int32_t)(rng % (uint64_t)vocab);
}

static void feed(am_llm_session *s, const int32_t *ids, int64_t n,
                 int32_t *next) {
  if (am_llm_session_feed(s, ids, n, next, NULL) != AM_OK) die("feed");
}

/* Seconds per greedy decode step after a prompt and warm-up steps. */
static double time_decode(am_llm_session *s, const opts *o, int64_t vocab) {
  int32_t *ids = malloc((size_t)o->prompt * sizeof *ids);
  for (int i = 0; i < o->prompt; i++)
    ids[i] = random_token(vocab);
  int32_t next;
  am_llm_session_reset(s);
  feed(s, ids, o->prompt, &next);
  free(ids);
  for (int i = 0; i < WARMUP_STEPS; i++)
    feed(s, &next, 1, &next);
  am_profile_reset(); /* AM_PROFILE=1: the timed steps only */
  double t0 = bench_now();
  for (int i = 0; i < o->decode; i++)
    feed(s, &next, 1, &next);
  return (bench_now() - t0) / o->decode;
}

/* Seconds for a prefill of o->prefill tokens, best of 2. */
static double time_prefill(am_llm_session *s, const opts *o, int64_t vocab) {
  int32_t *ids = malloc((size_t)o->prefill * sizeof *ids);
  for (int i = 0; i < o->prefill; i++)
    ids[i] = random_token(vocab);
  double best = 1e30;
  for (int r = 0; r < 2; r++) {
    int32_t next;
    am_llm_session_reset(s);
    double t0 = bench_now();
    feed(s, ids, o->prefill, &next);
    double t = bench_now() - t0;
    if (t < best) best = t;
  }
  free(ids);
  return best;
}

/* Device-to-device copy bandwidth, bytes read + written per second. */
static double cuda_copy_gbs(void) {
#ifdef AM_HAVE_CUDA
  size_t n = (size_t)2 << 30;
  void *a = NULL, *b = NULL;
  if (am_cuda_malloc(&a, n) || am_cuda_malloc(&b, n)) die("cuda malloc");
  am_cuda_memset(a, 1, n, NULL);
  double best = 0;
  for (int r = 0; r < 5; r++) {
    if (am_cuda_stream_synchronize()) die("sync");
    double t0 = bench_now();
    for (int i = 0; i < 4; i++)
      am_cuda_memcpy_d2d(i & 1 ? a : b, i & 1 ? b : a, n, NULL);
    if (am_cuda_stream_synchronize()) die("sync");
    double gbs = 4.0 * 2 * (double)n / (bench_now() - t0) / 1e9;
    if (gbs > best) best = gbs;
  }
  am_cuda_free(a);
  am_cuda_free(b);
  return best;
#else
  return 0;
#endif
}

int main(int argc, char **argv) {
  opts o;
  if (parse_opts(&o, argc, argv)) return 2;
  am_llm_load_opts lo = {0};
  if (o.cuda) {
#ifdef AM_HAVE_CUDA
    if (am_cuda_init()) die("cuda");
    lo.device = AM_DEVICE_CUDA;
#else
    fprintf(stderr, "bench_decode: --cuda 1: built without CUDA\n");
    return 2;
#endif
  }
  if (o.threads) am_set_num_threads(o.threads);
  int nt = am_get_num_threads();

  am_llm_config *cfg = make_config(o.layers);
  int n_attn = 0;
  for (int l = 0; l < o.layers; l++)
    n_attn += cfg->layer_types[l] == AM_LAYER_FULL_ATTENTION;
  double t0 = bench_now();
  am_llm_model *m = NULL;
  if (am_llm_model_random(cfg, 42, &lo, &m) != AM_OK) die("random model");
  double t_build = bench_now() - t0;
  am_llm_model_info in = am_llm_model_get_info(m);
  printf("Qwen3-Next-80B-A3B shape, %d layers (%d DeltaNet + %d attention), "
         "%s, threads %d\n",
         o.layers, o.layers - n_attn, n_attn, in.quant, nt);
  printf("params %.3f B (active %.3f B); weights %.1f MB, active %.1f MB per "
         "token, state %.1f MB; built in %.1f s\n",
         in.n_params / 1e9, in.n_active_params / 1e9, in.weight_bytes / 1e6,
         in.active_bytes / 1e6, in.state_bytes / 1e6, t_build);

  double read_gbs =
      o.cuda ? cuda_copy_gbs() : bench_bandwidth_gbs(BW_BYTES, false);
  am_llm_session_opts so = {0}; /* greedy */
  am_llm_session *s = NULL;
  if (am_llm_session_new(m, &so, &s) != AM_OK) die("session");
  double t_tok = time_decode(s, &o, cfg->vocab_size);
  double t_nograph = 0;
  if (o.cuda) { /* the same steps, every kernel launched from the host */
    setenv("AM_GRAPHS", "0", 1);
    t_nograph = time_decode(s, &o, cfg->vocab_size);
    unsetenv("AM_GRAPHS");
  }
  double t_pre = o.prefill ? time_prefill(s, &o, cfg->vocab_size) : 0;
  double r2 = o.cuda ? cuda_copy_gbs() : bench_bandwidth_gbs(BW_BYTES, false);
  if (r2 > read_gbs) read_gbs = r2;

  double decode_tps = 1.0 / t_tok;
  double roof_tps = read_gbs * 1e9 / (double)in.active_bytes;
  double roof_state_tps =
      read_gbs * 1e9 / (double)(in.active_bytes + 2 * in.state_bytes);
  double prefill_tps = o.prefill ? o.prefill / t_pre : 0;
  am_compile_stats cs = am_llm_session_stats(s);
  printf("%s bandwidth %.2f GB/s (best of two measurements)\n",
         o.cuda ? "device copy (read + write)" : "read", read_gbs);
  if (o.cuda)
    printf("decode without CUDA graphs %.2f tok/s (%.2f ms/token): graph "
           "replay is %.2fx faster\n",
           1.0 / t_nograph, t_nograph * 1e3, t_nograph / t_tok);
  printf("decode   %8.2f tok/s  (%.2f ms/token, %d tokens after a %d-token "
         "prompt)\n",
         decode_tps, t_tok * 1e3, o.decode, o.prompt);
  printf("roofline %8.2f tok/s  (weights only)  ratio %.2f\n", roof_tps,
         decode_tps / roof_tps);
  printf("roofline %8.2f tok/s  (+ state r/w)   ratio %.2f\n", roof_state_tps,
         decode_tps / roof_state_tps);
  if (o.prefill)
    printf("prefill  %8.2f tok/s  (%d tokens in %.3f s)\n", prefill_tps,
           o.prefill, t_pre);
  printf("compile: %llu calls, %llu traces, %llu reinfers, %llu fallbacks; "
         "graphs: %llu captures, %llu updates, %llu launches, %llu refused; "
         "peak memory %.1f MB\n",
         (unsigned long long)cs.calls, (unsigned long long)cs.traces,
         (unsigned long long)cs.reinfers, (unsigned long long)cs.fallbacks,
         (unsigned long long)cs.graph_captures,
         (unsigned long long)cs.graph_updates,
         (unsigned long long)cs.graph_launches,
         (unsigned long long)cs.graph_refused,
         am_memory_get_stats().peak_bytes / 1e6);
  printf("BENCH decode device=%s layers=%d threads=%d read_gbs=%.2f "
         "active_mb=%.1f decode_tok_s=%.2f roofline_tok_s=%.2f ratio=%.3f "
         "ratio_state=%.3f nograph_tok_s=%.2f prefill_tokens=%d "
         "prefill_tok_s=%.2f\n",
         o.cuda ? "cuda" : "cpu", o.layers, nt, read_gbs, in.active_bytes / 1e6,
         decode_tps, roof_tps, decode_tps / roof_tps,
         decode_tps / roof_state_tps, t_nograph ? 1.0 / t_nograph : 0,
         o.prefill, prefill_tps);
  am_llm_session_free(s);
  am_llm_model_free(m);
  am_llm_config_free(cfg);
  return 0;
}
