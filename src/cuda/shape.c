/*
 * shape.c — CUDA glue of the shape family (see ops.h), and registration
 * of the indexing, sort and conv1d families (indexing.c, sort.c,
 * conv.c in this directory).
 *
 * The view ops (transpose, expand_dims, squeeze, broadcast_to/_like,
 * slice, split) only compute strides and an offset and call am_out_view:
 * their CPU kernels never touch data, so the backend runs those very
 * functions on device arrays. Reshape (and flatten, unflatten) is a view
 * when the layout allows and otherwise a device copy; concatenate, pad,
 * repeat and tile copy as the CPU does, with am_cushape_copy (shape.cu)
 * in place of the host strided copy.
 */
#include "shape.h"
#include "../ops/shape_internal.h"
#include "ops.h"

#include "../ops/shape_params.h"

/* Copies the `shape` block from src to dst (element strides). */
static am_status dev_copy(const int64_t *shape, int nd, const char *src,
                          const int64_t *ss, char *dst, const int64_t *ds,
                          am_dtype dt) {
  return am_cushape_copy(nd, shape, src, ss, dst, ds, (int)am_dtype_size(dt),
                         0);
}

/* ----- reshape, flatten, unflatten ----- */

static am_status reshape_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                              int n_out, const void *params) {
  (void)n_in, (void)n_out, (void)params;
  const am_arr *x = in[0];
  am_arr *o = out[0];
  int64_t st[AM_MAX_DIMS];
  if (o->size == 0) {
    am_contig_strides(o->m.shape, o->m.ndim, st);
  } else if (!am_reshape_view_strides(x, &o->m, st)) {
    /* e.g. flattening a transpose: a row-major copy */
    am_status s = am_out_alloc(o);
    if (s) return s;
    int64_t cst[AM_MAX_DIMS];
    am_contig_strides(x->m.shape, x->m.ndim, cst);
    return dev_copy(x->m.shape, x->m.ndim, am_arr_ptr(x), x->strides,
                    o->buf->data, cst, x->m.dtype);
  }
  am_out_view(o, x, st, x->offset);
  return AM_OK;
}

/* ----- concatenate ----- */

static am_status concat_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_out;
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  int ax = am_norm_axis(((const concat_params *)params)->axis, o->m.ndim);
  int64_t es = (int64_t)am_dtype_size(o->m.dtype);
  char *dst = o->buf->data;
  /* Each input lands in the out[.., off:off+n_i, ..] block. */
  for (int i = 0; i < n_in && !s; i++) {
    const am_arr *x = in[i];
    if (x->size)
      s = dev_copy(x->m.shape, x->m.ndim, am_arr_ptr(x), x->strides, dst,
                   o->strides, o->m.dtype);
    dst += x->m.shape[ax] * o->strides[ax] * es;
  }
  return s;
}

/* ----- pad ----- */

static am_status pad_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                          int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const pad_params *p = params;
  const am_arr *x = in[0];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  int es = (int)am_dtype_size(o->m.dtype), nd = o->m.ndim;
  char *dst = o->buf->data;
  bool padded = false;
  for (int i = 0; i < p->n; i++)
    padded |= p->low[i] || p->high[i];
  if (padded) { /* fill everything, then the core */
    uint64_t v = 0;
    am_store_f64(&v, o->m.dtype, p->value); /* the CPU's rounding */
    s = am_cushape_copy(nd, o->m.shape, NULL, NULL, dst, o->strides, es, v);
    if (s) return s;
  }
  for (int i = 0; i < p->n; i++)
    dst += p->low[i] * o->strides[i] * (int64_t)es;
  if (!x->size) return AM_OK;
  return dev_copy(x->m.shape, nd, am_arr_ptr(x), x->strides, dst, o->strides,
                  x->m.dtype);
}

/* ----- repeat ----- */

static am_status repeat_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const repeat_params *p = params;
  const am_arr *x = in[0];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  int nd = x->m.ndim, ax = am_norm_axis(p->axis, nd);
  int64_t sh[AM_MAX_DIMS + 1], ss[AM_MAX_DIMS + 1], ds[AM_MAX_DIMS + 1];
  am_repeat_walk(x, ax, p->repeats, sh, ss, ds);
  return dev_copy(sh, nd + 1, am_arr_ptr(x), ss, o->buf->data, ds, x->m.dtype);
}

/* ----- tile ----- */

static am_status tile_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const tile_params *p = params;
  const am_arr *x = in[0];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  /* NumPy alignment (shape_copy.c's tile_align): the shorter of x's
   * shape and reps gets leading 1s */
  int d = p->n > x->m.ndim ? p->n : x->m.ndim;
  int ox = d - x->m.ndim, orp = d - p->n;
  /* out viewed as [r0, s0, r1, s1, ..] read from [0, t0, 0, t1, ..] */
  int64_t sh[2 * AM_MAX_DIMS], ss[2 * AM_MAX_DIMS], ds[2 * AM_MAX_DIMS];
  for (int i = 0; i < d; i++) {
    sh[2 * i] = i < orp ? 1 : p->reps[i - orp];
    ss[2 * i] = 0;
    sh[2 * i + 1] = i < ox ? 1 : x->m.shape[i - ox];
    ss[2 * i + 1] = i < ox ? 0 : x->strides[i - ox];
  }
  am_contig_strides(sh, 2 * d, ds);
  return dev_copy(sh, 2 * d, am_arr_ptr(x), ss, o->buf->data, ds, x->m.dtype);
}

/* ----- registration ----- */

void am_cuda_register_indexing(am_backend *b); /* indexing.c */
void am_cuda_register_sort(am_backend *b);     /* sort.c */
void am_cuda_register_conv(am_backend *b);     /* conv.c */

void am_cuda_register_shape(am_backend *b) {
  /* stride-only views: the CPU kernels themselves */
  static const int views[] = {
      AM_OP_TRANSPOSE,    AM_OP_EXPAND_DIMS,    AM_OP_SQUEEZE,
      AM_OP_BROADCAST_TO, AM_OP_BROADCAST_LIKE, AM_OP_SLICE,
      AM_OP_SPLIT,
  };
  for (size_t i = 0; i < sizeof views / sizeof *views; i++)
    b->eval[views[i]] = am_prims[views[i]]->eval_cpu;
  b->eval[AM_OP_RESHAPE] = reshape_cuda;
  b->eval[AM_OP_FLATTEN] = reshape_cuda;
  b->eval[AM_OP_UNFLATTEN] = reshape_cuda;
  b->eval[AM_OP_CONCATENATE] = concat_cuda;
  b->eval[AM_OP_PAD] = pad_cuda;
  b->eval[AM_OP_REPEAT] = repeat_cuda;
  b->eval[AM_OP_TILE] = tile_cuda;
  am_cuda_register_indexing(b);
  am_cuda_register_sort(b);
  am_cuda_register_conv(b);
}
