/* sort_params.h — params of the sort ops (sort.c), shared with
 * the CUDA glue. */
#ifndef AM_SORT_PARAMS_H
#define AM_SORT_PARAMS_H

#include "../core/internal.h"

typedef struct {
  int axis;
  int64_t k; /* kth (argpartition) or k (topk); 0 otherwise */
} sort_params;

#endif
