/* reduce_params.h — params of the reduction family (reduce.c,
 * reduce_cumsum.c), shared with the CUDA glue (src/cuda/reduce.c). */
#ifndef AM_REDUCE_PARAMS_H
#define AM_REDUCE_PARAMS_H
#include "../core/internal.h"

typedef struct {
  int32_t all;   /* axes == NULL: every axis, whatever the rank */
  int32_t naxes; /* entries of axes (argmax/argmin: 1) */
  int32_t keepdims;
  int32_t axes[AM_MAX_DIMS]; /* as given: negative ones count from the end */
} red_params;

typedef struct {
  int32_t axis; /* as given */
  int32_t reverse;
  int32_t inclusive;
} cumsum_params;

/** The reduced axes of an ndim-d input, normalized into mask; fails on an
 * axis out of range or given twice. reduce.c; shared with the CUDA
 * backend. */
am_status am_red_mask(const red_params *p, int ndim, bool *mask);
#endif
