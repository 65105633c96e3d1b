/* rope_params.h — params of rope (rope.c), shared with the CUDA glue
 * (src/cuda/norm.c). */
#ifndef AM_ROPE_PARAMS_H
#define AM_ROPE_PARAMS_H

typedef struct {
  int dims;
  int traditional;
  int has_offset;
  float base, scale;
} rope_params;
#endif
