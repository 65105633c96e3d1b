/*
 * indexing.c — gathers and scatters along an axis (take, take_along_axis,
 * put_along_axis) and window writes/reads (slice_update, dynamic_slice,
 * dynamic_slice_update).
 *
 * Every kernel is one strided walk (am_iter) over its output or its
 * written region. Gathers and scatters add the index array as one more
 * operand of the walk, with stride 0 on the dims it does not span: the
 * row callback turns the index into a byte offset along the axis. So a
 * transposed, sliced or broadcast operand costs nothing special, and the
 * common "one index per contiguous row" case (embedding lookup) becomes a
 * memcpy per row.
 *
 * Indices may be of any integer type; negative ones count from the end.
 * An index out of range stops the kernel with AM_ERR_INVALID_ARG (no read
 * or write out of bounds). Update ops cast their values to x's dtype as
 * MLX does, and write in place into x's buffer when x is dead (donation),
 * which is what makes a KV-cache write O(update) instead of O(cache).
 */
#include "../core/internal.h"
#include "indexing_params.h"

#include <stdlib.h>

/* ======================================================================
 *  Shared helpers
 * ====================================================================== */

static am_status check_index_dtype(const am_meta *m, const char *what) {
  if (!am_dtype_is_int(m->dtype))
    return AM_FAIL(AM_ERR_DTYPE, "%s must have an integer dtype, not %s", what,
                   am_dtype_name(m->dtype));
  return AM_OK;
}

static am_status check_axis(int axis, int ndim, int *ax) {
  *ax = am_norm_axis(axis, ndim);
  if (*ax < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims", axis,
                   ndim);
  return AM_OK;
}

/* The first out-of-range index a (possibly parallel) walk met. */
typedef struct {
  atomic_int bad;
  atomic_llong value;
} bad_index;

static void note_bad(bad_index *b, int64_t v) {
  if (!atomic_exchange(&b->bad, 1)) atomic_store(&b->value, v);
}

static am_status bad_index_error(bad_index *b, int axis, int64_t n) {
  return AM_FAIL(AM_ERR_INVALID_ARG,
                 "index %lld out of range for axis %d of size %lld",
                 (long long)atomic_load(&b->value), axis, (long long)n);
}

/* Context of the gather/scatter/check walks. */
typedef struct {
  int64_t n;      /* size of the indexed axis */
  int64_t stride; /* bytes between neighbours along that axis */
  bad_index err;
} axis_ctx;

/* v normalized into [0, n), or false (noted) when out of range. */
static inline bool norm_index(axis_ctx *c, int64_t v, int64_t *j) {
  int64_t k = v < 0 ? v + c->n : v;
  if ((uint64_t)k >= (uint64_t)c->n) {
    note_bad(&c->err, v);
    return false;
  }
  *j = k;
  return true;
}

/* Row callbacks, generated per index type (IT) and element size (ES):
 *  gather:  operands out, x, idx:    out[i] = x[i] shifted by idx[i]
 *  scatter: operands out, idx, vals: out[i] shifted by idx[i] = vals[i]
 *  check:   operand idx:             range check only
 * Elements move with memcpy of a constant size (one load/store, and no
 * aliasing questions between dtypes of the same size). */
#define GATHER_ROW(IN, IT, ES)                                                 \
  static void gather_##IN##_##ES(void *vc, int64_t n, char **p,                \
                                 const int64_t *s) {                           \
    axis_ctx *c = vc;                                                          \
    int64_t j;                                                                 \
    if (s[2] == 0) { /* one index for the whole row */                         \
      if (!norm_index(c, (int64_t) * (const IT *)p[2], &j)) return;            \
      const char *src = p[1] + j * c->stride;                                  \
      if (s[0] == ES && s[1] == ES) {                                          \
        memcpy(p[0], src, (size_t)n *ES);                                      \
        return;                                                                \
      }                                                                        \
      for (int64_t i = 0; i < n; i++)                                          \
        memcpy(p[0] + i * s[0], src + i * s[1], ES);                           \
      return;                                                                  \
    }                                                                          \
    for (int64_t i = 0; i < n; i++)                                            \
      if (norm_index(c, (int64_t) * (const IT *)(p[2] + i * s[2]), &j))        \
        memcpy(p[0] + i * s[0], p[1] + i * s[1] + j * c->stride, ES);          \
  }                                                                            \
  static void scatter_##IN##_##ES(void *vc, int64_t n, char **p,               \
                                  const int64_t *s) {                          \
    axis_ctx *c = vc;                                                          \
    int64_t j;                                                                 \
    for (int64_t i = 0; i < n; i++)                                            \
      if (norm_index(c, (int64_t) * (const IT *)(p[1] + i * s[1]), &j))        \
        memcpy(p[0] + i * s[0] + j * c->stride, p[2] + i * s[2], ES);          \
  }

#define CHECK_ROW(IN, IT)                                                      \
  static void check_##IN(void *vc, int64_t n, char **p, const int64_t *s) {    \
    axis_ctx *c = vc;                                                          \
    int64_t j;                                                                 \
    for (int64_t i = 0; i < n; i++)                                            \
      if (!norm_index(c, (int64_t) * (const IT *)(p[0] + i * s[0]), &j))       \
        return;                                                                \
  }

#define INDEX_TYPES(X)                                                         \
  X(u8, uint8_t) X(i8, int8_t) X(u32, uint32_t) X(i32, int32_t) X(i64, int64_t)
#define ROWS_FOR(IN, IT)                                                       \
  GATHER_ROW(IN, IT, 1)                                                        \
  GATHER_ROW(IN, IT, 2)                                                        \
  GATHER_ROW(IN, IT, 4) GATHER_ROW(IN, IT, 8) CHECK_ROW(IN, IT)
INDEX_TYPES(ROWS_FOR)

/* Tables indexed by [index dtype - AM_U8][log2(element size)]. */
#define FN_ROW(IN, IT)                                                         \
  {gather_##IN##_1, gather_##IN##_2, gather_##IN##_4, gather_##IN##_8},
static const am_row_fn gather_fns[5][4] = {INDEX_TYPES(FN_ROW)};
#undef FN_ROW
#define FN_ROW(IN, IT)                                                         \
  {scatter_##IN##_1, scatter_##IN##_2, scatter_##IN##_4, scatter_##IN##_8},
static const am_row_fn scatter_fns[5][4] = {INDEX_TYPES(FN_ROW)};
#undef FN_ROW
#define FN_ROW(IN, IT) check_##IN,
static const am_row_fn check_fns[5] = {INDEX_TYPES(FN_ROW)};
#undef FN_ROW

static int log2_size(size_t es) {
  return es == 1 ? 0 : es == 2 ? 1 : es == 4 ? 2 : 3;
}
static int index_slot(am_dtype t) {
  return (int)t - (int)AM_U8;
}

/* Same-dtype strided copy rows (operands dst, src; src may broadcast). */
#define COPY_ROW(ES)                                                           \
  static void copy_row_##ES(void *c, int64_t n, char **p, const int64_t *s) {  \
    if (s[0] == ES && s[1] == ES) {                                            \
      memcpy(p[0], p[1], (size_t)n *ES);                                       \
      return;                                                                  \
    }                                                                          \
    for (int64_t i = 0; i < n; i++)                                            \
      memcpy(p[0] + i * s[0], p[1] + i * s[1], ES);                            \
  }
COPY_ROW(1)
COPY_ROW(2)
COPY_ROW(4)
COPY_ROW(8)
static const am_row_fn copy_fns[4] = {copy_row_1, copy_row_2, copy_row_4,
                                      copy_row_8};

/* Writes src (shape `shape`, element strides sst, already of dst's dtype)
 * into dst at byte address `dst` with element strides dst_st. */
static void strided_copy(const int64_t *shape, int nd, char *dst,
                         const int64_t *dst_st, const char *src,
                         const int64_t *src_st, size_t es) {
  char *base[2] = {dst, (char *)src};
  const int64_t *st[2] = {dst_st, src_st};
  size_t esz[2] = {es, es};
  am_iter it;
  am_iter_init(&it, shape, nd, 2, base, st, esz);
  am_iter_run_parallel(&it, copy_fns[log2_size(es)], NULL, 1 << 16);
}

/* The values written by an update op, as x's dtype: the array itself when
 * the dtypes agree, else a converted row-major copy in *tmp (freed by the
 * caller). Strides in elements go to st. */
static am_status update_source(const am_arr *u, am_dtype dt, void **tmp,
                               const char **ptr, int64_t *st) {
  *tmp = NULL;
  if (u->m.dtype == dt) {
    *ptr = am_arr_ptr(u);
    memcpy(st, u->strides, (size_t)u->m.ndim * sizeof *st);
    return AM_OK;
  }
  *tmp = malloc((size_t)(u->size ? u->size : 1) * am_dtype_size(dt));
  if (!*tmp) return AM_FAIL(AM_ERR_OOM, "out of memory converting values");
  am_copy_to_contig(u, *tmp, dt);
  *ptr = *tmp;
  am_contig_strides(u->m.shape, u->m.ndim, st);
  return AM_OK;
}

/* out = x: takes x's buffer when x is dead (then the caller writes only
 * the updated region), else copies x into a fresh buffer. */
static am_status copy_or_donate(am_arr *out, am_arr *x) {
  am_status s = am_out_alloc_donate(out, &x, 1);
  if (s || out->buf == x->buf || !out->size) return s;
  am_copy_to_contig(x, out->buf->data, out->m.dtype);
  return AM_OK;
}

/* Window offsets from the integer array `start` (shape [naxes]), clamped
 * so that a window of `len[i]` fits in an axis of `dim[i]`. */
static void read_offsets(const am_arr *start, int naxes, const int64_t *len,
                         const int64_t *dim, int64_t *off) {
  size_t es = am_dtype_size(start->m.dtype);
  for (int i = 0; i < naxes; i++) {
    int64_t v =
        am_load_i64(am_arr_ptr(start) + i * start->strides[0] * (int64_t)es,
                    start->m.dtype);
    int64_t hi = dim[i] - len[i];
    off[i] = v < 0 ? 0 : v > hi ? hi : v;
  }
}

/* Runs a walk on the thread pool in whole rows (am_iter_run_parallel may
 * split one long row, which a scatter cannot allow). */
typedef struct {
  const am_iter *it;
  am_row_fn fn;
  void *ctx;
} rows_ctx;

static void rows_range(void *vc, int64_t b, int64_t e) {
  rows_ctx *r = vc;
  am_iter_run(r->it, b, e, r->fn, r->ctx);
}

static void run_whole_rows(const am_iter *it, am_row_fn fn, void *ctx,
                           int64_t min_elems_per_task) {
  int64_t rows = am_iter_rows(it), len = it->shape[it->ndim - 1];
  int64_t grain = min_elems_per_task / (len ? len : 1);
  rows_ctx r = {it, fn, ctx};
  am_parallel_for(rows, grain < 1 ? 1 : grain, rows_range, &r);
}

/* ======================================================================
 *  take
 * ====================================================================== */

static am_status take_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  const am_meta *x = in[0], *idx = in[1];
  int ax;
  am_status s = check_index_dtype(idx, "indices");
  if (!s) s = check_axis(((const axis_params *)params)->axis, x->ndim, &ax);
  if (s) return s;
  int nd = x->ndim - 1 + idx->ndim;
  if (nd > AM_MAX_DIMS)
    return AM_FAIL(AM_ERR_SHAPE, "the result would have %d dims (max %d)", nd,
                   AM_MAX_DIMS);
  /* out = x.shape[:ax] + idx.shape + x.shape[ax+1:] */
  out[0].dtype = x->dtype;
  out[0].ndim = nd;
  memcpy(out[0].shape, x->shape, (size_t)ax * sizeof *x->shape);
  memcpy(out[0].shape + ax, idx->shape, (size_t)idx->ndim * sizeof *x->shape);
  memcpy(out[0].shape + ax + idx->ndim, x->shape + ax + 1,
         (size_t)(x->ndim - ax - 1) * sizeof *x->shape);
  return AM_OK;
}

/* Walks out with operands (out, x, idx): xs/is are x's and idx's element
 * strides over out's dims (0 where they do not vary). */
static am_status run_gather(am_arr *o, const am_arr *x, const am_arr *idx,
                            int ax, const int64_t *xs, const int64_t *is) {
  size_t es = am_dtype_size(x->m.dtype);
  axis_ctx c = {.n = x->m.shape[ax], .stride = x->strides[ax] * (int64_t)es};
  char *base[3] = {am_arr_ptr(o), am_arr_ptr(x), am_arr_ptr(idx)};
  const int64_t *st[3] = {o->strides, xs, is};
  size_t esz[3] = {es, es, am_dtype_size(idx->m.dtype)};
  am_iter it;
  am_iter_init(&it, o->m.shape, o->m.ndim, 3, base, st, esz);
  am_iter_run_parallel(&it, gather_fns[index_slot(idx->m.dtype)][log2_size(es)],
                       &c, 1 << 15);
  return atomic_load(&c.err.bad) ? bad_index_error(&c.err, ax, c.n) : AM_OK;
}

static am_status take_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
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

const am_prim am_prim_take = {
    .name = "take",
    .n_in = 2,
    .n_out = 1,
    .params_size = sizeof(axis_params),
    .output_shapes = take_shapes,
    .eval_cpu = take_eval,
};

am_array am_take(am_array x, am_array indices, int axis) {
  axis_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  am_arr *in[2] = {x, indices};
  return am_op_make(AM_OP_TAKE, &p, in, 2);
}

/* ======================================================================
 *  take_along_axis / put_along_axis
 * ====================================================================== */

static am_status along_common(const am_meta *x, const am_meta *idx, int axis,
                              int *ax) {
  am_status s = check_index_dtype(idx, "indices");
  if (!s) s = check_axis(axis, x->ndim, ax);
  if (!s && idx->ndim != x->ndim)
    s = AM_FAIL(AM_ERR_SHAPE, "indices need as many dims as x (%d), not %d",
                x->ndim, idx->ndim);
  return s;
}

static am_status take_along_shapes(const am_meta *const *in, int n_in,
                                   const void *params, am_meta *out,
                                   int n_out) {
  const am_meta *x = in[0], *idx = in[1];
  int ax;
  am_status s = along_common(x, idx, ((const axis_params *)params)->axis, &ax);
  if (s) return s;
  /* NumPy: indices broadcast against x on every axis but `axis` */
  out[0] = *x;
  for (int d = 0; d < x->ndim; d++) {
    int64_t a = x->shape[d], b = idx->shape[d];
    if (d == ax) {
      out[0].shape[d] = b;
    } else if (a != b && a != 1 && b != 1) {
      return AM_FAIL(AM_ERR_SHAPE,
                     "indices do not broadcast against x on axis %d", d);
    } else {
      out[0].shape[d] = a == 1 ? b : a;
    }
  }
  return AM_OK;
}

static am_status take_along_eval(am_arr *const *in, int n_in,
                                 am_arr *const *out, int n_out,
                                 const void *params) {
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

const am_prim am_prim_take_along_axis = {
    .name = "take_along_axis",
    .n_in = 2,
    .n_out = 1,
    .params_size = sizeof(axis_params),
    .output_shapes = take_along_shapes,
    .eval_cpu = take_along_eval,
};

am_array am_take_along_axis(am_array x, am_array indices, int axis) {
  axis_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  am_arr *in[2] = {x, indices};
  return am_op_make(AM_OP_TAKE_ALONG_AXIS, &p, in, 2);
}

/* The shape every write of put_along_axis walks: x's, with idx's length on
 * axis. Indices broadcast *to* x (their dims are 1 or x's) so that each
 * output element has all its writers on one line along axis. */
static am_status put_walk_shape(const am_meta *x, const am_meta *idx, int ax,
                                int64_t *walk) {
  for (int d = 0; d < x->ndim; d++) {
    if (d != ax && idx->shape[d] != 1 && idx->shape[d] != x->shape[d])
      return AM_FAIL(AM_ERR_SHAPE, "indices do not broadcast to x on axis %d",
                     d);
    walk[d] = d == ax ? idx->shape[d] : x->shape[d];
  }
  return AM_OK;
}

static am_status put_along_shapes(const am_meta *const *in, int n_in,
                                  const void *params, am_meta *out, int n_out) {
  const am_meta *x = in[0], *idx = in[1], *v = in[2];
  int ax;
  int64_t walk[AM_MAX_DIMS];
  am_status s = along_common(x, idx, ((const axis_params *)params)->axis, &ax);
  if (!s) s = put_walk_shape(x, idx, ax, walk);
  if (s) return s;
  bool ok = v->ndim <= x->ndim;
  for (int i = 0; ok && i < v->ndim; i++) {
    int64_t d = v->shape[i], w = walk[x->ndim - v->ndim + i];
    ok = d == w || d == 1;
  }
  if (!ok) {
    am_meta wm = *x;
    char b[256];
    memcpy(wm.shape, walk, sizeof walk);
    return AM_FAIL(AM_ERR_SHAPE, "values do not broadcast to the indices' %s",
                   am_meta_str(&wm, b, sizeof b));
  }
  out[0] = *x;
  return AM_OK;
}

static am_status put_along_eval(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  am_arr *x = in[0];
  const am_arr *idx = in[1], *v = in[2];
  am_arr *o = out[0];
  int nd = x->m.ndim;
  int ax = am_norm_axis(((const axis_params *)params)->axis, nd);
  int64_t walk[AM_MAX_DIMS];
  (void)put_walk_shape(&x->m, &idx->m, ax, walk);
  int64_t nwalk = 1;
  for (int d = 0; d < nd; d++)
    nwalk *= walk[d];
  size_t es = am_dtype_size(x->m.dtype);
  axis_ctx c = {.n = x->m.shape[ax]};
  int slot = index_slot(idx->m.dtype);
  if (nwalk) {
    /* Check every index before x's buffer may be written in place. */
    char *ib = am_arr_ptr(idx);
    const int64_t *ist = idx->strides;
    size_t ies = am_dtype_size(idx->m.dtype);
    am_iter it;
    am_iter_init(&it, idx->m.shape, nd, 1, &ib, &ist, &ies);
    am_iter_run_parallel(&it, check_fns[slot], &c, 1 << 16);
    if (atomic_load(&c.err.bad)) return bad_index_error(&c.err, ax, c.n);
  }
  am_status s = copy_or_donate(o, x);
  if (s || !nwalk) return s;
  void *tmp;
  const char *vp;
  int64_t vst[AM_MAX_DIMS];
  s = update_source(v, o->m.dtype, &tmp, &vp, vst);
  if (s) return s;
  /* Walk with axis innermost: one row holds every writer of its outputs,
   * in order, so duplicates resolve as "last write wins" and rows can go
   * to different threads. */
  int64_t ist[AM_MAX_DIMS], vbs[AM_MAX_DIMS];
  am_broadcast_strides_of(idx->m.shape, idx->strides, nd, walk, nd, ist);
  am_broadcast_strides_of(v->m.shape, vst, v->m.ndim, walk, nd, vbs);
  int64_t shp[AM_MAX_DIMS], s0[AM_MAX_DIMS], s1[AM_MAX_DIMS], s2[AM_MAX_DIMS];
  for (int d = 0; d < nd; d++) {
    int src = d == nd - 1 ? ax : (d < ax ? d : d + 1);
    shp[d] = walk[src];
    s0[d] = src == ax ? 0 : o->strides[src];
    s1[d] = ist[src];
    s2[d] = vbs[src];
  }
  c.stride = o->strides[ax] * (int64_t)es;
  char *base[3] = {o->buf->data, am_arr_ptr(idx), (char *)vp};
  const int64_t *st[3] = {s0, s1, s2};
  size_t esz[3] = {es, am_dtype_size(idx->m.dtype), es};
  am_iter it;
  am_iter_init(&it, shp, nd, 3, base, st, esz);
  /* whole rows per task: a row split across threads could reorder writes */
  run_whole_rows(&it, scatter_fns[slot][log2_size(es)], &c, 1 << 15);
  free(tmp);
  return AM_OK;
}

const am_prim am_prim_put_along_axis = {
    .name = "put_along_axis",
    .n_in = 3,
    .n_out = 1,
    .params_size = sizeof(axis_params),
    .output_shapes = put_along_shapes,
    .eval_cpu = put_along_eval,
};

am_array am_put_along_axis(am_array x, am_array indices, am_array values,
                           int axis) {
  axis_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  am_arr *in[3] = {x, indices, values};
  return am_op_make(AM_OP_PUT_ALONG_AXIS, &p, in, 3);
}

/* ======================================================================
 *  slice_update
 * ====================================================================== */

/* Python's slice.indices(len) and the slice length; AM_END as stop with a
 * negative step means "through index 0" (Python's None). */
void am_slice_norm(int64_t start, int64_t stop, int64_t step, int64_t len,
                   int64_t *first, int64_t *count) {
  bool back = step < 0;
  if (start < 0) {
    start += len;
    if (start < 0) start = back ? -1 : 0;
  } else if (start >= len) {
    start = back ? len - 1 : len;
  }
  if (back && stop == AM_END) {
    stop = -1;
  } else if (stop < 0) {
    stop += len;
    if (stop < 0) stop = back ? -1 : 0;
  } else if (stop >= len) {
    stop = back ? len - 1 : len;
  }
  *first = start;
  if (back)
    *count = stop < start ? (start - stop - 1) / -step + 1 : 0;
  else
    *count = start < stop ? (stop - start - 1) / step + 1 : 0;
}

/* Shape of the slice of x; first[i] the first index on each axis. */
static am_status slice_region(const am_meta *x, const slice_params *p,
                              int64_t *shape, int64_t *first) {
  if (p->n > x->ndim)
    return AM_FAIL(AM_ERR_INVALID_ARG, "%d slice bounds for %d dims", p->n,
                   x->ndim);
  for (int i = 0; i < x->ndim; i++) {
    if (i >= p->n) {
      first[i] = 0;
      shape[i] = x->shape[i];
      continue;
    }
    if (p->step[i] == 0)
      return AM_FAIL(AM_ERR_INVALID_ARG, "step 0 on axis %d", i);
    am_slice_norm(p->start[i], p->stop[i], p->step[i], x->shape[i], &first[i],
                  &shape[i]);
  }
  return AM_OK;
}

/* update must broadcast to `shape` (right-aligned, dims equal or 1). */
static am_status check_update(const am_meta *x, const am_meta *u,
                              const int64_t *shape, const char *what) {
  bool ok = u->ndim <= x->ndim;
  for (int i = 0; ok && i < u->ndim; i++) {
    int64_t d = u->shape[i], w = shape[x->ndim - u->ndim + i];
    ok = d == w || d == 1;
  }
  if (ok) return AM_OK;
  am_meta m = *x;
  char b[256];
  memcpy(m.shape, shape, (size_t)x->ndim * sizeof *shape);
  return AM_FAIL(AM_ERR_SHAPE, "update does not broadcast to the %s %s", what,
                 am_meta_str(&m, b, sizeof b));
}

static am_status slice_update_shapes(const am_meta *const *in, int n_in,
                                     const void *params, am_meta *out,
                                     int n_out) {
  int64_t shape[AM_MAX_DIMS], first[AM_MAX_DIMS];
  am_status s = slice_region(in[0], params, shape, first);
  if (!s) s = check_update(in[0], in[1], shape, "slice");
  if (!s) out[0] = *in[0];
  return s;
}

/* Copies the update u (already validated to broadcast to `shape`) into
 * out's region starting at element `first` with per-axis element steps. */
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
  size_t es = am_dtype_size(o->m.dtype);
  void *tmp;
  const char *up;
  am_status s = update_source(u, o->m.dtype, &tmp, &up, ust);
  if (s) return s;
  am_broadcast_strides_of(u->m.shape, ust, u->m.ndim, shape, nd, src);
  strided_copy(shape, nd, (char *)o->buf->data + off * (int64_t)es, dst, up,
               src, es);
  free(tmp);
  return AM_OK;
}

static am_status slice_update_eval(am_arr *const *in, int n_in,
                                   am_arr *const *out, int n_out,
                                   const void *params) {
  const slice_params *p = params;
  int64_t shape[AM_MAX_DIMS], first[AM_MAX_DIMS], step[AM_MAX_DIMS];
  (void)slice_region(&in[0]->m, p, shape, first);
  for (int i = 0; i < in[0]->m.ndim; i++)
    step[i] = i < p->n ? p->step[i] : 1;
  am_status s = copy_or_donate(out[0], in[0]);
  return s ? s : write_region(out[0], in[1], shape, first, step);
}

const am_prim am_prim_slice_update = {
    .name = "slice_update",
    .n_in = 2,
    .n_out = 1,
    .params_size = sizeof(slice_params),
    .output_shapes = slice_update_shapes,
    .eval_cpu = slice_update_eval,
};

am_array am_slice_update(am_array x, am_array update, const int64_t *start,
                         const int64_t *stop, const int64_t *step, int n) {
  slice_params p;
  memset(&p, 0, sizeof p);
  if (n < 0 || n > AM_MAX_DIMS)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "slice_update: %d slice bounds (max %d)", n,
                          AM_MAX_DIMS);
  if (n && (!start || !stop))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "slice_update: start or stop is NULL");
  p.n = n;
  for (int i = 0; i < n; i++) {
    p.start[i] = start[i];
    p.stop[i] = stop[i];
    p.step[i] = step ? step[i] : 1;
  }
  am_arr *in[2] = {x, update};
  return am_op_make(AM_OP_SLICE_UPDATE, &p, in, 2);
}

/* ======================================================================
 *  dynamic_slice / dynamic_slice_update
 * ====================================================================== */

/* Normalized, distinct axes, and `start` an integer array of shape
 * [naxes]. */
static am_status dyn_common(const am_meta *x, const am_meta *start,
                            const dyn_params *p, int *ax) {
  am_status s = check_index_dtype(start, "start");
  if (s) return s;
  if (start->ndim != 1 || start->shape[0] != p->naxes)
    return AM_FAIL(AM_ERR_SHAPE, "start must have shape [%d]", p->naxes);
  for (int i = 0; i < p->naxes; i++) {
    if ((s = check_axis(p->axes[i], x->ndim, &ax[i]))) return s;
    for (int j = 0; j < i; j++)
      if (ax[j] == ax[i])
        return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d given twice", ax[i]);
  }
  return AM_OK;
}

static am_status dyn_slice_shapes(const am_meta *const *in, int n_in,
                                  const void *params, am_meta *out, int n_out) {
  const dyn_params *p = params;
  const am_meta *x = in[0];
  int ax[AM_MAX_DIMS];
  am_status s = dyn_common(x, in[1], p, ax);
  if (s) return s;
  out[0] = *x;
  for (int i = 0; i < p->naxes; i++) {
    if (p->sizes[i] < 0 || p->sizes[i] > x->shape[ax[i]])
      return AM_FAIL(AM_ERR_SHAPE,
                     "size %lld does not fit axis %d of size %lld",
                     (long long)p->sizes[i], ax[i], (long long)x->shape[ax[i]]);
    out[0].shape[ax[i]] = p->sizes[i];
  }
  return AM_OK;
}

/* A view: the window's offset is data, its strides are x's. */
static am_status dyn_slice_eval(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  const dyn_params *p = params;
  const am_arr *x = in[0];
  int ax[AM_MAX_DIMS];
  int64_t dim[AM_MAX_DIMS], off[AM_MAX_DIMS], offset = x->offset;
  for (int i = 0; i < p->naxes; i++) {
    ax[i] = am_norm_axis(p->axes[i], x->m.ndim);
    dim[i] = x->m.shape[ax[i]];
  }
  read_offsets(in[1], p->naxes, p->sizes, dim, off);
  for (int i = 0; i < p->naxes; i++)
    offset += off[i] * x->strides[ax[i]];
  am_out_view(out[0], x, x->strides, offset);
  return AM_OK;
}

/* The window sizes may be captured sizes: compile guards them. */
static int dyn_slice_literals(const void *params, int64_t *out, int max) {
  const dyn_params *p = params;
  return am_literals_add(p->sizes, p->naxes, out, 0, max);
}

const am_prim am_prim_dynamic_slice = {
    .name = "dynamic_slice",
    .n_in = 2,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(dyn_params),
    .output_shapes = dyn_slice_shapes,
    .eval_cpu = dyn_slice_eval,
    .literal_sizes = dyn_slice_literals,
};

static am_array dyn_make(int op, const char *name, am_arr **in, int n_in,
                         const int *axes, int naxes, const int64_t *sizes) {
  dyn_params p;
  memset(&p, 0, sizeof p);
  if (naxes < 0 || naxes > AM_MAX_DIMS)
    return am_error_array(AM_ERR_INVALID_ARG, "%s: %d axes (max %d)", name,
                          naxes, AM_MAX_DIMS);
  if (naxes && (!axes || (op == AM_OP_DYNAMIC_SLICE && !sizes)))
    return am_error_array(AM_ERR_INVALID_ARG, "%s: axes or sizes is NULL",
                          name);
  p.naxes = naxes;
  for (int i = 0; i < naxes; i++) {
    p.axes[i] = axes[i];
    if (sizes) p.sizes[i] = sizes[i];
  }
  return am_op_make(op, &p, in, n_in);
}

am_array am_dynamic_slice(am_array x, am_array start, const int *axes,
                          int naxes, const int64_t *sizes) {
  am_arr *in[2] = {x, start};
  return dyn_make(AM_OP_DYNAMIC_SLICE, "dynamic_slice", in, 2, axes, naxes,
                  sizes);
}

static am_status dyn_update_shapes(const am_meta *const *in, int n_in,
                                   const void *params, am_meta *out,
                                   int n_out) {
  const dyn_params *p = params;
  const am_meta *x = in[0], *u = in[1];
  int ax[AM_MAX_DIMS];
  am_status s = dyn_common(x, in[2], p, ax);
  if (s) return s;
  if (u->ndim != x->ndim)
    return AM_FAIL(AM_ERR_SHAPE, "update needs as many dims as x (%d), not %d",
                   x->ndim, u->ndim);
  for (int d = 0; d < x->ndim; d++) {
    bool listed = false;
    for (int i = 0; i < p->naxes; i++)
      listed |= ax[i] == d;
    if (listed ? u->shape[d] > x->shape[d] : u->shape[d] != x->shape[d])
      return AM_FAIL(AM_ERR_SHAPE,
                     "update size %lld does not fit axis %d of size %lld%s",
                     (long long)u->shape[d], d, (long long)x->shape[d],
                     listed ? "" : " (an axis not listed must match)");
  }
  out[0] = *x;
  return AM_OK;
}

static am_status dyn_update_eval(am_arr *const *in, int n_in,
                                 am_arr *const *out, int n_out,
                                 const void *params) {
  const dyn_params *p = params;
  am_arr *x = in[0];
  const am_arr *u = in[1];
  int nd = x->m.ndim;
  int64_t len[AM_MAX_DIMS], dim[AM_MAX_DIMS], off[AM_MAX_DIMS],
      first[AM_MAX_DIMS] = {0}, step[AM_MAX_DIMS];
  int ax[AM_MAX_DIMS];
  for (int i = 0; i < p->naxes; i++) {
    ax[i] = am_norm_axis(p->axes[i], nd);
    len[i] = u->m.shape[ax[i]];
    dim[i] = x->m.shape[ax[i]];
  }
  /* offsets first: `start` is read before x's buffer may be reused */
  read_offsets(in[2], p->naxes, len, dim, off);
  for (int i = 0; i < p->naxes; i++)
    first[ax[i]] = off[i];
  for (int d = 0; d < nd; d++)
    step[d] = 1;
  am_status s = copy_or_donate(out[0], x);
  return s ? s : write_region(out[0], u, u->m.shape, first, step);
}

const am_prim am_prim_dynamic_slice_update = {
    .name = "dynamic_slice_update",
    .n_in = 3,
    .n_out = 1,
    .params_size = sizeof(dyn_params),
    .output_shapes = dyn_update_shapes,
    .eval_cpu = dyn_update_eval,
};

am_array am_dynamic_slice_update(am_array x, am_array update, am_array start,
                                 const int *axes, int naxes) {
  am_arr *in[3] = {x, update, start};
  return dyn_make(AM_OP_DYNAMIC_SLICE_UPDATE, "dynamic_slice_update", in, 3,
                  axes, naxes, NULL);
}

am_array am_embedding(am_array table, am_array ids) {
  if (!table || !ids)
    return am_error_array(AM_ERR_INVALID_ARG, "embedding: NULL argument");
  if (table->err || ids->err) return am_take(table, ids, 0); /* propagates */
  if (table->m.ndim != 2 || !am_dtype_is_float(table->m.dtype)) {
    char sh[256];
    return am_error_array(AM_ERR_SHAPE,
                          "embedding: the table must be a 2-d float array "
                          "(got %s)",
                          am_meta_str(&table->m, sh, sizeof sh));
  }
  return am_take(table, ids, 0);
}
