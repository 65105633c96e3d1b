/*
 * test_cuda_model — the model runtime on the GPU.
 *
 *  - Conformance: the demo models placed on the GPU against the committed
 *    references from transformers (fp32) and mlx-lm (tests/data/models/
 *    demo-q4, demo-hf), with the tolerances test_model uses on the CPU:
 *    logits of the prompt and of a 64-token greedy continuation, and the
 *    greedy tokens themselves.
 *  - GPU against CPU: the same prompt and 64 greedy decode steps, logits
 *    compared step by step; sampled generation (temperature, top-k, top-p)
 *    with the same seed gives the same tokens.
 *  - CUDA graphs: the decode steps are captured once and then replayed,
 *    and replays give bitwise the logits of launching each kernel
 *    (AM_GRAPHS=0).
 *
 * Run from tests/ (paths data/..., ../models/demo). Exits 77 without a GPU.
 */
#include "model_ref.h"

#include <stdlib.h>

#define G 64

/* Logits of a prompt then G greedy steps: out[(G + 1) * V], tokens[G]. */
static am_status decode(am_llm_model *m, const am_llm_sampler *smp, float *out,
                        int32_t *toks, am_compile_stats *st) {
  am_llm_session_opts o = {.prefill_chunk = 16};
  if (smp) o.sampler = *smp;
  am_llm_session *s;
  am_status r = am_llm_session_new(m, &o, &s);
  if (r) return r;
  int64_t V = m->cfg->vocab_size;
  int32_t prompt[37], next = 0;
  for (int i = 0; i < 37; i++)
    prompt[i] = (int32_t)((i * 7919 + 13) % V);
  r = am_llm_session_feed(s, prompt, 37, &next, out);
  for (int i = 0; i < G && !r; i++) {
    toks[i] = next;
    r = am_llm_session_feed(s, &next, 1, &next, out + (i + 1) * V);
  }
  if (st) *st = am_llm_session_stats(s);
  am_llm_session_free(s);
  return r;
}

static void gpu_vs_cpu(const char *dir) {
  am_llm_model *mc = NULL, *mg = NULL;
  am_llm_load_opts og = {.device = AM_DEVICE_CUDA};
  CHECK(!am_llm_model_load(dir, NULL, &mc), "%s", am_last_error());
  CHECK(!am_llm_model_load(dir, &og, &mg), "%s", am_last_error());
  if (!mc || !mg) goto out;
  int64_t V = mc->cfg->vocab_size;
  float *lc = malloc(sizeof *lc * (size_t)((G + 1) * V));
  float *lg = malloc(sizeof *lg * (size_t)((G + 1) * V));
  float *ln = malloc(sizeof *ln * (size_t)((G + 1) * V));
  int32_t tc[G], tg[G], tn[G];
  am_compile_stats st = {0};
  CHECK(!decode(mc, NULL, lc, tc, NULL), "cpu: %s", am_last_error());
  CHECK(!decode(mg, NULL, lg, tg, &st), "gpu: %s", am_last_error());
  double scale, d = max_diff(lg, lc, (G + 1) * V, &scale);
  int agree = 0;
  while (agree < G && tc[agree] == tg[agree])
    agree++;
  printf("  %-24s gpu vs cpu: max abs %.3g (scale %.3g), greedy agrees on "
         "%d/%d\n",
         dir, d, scale, agree, G);
  CHECK(d <= 1e-4 * (1 + scale), "%s: gpu logits differ by %g", dir, d);
  CHECK(agree == G, "%s: gpu greedy diverges at %d", dir, agree);
  printf("  %-24s cuda graph: %llu captures, %llu updates, %llu launches, "
         "%llu refused over %llu calls\n",
         dir, (unsigned long long)st.graph_captures,
         (unsigned long long)st.graph_updates,
         (unsigned long long)st.graph_launches,
         (unsigned long long)st.graph_refused, (unsigned long long)st.calls);
  CHECK(st.graph_captures + st.graph_updates >= 1, "no graph was captured");
  CHECK(st.graph_launches >= G - 4, "only %llu graph launches",
        (unsigned long long)st.graph_launches);
  /* graph replays against launching every kernel: the same bits */
  setenv("AM_GRAPHS", "0", 1);
  CHECK(!decode(mg, NULL, ln, tn, &st), "gpu, no graphs: %s", am_last_error());
  unsetenv("AM_GRAPHS");
  CHECK(st.graph_launches == 0, "graphs used with AM_GRAPHS=0");
  CHECK(!memcmp(ln, lg, sizeof *ln * (size_t)((G + 1) * V)),
        "%s: graph replay logits differ from kernel launches (max %g)", dir,
        max_diff(ln, lg, (G + 1) * V, NULL));
  /* sampling on the GPU: the same Threefry draws and filters */
  am_llm_sampler smp = {
      .temperature = 0.8f, .top_k = 20, .top_p = 0.9f, .seed = 7};
  CHECK(!decode(mc, &smp, lc, tc, NULL), "cpu sampled: %s", am_last_error());
  CHECK(!decode(mg, &smp, lg, tg, NULL), "gpu sampled: %s", am_last_error());
  agree = 0;
  while (agree < G && tc[agree] == tg[agree])
    agree++;
  printf("  %-24s sampled (T 0.8, top-k 20, top-p 0.9): agrees on %d/%d\n", dir,
         agree, G);
  CHECK(agree == G, "%s: sampled tokens diverge at %d", dir, agree);
  free(lc);
  free(lg);
  free(ln);
out:
  am_llm_model_free(mc);
  am_llm_model_free(mg);
}

int main(void) {
  if (am_cuda_init()) {
    printf("skipped: %s\n", am_last_error());
    return 77;
  }
  am_llm_load_opts og = {.device = AM_DEVICE_CUDA};
  static const struct {
    const char *weights, *refs[3];
    double tol;
  } sets[] = {
      {"../models/demo",
       {"data/models/demo-q4/ref_short.safetensors",
        "data/models/demo-q4/mlx_short.safetensors",
        "data/models/demo-q4/mlx_long.safetensors"},
       2e-3},
      {"data/models/demo-hf",
       {"data/models/demo-hf/ref_short.safetensors",
        "data/models/demo-hf/mlx_short.safetensors", NULL},
       1e-3},
  };
  for (size_t k = 0; k < sizeof sets / sizeof *sets; k++) {
    am_llm_model *m = NULL;
    CHECK(!am_llm_model_load(sets[k].weights, &og, &m), "%s: %s",
          sets[k].weights, am_last_error());
    for (int r = 0; m && r < 3 && sets[k].refs[r]; r++)
      check_ref(m, sets[k].weights, sets[k].refs[r], sets[k].tol);
    am_llm_model_free(m);
  }
  gpu_vs_cpu("../models/demo");
  gpu_vs_cpu("data/models/demo-hf");
  return t_summary();
}
