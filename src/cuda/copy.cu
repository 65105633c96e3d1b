/* copy.cu — the strided, converting copy every family uses: making an
 * input contiguous, astype, placement of views. One thread per output
 * element; integer to integer copies stay exact through int64. */
#include "copy.h"
#include "cuda_internal.h"
#include "dtype.cuh"

#define DIMS 8

struct strided {
  int ndim;
  int64_t shape[DIMS], strides[DIMS];
};

__global__ void copy_kernel(const void *src, int st, strided v, void *dst,
                            int dt, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i, off = 0;
    for (int d = v.ndim - 1; d >= 0; d--) {
      int64_t q = r / v.shape[d];
      off += (r - q * v.shape[d]) * v.strides[d];
      r = q;
    }
    if (am_is_int(st) && am_is_int(dt))
      am_st_i64(dst, i, dt, am_ld_i64(src, off, st));
    else
      am_st(dst, i, dt, am_ld(src, off, st));
  }
}

extern "C" am_status am_cuda_launch_copy(const void *src, am_dtype src_dtype,
                                         int ndim, const int64_t *shape,
                                         const int64_t *strides, void *dst,
                                         am_dtype dst_dtype, int64_t n,
                                         void *stream) {
  if (n <= 0) return AM_OK;
  if (ndim > DIMS)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "copy: %d dims (at most %d)", ndim,
                        DIMS);
  strided v = {};
  v.ndim = ndim;
  for (int d = 0; d < ndim; d++) {
    v.shape[d] = shape[d];
    v.strides[d] = strides[d];
  }
  cudaStream_t s = am_cuda_resolve_stream(stream);
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65536) blocks = 65536;
  copy_kernel<<<(unsigned)blocks, 256, 0, s>>>(src, src_dtype, v, dst,
                                               dst_dtype, n);
  return am_cuda_check(cudaGetLastError(), "copy kernel launch");
}
