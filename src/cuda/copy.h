/* copy.h — the strided convert-copy kernel (copy.cu), C-callable. */
#ifndef AM_CUDA_COPY_H
#define AM_CUDA_COPY_H
#include "amorph.h"
#ifdef __cplusplus
extern "C" {
#endif
/** dst[i] (row-major over shape, dst_dtype) = src at the strided position
 * of i, converted (float <-> int as C casts; to bool: != 0). */
am_status am_cuda_launch_copy(const void *src, am_dtype src_dtype, int ndim,
                              const int64_t *shape, const int64_t *strides,
                              void *dst, am_dtype dst_dtype, int64_t n,
                              void *stream);
#ifdef __cplusplus
}
#endif
#endif
