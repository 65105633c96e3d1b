/* shape_params.h — params of the copying shape ops
 * (shape_copy.c), shared with the CUDA glue. */
#ifndef AM_SHAPE_PARAMS_H
#define AM_SHAPE_PARAMS_H

#include "../core/internal.h"

typedef struct {
  int axis; /* as given; may be negative */
} concat_params;

typedef struct {
  int n; /* widths for the first n axes */
  int64_t low[AM_MAX_DIMS], high[AM_MAX_DIMS];
  double value; /* cast to the dtype at eval */
} pad_params;

typedef struct {
  int64_t repeats;
  int axis;
} repeat_params;

typedef struct {
  int n;
  int64_t reps[AM_MAX_DIMS];
} tile_params;

#endif
