/*
 * indexing.c — CUDA glue of the indexing family (see ops.h): take,
 * take_along_axis, put_along_axis, slice_update, dynamic_slice,
 * dynamic_slice_update, with src/ops/indexing.c's semantics.
 *
 * Differences from the CPU, both forced by never reading device data on
 * the host: an index out of range is not an error here (a gather writes
 * zero bits, a scatter skips that write; the CPU fails the op), and
 * dynamic_slice is a copy of the window rather than a view (its offset
 * is data, read by the kernel). Update ops write in place into x's
 * buffer when the CPU would (am_out_alloc_donate): the KV-cache write.
 */
#include "indexing.h"
#include "ops.h"
#include "shape.h"

#include "../ops/indexing_params.h"

void am_cuda_register_indexing(am_backend *b);

/* The values an update op writes, as dtype dt: u itself when the dtypes
 * agree, else a converted row-major copy (*tmp, released by the caller;
 * conversion as astype). Element strides to st. */
static am_status update_source(const am_arr *u, am_dtype dt, am_arr **tmp,
                               const char **ptr, int64_t *st) {
  *tmp = NULL;
  if (u->m.dtype == dt) {
    *ptr = u->size ? am_arr_ptr(u) : NULL;
    memcpy(st, u->strides, (size_t)u->m.ndim * sizeof *st);
    return AM_OK;
  }
  am_status s = am_cuda_contiguous((am_arr *)u, dt, tmp);
  if (s) return s;
  *ptr = u->size ? am_arr_ptr(*tmp) : NULL;
  memcpy(st, (*tmp)->strides, (size_t)u->m.ndim * sizeof *st);
  return AM_OK;
}

/* out = x: x's buffer when x is dead (the caller then writes only the
 * updated region), else a device copy of x. */
static am_status copy_or_donate(am_arr *out, am_arr *x) {
  am_status s = am_out_alloc_donate(out, &x, 1);
  if (s || out->buf == x->buf || !out->size) return s;
  return am_cushape_copy(x->m.ndim, x->m.shape, am_arr_ptr(x), x->strides,
                         out->buf->data, out->strides,
                         (int)am_dtype_size(x->m.dtype), 0);
}

/* ----- take, take_along_axis ----- */

static am_status run_gather(am_arr *o, const am_arr *x, const am_arr *idx,
                            int ax, const int64_t *xs, const int64_t *is) {
  return am_cuidx_gather(o->m.ndim, o->m.shape, am_arr_ptr(o),
                         x->size ? am_arr_ptr(x) : NULL, xs, am_arr_ptr(idx),
                         idx->m.dtype, is, x->m.shape[ax], x->strides[ax],
                         (int)am_dtype_size(x->m.dtype));
}

static am_status take_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const am_arr *x = in[0], *idx = in[1];
  am_arr *o = out[0];
  int ax = am_norm_axis(((const axis_params *)params)->axis, x->m.ndim);
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  int ni = idx->m.ndim;
  int64_t xs[AM_MAX_DIMS], is[AM_MAX_DIMS];
  for (int d = 0; d < o->m.ndim; d++) {
    bool mid = d >= ax && d < ax + ni;
    xs[d] = d < ax ? x->strides[d] : mid ? 0 : x->strides[d - ni + 1];
    is[d] = mid ? idx->strides[d - ax] : 0;
  }
  return run_gather(o, x, idx, ax, xs, is);
}

static am_status take_along_cuda(am_arr *const *in, int n_in,
                                 am_arr *const *out, int n_out,
                                 const void *params) {
  (void)n_in, (void)n_out;
  const am_arr *x = in[0], *idx = in[1];
  am_arr *o = out[0];
  int ax = am_norm_axis(((const axis_params *)params)->axis, x->m.ndim);
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  int64_t xs[AM_MAX_DIMS], is[AM_MAX_DIMS];
  am_broadcast_strides_of(x->m.shape, x->strides, x->m.ndim, o->m.shape,
                          o->m.ndim, xs);
  am_broadcast_strides_of(idx->m.shape, idx->strides, idx->m.ndim, o->m.shape,
                          o->m.ndim, is);
  xs[ax] = 0; /* the index supplies the position along axis */
  return run_gather(o, x, idx, ax, xs, is);
}

/* ----- put_along_axis ----- */

static am_status put_along_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  (void)n_in, (void)n_out;
  am_arr *x = in[0];
  const am_arr *idx = in[1], *v = in[2];
  am_arr *o = out[0];
  int nd = x->m.ndim;
  int ax = am_norm_axis(((const axis_params *)params)->axis, nd);
  /* the walk: x's shape with idx's length on axis (idx broadcasts to x) */
  int64_t walk[AM_MAX_DIMS], nwalk = 1;
  for (int d = 0; d < nd; d++) {
    walk[d] = d == ax ? idx->m.shape[d] : x->m.shape[d];
    nwalk *= walk[d];
  }
  am_status s = copy_or_donate(o, x);
  if (s || !nwalk) return s;
  am_arr *tmp;
  const char *vp;
  int64_t vst[AM_MAX_DIMS];
  s = update_source(v, o->m.dtype, &tmp, &vp, vst);
  if (s) return s;
  int64_t ist[AM_MAX_DIMS], vbs[AM_MAX_DIMS];
  am_broadcast_strides_of(idx->m.shape, idx->strides, nd, walk, nd, ist);
  am_broadcast_strides_of(v->m.shape, vst, v->m.ndim, walk, nd, vbs);
  /* outer dims: every one but axis; the kernel walks axis in order */
  int64_t shp[AM_MAX_DIMS], s0[AM_MAX_DIMS], s1[AM_MAX_DIMS], s2[AM_MAX_DIMS];
  int k = 0;
  for (int d = 0; d < nd; d++) {
    if (d == ax) continue;
    shp[k] = walk[d];
    s0[k] = o->strides[d];
    s1[k] = ist[d];
    s2[k++] = vbs[d];
  }
  s = am_cuidx_scatter(k, shp, o->buf->data, s0, am_arr_ptr(idx), idx->m.dtype,
                       s1, vp, s2, walk[ax], x->m.shape[ax], o->strides[ax],
                       ist[ax], vbs[ax], (int)am_dtype_size(o->m.dtype));
  if (tmp) am_arr_release(tmp);
  return s;
}

/* ----- slice_update ----- */

/* Writes u (broadcast to `shape`) into o's region at `first` (element
 * coordinates) with per-axis steps. */
static am_status write_region(am_arr *o, const am_arr *u, const int64_t *shape,
                              const int64_t *first, const int64_t *step) {
  int nd = o->m.ndim;
  int64_t n = 1, off = 0, dst[AM_MAX_DIMS], src[AM_MAX_DIMS], ust[AM_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    n *= shape[i];
    off += first[i] * o->strides[i];
    dst[i] = o->strides[i] * step[i];
  }
  if (!n) return AM_OK;
  int es = (int)am_dtype_size(o->m.dtype);
  am_arr *tmp;
  const char *up;
  am_status s = update_source(u, o->m.dtype, &tmp, &up, ust);
  if (s) return s;
  am_broadcast_strides_of(u->m.shape, ust, u->m.ndim, shape, nd, src);
  s = am_cushape_copy(nd, shape, up, src, (char *)o->buf->data + off * es, dst,
                      es, 0);
  if (tmp) am_arr_release(tmp);
  return s;
}

static am_status slice_update_cuda(am_arr *const *in, int n_in,
                                   am_arr *const *out, int n_out,
                                   const void *params) {
  (void)n_in, (void)n_out;
  const slice_params *p = params;
  const am_arr *x = in[0];
  int64_t shape[AM_MAX_DIMS], first[AM_MAX_DIMS], step[AM_MAX_DIMS];
  for (int i = 0; i < x->m.ndim; i++) {
    step[i] = i < p->n ? p->step[i] : 1;
    if (i >= p->n) {
      first[i] = 0;
      shape[i] = x->m.shape[i];
    } else if (p->step[i] == 0) {
      return am_set_error(AM_ERR_INVALID_ARG, "step 0 on axis %d", i);
    } else {
      am_slice_norm(p->start[i], p->stop[i], p->step[i], x->m.shape[i],
                    &first[i], &shape[i]);
    }
  }
  am_status s = copy_or_donate(out[0], in[0]);
  return s ? s : write_region(out[0], in[1], shape, first, step);
}

/* ----- dynamic_slice, dynamic_slice_update ----- */

static am_status dyn_slice_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const dyn_params *p = params;
  const am_arr *x = in[0], *start = in[1];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  int64_t ax_st[AM_MAX_DIMS], hi[AM_MAX_DIMS];
  for (int i = 0; i < p->naxes; i++) {
    int a = am_norm_axis(p->axes[i], x->m.ndim);
    ax_st[i] = x->strides[a];
    hi[i] = x->m.shape[a] - p->sizes[i];
  }
  return am_cuidx_dyn_copy(o->m.ndim, o->m.shape, am_arr_ptr(x), x->strides,
                           o->buf->data, o->strides,
                           (int)am_dtype_size(x->m.dtype), p->naxes, ax_st, hi,
                           p->naxes ? am_arr_ptr(start) : NULL, start->m.dtype,
                           start->strides[0], false);
}

static am_status dyn_update_cuda(am_arr *const *in, int n_in,
                                 am_arr *const *out, int n_out,
                                 const void *params) {
  (void)n_in, (void)n_out;
  const dyn_params *p = params;
  am_arr *x = in[0];
  const am_arr *u = in[1], *start = in[2];
  am_arr *o = out[0];
  /* The kernel reads `start` after x's buffer may have become out's:
   * safe, as donation needs x's buffer held by x alone. */
  am_status s = copy_or_donate(o, x);
  if (s || !u->size) return s;
  int64_t ax_st[AM_MAX_DIMS], hi[AM_MAX_DIMS], ust[AM_MAX_DIMS];
  for (int i = 0; i < p->naxes; i++) {
    int a = am_norm_axis(p->axes[i], x->m.ndim);
    ax_st[i] = o->strides[a];
    hi[i] = x->m.shape[a] - u->m.shape[a];
  }
  am_arr *tmp;
  const char *up;
  s = update_source(u, o->m.dtype, &tmp, &up, ust);
  if (s) return s;
  s = am_cuidx_dyn_copy(u->m.ndim, u->m.shape, up, ust, o->buf->data,
                        o->strides, (int)am_dtype_size(o->m.dtype), p->naxes,
                        ax_st, hi, p->naxes ? am_arr_ptr(start) : NULL,
                        start->m.dtype, start->strides[0], true);
  if (tmp) am_arr_release(tmp);
  return s;
}

void am_cuda_register_indexing(am_backend *b) {
  b->eval[AM_OP_TAKE] = take_cuda;
  b->eval[AM_OP_TAKE_ALONG_AXIS] = take_along_cuda;
  b->eval[AM_OP_PUT_ALONG_AXIS] = put_along_cuda;
  b->eval[AM_OP_SLICE_UPDATE] = slice_update_cuda;
  b->eval[AM_OP_DYNAMIC_SLICE] = dyn_slice_cuda;
  b->eval[AM_OP_DYNAMIC_SLICE_UPDATE] = dyn_update_cuda;
}
