/* creation_params.h — params of full, arange and full_like, shared by the
 * CPU kernels (creation.c) and the CUDA glue. */
#ifndef AM_OPS_CREATION_PARAMS_H
#define AM_OPS_CREATION_PARAMS_H
#include "../core/internal.h"

typedef struct {
  am_meta m; /* literal shape and dtype */
  double value;
} full_params;

typedef struct {
  double start, stop, step;
  am_dtype dtype;
} arange_params;

typedef struct {
  double value;
  am_dtype dtype; /* AM_DTYPE_COUNT: the input's */
} full_like_params;
#endif
