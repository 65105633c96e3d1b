/* elementwise_params.h — params of the elementwise family's primitives,
 * shared by the CPU kernels (elementwise.c) and the CUDA glue. */
#ifndef AM_OPS_ELEMENTWISE_PARAMS_H
#define AM_OPS_ELEMENTWISE_PARAMS_H
#include "amorph.h"

typedef struct {
  am_dtype dtype;
} astype_params;
#endif
