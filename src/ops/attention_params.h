/* attention_params.h — params of sdpa (shared with the CUDA glue). */
#ifndef AM_ATTENTION_PARAMS_H
#define AM_ATTENTION_PARAMS_H
#include "../core/internal.h"

typedef struct {
  float scale;
  int causal;
  int has_mask, has_qoff;
} sdpa_params;
#endif
