/*
 * creation.c — arrays made from nothing but params (full, arange) or from
 * another array's shape (full_like), so a replay takes the shape anew.
 */
#include "../core/internal.h"
#include "creation_params.h"

#include <math.h>

/* ---------------------------------------------------------------- full */

static am_status full_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  out[0] = ((const full_params *)params)->m;
  return AM_OK;
}

/* Fills out with one value; scalar splat by element size. */
static void fill_value(am_arr *out, double v) {
  char e[8];
  size_t es = am_dtype_size(out->m.dtype);
  am_store_f64(e, out->m.dtype, v);
  char *p = out->buf->data;
  if (es == 1) {
    memset(p, e[0], (size_t)out->size);
    return;
  }
  for (int64_t i = 0; i < out->size; i++)
    memcpy(p + i * es, e, es);
}

static am_status full_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  am_status s = am_out_alloc(out[0]);
  if (!s) fill_value(out[0], ((const full_params *)params)->value);
  return s;
}

static int full_literals(const void *params, int64_t *out, int max) {
  const full_params *p = params;
  return am_literals_add(p->m.shape, p->m.ndim, out, 0, max);
}

const am_prim am_prim_full = {
    .name = "full",
    .n_in = 0,
    .n_out = 1,
    .flags = AM_OPF_CREATION | AM_OPF_SHAPE_DEPENDENT,
    .params_size = sizeof(full_params),
    .output_shapes = full_shapes,
    .eval_cpu = full_eval,
    .literal_sizes = full_literals,
};

am_array am_full(const int64_t *shape, int ndim, double value, am_dtype dtype) {
  full_params p;
  memset(&p, 0, sizeof p);
  if ((unsigned)dtype >= AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "full: invalid dtype %d", (int)dtype);
  if (ndim < 0 || ndim > AM_MAX_DIMS || (ndim && !shape))
    return am_error_array(AM_ERR_SHAPE, "full: bad shape (ndim %d)", ndim);
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0)
      return am_error_array(AM_ERR_SHAPE, "full: negative size %lld on axis %d",
                            (long long)shape[i], i);
  p.m.dtype = dtype;
  p.m.ndim = ndim;
  if (ndim) memcpy(p.m.shape, shape, (size_t)ndim * sizeof *shape);
  p.value = value;
  return am_op_make(AM_OP_FULL, &p, NULL, 0);
}

am_array am_zeros(const int64_t *shape, int ndim, am_dtype dtype) {
  return am_full(shape, ndim, 0, dtype);
}
am_array am_ones(const int64_t *shape, int ndim, am_dtype dtype) {
  return am_full(shape, ndim, 1, dtype);
}

/* -------------------------------------------------------------- arange */

static int64_t arange_len(const arange_params *p) {
  double n = ceil((p->stop - p->start) / p->step);
  return n > 0 ? (int64_t)n : 0;
}

static am_status arange_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  const arange_params *p = params;
  if (p->step == 0 || !isfinite(p->step) || !isfinite(p->start) ||
      !isfinite(p->stop))
    return AM_FAIL(
        AM_ERR_INVALID_ARG,
        "needs finite start, stop and a non-zero step (got %g, %g, %g)",
        p->start, p->stop, p->step);
  double n = ceil((p->stop - p->start) / p->step);
  if (n > 1e15)
    return AM_FAIL(AM_ERR_INVALID_ARG, "%g elements is too many", n);
  out[0].dtype = p->dtype;
  out[0].ndim = 1;
  out[0].shape[0] = arange_len(p);
  return AM_OK;
}

static am_status arange_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  const arange_params *p = params;
  am_status s = am_out_alloc(out[0]);
  if (s) return s;
  size_t es = am_dtype_size(p->dtype);
  char *d = out[0]->buf->data;
  for (int64_t i = 0; i < out[0]->size; i++)
    am_store_f64(d + i * es, p->dtype, p->start + (double)i * p->step);
  return AM_OK;
}

const am_prim am_prim_arange = {
    .name = "arange",
    .n_in = 0,
    .n_out = 1,
    .flags = AM_OPF_CREATION,
    .params_size = sizeof(arange_params),
    .output_shapes = arange_shapes,
    .eval_cpu = arange_eval,
};

am_array am_arange(double start, double stop, double step, am_dtype dtype) {
  arange_params p;
  memset(&p, 0, sizeof p);
  if ((unsigned)dtype >= AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "arange: invalid dtype %d", (int)dtype);
  p.start = start;
  p.stop = stop;
  p.step = step;
  p.dtype = dtype;
  return am_op_make(AM_OP_ARANGE, &p, NULL, 0);
}

/* ----------------------------------------------------------- full_like */

static am_status full_like_shapes(const am_meta *const *in, int n_in,
                                  const void *params, am_meta *out, int n_out) {
  const full_like_params *p = params;
  out[0] = *in[0];
  if (p->dtype != AM_DTYPE_COUNT) out[0].dtype = p->dtype;
  return AM_OK;
}

static am_status full_like_eval(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  am_status s = am_out_alloc(out[0]);
  if (!s) fill_value(out[0], ((const full_like_params *)params)->value);
  return s;
}

const am_prim am_prim_full_like = {
    .name = "full_like",
    .n_in = 1,
    .n_out = 1,
    .flags = 0,
    .params_size = sizeof(full_like_params),
    .output_shapes = full_like_shapes,
    .eval_cpu = full_like_eval,
};

am_array am_full_like(am_array x, double value, am_dtype dtype) {
  full_like_params p;
  memset(&p, 0, sizeof p);
  if ((unsigned)dtype > AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "full_like: invalid dtype %d",
                          (int)dtype);
  p.value = value;
  p.dtype = dtype;
  return am_op_make(AM_OP_FULL_LIKE, &p, &x, 1);
}

am_array am_zeros_like(am_array x, am_dtype dtype) {
  return am_full_like(x, 0, dtype);
}
am_array am_ones_like(am_array x, am_dtype dtype) {
  return am_full_like(x, 1, dtype);
}
