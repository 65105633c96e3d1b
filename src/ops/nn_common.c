/*
 * nn_common.c — row conversions and the lane walk of the neural-network
 * family (see nn_common.h).
 */
#include "nn_common.h"
#include "elementwise_simd.h"

#include <stdlib.h>

/* ======================================================================
 *  Rows with conversion
 * ====================================================================== */

#define STRIDED_LOAD(DT, ST, CONV)                                             \
  for (int64_t i = 0; i < n; i++) {                                            \
    ST v_ = *(const ST *)(p + i * st);                                         \
    dst[i] = (DT)(CONV);                                                       \
  }

#define STRIDED_STORE(ST, DT, CONV)                                            \
  for (int64_t i = 0; i < n; i++) {                                            \
    ST v_ = src[i];                                                            \
    *(DT *)(p + i * st) = (CONV);                                              \
  }

void am_nn_load_f32(const char *p, int64_t st, am_dtype t, int64_t n,
                    float *dst) {
  if (st == (int64_t)am_dtype_size(t)) {
    am_convert(p, t, dst, AM_F32, n);
    return;
  }
  switch (t) {
  case AM_F16:
    STRIDED_LOAD(float, uint16_t, am_f16_to_f32(v_))
    break;
  case AM_BF16:
    STRIDED_LOAD(float, uint16_t, am_bf16_to_f32(v_))
    break;
  case AM_F32:
    STRIDED_LOAD(float, float, v_)
    break;
  default:
    for (int64_t i = 0; i < n; i++)
      dst[i] = (float)am_load_f64(p + i * st, t);
  }
}

void am_nn_load_f64(const char *p, int64_t st, am_dtype t, int64_t n,
                    double *dst) {
  if (t == AM_F64) {
    STRIDED_LOAD(double, double, v_)
    return;
  }
  for (int64_t i = 0; i < n; i++)
    dst[i] = am_load_f64(p + i * st, t);
}

void am_nn_store_f32(const float *src, char *p, int64_t st, am_dtype t,
                     int64_t n) {
  if (st == (int64_t)am_dtype_size(t)) {
    am_convert(src, AM_F32, p, t, n);
    return;
  }
  switch (t) {
  case AM_F16:
    STRIDED_STORE(float, uint16_t, am_f32_to_f16(v_))
    break;
  case AM_BF16:
    STRIDED_STORE(float, uint16_t, am_f32_to_bf16(v_))
    break;
  case AM_F32:
    STRIDED_STORE(float, float, v_)
    break;
  default:
    for (int64_t i = 0; i < n; i++)
      am_store_f64(p + i * st, t, src[i]);
  }
}

void am_nn_store_f64(const double *src, char *p, int64_t st, am_dtype t,
                     int64_t n) {
  if (t == AM_F64) {
    STRIDED_STORE(double, double, v_)
    return;
  }
  for (int64_t i = 0; i < n; i++)
    am_store_f64(p + i * st, t, src[i]);
}

/* ======================================================================
 *  Lane walk
 * ====================================================================== */

typedef struct {
  const am_nn_lanes *l;
  int64_t len;
  int64_t step[4]; /* lane element stride in bytes: out, in... */
  am_dtype dt[4];
} lane_ctx;

/* One iter row = n lanes, lane k starting at p[a] + k * s[a]. Rows that
 * are float32 and unit-stride are used in place; others go through a
 * scratch row per operand. */
static void lane_row(void *c, int64_t n, char **p, const int64_t *s) {
  const lane_ctx *x = c;
  const am_nn_lanes *l = x->l;
  int na = l->nin + 1;
  bool f64 = x->dt[0] == AM_F64;
  size_t es = f64 ? sizeof(double) : sizeof(float);
  bool direct[4];
  int nscratch = 0;
  for (int a = 0; a < na; a++) {
    direct[a] = !f64 && x->dt[a] == AM_F32 && x->step[a] == 4;
    nscratch += !direct[a];
  }
  char *scratch = NULL;
  if (nscratch) {
    scratch = malloc((size_t)nscratch * (size_t)x->len * es + 64);
    if (!scratch) return; /* OOM: leaves the output unwritten */
  }
  void *row[4];
  char *sp = scratch;
  for (int a = 0; a < na; a++)
    if (!direct[a]) {
      row[a] = sp;
      sp += (size_t)x->len * es;
    }
  for (int64_t k = 0; k < n; k++) {
    for (int a = 0; a < na; a++) {
      char *base = p[a] + k * s[a];
      if (direct[a])
        row[a] = base;
      else if (a > 0 && f64)
        am_nn_load_f64(base, x->step[a], x->dt[a], x->len, row[a]);
      else if (a > 0)
        am_nn_load_f32(base, x->step[a], x->dt[a], x->len, row[a]);
    }
    if (f64)
      l->fn64(l->ctx, x->len, (const double *const *)(row + 1), row[0]);
    else
      l->fn32(l->ctx, x->len, (const float *const *)(row + 1), row[0]);
    if (!direct[0]) {
      if (f64)
        am_nn_store_f64(row[0], p[0] + k * s[0], x->step[0], x->dt[0], x->len);
      else
        am_nn_store_f32(row[0], p[0] + k * s[0], x->step[0], x->dt[0], x->len);
    }
  }
  free(scratch);
}

void am_nn_lanes_run(const am_nn_lanes *l) {
  am_arr *o = l->out;
  if (!o->size) return;
  int nd = o->m.ndim, na = l->nin + 1;
  lane_ctx c = {.l = l, .len = nd ? o->m.shape[l->axis] : 1};
  int64_t outer[AM_MAX_DIMS];
  memcpy(outer, o->m.shape, (size_t)nd * sizeof *outer);
  if (nd) outer[l->axis] = 1; /* the walk visits lane starts only */
  char *base[4];
  const int64_t *str[4];
  size_t es[4];
  for (int a = 0; a < na; a++) {
    const am_arr *x = a ? l->in[a - 1] : o;
    c.dt[a] = x->m.dtype;
    es[a] = am_dtype_size(x->m.dtype);
    c.step[a] = nd ? x->strides[l->axis] * (int64_t)es[a] : 0;
    base[a] = am_arr_ptr(x);
    str[a] = x->strides;
  }
  am_iter it;
  am_iter_init(&it, outer, nd, na, base, str, es);
  int64_t work = c.len * (l->cost > 0 ? l->cost : 1);
  int64_t grain = (1 << 15) / (work ? work : 1);
  am_iter_run_parallel(&it, lane_row, &c, grain < 1 ? 1 : grain);
}

/* ======================================================================
 *  Elementwise float32 kernels of the elementwise family
 * ====================================================================== */

am_nn_map am_nn_map_f32(int op) {
  return (am_nn_map)am_ew_f32_kernel(op);
}

void am_nn_map1(am_nn_map k, const float *in, float *out, int64_t n) {
  const void *src[1] = {in};
  int64_t step[1] = {1};
  k(n, src, step, out);
}

/* ======================================================================
 *  Recording
 * ====================================================================== */

am_array am_nn_make(int op, const void *params, am_arr **in, int n,
                    int nfloat) {
  const char *name = am_prims[op]->name;
  for (int i = 0; i < n; i++)
    if (!in[i])
      return am_error_array(AM_ERR_INVALID_ARG, "%s: input %d is NULL", name,
                            i);
  if (am_first_error(in, n)) /* am_op_make propagates it */
    return am_op_make(op, params, in, n);
  am_dtype t = AM_DTYPE_COUNT;
  for (int i = 0; i < nfloat; i++)
    t = t == AM_DTYPE_COUNT ? in[i]->m.dtype
                            : am_result_type(t, in[i]->m.dtype);
  if (nfloat && !am_dtype_is_float(t)) t = AM_F32;
  bool cast = false;
  for (int i = 0; i < nfloat; i++)
    cast |= in[i]->m.dtype != t;
  if (!cast) return am_op_make(op, params, in, n);
  am_scope_push();
  am_arr *cv[8];
  for (int i = 0; i < n && i < 8; i++)
    cv[i] = (i < nfloat && in[i]->m.dtype != t) ? am_astype(in[i], t) : in[i];
  am_array r = am_keep(am_op_make(op, params, cv, n));
  am_scope_pop();
  return am_scope_own(r);
}

bool am_nn_vector(const am_arr *w, bool f64, const void **out, void **tmp) {
  *out = NULL;
  *tmp = NULL;
  if (!w) return true;
  am_dtype ct = f64 ? AM_F64 : AM_F32;
  size_t es = am_dtype_size(ct);
  int64_t n = w->size;
  if (w->m.dtype == ct && (n <= 1 || w->strides[0] == 1)) {
    *out = am_arr_ptr(w);
    return true;
  }
  *tmp = malloc((size_t)(n ? n : 1) * es);
  if (!*tmp) return false;
  int64_t st = n ? w->strides[0] * (int64_t)am_dtype_size(w->m.dtype) : 0;
  if (f64)
    am_nn_load_f64(am_arr_ptr(w), st, w->m.dtype, n, *tmp);
  else
    am_nn_load_f32(am_arr_ptr(w), st, w->m.dtype, n, *tmp);
  *out = *tmp;
  return true;
}
