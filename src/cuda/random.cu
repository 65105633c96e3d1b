/* random.cu — Threefry-2x32 (20 rounds) counter-based random words in
 * MLX's RandomBits layout, bit-exact with src/ops/random.c: word pair
 * (j, j + second) is the hash of counters (j, j + second) for j < h = n/2,
 * and with n odd word h is the first half of hash(h, 0). One thread per
 * pair; the key is read on the device (it is data: new key values never
 * change a captured graph). */
#include "cuda_internal.h"
#include "random.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ uint32_t rotl(uint32_t x, int r) {
  return (x << r) | (x >> (32 - r));
}

__device__ __forceinline__ void threefry(const uint32_t ks[3], uint32_t &x0,
                                         uint32_t &x1) {
  const int ra[4] = {13, 15, 26, 6}, rb[4] = {17, 29, 16, 24};
  x0 += ks[0];
  x1 += ks[1];
#pragma unroll
  for (int i = 0; i < 5; i++) {
    const int *r = (i & 1) ? rb : ra;
#pragma unroll
    for (int q = 0; q < 4; q++) {
      x0 += x1;
      x1 = rotl(x1, r[q]);
      x1 ^= x0;
    }
    x0 += ks[(i + 1) % 3];
    x1 += ks[(i + 2) % 3] + (uint32_t)i + 1;
  }
}

/* MLX's uniform: float32(bits) * 2^-32 (uint32 -> float rounds to nearest,
 * as the CPU's cast), clamped to the largest value below 1 of the target
 * type, then rounded to it. */
__device__ __forceinline__ float unit_f32(uint32_t b, float below_one) {
  float u = __uint2float_rn(b) * 0x1p-32f;
  return u < below_one ? u : below_one;
}

template <int DT>
__device__ __forceinline__ void put(void *o, int64_t i, uint32_t b) {
  if (DT == AM_U32)
    ((uint32_t *)o)[i] = b;
  else if (DT == AM_F32)
    ((float *)o)[i] = unit_f32(b, 0x1.fffffep-1f);
  else if (DT == AM_F16)
    ((__half *)o)[i] = __float2half_rn(unit_f32(b, 0x1.ffcp-1f));
  else
    ((__nv_bfloat16 *)o)[i] = __float2bfloat16_rn(unit_f32(b, 0x1.fep-1f));
}

template <int DT>
__global__ void random_kernel(const uint32_t *key, int64_t kst, void *out,
                              int64_t h, int64_t second, bool odd) {
  uint32_t ks[3] = {key[0], key[kst], 0};
  ks[2] = ks[0] ^ ks[1] ^ 0x1BD11BDAu;
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
       j < h + (odd ? 1 : 0); j += (int64_t)gridDim.x * blockDim.x) {
    if (j == h) { /* the middle word of an odd count */
      uint32_t x0 = (uint32_t)h, x1 = 0;
      threefry(ks, x0, x1);
      put<DT>(out, h, x0);
      continue;
    }
    uint32_t x0 = (uint32_t)j, x1 = (uint32_t)(j + second);
    threefry(ks, x0, x1);
    put<DT>(out, j, x0);
    put<DT>(out, j + second, x1);
  }
}

extern "C" am_status am_cuda_launch_random(const void *key, int64_t key_stride,
                                           void *out, am_dtype dtype,
                                           int64_t n) {
  if (n <= 0) return AM_OK;
  int64_t h = n / 2, odd = n & 1, work = h + odd;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  if (!s) return AM_ERR_DEVICE;
  int64_t blocks = (work + 255) / 256;
  if (blocks > 65536) blocks = 65536;
  const uint32_t *k = (const uint32_t *)key;
  switch (dtype) {
  case AM_U32:
    random_kernel<AM_U32>
        <<<(unsigned)blocks, 256, 0, s>>>(k, key_stride, out, h, h + odd, odd);
    break;
  case AM_F32:
    random_kernel<AM_F32>
        <<<(unsigned)blocks, 256, 0, s>>>(k, key_stride, out, h, h + odd, odd);
    break;
  case AM_F16:
    random_kernel<AM_F16>
        <<<(unsigned)blocks, 256, 0, s>>>(k, key_stride, out, h, h + odd, odd);
    break;
  case AM_BF16:
    random_kernel<AM_BF16>
        <<<(unsigned)blocks, 256, 0, s>>>(k, key_stride, out, h, h + odd, odd);
    break;
  default:
    return am_cuda_fail(AM_ERR_DTYPE, "random: dtype %d", (int)dtype);
  }
  return am_cuda_check(cudaGetLastError(), "random kernel launch");
}
