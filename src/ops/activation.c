/*
 * activation.c — softmax, log_softmax and l2_normalize along an axis, and
 * the elementwise activations silu, gelu (erf or tanh form) and softplus.
 *
 * float16/bfloat16/float32 compute in float32 (the "precise" softmax of
 * MLX), float64 in double; integer and bool inputs become float32 in the
 * public functions. Axes are stored as given and resolved at every eval,
 * so a shapeless replay with another rank-compatible shape stays right.
 * The transcendental parts run on the elementwise family's float32
 * kernels (vectorized exp, sigmoid, tanh), a block at a time.
 */
#include "activation_params.h"
#include "nn_common.h"
#include "softmax_params.h"

#include <math.h>
#include <stdlib.h>

/* ======================================================================
 *  Along an axis: softmax, log_softmax, l2_normalize
 * ====================================================================== */

typedef struct {
  const am_nn_vec *vec;
  am_nn_map exp;
  float eps;
} axis_ctx;

static am_status axis_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  const axis_params *p = params;
  if (!am_dtype_is_float(in[0]->dtype))
    return AM_FAIL(AM_ERR_DTYPE, "needs a float dtype (got %s)",
                   am_dtype_name(in[0]->dtype));
  if (am_norm_axis(p->axis, in[0]->ndim) < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                   p->axis, in[0]->ndim);
  if (!(p->eps >= 0))
    return AM_FAIL(AM_ERR_INVALID_ARG, "eps must be >= 0 (got %g)",
                   (double)p->eps);
  *out = *in[0];
  return AM_OK;
}

/* exp(x - max) / sum: a row of -inf (or with +inf) gives NaN, as MLX. */
static void softmax_lane32(const void *c, int64_t n, const float *const *in,
                           float *o) {
  const axis_ctx *x = c;
  float m = x->vec->max(in[0], n);
  x->vec->affine(o, in[0], -m, 1.0f, NULL, NULL, NULL, n);
  am_nn_map1(x->exp, o, o, n);
  float s = x->vec->sum(o, n);
  x->vec->affine(o, o, 0.0f, 1.0f / s, NULL, NULL, NULL, n);
}

static void softmax_lane64(const void *c, int64_t n, const double *const *in,
                           double *o) {
  const double *v = in[0];
  double m = -INFINITY, s = 0;
  for (int64_t i = 0; i < n; i++)
    if (v[i] > m || v[i] != v[i]) m = v[i];
  for (int64_t i = 0; i < n; i++)
    s += (o[i] = exp(v[i] - m));
  for (int64_t i = 0; i < n; i++)
    o[i] /= s;
}

/* x - (max + log(sum(exp(x - max)))), the logsumexp form of MLX. o holds
 * the exponentials on the way, so it must not alias x (no donation). */
static void log_softmax_lane32(const void *c, int64_t n, const float *const *in,
                               float *o) {
  const axis_ctx *x = c;
  float m = x->vec->max(in[0], n);
  x->vec->affine(o, in[0], -m, 1.0f, NULL, NULL, NULL, n);
  am_nn_map1(x->exp, o, o, n);
  float lse = m + logf(x->vec->sum(o, n));
  if (isinf(m)) lse = m; /* all -inf: -inf - -inf gives NaN below, as MLX */
  x->vec->affine(o, in[0], -lse, 1.0f, NULL, NULL, NULL, n);
}

static void log_softmax_lane64(const void *c, int64_t n,
                               const double *const *in, double *o) {
  const double *v = in[0];
  double m = -INFINITY, s = 0;
  for (int64_t i = 0; i < n; i++)
    if (v[i] > m || v[i] != v[i]) m = v[i];
  for (int64_t i = 0; i < n; i++)
    s += exp(v[i] - m);
  double lse = isinf(m) ? m : m + log(s);
  for (int64_t i = 0; i < n; i++)
    o[i] = v[i] - lse;
}

/* x * rsqrt(sum(x^2) + eps): the l2norm of Qwen3-Next's DeltaNet (FLA). */
static void l2_lane32(const void *c, int64_t n, const float *const *in,
                      float *o) {
  const axis_ctx *x = c;
  float inv = 1.0f / sqrtf(x->vec->sumsq(in[0], n) + x->eps);
  x->vec->affine(o, in[0], 0.0f, inv, NULL, NULL, NULL, n);
}

static void l2_lane64(const void *c, int64_t n, const double *const *in,
                      double *o) {
  const axis_ctx *x = c;
  double ss = 0;
  for (int64_t i = 0; i < n; i++)
    ss += in[0][i] * in[0][i];
  double inv = 1.0 / sqrt(ss + (double)x->eps);
  for (int64_t i = 0; i < n; i++)
    o[i] = in[0][i] * inv;
}

static am_status axis_run(am_arr *const *in, am_arr *out, const axis_params *p,
                          bool donate, am_nn_lane_f32 f32, am_nn_lane_f64 f64) {
  am_status s = donate ? am_out_alloc_donate(out, in, 1) : am_out_alloc(out);
  if (s || !out->size) return s;
  axis_ctx c = {am_nn_vec_get(), am_nn_map_f32(AM_OP_EXP), p->eps};
  am_nn_lanes l = {.out = out,
                   .in = {in[0]},
                   .nin = 1,
                   .axis = am_norm_axis(p->axis, out->m.ndim),
                   .fn32 = f32,
                   .fn64 = f64,
                   .ctx = &c,
                   .cost = 4};
  am_nn_lanes_run(&l);
  return AM_OK;
}

static am_array axis_make(int op, am_array x, int axis, float eps) {
  axis_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  p.eps = eps;
  return am_nn_make(op, &p, &x, 1, 1);
}

#define AXIS_PRIM(NM, DONATE, L32, L64)                                        \
  static am_status NM##_eval(am_arr *const *in, int n_in, am_arr *const *out,  \
                             int n_out, const void *params) {                  \
    return axis_run(in, out[0], params, DONATE, L32, L64);                     \
  }                                                                            \
  const am_prim am_prim_##NM = {                                               \
      .name = #NM,                                                             \
      .n_in = 1,                                                               \
      .n_out = 1,                                                              \
      .params_size = sizeof(axis_params),                                      \
      .output_shapes = axis_shapes,                                            \
      .eval_cpu = NM##_eval,                                                   \
  };

AXIS_PRIM(softmax, true, softmax_lane32, softmax_lane64)
AXIS_PRIM(log_softmax, false, log_softmax_lane32, log_softmax_lane64)
AXIS_PRIM(l2_normalize, true, l2_lane32, l2_lane64)

am_array am_softmax(am_array x, int axis) {
  return axis_make(AM_OP_SOFTMAX, x, axis, 0);
}
am_array am_log_softmax(am_array x, int axis) {
  return axis_make(AM_OP_LOG_SOFTMAX, x, axis, 0);
}
am_array am_l2_normalize(am_array x, int axis, float eps) {
  return axis_make(AM_OP_L2_NORMALIZE, x, axis, eps);
}

/* ======================================================================
 *  Elementwise: silu, gelu, softplus
 * ====================================================================== */

enum { ACT_SILU, ACT_GELU, ACT_GELU_TANH, ACT_SOFTPLUS };

#define ACT_BLOCK 256
#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_C 0.044715

typedef struct {
  int kind;
  const am_nn_vec *vec;
  am_nn_map sigmoid, erf, tanh, exp, log1p;
} act_ctx;

/* One block of n <= ACT_BLOCK float32 values; t is scratch. o may be x. */
static void act_block32(const act_ctx *c, const float *x, float *o, int64_t n,
                        float *t) {
  const am_nn_vec *v = c->vec;
  switch (c->kind) {
  case ACT_SILU: /* x * sigmoid(x) */
    am_nn_map1(c->sigmoid, x, t, n);
    v->affine(o, t, 0.0f, 1.0f, x, NULL, NULL, n);
    break;
  case ACT_GELU: /* x/2 * (1 + erf(x / sqrt(2))) */
    v->affine(t, x, 0.0f, (float)M_SQRT1_2, NULL, NULL, NULL, n);
    am_nn_map1(c->erf, t, t, n);
    v->affine(o, t, 1.0f, 0.5f, x, NULL, NULL, n);
    break;
  case ACT_GELU_TANH: /* x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    v->affine(t, x, 0.0f, 1.0f, x, NULL, NULL, n);
    v->affine(t, t, (float)(1 / GELU_C), (float)(GELU_C * SQRT_2_OVER_PI), x,
              NULL, NULL, n);
    am_nn_map1(c->tanh, t, t, n);
    v->affine(o, t, 1.0f, 0.5f, x, NULL, NULL, n);
    break;
  default: /* softplus: max(x, 0) + log1p(exp(-|x|)), never overflows */
    for (int64_t i = 0; i < n; i++)
      t[i] = -fabsf(x[i]);
    am_nn_map1(c->exp, t, t, n);
    am_nn_map1(c->log1p, t, t, n);
    for (int64_t i = 0; i < n; i++)
      o[i] = t[i] + (x[i] > 0 ? x[i] : 0.0f);
  }
}

static double act_f64(int kind, double x) {
  switch (kind) {
  case ACT_SILU:
    return x / (1 + exp(-x));
  case ACT_GELU:
    return 0.5 * x * (1 + erf(x * M_SQRT1_2));
  case ACT_GELU_TANH:
    return 0.5 * x * (1 + tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
  default:
    return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
  }
}

typedef struct {
  act_ctx c;
  am_dtype in_dt, out_dt;
} act_row_ctx;

/* Operands: out, x (any strides). Blocks are converted unless float32
 * and contiguous. */
static void act_row(void *ctx, int64_t n, char **p, const int64_t *s) {
  const act_row_ctx *x = ctx;
  if (x->in_dt == AM_F64) {
    for (int64_t i = 0; i < n; i++)
      *(double *)(p[0] + i * s[0]) =
          act_f64(x->c.kind, *(const double *)(p[1] + i * s[1]));
    return;
  }
  float xb[ACT_BLOCK], ob[ACT_BLOCK], t[ACT_BLOCK];
  bool din = x->in_dt == AM_F32 && s[1] == 4;
  bool dout = x->out_dt == AM_F32 && s[0] == 4;
  for (int64_t off = 0; off < n; off += ACT_BLOCK) {
    int64_t m = n - off < ACT_BLOCK ? n - off : ACT_BLOCK;
    const float *xi = din ? (const float *)(p[1] + off * s[1]) : xb;
    float *oi = dout ? (float *)(p[0] + off * s[0]) : ob;
    if (!din) am_nn_load_f32(p[1] + off * s[1], s[1], x->in_dt, m, xb);
    act_block32(&x->c, xi, oi, m, t);
    if (!dout) am_nn_store_f32(ob, p[0] + off * s[0], s[0], x->out_dt, m);
  }
}

static am_status act_shapes(const am_meta *const *in, int n_in,
                            const void *params, am_meta *out, int n_out) {
  if (!am_dtype_is_float(in[0]->dtype))
    return AM_FAIL(AM_ERR_DTYPE, "needs a float dtype (got %s)",
                   am_dtype_name(in[0]->dtype));
  *out = *in[0];
  return AM_OK;
}

static am_status act_run(int kind, am_arr *const *in, am_arr *o) {
  am_status s = am_out_alloc_donate(o, in, 1);
  if (s || !o->size) return s;
  act_row_ctx x = {{kind, am_nn_vec_get(), am_nn_map_f32(AM_OP_SIGMOID),
                    am_nn_map_f32(AM_OP_ERF), am_nn_map_f32(AM_OP_TANH),
                    am_nn_map_f32(AM_OP_EXP), am_nn_map_f32(AM_OP_LOG1P)},
                   in[0]->m.dtype,
                   o->m.dtype};
  char *base[2] = {am_arr_ptr(o), am_arr_ptr(in[0])};
  const int64_t *str[2] = {o->strides, in[0]->strides};
  size_t es[2] = {am_dtype_size(o->m.dtype), am_dtype_size(in[0]->m.dtype)};
  am_iter it;
  am_iter_init(&it, o->m.shape, o->m.ndim, 2, base, str, es);
  am_iter_run_parallel(&it, act_row, &x, 1 << 13);
  return AM_OK;
}

static am_status silu_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  return act_run(ACT_SILU, in, out[0]);
}
static am_status gelu_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  const act_params *p = params;
  return act_run(p->approximate ? ACT_GELU_TANH : ACT_GELU, in, out[0]);
}
static am_status softplus_eval(am_arr *const *in, int n_in, am_arr *const *out,
                               int n_out, const void *params) {
  return act_run(ACT_SOFTPLUS, in, out[0]);
}

/* Elementwise in meaning; they have no fused-program kernel, so the
 * fusion pass leaves them alone. */
#define ACT_PRIM(NM, PSIZE)                                                    \
  const am_prim am_prim_##NM = {                                               \
      .name = #NM,                                                             \
      .n_in = 1,                                                               \
      .n_out = 1,                                                              \
      .flags = AM_OPF_ELEMENTWISE,                                             \
      .params_size = PSIZE,                                                    \
      .output_shapes = act_shapes,                                             \
      .eval_cpu = NM##_eval,                                                   \
  };

ACT_PRIM(silu, 0)
ACT_PRIM(gelu, sizeof(act_params))
ACT_PRIM(softplus, 0)

am_array am_silu(am_array x) {
  return am_nn_make(AM_OP_SILU, NULL, &x, 1, 1);
}

am_array am_gelu(am_array x, bool approximate) {
  act_params p;
  memset(&p, 0, sizeof p);
  p.approximate = approximate;
  return am_nn_make(AM_OP_GELU, &p, &x, 1, 1);
}

am_array am_softplus(am_array x) {
  return am_nn_make(AM_OP_SOFTPLUS, NULL, &x, 1, 1);
}
