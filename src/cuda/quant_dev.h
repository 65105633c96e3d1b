/*
 * quant_dev.h — device-side versions of src/ops/quant_formats.h (MLX's
 * quantized formats, bit for bit) and float loads/stores by run-time
 * dtype, for linalg.cu and quant.cu. CUDA only.
 */
#ifndef AM_CUDA_QUANT_DEV_H
#define AM_CUDA_QUANT_DEV_H
#ifdef __CUDACC__
#include "amorph.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace amq {

__device__ __forceinline__ float h2f(uint16_t b) {
  return __half2float(__ushort_as_half(b));
}

__device__ __forceinline__ float ldf(const void *p, int64_t i, int t) {
  switch (t) {
  case AM_F32:
    return ((const float *)p)[i];
  case AM_F16:
    return __half2float(((const __half *)p)[i]);
  case AM_BF16:
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
  case AM_F64:
    return (float)((const double *)p)[i];
  default:
    return 0.f;
  }
}

__device__ __forceinline__ void stf(void *p, int64_t i, int t, float v) {
  switch (t) {
  case AM_F32:
    ((float *)p)[i] = v;
    break;
  case AM_F16:
    ((__half *)p)[i] = __float2half_rn(v);
    break;
  case AM_BF16:
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    break;
  case AM_F64:
    ((double *)p)[i] = v;
    break;
  default:
    break;
  }
}

/* v rounded to t (f16/bf16) and back, as am_q_round. */
__device__ __forceinline__ float rnd(float v, int t) {
  if (t == AM_F16) return __half2float(__float2half_rn(v));
  if (t == AM_BF16) return __bfloat162float(__float2bfloat16_rn(v));
  return v;
}

__device__ __forceinline__ float fp4(unsigned q) {
  const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  float v = mag[q & 7u];
  return (q & 8u) ? -v : v;
}

/* E4M3 to float as MLX's FromFP8 (0x7f: 480). */
__device__ __forceinline__ float fp8(unsigned x) {
  float v = h2f((uint16_t)((x & 127u) << 7)) * 256.0f;
  return (x & 128u) ? -v : v;
}

/* Float to E4M3 as MLX's ToFP8 (am_q_f32_to_fp8). */
__device__ __forceinline__ uint8_t to_fp8(float f) {
  const uint32_t fp8_max = 543u << 21, denorm_mask = 141u << 23;
  uint32_t fb = __float_as_uint(f);
  uint32_t sign = fb & 0x80000000u;
  fb ^= sign;
  uint8_t r;
  if (fb >= fp8_max) {
    r = 0x7e;
  } else if (fb < (121u << 23)) {
    /* __fadd_rn: this addition must not be contracted or reordered */
    uint32_t low = __float_as_uint(
        __fadd_rn(__uint_as_float(fb), __uint_as_float(denorm_mask)));
    r = (uint8_t)(low - denorm_mask);
  } else {
    uint32_t mant_odd = (fb >> 20) & 1u;
    uint32_t high = fb + (((uint32_t)(7 - 127) << 23) + 0x7ffffu) + mant_odd;
    r = (uint8_t)(high >> 20);
  }
  return (uint8_t)(r | (sign >> 24));
}

/* E8M0 scale: s in the exponent field, 0 giving 2^-127 (subnormal). */
__device__ __forceinline__ float e8m0(unsigned s) {
  return __uint_as_float(s ? (uint32_t)s << 23 : 0x00400000u);
}

/* Code i of a packed row (bit stream, bytes). */
__device__ __forceinline__ unsigned code(const uint8_t *row, int64_t i,
                                         int bits) {
  int64_t bit = i * bits;
  const uint8_t *p = row + (bit >> 3);
  int sh = (int)(bit & 7);
  unsigned v = p[0];
  if (sh + bits > 8) v |= (unsigned)p[1] << 8;
  return (v >> sh) & ((1u << bits) - 1u);
}

/* Nearest E2M1 code (am_q_fp4_nearest): differences rounded to dt. */
__device__ __forceinline__ uint8_t fp4_nearest(float v, int dt) {
  if (!isfinite(v)) return 0;
  uint8_t best = 0;
  float bd = fabsf(rnd(__fsub_rn(v, fp4(0)), dt));
  for (unsigned i = 1; i < 16; i++) {
    float d = fabsf(rnd(__fsub_rn(v, fp4(i)), dt));
    if (d < bd) {
      bd = d;
      best = (uint8_t)i;
    }
  }
  return best;
}

} // namespace amq
#endif
#endif
