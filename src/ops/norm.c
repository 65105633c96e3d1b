/*
 * norm.c — normalizations over the last axis: rms_norm, the gated
 * rms_norm of Gated DeltaNet (rms_norm(x, w) * silu(z) in one pass) and
 * layer_norm.
 *
 * Every row is reduced and written in float32 (double for float64) and
 * rounded once on store. MLX rounds the normalized value to the output
 * dtype before multiplying by the weight; computing the whole expression
 * in float32 differs from it by at most that one rounding.
 * Weights are 1-d of the last axis' size; the public functions cast x,
 * the weights (and z) to one float dtype first.
 */
#include "nn_common.h"
#include "norm_params.h"

#include <math.h>
#include <stdlib.h>

/* Inputs: x, [z (gated)], [w], [b]. */
typedef struct {
  const am_nn_vec *vec;
  float eps;
  double eps64;
  const void *w, *b; /* float32 or float64 vectors, or NULL */
  am_nn_map sigmoid;
} norm_ctx;

/* ---------------------------------------------------------- shapes */

static am_status check_vec(const am_meta *x, const am_meta *w,
                           const char *what) {
  if (w->dtype != x->dtype)
    return AM_FAIL(AM_ERR_DTYPE, "%s must have x's dtype %s (got %s)", what,
                   am_dtype_name(x->dtype), am_dtype_name(w->dtype));
  if (w->ndim != 1 || w->shape[0] != x->shape[x->ndim - 1])
    return AM_FAIL(AM_ERR_SHAPE,
                   "%s must be 1-d of the last axis' size %lld (got %d dims)",
                   what, (long long)x->shape[x->ndim - 1], w->ndim);
  return AM_OK;
}

/* nz: leading inputs of x's shape (x, and z when gated). */
static am_status norm_shapes_n(const am_meta *const *in, int n_in,
                               const norm_params *p, int nz, am_meta *out) {
  const am_meta *x = in[0];
  if (n_in != nz + p->has_w + p->has_b)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs, expected %d", n_in,
                   nz + p->has_w + p->has_b);
  if (!am_dtype_is_float(x->dtype))
    return AM_FAIL(AM_ERR_DTYPE, "needs a float dtype (got %s)",
                   am_dtype_name(x->dtype));
  if (x->ndim < 1)
    return AM_FAIL(AM_ERR_SHAPE, "needs at least one dimension (got a 0-d x)");
  if (!(p->eps >= 0))
    return AM_FAIL(AM_ERR_INVALID_ARG, "eps must be >= 0 (got %g)",
                   (double)p->eps);
  if (nz == 2) {
    const am_meta *z = in[1];
    if (z->dtype != x->dtype)
      return AM_FAIL(AM_ERR_DTYPE, "z must have x's dtype %s (got %s)",
                     am_dtype_name(x->dtype), am_dtype_name(z->dtype));
    bool same = z->ndim == x->ndim;
    for (int i = 0; same && i < x->ndim; i++)
      same = z->shape[i] == x->shape[i];
    if (!same) return AM_FAIL(AM_ERR_SHAPE, "z must have x's shape");
  }
  am_status s = AM_OK;
  if (p->has_w) s = check_vec(x, in[nz], "weight");
  if (!s && p->has_b) s = check_vec(x, in[nz + p->has_w], "bias");
  *out = *x;
  return s;
}

/* ------------------------------------------------------------ lanes */

static void rms_lane32(const void *c, int64_t n, const float *const *in,
                       float *o) {
  const norm_ctx *x = c;
  float inv = 1.0f / sqrtf(x->vec->sumsq(in[0], n) / (float)n + x->eps);
  x->vec->affine(o, in[0], 0.0f, inv, x->w, NULL, NULL, n);
}

static void rms_lane64(const void *c, int64_t n, const double *const *in,
                       double *o) {
  const norm_ctx *x = c;
  const double *w = x->w;
  double ss = 0;
  for (int64_t i = 0; i < n; i++)
    ss += in[0][i] * in[0][i];
  double inv = 1.0 / sqrt(ss / (double)n + x->eps64);
  for (int64_t i = 0; i < n; i++)
    o[i] = in[0][i] * inv * (w ? w[i] : 1.0);
}

/* o = rms_norm(x, w) * z * sigmoid(z). o never aliases x or z (no
 * donation), so it holds z * sigmoid(z) on the way. */
static void gated_lane32(const void *c, int64_t n, const float *const *in,
                         float *o) {
  const norm_ctx *x = c;
  float inv = 1.0f / sqrtf(x->vec->sumsq(in[0], n) / (float)n + x->eps);
  am_nn_map1(x->sigmoid, in[1], o, n);
  x->vec->affine(o, o, 0.0f, 1.0f, in[1], NULL, NULL, n);
  x->vec->affine(o, in[0], 0.0f, inv, x->w, o, NULL, n);
}

static void gated_lane64(const void *c, int64_t n, const double *const *in,
                         double *o) {
  const norm_ctx *x = c;
  const double *w = x->w, *z = in[1];
  double ss = 0;
  for (int64_t i = 0; i < n; i++)
    ss += in[0][i] * in[0][i];
  double inv = 1.0 / sqrt(ss / (double)n + x->eps64);
  for (int64_t i = 0; i < n; i++)
    o[i] = in[0][i] * inv * (w ? w[i] : 1.0) * (z[i] / (1.0 + exp(-z[i])));
}

/* Two passes (mean, then squared deviations) for a stable variance. */
static void ln_lane32(const void *c, int64_t n, const float *const *in,
                      float *o) {
  const norm_ctx *x = c;
  float mean = x->vec->sum(in[0], n) / (float)n;
  float var = x->vec->sumsq_dev(in[0], mean, n) / (float)n;
  float inv = 1.0f / sqrtf(var + x->eps);
  x->vec->affine(o, in[0], -mean, inv, x->w, NULL, x->b, n);
}

static void ln_lane64(const void *c, int64_t n, const double *const *in,
                      double *o) {
  const norm_ctx *x = c;
  const double *w = x->w, *b = x->b, *v = in[0];
  double mean = 0, var = 0;
  for (int64_t i = 0; i < n; i++)
    mean += v[i];
  mean /= (double)n;
  for (int64_t i = 0; i < n; i++)
    var += (v[i] - mean) * (v[i] - mean);
  double inv = 1.0 / sqrt(var / (double)n + x->eps64);
  for (int64_t i = 0; i < n; i++)
    o[i] = (v[i] - mean) * inv * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
}

/* ------------------------------------------------------------- eval */

static am_status norm_run(am_arr *const *in, am_arr *out, const norm_params *p,
                          int nz, am_nn_lane_f32 f32, am_nn_lane_f64 f64) {
  /* Gated lanes write o before their last read of z: no donation. */
  am_status s = nz == 1 ? am_out_alloc_donate(out, in, 1) : am_out_alloc(out);
  if (s || !out->size) return s;
  bool d64 = out->m.dtype == AM_F64;
  norm_ctx c = {.vec = am_nn_vec_get(),
                .eps = p->eps,
                .eps64 = p->eps,
                .sigmoid = am_nn_map_f32(AM_OP_SIGMOID)};
  void *tw = NULL, *tb = NULL;
  bool ok = am_nn_vector(p->has_w ? in[nz] : NULL, d64, &c.w, &tw) &&
            am_nn_vector(p->has_b ? in[nz + p->has_w] : NULL, d64, &c.b, &tb);
  if (ok) {
    am_nn_lanes l = {.out = out,
                     .in = {in[0], nz > 1 ? in[1] : NULL},
                     .nin = nz,
                     .axis = out->m.ndim - 1,
                     .fn32 = f32,
                     .fn64 = f64,
                     .ctx = &c,
                     .cost = nz > 1 ? 8 : 2};
    am_nn_lanes_run(&l);
  }
  free(tw);
  free(tb);
  return ok ? AM_OK : AM_FAIL(AM_ERR_OOM, "out of memory");
}

/* ------------------------------------------------------------ rms_norm */

static am_status rms_shapes(const am_meta *const *in, int n_in,
                            const void *params, am_meta *out, int n_out) {
  return norm_shapes_n(in, n_in, params, 1, out);
}

static am_status rms_eval(am_arr *const *in, int n_in, am_arr *const *out,
                          int n_out, const void *params) {
  return norm_run(in, out[0], params, 1, rms_lane32, rms_lane64);
}

const am_prim am_prim_rms_norm = {
    .name = "rms_norm",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(norm_params),
    .output_shapes = rms_shapes,
    .eval_cpu = rms_eval,
};

am_array am_rms_norm(am_array x, am_array w, float eps) {
  norm_params p;
  memset(&p, 0, sizeof p);
  p.eps = eps;
  p.has_w = w != NULL;
  am_arr *in[2] = {x, w};
  return am_nn_make(AM_OP_RMS_NORM, &p, in, 1 + p.has_w, 1 + p.has_w);
}

/* ------------------------------------------------------ rms_norm_gated */

static am_status gated_shapes(const am_meta *const *in, int n_in,
                              const void *params, am_meta *out, int n_out) {
  return norm_shapes_n(in, n_in, params, 2, out);
}

static am_status gated_eval(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  return norm_run(in, out[0], params, 2, gated_lane32, gated_lane64);
}

const am_prim am_prim_rms_norm_gated = {
    .name = "rms_norm_gated",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(norm_params),
    .output_shapes = gated_shapes,
    .eval_cpu = gated_eval,
};

am_array am_rms_norm_gated(am_array x, am_array w, am_array z, float eps) {
  norm_params p;
  memset(&p, 0, sizeof p);
  p.eps = eps;
  p.has_w = w != NULL;
  am_arr *in[3] = {x, z, w};
  return am_nn_make(AM_OP_RMS_NORM_GATED, &p, in, 2 + p.has_w, 2 + p.has_w);
}

/* ---------------------------------------------------------- layer_norm */

static am_status ln_shapes(const am_meta *const *in, int n_in,
                           const void *params, am_meta *out, int n_out) {
  return norm_shapes_n(in, n_in, params, 1, out);
}

static am_status ln_eval(am_arr *const *in, int n_in, am_arr *const *out,
                         int n_out, const void *params) {
  return norm_run(in, out[0], params, 1, ln_lane32, ln_lane64);
}

const am_prim am_prim_layer_norm = {
    .name = "layer_norm",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(norm_params),
    .output_shapes = ln_shapes,
    .eval_cpu = ln_eval,
};

am_array am_layer_norm(am_array x, am_array w, am_array b, float eps) {
  norm_params p;
  memset(&p, 0, sizeof p);
  p.eps = eps;
  p.has_w = w != NULL;
  p.has_b = b != NULL;
  am_arr *in[3] = {x, w, b};
  int n = 1;
  if (w) in[n++] = w;
  if (b) in[n++] = b;
  return am_nn_make(AM_OP_LAYER_NORM, &p, in, n, n);
}
