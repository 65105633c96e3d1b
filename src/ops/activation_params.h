/* activation_params.h — params of the elementwise activations (gelu),
 * shared by the CPU kernels (activation.c) and the CUDA glue. */
#ifndef AM_OPS_ACTIVATION_PARAMS_H
#define AM_OPS_ACTIVATION_PARAMS_H

typedef struct {
  int approximate; /* gelu: tanh form */
} act_params;
#endif
