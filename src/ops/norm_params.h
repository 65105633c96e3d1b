/* norm_params.h — params of rms_norm, rms_norm_gated and layer_norm
 * (norm.c), shared with the CUDA glue (src/cuda/norm.c). */
#ifndef AM_NORM_PARAMS_H
#define AM_NORM_PARAMS_H

typedef struct {
  float eps;
  int has_w, has_b; /* optional inputs present (in this order after x) */
} norm_params;
#endif
