/*
 * capture.c — compiled replays as CUDA graphs: the backend's capture
 * hooks. The core (src/compile/graph.c) decides what to capture and when;
 * here a capture is a relaxed-mode stream capture of the thread's stream
 * (kernels, cuBLAS, device copies all go there), allocations during it
 * come from a private pool, and a new capture of the same slot first
 * tries cudaGraphExecUpdate on the previous executable graph, which is
 * much cheaper than instantiating a new one.
 */
#include "ops.h"

#include <stdlib.h>

typedef struct cgraph {
  cudaGraphExec_t exec;
  int pool;
} cgraph;

static _Thread_local int tl_capture_pool;

static am_status capture_begin(void) {
  cudaStream_t s = am_cuda_stream();
  if (!s) return AM_ERR_DEVICE;
  tl_capture_pool = am_cuda_pool_begin();
  am_status st =
      am_cuda_check(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed),
                    "cudaStreamBeginCapture");
  if (st) {
    am_cuda_pool_end();
    am_cuda_pool_release(tl_capture_pool);
  }
  return st;
}

static void graph_free(void *p) {
  cgraph *g = p;
  if (!g) return;
  if (g->exec) cudaGraphExecDestroy(g->exec);
  am_cuda_pool_release(g->pool);
  free(g);
}

static am_status capture_end(void *prev, void **out, bool *updated) {
  *out = NULL;
  *updated = false;
  cudaStream_t s = am_cuda_stream();
  cudaGraph_t graph = NULL;
  am_cuda_pool_end();
  am_status st =
      am_cuda_check(cudaStreamEndCapture(s, &graph), "cudaStreamEndCapture");
  cgraph *g = calloc(1, sizeof *g);
  if (!st && !g) st = am_set_error(AM_ERR_OOM, "graph capture: out of memory");
  if (g) g->pool = tl_capture_pool;
  if (!st && prev && ((cgraph *)prev)->exec) {
    cudaGraphExecUpdateResultInfo info;
    if (cudaGraphExecUpdate(((cgraph *)prev)->exec, graph, &info) ==
        cudaSuccess) {
      g->exec = ((cgraph *)prev)->exec; /* taken over */
      ((cgraph *)prev)->exec = NULL;
      *updated = true;
    } else {
      (void)cudaGetLastError();
    }
  }
  if (!st && !g->exec)
    st = am_cuda_check(cudaGraphInstantiate(&g->exec, graph, 0),
                       "cudaGraphInstantiate");
  if (graph) cudaGraphDestroy(graph);
  if (st) {
    graph_free(g);
    return st;
  }
  *out = g;
  return AM_OK;
}

static am_status graph_launch(void *p) {
  cudaStream_t s = am_cuda_stream();
  if (!s) return AM_ERR_DEVICE;
  return am_cuda_check(cudaGraphLaunch(((cgraph *)p)->exec, s),
                       "cudaGraphLaunch");
}

void am_cuda_register_capture(am_backend *b) {
  b->capture_begin = capture_begin;
  b->capture_end = capture_end;
  b->graph_launch = graph_launch;
  b->graph_free = graph_free;
}
