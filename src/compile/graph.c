/*
 * graph.c — replaying a compiled entry as a captured device graph.
 *
 * A compiled call on an accelerator launches one kernel per node: for a
 * decode step that is a thousand launches, whose host cost exceeds the
 * GPU's time. So an entry whose inputs live on a device with capture
 * support is captured (the backend's stream capture) and replayed with
 * one launch:
 *
 *  - The first call with given input shapes runs normally (warm-up: JIT
 *    compiles, host constants' device copies, library handles).
 *  - The second call with those shapes runs the tape under capture, then
 *    launches the graph. A slot reused for new shapes updates its
 *    executable graph in place when the backend can (counted apart).
 *  - Later calls with those shapes copy their inputs into the graph's
 *    input buffers (none for a state input that is the buffer the graph
 *    updated in place last time) and launch.
 *
 * A graph replays fixed addresses, so it owns its memory: its input
 * buffers, its output buffers and (through the backend's capture pool)
 * every intermediate. A replay is refused (and the tape runs instead)
 * when someone outside the call still holds a buffer the graph would
 * write, e.g. the previous call's logits: replaying would overwrite them.
 */
#include "compile_internal.h"

#include <stdlib.h>

struct am_cgraph {
  void *exec;
  int device;
  int n_in, n_out;
  am_meta *key;       /* [n_in] input metas captured for               */
  am_buffer **stage;  /* [n_in] the graph's input buffers              */
  am_meta *ometa;     /* [n_out] outputs as captured                   */
  int64_t *ostrides;  /* [n_out * AM_MAX_DIMS]                         */
  int64_t *ooffset;   /* [n_out]                                       */
  am_buffer **obuf;   /* [n_out] their buffers                         */
  bool *owritten;     /* [n_out] written by the graph (not a constant) */
  uint64_t last_used; /* LRU among the entry's slots                   */
};

static void hold(am_buffer *b) {
  am_buffer_retain(b);
  atomic_fetch_add(&b->graph_refs, 1);
}

static void unhold(am_buffer *b) {
  if (!b) return;
  atomic_fetch_sub(&b->graph_refs, 1);
  am_buffer_release(b);
}

void am_cgraph_free(am_cgraph *g) {
  if (!g) return;
  const am_backend *be = am_backend_get(g->device);
  if (be && g->exec) be->graph_free(g->exec);
  for (int i = 0; i < g->n_in && g->stage; i++)
    unhold(g->stage[i]);
  for (int j = 0; j < g->n_out && g->obuf; j++)
    unhold(g->obuf[j]);
  free(g->key);
  free(g->stage);
  free(g->ometa);
  free(g->ostrides);
  free(g->ooffset);
  free(g->obuf);
  free(g->owritten);
  free(g);
}

static bool meta_eq(const am_meta *a, const am_meta *b) {
  return a->dtype == b->dtype && a->ndim == b->ndim &&
         !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(int64_t));
}

static bool key_eq(const am_meta *key, am_arr *const *in, int n) {
  for (int i = 0; i < n; i++)
    if (!meta_eq(&key[i], &in[i]->m)) return false;
  return true;
}

static bool plain(const am_arr *a) {
  return a->offset == 0 && am_arr_is_contiguous(a);
}

static size_t nbytes(const am_arr *a) {
  return (size_t)a->size * am_dtype_size(a->m.dtype);
}

/* Input a's data into the graph's input buffer b (row-major). */
static am_status fill_stage(const am_backend *be, am_buffer *b,
                            const am_arr *a) {
  if ((a->buf == b && plain(a)) || !a->size) return AM_OK;
  if (a->buf->device == AM_DEVICE_CPU)
    return be->upload(b->data, am_arr_ptr(a), nbytes(a));
  return plain(a) ? be->copy(b->data, am_arr_ptr(a), nbytes(a))
                  : be->copy_view(a, b->data);
}

int am_graph_device(am_arr *const *in, int n) {
  int dev = am_default_device();
  for (int i = 0; i < n; i++)
    if (in[i]->buf && in[i]->buf->device > dev) dev = in[i]->buf->device;
  const am_backend *be = am_backend_get(dev);
  if (!be || !be->capture_begin) return AM_DEVICE_CPU;
  const char *env = getenv("AM_GRAPHS");
  if (env && env[0] == '0') return AM_DEVICE_CPU;
  /* profiling times each node (it waits for each one's kernels): no
   * capture then */
  if (am_prof_on) return AM_DEVICE_CPU;
  return dev;
}

/* Holders of b that this call may overwrite: the graph's own references
 * and consumed inputs that nobody else holds. */
static bool writable(am_buffer *b, am_arr *const *in, const bool *consumed,
                     int n_in) {
  int allowed = atomic_load(&b->graph_refs);
  for (int i = 0; i < n_in; i++)
    if (in[i]->buf == b && consumed[i] && atomic_load(&in[i]->refs) == 1)
      allowed++;
  return atomic_load(&b->refs) <= allowed;
}

am_status am_graph_replay(am_centry *e, am_arr *const *in, bool *consumed,
                          am_array *out, uint64_t stamp, bool *served) {
  *served = false;
  am_cgraph *g = NULL;
  for (int s = 0; s < AM_GRAPH_SLOTS && !g; s++)
    if (e->graphs[s] && key_eq(e->graphs[s]->key, in, e->n_inputs))
      g = e->graphs[s];
  if (!g) return AM_OK;
  const am_backend *be = am_backend_get(g->device);
  /* Everything the graph will write must be ours to write. */
  for (int i = 0; i < g->n_in; i++) {
    const am_arr *a = in[i];
    if (!plain(a) ||
        (a->buf->device != g->device && a->buf->device != AM_DEVICE_CPU))
      return AM_OK;
    if (a->buf == g->stage[i]) {
      if (!plain(a)) return AM_OK; /* a view of its own buffer: overlap */
      continue;
    }
    if (!writable(g->stage[i], in, consumed, g->n_in)) return AM_OK;
    /* another input's buffer: filling that one first would clobber it */
    for (int j = 0; atomic_load(&a->buf->graph_refs) && j < g->n_in; j++)
      if (j != i && a->buf == g->stage[j]) return AM_OK;
  }
  for (int j = 0; j < g->n_out; j++)
    if (g->owritten[j] && !writable(g->obuf[j], in, consumed, g->n_in))
      return AM_OK;
  am_status s = AM_OK;
  for (int i = 0; i < g->n_in && !s; i++)
    s = fill_stage(be, g->stage[i], in[i]);
  if (!s) s = be->graph_launch(g->exec);
  if (s) return s;
  for (int j = 0; j < g->n_out; j++) {
    am_arr *o = am_arr_alloc(&g->ometa[j]);
    if (!o) {
      for (int k = 0; k < j; k++) {
        am_arr_release(out[k]);
        out[k] = NULL;
      }
      return am_set_error(AM_ERR_OOM, "graph replay: out of memory");
    }
    am_buffer_retain(g->obuf[j]);
    o->buf = g->obuf[j];
    o->device = (int8_t)g->device;
    o->offset = g->ooffset[j];
    memcpy(o->strides, g->ostrides + j * AM_MAX_DIMS,
           (size_t)o->m.ndim * sizeof(int64_t));
    out[j] = o;
  }
  for (int i = 0; i < g->n_in; i++)
    if (consumed[i]) {
      am_arr_release(in[i]);
      consumed[i] = false;
    }
  g->last_used = stamp;
  *served = true;
  return AM_OK;
}

am_status am_graph_capture(am_centry *e, am_arr *const *in, bool *consumed,
                           const am_meta *m, am_array *out, int device,
                           uint64_t stamp, bool *updated) {
  const am_backend *be = am_backend_get(device);
  int n_in = e->n_inputs, n_out = e->n_outputs;
  *updated = false;
  am_cgraph *g = calloc(1, sizeof *g);
  am_arr **tin = calloc((size_t)(n_in ? n_in : 1), sizeof *tin);
  bool *tcons = calloc((size_t)(n_in ? n_in : 1), sizeof *tcons);
  if (!g || !tin || !tcons) {
    free(g);
    free(tin);
    free(tcons);
    return am_set_error(AM_ERR_OOM, "graph capture: out of memory");
  }
  g->device = device;
  g->n_in = n_in;
  g->n_out = n_out;
  g->key = malloc((size_t)(n_in ? n_in : 1) * sizeof *g->key);
  g->stage = calloc((size_t)(n_in ? n_in : 1), sizeof *g->stage);
  g->ometa = malloc((size_t)n_out * sizeof *g->ometa);
  g->ostrides = malloc((size_t)n_out * AM_MAX_DIMS * sizeof *g->ostrides);
  g->ooffset = malloc((size_t)n_out * sizeof *g->ooffset);
  g->obuf = calloc((size_t)n_out, sizeof *g->obuf);
  g->owritten = calloc((size_t)n_out, sizeof *g->owritten);
  am_status s = AM_OK;
  if (!g->key || !g->stage || !g->ometa || !g->ostrides || !g->ooffset ||
      !g->obuf || !g->owritten)
    s = am_set_error(AM_ERR_OOM, "graph capture: out of memory");
  /* Inputs: a consumed device input becomes the graph's own buffer (the
   * state updated in place); the others are copied into new buffers. */
  for (int i = 0; i < n_in && !s; i++) {
    am_arr *a = in[i];
    g->key[i] = a->m;
    if (consumed[i] && a->buf->device == device && plain(a) &&
        atomic_load(&a->refs) == 1 &&
        atomic_load(&a->buf->refs) == 1 + atomic_load(&a->buf->graph_refs)) {
      g->stage[i] = a->buf;
      hold(a->buf);
      tin[i] = a;
      tcons[i] = true;
      consumed[i] = false; /* handed to the tape */
      continue;
    }
    if (!plain(a) && a->buf->device == AM_DEVICE_CPU) {
      s = AM_ERR_UNSUPPORTED; /* not captured: run the tape instead */
      break;
    }
    am_buffer *b = am_buffer_new_on(nbytes(a) ? nbytes(a) : 1, device);
    if (!b) {
      s = AM_ERR_OOM;
      break;
    }
    s = fill_stage(be, b, a);
    hold(b);
    g->stage[i] = b;
    tin[i] = am_arr_from_buffer(&a->m, b); /* takes b's first reference */
    if (!tin[i]) s = AM_ERR_OOM;
    tcons[i] = true;
  }
  /* Host constants read on the device: their copies exist before capture
   * (an upload cannot be captured). */
  for (int v = 0; v < e->n_values && !s; v++)
    if (e->consts[v] && e->consts[v]->buf &&
        e->consts[v]->buf->device == AM_DEVICE_CPU &&
        !am_buffer_on(e->consts[v]->buf, device))
      s = AM_ERR_DEVICE;
  if (s) {
    for (int i = 0; i < n_in; i++)
      if (tin[i] && tin[i] != in[i])
        am_arr_release(tin[i]);
      else if (tin[i] == in[i])
        consumed[i] = true; /* give it back */
    am_cgraph_free(g);
    free(tin);
    free(tcons);
    return s == AM_ERR_UNSUPPORTED ? AM_ERR_CANNOT_INFER : s;
  }
  /* The slot: a free one, else the least recently used (its executable
   * graph may be updated in place with the new capture). */
  int slot = 0;
  for (int k = 0; k < AM_GRAPH_SLOTS; k++) {
    if (!e->graphs[k]) {
      slot = k;
      break;
    }
    if (e->graphs[k]->last_used < e->graphs[slot]->last_used) slot = k;
  }
  am_cgraph *prev = e->graphs[slot];
  s = be->capture_begin();
  if (!s) {
    am_status st = am_compile_run_tape(e, tin, tcons, m, out);
    void *exec = NULL;
    s = be->capture_end(prev ? prev->exec : NULL, &exec, updated);
    if (st) s = st;
    g->exec = exec;
  } else {
    for (int i = 0; i < n_in; i++)
      am_arr_release(tin[i]);
  }
  free(tin);
  free(tcons);
  if (!s) s = be->graph_launch(g->exec);
  if (s) {
    for (int j = 0; j < n_out; j++) {
      am_arr_release(out[j]);
      out[j] = NULL;
    }
    am_cgraph_free(g);
    e->no_graph = true; /* a kernel that cannot be captured: don't retry */
    return s;
  }
  for (int j = 0; j < n_out; j++) {
    am_arr *o = out[j];
    g->ometa[j] = o->m;
    memcpy(g->ostrides + j * AM_MAX_DIMS, o->strides,
           (size_t)o->m.ndim * sizeof(int64_t));
    g->ooffset[j] = o->offset;
    g->obuf[j] = o->buf;
    hold(o->buf);
    g->owritten[j] = true;
    for (int v = 0; v < e->n_values; v++)
      if (e->consts[v] &&
          (e->consts[v]->buf == o->buf || e->consts[v]->buf->mirror == o->buf))
        g->owritten[j] = false;
  }
  g->last_used = stamp;
  if (prev) am_cgraph_free(prev);
  e->graphs[slot] = g;
  return AM_OK;
}
