/* conv.h — conv1d on the GPU (conv.cu), C-callable. */
#ifndef AM_CUDA_CONV_H
#define AM_CUDA_CONV_H
#include "amorph.h"
#ifdef __cplusplus
extern "C" {
#endif
/** y [N, Lo, Cout] row-major = conv1d of x [N, L, Cin] (element strides
 * xs) with w [Cout, K, Cig] (strides ws), zero padding `pad` on both
 * ends, stride, dilation, groups = Cin / Cig. dt: the dtype of all three
 * (float16, bfloat16, float32: float32 math; float64: double). */
am_status am_cuconv1d(am_dtype dt, const void *x, const int64_t *xs,
                      const void *w, const int64_t *ws, void *y, int64_t N,
                      int64_t L, int64_t Cin, int64_t Lo, int64_t Cout,
                      int64_t K, int64_t Cig, int stride, int pad, int dilation,
                      int groups);
#ifdef __cplusplus
}
#endif
#endif
