/* linalg_params.h — params of addmm (shared with the CUDA glue). */
#ifndef AM_LINALG_PARAMS_H
#define AM_LINALG_PARAMS_H
#include "../core/internal.h"

typedef struct {
  float alpha, beta;
} addmm_params;
#endif
