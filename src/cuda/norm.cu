/* norm.cu — along-an-axis nn kernels: softmax, log_softmax,
 * l2_normalize, rms_norm (plain and gated) and layer_norm, plus rope.
 *
 * Lane ops: a group of tpr threads (a power of two up to 1024, about four
 * elements each) owns one lane; its reductions go through warp shuffles
 * and, for groups wider than a warp, a shared array of warp partials.
 * Lanes are re-read from global memory for each pass (they stay in L1/L2
 * for the sizes a model has). The formulas are the CPU's (src/ops/
 * activation.c, norm.c): float32 math for float16/bfloat16/float32, double
 * for float64, rounded once on store.
 *
 * Rope: a thread per rotated pair or copied element; the angle is
 * computed in double and its cos/sin rounded to float32 (double for
 * float64), as the CPU's table.
 */
#include "cuda_internal.h"
#include "dtype.cuh"
#include "norm.h"

#include <math.h>
#include <type_traits>

namespace {

template <class T> struct ct { typedef float type; };
template <> struct ct<double> { typedef double type; };

__device__ __forceinline__ float ld(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float ld(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float ld(float v) {
  return v;
}
__device__ __forceinline__ double ld(double v) {
  return v;
}
__device__ __forceinline__ void st(__half *p, float v) {
  *p = __float2half_rn(v);
}
__device__ __forceinline__ void st(__nv_bfloat16 *p, float v) {
  *p = __float2bfloat16_rn(v);
}
__device__ __forceinline__ void st(float *p, float v) {
  *p = v;
}
__device__ __forceinline__ void st(double *p, double v) {
  *p = v;
}

__device__ __forceinline__ float cexp(float v) {
  return expf(v);
}
__device__ __forceinline__ double cexp(double v) {
  return exp(v);
}
__device__ __forceinline__ float clog(float v) {
  return logf(v);
}
__device__ __forceinline__ double clog(double v) {
  return log(v);
}
__device__ __forceinline__ float csqrt(float v) {
  return sqrtf(v);
}
__device__ __forceinline__ double csqrt(double v) {
  return sqrt(v);
}

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

struct add_f {
  template <class C> __device__ __forceinline__ C operator()(C a, C b) const {
    return a + b;
  }
};
/* NaN wins, as the CPU's float64 max (for float32 a NaN anywhere in the
 * lane makes every output NaN either way) */
struct max_f {
  template <class C> __device__ __forceinline__ C operator()(C a, C b) const {
    return (b > a || b != b) ? b : a;
  }
};

/* Reduces v over each group of tpr lanes; every thread gets its group's
 * result. Called by every thread of the block (barriers inside). */
template <class C, class F>
__device__ __forceinline__ C group_reduce(C v, int tpr, F f, C *sm) {
  int w = tpr < 32 ? tpr : 32;
  for (int o = w / 2; o > 0; o >>= 1)
    v = f(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (tpr > 32) {
    int warp = threadIdx.x >> 5, wpg = tpr >> 5;
    int g0 = (int)(threadIdx.x / tpr) * wpg;
    __syncthreads(); /* sm may still be read by the previous call */
    if ((threadIdx.x & 31) == 0) sm[warp] = v;
    __syncthreads();
    v = sm[g0];
    for (int k = 1; k < wpg; k++)
      v = f(v, sm[g0 + k]);
  }
  return v;
}

template <int OP, class T>
__global__ void __launch_bounds__(1024)
    nn_kernel(T *out, const T *x, const T *__restrict__ z,
              const T *__restrict__ w, int64_t ws, const T *__restrict__ b,
              int64_t bs, float eps, am_cuda_lanes l, int tpr) {
  typedef typename ct<T>::type C;
  __shared__ C sm[32];
  int lane = threadIdx.x & (tpr - 1), grp = threadIdx.x / tpr;
  int64_t rpb = blockDim.x / tpr, L = l.len;
  int64_t xs = l.ast[1], os = l.ast[0], zs = l.ast[2];
  const C n = (C)L, ceps = (C)eps;
  for (int64_t base = (int64_t)blockIdx.x * rpb; base < l.nlanes;
       base += (int64_t)gridDim.x * rpb) {
    int64_t row = base + grp;
    bool valid = row < l.nlanes;
    int64_t e = valid ? L : 0; /* idle threads still join the reductions */
    const T *xp = x, *zp = z;
    T *op = out;
    if (valid) {
      xp += unravel(row, l.nd, l.shape, l.st[1]);
      op += unravel(row, l.nd, l.shape, l.st[0]);
      if (OP == AM_CUDA_NN_RMS_GATED)
        zp += unravel(row, l.nd, l.shape, l.st[2]);
    }
    if (OP == AM_CUDA_NN_SOFTMAX || OP == AM_CUDA_NN_LOG_SOFTMAX) {
      C m = -INFINITY;
      for (int64_t i = lane; i < e; i += tpr) {
        C v = ld(xp[i * xs]);
        if (v > m || v != v) m = v;
      }
      m = group_reduce(m, tpr, max_f(), sm);
      C s = 0;
      for (int64_t i = lane; i < e; i += tpr)
        s += cexp(ld(xp[i * xs]) - m);
      s = group_reduce(s, tpr, add_f(), sm);
      if (OP == AM_CUDA_NN_SOFTMAX) {
        /* float32: times the reciprocal, float64: divided, as the CPU */
        C inv = (C)1 / s;
        for (int64_t i = lane; i < e; i += tpr) {
          C v = cexp(ld(xp[i * xs]) - m);
          st(op + i * os, std::is_same<C, double>::value ? v / s : v * inv);
        }
      } else {
        C lse = isinf(m) ? m : m + clog(s);
        for (int64_t i = lane; i < e; i += tpr)
          st(op + i * os, ld(xp[i * xs]) - lse);
      }
    } else if (OP == AM_CUDA_NN_LAYER_NORM) {
      C s = 0;
      for (int64_t i = lane; i < e; i += tpr)
        s += ld(xp[i * xs]);
      C mean = group_reduce(s, tpr, add_f(), sm) / n;
      C v2 = 0;
      for (int64_t i = lane; i < e; i += tpr) {
        C d = ld(xp[i * xs]) - mean;
        v2 += d * d;
      }
      C var = group_reduce(v2, tpr, add_f(), sm) / n;
      C inv = (C)1 / csqrt(var + ceps);
      for (int64_t i = lane; i < e; i += tpr) {
        C v = (ld(xp[i * xs]) - mean) * inv;
        if (w) v *= ld(w[i * ws]);
        if (b) v += ld(b[i * bs]);
        st(op + i * os, v);
      }
    } else { /* l2, rms, gated rms: sum of squares */
      C ss = 0;
      for (int64_t i = lane; i < e; i += tpr) {
        C v = ld(xp[i * xs]);
        ss += v * v;
      }
      ss = group_reduce(ss, tpr, add_f(), sm);
      C inv = OP == AM_CUDA_NN_L2 ? (C)1 / csqrt(ss + ceps)
                                  : (C)1 / csqrt(ss / n + ceps);
      for (int64_t i = lane; i < e; i += tpr) {
        C v = ld(xp[i * xs]) * inv;
        if (OP != AM_CUDA_NN_L2 && w) v *= ld(w[i * ws]);
        if (OP == AM_CUDA_NN_RMS_GATED) {
          C zv = ld(zp[i * zs]);
          v *= zv / ((C)1 + cexp(-zv)); /* silu(z) */
        }
        st(op + i * os, v);
      }
    }
  }
}

template <int OP, class T>
am_status launch_nn_t(void *out, const void *x, const void *z, const void *w,
                      int64_t ws, const void *b, int64_t bs, float eps,
                      const am_cuda_lanes *l) {
  int tpr = 1;
  while (tpr < 1024 && tpr * 4 < l->len)
    tpr *= 2;
  int block = tpr > 256 ? tpr : 256;
  int64_t rpb = block / tpr, blocks = (l->nlanes + rpb - 1) / rpb;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  nn_kernel<OP, T><<<(unsigned)blocks, block, 0, s>>>(
      (T *)out, (const T *)x, (const T *)z, (const T *)w, ws, (const T *)b, bs,
      eps, *l, tpr);
  return am_cuda_check(cudaGetLastError(), "nn lane kernel launch");
}

template <int OP>
am_status launch_nn_op(am_dtype t, void *out, const void *x, const void *z,
                       const void *w, int64_t ws, const void *b, int64_t bs,
                       float eps, const am_cuda_lanes *l) {
  switch (t) {
  case AM_F16:
    return launch_nn_t<OP, __half>(out, x, z, w, ws, b, bs, eps, l);
  case AM_BF16:
    return launch_nn_t<OP, __nv_bfloat16>(out, x, z, w, ws, b, bs, eps, l);
  case AM_F32:
    return launch_nn_t<OP, float>(out, x, z, w, ws, b, bs, eps, l);
  case AM_F64:
    return launch_nn_t<OP, double>(out, x, z, w, ws, b, bs, eps, l);
  default:
    return am_cuda_fail(AM_ERR_DTYPE, "nn kernel: dtype %d", (int)t);
  }
}

#define ROPE_DIMS 16
struct rope_geom {
  int nd; /* leading dims (all but the last) */
  int64_t shape[ROPE_DIMS], st[ROPE_DIMS];
  int64_t D, xs, half, rows;
};

template <class T>
__global__ void rope_kernel(const T *x, T *out, rope_geom g, int dims, int trad,
                            float base, float scale, const void *off, int offt,
                            int64_t off_st, int64_t nb) {
  typedef typename ct<T>::type C;
  int64_t cnt = g.D - g.half, total = g.rows * cnt;
  double lb = log((double)base);
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t row = t / cnt, j = t - row * cnt;
    int64_t q = row, xoff = 0, l = 0, bi = 0;
    for (int d = g.nd - 1; d >= 0; d--) {
      int64_t k = q / g.shape[d], i = q - k * g.shape[d];
      q = k;
      xoff += i * g.st[d];
      if (d == g.nd - 1) l = i;
      if (d == 0) bi = i;
    }
    const T *xp = x + xoff;
    T *op = out + row * g.D;
    if (j >= g.half) { /* beyond the rotated dims: copied */
      int64_t i = g.half + j;
      op[i] = xp[i * g.xs];
      continue;
    }
    int64_t o = off ? am_ld_i64(off, (nb > 1 ? bi : 0) * off_st, offt) : 0;
    double pos = (double)(o + l) * scale;
    double th = pos * exp(-(double)(2 * j) / dims * lb);
    C c = (C)cos(th), sn = (C)sin(th);
    int64_t s = trad ? 1 : g.half, step = trad ? 2 : 1;
    C a = ld(xp[j * step * g.xs]), bv = ld(xp[(j * step + s) * g.xs]);
    st(op + j * step, a * c - bv * sn);
    st(op + j * step + s, a * sn + bv * c);
  }
}

template <class T>
am_status launch_rope_t(const void *x, void *out, const rope_geom &g, int dims,
                        int trad, float base, float scale, const void *off,
                        am_dtype offt, int64_t off_st, int64_t nb) {
  int64_t total = g.rows * (g.D - g.half), blocks = (total + 255) / 256;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  rope_kernel<T><<<(unsigned)blocks, 256, 0, s>>>((const T *)x, (T *)out, g,
                                                  dims, trad, base, scale, off,
                                                  offt, off_st, nb);
  return am_cuda_check(cudaGetLastError(), "rope kernel launch");
}

} // namespace

extern "C" am_status am_cuda_launch_nn(int op, am_dtype t, void *out,
                                       const void *x, const void *z,
                                       const void *w, int64_t ws, const void *b,
                                       int64_t bs, float eps,
                                       const am_cuda_lanes *l) {
  if (l->nlanes <= 0 || l->len <= 0) return AM_OK;
  switch (op) {
#define K(E)                                                                   \
  case E:                                                                      \
    return launch_nn_op<E>(t, out, x, z, w, ws, b, bs, eps, l);
    K(AM_CUDA_NN_SOFTMAX)
    K(AM_CUDA_NN_LOG_SOFTMAX)
    K(AM_CUDA_NN_L2)
    K(AM_CUDA_NN_RMS)
    K(AM_CUDA_NN_RMS_GATED)
    K(AM_CUDA_NN_LAYER_NORM)
#undef K
  default:
    return am_cuda_fail(AM_ERR_INVALID_ARG, "nn kernel: op %d", op);
  }
}

extern "C" am_status
am_cuda_launch_rope(am_dtype t, const void *x, void *out, int nd,
                    const int64_t *shape, const int64_t *xst, int dims,
                    int traditional, float base, float scale, const void *off,
                    am_dtype offt, int64_t off_st, int64_t nb) {
  if (nd < 2 || nd - 1 > ROPE_DIMS)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "rope: %d dims", nd);
  rope_geom g = {};
  g.nd = nd - 1;
  g.rows = 1;
  for (int d = 0; d < nd - 1; d++) {
    g.shape[d] = shape[d];
    g.st[d] = xst[d];
    g.rows *= shape[d];
  }
  g.D = shape[nd - 1];
  g.xs = xst[nd - 1];
  g.half = dims / 2;
  if (g.rows <= 0 || g.D <= 0) return AM_OK;
  switch (t) {
  case AM_F16:
    return launch_rope_t<__half>(x, out, g, dims, traditional, base, scale, off,
                                 offt, off_st, nb);
  case AM_BF16:
    return launch_rope_t<__nv_bfloat16>(x, out, g, dims, traditional, base,
                                        scale, off, offt, off_st, nb);
  case AM_F32:
    return launch_rope_t<float>(x, out, g, dims, traditional, base, scale, off,
                                offt, off_st, nb);
  case AM_F64:
    return launch_rope_t<double>(x, out, g, dims, traditional, base, scale, off,
                                 offt, off_st, nb);
  default:
    return am_cuda_fail(AM_ERR_DTYPE, "rope: dtype %d", (int)t);
  }
}
