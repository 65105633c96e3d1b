/* conv.cu — direct conv1d: one thread per output element, channels
 * fastest so neighbouring threads read neighbouring channels of x (the
 * depthwise short convolution of the LLM: K = 4, C ~ 8192, a decode step
 * has L = 1, and each output is K multiply-adds). Grouped and dense
 * convolutions run the same loop over their Cig input channels; they are
 * small in the models this serves. float16/bfloat16 accumulate in
 * float32 and round once on store, as the CPU; float64 in double. */
#include "conv.h"
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

struct conv_args {
  int64_t N, L, Cin, Lo, Cout, K, Cig, Cog;
  int64_t xs0, xs1, xs2, ws0, ws1, ws2;
  int s, p, d;
};

template <typename T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };

__device__ __forceinline__ float to_acc(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float to_acc(float v) {
  return v;
}
__device__ __forceinline__ double to_acc(double v) {
  return v;
}
template <typename T, typename A> __device__ __forceinline__ T from_acc(A v);
template <> __device__ __forceinline__ __half from_acc(float v) {
  return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_acc(float v) {
  return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ float from_acc(float v) {
  return v;
}
template <> __device__ __forceinline__ double from_acc(double v) {
  return v;
}

template <typename T>
__global__ void conv1d_kernel(const T *__restrict__ x, const T *__restrict__ w,
                              T *__restrict__ y, conv_args a, int64_t total) {
  using A = typename acc_of<T>::type;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t co = i % a.Cout, r = i / a.Cout;
    int64_t t = r % a.Lo, n = r / a.Lo;
    int64_t ci0 = (co / a.Cog) * a.Cig;
    A acc = 0;
    for (int64_t k = 0; k < a.K; k++) {
      int64_t pos = t * a.s + k * a.d - a.p;
      if (pos < 0 || pos >= a.L) continue;
      const T *xr = x + n * a.xs0 + pos * a.xs1 + ci0 * a.xs2;
      const T *wr = w + co * a.ws0 + k * a.ws1;
      for (int64_t c = 0; c < a.Cig; c++)
        acc += to_acc(wr[c * a.ws2]) * to_acc(xr[c * a.xs2]);
    }
    y[i] = from_acc<T, A>(acc);
  }
}

template <typename T>
am_status launch(const void *x, const void *w, void *y, const conv_args &a,
                 int64_t total) {
  int64_t b = (total + 255) / 256;
  unsigned grid = (unsigned)(b > 65536 ? 65536 : b);
  conv1d_kernel<T><<<grid, 256, 0, am_cuda_resolve_stream(NULL)>>>(
      (const T *)x, (const T *)w, (T *)y, a, total);
  return am_cuda_check(cudaGetLastError(), "conv1d kernel launch");
}

} // namespace

extern "C" am_status am_cuconv1d(am_dtype dt, const void *x, const int64_t *xs,
                                 const void *w, const int64_t *ws, void *y,
                                 int64_t N, int64_t L, int64_t Cin, int64_t Lo,
                                 int64_t Cout, int64_t K, int64_t Cig,
                                 int stride, int pad, int dilation,
                                 int groups) {
  int64_t total = N * Lo * Cout;
  if (total <= 0) return AM_OK;
  conv_args a = {
      N,     L,     Cin,   Lo,    Cout,  K,      Cig, Cout / groups, xs[0],
      xs[1], xs[2], ws[0], ws[1], ws[2], stride, pad, dilation};
  switch (dt) {
  case AM_F16:
    return launch<__half>(x, w, y, a, total);
  case AM_BF16:
    return launch<__nv_bfloat16>(x, w, y, a, total);
  case AM_F32:
    return launch<float>(x, w, y, a, total);
  case AM_F64:
    return launch<double>(x, w, y, a, total);
  default:
    return am_cuda_fail(AM_ERR_DTYPE, "conv1d: dtype %d", (int)dt);
  }
}
