/*
 * qmm_fused_i16.cu — instantiations of the fused 4-bit kernel: x split into
 * two 16-bit integer terms (hi + lo / 65536), dp2a.
 */
#include "qmm_kernels.cuh"

namespace am_cuda_detail {
AM_CUDA_FUSED_TABLE(fused_kernel_i16, true)
} // namespace am_cuda_detail
