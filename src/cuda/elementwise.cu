/*
 * elementwise.cu — unary and binary elementwise ops, activations, where
 * and float conversions, with the CPU's semantics (src/ops/elementwise.c,
 * activation.c):
 *  - compute types as on the CPU: float for f16/bf16/f32 (rounded once on
 *    store), double for f64, int64 for bool and the integers (arithmetic
 *    through uint64 so that it wraps; stores keep the low bits);
 *  - two paths: a vectorized one (16-byte loads and stores, grid-stride)
 *    for contiguous f32/bf16/f16 operands of the output's size or a single
 *    broadcast value, templated on the storage type; and a strided one
 *    (any broadcast/strides, up to 8 collapsed dims) templated on the
 *    compute type with the storage dtype switched at run time, which keeps
 *    the number of instantiations at ops x 3.
 * Products that feed an addition use __fmul_rn/__dmul_rn where the CPU
 * rounds them separately, so that nvcc's FMA contraction does not change
 * results.
 */
#include "cuda_internal.h"
#include "dtype.cuh"
#include "elementwise.h"

#include <type_traits>

namespace {

/* ------------------------------------------------------------ op traits */

__host__ __device__ constexpr bool is_float_only(int op) {
  return (op >= AM_CU_EXP && op <= AM_CU_SOFTPLUS) || op == AM_CU_DIV;
}
__host__ __device__ constexpr int nin_of(int op) {
  return op >= AM_CU_ADD ? 2 : 1;
}
__host__ __device__ constexpr bool out_bool(int op) {
  return op == AM_CU_LOGICAL_NOT || op >= AM_CU_EQUAL;
}

/* float / double overloads of the math functions used below */
#define MATH1(NAME, FF, DF)                                                    \
  __device__ __forceinline__ float NAME(float x) {                             \
    return FF(x);                                                              \
  }                                                                            \
  __device__ __forceinline__ double NAME(double x) {                           \
    return DF(x);                                                              \
  }
MATH1(m_exp, expf, exp)
MATH1(m_expm1, expm1f, expm1)
MATH1(m_log, logf, log)
MATH1(m_log1p, log1pf, log1p)
MATH1(m_sqrt, sqrtf, sqrt)
MATH1(m_sin, sinf, sin)
MATH1(m_cos, cosf, cos)
MATH1(m_tanh, tanhf, tanh)
MATH1(m_erf, erff, erf)
MATH1(m_fabs, fabsf, fabs)
MATH1(m_floor, floorf, floor)
MATH1(m_ceil, ceilf, ceil)
MATH1(m_rint, rintf, rint)
#undef MATH1
__device__ __forceinline__ float m_pow(float x, float y) {
  return powf(x, y);
}
__device__ __forceinline__ double m_pow(double x, double y) {
  return pow(x, y);
}
__device__ __forceinline__ float m_fmod(float x, float y) {
  return fmodf(x, y);
}
__device__ __forceinline__ double m_fmod(double x, double y) {
  return fmod(x, y);
}
/* x**y for integers, exact modulo 2^64; a negative exponent gives 0
 * except for bases 1 and -1 (elementwise.c's i_pow). */
__device__ __forceinline__ int64_t i_pow(int64_t b, int64_t e) {
  if (e < 0) return b == 1 ? 1 : b == -1 ? ((e & 1) ? -1 : 1) : 0;
  uint64_t r = 1, x = (uint64_t)b;
  for (; e; e >>= 1) {
    if (e & 1) r *= x;
    x *= x;
  }
  return (int64_t)r;
}

/* Python remainder (divisor's sign); 0 for divisors 0 and -1. */
__device__ __forceinline__ int64_t i_rem(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  int64_t r = a % b;
  return (r != 0 && (r < 0) != (b < 0)) ? r + b : r;
}

/* NumPy's float remainder: fmod with the divisor's sign; b == 0: nan. */
template <class C> __device__ __forceinline__ C f_rem(C a, C b) {
  C m = m_fmod(a, b);
  if (b == 0) return m;
  if (m != 0) {
    if ((b < 0) != (m < 0)) m += b;
  } else {
    m = copysign((C)0, b);
  }
  return m;
}

#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_C 0.044715
#define SQRT1_2 0.70710678118654752440

/* The activations as activation.c computes them: float32 in the steps of
 * its block kernels, float64 in act_f64's expressions. */
template <int OP, class C> __device__ __forceinline__ C act(C x) {
  constexpr bool F = std::is_same<C, float>::value;
  if constexpr (OP == AM_CU_SILU) {
    if constexpr (F)
      return x * (1.0f / (1.0f + expf(-x)));
    else
      return x / (1 + exp(-x));
  } else if constexpr (OP == AM_CU_GELU) {
    if constexpr (F) {
      float t = erff(x * (float)SQRT1_2);
      return (t + 1.0f) * 0.5f * x;
    } else {
      return 0.5 * x * (1 + erf(x * SQRT1_2));
    }
  } else if constexpr (OP == AM_CU_GELU_TANH) {
    if constexpr (F) {
      float t = __fmul_rn(x, x);
      t = (t + (float)(1 / GELU_C)) * (float)(GELU_C * SQRT_2_OVER_PI) * x;
      t = tanhf(t);
      return (t + 1.0f) * 0.5f * x;
    } else {
      double x3 = __dmul_rn(__dmul_rn(__dmul_rn(GELU_C, x), x), x);
      return 0.5 * x * (1 + tanh(__dmul_rn(SQRT_2_OVER_PI, x + x3)));
    }
  } else { /* softplus: max(x, 0) + log1p(exp(-|x|)), never overflows */
    C t = m_log1p(m_exp(-m_fabs(x)));
    return t + (x > 0 ? x : (C)0);
  }
}

/* The result of op on x (and y): C, or bool for comparisons. */
template <int OP, class C>
__device__ __forceinline__ auto apply(C x, C y)
    -> std::conditional_t<out_bool(OP), bool, C> {
  constexpr bool I = std::is_integral<C>::value;
  (void)y;
  if constexpr (OP == AM_CU_NEG) {
    if constexpr (I)
      return (C)(0ull - (uint64_t)x);
    else
      return -x;
  } else if constexpr (OP == AM_CU_ABS) {
    if constexpr (I)
      return x < 0 ? (C)(0ull - (uint64_t)x) : x;
    else
      return m_fabs(x);
  } else if constexpr (OP == AM_CU_SIGN) {
    if constexpr (I)
      return (C)((x > 0) - (x < 0));
    else
      return x > 0 ? (C)1 : x < 0 ? (C)-1 : x == 0 ? (C)0 : x;
  } else if constexpr (OP == AM_CU_SQUARE) {
    if constexpr (I)
      return (C)((uint64_t)x * (uint64_t)x);
    else
      return x * x;
  } else if constexpr (OP == AM_CU_FLOOR) {
    if constexpr (I)
      return x;
    else
      return m_floor(x);
  } else if constexpr (OP == AM_CU_CEIL) {
    if constexpr (I)
      return x;
    else
      return m_ceil(x);
  } else if constexpr (OP == AM_CU_ROUND) { /* half to even */
    if constexpr (I)
      return x;
    else
      return m_rint(x);
  } else if constexpr (OP == AM_CU_EXP) {
    return m_exp(x);
  } else if constexpr (OP == AM_CU_EXPM1) {
    return m_expm1(x);
  } else if constexpr (OP == AM_CU_LOG) {
    return m_log(x);
  } else if constexpr (OP == AM_CU_LOG1P) {
    return m_log1p(x);
  } else if constexpr (OP == AM_CU_SQRT) {
    return m_sqrt(x);
  } else if constexpr (OP == AM_CU_RSQRT) { /* 1 / sqrt, as the CPU */
    return (C)1 / m_sqrt(x);
  } else if constexpr (OP == AM_CU_SIN) {
    return m_sin(x);
  } else if constexpr (OP == AM_CU_COS) {
    return m_cos(x);
  } else if constexpr (OP == AM_CU_TANH) {
    return m_tanh(x);
  } else if constexpr (OP == AM_CU_SIGMOID) {
    return (C)1 / ((C)1 + m_exp(-x));
  } else if constexpr (OP == AM_CU_ERF) {
    return m_erf(x);
  } else if constexpr (OP >= AM_CU_SILU && OP <= AM_CU_SOFTPLUS) {
    return act<OP, C>(x);
  } else if constexpr (OP == AM_CU_LOGICAL_NOT) {
    return x == 0;
  } else if constexpr (OP == AM_CU_ADD) {
    if constexpr (I)
      return (C)((uint64_t)x + (uint64_t)y);
    else
      return x + y;
  } else if constexpr (OP == AM_CU_SUB) {
    if constexpr (I)
      return (C)((uint64_t)x - (uint64_t)y);
    else
      return x - y;
  } else if constexpr (OP == AM_CU_MUL) {
    if constexpr (I)
      return (C)((uint64_t)x * (uint64_t)y);
    else
      return x * y;
  } else if constexpr (OP == AM_CU_POW) {
    if constexpr (I)
      return i_pow(x, y);
    else
      return m_pow(x, y);
  } else if constexpr (OP == AM_CU_MAXIMUM) { /* nan propagates */
    return (x > y || x != x) ? x : y;
  } else if constexpr (OP == AM_CU_MINIMUM) {
    return (x < y || x != x) ? x : y;
  } else if constexpr (OP == AM_CU_REMAINDER) {
    if constexpr (I)
      return i_rem(x, y);
    else
      return f_rem(x, y);
  } else if constexpr (OP == AM_CU_DIV) {
    return x / y;
  } else if constexpr (OP == AM_CU_EQUAL) {
    return x == y;
  } else if constexpr (OP == AM_CU_NOT_EQUAL) {
    return x != y;
  } else if constexpr (OP == AM_CU_LESS) {
    return x < y;
  } else if constexpr (OP == AM_CU_LESS_EQUAL) {
    return x <= y;
  } else if constexpr (OP == AM_CU_GREATER) {
    return x > y;
  } else if constexpr (OP == AM_CU_GREATER_EQUAL) {
    return x >= y;
  } else if constexpr (OP == AM_CU_LOGICAL_AND) {
    return x != 0 && y != 0;
  } else {
    static_assert(OP == AM_CU_LOGICAL_OR, "unhandled op");
    return x != 0 || y != 0;
  }
}

/* ------------------------------------------------- storage <-> compute */

/* Loads element i of dtype t as compute type C; only dtypes whose
 * compute type is C reach each one. */
template <class C>
__device__ __forceinline__ C ld(const void *p, int64_t i, int t);
template <>
__device__ __forceinline__ float ld<float>(const void *p, int64_t i, int t) {
  if (t == AM_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
  if (t == AM_F16) return __half2float(((const __half *)p)[i]);
  return ((const float *)p)[i];
}
template <>
__device__ __forceinline__ double ld<double>(const void *p, int64_t i, int) {
  return ((const double *)p)[i];
}
template <>
__device__ __forceinline__ int64_t ld<int64_t>(const void *p, int64_t i,
                                               int t) {
  return am_ld_i64(p, i, t);
}

__device__ __forceinline__ void st(void *p, int64_t i, int t, float v) {
  if (t == AM_BF16)
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
  else if (t == AM_F16)
    ((__half *)p)[i] = __float2half_rn(v);
  else
    ((float *)p)[i] = v;
}
__device__ __forceinline__ void st(void *p, int64_t i, int, double v) {
  ((double *)p)[i] = v;
}
__device__ __forceinline__ void st(void *p, int64_t i, int t, int64_t v) {
  am_st_i64(p, i, t, v);
}
__device__ __forceinline__ void st(void *p, int64_t i, int, bool v) {
  ((uint8_t *)p)[i] = v;
}

/* Raw storage of the vectorized path: float, or the bits of bf16/f16. */
template <int DT> struct raw { using T = uint16_t; };
template <> struct raw<AM_F32> { using T = float; };
template <int DT> __device__ __forceinline__ float to_f(typename raw<DT>::T v) {
  if constexpr (DT == AM_F32)
    return v;
  else if constexpr (DT == AM_BF16)
    return __uint_as_float((uint32_t)v << 16);
  else
    return __half2float(__ushort_as_half(v));
}
template <int DT>
__device__ __forceinline__ typename raw<DT>::T from_f(float v) {
  if constexpr (DT == AM_F32)
    return v;
  else if constexpr (DT == AM_BF16)
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  else
    return __half_as_ushort(__float2half_rn(v));
}

/* ------------------------------------------------------------- indexing */

struct strided {
  int ndim;
  bool small; /* every size and offset fits 32 bits: cheaper divisions */
  int64_t shape[AM_CU_EW_DIMS];
  int64_t st[3][AM_CU_EW_DIMS];
};

/* Offsets (elements) of the first N operands at row-major output index i.
 * Integer division dominates the strided path's cost; 32-bit division is
 * a few times cheaper than 64-bit, hence the `small` branch (uniform). */
template <int N>
__device__ __forceinline__ void offsets(const strided &s, int64_t i,
                                        int64_t (&o)[N]) {
#pragma unroll
  for (int k = 0; k < N; k++)
    o[k] = 0;
  if (s.ndim == 0) return;
  if (s.small) {
    uint32_t r = (uint32_t)i;
    int32_t acc[N];
#pragma unroll
    for (int k = 0; k < N; k++)
      acc[k] = 0;
    for (int d = s.ndim - 1; d > 0; d--) {
      uint32_t sh = (uint32_t)s.shape[d], q = r / sh, c = r - q * sh;
#pragma unroll
      for (int k = 0; k < N; k++)
        acc[k] += (int32_t)c * (int32_t)s.st[k][d];
      r = q;
    }
#pragma unroll
    for (int k = 0; k < N; k++)
      o[k] = (int64_t)acc[k] + (int64_t)r * s.st[k][0];
    return;
  }
  int64_t r = i;
  for (int d = s.ndim - 1; d > 0; d--) {
    int64_t q = r / s.shape[d], c = r - q * s.shape[d];
#pragma unroll
    for (int k = 0; k < N; k++)
      o[k] += c * s.st[k][d];
    r = q;
  }
#pragma unroll
  for (int k = 0; k < N; k++)
    o[k] += r * s.st[k][0];
}

/* ------------------------------------------------------------- kernels */

template <int OP, class C>
__global__ void __launch_bounds__(256)
    ew_strided_kernel(strided s, const void *a, const void *b, int in_dt,
                      void *out, int out_dt, int64_t n) {
  constexpr int N = nin_of(OP);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t o[N];
    offsets<N>(s, i, o);
    C x = ld<C>(a, o[0], in_dt), y = x;
    if constexpr (N == 2) y = ld<C>(b, o[N - 1], in_dt);
    st(out, i, out_dt, apply<OP, C>(x, y));
  }
}

/* Contiguous operands: 16 bytes per thread and step (V elements) while
 * every pointer is 16-byte aligned (vec), then a scalar tail. A step of 0
 * reads the single value at [0], loaded once. */
template <int OP, int DT>
__global__ void __launch_bounds__(256)
    ew_contig_kernel(const typename raw<DT>::T *a, int sa,
                     const typename raw<DT>::T *b, int sb,
                     typename raw<DT>::T *out, int64_t n, int vec) {
  using R = typename raw<DT>::T;
  constexpr int V = 16 / sizeof(R);
  constexpr int N = nin_of(OP);
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t nt = (int64_t)gridDim.x * blockDim.x;
  const float a0 = sa ? 0.0f : to_f<DT>(a[0]);
  const float b0 = (N == 2 && !sb) ? to_f<DT>(b[0]) : 0.0f;
  union pack {
    uint4 u;
    R r[V];
  };
  int64_t i0 = 0;
  if (vec) {
    const int64_t nv = n / V;
    for (int64_t j = tid; j < nv; j += nt) {
      pack pa, pb, po;
      if (sa) pa.u = reinterpret_cast<const uint4 *>(a)[j];
      if (N == 2 && sb) pb.u = reinterpret_cast<const uint4 *>(b)[j];
#pragma unroll
      for (int k = 0; k < V; k++) {
        float x = sa ? to_f<DT>(pa.r[k]) : a0;
        float y = x;
        if constexpr (N == 2) y = sb ? to_f<DT>(pb.r[k]) : b0;
        po.r[k] = from_f<DT>(apply<OP, float>(x, y));
      }
      reinterpret_cast<uint4 *>(out)[j] = po.u;
    }
    i0 = nv * V;
  }
  for (int64_t i = i0 + tid; i < n; i += nt) {
    float x = sa ? to_f<DT>(a[i]) : a0;
    float y = x;
    if constexpr (N == 2) y = sb ? to_f<DT>(b[i]) : b0;
    out[i] = from_f<DT>(apply<OP, float>(x, y));
  }
}

/* Truth of element i of cond (dtype t), as elementwise.c's truth_block:
 * nan is true, -0.0 false (f16/bf16 tested on their bits). */
__device__ __forceinline__ bool truth(const void *p, int64_t i, int t) {
  switch (t) {
  case AM_BOOL:
  case AM_U8:
  case AM_I8:
    return ((const uint8_t *)p)[i] != 0;
  case AM_U32:
  case AM_I32:
    return ((const uint32_t *)p)[i] != 0;
  case AM_I64:
    return ((const uint64_t *)p)[i] != 0;
  case AM_F16:
  case AM_BF16:
    return (((const uint16_t *)p)[i] & 0x7fff) != 0;
  case AM_F32:
    return ((const float *)p)[i] != 0;
  default:
    return ((const double *)p)[i] != 0;
  }
}

template <class E>
__global__ void __launch_bounds__(256)
    where_kernel(strided s, const void *c, int ct, const E *x, const E *y,
                 E *out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t o[3];
    offsets<3>(s, i, o);
    out[i] = truth(c, o[0], ct) ? x[o[1]] : y[o[2]];
  }
}

template <int SD, int DD>
__global__ void __launch_bounds__(256)
    convert_kernel(const typename raw<SD>::T *src, typename raw<DD>::T *dst,
                   int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = from_f<DD>(to_f<SD>(src[i]));
}

/* ------------------------------------------------------------ launching */

constexpr int THREADS = 256;

unsigned grid_for(int64_t work) {
  int64_t b = (work + THREADS - 1) / THREADS;
  /* grid-stride beyond ~ 32 blocks of 256 per SM on an H100 */
  if (b > 4096) b = 4096;
  return (unsigned)(b < 1 ? 1 : b);
}

strided to_strided(const am_cu_ew_shape *v, int nops, int64_t n) {
  strided s = {};
  s.ndim = v->ndim;
  bool small = n < INT32_MAX;
  for (int d = 0; d < v->ndim; d++) {
    s.shape[d] = v->shape[d];
    for (int k = 0; k < nops; k++) {
      s.st[k][d] = v->strides[k][d];
      /* the largest offset along d must fit an int32 too */
      int64_t span = v->strides[k][d] * (v->shape[d] - 1);
      if (span > INT32_MAX / 2 || span < -(INT32_MAX / 2)) small = false;
    }
  }
  /* per-operand total offset: sum of per-dim spans, bounded by nops*8*(2^30)
   * only if each is below 2^30 / 8: keep it simple and strict */
  for (int k = 0; k < nops && small; k++) {
    int64_t tot = 0;
    for (int d = 0; d < v->ndim; d++) {
      int64_t span = v->strides[k][d] * (v->shape[d] - 1);
      tot += span < 0 ? -span : span;
    }
    if (tot > INT32_MAX / 2) small = false;
  }
  s.small = small;
  return s;
}

enum { CT_F32, CT_F64, CT_I64 };
int ct_of(am_dtype t) {
  return t == AM_F64                                    ? CT_F64
         : (t == AM_F32 || t == AM_BF16 || t == AM_F16) ? CT_F32
                                                        : CT_I64;
}

template <int OP, class C>
am_status go_strided(const strided &s, const void *a, const void *b,
                     am_dtype in_dt, void *out, am_dtype out_dt, int64_t n) {
  ew_strided_kernel<OP, C>
      <<<grid_for(n), THREADS, 0, am_cuda_resolve_stream(NULL)>>>(
          s, a, b, in_dt, out, out_dt, n);
  return am_cuda_check(cudaGetLastError(), "elementwise kernel launch");
}

template <int OP>
am_status launch_strided(const strided &s, const void *a, const void *b,
                         am_dtype in_dt, void *out, am_dtype out_dt,
                         int64_t n) {
  switch (ct_of(in_dt)) {
  case CT_F32:
    return go_strided<OP, float>(s, a, b, in_dt, out, out_dt, n);
  case CT_F64:
    return go_strided<OP, double>(s, a, b, in_dt, out, out_dt, n);
  default:
    if constexpr (!is_float_only(OP))
      return go_strided<OP, int64_t>(s, a, b, in_dt, out, out_dt, n);
    return am_cuda_fail(AM_ERR_DTYPE, "elementwise op %d: integer input", OP);
  }
}

template <int OP, int DT>
am_status go_contig(const void *a, int sa, const void *b, int sb, void *out,
                    int64_t n) {
  using R = typename raw<DT>::T;
  auto al = [](const void *p) { return ((uintptr_t)p & 15) == 0; };
  bool vec = al(out) && (!sa || al(a)) && (nin_of(OP) == 1 || !sb || al(b));
  int64_t work = vec ? (n + 16 / sizeof(R) - 1) / (16 / sizeof(R)) : n;
  ew_contig_kernel<OP, DT>
      <<<grid_for(work), THREADS, 0, am_cuda_resolve_stream(NULL)>>>(
          (const R *)a, sa, (const R *)b, sb, (R *)out, n, vec);
  return am_cuda_check(cudaGetLastError(), "elementwise kernel launch");
}

template <int OP>
am_status launch_contig(const void *a, int sa, const void *b, int sb, void *out,
                        am_dtype dt, int64_t n) {
  if constexpr (out_bool(OP)) {
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "no contiguous path for op %d", OP);
  } else {
    switch (dt) {
    case AM_F32:
      return go_contig<OP, AM_F32>(a, sa, b, sb, out, n);
    case AM_BF16:
      return go_contig<OP, AM_BF16>(a, sa, b, sb, out, n);
    case AM_F16:
      return go_contig<OP, AM_F16>(a, sa, b, sb, out, n);
    default:
      return am_cuda_fail(AM_ERR_UNSUPPORTED, "no contiguous path for dtype %d",
                          (int)dt);
    }
  }
}

#define EW_OPS(X)                                                              \
  X(AM_CU_NEG)                                                                 \
  X(AM_CU_ABS)                                                                 \
  X(AM_CU_SIGN)                                                                \
  X(AM_CU_SQUARE)                                                              \
  X(AM_CU_FLOOR)                                                               \
  X(AM_CU_CEIL)                                                                \
  X(AM_CU_ROUND)                                                               \
  X(AM_CU_EXP)                                                                 \
  X(AM_CU_EXPM1)                                                               \
  X(AM_CU_LOG)                                                                 \
  X(AM_CU_LOG1P)                                                               \
  X(AM_CU_SQRT)                                                                \
  X(AM_CU_RSQRT)                                                               \
  X(AM_CU_SIN)                                                                 \
  X(AM_CU_COS)                                                                 \
  X(AM_CU_TANH)                                                                \
  X(AM_CU_SIGMOID)                                                             \
  X(AM_CU_ERF)                                                                 \
  X(AM_CU_SILU)                                                                \
  X(AM_CU_GELU)                                                                \
  X(AM_CU_GELU_TANH)                                                           \
  X(AM_CU_SOFTPLUS)                                                            \
  X(AM_CU_LOGICAL_NOT)                                                         \
  X(AM_CU_ADD)                                                                 \
  X(AM_CU_SUB)                                                                 \
  X(AM_CU_MUL)                                                                 \
  X(AM_CU_POW)                                                                 \
  X(AM_CU_MAXIMUM)                                                             \
  X(AM_CU_MINIMUM)                                                             \
  X(AM_CU_REMAINDER)                                                           \
  X(AM_CU_DIV)                                                                 \
  X(AM_CU_EQUAL)                                                               \
  X(AM_CU_NOT_EQUAL)                                                           \
  X(AM_CU_LESS)                                                                \
  X(AM_CU_LESS_EQUAL)                                                          \
  X(AM_CU_GREATER)                                                             \
  X(AM_CU_GREATER_EQUAL)                                                       \
  X(AM_CU_LOGICAL_AND)                                                         \
  X(AM_CU_LOGICAL_OR)

} // namespace

extern "C" am_status am_cu_ew_contig(int op, const void *a, int sa,
                                     const void *b, int sb, void *out,
                                     am_dtype dt, int64_t n) {
  if (n <= 0) return AM_OK;
  switch (op) {
#define CASE(OP)                                                               \
  case OP:                                                                     \
    return launch_contig<OP>(a, sa, b, sb, out, dt, n);
    EW_OPS(CASE)
#undef CASE
  default:
    return am_cuda_fail(AM_ERR_INTERNAL, "elementwise: bad op %d", op);
  }
}

extern "C" am_status am_cu_ew_strided(int op, const am_cu_ew_shape *v,
                                      const void *a, const void *b,
                                      am_dtype in_dt, void *out,
                                      am_dtype out_dt, int64_t n) {
  if (n <= 0) return AM_OK;
  if ((unsigned)op >= AM_CU_EW_COUNT)
    return am_cuda_fail(AM_ERR_INTERNAL, "elementwise: bad op %d", op);
  strided s = to_strided(v, op >= AM_CU_ADD ? 2 : 1, n);
  switch (op) {
#define CASE(OP)                                                               \
  case OP:                                                                     \
    return launch_strided<OP>(s, a, b, in_dt, out, out_dt, n);
    EW_OPS(CASE)
#undef CASE
  default:
    return am_cuda_fail(AM_ERR_INTERNAL, "elementwise: bad op %d", op);
  }
}

extern "C" am_status am_cu_where(const am_cu_ew_shape *v, const void *cond,
                                 am_dtype cond_dt, const void *x, const void *y,
                                 size_t es, void *out, int64_t n) {
  if (n <= 0) return AM_OK;
  strided s = to_strided(v, 3, n);
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  unsigned g = grid_for(n);
  switch (es) {
  case 1:
    where_kernel<uint8_t>
        <<<g, THREADS, 0, st>>>(s, cond, cond_dt, (const uint8_t *)x,
                                (const uint8_t *)y, (uint8_t *)out, n);
    break;
  case 2:
    where_kernel<uint16_t>
        <<<g, THREADS, 0, st>>>(s, cond, cond_dt, (const uint16_t *)x,
                                (const uint16_t *)y, (uint16_t *)out, n);
    break;
  case 4:
    where_kernel<uint32_t>
        <<<g, THREADS, 0, st>>>(s, cond, cond_dt, (const uint32_t *)x,
                                (const uint32_t *)y, (uint32_t *)out, n);
    break;
  case 8:
    where_kernel<uint64_t>
        <<<g, THREADS, 0, st>>>(s, cond, cond_dt, (const uint64_t *)x,
                                (const uint64_t *)y, (uint64_t *)out, n);
    break;
  default:
    return am_cuda_fail(AM_ERR_INTERNAL, "where: element size %zu", es);
  }
  return am_cuda_check(cudaGetLastError(), "where kernel launch");
}

namespace {
template <int SD, int DD>
am_status go_convert(const void *src, void *dst, int64_t n) {
  convert_kernel<SD, DD>
      <<<grid_for(n), THREADS, 0, am_cuda_resolve_stream(NULL)>>>(
          (const typename raw<SD>::T *)src, (typename raw<DD>::T *)dst, n);
  return am_cuda_check(cudaGetLastError(), "convert kernel launch");
}
} // namespace

extern "C" am_status am_cu_convert_float(const void *src, am_dtype st,
                                         void *dst, am_dtype dt, int64_t n) {
  if (n <= 0) return AM_OK;
  if (st == AM_F32 && dt == AM_BF16)
    return go_convert<AM_F32, AM_BF16>(src, dst, n);
  if (st == AM_BF16 && dt == AM_F32)
    return go_convert<AM_BF16, AM_F32>(src, dst, n);
  if (st == AM_F32 && dt == AM_F16)
    return go_convert<AM_F32, AM_F16>(src, dst, n);
  if (st == AM_F16 && dt == AM_F32)
    return go_convert<AM_F16, AM_F32>(src, dst, n);
  if (st == AM_BF16 && dt == AM_F16)
    return go_convert<AM_BF16, AM_F16>(src, dst, n);
  if (st == AM_F16 && dt == AM_BF16)
    return go_convert<AM_F16, AM_BF16>(src, dst, n);
  return am_cuda_fail(AM_ERR_UNSUPPORTED, "convert: dtypes %d -> %d", (int)st,
                      (int)dt);
}
