/* conv_params.h — params of conv1d (conv.c), shared with the
 * CUDA glue. */
#ifndef AM_CONV_PARAMS_H
#define AM_CONV_PARAMS_H

#include "../core/internal.h"

typedef struct {
  int stride, padding, dilation, groups;
} conv_params;

#endif
