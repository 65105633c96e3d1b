/*
 * simplify.c — compile passes over a traced tape: constant folding of the
 * input-independent parts, merging equal scalar constants, common-
 * subexpression elimination, and dropping what no output needs.
 */
#include "compile_internal.h"

#include <stdlib.h>

/* ---------------------------------------------------- constant folding */

/* Post-order over nodes; a node "depends" when any input is a tracer or
 * depends. The lazy arrays that feed depending nodes (or are outputs) but
 * do not depend themselves are evaluated now: they are constants. */
am_status am_compile_fold_constants(am_arr **outs, int n) {
  typedef struct {
    am_arr *a;
    int state; /* 0 new, 1 expanded */
  } item;
  size_t cap = 64, sp = 0, nv = 0, vcap = 64, fcap = 16, nf = 0;
  item *st = malloc(cap * sizeof *st);
  am_node **visited = malloc(vcap * sizeof *visited);
  am_arr **fold = malloc(fcap * sizeof *fold);
  am_status s = AM_OK;
  if (!st || !visited || !fold) goto oom;
  /* node->mark holds 1 (independent) / 2 (depends) for visited nodes;
   * restored to 0 at the end so eval's stamps stay monotonic. */
  for (int j = 0; j < n; j++) {
    st[sp++] = (item){outs[j], 0};
    while (sp) {
      item *it = &st[sp - 1];
      am_node *nd = it->a->node;
      if (!nd || nd->mark == 1 || nd->mark == 2) {
        sp--;
        continue;
      }
      if (!it->state) {
        it->state = 1;
        for (int i = 0; i < nd->n_in; i++) {
          am_node *c = nd->in[i]->node;
          if (c && c->mark != 1 && c->mark != 2) {
            if (sp == cap) {
              cap *= 2;
              item *ns = realloc(st, cap * sizeof *ns);
              if (!ns) goto oom;
              st = ns;
            }
            st[sp++] = (item){nd->in[i], 0};
          }
        }
        continue;
      }
      sp--;
      bool dep = false;
      for (int i = 0; i < nd->n_in && !dep; i++) {
        am_arr *in = nd->in[i];
        dep = in->tracer || (in->node && in->node->mark == 2);
      }
      if (nv == vcap) {
        vcap *= 2;
        am_node **nvv = realloc(visited, vcap * sizeof *nvv);
        if (!nvv) goto oom;
        visited = nvv;
      }
      visited[nv++] = nd;
      nd->mark = dep ? 2 : 1;
      if (dep)
        for (int i = 0; i < nd->n_in; i++) {
          am_arr *in = nd->in[i];
          if (in->node && in->node->mark == 1) {
            if (nf == fcap) {
              fcap *= 2;
              am_arr **nfv = realloc(fold, fcap * sizeof *nfv);
              if (!nfv) goto oom;
              fold = nfv;
            }
            fold[nf++] = in;
          }
        }
    }
  }
  for (int j = 0; j < n; j++)
    if (outs[j]->node && outs[j]->node->mark == 1) {
      if (nf == fcap) {
        fcap *= 2;
        am_arr **nfv = realloc(fold, fcap * sizeof *nfv);
        if (!nfv) goto oom;
        fold = nfv;
      }
      fold[nf++] = outs[j];
    }
  for (size_t i = 0; i < nv; i++)
    visited[i]->mark = 0;
  nv = 0;
  if (nf) s = am_eval((am_array *)fold, (int)nf);
  goto done;
oom:
  s = am_set_error(AM_ERR_OOM, "compile: out of memory folding constants");
done:
  for (size_t i = 0; i < nv; i++)
    visited[i]->mark = 0;
  free(st);
  free(visited);
  free(fold);
  return s;
}

/* -------------------------------------------------------------- compact */

am_status am_compile_compact(am_centry *e, const int *remap) {
  int nv = e->n_values;
  bool *live = calloc((size_t)nv, sizeof *live);
  bool *node_live =
      calloc((size_t)(e->n_nodes ? e->n_nodes : 1), sizeof *node_live);
  int *newid = malloc((size_t)nv * sizeof *newid);
  if (!live || !node_live || !newid) {
    free(live);
    free(node_live);
    free(newid);
    return am_set_error(AM_ERR_OOM, "compile: out of memory");
  }
  for (int k = 0; k < e->n_nodes; k++)
    for (int i = 0; i < e->nodes[k].n_in; i++)
      e->nodes[k].in[i] = remap[e->nodes[k].in[i]];
  for (int j = 0; j < e->n_outputs; j++) {
    e->outputs[j] = remap[e->outputs[j]];
    live[e->outputs[j]] = true;
  }
  for (int k = e->n_nodes - 1; k >= 0; k--) {
    am_cnode *c = &e->nodes[k];
    bool any = false;
    for (int j = 0; j < c->n_out && !any; j++)
      any = live[c->out0 + j] && remap[c->out0 + j] == c->out0 + j;
    if (!any) continue;
    node_live[k] = true;
    for (int i = 0; i < c->n_in; i++)
      live[c->in[i]] = true;
  }
  /* Renumber: inputs first (all kept), then live constants and nodes in
   * their old order, so the tape stays in dependency order. */
  int next = 0;
  for (int v = 0; v < nv; v++)
    newid[v] = -1;
  for (int v = 0; v < e->n_inputs; v++)
    newid[v] = next++;
  int kk = 0;
  for (int v = e->n_inputs; v < nv; v++) {
    if (e->consts[v]) {
      if (live[v] && remap[v] == v) newid[v] = next++;
      continue;
    }
    /* v is a node output: number all outputs of a live node together */
    while (kk < e->n_nodes && e->nodes[kk].out0 + e->nodes[kk].n_out <= v)
      kk++;
    if (kk < e->n_nodes && node_live[kk]) newid[v] = next++;
  }
  am_meta *traced = malloc((size_t)(next ? next : 1) * sizeof *traced);
  am_arr **consts = calloc((size_t)(next ? next : 1), sizeof *consts);
  if (!traced || !consts) {
    free(traced);
    free(consts);
    free(live);
    free(node_live);
    free(newid);
    return am_set_error(AM_ERR_OOM, "compile: out of memory");
  }
  for (int v = 0; v < nv; v++) {
    if (newid[v] < 0) {
      am_arr_release(e->consts[v]);
      continue;
    }
    traced[newid[v]] = e->traced[v];
    consts[newid[v]] = e->consts[v];
  }
  int w = 0;
  for (int k = 0; k < e->n_nodes; k++) {
    am_cnode *c = &e->nodes[k];
    if (!node_live[k]) {
      if (c->prim->params_free) c->prim->params_free(c->params);
      free(c->params);
      free(c->in);
      continue;
    }
    for (int i = 0; i < c->n_in; i++)
      c->in[i] = newid[c->in[i]];
    c->out0 = newid[c->out0];
    e->nodes[w++] = *c;
  }
  e->n_nodes = w;
  for (int j = 0; j < e->n_outputs; j++)
    e->outputs[j] = newid[e->outputs[j]];
  free(e->traced);
  free(e->consts);
  e->traced = traced;
  e->consts = consts;
  e->n_values = next;
  free(live);
  free(node_live);
  free(newid);
  return AM_OK;
}

/* ------------------------------------------------------------ simplify */

static uint64_t node_key(const am_cnode *c) {
  am_node tmp = {.op = c->op,
                 .prim = c->prim,
                 .params = c->params,
                 .params_size = c->params_size};
  uint64_t h = am_params_hash(&tmp);
  for (int i = 0; i < c->n_in; i++)
    h = (h ^ (uint64_t)c->in[i]) * 1099511628211ull;
  return h ^ (uint64_t)c->n_in;
}

static bool node_equal(const am_cnode *a, const am_cnode *b) {
  if (a->op != b->op || a->n_in != b->n_in || a->n_out != b->n_out)
    return false;
  for (int i = 0; i < a->n_in; i++)
    if (a->in[i] != b->in[i]) return false;
  am_node x = {.op = a->op,
               .prim = a->prim,
               .params = a->params,
               .params_size = a->params_size};
  am_node y = {.op = b->op,
               .prim = b->prim,
               .params = b->params,
               .params_size = b->params_size};
  return am_params_equal(&x, &y);
}

static bool scalar_equal(const am_arr *a, const am_arr *b) {
  if (a->m.dtype != b->m.dtype || a->m.ndim != b->m.ndim ||
      a->buf->device != AM_DEVICE_CPU || b->buf->device != AM_DEVICE_CPU)
    return false;
  for (int d = 0; d < a->m.ndim; d++)
    if (a->m.shape[d] != b->m.shape[d]) return false;
  return !memcmp(am_arr_ptr(a), am_arr_ptr(b), am_dtype_size(a->m.dtype));
}

am_status am_compile_simplify(am_centry *e) {
  int nv = e->n_values;
  int *remap = malloc((size_t)nv * sizeof *remap);
  size_t hcap = 16;
  while (hcap < 2 * (size_t)e->n_nodes + 2)
    hcap *= 2;
  int *table = malloc(hcap * sizeof *table);
  int *scalars = malloc((size_t)nv * sizeof *scalars);
  if (!remap || !table || !scalars) {
    free(remap);
    free(table);
    free(scalars);
    return am_set_error(AM_ERR_OOM, "compile: out of memory");
  }
  for (int v = 0; v < nv; v++)
    remap[v] = v;
  /* Equal one-element constants become one value. */
  int ns = 0;
  for (int v = 0; v < nv; v++) {
    am_arr *c = e->consts[v];
    if (!c || c->size != 1) continue;
    int rep = -1;
    for (int q = 0; q < ns && rep < 0; q++)
      if (scalar_equal(e->consts[scalars[q]], c)) rep = scalars[q];
    if (rep >= 0) {
      remap[v] = rep;
      e->cse_merged++;
    } else {
      scalars[ns++] = v;
    }
  }
  /* CSE in dependency order: a node equal to an earlier one (same op,
   * params and — already remapped — inputs) is replaced by it. */
  for (size_t i = 0; i < hcap; i++)
    table[i] = -1;
  for (int k = 0; k < e->n_nodes; k++) {
    am_cnode *c = &e->nodes[k];
    for (int i = 0; i < c->n_in; i++)
      c->in[i] = remap[c->in[i]];
    size_t j = (size_t)node_key(c) & (hcap - 1);
    int found = -1;
    for (; table[j] >= 0; j = (j + 1) & (hcap - 1))
      if (node_equal(&e->nodes[table[j]], c)) {
        found = table[j];
        break;
      }
    if (found < 0) {
      table[j] = k;
      continue;
    }
    for (int q = 0; q < c->n_out; q++)
      remap[c->out0 + q] = e->nodes[found].out0 + q;
    e->cse_merged++;
  }
  am_status s = am_compile_compact(e, remap);
  free(remap);
  free(table);
  free(scalars);
  return s;
}
