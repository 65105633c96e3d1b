/* creation.c — CUDA glue of this family (see ops.h). */
#include "ops.h"

void am_cuda_register_creation(am_backend *b) {
  (void)b;
}
