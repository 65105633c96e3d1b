/*
 * shape_copy.c — the shape ops that must copy: concatenate, pad, repeat,
 * tile (plus stack, a composition), and the strided copy they and the
 * reshape fallback share.
 *
 * None of them looks at values, so every kernel moves elements by their
 * size (1, 2, 4 or 8 bytes) and works for every dtype. Repeat and tile are
 * one copy each from a stride-0 (broadcast) view of the input into a
 * reshaped view of the output: repeat writes [.., n, r, ..] from input
 * strides [.., s, 0, ..], tile writes [r0, s0, r1, s1, ..] from
 * [0, t0, 0, t1, ..].
 */
#include "shape_internal.h"
#include "shape_params.h"

#include <stdio.h>
#include <stdlib.h>

/* ======================================================================
 *  The strided copy
 * ====================================================================== */

/* Below this many bytes a copy runs on the calling thread. */
#define COPY_TASK_BYTES (128 * 1024)

char *am_sh_dims_str(const int64_t *d, int n, char *buf, size_t len) {
  size_t k = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < n && k < len; i++)
    k += (size_t)snprintf(buf + k, len - k, i ? ",%lld" : "%lld",
                          (long long)d[i]);
  if (k < len) snprintf(buf + k, len - k, "]");
  return buf;
}

/* Per element size: a strided copy row and a fill row (source stride 0).
 * Buffers are 64-byte aligned and offsets are whole elements, so typed
 * access is aligned. */
#define SH_ROWS(T)                                                             \
  static void copy_row_##T(int64_t n, const char *s, int64_t ss, char *d,      \
                           int64_t ds) {                                       \
    for (int64_t i = 0; i < n; i++, s += ss, d += ds)                          \
      *(T *)d = *(const T *)s;                                                 \
  }                                                                            \
  static void fill_row_##T(int64_t n, const char *s, char *d, int64_t ds) {    \
    T v = *(const T *)s;                                                       \
    if (ds == (int64_t)sizeof(T)) {                                            \
      T *dt = (T *)d;                                                          \
      for (int64_t i = 0; i < n; i++)                                          \
        dt[i] = v;                                                             \
      return;                                                                  \
    }                                                                          \
    for (int64_t i = 0; i < n; i++, d += ds)                                   \
      *(T *)d = v;                                                             \
  }
SH_ROWS(uint8_t)
SH_ROWS(uint16_t)
SH_ROWS(uint32_t)
SH_ROWS(uint64_t)
#undef SH_ROWS

typedef struct {
  void (*copy)(int64_t, const char *, int64_t, char *, int64_t);
  void (*fill)(int64_t, const char *, char *, int64_t);
  size_t es;
} row_ops;

static const row_ops k_row_ops[4] = {
    {copy_row_uint8_t, fill_row_uint8_t, 1},
    {copy_row_uint16_t, fill_row_uint16_t, 2},
    {copy_row_uint32_t, fill_row_uint32_t, 4},
    {copy_row_uint64_t, fill_row_uint64_t, 8},
};

/* am_iter row callback: operand 0 is the source, 1 the destination. */
static void copy_row(void *ctx, int64_t n, char **p, const int64_t *st) {
  const row_ops *o = ctx;
  int64_t es = (int64_t)o->es;
  if (st[0] == es && st[1] == es)
    memcpy(p[1], p[0], (size_t)(n * es));
  else if (st[0] == 0)
    o->fill(n, p[0], p[1], st[1]);
  else
    o->copy(n, p[0], st[0], p[1], st[1]);
}

/* Dims already collapsed (no size 1, none mergeable). More dims than the
 * iterator takes happen only for huge tile/repeat outputs (each dim >= 2,
 * so >= 2^17 elements): peel the outermost dim then. */
static void copy_walk(const int64_t *sh, int nd, const char *src,
                      const int64_t *ss, char *dst, const int64_t *ds,
                      const row_ops *o) {
  int64_t es = (int64_t)o->es;
  if (nd > AM_MAX_DIMS) {
    for (int64_t i = 0; i < sh[0]; i++)
      copy_walk(sh + 1, nd - 1, src + i * ss[0] * es, ss + 1,
                dst + i * ds[0] * es, ds + 1, o);
    return;
  }
  am_iter it;
  char *base[2] = {(char *)src, dst};
  const int64_t *str[2] = {ss, ds};
  size_t esz[2] = {o->es, o->es};
  am_iter_init(&it, sh, nd, 2, base, str, esz);
  am_iter_run_parallel(&it, copy_row, (void *)o, COPY_TASK_BYTES / es);
}

void am_sh_copy(const int64_t *shape, int nd, const char *src,
                const int64_t *src_st, char *dst, const int64_t *dst_st,
                size_t es) {
  int64_t sh[AM_SH_COPY_MAX_DIMS], ss[AM_SH_COPY_MAX_DIMS],
      ds[AM_SH_COPY_MAX_DIMS];
  int k = 0;
  /* Drop size-1 dims and merge dims contiguous on both sides, so the walk
   * needs as few dims as the layouts allow. */
  for (int i = 0; i < nd; i++) {
    if (shape[i] == 0) return;
    if (shape[i] == 1) continue;
    if (k && ss[k - 1] == src_st[i] * shape[i] &&
        ds[k - 1] == dst_st[i] * shape[i]) {
      sh[k - 1] *= shape[i];
      ss[k - 1] = src_st[i];
      ds[k - 1] = dst_st[i];
    } else {
      sh[k] = shape[i];
      ss[k] = src_st[i];
      ds[k] = dst_st[i];
      k++;
    }
  }
  int lg = es == 1 ? 0 : es == 2 ? 1 : es == 4 ? 2 : 3;
  copy_walk(sh, k, src, ss, dst, ds, &k_row_ops[lg]);
}

am_status am_sh_copy_contig(const am_arr *x, am_arr *out) {
  am_status s = am_out_alloc(out);
  if (s) return s;
  int64_t cst[AM_MAX_DIMS];
  am_contig_strides(x->m.shape, x->m.ndim, cst);
  am_sh_copy(x->m.shape, x->m.ndim, am_arr_ptr(x), x->strides, out->buf->data,
             cst, am_dtype_size(x->m.dtype));
  return AM_OK;
}

static bool mul_overflows(int64_t a, int64_t b) {
  return a && b > INT64_MAX / a;
}

am_status am_sh_check_size(const am_meta *m) {
  int64_t n = 1;
  for (int i = 0; i < m->ndim; i++) {
    if (mul_overflows(n, m->shape[i])) {
      char b[256];
      return AM_FAIL(AM_ERR_SHAPE, "result %s has too many elements",
                     am_sh_dims_str(m->shape, m->ndim, b, sizeof b));
    }
    n *= m->shape[i];
  }
  return AM_OK;
}

/* ======================================================================
 *  concatenate
 * ====================================================================== */

static am_status concat_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  const concat_params *p = params;
  if (n_in < 1) return AM_FAIL(AM_ERR_INVALID_ARG, "needs at least one input");
  const am_meta *a = in[0];
  int ax = am_norm_axis(p->axis, a->ndim);
  if (ax < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                   p->axis, a->ndim);
  out[0] = *a;
  for (int i = 1; i < n_in; i++) {
    const am_meta *b = in[i];
    if (b->dtype != a->dtype)
      return AM_FAIL(AM_ERR_DTYPE, "input %d is %s, input 0 is %s", i,
                     am_dtype_name(b->dtype), am_dtype_name(a->dtype));
    bool ok = b->ndim == a->ndim;
    for (int d = 0; ok && d < a->ndim; d++)
      ok = d == ax || b->shape[d] == a->shape[d];
    if (!ok)
      return AM_FAIL(AM_ERR_SHAPE,
                     "input %d does not match input 0 off axis %d", i, p->axis);
    if (out[0].shape[ax] > INT64_MAX - b->shape[ax])
      return AM_FAIL(AM_ERR_SHAPE, "axis %d too long", p->axis);
    out[0].shape[ax] += b->shape[ax];
  }
  return am_sh_check_size(&out[0]);
}

static am_status concat_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s) return s;
  int ax = am_norm_axis(((const concat_params *)params)->axis, o->m.ndim);
  size_t es = am_dtype_size(o->m.dtype);
  char *dst = o->buf->data;
  /* Each input lands in the out[.., off:off+n_i, ..] block. */
  for (int i = 0; i < n_in; i++) {
    const am_arr *x = in[i];
    am_sh_copy(x->m.shape, x->m.ndim, am_arr_ptr(x), x->strides, dst,
               o->strides, es);
    dst += x->m.shape[ax] * o->strides[ax] * (int64_t)es;
  }
  return AM_OK;
}

const am_prim am_prim_concatenate = {
    .name = "concatenate",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(concat_params),
    .output_shapes = concat_shapes,
    .eval_cpu = concat_eval,
};

am_array am_concatenate(const am_array *xs, int n, int axis) {
  if (n < 1 || !xs)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "concatenate: needs at least one input (got %d)", n);
  concat_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  return am_op_make(AM_OP_CONCATENATE, &p, (am_arr *const *)xs, n);
}

/* stack = concatenate of the inputs each given a size-1 axis at `axis`
 * (normalized against ndim + 1, as NumPy). Not a primitive. */
am_array am_stack(const am_array *xs, int n, int axis) {
  if (n < 1 || !xs)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "stack: needs at least one input (got %d)", n);
  /* Checked here so that errors name stack, not its parts; error and NULL
   * inputs go through the parts, which report them. */
  bool plain = !am_first_error((am_arr *const *)xs, n);
  for (int i = 0; plain && i < n; i++)
    plain = xs[i] != NULL;
  for (int i = 1; plain && i < n; i++) {
    char a[256], b[256];
    const am_meta *m0 = &xs[0]->m, *mi = &xs[i]->m;
    bool same = m0->ndim == mi->ndim && m0->dtype == mi->dtype;
    for (int d = 0; same && d < m0->ndim; d++)
      same = m0->shape[d] == mi->shape[d];
    if (!same)
      return am_error_array(
          m0->dtype == mi->dtype ? AM_ERR_SHAPE : AM_ERR_DTYPE,
          "stack: input %d is %s, input 0 is %s", i,
          am_meta_str(mi, a, sizeof a), am_meta_str(m0, b, sizeof b));
  }
  if (plain && am_norm_axis(axis, xs[0]->m.ndim + 1) < 0)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "stack: axis %d out of range for %d dims", axis,
                          xs[0]->m.ndim + 1);
  am_arr *local[16];
  am_arr **e = n <= 16 ? local : malloc((size_t)n * sizeof *e);
  if (!e) return am_error_array(AM_ERR_OOM, "stack: out of memory");
  /* A scope of our own owns the expand_dims results; the graph keeps
   * what it needs. The result's reference moves to the caller's scope. */
  am_scope_push();
  for (int i = 0; i < n; i++)
    e[i] = am_expand_dims(xs[i], &axis, 1);
  am_array r = am_keep(am_concatenate(e, n, axis));
  am_scope_pop();
  if (e != local) free(e);
  return am_scope_own(r);
}

/* ======================================================================
 *  pad
 * ====================================================================== */

static am_status pad_shapes(const am_meta *const *in, int n_in,
                            const void *params, am_meta *out, int n_out) {
  const pad_params *p = params;
  const am_meta *x = in[0];
  if (p->n > x->ndim)
    return AM_FAIL(AM_ERR_INVALID_ARG, "widths for %d axes, input has %d", p->n,
                   x->ndim);
  out[0] = *x;
  for (int i = 0; i < p->n; i++) {
    if (p->low[i] < 0 || p->high[i] < 0)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "negative width (%lld, %lld) on axis %d",
                     (long long)p->low[i], (long long)p->high[i], i);
    if (p->low[i] > INT64_MAX - x->shape[i] - p->high[i] ||
        p->high[i] > INT64_MAX - x->shape[i])
      return AM_FAIL(AM_ERR_SHAPE, "axis %d too long", i);
    out[0].shape[i] += p->low[i] + p->high[i];
  }
  return am_sh_check_size(&out[0]);
}

static am_status pad_eval(am_arr *const *in, int n_in, am_arr *const *out,
                          int n_out, const void *params) {
  const pad_params *p = params;
  const am_arr *x = in[0];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s) return s;
  size_t es = am_dtype_size(o->m.dtype);
  int nd = o->m.ndim;
  char *dst = o->buf->data;
  bool padded = false;
  for (int i = 0; i < p->n; i++)
    padded |= p->low[i] || p->high[i];
  if (padded) { /* fill everything from a stride-0 source, then the core */
    uint64_t v = 0;
    int64_t zero[AM_MAX_DIMS] = {0};
    am_store_f64(&v, o->m.dtype, p->value);
    am_sh_copy(o->m.shape, nd, (const char *)&v, zero, dst, o->strides, es);
  }
  for (int i = 0; i < p->n; i++)
    dst += p->low[i] * o->strides[i] * (int64_t)es;
  am_sh_copy(x->m.shape, nd, am_arr_ptr(x), x->strides, dst, o->strides, es);
  return AM_OK;
}

const am_prim am_prim_pad = {
    .name = "pad",
    .n_in = 1,
    .n_out = 1,
    .params_size = sizeof(pad_params),
    .output_shapes = pad_shapes,
    .eval_cpu = pad_eval,
};

am_array am_pad(am_array x, const int64_t *low, const int64_t *high, int n,
                double value) {
  if (n < 0 || n > AM_MAX_DIMS || (n && (!low || !high)))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "pad: bad widths (n %d, low %p, high %p)", n,
                          (const void *)low, (const void *)high);
  pad_params p;
  memset(&p, 0, sizeof p);
  p.n = n;
  for (int i = 0; i < n; i++) {
    p.low[i] = low[i];
    p.high[i] = high[i];
  }
  p.value = value;
  return am_op_make(AM_OP_PAD, &p, &x, 1);
}

/* ======================================================================
 *  repeat
 * ====================================================================== */

static am_status repeat_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  const repeat_params *p = params;
  const am_meta *x = in[0];
  int ax = am_norm_axis(p->axis, x->ndim);
  if (ax < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                   p->axis, x->ndim);
  if (p->repeats < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "negative repeats %lld",
                   (long long)p->repeats);
  if (mul_overflows(x->shape[ax], p->repeats))
    return AM_FAIL(AM_ERR_SHAPE, "axis %d too long", p->axis);
  out[0] = *x;
  out[0].shape[ax] *= p->repeats;
  return am_sh_check_size(&out[0]);
}

/* repeat's copy walk: out viewed as x's shape with an axis of size
 * `repeats` after ax, read from x with stride 0 along that axis; shapes
 * sh, source strides ss, destination strides ds (nd + 1 dims). */
void am_repeat_walk(const am_arr *x, int ax, int64_t repeats, int64_t *sh,
                    int64_t *ss, int64_t *ds) {
  int nd = x->m.ndim;
  for (int i = 0, k = 0; i < nd; i++) {
    sh[k] = x->m.shape[i];
    ss[k++] = x->strides[i];
    if (i == ax) {
      sh[k] = repeats;
      ss[k++] = 0;
    }
  }
  am_contig_strides(sh, nd + 1, ds);
}

static am_status repeat_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  const repeat_params *p = params;
  const am_arr *x = in[0];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s) return s;
  int nd = x->m.ndim, ax = am_norm_axis(p->axis, nd);
  int64_t sh[AM_MAX_DIMS + 1], ss[AM_MAX_DIMS + 1], ds[AM_MAX_DIMS + 1];
  am_repeat_walk(x, ax, p->repeats, sh, ss, ds);
  am_sh_copy(sh, nd + 1, am_arr_ptr(x), ss, o->buf->data, ds,
             am_dtype_size(x->m.dtype));
  return AM_OK;
}

const am_prim am_prim_repeat = {
    .name = "repeat",
    .n_in = 1,
    .n_out = 1,
    .params_size = sizeof(repeat_params),
    .output_shapes = repeat_shapes,
    .eval_cpu = repeat_eval,
};

am_array am_repeat(am_array x, int64_t repeats, int axis) {
  repeat_params p;
  memset(&p, 0, sizeof p);
  p.repeats = repeats;
  p.axis = axis;
  return am_op_make(AM_OP_REPEAT, &p, &x, 1);
}

/* ======================================================================
 *  tile
 * ====================================================================== */

/* NumPy alignment: the shorter of x's shape and reps gets leading 1s.
 * Fills the aligned (d dims) input shape, input strides and reps. */
static int tile_align(const am_meta *x, const int64_t *xst,
                      const tile_params *p, int64_t *shape, int64_t *st,
                      int64_t *reps) {
  int d = p->n > x->ndim ? p->n : x->ndim;
  int ox = d - x->ndim, orp = d - p->n;
  for (int i = 0; i < d; i++) {
    shape[i] = i < ox ? 1 : x->shape[i - ox];
    if (st) st[i] = i < ox ? 0 : xst[i - ox];
    reps[i] = i < orp ? 1 : p->reps[i - orp];
  }
  return d;
}

static am_status tile_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  const tile_params *p = params;
  int64_t shape[AM_MAX_DIMS], reps[AM_MAX_DIMS];
  int d = tile_align(in[0], NULL, p, shape, NULL, reps);
  out[0].dtype = in[0]->dtype;
  out[0].ndim = d;
  for (int i = 0; i < d; i++) {
    if (reps[i] < 0)
      return AM_FAIL(AM_ERR_INVALID_ARG, "negative reps %lld",
                     (long long)reps[i]);
    if (mul_overflows(shape[i], reps[i]))
      return AM_FAIL(AM_ERR_SHAPE, "output axis %d too long", i);
    out[0].shape[i] = shape[i] * reps[i];
  }
  return am_sh_check_size(&out[0]);
}

static am_status tile_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  const am_arr *x = in[0];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s) return s;
  int64_t shape[AM_MAX_DIMS], st[AM_MAX_DIMS], reps[AM_MAX_DIMS];
  int d = tile_align(&x->m, x->strides, params, shape, st, reps);
  /* out viewed as [r0, s0, r1, s1, ..] read from [0, t0, 0, t1, ..]. */
  int64_t sh[2 * AM_MAX_DIMS], ss[2 * AM_MAX_DIMS], ds[2 * AM_MAX_DIMS];
  for (int i = 0; i < d; i++) {
    sh[2 * i] = reps[i];
    ss[2 * i] = 0;
    sh[2 * i + 1] = shape[i];
    ss[2 * i + 1] = st[i];
  }
  am_contig_strides(sh, 2 * d, ds);
  am_sh_copy(sh, 2 * d, am_arr_ptr(x), ss, o->buf->data, ds,
             am_dtype_size(x->m.dtype));
  return AM_OK;
}

const am_prim am_prim_tile = {
    .name = "tile",
    .n_in = 1,
    .n_out = 1,
    .params_size = sizeof(tile_params),
    .output_shapes = tile_shapes,
    .eval_cpu = tile_eval,
};

am_array am_tile(am_array x, const int64_t *reps, int n) {
  if (n < 0 || n > AM_MAX_DIMS || (n && !reps))
    return am_error_array(AM_ERR_INVALID_ARG, "tile: bad reps (n %d)", n);
  tile_params p;
  memset(&p, 0, sizeof p);
  p.n = n;
  if (n) memcpy(p.reps, reps, (size_t)n * sizeof *reps);
  return am_op_make(AM_OP_TILE, &p, &x, 1);
}
