/* jit.cu — device helpers of the JIT glue (see jit.h): parameter tables
 * written from kernel arguments, and output fills. */
#include "cuda_internal.h"
#include "dtype.cuh"
#include "jit.h"

struct i64_table {
  int64_t v[AM_JIT_TABLE_MAX];
};

__global__ void write_i64_kernel(int64_t *dst,
                                 const __grid_constant__ i64_table t, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    dst[i] = t.v[i];
}

extern "C" am_status am_jit_write_i64(int64_t *dst, const int64_t *vals,
                                      int n) {
  if (n <= 0) return AM_OK;
  if (n > AM_JIT_TABLE_MAX)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "jit: %d table values (max %d)", n,
                        AM_JIT_TABLE_MAX);
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  if (!s) return AM_ERR_DEVICE;
  i64_table t;
  memcpy(t.v, vals, (size_t)n * sizeof *vals);
  write_i64_kernel<<<1, 128, 0, s>>>(dst, t, n);
  return am_cuda_check(cudaGetLastError(), "jit table write");
}

__global__ void fill_kernel(void *dst, int dt, int64_t n, double v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    am_st(dst, i, dt, v);
}

extern "C" am_status am_jit_fill(void *dst, am_dtype dtype, int64_t n,
                                 double v) {
  if (n <= 0) return AM_OK;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  if (!s) return AM_ERR_DEVICE;
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65536) blocks = 65536;
  fill_kernel<<<(unsigned)blocks, 256, 0, s>>>(dst, dtype, n, v);
  return am_cuda_check(cudaGetLastError(), "fill kernel launch");
}
