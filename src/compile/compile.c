/*
 * compile.c — trace a function once, replay its graph for new shapes.
 *
 * A compiled function keeps a small cache of *entries*. An entry is one
 * trace turned into a flat tape: values (inputs, constants, node outputs)
 * numbered densely, nodes in dependency order referring to values by
 * number. A call looks up the entry for its inputs' key (count, dtypes,
 * ranks — plus shapes unless shapeless), and then:
 *
 *   same shapes as traced  -> runs the tape with the traced shapes;
 *   new shapes (shapeless) -> re-infers every node's output shapes through
 *                             its primitive (validating again), checks the
 *                             entry's guards, and runs the tape;
 *   inference fails, or a guard breaks -> re-traces for that shape
 *                             signature (a counted *fallback*; an error
 *                             naming the primitive under `strict`).
 *
 * Guards are how a shapeless replay stays correct in C, where a size read
 * with am_array_shape() at trace time is just an integer: every literal
 * size a node holds (a reshape target, slice bounds, ...) that equals a
 * size of the traced inputs (one dim, or the product of adjacent dims) is
 * remembered with that expression. If a replay's shapes change the value
 * of the expression, the literal may have been a captured shape, and the
 * call re-traces instead of computing with a stale size. Primitives whose
 * params hold traced sizes that cannot be guarded (squeeze of all size-1
 * axes, ...) make the entry key on shapes.
 *
 * Running the tape frees each value after its last use and lets kernels
 * take over (donate) the buffer of a value that dies at that node, so an
 * update of a consumed state input happens in place.
 */
#include "../core/internal.h"
#include "compile_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ======================================================================
 *  Pointer map (trace time only)
 * ====================================================================== */

typedef struct {
  const void **keys;
  int *vals;
  size_t cap, n;
} ptr_map;

static size_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)x;
}

static bool map_grow(ptr_map *m) {
  size_t nc = m->cap ? 2 * m->cap : 256;
  const void **k = calloc(nc, sizeof *k);
  int *v = calloc(nc, sizeof *v);
  if (!k || !v) {
    free(k);
    free(v);
    return false;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = ptr_hash(m->keys[i]) & (nc - 1);
    while (k[j])
      j = (j + 1) & (nc - 1);
    k[j] = m->keys[i];
    v[j] = m->vals[i];
  }
  free(m->keys);
  free(m->vals);
  m->keys = k;
  m->vals = v;
  m->cap = nc;
  return true;
}

static int map_get(const ptr_map *m, const void *p) {
  if (!m->cap) return -1;
  for (size_t j = ptr_hash(p) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
    if (!m->keys[j]) return -1;
    if (m->keys[j] == p) return m->vals[j];
  }
}

static bool map_put(ptr_map *m, const void *p, int v) {
  if (2 * (m->n + 1) > m->cap && !map_grow(m)) return false;
  size_t j = ptr_hash(p) & (m->cap - 1);
  while (m->keys[j] && m->keys[j] != p)
    j = (j + 1) & (m->cap - 1);
  if (!m->keys[j]) m->n++;
  m->keys[j] = p;
  m->vals[j] = v;
  return true;
}

static void map_free(ptr_map *m) {
  free(m->keys);
  free(m->vals);
}

/* ======================================================================
 *  Entries
 * ====================================================================== */

static void entry_release(am_centry *e) {
  if (!e || atomic_fetch_sub(&e->refs, 1) != 1) return;
  for (int v = 0; v < e->n_values; v++)
    am_arr_release(e->consts[v]);
  for (int k = 0; k < e->n_nodes; k++) {
    am_cnode *n = &e->nodes[k];
    if (n->prim->params_free) n->prim->params_free(n->params);
    free(n->params);
    free(n->in);
  }
  free(e->nodes);
  free(e->consts);
  free(e->traced);
  free(e->last_use);
  free(e->outputs);
  free(e->key_in);
  free(e->guards);
  free(e->proven);
  free(atomic_load(&e->spare));
  for (int k = 0; k < AM_GRAPH_SLOTS; k++)
    am_cgraph_free(e->graphs[k]);
  free(e->warm_key);
  pthread_mutex_destroy(&e->glock);
  free(e);
}

/* Key: input count, dtypes, ranks, and shapes when the entry needs them. */
static uint64_t key_hash(const am_meta *in, int n, bool shapes) {
  uint64_t h = 1469598103934665603ull;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ull)
  MIX(n);
  MIX(shapes);
  for (int i = 0; i < n; i++) {
    MIX(in[i].dtype);
    MIX(in[i].ndim);
    for (int d = 0; shapes && d < in[i].ndim; d++)
      MIX(in[i].shape[d]);
  }
#undef MIX
  return h;
}

static bool key_match(const am_centry *e, const am_meta *in, int n) {
  for (int i = 0; i < n; i++) {
    if (e->key_in[i].dtype != in[i].dtype || e->key_in[i].ndim != in[i].ndim)
      return false;
    if (e->key_shapes && memcmp(e->key_in[i].shape, in[i].shape,
                                (size_t)in[i].ndim * sizeof(int64_t)))
      return false;
  }
  return true;
}

/* ======================================================================
 *  The compiled function
 * ====================================================================== */

struct am_compiled_s {
  am_compile_fn fn;
  void *ctx;
  int n_in, n_out;
  am_compile_options o;
  bool verify;
  pthread_mutex_t lock;
  am_centry *head; /* most recently used first */
  int n_entries;
  am_compile_stats st;
  char last_fallback[512];
  uint64_t graph_stamp;
};

/* ======================================================================
 *  Running an entry: the tape, or its captured device graph
 * ====================================================================== */

/* On a device with graph capture, host inputs are placed on the device
 * first, so that the warm-up run, the capture and replays run every node
 * in the same place; *in then points at a new array list (*staged, freed
 * by the caller) whose entries the call owns. */
static am_status stage_inputs(int dev, int n_in, am_arr *const **in,
                              bool *consumed, am_arr ***staged) {
  bool need = false;
  for (int i = 0; i < n_in; i++)
    need |= (*in)[i]->buf->device == AM_DEVICE_CPU;
  if (!need) return AM_OK;
  am_arr **d = malloc((size_t)n_in * sizeof *d);
  if (!d) return am_set_error(AM_ERR_OOM, "compiled call: out of memory");
  memcpy(d, *in, (size_t)n_in * sizeof *d);
  am_status s = AM_OK;
  for (int i = 0; i < n_in && !s; i++) {
    if (d[i]->buf->device != AM_DEVICE_CPU) continue;
    am_scope_push();
    am_array x = am_to_device(d[i], (am_device)dev);
    s = am_eval(&x, 1);
    if (!s) am_arr_retain(x);
    am_scope_pop();
    if (s) break;
    if (consumed[i]) am_arr_release(d[i]);
    d[i] = x;
    consumed[i] = true; /* the copy is the call's */
  }
  *staged = d;
  *in = (am_arr *const *)d;
  return s;
}

static am_status run_step(am_compiled f, am_centry *e, am_arr *const **inp,
                          bool *consumed, const am_meta *m, am_array *out,
                          am_arr ***staged) {
  int n_in = e->n_inputs;
  int dev = e->no_graph || f->verify ? 0 : am_graph_device(*inp, n_in);
  am_status s = AM_OK;
  if (dev && !pthread_mutex_trylock(&e->glock)) {
    bool served = false, updated = false;
    pthread_mutex_lock(&f->lock);
    uint64_t stamp = ++f->graph_stamp;
    pthread_mutex_unlock(&f->lock);
    /* a replay uploads host inputs straight into the graph's buffers */
    s = am_graph_replay(e, *inp, consumed, out, stamp, &served);
    if (!s && !served) s = stage_inputs(dev, n_in, inp, consumed, staged);
    am_arr *const *in = *inp;
    bool warm = e->warm_key != NULL;
    for (int i = 0; warm && i < n_in; i++)
      warm = e->warm_key[i].ndim == in[i]->m.ndim &&
             e->warm_key[i].dtype == in[i]->m.dtype &&
             !memcmp(e->warm_key[i].shape, in[i]->m.shape,
                     (size_t)in[i]->m.ndim * sizeof(int64_t));
    bool captured = false;
    if (!s && !served && warm) {
      s = am_graph_capture(e, in, consumed, m, out, dev, stamp, &updated);
      captured = !s;
      if (s == AM_ERR_CANNOT_INFER) s = AM_OK;
    }
    if (!s && !served && !captured) {
      if (!e->warm_key)
        e->warm_key = malloc((size_t)(n_in ? n_in : 1) * sizeof *e->warm_key);
      for (int i = 0; e->warm_key && i < n_in; i++)
        e->warm_key[i] = in[i]->m;
    }
    pthread_mutex_unlock(&e->glock);
    pthread_mutex_lock(&f->lock);
    f->st.graph_launches += served;
    f->st.graph_captures += captured && !updated;
    f->st.graph_updates += captured && updated;
    f->st.graph_refused += !served && !captured && warm;
    pthread_mutex_unlock(&f->lock);
    if (s || served || captured) return s;
  }
  s = am_compile_run_tape(e, *inp, consumed, m, out);
  for (int i = 0; i < n_in; i++)
    consumed[i] = false; /* handed over */
  return s;
}

am_compiled am_compile(am_compile_fn fn, void *ctx, int n_in, int n_out,
                       const am_compile_options *opts) {
  if (!fn || n_in < 0 || n_out < 1) {
    am_set_error(AM_ERR_INVALID_ARG,
                 "am_compile: need a function, n_in >= 0 and n_out >= 1");
    return NULL;
  }
  am_compile_options o = {0};
  if (opts) o = *opts;
  if (o.n_state < 0 || o.n_state > n_in || o.n_state > n_out) {
    am_set_error(AM_ERR_INVALID_ARG,
                 "am_compile: n_state %d must fit both %d inputs and %d "
                 "outputs",
                 o.n_state, n_in, n_out);
    return NULL;
  }
  if (o.max_entries <= 0) o.max_entries = 16;
  am_compiled f = calloc(1, sizeof *f);
  if (!f) {
    am_set_error(AM_ERR_OOM, "am_compile: out of memory");
    return NULL;
  }
  f->fn = fn;
  f->ctx = ctx;
  f->n_in = n_in;
  f->n_out = n_out;
  f->o = o;
  const char *v = getenv("AM_COMPILE_VERIFY");
  f->verify = o.verify || (v && *v && *v != '0');
  pthread_mutex_init(&f->lock, NULL);
  return f;
}

void am_compiled_free(am_compiled f) {
  if (!f) return;
  for (am_centry *e = f->head, *next; e; e = next) {
    next = e->next;
    entry_release(e);
  }
  pthread_mutex_destroy(&f->lock);
  free(f);
}

am_compile_stats am_compiled_stats(am_compiled f) {
  am_compile_stats s = {0};
  if (!f) return s;
  pthread_mutex_lock(&f->lock);
  s = f->st;
  s.entries = (uint64_t)f->n_entries;
  if (f->head) {
    s.nodes = (uint64_t)f->head->n_nodes;
    s.traced_nodes = (uint64_t)f->head->traced_nodes;
    s.fused_groups = (uint64_t)f->head->fused_groups;
    s.cse_merged = (uint64_t)f->head->cse_merged;
  }
  pthread_mutex_unlock(&f->lock);
  return s;
}

const char *am_compiled_last_fallback(am_compiled f) {
  return f ? f->last_fallback : "";
}

/* ======================================================================
 *  Tracing
 * ====================================================================== */

typedef struct {
  am_arr **v;
  size_t n, cap;
} arr_vec;

static bool arr_push(arr_vec *s, am_arr *a) {
  if (s->n == s->cap) {
    size_t nc = s->cap ? 2 * s->cap : 64;
    am_arr **v = realloc(s->v, nc * sizeof *v);
    if (!v) return false;
    s->v = v;
    s->cap = nc;
  }
  s->v[s->n++] = a;
  return true;
}

/* Builds the tape of e from the traced outputs. Placeholders map to input
 * values; evaluated arrays become constants; every node reachable from
 * the outputs becomes a tape node (post-order). */
static am_status build_tape(am_centry *e, am_arr *const *ph, int n_in,
                            am_arr *const *outs, int n_out) {
  ptr_map vmap = {0}, nmap = {0};
  arr_vec stack = {0};
  am_status s = AM_OK;
  int cap_v = 64, cap_n = 32;
  e->n_values = n_in;
  e->traced = malloc((size_t)cap_v * sizeof *e->traced);
  e->consts = calloc((size_t)cap_v, sizeof *e->consts);
  e->nodes = calloc((size_t)cap_n, sizeof *e->nodes);
  if (!e->traced || !e->consts || !e->nodes) goto oom;
  if (n_in > cap_v) {
    cap_v = n_in * 2;
    e->traced = realloc(e->traced, (size_t)cap_v * sizeof *e->traced);
    e->consts = realloc(e->consts, (size_t)cap_v * sizeof *e->consts);
    if (!e->traced || !e->consts) goto oom;
    memset(e->consts, 0, (size_t)cap_v * sizeof *e->consts);
  }
  for (int i = 0; i < n_in; i++) {
    e->traced[i] = ph[i]->m;
    e->consts[i] = NULL;
    if (!map_put(&vmap, ph[i], i)) goto oom;
  }
#define GROW_VALUES(extra)                                                     \
  while (e->n_values + (extra) > cap_v) {                                      \
    int nc = 2 * cap_v;                                                        \
    am_meta *t = realloc(e->traced, (size_t)nc * sizeof *t);                   \
    if (!t) goto oom;                                                          \
    e->traced = t;                                                             \
    am_arr **c = realloc(e->consts, (size_t)nc * sizeof *c);                   \
    if (!c) goto oom;                                                          \
    memset(c + cap_v, 0, (size_t)(nc - cap_v) * sizeof *c);                    \
    e->consts = c;                                                             \
    cap_v = nc;                                                                \
  }
  /* Iterative post-order over arrays. An array is "done" once it has a
   * value number; a node's outputs get numbers together, after its
   * inputs. */
  for (int j = 0; j < n_out; j++)
    if (!arr_push(&stack, outs[j])) goto oom;
  while (stack.n) {
    am_arr *a = stack.v[stack.n - 1];
    if (map_get(&vmap, a) >= 0) {
      stack.n--;
      continue;
    }
    if (!a->node) {
      stack.n--;
      if (a->tracer) {
        s = AM_FAIL(AM_ERR_INVALID_ARG,
                    "the function used a traced input of another compiled "
                    "call (an uncaptured input)");
        goto fail;
      }
      if (!a->buf) {
        s = AM_FAIL(AM_ERR_INTERNAL, "captured array has no data");
        goto fail;
      }
      GROW_VALUES(1);
      int v = e->n_values++;
      e->traced[v] = a->m;
      am_arr_retain(a);
      e->consts[v] = a;
      if (!map_put(&vmap, a, v)) goto oom;
      continue;
    }
    am_node *nd = a->node;
    int known = map_get(&nmap, nd);
    if (known >= 0) { /* a sibling already numbered the node's outputs */
      stack.n--;
      continue;
    }
    bool ready = true;
    for (int i = 0; i < nd->n_in; i++)
      if (map_get(&vmap, nd->in[i]) < 0) {
        ready = false;
        if (!arr_push(&stack, nd->in[i])) goto oom;
      }
    if (!ready) continue;
    stack.n--;
    if (e->n_nodes == cap_n) {
      cap_n *= 2;
      am_cnode *nn = realloc(e->nodes, (size_t)cap_n * sizeof *nn);
      if (!nn) goto oom;
      e->nodes = nn;
    }
    am_cnode *cn = &e->nodes[e->n_nodes];
    memset(cn, 0, sizeof *cn);
    cn->op = nd->op;
    cn->prim = nd->prim;
    cn->params_size = nd->params_size;
    cn->n_in = nd->n_in;
    cn->n_out = nd->n_out;
    cn->in = malloc((size_t)(nd->n_in ? nd->n_in : 1) * sizeof *cn->in);
    if (!cn->in) goto oom;
    if (nd->params_size) {
      cn->params = malloc(nd->params_size);
      if (!cn->params) goto oom;
      memcpy(cn->params, nd->params, nd->params_size);
      if (nd->prim->params_copy) nd->prim->params_copy(cn->params);
    }
    e->n_nodes++;
    for (int i = 0; i < nd->n_in; i++)
      cn->in[i] = map_get(&vmap, nd->in[i]);
    /* Metas of every output, including siblings nobody holds. */
    GROW_VALUES(nd->n_out);
    cn->out0 = e->n_values;
    const am_meta *im[64];
    if (nd->n_in > 64) {
      s = AM_FAIL(AM_ERR_UNSUPPORTED, "%s: more than 64 inputs",
                  nd->prim->name);
      goto fail;
    }
    for (int i = 0; i < nd->n_in; i++)
      im[i] = &nd->in[i]->m;
    s = nd->prim->output_shapes(im, nd->n_in, nd->params, e->traced + cn->out0,
                                nd->n_out);
    if (s) goto fail;
    e->n_values += nd->n_out;
    if (!map_put(&nmap, nd, e->n_nodes - 1)) goto oom;
    for (int j = 0; j < nd->n_out; j++)
      if (nd->out[j] && !map_put(&vmap, nd->out[j], cn->out0 + j)) goto oom;
  }
#undef GROW_VALUES
  e->outputs = malloc((size_t)n_out * sizeof *e->outputs);
  if (!e->outputs) goto oom;
  for (int j = 0; j < n_out; j++)
    e->outputs[j] = map_get(&vmap, outs[j]);
  map_free(&vmap);
  map_free(&nmap);
  free(stack.v);
  return AM_OK;
oom:
  s = AM_FAIL(AM_ERR_OOM, "compile: out of memory building the tape");
fail:
  map_free(&vmap);
  map_free(&nmap);
  free(stack.v);
  return s;
}

/* Guards: literal sizes equal to a traced input size or a product of
 * adjacent input dims (see the file comment). Checked against the
 * placeholders and the node's direct inputs. */
static am_status add_guards_for(am_centry *e, int k, int *cap) {
  am_cnode *n = &e->nodes[k];
  if (!n->prim->literal_sizes) return AM_OK;
  int64_t lit[4 * AM_MAX_DIMS];
  int nl = n->prim->literal_sizes(n->params, lit, 4 * AM_MAX_DIMS);
  for (int l = 0; l < nl; l++) {
    if (lit[l] < 1) continue;
    int n_src = e->n_inputs + n->n_in;
    for (int si = 0; si < n_src; si++) {
      int v = si < e->n_inputs ? si : n->in[si - e->n_inputs];
      if (si >= e->n_inputs && v < e->n_inputs) continue; /* seen */
      if (e->consts[v]) continue; /* constants never change shape */
      const am_meta *m = &e->traced[v];
      for (int a = 0; a < m->ndim; a++) {
        int64_t p = 1;
        for (int b = a; b < m->ndim; b++) {
          p *= m->shape[b];
          if (p > lit[l]) break;
          if (p != lit[l]) continue;
          if (e->n_guards == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            am_guard *g = realloc(e->guards, (size_t)*cap * sizeof *g);
            if (!g) return AM_FAIL(AM_ERR_OOM, "compile: out of memory");
            e->guards = g;
          }
          e->guards[e->n_guards++] =
              (am_guard){.node = k, .value = v, .a = a, .b = b, .lit = lit[l]};
        }
      }
    }
  }
  return AM_OK;
}

static bool node_shape_dependent(const am_cnode *n) {
  if (n->prim->flags & AM_OPF_SHAPE_DEPENDENT)
    return !n->prim->literal_sizes; /* guarded literals replay fine */
  return n->prim->shape_dependent && n->prim->shape_dependent(n->params) &&
         !n->prim->literal_sizes;
}

/* Last use of each value; outputs live to the end. */
static am_status plan_lifetimes(am_centry *e) {
  free(e->last_use);
  e->last_use = malloc((size_t)e->n_values * sizeof *e->last_use);
  if (!e->last_use) return AM_FAIL(AM_ERR_OOM, "compile: out of memory");
  for (int v = 0; v < e->n_values; v++)
    e->last_use[v] = -1;
  for (int k = 0; k < e->n_nodes; k++)
    for (int i = 0; i < e->nodes[k].n_in; i++)
      e->last_use[e->nodes[k].in[i]] = k;
  for (int j = 0; j < e->n_outputs; j++)
    e->last_use[e->outputs[j]] = INT32_MAX;
  return AM_OK;
}

/* Runs fn on placeholders and builds a new entry (refs = 1). */
static am_status trace(am_compiled f, am_arr *const *in, bool key_shapes,
                       am_centry **out_e) {
  am_status s = AM_OK;
  am_arr **ph = calloc((size_t)(f->n_in ? f->n_in : 1), sizeof *ph);
  am_array *outs = calloc((size_t)f->n_out, sizeof *outs);
  am_centry *e = calloc(1, sizeof *e);
  if (e) pthread_mutex_init(&e->glock, NULL);
  if (!ph || !outs || !e) {
    free(ph);
    free(outs);
    free(e);
    return AM_FAIL(AM_ERR_OOM, "compile: out of memory");
  }
  atomic_init(&e->refs, 1);
  e->n_inputs = f->n_in;
  e->n_outputs = f->n_out;
  for (int i = 0; i < f->n_in && !s; i++) {
    ph[i] = am_arr_alloc(&in[i]->m);
    if (!ph[i])
      s = AM_FAIL(AM_ERR_OOM, "compile: out of memory");
    else
      ph[i]->tracer = true;
  }
  if (!s) {
    am_scope_push();
    am_clear_error();
    s = f->fn(f->ctx, (const am_array *)ph, f->n_in, outs, f->n_out);
    for (int j = 0; j < f->n_out && !s; j++) {
      if (!outs[j])
        s = AM_FAIL(AM_ERR_INVALID_ARG,
                    "compiled function left output %d unset", j);
      else if (outs[j]->err)
        s = am_set_error(outs[j]->err, "%s", outs[j]->err_msg);
    }
    /* Keep the outputs past the scope (the graph hangs off them). */
    for (int j = 0; j < f->n_out && !s; j++)
      am_arr_retain(outs[j]);
    int kept = s ? 0 : f->n_out;
    am_scope_pop();
    /* Parts of the graph that do not depend on any input are computed
     * now and become constants. */
    if (!s) s = am_compile_fold_constants((am_arr **)outs, f->n_out);
    if (!s) s = build_tape(e, ph, f->n_in, (am_arr **)outs, f->n_out);
    for (int j = 0; j < kept; j++)
      am_arr_release(outs[j]);
  }
  for (int i = 0; i < f->n_in; i++)
    am_arr_release(ph[i]);
  free(ph);
  free(outs);
  if (!s) {
    e->traced_nodes = e->n_nodes;
    e->key_in = malloc((size_t)(f->n_in ? f->n_in : 1) * sizeof *e->key_in);
    if (!e->key_in) s = AM_FAIL(AM_ERR_OOM, "compile: out of memory");
    for (int i = 0; !s && i < f->n_in; i++)
      e->key_in[i] = in[i]->m;
  }
  if (!s && !f->o.no_simplify) s = am_compile_simplify(e);
  if (!s && !f->o.no_fuse) s = am_compile_fuse(e);
  if (!s) {
    int gcap = 0;
    e->key_shapes = key_shapes;
    for (int k = 0; k < e->n_nodes && !s; k++) {
      if (node_shape_dependent(&e->nodes[k])) {
        e->key_shapes = true;
        if (!e->shape_dep_op) e->shape_dep_op = e->nodes[k].prim->name;
      }
      if (!f->o.constant_literals) s = add_guards_for(e, k, &gcap);
    }
  }
  if (!s) s = plan_lifetimes(e);
  if (!s) e->hash = key_hash(e->key_in, f->n_in, e->key_shapes);
  if (s) {
    entry_release(e);
    return s;
  }
  *out_e = e;
  return AM_OK;
}

/* ======================================================================
 *  Replay
 * ====================================================================== */

/* Infers every value's meta for new input shapes; AM_ERR_CANNOT_INFER with
 * `why` filled when the entry cannot serve them. */
static am_status reinfer(const am_centry *e, am_arr *const *in, am_meta *m,
                         char *why, size_t nwhy, bool *guard_broke) {
  *guard_broke = false;
  for (int i = 0; i < e->n_inputs; i++)
    m[i] = in[i]->m;
  for (int v = e->n_inputs; v < e->n_values; v++)
    if (e->consts[v]) m[v] = e->traced[v];
  const am_meta *im[64];
  for (int k = 0; k < e->n_nodes; k++) {
    const am_cnode *n = &e->nodes[k];
    for (int i = 0; i < n->n_in; i++)
      im[i] = &m[n->in[i]];
    am_status s =
        n->prim->output_shapes(im, n->n_in, n->params, m + n->out0, n->n_out);
    if (s) {
      snprintf(why, nwhy, "%s (node %d) cannot replay the new shapes: %s",
               n->prim->name, k, am_last_error());
      return AM_ERR_CANNOT_INFER;
    }
    for (int j = 0; j < n->n_out; j++) {
      const am_meta *o = &m[n->out0 + j];
      bool bad = o->ndim < 0 || o->ndim > AM_MAX_DIMS ||
                 (unsigned)o->dtype >= AM_DTYPE_COUNT;
      for (int d = 0; !bad && d < o->ndim; d++)
        bad = o->shape[d] < 0;
      if (bad) {
        snprintf(why, nwhy, "%s (node %d) inferred an invalid shape",
                 n->prim->name, k);
        return AM_ERR_CANNOT_INFER;
      }
    }
  }
  for (int g = 0; g < e->n_guards; g++) {
    const am_guard *gd = &e->guards[g];
    int64_t p = 1;
    for (int d = gd->a; d <= gd->b; d++)
      p *= m[gd->value].shape[d];
    if (p != gd->lit) {
      snprintf(why, nwhy,
               "%s (node %d) holds the literal size %lld, which was a traced "
               "input size that is now %lld: it may be a captured shape",
               e->nodes[gd->node].prim->name, gd->node, (long long)gd->lit,
               (long long)p);
      *guard_broke = true;
      return AM_ERR_CANNOT_INFER;
    }
  }
  return AM_OK;
}

static bool same_shapes(const am_centry *e, am_arr *const *in) {
  for (int i = 0; i < e->n_inputs; i++)
    if (memcmp(e->traced[i].shape, in[i]->m.shape,
               (size_t)in[i]->m.ndim * sizeof(int64_t)))
      return false;
  return true;
}

/* Input i of node k must not be donated: it lives on, or the node reads
 * it twice. */
static bool pinned(const am_centry *e, const am_cnode *n, int i, int k) {
  if (e->last_use[n->in[i]] != k) return true;
  for (int q = 0; q < n->n_in; q++)
    if (q != i && n->in[q] == n->in[i]) return true;
  return false;
}

/* Runs the tape. `consumed[i]`: the call owns input i's reference (state
 * inputs), so its buffer may be donated at its last use. */
am_status am_compile_run_tape(const am_centry *e, am_arr *const *in,
                              const bool *consumed, const am_meta *m,
                              am_array *out) {
  am_status s = AM_OK;
  am_arr **vals = calloc((size_t)e->n_values, sizeof *vals);
  if (!vals) return AM_FAIL(AM_ERR_OOM, "compiled call: out of memory");
  for (int i = 0; i < e->n_inputs; i++) {
    vals[i] = in[i];
    if (!consumed[i]) am_arr_retain(in[i]);
  }
  for (int v = e->n_inputs; v < e->n_values; v++)
    if (e->consts[v]) {
      vals[v] = e->consts[v];
      am_arr_retain(vals[v]);
    }
  am_arr *ins_local[16], *outs_local[16];
  for (int k = 0; k < e->n_nodes && !s; k++) {
    const am_cnode *n = &e->nodes[k];
    am_arr **ins =
        n->n_in <= 16 ? ins_local : malloc((size_t)n->n_in * sizeof *ins);
    am_arr **outs =
        n->n_out <= 16 ? outs_local : malloc((size_t)n->n_out * sizeof *outs);
    if (!ins || !outs) {
      s = AM_FAIL(AM_ERR_OOM, "compiled call: out of memory");
      goto node_done;
    }
    for (int j = 0; j < n->n_out; j++) {
      outs[j] = vals[n->out0 + j] = am_arr_alloc(&m[n->out0 + j]);
      if (!outs[j]) s = AM_FAIL(AM_ERR_OOM, "compiled call: out of memory");
    }
    if (s) goto node_done;
    /* An input may be donated only at its last use and only when it is
     * listed once here: pin the others for the kernel's duration. */
    for (int i = 0; i < n->n_in; i++) {
      ins[i] = vals[n->in[i]];
      if (pinned(e, n, i, k)) am_arr_retain(ins[i]);
    }
    s = am_prim_run(n->op, ins, n->n_in, outs, n->n_out, n->params,
                    am_default_device());
    if (s) {
      char msg[900];
      snprintf(msg, sizeof msg, "%s", am_last_error());
      am_set_error(s, "compiled node %d: %s", k, msg);
    }
    for (int i = 0; i < n->n_in; i++)
      if (pinned(e, n, i, k)) am_arr_release(ins[i]);
    for (int i = 0; i < n->n_in; i++) /* free values that die here */
      if (e->last_use[n->in[i]] == k && vals[n->in[i]]) {
        am_arr_release(vals[n->in[i]]);
        vals[n->in[i]] = NULL;
      }
    for (int j = 0; j < n->n_out; j++) /* outputs nobody reads */
      if (e->last_use[n->out0 + j] < 0) {
        am_arr_release(vals[n->out0 + j]);
        vals[n->out0 + j] = NULL;
      }
  node_done:
    if (ins && ins != ins_local) free(ins);
    if (outs && outs != outs_local) free(outs);
  }
  if (!s) /* references for the caller, handed over by am_compiled_call */
    for (int j = 0; j < e->n_outputs; j++) {
      out[j] = vals[e->outputs[j]];
      am_arr_retain(out[j]);
    }
  for (int v = 0; v < e->n_values; v++)
    am_arr_release(vals[v]);
  free(vals);
  return s;
}

/* ======================================================================
 *  Verify mode
 * ====================================================================== */

static am_status verify_outputs(am_compiled f, am_arr *const *got,
                                am_arr *const *want) {
  for (int j = 0; j < f->n_out; j++) {
    const am_meta *a = &got[j]->m, *b = &want[j]->m;
    char x[256], y[256];
    if (a->dtype != b->dtype || a->ndim != b->ndim ||
        memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(int64_t)))
      return am_set_error(
          AM_ERR_INTERNAL, "compile verify: output %d is %s, uncompiled %s", j,
          am_meta_str(a, x, sizeof x), am_meta_str(b, y, sizeof y));
    int64_t n = got[j]->size;
    double *ga = malloc((size_t)(n ? n : 1) * sizeof *ga);
    double *wa = malloc((size_t)(n ? n : 1) * sizeof *wa);
    if (!ga || !wa) {
      free(ga);
      free(wa);
      return am_set_error(AM_ERR_OOM, "compile verify: out of memory");
    }
    am_status sc = am_copy_to_contig(got[j], ga, AM_F64);
    if (!sc) sc = am_copy_to_contig(want[j], wa, AM_F64);
    if (sc) {
      free(ga);
      free(wa);
      return sc;
    }
    double tol = a->dtype == AM_F16 || a->dtype == AM_BF16 ? 1e-2
                 : a->dtype == AM_F32                      ? 1e-5
                 : a->dtype == AM_F64                      ? 1e-12
                                                           : 0;
    am_status s = AM_OK;
    for (int64_t i = 0; i < n && !s; i++) {
      double g = ga[i], w = wa[i];
      bool ok = (isnan(g) && isnan(w)) || g == w ||
                fabs(g - w) <= tol * (1 + fabs(w));
      if (!ok)
        s = am_set_error(AM_ERR_INTERNAL,
                         "compile verify: output %d element %lld is %.9g "
                         "compiled, %.9g uncompiled",
                         j, (long long)i, g, w);
    }
    free(ga);
    free(wa);
    if (s) return s;
  }
  return AM_OK;
}

/* Runs fn eagerly on the real inputs. */
static am_status run_uncompiled(am_compiled f, am_arr *const *in,
                                am_arr **want) {
  am_array *outs = calloc((size_t)f->n_out, sizeof *outs);
  if (!outs) return am_set_error(AM_ERR_OOM, "compile verify: out of memory");
  am_scope_push();
  am_status s = f->fn(f->ctx, (const am_array *)in, f->n_in, outs, f->n_out);
  for (int j = 0; j < f->n_out && !s; j++)
    if (!outs[j]) s = am_set_error(AM_ERR_INVALID_ARG, "output %d unset", j);
  if (!s) s = am_eval(outs, f->n_out);
  for (int j = 0; j < f->n_out; j++) {
    want[j] = s ? NULL : outs[j];
    if (want[j]) am_arr_retain(want[j]);
  }
  am_scope_pop();
  free(outs);
  return s;
}

/* ======================================================================
 *  Guard refinement
 * ====================================================================== */

/* Constants made while tracing (scalars, folded subgraphs) are new arrays
 * each trace: equal when they hold the same (small) data. */
static bool same_const(const am_arr *x, const am_arr *y) {
  if (x == y) return true;
  if (!x || !y || x->m.dtype != y->m.dtype || x->m.ndim != y->m.ndim ||
      memcmp(x->m.shape, y->m.shape, (size_t)x->m.ndim * sizeof(int64_t)) ||
      x->size > 4096 || !am_arr_is_contiguous(x) || !am_arr_is_contiguous(y) ||
      x->buf->device != AM_DEVICE_CPU || y->buf->device != AM_DEVICE_CPU)
    return false;
  return !memcmp(am_arr_ptr(x), am_arr_ptr(y),
                 (size_t)x->size * am_dtype_size(x->m.dtype));
}

/* Same tape: nodes, params, wiring, constants. */
static bool same_structure(const am_centry *a, const am_centry *b) {
  if (a->n_nodes != b->n_nodes || a->n_values != b->n_values ||
      a->n_outputs != b->n_outputs)
    return false;
  for (int v = 0; v < a->n_values; v++)
    if (!same_const(a->consts[v], b->consts[v])) return false;
  for (int j = 0; j < a->n_outputs; j++)
    if (a->outputs[j] != b->outputs[j]) return false;
  for (int k = 0; k < a->n_nodes; k++) {
    const am_cnode *x = &a->nodes[k], *y = &b->nodes[k];
    if (x->op != y->op || x->n_in != y->n_in || x->n_out != y->n_out ||
        x->out0 != y->out0 || x->params_size != y->params_size)
      return false;
    for (int i = 0; i < x->n_in; i++)
      if (x->in[i] != y->in[i]) return false;
    am_node nx = {.op = x->op,
                  .prim = x->prim,
                  .params = x->params,
                  .params_size = x->params_size};
    am_node ny = {.op = y->op,
                  .prim = y->prim,
                  .params = y->params,
                  .params_size = y->params_size};
    if (!am_params_equal(&nx, &ny)) return false;
  }
  return true;
}

static bool is_proven(const am_centry *e, int node, int64_t lit) {
  for (int i = 0; i < e->n_proven; i++)
    if (e->proven[i].node == node && e->proven[i].lit == lit) return true;
  return false;
}

/* A guard of `old` broke at the sizes in m (metas of the new call), and a
 * re-trace at those sizes gave the very same tape `e`: the literal did not
 * follow the size that moved, so it is a constant that only coincided with
 * an input size. e keeps old's key and drops every guard on such a literal
 * (for good: the proof carries over to later re-traces). */
static am_status refine_guards(const am_centry *old, am_centry *e,
                               const am_meta *m) {
  int cap = old->n_proven + old->n_guards;
  am_guard *pr = malloc((size_t)(cap ? cap : 1) * sizeof *pr);
  if (!pr) return am_set_error(AM_ERR_OOM, "compile: out of memory");
  int n = 0;
  for (int i = 0; i < old->n_proven; i++)
    pr[n++] = old->proven[i];
  for (int g = 0; g < old->n_guards; g++) {
    const am_guard *gd = &old->guards[g];
    int64_t p = 1;
    for (int d = gd->a; d <= gd->b; d++)
      p *= m[gd->value].shape[d];
    if (p != gd->lit) pr[n++] = *gd;
  }
  free(e->proven);
  e->proven = pr;
  e->n_proven = n;
  int w = 0;
  for (int g = 0; g < e->n_guards; g++)
    if (!is_proven(e, e->guards[g].node, e->guards[g].lit))
      e->guards[w++] = e->guards[g];
  e->n_guards = w;
  e->key_shapes = old->key_shapes;
  e->hash = old->hash;
  return AM_OK;
}

static void unlink_entry(am_compiled f, am_centry *e) {
  for (am_centry *x = f->head; x; x = x->next) {
    if (x != e) continue;
    if (e->prev)
      e->prev->next = e->next;
    else
      f->head = e->next;
    if (e->next) e->next->prev = e->prev;
    f->n_entries--;
    entry_release(e); /* the cache's reference */
    return;
  }
}

/* ======================================================================
 *  Calls
 * ====================================================================== */

static void insert_entry(am_compiled f, am_centry *e) {
  e->next = f->head;
  e->prev = NULL;
  if (f->head) f->head->prev = e;
  f->head = e;
  f->n_entries++;
  atomic_fetch_add(&e->refs, 1); /* the cache's reference */
  while (f->n_entries > f->o.max_entries) {
    am_centry *t = f->head;
    while (t->next)
      t = t->next;
    if (t->prev) t->prev->next = NULL;
    if (f->head == t) f->head = NULL;
    f->n_entries--;
    f->st.evictions++;
    entry_release(t);
  }
}

static am_centry *find_entry(am_compiled f, const am_meta *key,
                             bool *shape_keyed_sibling) {
  uint64_t h_rank = key_hash(key, f->n_in, false);
  uint64_t h_shape = key_hash(key, f->n_in, true);
  *shape_keyed_sibling = false;
  for (am_centry *e = f->head; e; e = e->next) {
    if (e->hash != (e->key_shapes ? h_shape : h_rank)) {
      if (e->key_shapes && f->o.shapeless &&
          key_hash(e->key_in, f->n_in, false) == h_rank)
        *shape_keyed_sibling = true;
      continue;
    }
    if (!key_match(e, key, f->n_in)) continue;
    if (e != f->head) { /* LRU: move to front */
      e->prev->next = e->next;
      if (e->next) e->next->prev = e->prev;
      e->prev = NULL;
      e->next = f->head;
      f->head->prev = e;
      f->head = e;
    }
    atomic_fetch_add(&e->refs, 1);
    return e;
  }
  return NULL;
}

am_status am_compiled_call(am_compiled f, const am_array *in_, am_array *out) {
  am_prof_init();
  if (!f || (f->n_in && !in_) || !out)
    return am_set_error(AM_ERR_INVALID_ARG, "am_compiled_call: NULL argument");
  am_arr *const *in = (am_arr *const *)in_;
  int n_in = f->n_in;
  bool consumed_local[32];
  bool *consumed =
      n_in <= 32 ? consumed_local : calloc((size_t)n_in, sizeof *consumed);
  am_meta key_local[8];
  am_meta *key = n_in <= 8 ? key_local : malloc((size_t)n_in * sizeof *key);
  am_meta *m = NULL;
  am_arr **want = NULL;
  am_centry *e = NULL, *old = NULL, *m_owner = NULL;
  am_arr **staged = NULL;
  am_status s = AM_OK;
  for (int j = 0; j < f->n_out; j++)
    out[j] = NULL;
  if (!consumed || !key) {
    s = am_set_error(AM_ERR_OOM, "am_compiled_call: out of memory");
    goto done;
  }
  for (int i = 0; i < n_in; i++) {
    consumed[i] = i >= n_in - f->o.n_state;
    if (!in[i]) {
      s = am_set_error(AM_ERR_INVALID_ARG, "am_compiled_call: input %d is NULL",
                       i);
      goto done;
    }
    if (in[i]->err) {
      s = am_set_error(in[i]->err, "%s", in[i]->err_msg);
      goto done;
    }
    key[i] = in[i]->m;
  }
  if (n_in) {
    s = am_eval((am_array *)in, n_in);
    if (s) goto done;
  }
  if (f->verify) {
    want = calloc((size_t)f->n_out, sizeof *want);
    if (!want) {
      s = am_set_error(AM_ERR_OOM, "am_compiled_call: out of memory");
      goto done;
    }
    s = run_uncompiled(f, in, want);
    if (s) goto done;
  }
  bool sibling;
  pthread_mutex_lock(&f->lock);
  f->st.calls++;
  e = find_entry(f, key, &sibling);
  pthread_mutex_unlock(&f->lock);
  bool need_trace = !e, key_shapes = !f->o.shapeless;
  char why[512] = "";
  if (e && !same_shapes(e, in)) {
    /* Reuse the entry's spare metas buffer: replays then allocate nothing
     * here (a fresh one would be a page-faulting mmap for big tapes). */
    m = atomic_exchange(&e->spare, NULL);
    /* one extra meta: ndim 1 marks metas inferred in full (for the input
     * shapes held in m[0..n_inputs)) */
    if (!m) {
      m = malloc((size_t)(e->n_values + 1) * sizeof *m);
      if (m) m[e->n_values].ndim = 0;
    }
    m_owner = e;
    atomic_fetch_add(&e->refs, 1); /* m goes back to it at the end */
    if (!m) {
      s = am_set_error(AM_ERR_OOM, "am_compiled_call: out of memory");
      goto done;
    }
    /* The same shapes as the last replay (a decode loop): its metas hold. */
    bool valid = m[e->n_values].ndim == 1;
    for (int i = 0; valid && i < e->n_inputs; i++)
      valid = m[i].ndim == in[i]->m.ndim &&
              !memcmp(m[i].shape, in[i]->m.shape,
                      (size_t)m[i].ndim * sizeof(int64_t));
    double t0 = now_s();
    bool guard_broke = false;
    m[e->n_values].ndim = 0;
    s = valid ? AM_OK : reinfer(e, in, m, why, sizeof why, &guard_broke);
    if (!s) m[e->n_values].ndim = 1;
    double dt = now_s() - t0;
    pthread_mutex_lock(&f->lock);
    f->st.reinfer_seconds += dt;
    pthread_mutex_unlock(&f->lock);
    if (s == AM_ERR_CANNOT_INFER) {
      need_trace = true;
      key_shapes = true;
      if (guard_broke)
        old = e; /* kept to refine its guards */
      else
        entry_release(e);
      e = NULL;
      s = AM_OK;
    } else if (s) {
      goto done;
    } else if (!valid) {
      pthread_mutex_lock(&f->lock);
      f->st.reinfers++;
      pthread_mutex_unlock(&f->lock);
    }
  } else if (!e && sibling) {
    snprintf(why, sizeof why,
             "an entry for these ranks and dtypes exists but is keyed on "
             "shapes because of a shape-dependent primitive");
  }
  if (need_trace) {
    if (why[0]) {
      pthread_mutex_lock(&f->lock);
      f->st.fallbacks++;
      snprintf(f->last_fallback, sizeof f->last_fallback, "%s", why);
      pthread_mutex_unlock(&f->lock);
      if (f->o.strict) {
        s = am_set_error(AM_ERR_CANNOT_INFER,
                         "am_compiled_call (strict): re-trace needed: %s", why);
        goto done;
      }
    }
    double t0 = now_s();
    s = trace(f, in, key_shapes, &e);
    double dt = now_s() - t0;
    if (s) goto done;
    bool refined = old && same_structure(old, e);
    if (refined) s = refine_guards(old, e, m);
    if (s) goto done;
    pthread_mutex_lock(&f->lock);
    f->st.traces++;
    f->st.trace_seconds += dt;
    if (refined) unlink_entry(f, old);
    insert_entry(f, e);
    pthread_mutex_unlock(&f->lock);
  } else {
    pthread_mutex_lock(&f->lock);
    f->st.replays++;
    pthread_mutex_unlock(&f->lock);
  }
  s = run_step(f, e, &in, consumed, m && !need_trace ? m : e->traced, out,
               &staged);
  if (!s && want) {
    s = verify_outputs(f, (am_arr *const *)out, want);
    if (s)
      for (int j = 0; j < f->n_out; j++) {
        am_arr_release(out[j]);
        out[j] = NULL;
      }
  }
  if (!s)
    for (int j = 0; j < f->n_out; j++)
      out[j] = am_scope_own(out[j]);
done:
  /* Consumed state inputs the call did not reach are still ours to drop. */
  for (int i = 0; i < n_in && consumed; i++)
    if (consumed[i] && in[i]) am_arr_release(in[i]);
  if (want)
    for (int j = 0; j < f->n_out; j++)
      am_arr_release(want[j]);
  free(want);
  if (m_owner) { /* m back to its entry, or freed */
    am_meta *expect = NULL;
    if (!m || !atomic_compare_exchange_strong(&m_owner->spare, &expect, m))
      free(m);
    entry_release(m_owner);
  }
  entry_release(e);
  entry_release(old);
  free(staged);
  if (consumed && consumed != consumed_local) free(consumed);
  if (key && key != key_local) free(key);
  if (s) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", am_last_error());
    for (int j = 0; j < f->n_out; j++)
      out[j] = am_error_array(s, "%s", msg);
  }
  return s;
}

/* ======================================================================
 *  Printing
 * ====================================================================== */

am_status am_compiled_print(am_compiled f, FILE *out, bool dot) {
  if (!f || !out)
    return am_set_error(AM_ERR_INVALID_ARG, "am_compiled_print: NULL argument");
  pthread_mutex_lock(&f->lock);
  am_centry *e = f->head;
  if (e) atomic_fetch_add(&e->refs, 1);
  pthread_mutex_unlock(&f->lock);
  if (!e)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "am_compiled_print: nothing traced yet");
  char sh[256], ps[256];
  if (dot)
    fprintf(out, "digraph amorph {\n  rankdir=TB;\n  node [shape=box];\n");
  for (int v = 0; v < e->n_values; v++) {
    if (v >= e->n_inputs && !e->consts[v]) continue;
    am_meta_str(&e->traced[v], sh, sizeof sh);
    if (dot)
      fprintf(out, "  v%d [label=\"%s %d\\n%s\", shape=ellipse];\n", v,
              v < e->n_inputs ? "input" : "const", v, sh);
    else
      fprintf(out, "v%d = %s %s\n", v, v < e->n_inputs ? "input" : "const", sh);
  }
  for (int k = 0; k < e->n_nodes; k++) {
    const am_cnode *n = &e->nodes[k];
    ps[0] = 0;
    if (n->prim->params_str) n->prim->params_str(n->params, ps, sizeof ps);
    if (dot) {
      fprintf(out, "  n%d [label=\"%s%s%s\"];\n", k, n->prim->name,
              ps[0] ? "\\n" : "", ps);
      for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v < e->n_inputs || e->consts[v])
          fprintf(out, "  v%d -> n%d;\n", v, k);
        else {
          int src = 0;
          while (src < e->n_nodes &&
                 !(v >= e->nodes[src].out0 &&
                   v < e->nodes[src].out0 + e->nodes[src].n_out))
            src++;
          fprintf(out, "  n%d -> n%d;\n", src, k);
        }
      }
    } else {
      fprintf(out, "v%d", n->out0);
      for (int j = 1; j < n->n_out; j++)
        fprintf(out, ", v%d", n->out0 + j);
      fprintf(out, " = %s(", n->prim->name);
      for (int i = 0; i < n->n_in; i++)
        fprintf(out, i ? ", v%d" : "v%d", n->in[i]);
      fprintf(out, ")%s%s  -> %s\n", ps[0] ? " " : "", ps,
              am_meta_str(&e->traced[n->out0], sh, sizeof sh));
    }
  }
  if (dot)
    fprintf(out, "}\n");
  else {
    fprintf(out, "outputs:");
    for (int j = 0; j < e->n_outputs; j++)
      fprintf(out, " v%d", e->outputs[j]);
    fprintf(out, "\n");
  }
  entry_release(e);
  return AM_OK;
}
