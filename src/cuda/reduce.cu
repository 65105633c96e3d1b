/* reduce.cu — reductions over a set of axes and cumulative sums.
 *
 * Reductions: a group of tpr threads (a power of two: 1, 32, 256 or
 * 1024) owns one output; its threads stride over the reduced elements
 * (contiguous rows: coalesced loads), then fold their states in a
 * shared-memory tree. The states and their merges follow src/ops/reduce.c
 * exactly where results are exact (integers modulo 2^64, max/min with NaN
 * winning, argmax/argmin taking the first index, NaN first), and
 * accumulate floats in double (float32 for products, as the CPU).
 * Kernels are templates over the storage type, so loads are typed.
 *
 * Cumsum: a warp per lane, scanning 32 elements at a time with shuffles
 * and carrying the total; a thread per lane for short lanes.
 */
#include "cuda_internal.h"
#include "dtype.cuh"
#include "reduce.h"

#include <math.h>
#include <type_traits>

namespace {

struct bool_t {
  uint8_t v;
};

/* ---- typed loads ---- */
__device__ __forceinline__ int64_t ldi(bool_t v) {
  return v.v != 0;
}
__device__ __forceinline__ int64_t ldi(uint8_t v) {
  return v;
}
__device__ __forceinline__ int64_t ldi(int8_t v) {
  return v;
}
__device__ __forceinline__ int64_t ldi(uint32_t v) {
  return v;
}
__device__ __forceinline__ int64_t ldi(int32_t v) {
  return v;
}
__device__ __forceinline__ int64_t ldi(int64_t v) {
  return v;
}
template <class T> __device__ __forceinline__ double ldf(T v) {
  return (double)ldi(v);
}
__device__ __forceinline__ double ldf(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ double ldf(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ double ldf(float v) {
  return v;
}
__device__ __forceinline__ double ldf(double v) {
  return v;
}

template <class T> struct is_int_t {
  static constexpr bool value = !std::is_same<T, __half>::value &&
                                !std::is_same<T, __nv_bfloat16>::value &&
                                !std::is_same<T, float>::value &&
                                !std::is_same<T, double>::value;
};

/* ---- states ---- */
struct lse_acc {
  double m, s;
};
template <class V> struct arg_acc {
  V v;
  int64_t i; /* -1: empty */
};

__device__ __forceinline__ void lse_add(lse_acc &a, double m, double s) {
  if (a.m != a.m) return;
  if (m != m) {
    a.m = m;
    return;
  }
  double M = m > a.m ? m : a.m;
  if (M == -INFINITY) return;
  if (M == INFINITY) {
    a.m = M;
    a.s = 1;
    return;
  }
  a.s = a.s * exp(a.m - M) + s * exp(m - M);
  a.m = M;
}

__device__ __forceinline__ void lse_add1(lse_acc &a, double x) {
  if (isfinite(x) && isfinite(a.m)) {
    if (x <= a.m) {
      a.s += exp(x - a.m);
    } else {
      a.s = a.s * exp(a.m - x) + 1;
      a.m = x;
    }
  } else {
    lse_add(a, x, 1);
  }
}

template <class V> __device__ __forceinline__ bool isnan_v(V v) {
  return v != v;
}

/* b beats a: NaN first, then the better value, then the lower index. */
template <bool MAX, class V>
__device__ __forceinline__ bool arg_better(const arg_acc<V> &b,
                                           const arg_acc<V> &a) {
  if (b.i < 0) return false;
  if (a.i < 0) return true;
  bool an = isnan_v(a.v), bn = isnan_v(b.v);
  if (an || bn) return an && bn ? b.i < a.i : bn;
  if (b.v == a.v) return b.i < a.i;
  return MAX ? b.v > a.v : b.v < a.v;
}

template <class T>
using prod_acc_t = typename std::conditional<std::is_same<T, double>::value,
                                             double, float>::type;

/* Op<KIND, T>: Acc, init, fold (one element at reduced index r), comb
 * (merge two states) and store (finalize into out[i] of dtype ot). */
template <int K, class T, bool I = is_int_t<T>::value> struct Op;

#define SIMPLE_OP(KIND, ISINT, ACC, INIT, FOLD, COMB, STORE)                   \
  template <class T> struct Op<KIND, T, ISINT> {                               \
    typedef ACC Acc;                                                           \
    static __device__ __forceinline__ Acc init() {                             \
      return INIT;                                                             \
    }                                                                          \
    static __device__ __forceinline__ void fold(Acc &a, T x, int64_t r) {      \
      FOLD;                                                                    \
    }                                                                          \
    static __device__ __forceinline__ void comb(Acc &a, const Acc &b) {        \
      COMB;                                                                    \
    }                                                                          \
    static __device__ __forceinline__ void store(void *o, int64_t i, int ot,   \
                                                 const Acc &a, int64_t n) {    \
      STORE;                                                                   \
    }                                                                          \
  };

/* integers: modulo 2^64, wrapped to the output type on store */
SIMPLE_OP(AM_CUDA_RED_SUM, true, uint64_t, 0, a += (uint64_t)ldi(x), a += b,
          am_st_i64(o, i, ot, (int64_t)a))
SIMPLE_OP(AM_CUDA_RED_SUM, false, double, 0, a += ldf(x), a += b,
          am_st(o, i, ot, a))
SIMPLE_OP(AM_CUDA_RED_MEAN, true, double, 0, a += ldf(x), a += b,
          am_st(o, i, ot, n ? a / (double)n : (double)NAN))
SIMPLE_OP(AM_CUDA_RED_MEAN, false, double, 0, a += ldf(x), a += b,
          am_st(o, i, ot, n ? a / (double)n : (double)NAN))
SIMPLE_OP(AM_CUDA_RED_PROD, true, uint64_t, 1, a *= (uint64_t)ldi(x), a *= b,
          am_st_i64(o, i, ot, (int64_t)a))
/* float32 products for float16/bfloat16/float32, as the CPU (overflow to
 * inf at the same magnitudes) */
SIMPLE_OP(AM_CUDA_RED_PROD, false, prod_acc_t<T>, 1, a *= (Acc)ldf(x), a *= b,
          am_st(o, i, ot, (double)a))
SIMPLE_OP(AM_CUDA_RED_MAX, true, int64_t, INT64_MIN,
          a = ldi(x) > a ? ldi(x) : a, a = b > a ? b : a,
          am_st_i64(o, i, ot, a))
SIMPLE_OP(AM_CUDA_RED_MIN, true, int64_t, INT64_MAX,
          a = ldi(x) < a ? ldi(x) : a, a = b < a ? b : a,
          am_st_i64(o, i, ot, a))
/* NaN wins: once a is NaN nothing replaces it */
SIMPLE_OP(AM_CUDA_RED_MAX, false, double, -INFINITY, double v = ldf(x);
          if (v > a || v != v) a = v, if (b > a || b != b) a = b,
          am_st(o, i, ot, a))
SIMPLE_OP(AM_CUDA_RED_MIN, false, double, INFINITY, double v = ldf(x);
          if (v < a || v != v) a = v, if (b < a || b != b) a = b,
          am_st(o, i, ot, a))
SIMPLE_OP(AM_CUDA_RED_ALL, true, int, 1, a &= ldi(x) != 0, a &= b,
          ((uint8_t *)o)[i] = (uint8_t)a)
SIMPLE_OP(AM_CUDA_RED_ALL, false, int, 1, a &= ldf(x) != 0, a &= b,
          ((uint8_t *)o)[i] = (uint8_t)a)
SIMPLE_OP(AM_CUDA_RED_ANY, true, int, 0, a |= ldi(x) != 0, a |= b,
          ((uint8_t *)o)[i] = (uint8_t)a)
SIMPLE_OP(AM_CUDA_RED_ANY, false, int, 0, a |= ldf(x) != 0, a |= b,
          ((uint8_t *)o)[i] = (uint8_t)a)

/* logsumexp: (max, sum of exp(x - max)) in double; non-float64 inputs
 * are rounded to float32 first, as the CPU computes in float32 for them */
template <class T, bool I> struct Op<AM_CUDA_RED_LSE, T, I> {
  typedef lse_acc Acc;
  static __device__ __forceinline__ Acc init() {
    return {-INFINITY, 0};
  }
  static __device__ __forceinline__ void fold(Acc &a, T x, int64_t r) {
    double v = ldf(x);
    if (!std::is_same<T, double>::value) v = (double)(float)v;
    lse_add1(a, v);
  }
  static __device__ __forceinline__ void comb(Acc &a, const Acc &b) {
    lse_add(a, b.m, b.s);
  }
  static __device__ __forceinline__ void store(void *o, int64_t i, int ot,
                                               const Acc &a, int64_t n) {
    am_st(o, i, ot, isfinite(a.m) ? a.m + log(a.s) : a.m);
  }
};

template <bool MAX, class T> struct ArgOp {
  typedef
      typename std::conditional<is_int_t<T>::value, int64_t, double>::type V;
  typedef arg_acc<V> Acc;
  static __device__ __forceinline__ V val(T x) {
    if constexpr (is_int_t<T>::value)
      return ldi(x);
    else
      return ldf(x);
  }
  static __device__ __forceinline__ Acc init() {
    return {V(0), -1};
  }
  static __device__ __forceinline__ void fold(Acc &a, T x, int64_t r) {
    Acc b = {val(x), r};
    if (arg_better<MAX>(b, a)) a = b;
  }
  static __device__ __forceinline__ void comb(Acc &a, const Acc &b) {
    if (arg_better<MAX>(b, a)) a = b;
  }
  static __device__ __forceinline__ void store(void *o, int64_t i, int ot,
                                               const Acc &a, int64_t n) {
    ((uint32_t *)o)[i] = (uint32_t)(a.i < 0 ? 0 : a.i);
  }
};
template <class T, bool I>
struct Op<AM_CUDA_RED_ARGMAX, T, I> : ArgOp<true, T> {};
template <class T, bool I>
struct Op<AM_CUDA_RED_ARGMIN, T, I> : ArgOp<false, T> {};

/* Offset of index q row-major over (shape, stride)[0..n). */
__device__ __forceinline__ int64_t unravel(int64_t q, int n,
                                           const int64_t *shape,
                                           const int64_t *stride) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; d--) {
    int64_t s = shape[d], k = q / s;
    off += (q - k * s) * stride[d];
    q = k;
  }
  return off;
}

template <int K, class T>
__global__ void __launch_bounds__(1024)
    reduce_kernel(const T *__restrict__ x, void *out, int ot,
                  am_cuda_red_geom g, int tpr) {
  typedef Op<K, T> O;
  typedef typename O::Acc Acc;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Acc *sm = (Acc *)smem_raw;
  int tid = threadIdx.x, lane = tid & (tpr - 1), grp = tid / tpr;
  int64_t rpb = blockDim.x / tpr, R = g.rtotal;
  /* block-uniform trip count: every thread reaches the barriers */
  for (int64_t base = (int64_t)blockIdx.x * rpb; base < g.nout;
       base += (int64_t)gridDim.x * rpb) {
    int64_t row = base + grp;
    Acc a = O::init();
    if (row < g.nout) {
      const T *p = x + unravel(row, g.nk, g.kshape, g.kstride);
      if (g.nr <= 1) {
        int64_t rs = g.nr ? g.rstride[0] : 0;
        /* unrolled: the loads are independent, and a long row read by
         * one block is otherwise bound by one load's latency per step */
#pragma unroll 8
        for (int64_t r = lane; r < R; r += tpr)
          O::fold(a, p[r * rs], r);
      } else {
        for (int64_t r = lane; r < R; r += tpr)
          O::fold(a, p[unravel(r, g.nr, g.rshape, g.rstride)], r);
      }
    }
    if (tpr > 1) {
      sm[tid] = a;
      __syncthreads();
      for (int s = tpr / 2; s > 0; s >>= 1) {
        if (lane < s) {
          O::comb(a, sm[tid + s]);
          sm[tid] = a;
        }
        __syncthreads();
      }
    }
    if (row < g.nout && lane == 0) O::store(out, row, ot, a, R);
  }
}

template <int K, class T>
am_status launch_red(const void *x, void *out, int ot,
                     const am_cuda_red_geom *g) {
  typedef typename Op<K, T>::Acc Acc;
  int64_t R = g->rtotal, N = g->nout;
  /* "column" reductions (innermost kept dim contiguous, reduced dims
   * strided): a thread per output reads neighbouring outputs together */
  bool col = g->nk > 0 && g->kstride[g->nk - 1] == 1 &&
             (g->nr == 0 || g->rstride[g->nr - 1] != 1);
  int tpr;
  if (R <= 8 || (col && N >= 4096))
    tpr = 1;
  else if (R <= 512)
    tpr = 32;
  else if (R <= 16384 || N >= 512)
    tpr = 256;
  else
    tpr = 1024; /* few long rows: argmax over a vocabulary */
  int block = tpr > 256 ? tpr : 256;
  int64_t rpb = block / tpr, blocks = (N + rpb - 1) / rpb;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  size_t smem = tpr > 1 ? (size_t)block * sizeof(Acc) : 0;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  reduce_kernel<K, T>
      <<<(unsigned)blocks, block, smem, s>>>((const T *)x, out, ot, *g, tpr);
  return am_cuda_check(cudaGetLastError(), "reduce kernel launch");
}

template <int K>
am_status launch_red_t(const void *x, am_dtype xt, void *out, int ot,
                       const am_cuda_red_geom *g) {
  switch (xt) {
  case AM_BOOL:
    return launch_red<K, bool_t>(x, out, ot, g);
  case AM_U8:
    return launch_red<K, uint8_t>(x, out, ot, g);
  case AM_I8:
    return launch_red<K, int8_t>(x, out, ot, g);
  case AM_U32:
    return launch_red<K, uint32_t>(x, out, ot, g);
  case AM_I32:
    return launch_red<K, int32_t>(x, out, ot, g);
  case AM_I64:
    return launch_red<K, int64_t>(x, out, ot, g);
  case AM_F16:
    return launch_red<K, __half>(x, out, ot, g);
  case AM_BF16:
    return launch_red<K, __nv_bfloat16>(x, out, ot, g);
  case AM_F32:
    return launch_red<K, float>(x, out, ot, g);
  case AM_F64:
    return launch_red<K, double>(x, out, ot, g);
  default:
    return am_cuda_fail(AM_ERR_DTYPE, "reduce: dtype %d", (int)xt);
  }
}

/* ---- cumsum ---- */

template <class T> struct cs_acc {
  typedef typename std::conditional<is_int_t<T>::value, unsigned long long,
                                    double>::type type;
};

template <class T>
__device__ __forceinline__ typename cs_acc<T>::type cs_load(T x) {
  if constexpr (is_int_t<T>::value)
    return (unsigned long long)ldi(x);
  else
    return ldf(x);
}

template <class T>
__device__ __forceinline__ void cs_store(void *o, int64_t i, int ot,
                                         typename cs_acc<T>::type v) {
  if constexpr (is_int_t<T>::value)
    am_st_i64(o, i, ot, (int64_t)v);
  else
    am_st(o, i, ot, v);
}

/* tpr 32: a warp per lane; tpr 1: a thread per lane. Lanes are whole
 * warps or single threads, so an idle warp may leave early. */
template <class T>
__global__ void cumsum_kernel(const T *x, void *out, int ot, am_cuda_lanes l,
                              int tpr, int reverse, int inclusive) {
  typedef typename cs_acc<T>::type A;
  int64_t gid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  int64_t line = gid / tpr;
  int lane = (int)(gid & (tpr - 1));
  if (line >= l.nlanes) return;
  const T *p = x + unravel(line, l.nd, l.shape, l.st[1]);
  int64_t oo = unravel(line, l.nd, l.shape, l.st[0]);
  int64_t L = l.len, xs = l.ast[1], os = l.ast[0];
  A carry = 0;
  for (int64_t c0 = 0; c0 < L; c0 += tpr) {
    int64_t k = c0 + lane;
    bool ok = k < L;
    int64_t pos = reverse ? L - 1 - k : k;
    A v = ok ? cs_load(p[pos * xs]) : (A)0;
    A incl = v, excl = 0;
    if (tpr == 32) {
      for (int d = 1; d < 32; d <<= 1) {
        A t = __shfl_up_sync(0xffffffffu, incl, d);
        if (lane >= d) incl += t;
      }
      excl = __shfl_up_sync(0xffffffffu, incl, 1);
      if (lane == 0) excl = 0;
    }
    if (ok)
      cs_store<T>(out, oo + pos * os, ot, carry + (inclusive ? incl : excl));
    if (tpr == 32)
      carry += __shfl_sync(0xffffffffu, incl, 31);
    else
      carry += incl;
  }
}

template <class T>
am_status launch_cs(const void *x, void *out, int ot, const am_cuda_lanes *l,
                    int reverse, int inclusive) {
  int tpr = l->len <= 16 ? 1 : 32;
  int64_t threads = l->nlanes * tpr, blocks = (threads + 255) / 256;
  if (blocks > 0x7fffffff)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "cumsum: %lld lanes",
                        (long long)l->nlanes);
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  cumsum_kernel<T><<<(unsigned)blocks, 256, 0, s>>>((const T *)x, out, ot, *l,
                                                    tpr, reverse, inclusive);
  return am_cuda_check(cudaGetLastError(), "cumsum kernel launch");
}

} // namespace

extern "C" am_status am_cuda_launch_reduce(int kind, const void *x, am_dtype xt,
                                           void *out, am_dtype ot,
                                           const am_cuda_red_geom *g) {
  if (g->nout <= 0) return AM_OK;
  switch (kind) {
#define K(E)                                                                   \
  case E:                                                                      \
    return launch_red_t<E>(x, xt, out, ot, g);
    K(AM_CUDA_RED_SUM)
    K(AM_CUDA_RED_MEAN)
    K(AM_CUDA_RED_PROD)
    K(AM_CUDA_RED_MAX)
    K(AM_CUDA_RED_MIN)
    K(AM_CUDA_RED_LSE)
    K(AM_CUDA_RED_ALL)
    K(AM_CUDA_RED_ANY)
    K(AM_CUDA_RED_ARGMAX)
    K(AM_CUDA_RED_ARGMIN)
#undef K
  default:
    return am_cuda_fail(AM_ERR_INVALID_ARG, "reduce: kind %d", kind);
  }
}

extern "C" am_status am_cuda_launch_cumsum(const void *x, am_dtype xt,
                                           void *out, am_dtype ot,
                                           const am_cuda_lanes *l, int reverse,
                                           int inclusive) {
  if (l->nlanes <= 0 || l->len <= 0) return AM_OK;
  switch (xt) {
  case AM_BOOL:
    return launch_cs<bool_t>(x, out, ot, l, reverse, inclusive);
  case AM_U8:
    return launch_cs<uint8_t>(x, out, ot, l, reverse, inclusive);
  case AM_I8:
    return launch_cs<int8_t>(x, out, ot, l, reverse, inclusive);
  case AM_U32:
    return launch_cs<uint32_t>(x, out, ot, l, reverse, inclusive);
  case AM_I32:
    return launch_cs<int32_t>(x, out, ot, l, reverse, inclusive);
  case AM_I64:
    return launch_cs<int64_t>(x, out, ot, l, reverse, inclusive);
  case AM_F16:
    return launch_cs<__half>(x, out, ot, l, reverse, inclusive);
  case AM_BF16:
    return launch_cs<__nv_bfloat16>(x, out, ot, l, reverse, inclusive);
  case AM_F32:
    return launch_cs<float>(x, out, ot, l, reverse, inclusive);
  case AM_F64:
    return launch_cs<double>(x, out, ot, l, reverse, inclusive);
  default:
    return am_cuda_fail(AM_ERR_DTYPE, "cumsum: dtype %d", (int)xt);
  }
}
