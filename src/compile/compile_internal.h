/* compile_internal.h — the tape of a traced function, shared by the
 * compile passes (compile.c, simplify.c, fuse.c). */
#ifndef AM_COMPILE_INTERNAL_H
#define AM_COMPILE_INTERNAL_H
#include "../core/internal.h"

#include <pthread.h>

typedef struct am_cnode {
  int op;
  const am_prim *prim;
  void *params; /* owned copy */
  size_t params_size;
  int n_in, n_out;
  int *in;  /* value numbers */
  int out0; /* outputs are values out0 .. out0 + n_out - 1 */
} am_cnode;

/* prod(value.shape[a..b]) must still equal lit at replay. */
typedef struct am_guard {
  int node, value, a, b;
  int64_t lit;
} am_guard;

#define AM_GRAPH_SLOTS 2
typedef struct am_cgraph am_cgraph; /* graph.c */

typedef struct am_centry {
  atomic_int refs;
  uint64_t hash;
  struct am_centry *prev, *next; /* LRU list */
  am_meta *key_in;               /* traced input metas                 */
  bool key_shapes;               /* shapes are part of the key         */
  const char *shape_dep_op;      /* why (first shape-dependent op)     */
  int n_inputs, n_outputs;
  int n_values;
  am_meta *traced; /* [n_values] metas at trace time                  */
  am_arr **consts; /* [n_values] constant arrays, NULL for the others */
  int n_nodes;
  am_cnode *nodes; /* dependency order                                */
  int *outputs;    /* [n_outputs] value numbers                       */
  int *last_use;   /* [n_values] last node reading it; -1 never;
                      INT32_MAX for outputs                           */
  am_guard *guards;
  int n_guards;
  am_guard *proven; /* (node, lit) shown constant by a re-trace         */
  _Atomic(am_meta *) spare; /* a metas buffer kept for the next replay   */
  int n_proven;
  int traced_nodes, cse_merged, fused_groups;
  /* device graphs (graph.c): captured replays by input shapes */
  pthread_mutex_t glock;
  am_cgraph *graphs[AM_GRAPH_SLOTS];
  am_meta *warm_key; /* input metas of the last uncaptured device run */
  bool no_graph;     /* a capture failed: replay without graphs       */
} am_centry;

/* Runs the tape (compile.c): consumed[i] says the call owns input i. */
am_status am_compile_run_tape(const am_centry *e, am_arr *const *in,
                              const bool *consumed, const am_meta *m,
                              am_array *out);

/* Device graphs (graph.c). The device a call runs on when it can be
 * captured (0: it cannot: CPU, no backend support, or AM_GRAPHS=0). */
int am_graph_device(am_arr *const *in, int n);
/* Serves the call from a graph captured for these shapes when it is safe
 * (*served); releases consumed inputs it used. */
am_status am_graph_replay(am_centry *e, am_arr *const *in, bool *consumed,
                          am_array *out, uint64_t stamp, bool *served);
/* Captures the tape for these inputs into a graph slot and launches it;
 * AM_ERR_CANNOT_INFER: not capturable, run the tape instead. */
am_status am_graph_capture(am_centry *e, am_arr *const *in, bool *consumed,
                           const am_meta *m, am_array *out, int device,
                           uint64_t stamp, bool *updated);
void am_cgraph_free(am_cgraph *g);

/* Evaluates the parts of the traced graph that depend on no input. */
am_status am_compile_fold_constants(am_arr **outs, int n);
/* Common-subexpression elimination, equal scalar constants merged, dead
 * nodes dropped; values renumbered densely. */
am_status am_compile_simplify(am_centry *e);
/* Elementwise chains -> fused nodes. */
am_status am_compile_fuse(am_centry *e);
/* Drops nodes/values nothing needs and renumbers (after a pass that
 * redirected uses). remap[v] gives each old value's replacement. */
am_status am_compile_compact(am_centry *e, const int *remap);

#endif
