/* indexing_params.h — params of the indexing ops
 * (indexing.c), shared with the CUDA glue. */
#ifndef AM_INDEXING_PARAMS_H
#define AM_INDEXING_PARAMS_H

#include "../core/internal.h"

typedef struct {
  int axis;
} axis_params;

typedef struct {
  int n; /* sliced axes: the first n */
  int64_t start[AM_MAX_DIMS], stop[AM_MAX_DIMS], step[AM_MAX_DIMS];
} slice_params;

typedef struct {
  int naxes;
  int axes[AM_MAX_DIMS];      /* as given (negative ok) */
  int64_t sizes[AM_MAX_DIMS]; /* dynamic_slice only: static window sizes */
} dyn_params;

/** Python's slice.indices(len): the first index and the count of a slice
 * (AM_END as stop with a negative step: through index 0). indexing.c;
 * shared with the CUDA backend. */
void am_slice_norm(int64_t start, int64_t stop, int64_t step, int64_t len,
                   int64_t *first, int64_t *count);

#endif
