/*
 * stand_in_device.h — a stand-in accelerator for tests and benchmarks on
 * machines without a GPU: registered as the CUDA device, it keeps its
 * "device memory" in host allocations, runs the CPU kernels and counts
 * what crosses (allocations, uploads, downloads, graph launches). With
 * capture hooks, a "capture" records nothing and a "launch" does nothing:
 * only the library's host work around a replay remains (its results are
 * then stale). Header-only; include once per program.
 */
#ifndef AM_STAND_IN_DEVICE_H
#define AM_STAND_IN_DEVICE_H
#include "core/internal.h"

#include <stdlib.h>

static int sd_allocs, sd_frees, sd_uploads, sd_downloads, sd_launches;

static void *sd_alloc(size_t n) {
  sd_allocs++;
  return malloc(n ? n : 1);
}
static void sd_free(void *p) {
  sd_frees += p != NULL;
  free(p);
}
static am_status sd_upload(void *d, const void *s, size_t n) {
  sd_uploads++;
  memcpy(d, s, n);
  return AM_OK;
}
static am_status sd_copy(void *d, const void *s, size_t n) {
  memcpy(d, s, n);
  return AM_OK;
}
static am_status sd_download(void *d, const void *s, size_t n) {
  sd_downloads++;
  memcpy(d, s, n);
  return AM_OK;
}
static am_status sd_ok(void) {
  return AM_OK;
}
static am_status sd_capture_end(void *prev, void **g, bool *updated) {
  (void)prev;
  *updated = false;
  *g = malloc(1);
  return *g ? AM_OK : AM_ERR_OOM;
}
static am_status sd_launch(void *g) {
  (void)g;
  sd_launches++;
  return AM_OK;
}
static void sd_graph_free(void *g) {
  free(g);
}

static am_status sd_to_device(am_arr *const *in, int n_in, am_arr *const *out,
                              int n_out, const void *params) {
  (void)n_in, (void)n_out, (void)params;
  return am_to_device_upload(in, out, AM_DEVICE_CUDA);
}

static am_backend sd_backend = {
    .name = "stand-in",
    .alloc = sd_alloc,
    .free = sd_free,
    .upload = sd_upload,
    .copy = sd_copy,
    .download = sd_download,
    .synchronize = sd_ok,
};

/* Registers the stand-in as the CUDA device (with do-nothing graph
 * capture when `capture`); returns its table, whose kernels may be
 * changed afterwards. */
static am_backend *sd_register(bool capture) {
  for (int op = 0; op < AM_OP_COUNT; op++)
    sd_backend.eval[op] = am_prims[op]->eval_cpu;
  sd_backend.eval[AM_OP_TO_DEVICE] = sd_to_device;
  if (capture) {
    sd_backend.capture_begin = sd_ok;
    sd_backend.capture_end = sd_capture_end;
    sd_backend.graph_launch = sd_launch;
    sd_backend.graph_free = sd_graph_free;
  }
  am_backend_register(AM_DEVICE_CUDA, &sd_backend);
  return &sd_backend;
}
#endif
