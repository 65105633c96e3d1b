/* dtype.cuh — loading and storing any am_dtype element as double or
 * float in device code, for kernels that take their dtypes at run time
 * (copies, conversions, generic fallbacks). */
#ifndef AM_CUDA_DTYPE_CUH
#define AM_CUDA_DTYPE_CUH
#include "amorph.h"
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ double am_ld(const void *p, int64_t i, int t) {
  switch (t) {
  case AM_BOOL:
    return ((const uint8_t *)p)[i] != 0;
  case AM_U8:
    return ((const uint8_t *)p)[i];
  case AM_I8:
    return ((const int8_t *)p)[i];
  case AM_U32:
    return ((const uint32_t *)p)[i];
  case AM_I32:
    return ((const int32_t *)p)[i];
  case AM_I64:
    return (double)((const int64_t *)p)[i];
  case AM_F16:
    return __half2float(((const __half *)p)[i]);
  case AM_BF16:
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
  case AM_F32:
    return ((const float *)p)[i];
  default:
    return ((const double *)p)[i];
  }
}

/* Integers travel as int64 so that large values stay exact. */
__device__ __forceinline__ int64_t am_ld_i64(const void *p, int64_t i, int t) {
  switch (t) {
  case AM_BOOL:
    return ((const uint8_t *)p)[i] != 0;
  case AM_U8:
    return ((const uint8_t *)p)[i];
  case AM_I8:
    return ((const int8_t *)p)[i];
  case AM_U32:
    return ((const uint32_t *)p)[i];
  case AM_I32:
    return ((const int32_t *)p)[i];
  case AM_I64:
    return ((const int64_t *)p)[i];
  default:
    return (int64_t)am_ld(p, i, t);
  }
}

__device__ __forceinline__ bool am_is_int(int t) {
  return t != AM_F16 && t != AM_BF16 && t != AM_F32 && t != AM_F64;
}

/* Float to integer as the CPU library does: truncation, saturating, NaN
 * to 0. */
__device__ __forceinline__ int64_t am_f2i(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

__device__ __forceinline__ void am_st_i64(void *p, int64_t i, int t,
                                          int64_t v) {
  switch (t) {
  case AM_BOOL:
    ((uint8_t *)p)[i] = v != 0;
    break;
  case AM_U8:
    ((uint8_t *)p)[i] = (uint8_t)v;
    break;
  case AM_I8:
    ((int8_t *)p)[i] = (int8_t)v;
    break;
  case AM_U32:
    ((uint32_t *)p)[i] = (uint32_t)v;
    break;
  case AM_I32:
    ((int32_t *)p)[i] = (int32_t)v;
    break;
  case AM_I64:
    ((int64_t *)p)[i] = v;
    break;
  case AM_F16:
    ((__half *)p)[i] = __float2half_rn((float)v);
    break;
  case AM_BF16:
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v);
    break;
  case AM_F32:
    ((float *)p)[i] = (float)v;
    break;
  default:
    ((double *)p)[i] = (double)v;
    break;
  }
}

__device__ __forceinline__ int64_t am_sat(double v, double lo, double hi) {
  return v != v    ? 0
         : v <= lo ? (int64_t)lo
         : v >= hi ? (int64_t)hi
                   : (int64_t)v;
}

/* As the CPU's am_store_f64: floats to integers truncate and saturate to
 * the target's range (NaN: 0); f16/bf16 round from float32. */
__device__ __forceinline__ void am_st(void *p, int64_t i, int t, double v) {
  switch (t) {
  case AM_BOOL:
    ((uint8_t *)p)[i] = v != 0;
    break;
  case AM_U8:
    ((uint8_t *)p)[i] = (uint8_t)am_sat(v, 0, 255);
    break;
  case AM_I8:
    ((int8_t *)p)[i] = (int8_t)am_sat(v, -128, 127);
    break;
  case AM_U32:
    ((uint32_t *)p)[i] = (uint32_t)am_sat(v, 0, 4294967295.0);
    break;
  case AM_I32:
    ((int32_t *)p)[i] = (int32_t)am_sat(v, -2147483648.0, 2147483647.0);
    break;
  case AM_I64:
    ((int64_t *)p)[i] = am_f2i(v);
    break;
  case AM_F16:
    ((__half *)p)[i] = __float2half_rn((float)v);
    break;
  case AM_BF16:
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v);
    break;
  case AM_F32:
    ((float *)p)[i] = (float)v;
    break;
  default:
    ((double *)p)[i] = v;
    break;
  }
}
#endif
