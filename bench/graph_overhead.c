/*
 * bench/graph_overhead — the host's share of a replayed decode step: what
 * amorph does per token around a captured graph (the session, the
 * compiled call's key check, input staging, output arrays, reading the
 * token), measured without a GPU.
 *
 * The stand-in accelerator of tests/stand_in_device.h keeps its memory in
 * host allocations and runs the CPU kernels; its "capture" records nothing
 * and its "launch" does nothing, so once the step is captured a decode token
 * costs exactly the library's host work (the tokens it returns are stale and do
 * not matter here). On a real GPU the CUDA calls add to it: one graph launch,
 * the small input uploads (token, position, key, recent tokens) and the token's
 * read-back, a few microseconds each.
 *
 *   bench_graph_overhead [--model DIR] [--tokens N]
 * Last line: BENCH graph_overhead key=value ...
 */
#include "../tests/stand_in_device.h"
#include "amorph_llm.h"
#include "bench_util.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *dir = "models/demo";
  int n = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
    if (!strcmp(argv[i], "--tokens")) n = atoi(argv[i + 1]);
  }
  sd_register(true);
  am_llm_load_opts lo = {.device = AM_DEVICE_CUDA};
  am_llm_model *m = NULL;
  am_llm_session *s = NULL;
  am_llm_session_opts so = {0};
  if (am_llm_model_load(dir, &lo, &m) || am_llm_session_new(m, &so, &s)) {
    fprintf(stderr, "bench_graph_overhead: %s\n", am_last_error());
    return 1;
  }
  int32_t prompt[4] = {1, 2, 3, 4}, next = 0;
  int st = am_llm_session_feed(s, prompt, 4, &next, NULL);
  for (int i = 0; i < 8 && !st; i++) /* warm-up, capture */
    st = am_llm_session_feed(s, &next, 1, &next, NULL);
  int launches0 = sd_launches;
  double t0 = bench_now();
  for (int i = 0; i < n && !st; i++) {
    int32_t tok = 5; /* the stand-in's tokens are stale: feed a fixed one */
    st = am_llm_session_feed(s, &tok, 1, &next, NULL);
  }
  double us = (bench_now() - t0) / n * 1e6;
  am_compile_stats cs = am_llm_session_stats(s);
  if (st) {
    fprintf(stderr, "bench_graph_overhead: %s\n", am_last_error());
    return 1;
  }
  printf("%s: %d replayed decode steps, %d graph launches; compile: %llu "
         "captures, %llu launches, %llu refused\n",
         dir, n, sd_launches - launches0, (unsigned long long)cs.graph_captures,
         (unsigned long long)cs.graph_launches,
         (unsigned long long)cs.graph_refused);
  /* no physical limit here: the budget of 50 us of host work per
   * token (CUDA calls included) is the yardstick */
  printf("host work per replayed token: %.2f us (without the CUDA calls), "
         "%.0f%% of a 50 us budget\n",
         us, us / 50 * 100);
  printf("BENCH graph_overhead tokens=%d host_us_per_token=%.2f "
         "budget_share=%.3f launches=%d\n",
         n, us, us / 50, sd_launches - launches0);
  am_llm_session_free(s);
  am_llm_model_free(m);
  return 0;
}
