/* conv.c — CUDA glue of conv1d (see ops.h), src/ops/conv.c's semantics:
 * x [N, L, C_in], w [C_out, K, C_in/groups], out [N, L_out, C_out], zero
 * padding, stride, dilation, groups. Inputs are read through their
 * strides (no copies); conv.cu has the kernel. */
#include "conv.h"
#include "ops.h"

#include "../ops/conv_params.h"

void am_cuda_register_conv(am_backend *b);

static am_status conv1d_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const conv_params *p = params;
  const am_arr *x = in[0], *w = in[1];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  return am_cuconv1d(o->m.dtype, x->size ? am_arr_ptr(x) : NULL, x->strides,
                     w->size ? am_arr_ptr(w) : NULL, w->strides, am_arr_ptr(o),
                     x->m.shape[0], x->m.shape[1], x->m.shape[2], o->m.shape[1],
                     w->m.shape[0], w->m.shape[1], w->m.shape[2], p->stride,
                     p->padding, p->dilation, p->groups);
}

void am_cuda_register_conv(am_backend *b) {
  b->eval[AM_OP_CONV1D] = conv1d_cuda;
}
