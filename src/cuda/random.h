/* random.h — launcher of the Threefry random kernel (random.cu). */
#ifndef AM_CUDA_RANDOM_H
#define AM_CUDA_RANDOM_H
#include "amorph.h"

#ifdef __cplusplus
extern "C" {
#endif
/** n words of MLX's RandomBits layout under the key at `key` (two uint32
 * words `key_stride` elements apart, on the device) into out, as dtype
 * (AM_U32 bits, or AM_F32 / AM_F16 / AM_BF16 uniform in [0, 1)). */
am_status am_cuda_launch_random(const void *key, int64_t key_stride, void *out,
                                am_dtype dtype, int64_t n);
#ifdef __cplusplus
}
#endif
#endif
