/*
 * qmm_fused_f32.cu — instantiations of the fused 4-bit kernel: float32 x and
 * products (precise).
 */
#include "qmm_kernels.cuh"

namespace am_cuda_detail {
AM_CUDA_FUSED_TABLE(fused_kernel_f32, false)
} // namespace am_cuda_detail
