/*
 * eval.c — evaluating the lazy graph.
 *
 * am_eval collects the unevaluated nodes the requested arrays depend on,
 * orders them (inputs before consumers) with an iterative depth-first walk,
 * and runs each node's CPU kernel. After a node runs, its outputs are
 * detached from it (they become evaluated leaves) and the node drops its
 * inputs: an intermediate that nobody else holds is freed right there,
 * and its buffer returns to the pool for the next allocation. Kernels may
 * also take over (donate) such an input's buffer for their output.
 */
#include "internal.h"

#include <stdlib.h>

/* Starts above the small marks compile's constant folding uses. */
static atomic_uint_fast64_t g_stamp = 16;

typedef struct {
  am_node **v;
  size_t n, cap;
} node_vec;

static bool push(node_vec *s, am_node *x) {
  if (s->n == s->cap) {
    size_t nc = s->cap ? 2 * s->cap : 64;
    am_node **v = realloc(s->v, nc * sizeof *v);
    if (!v) return false;
    s->v = v;
    s->cap = nc;
  }
  s->v[s->n++] = x;
  return true;
}

/* Post-order over nodes not yet evaluated. Two stacks: `work` holds nodes
 * to expand; a node is emitted once all its inputs' nodes are emitted. */
static am_status toposort(am_arr *const *xs, int n, node_vec *order) {
  uint64_t stamp = atomic_fetch_add(&g_stamp, 2); /* stamp: open, +1: done */
  node_vec work = {0};
  am_status s = AM_OK;
  for (int i = 0; i < n && !s; i++) {
    if (!xs[i]->node || xs[i]->node->mark >= stamp) continue;
    if (!push(&work, xs[i]->node)) s = AM_ERR_OOM;
    while (work.n && !s) {
      am_node *nd = work.v[work.n - 1];
      if (nd->mark == stamp + 1) {
        work.n--;
        continue;
      }
      nd->mark = stamp;
      bool ready = true;
      for (int k = 0; k < nd->n_in; k++) {
        am_node *c = nd->in[k]->node;
        if (c && c->mark < stamp) {
          ready = false;
          if (!push(&work, c)) s = AM_ERR_OOM;
        }
      }
      if (ready) {
        work.n--;
        nd->mark = stamp + 1;
        if (!push(order, nd)) s = AM_ERR_OOM;
      }
    }
  }
  free(work.v);
  if (s) am_set_error(s, "am_eval: out of memory ordering the graph");
  return s;
}

/* A node's outputs become plain evaluated arrays; the node then holds
 * nothing but its inputs, which die with it. */
static void detach(am_node *nd) {
  int dropped = 0;
  for (int j = 0; j < nd->n_out; j++) {
    am_arr *o = nd->out[j];
    if (!o) continue;
    o->node = NULL;
    nd->out[j] = NULL;
    dropped++;
  }
  if (dropped) {
    /* Drop the outputs' references through a stand-in: the node is freed
     * by whoever takes the count to zero (we still hold the tape's one). */
    atomic_fetch_sub(&nd->refs, dropped);
  }
}

static void node_release(am_node *nd) {
  if (atomic_fetch_sub(&nd->refs, 1) != 1) return;
  for (int i = 0; i < nd->n_in; i++)
    am_arr_release(nd->in[i]);
  free(nd->in);
  free(nd->out);
  if (nd->params && nd->prim->params_free) nd->prim->params_free(nd->params);
  free(nd->params);
  free(nd);
}

static am_status run_node(am_node *nd) {
  /* Outputs nobody holds any more still need somewhere to go. */
  am_arr *outs_local[8];
  am_arr **outs =
      nd->n_out <= 8 ? outs_local : malloc((size_t)nd->n_out * sizeof *outs);
  if (!outs) return AM_FAIL(AM_ERR_OOM, "%s: out of memory", nd->prim->name);
  am_status s = AM_OK;
  for (int j = 0; j < nd->n_out; j++) {
    outs[j] = nd->out[j];
    if (!outs[j]) {
      /* Re-infer this output's meta from the node to build a temporary. */
      am_meta om_local[4];
      am_meta *om =
          nd->n_out <= 4 ? om_local : malloc((size_t)nd->n_out * sizeof *om);
      const am_meta *im_local[8];
      const am_meta **im =
          nd->n_in <= 8 ? im_local : malloc((size_t)nd->n_in * sizeof *im);
      if (om && im) {
        for (int i = 0; i < nd->n_in; i++)
          im[i] = &nd->in[i]->m;
        s = nd->prim->output_shapes(im, nd->n_in, nd->params, om, nd->n_out);
        outs[j] = s ? NULL : am_arr_alloc(&om[j]);
      }
      if (om != om_local) free(om);
      if (im != im_local) free(im);
      if (!outs[j]) {
        for (int k = 0; k < j; k++)
          if (!nd->out[k]) am_arr_release(outs[k]);
        if (outs != outs_local) free(outs);
        return s ? s : AM_FAIL(AM_ERR_OOM, "%s: out of memory", nd->prim->name);
      }
    }
  }
  for (int i = 0; i < nd->n_in; i++)
    if (!nd->in[i]->buf) {
      s = nd->in[i]->tracer
              ? AM_FAIL(AM_ERR_INVALID_ARG,
                        "%s: input %d is a traced value: a compiled function "
                        "cannot evaluate its inputs' data while tracing",
                        nd->prim->name, i)
              : AM_FAIL(AM_ERR_INTERNAL, "%s: input %d not evaluated",
                        nd->prim->name, i);
      break;
    }
  if (!s)
    s = am_prim_run(nd->op, nd->in, nd->n_in, outs, nd->n_out, nd->params,
                    nd->device);
  for (int j = 0; j < nd->n_out; j++)
    if (!nd->out[j]) am_arr_release(outs[j]);
  if (outs != outs_local) free(outs);
  return s;
}

am_status am_eval(am_array *xs, int n) {
  am_prof_init();
  if (n < 0 || (n && !xs))
    return am_set_error(AM_ERR_INVALID_ARG, "am_eval: bad array list");
  for (int i = 0; i < n; i++) {
    if (!xs[i])
      return am_set_error(AM_ERR_INVALID_ARG, "am_eval: array %d is NULL", i);
    if (xs[i]->err)
      return am_set_error(xs[i]->err, "%s",
                          xs[i]->err_msg ? xs[i]->err_msg : "");
  }
  node_vec order = {0};
  am_status s = toposort(xs, n, &order);
  /* The tape holds each node so it outlives its detached outputs. */
  for (size_t i = 0; i < order.n; i++)
    atomic_fetch_add(&order.v[i]->refs, 1);
  size_t i = 0;
  for (; i < order.n && !s; i++) {
    am_node *nd = order.v[i];
    s = run_node(nd);
    if (s) break;
    detach(nd);
    node_release(nd);
  }
  /* On error the rest of the graph stays as it was (unevaluated). */
  for (; i < order.n; i++)
    node_release(order.v[i]);
  free(order.v);
  for (int k = 0; k < n && !s; k++)
    if (!xs[k]->buf)
      s = am_set_error(AM_ERR_INVALID_ARG,
                       "am_eval: array %d is a traced value with no data "
                       "(evaluated inside a compiled function)",
                       k);
  return s;
}

/* ======================================================================
 *  Dispatch: which device runs a node
 * ====================================================================== */

static _Thread_local int t_eval_device;

int am_eval_device(void) {
  return t_eval_device;
}

static int device_of_inputs(int op, am_arr *const *in, int n_in,
                            const void *params, int zero_in_device) {
  if (am_prims[op]->flags & AM_OPF_PLACEMENT) return *(const int *)params;
  if (!n_in) return zero_in_device;
  int dev = AM_DEVICE_CPU;
  for (int i = 0; i < n_in; i++)
    if (in[i]->buf && in[i]->buf->device > dev) dev = in[i]->buf->device;
  return dev;
}

am_status am_prim_run(int op, am_arr *const *in, int n_in, am_arr *const *out,
                      int n_out, const void *params, int zero_in_device) {
  const am_prim *p = am_prims[op];
  int dev = device_of_inputs(op, in, n_in, params, zero_in_device);
  am_eval_fn fn = p->eval_cpu;
  am_arr *const *args = in;
  am_arr *local[8], **moved = NULL;
  am_arr *copies = NULL;
  am_status s = AM_OK;
  if (dev != AM_DEVICE_CPU) {
    const am_backend *be = am_backend_get(dev);
    fn = be ? be->eval[op] : NULL;
    if (!fn)
      return am_set_error(AM_ERR_UNSUPPORTED,
                          be ? "%s: no kernel for this primitive on %s"
                             : "%s: device %s has no backend (am_cuda_init)",
                          p->name, be ? be->name : "cuda");
    /* Host inputs (scalars, constants) are read through their device
     * copies, made once and cached on the host buffer. */
    int n_host = 0;
    for (int i = 0; i < n_in && !(p->flags & AM_OPF_PLACEMENT); i++)
      n_host += in[i]->buf && in[i]->buf->device != dev;
    if (n_host) {
      moved = n_in <= 8 ? local : malloc((size_t)n_in * sizeof *moved);
      copies = malloc((size_t)n_host * sizeof *copies);
      if (!moved || !copies) {
        s = am_set_error(AM_ERR_OOM, "%s: out of memory", p->name);
        goto done;
      }
      for (int i = 0, c = 0; i < n_in; i++) {
        moved[i] = in[i];
        if (!in[i]->buf || in[i]->buf->device == dev) continue;
        am_buffer *m = am_buffer_on(in[i]->buf, dev);
        if (!m) {
          s = am_set_error(AM_ERR_DEVICE, "%s: copying input %d to %s: %s",
                           p->name, i, be->name, am_last_error());
          goto done;
        }
        memcpy(&copies[c], in[i], sizeof *copies);
        atomic_init(&copies[c].refs, 2); /* never donated */
        copies[c].buf = m;
        moved[i] = &copies[c++];
      }
      args = moved;
    }
  }
  am_clear_error();
  int saved = t_eval_device;
  t_eval_device = dev;
  double t0 = am_prof_on ? am_prof_now() : 0;
  s = fn(args, n_in, out, n_out, params);
  if (am_prof_on) {
    /* on a device, the kernel's time: wait for it (profiling only) */
    const am_backend *be = am_backend_get(dev);
    if (be && be->synchronize && !s) s = be->synchronize();
    am_prof_add(p->name, am_prof_now() - t0);
  }
  t_eval_device = saved;
  for (int j = 0; j < n_out && !s; j++)
    out[j]->device = (int8_t)dev;
  if (s) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", am_last_error());
    am_set_error(s, "%s: %s", p->name, msg[0] ? msg : am_status_str(s));
  }
done:
  if (moved && moved != local) free(moved);
  free(copies);
  return s;
}

/* ======================================================================
 *  Output allocation helpers for kernels
 * ====================================================================== */

am_status am_out_alloc(am_arr *out) {
  am_buffer *b = am_buffer_new((size_t)out->size * am_dtype_size(out->m.dtype));
  if (!b) return AM_ERR_OOM;
  am_buffer_release(out->buf);
  out->buf = b;
  out->offset = 0;
  am_contig_strides(out->m.shape, out->m.ndim, out->strides);
  return AM_OK;
}

am_status am_out_alloc_donate(am_arr *out, am_arr *const *cands, int n) {
  for (int i = 0; i < n; i++) {
    am_arr *c = cands[i];
    if (atomic_load(&c->refs) != 1 || !c->buf || c->buf->borrowed ||
        c->buf->device != am_eval_device() || c->buf->mirror ||
        atomic_load(&c->buf->refs) != 1 + atomic_load(&c->buf->graph_refs) ||
        c->offset != 0 || c->size != out->size ||
        am_dtype_size(c->m.dtype) != am_dtype_size(out->m.dtype) ||
        !am_arr_is_contiguous(c))
      continue;
    am_buffer_retain(c->buf);
    am_buffer_release(out->buf);
    out->buf = c->buf;
    out->offset = 0;
    am_contig_strides(out->m.shape, out->m.ndim, out->strides);
    am_memory_note_donation();
    return AM_OK;
  }
  return am_out_alloc(out);
}

void am_out_place(am_arr *out, const am_arr *like, am_buffer *b) {
  am_buffer_release(out->buf);
  out->buf = b;
  out->offset = like->offset;
  memcpy(out->strides, like->strides, (size_t)like->m.ndim * sizeof(int64_t));
}

void am_out_view(am_arr *out, const am_arr *in, const int64_t *strides,
                 int64_t offset) {
  am_buffer_retain(in->buf);
  am_buffer_release(out->buf);
  out->buf = in->buf;
  out->offset = offset;
  memcpy(out->strides, strides, (size_t)out->m.ndim * sizeof *strides);
}

/* ======================================================================
 *  Reading results
 * ====================================================================== */

am_status am_array_read(am_array x, am_dtype dtype, void *dst, int64_t n) {
  if (!x) return am_set_error(AM_ERR_INVALID_ARG, "am_array_read: NULL array");
  if ((unsigned)dtype >= AM_DTYPE_COUNT)
    return am_set_error(AM_ERR_DTYPE, "am_array_read: invalid dtype %d",
                        (int)dtype);
  am_status s = am_eval(&x, 1);
  if (s) return s;
  if (n != x->size) {
    char sh[256];
    return am_set_error(AM_ERR_SHAPE,
                        "am_array_read: asked for %lld elements of %s",
                        (long long)n, am_meta_str(&x->m, sh, sizeof sh));
  }
  if (n && !dst)
    return am_set_error(AM_ERR_INVALID_ARG, "am_array_read: dst is NULL");
  return am_copy_to_contig(x, dst, dtype);
}

static void print_rec(FILE *f, const am_meta *m, const double *v, int d,
                      int64_t *pos, bool fl) {
  if (d == m->ndim) {
    double x = v[*pos];
    (*pos)++;
    if (fl)
      fprintf(f, "%g", x);
    else
      fprintf(f, "%lld", (long long)x);
    return;
  }
  fputc('[', f);
  for (int64_t i = 0; i < m->shape[d]; i++) {
    if (i) fputs(d == m->ndim - 1 ? ", " : ",\n ", f);
    print_rec(f, m, v, d + 1, pos, fl);
  }
  fputc(']', f);
}

am_status am_array_print(am_array x, FILE *f) {
  if (!f) return am_set_error(AM_ERR_INVALID_ARG, "am_array_print: NULL file");
  am_status s = am_eval(&x, 1);
  if (s) return s;
  double *v = malloc((size_t)(x->size ? x->size : 1) * sizeof *v);
  if (!v) return am_set_error(AM_ERR_OOM, "am_array_print: out of memory");
  s = am_copy_to_contig(x, v, AM_F64);
  if (s) {
    free(v);
    return s;
  }
  int64_t pos = 0;
  print_rec(f, &x->m, v, 0, &pos, am_dtype_is_float(x->m.dtype));
  char sh[256];
  fprintf(f, "  %s\n", am_meta_str(&x->m, sh, sizeof sh));
  free(v);
  return AM_OK;
}
