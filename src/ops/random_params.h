/* random_params.h — the params of random_bits / random_like, shared by
 * the CPU kernels (random.c) and the CUDA glue (src/cuda/random.c). */
#ifndef AM_RANDOM_PARAMS_H
#define AM_RANDOM_PARAMS_H
#include "../core/internal.h"

typedef struct {
  am_dtype dtype; /* AM_U32: bits; AM_F32 / AM_F16 / AM_BF16: uniform */
  int ndim;       /* random_bits: the literal shape; random_like: 0 */
  int64_t shape[AM_MAX_DIMS];
} random_params;
#endif
