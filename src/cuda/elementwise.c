/*
 * elementwise.c — CUDA glue of the elementwise family (unary, binary,
 * where, astype) and of the elementwise activations (silu, gelu,
 * softplus); see ops.h. Semantics are the CPU's (src/ops/elementwise.c,
 * activation.c); the kernels are in elementwise.cu.
 *
 * Every op writes a fresh row-major output, donated from an input where
 * the CPU donates (each output element is written by the thread that read
 * the inputs at that position, so overwriting a same-sized contiguous
 * input is safe). Contiguous f32/bf16/f16 operands (or single broadcast
 * values) take the vectorized path; anything else the strided one.
 */
#include "elementwise.h"
#include "../ops/activation_params.h"
#include "../ops/elementwise_params.h"
#include "ops.h"

static const char *dt_name(am_dtype t) {
  return am_dtype_name(t);
}

static bool is_bool_out(int cuop) {
  return cuop == AM_CU_LOGICAL_NOT || cuop >= AM_CU_EQUAL;
}

static void to_shape(const am_cuda_view *v, int n, am_cu_ew_shape *s) {
  memset(s, 0, sizeof *s);
  s->ndim = v[0].ndim;
  for (int d = 0; d < v[0].ndim; d++) {
    s->shape[d] = v[0].shape[d];
    for (int k = 0; k < n; k++)
      s->strides[k][d] = v[k].strides[d];
  }
}

static am_status ew_run(int cuop, const char *name, am_arr *const *in, int nin,
                        am_arr *out) {
  am_dtype t = in[0]->m.dtype;
  for (int i = 1; i < nin; i++)
    if (in[i]->m.dtype != t)
      return am_set_error(AM_ERR_DTYPE,
                          "%s: inputs must share one dtype "
                          "(got %s and %s)",
                          name, dt_name(t), dt_name(in[i]->m.dtype));
  am_status s = am_out_alloc_donate(out, in, nin);
  if (s || !out->size) return s;
  void *op = am_arr_ptr(out);
  if (!is_bool_out(cuop) && (t == AM_F32 || t == AM_BF16 || t == AM_F16) &&
      out->m.dtype == t) {
    int step[2] = {0, 0};
    bool fast = true;
    for (int i = 0; i < nin && fast; i++) {
      if (in[i]->size == out->size && am_arr_is_contiguous(in[i]))
        step[i] = 1;
      else if (in[i]->size != 1)
        fast = false;
    }
    if (fast)
      return am_cu_ew_contig(cuop, am_arr_ptr(in[0]), step[0],
                             nin > 1 ? am_arr_ptr(in[1]) : NULL, step[1], op, t,
                             out->size);
  }
  am_cuda_view v[2];
  s = am_cuda_views_broadcast(in, nin, out->m.shape, out->m.ndim, v);
  if (s) return s;
  am_cu_ew_shape sh;
  to_shape(v, nin, &sh);
  return am_cu_ew_strided(cuop, &sh, v[0].data, nin > 1 ? v[1].data : NULL, t,
                          op, out->m.dtype, out->size);
}

/* One glue function per primitive, from the op lists. */
#define EW_GLUE(NM, CU, NIN)                                                   \
  static am_status NM##_cuda(am_arr *const *in, int n_in, am_arr *const *out,  \
                             int n_out, const void *params) {                  \
    (void)n_in;                                                                \
    (void)n_out;                                                               \
    (void)params;                                                              \
    return ew_run(CU, #NM, in, NIN, out[0]);                                   \
  }

#define EW_UNARY_LIST(X)                                                       \
  X(neg, NEG)                                                                  \
  X(abs, ABS)                                                                  \
  X(sign, SIGN)                                                                \
  X(square, SQUARE)                                                            \
  X(floor, FLOOR)                                                              \
  X(ceil, CEIL)                                                                \
  X(round, ROUND)                                                              \
  X(exp, EXP)                                                                  \
  X(expm1, EXPM1)                                                              \
  X(log, LOG)                                                                  \
  X(log1p, LOG1P)                                                              \
  X(sqrt, SQRT)                                                                \
  X(rsqrt, RSQRT)                                                              \
  X(sin, SIN)                                                                  \
  X(cos, COS)                                                                  \
  X(tanh, TANH)                                                                \
  X(sigmoid, SIGMOID)                                                          \
  X(erf, ERF)                                                                  \
  X(logical_not, LOGICAL_NOT)                                                  \
  X(silu, SILU)                                                                \
  X(softplus, SOFTPLUS)

#define EW_BINARY_LIST(X)                                                      \
  X(add, ADD)                                                                  \
  X(sub, SUB)                                                                  \
  X(mul, MUL)                                                                  \
  X(div, DIV)                                                                  \
  X(pow, POW)                                                                  \
  X(maximum, MAXIMUM)                                                          \
  X(minimum, MINIMUM)                                                          \
  X(remainder, REMAINDER)                                                      \
  X(equal, EQUAL)                                                              \
  X(not_equal, NOT_EQUAL)                                                      \
  X(less, LESS)                                                                \
  X(less_equal, LESS_EQUAL)                                                    \
  X(greater, GREATER)                                                          \
  X(greater_equal, GREATER_EQUAL)                                              \
  X(logical_and, LOGICAL_AND)                                                  \
  X(logical_or, LOGICAL_OR)

#define GLUE_UNARY(NM, E) EW_GLUE(NM, AM_CU_##E, 1)
#define GLUE_BINARY(NM, E) EW_GLUE(NM, AM_CU_##E, 2)
EW_UNARY_LIST(GLUE_UNARY)
EW_BINARY_LIST(GLUE_BINARY)

/* gelu: the erf form, or the tanh form when params ask for it. */
static am_status gelu_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  (void)n_in;
  (void)n_out;
  const act_params *p = params;
  return ew_run(p && p->approximate ? AM_CU_GELU_TANH : AM_CU_GELU, "gelu", in,
                1, out[0]);
}

/* --------------------------------------------------------------- where */

static am_status where_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  (void)n_in;
  (void)n_out;
  (void)params;
  am_arr *o = out[0];
  if (in[1]->m.dtype != in[2]->m.dtype || o->m.dtype != in[1]->m.dtype)
    return am_set_error(AM_ERR_DTYPE,
                        "where: x and y must share one dtype (got %s and %s)",
                        dt_name(in[1]->m.dtype), dt_name(in[2]->m.dtype));
  am_status s = am_out_alloc_donate(o, in, 3);
  if (s || !o->size) return s;
  am_cuda_view v[3];
  s = am_cuda_views_broadcast(in, 3, o->m.shape, o->m.ndim, v);
  if (s) return s;
  am_cu_ew_shape sh;
  to_shape(v, 3, &sh);
  return am_cu_where(&sh, v[0].data, in[0]->m.dtype, v[1].data, v[2].data,
                     am_dtype_size(o->m.dtype), am_arr_ptr(o), o->size);
}

/* -------------------------------------------------------------- astype */

static bool is_float16_32(am_dtype t) {
  return t == AM_F32 || t == AM_BF16 || t == AM_F16;
}

static am_status astype_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_in;
  (void)n_out;
  (void)params;
  am_arr *x = in[0], *o = out[0];
  am_status s = am_out_alloc_donate(o, in, 1);
  if (s || !o->size) return s;
  /* A same-dtype cast that took over its input's buffer is done. */
  if (o->buf == x->buf && o->m.dtype == x->m.dtype) return AM_OK;
  am_dtype st = x->m.dtype, dt = o->m.dtype;
  if (st != dt && is_float16_32(st) && is_float16_32(dt) &&
      am_arr_is_contiguous(x))
    return am_cu_convert_float(am_arr_ptr(x), st, am_arr_ptr(o), dt, o->size);
  /* Everything else: the shared converting copy, whose conversions are
   * the CPU's am_convert (integers wrap through int64, floats to integers
   * truncate and saturate, f16/bf16 round from float32). */
  am_cuda_view v;
  s = am_cuda_view_of(x, &v);
  if (s) return s;
  return am_cuda_copy_view(&v, am_arr_ptr(o), dt, o->size);
}

void am_cuda_register_elementwise(am_backend *b) {
#define REG(NM, E) b->eval[AM_OP_##E] = NM##_cuda;
  EW_UNARY_LIST(REG)
  EW_BINARY_LIST(REG)
#undef REG
  b->eval[AM_OP_GELU] = gelu_cuda;
  b->eval[AM_OP_WHERE] = where_cuda;
  b->eval[AM_OP_ASTYPE] = astype_cuda;
}
