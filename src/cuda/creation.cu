/* creation.cu — fills for full / full_like and the arange ramp. */
#include "creation.h"
#include "cuda_internal.h"
#include "dtype.cuh"

namespace {

constexpr int THREADS = 256;

unsigned grid_for(int64_t n) {
  int64_t b = (n + THREADS - 1) / THREADS;
  if (b > 4096) b = 4096;
  return (unsigned)(b < 1 ? 1 : b);
}

template <class E>
__global__ void __launch_bounds__(256) fill_kernel(E *dst, E v, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = v;
}

/* start + i * step rounded as the CPU does: a separate multiply and add
 * (no FMA contraction), then am_st's conversion (the CPU's
 * am_store_f64). */
__global__ void __launch_bounds__(256)
    arange_kernel(void *dst, int dt, double start, double step, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    am_st(dst, i, dt, __dadd_rn(start, __dmul_rn((double)i, step)));
}

template <class E> am_status go_fill(void *dst, uint64_t value, int64_t n) {
  E v;
  memcpy(&v, &value, sizeof v); /* the low bytes: little-endian */
  fill_kernel<E><<<grid_for(n), THREADS, 0, am_cuda_resolve_stream(NULL)>>>(
      (E *)dst, v, n);
  return am_cuda_check(cudaGetLastError(), "fill kernel launch");
}

} // namespace

extern "C" am_status am_cu_fill(void *dst, size_t es, uint64_t value,
                                int64_t n) {
  if (n <= 0) return AM_OK;
  switch (es) {
  case 1:
    return go_fill<uint8_t>(dst, value, n);
  case 2:
    return go_fill<uint16_t>(dst, value, n);
  case 4:
    return go_fill<uint32_t>(dst, value, n);
  case 8:
    return go_fill<uint64_t>(dst, value, n);
  default:
    return am_cuda_fail(AM_ERR_INTERNAL, "fill: element size %zu", es);
  }
}

extern "C" am_status am_cu_arange(void *dst, am_dtype dt, double start,
                                  double step, int64_t n) {
  if (n <= 0) return AM_OK;
  arange_kernel<<<grid_for(n), THREADS, 0, am_cuda_resolve_stream(NULL)>>>(
      dst, dt, start, step, n);
  return am_cuda_check(cudaGetLastError(), "arange kernel launch");
}
