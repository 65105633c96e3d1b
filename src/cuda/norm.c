/* norm.c — CUDA glue of the along-an-axis nn ops (see ops.h): softmax,
 * log_softmax, l2_normalize (src/ops/activation.c), rms_norm,
 * rms_norm_gated, layer_norm (src/ops/norm.c) and rope (src/ops/rope.c).
 * Registered from am_cuda_register_reduce. Outputs are contiguous;
 * donation where the CPU donates (each position is read before the same
 * thread writes it). */
#include "norm.h"
#include "../ops/norm_params.h"
#include "../ops/rope_params.h"
#include "../ops/softmax_params.h"
#include "ops.h"

/* The lanes along `axis` of out (operand 0), x and z (1, 2; z may be
 * NULL): every other dim of size > 1, no merging (unravel cost only). */
static void lanes_of(am_cuda_lanes *l, const am_arr *out, const am_arr *x,
                     const am_arr *z, int axis) {
  memset(l, 0, sizeof *l);
  const am_arr *a[3] = {out, x, z};
  l->len = out->m.shape[axis];
  l->nlanes = l->len ? out->size / l->len : 0;
  for (int k = 0; k < 3; k++)
    if (a[k]) l->ast[k] = a[k]->strides[axis];
  for (int d = 0; d < out->m.ndim; d++) {
    if (d == axis || out->m.shape[d] == 1) continue;
    l->shape[l->nd] = out->m.shape[d];
    for (int k = 0; k < 3; k++)
      if (a[k]) l->st[k][l->nd] = a[k]->strides[d];
    l->nd++;
  }
}

static const void *ptr_or_null(const am_arr *a) {
  return a && a->size ? am_arr_ptr(a) : NULL;
}

/* ---- softmax, log_softmax, l2_normalize ---- */

static am_status axis_cuda(int op, const char *name, am_arr *const *in,
                           am_arr *out, const axis_params *p, bool donate) {
  const am_arr *x = in[0];
  int axis = am_norm_axis(p->axis, x->m.ndim);
  if (axis < 0)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "%s: axis %d out of range (%d dims)", name, p->axis,
                        x->m.ndim);
  am_status s = donate ? am_out_alloc_donate(out, in, 1) : am_out_alloc(out);
  if (s || !out->size) return s;
  am_cuda_lanes l;
  lanes_of(&l, out, x, NULL, axis);
  return am_cuda_launch_nn(op, out->m.dtype, am_arr_ptr(out), am_arr_ptr(x),
                           NULL, NULL, 0, NULL, 0, p->eps, &l);
}

static am_status softmax_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                              int n_out, const void *params) {
  (void)n_in;
  (void)n_out;
  return axis_cuda(AM_CUDA_NN_SOFTMAX, "softmax", in, out[0], params, true);
}
static am_status log_softmax_cuda(am_arr *const *in, int n_in,
                                  am_arr *const *out, int n_out,
                                  const void *params) {
  (void)n_in;
  (void)n_out;
  return axis_cuda(AM_CUDA_NN_LOG_SOFTMAX, "log_softmax", in, out[0], params,
                   false);
}
static am_status l2_normalize_cuda(am_arr *const *in, int n_in,
                                   am_arr *const *out, int n_out,
                                   const void *params) {
  (void)n_in;
  (void)n_out;
  return axis_cuda(AM_CUDA_NN_L2, "l2_normalize", in, out[0], params, true);
}

/* ---- rms_norm, rms_norm_gated, layer_norm: inputs x, [z], [w], [b] ---- */

static am_status norm_cuda(int op, const char *name, am_arr *const *in,
                           int n_in, am_arr *out, const norm_params *p,
                           int nz) {
  if (n_in != nz + p->has_w + p->has_b || in[0]->m.ndim < 1)
    return am_set_error(AM_ERR_INTERNAL, "%s: %d inputs, expected %d", name,
                        n_in, nz + p->has_w + p->has_b);
  const am_arr *x = in[0], *z = nz > 1 ? in[1] : NULL;
  const am_arr *w = p->has_w ? in[nz] : NULL;
  const am_arr *b = p->has_b ? in[nz + p->has_w] : NULL;
  am_status s = nz == 1 ? am_out_alloc_donate(out, in, 1) : am_out_alloc(out);
  if (s || !out->size) return s;
  am_cuda_lanes l;
  lanes_of(&l, out, x, z, out->m.ndim - 1);
  return am_cuda_launch_nn(op, out->m.dtype, am_arr_ptr(out), am_arr_ptr(x),
                           ptr_or_null(z), ptr_or_null(w),
                           w ? w->strides[0] : 0, ptr_or_null(b),
                           b ? b->strides[0] : 0, p->eps, &l);
}

static am_status rms_norm_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                               int n_out, const void *params) {
  (void)n_out;
  return norm_cuda(AM_CUDA_NN_RMS, "rms_norm", in, n_in, out[0], params, 1);
}
static am_status rms_norm_gated_cuda(am_arr *const *in, int n_in,
                                     am_arr *const *out, int n_out,
                                     const void *params) {
  (void)n_out;
  return norm_cuda(AM_CUDA_NN_RMS_GATED, "rms_norm_gated", in, n_in, out[0],
                   params, 2);
}
static am_status layer_norm_cuda(am_arr *const *in, int n_in,
                                 am_arr *const *out, int n_out,
                                 const void *params) {
  (void)n_out;
  return norm_cuda(AM_CUDA_NN_LAYER_NORM, "layer_norm", in, n_in, out[0],
                   params, 1);
}

/* ---- rope: x, [offset] ---- */

static am_status rope_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  (void)n_out;
  const rope_params *p = params;
  const am_arr *x = in[0], *oa = p->has_offset && n_in > 1 ? in[1] : NULL;
  if (x->m.ndim < 2 || p->dims <= 0 || p->dims % 2 ||
      p->dims > x->m.shape[x->m.ndim - 1])
    return am_set_error(AM_ERR_INVALID_ARG, "rope: dims %d for %d-d x", p->dims,
                        x->m.ndim);
  am_status s = am_out_alloc_donate(out[0], in, 1);
  if (s || !out[0]->size) return s;
  int64_t nb = oa && oa->m.ndim == 1 ? oa->m.shape[0] : 1;
  int64_t ost = oa && oa->m.ndim == 1 ? oa->strides[0] : 0;
  return am_cuda_launch_rope(x->m.dtype, am_arr_ptr(x), am_arr_ptr(out[0]),
                             x->m.ndim, x->m.shape, x->strides, p->dims,
                             p->traditional, p->base, p->scale, ptr_or_null(oa),
                             oa ? oa->m.dtype : AM_I64, ost, nb);
}

void am_cuda_register_norm(am_backend *b) {
  b->eval[AM_OP_SOFTMAX] = softmax_cuda;
  b->eval[AM_OP_LOG_SOFTMAX] = log_softmax_cuda;
  b->eval[AM_OP_L2_NORMALIZE] = l2_normalize_cuda;
  b->eval[AM_OP_RMS_NORM] = rms_norm_cuda;
  b->eval[AM_OP_RMS_NORM_GATED] = rms_norm_gated_cuda;
  b->eval[AM_OP_LAYER_NORM] = layer_norm_cuda;
  b->eval[AM_OP_ROPE] = rope_cuda;
}
