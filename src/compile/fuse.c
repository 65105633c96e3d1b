/*
 * fuse.c — the fusion pass: chains of float elementwise ops become one
 * `fused` node that makes a single pass over memory.
 *
 * Walking the tape from the end, each fusable node not yet taken is the
 * root of a group; the group grows into the producers of its inputs while
 * those are fusable, produce a value read by nothing outside the group
 * (and not a graph output), and have the root's traced shape (so a group
 * never recomputes a small operand once per element of a large one). The
 * group's external inputs, at most AM_FUSED_MAX_IN, become the fused
 * node's inputs. Broadcasting inside a group is always right: every member
 * is elementwise, so each output element is the program applied to the
 * inputs broadcast to that element — whatever shapes a replay brings.
 */
#include "compile_internal.h"
#include "fused.h"

#include <stdlib.h>

static bool same_shape(const am_meta *a, const am_meta *b) {
  if (a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return true;
}

static bool fusable(const am_centry *e, const am_cnode *n) {
  if (n->n_out != 1 || n->n_in < 1 || n->n_in > 2) return false;
  if (n->op != AM_OP_ASTYPE && !(n->prim->flags & AM_OPF_ELEMENTWISE))
    return false;
  if (n->op == AM_OP_FUSED) return false;
  am_dtype in = e->traced[n->in[0]].dtype, out = e->traced[n->out0].dtype;
  for (int i = 1; i < n->n_in; i++)
    if (e->traced[n->in[i]].dtype != in) return false;
  return am_fusable_op(n->op, in, out);
}

am_status am_compile_fuse(am_centry *e) {
  int nv = e->n_values, nn = e->n_nodes;
  int *producer = malloc((size_t)nv * sizeof *producer);
  int *uses = calloc((size_t)nv, sizeof *uses);
  int *group = malloc((size_t)(nn ? nn : 1) * sizeof *group);
  int *remap = malloc((size_t)nv * sizeof *remap);
  bool *is_out = calloc((size_t)nv, sizeof *is_out);
  if (!producer || !uses || !group || !remap || !is_out) {
    free(producer);
    free(uses);
    free(group);
    free(remap);
    free(is_out);
    return am_set_error(AM_ERR_OOM, "compile: out of memory fusing");
  }
  for (int v = 0; v < nv; v++) {
    producer[v] = -1;
    remap[v] = v;
  }
  for (int k = 0; k < nn; k++) {
    group[k] = -1;
    const am_cnode *c = &e->nodes[k];
    for (int j = 0; j < c->n_out; j++)
      producer[c->out0 + j] = k;
    for (int i = 0; i < c->n_in; i++)
      uses[c->in[i]]++;
  }
  for (int j = 0; j < e->n_outputs; j++)
    is_out[e->outputs[j]] = true;

  am_status s = AM_OK;
  for (int root = nn - 1; root >= 0 && !s; root--) {
    am_cnode *r = &e->nodes[root];
    if (group[root] >= 0 || !fusable(e, r)) continue;
    /* Grow: members in a stack, external inputs collected in order. */
    int members[AM_FUSED_MAX_OPS], n_mem = 1, n_ext = 0;
    int ext[AM_FUSED_MAX_IN];
    members[0] = root;
    group[root] = root;
    bool overflow = false;
    for (int mi = 0; mi < n_mem && !overflow; mi++) {
      const am_cnode *m = &e->nodes[members[mi]];
      for (int i = 0; i < m->n_in; i++) {
        int v = m->in[i], p = producer[v];
        bool absorb = p >= 0 && group[p] < 0 && uses[v] == 1 && !is_out[v] &&
                      n_mem < AM_FUSED_MAX_OPS && fusable(e, &e->nodes[p]) &&
                      same_shape(&e->traced[v], &e->traced[r->out0]);
        if (absorb) {
          group[p] = root;
          members[n_mem++] = p;
          continue;
        }
        bool seen = false;
        for (int q = 0; q < n_ext && !seen; q++)
          seen = ext[q] == v;
        if (seen) continue;
        if (n_ext == AM_FUSED_MAX_IN) {
          overflow = true;
          break;
        }
        ext[n_ext++] = v;
      }
    }
    if (overflow || n_mem < 2) {
      /* Not worth it (or too many inputs): release the members. */
      for (int q = 0; q < n_mem; q++)
        group[members[q]] = -2;
      group[root] = -2;
      continue;
    }
    /* Program in tape order (members are earlier than the root). */
    for (int a = 1; a < n_mem; a++) /* insertion sort, groups are small */
      for (int b = a; b > 0 && members[b - 1] > members[b]; b--) {
        int t = members[b];
        members[b] = members[b - 1];
        members[b - 1] = t;
      }
    am_fprog *prog = am_fprog_new();
    int *in_copy = malloc((size_t)n_ext * sizeof *in_copy);
    if (!prog || !in_copy) {
      am_fprog_release(prog);
      free(in_copy);
      s = am_set_error(AM_ERR_OOM, "compile: out of memory fusing");
      break;
    }
    prog->n_in = n_ext;
    for (int q = 0; q < n_ext; q++) {
      prog->in_dtype[q] = e->traced[ext[q]].dtype;
      in_copy[q] = ext[q];
    }
    /* register of a value: an external input, or a member's result */
    for (int q = 0; q < n_mem; q++) {
      const am_cnode *m = &e->nodes[members[q]];
      am_fins *ins = &prog->ins[q];
      ins->op = m->op;
      ins->b = -1;
      for (int i = 0; i < m->n_in; i++) {
        int v = m->in[i], reg = -1;
        for (int x = 0; x < n_ext && reg < 0; x++)
          if (ext[x] == v) reg = x;
        for (int x = 0; x < q && reg < 0; x++)
          if (e->nodes[members[x]].out0 == v) reg = n_ext + x;
        if (i == 0)
          ins->a = reg;
        else
          ins->b = reg;
      }
      if (m->op == AM_OP_ASTYPE) ins->round = e->traced[m->out0].dtype;
    }
    prog->n_ops = n_mem;
    prog->out_dtype = e->traced[r->out0].dtype;
    /* The root becomes the fused node, in place (same output value). */
    if (r->prim->params_free) r->prim->params_free(r->params);
    free(r->params);
    free(r->in);
    r->op = AM_OP_FUSED;
    r->prim = am_prims[AM_OP_FUSED];
    r->params_size = sizeof(am_fused_params);
    r->params = malloc(sizeof(am_fused_params));
    r->in = in_copy;
    r->n_in = n_ext;
    if (!r->params) {
      am_fprog_release(prog);
      s = am_set_error(AM_ERR_OOM, "compile: out of memory fusing");
      break;
    }
    ((am_fused_params *)r->params)->prog = prog;
    e->fused_groups++;
    /* Members' values are now read by nobody: compact drops them. */
    for (int q = 0; q < n_mem; q++)
      if (members[q] != root) uses[e->nodes[members[q]].out0] = 0;
  }
  if (!s && e->fused_groups) s = am_compile_compact(e, remap);
  free(producer);
  free(uses);
  free(group);
  free(remap);
  free(is_out);
  return s;
}
