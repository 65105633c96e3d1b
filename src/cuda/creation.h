/* creation.h — launchers of creation.cu (full, arange), C-callable. */
#ifndef AM_CUDA_CREATION_H
#define AM_CUDA_CREATION_H
#include "amorph.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** n elements of es bytes (1, 2, 4 or 8) at dst, each the first es bytes
 * of `value` (the element already in the target dtype). */
am_status am_cu_fill(void *dst, size_t es, uint64_t value, int64_t n);

/** dst[i] = start + i * step in dtype dt (the CPU's am_store_f64). */
am_status am_cu_arange(void *dst, am_dtype dt, double start, double step,
                       int64_t n);

#ifdef __cplusplus
}
#endif
#endif
