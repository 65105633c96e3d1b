/* norm.h — launchers of the along-an-axis nn kernels (norm.cu): softmax,
 * log_softmax, l2_normalize, rms_norm (gated too), layer_norm and rope.
 * C-callable, no amorph internals; glue in norm.c. */
#ifndef AM_CUDA_NORM_H
#define AM_CUDA_NORM_H
#include "amorph.h"
#include "reduce.h"

#ifdef __cplusplus
extern "C" {
#endif

struct am_backend;
/** Registers softmax, log_softmax, l2_normalize, rms_norm,
 * rms_norm_gated, layer_norm and rope (norm.c). */
void am_cuda_register_norm(struct am_backend *b);

enum {
  AM_CUDA_NN_SOFTMAX,
  AM_CUDA_NN_LOG_SOFTMAX,
  AM_CUDA_NN_L2,
  AM_CUDA_NN_RMS,
  AM_CUDA_NN_RMS_GATED,
  AM_CUDA_NN_LAYER_NORM,
  AM_CUDA_NN_COUNT
};

/** One lane-wise op on float dtype t (all operands): out, x and z (gated:
 * operand 2 of l) along the lanes of l; w and b are optional vectors
 * along the lane (strides ws, bs). float16/bfloat16/float32 compute in
 * float32, float64 in double. */
am_status am_cuda_launch_nn(int op, am_dtype t, void *out, const void *x,
                            const void *z, const void *w, int64_t ws,
                            const void *b, int64_t bs, float eps,
                            const am_cuda_lanes *l);

/** Rotary encoding of x ([..., L, D] with strides xst, nd dims) into the
 * contiguous out. off: NULL, or nb >= 1 integer offsets (dtype offt,
 * stride off_st); nb > 1: one per index of axis 0. */
am_status am_cuda_launch_rope(am_dtype t, const void *x, void *out, int nd,
                              const int64_t *shape, const int64_t *xst,
                              int dims, int traditional, float base,
                              float scale, const void *off, am_dtype offt,
                              int64_t off_st, int64_t nb);

#ifdef __cplusplus
}
#endif
#endif
