/*
 * bench/graph_overhead — the host's share of a replayed decode step: what
 * amorph does per token around a captured graph (the session, the
 * compiled call's key check, input staging, output arrays, reading the
 * token), measured without a GPU.
 *
 * A stand-in accelerator keeps its memory in host allocations and runs
 * the CPU kernels; its "capture" records nothing and its "launch" does
 * nothing, so once the step is captured a decode token costs exactly the
 * library's host work (the tokens it returns are stale and do not matter
 * here). On a real GPU the CUDA calls add to it: one graph launch, the
 * small input uploads (token, position, key, recent tokens) and the
 * token's read-back, a few microseconds each.
 *
 *   bench_graph_overhead [--model DIR] [--tokens N]
 * Last line: BENCH graph_overhead key=value ...
 */
#include "amorph_llm.h"
#include "bench_util.h"
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

static int n_launch;
static void *f_alloc(size_t n) {
  return malloc(n ? n : 1);
}
static void f_free(void *p) {
  free(p);
}
static am_status f_copy(void *d, const void *s, size_t n) {
  memcpy(d, s, n);
  return AM_OK;
}
static am_status f_ok(void) {
  return AM_OK;
}
static am_status f_capture_end(void *prev, void **g, bool *upd) {
  (void)prev;
  *upd = false;
  *g = malloc(1);
  return *g ? AM_OK : AM_ERR_OOM;
}
static am_status f_launch(void *g) {
  (void)g;
  n_launch++;
  return AM_OK;
}
static void f_graph_free(void *g) {
  free(g);
}

static am_status f_to_device(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_in, (void)n_out, (void)params;
  const am_arr *x = in[0];
  if (x->buf->device == AM_DEVICE_CUDA) {
    am_out_view(out[0], x, x->strides, x->offset);
    return AM_OK;
  }
  am_buffer *b = am_buffer_new_on(x->buf->bytes, AM_DEVICE_CUDA);
  if (!b) return AM_ERR_OOM;
  memcpy(b->data, x->buf->data, x->buf->bytes);
  am_out_place(out[0], x, b);
  return AM_OK;
}

static am_backend stand_in = {
    .name = "stand-in",
    .alloc = f_alloc,
    .free = f_free,
    .upload = f_copy,
    .copy = f_copy,
    .download = f_copy,
    .synchronize = f_ok,
    .capture_begin = f_ok,
    .capture_end = f_capture_end,
    .graph_launch = f_launch,
    .graph_free = f_graph_free,
};

int main(int argc, char **argv) {
  const char *dir = "models/demo";
  int n = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
    if (!strcmp(argv[i], "--tokens")) n = atoi(argv[i + 1]);
  }
  for (int op = 0; op < AM_OP_COUNT; op++)
    stand_in.eval[op] = am_prims[op]->eval_cpu;
  stand_in.eval[AM_OP_TO_DEVICE] = f_to_device;
  am_backend_register(AM_DEVICE_CUDA, &stand_in);
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
  int launches0 = n_launch;
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
         dir, n, n_launch - launches0, (unsigned long long)cs.graph_captures,
         (unsigned long long)cs.graph_launches,
         (unsigned long long)cs.graph_refused);
  printf("host work per replayed token: %.2f us (without the CUDA calls)\n",
         us);
  printf("BENCH graph_overhead tokens=%d host_us_per_token=%.2f "
         "launches=%d\n",
         n, us, n_launch - launches0);
  am_llm_session_free(s);
  am_llm_model_free(m);
  return 0;
}
