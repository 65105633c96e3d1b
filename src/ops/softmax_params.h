/* softmax_params.h — params of softmax, log_softmax and l2_normalize
 * (activation.c), shared with the CUDA glue (src/cuda/norm.c). */
#ifndef AM_SOFTMAX_PARAMS_H
#define AM_SOFTMAX_PARAMS_H

typedef struct {
  int axis;
  float eps; /* l2_normalize only */
} axis_params;
#endif
