/*
 * attention.cu — sdpa on CUDA, with the CPU's semantics (src/ops/
 * attention.c, after MLX): scores (q * scale rounded to q's dtype) . k in
 * float32 (double for float64), an additive mask added, a bool mask and
 * the causal rule (key j visible to query i when j <= q_offset + i) hiding
 * a score as -FLT_MAX, an online softmax whose probabilities are rounded
 * to bfloat16 for bfloat16 K/V, and P @ V accumulated in float32.
 *
 * One block of 4 warps per (query row, key split). Each warp takes chunks
 * of 32 keys: lane j scores key j against q (held in shared memory), the
 * warp updates its running max / sum and its accumulator (lane l owns
 * output dims l, l + 32, ...). The warps then merge. With several key
 * splits (decode: few rows, a long KV) each block leaves a partial (max,
 * sum, acc) and a second kernel merges them (flash-decoding).
 */
#include "cuda_internal.h"
#include "linalg.h"

#include <cfloat>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

constexpr int WARPS = 4, MAXD = 256, PER = MAXD / 32;

template <typename T>
__device__ __forceinline__ T ld(const void *p, int64_t i, int t) {
  switch (t) {
  case AM_F32:
    return (T)((const float *)p)[i];
  case AM_F16:
    return (T)__half2float(((const __half *)p)[i]);
  case AM_BF16:
    return (T)__bfloat162float(((const __nv_bfloat16 *)p)[i]);
  case AM_F64:
    return (T)((const double *)p)[i];
  case AM_BOOL:
    return (T)(((const uint8_t *)p)[i] != 0);
  default:
    return (T)0;
  }
}

template <typename T>
__device__ __forceinline__ void st(void *p, int64_t i, int t, T v) {
  switch (t) {
  case AM_F32:
    ((float *)p)[i] = (float)v;
    break;
  case AM_F16:
    ((__half *)p)[i] = __float2half_rn((float)v);
    break;
  case AM_BF16:
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v);
    break;
  default:
    ((double *)p)[i] = (double)v;
    break;
  }
}

__device__ __forceinline__ float ex(float v) {
  return expf(v);
}
__device__ __forceinline__ double ex(double v) {
  return exp(v);
}

template <typename T> __device__ __forceinline__ T wmax(T v) {
  for (int o = 16; o; o >>= 1) {
    T u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  return v;
}
template <typename T> __device__ __forceinline__ T wsum(T v) {
  for (int o = 16; o; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ int64_t qoffset(const am_cuda_sdpa_args &a) {
  if (!a.qoff) return a.Lkv - a.Lq; /* the last query sees the last key */
  switch (a.qoff_dt) {
  case AM_U8:
    return ((const uint8_t *)a.qoff)[0];
  case AM_I8:
    return ((const int8_t *)a.qoff)[0];
  case AM_U32:
    return ((const uint32_t *)a.qoff)[0];
  case AM_I32:
    return ((const int32_t *)a.qoff)[0];
  default:
    return ((const int64_t *)a.qoff)[0];
  }
}

/* Keys after the last query's position are hidden from every row; the
 * CPU never visits them (when each row still sees key 0). */
__device__ int64_t keys_used(const am_cuda_sdpa_args &a, int64_t qoff) {
  if (a.causal && qoff >= 0 && qoff + a.Lq < a.Lkv) return qoff + a.Lq;
  return a.Lkv;
}

template <typename T>
__global__ void __launch_bounds__(WARPS * 32)
    sdpa_kernel(const am_cuda_sdpa_args a, int64_t split_len) {
  __shared__ T qsh[MAXD];
  __shared__ T msh[WARPS], lsh[WARPS];
  __shared__ T ash[WARPS][MAXD];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row = blockIdx.x, sp = blockIdx.y;
  const int64_t i = row % a.Lq, hq = row / a.Lq % a.Hq, b = row / a.Lq / a.Hq;
  const int64_t kvh = hq / (a.Hq / a.Hkv);
  const int64_t qoff = qoffset(a), Lk = keys_used(a, qoff);
  const int64_t j0 = sp * split_len;
  const int64_t j1 = j0 + split_len < Lk ? j0 + split_len : Lk;
  for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
    T v = ld<T>(a.q, b * a.qs[0] + hq * a.qs[1] + i * a.qs[2] + d * a.qs[3],
                a.dt) *
          (T)a.scale;
    if (a.dt == AM_BF16)
      v = (T)__bfloat162float(__float2bfloat16_rn((float)v));
    else if (a.dt == AM_F16)
      v = (T)__half2float(__float2half_rn((float)v));
    qsh[d] = v;
  }
  __syncthreads();
  const T lowest = a.dt == AM_F64 ? (T)-DBL_MAX : (T)-FLT_MAX;
  const T NEG_INF = (T)-INFINITY;
  T m = NEG_INF, l = 0, acc[PER];
  for (int t = 0; t < PER; t++)
    acc[t] = 0;
  const int64_t kb = b * a.ks[0] + kvh * a.ks[1];
  const int64_t vb = b * a.vs[0] + kvh * a.vs[1];
  const int64_t mb = b * a.ms[0] + hq * a.ms[1] + i * a.ms[2];
  for (int64_t jb = j0 + (int64_t)warp * 32; jb < j1; jb += WARPS * 32) {
    const int64_t j = jb + lane;
    const bool valid = j < j1;
    T s = NEG_INF;
    if (valid) {
      s = 0;
      const int64_t kr = kb + j * a.ks[2];
      /* the common layouts without a per-element dtype switch, unrolled:
       * each lane's loads are independent, and one at a time they are
       * bound by memory latency */
      if (a.dt == AM_F32 && a.ks[3] == 1) {
        const float *kp = (const float *)a.k + kr;
#pragma unroll 8
        for (int d = 0; d < a.D; d++)
          s += qsh[d] * (T)kp[d];
      } else if (a.dt == AM_BF16 && a.ks[3] == 1) {
        const __nv_bfloat16 *kp = (const __nv_bfloat16 *)a.k + kr;
#pragma unroll 8
        for (int d = 0; d < a.D; d++)
          s += qsh[d] * (T)__bfloat162float(kp[d]);
      } else {
        for (int64_t d = 0; d < a.D; d++)
          s += qsh[d] * ld<T>(a.k, kr + d * a.ks[3], a.dt);
      }
      if (a.mask) {
        if (a.mdt == AM_BOOL) {
          if (!((const uint8_t *)a.mask)[mb + j * a.ms[3]]) s = lowest;
        } else {
          s += ld<T>(a.mask, mb + j * a.ms[3], a.mdt);
        }
      }
      if (a.causal && j > qoff + i) s = lowest;
    }
    T mc = wmax(s);
    T mn = m > mc ? m : mc;
    if (mn == NEG_INF) continue; /* nothing finite yet: l = acc = 0 */
    const T corr = ex(m - mn);
    T p = valid ? ex(s - mn) : (T)0;
    if (a.dt == AM_BF16) p = (T)__bfloat162float(__float2bfloat16_rn((float)p));
    l = l * corr + wsum(p);
    m = mn;
    for (int t = 0; t < PER; t++)
      acc[t] *= corr;
    const int nk = (int)(j1 - jb < 32 ? j1 - jb : 32);
    for (int jj = 0; jj < nk; jj++) {
      const T pj = __shfl_sync(0xffffffffu, p, jj);
      const int64_t vr = vb + (jb + jj) * a.vs[2];
      for (int t = 0; t < PER; t++) {
        const int64_t d = lane + 32 * t;
        if (d < a.Dv) acc[t] += pj * ld<T>(a.v, vr + d * a.vs[3], a.dt);
      }
    }
  }
  /* merge the warps */
  if (lane == 0) {
    msh[warp] = m;
    lsh[warp] = l;
  }
  for (int t = 0; t < PER; t++)
    if (lane + 32 * t < a.Dv) ash[warp][lane + 32 * t] = acc[t];
  __syncthreads();
  T M = NEG_INF;
  for (int w = 0; w < WARPS; w++)
    M = msh[w] > M ? msh[w] : M;
  T wt[WARPS], L = 0;
  for (int w = 0; w < WARPS; w++) {
    wt[w] = msh[w] == NEG_INF ? (T)0 : ex(msh[w] - M);
    L += lsh[w] * wt[w];
  }
  if (gridDim.y == 1) {
    const int64_t o = row * a.Dv;
    for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) {
      T s = 0;
      for (int w = 0; w < WARPS; w++)
        s += wt[w] == 0 ? (T)0 : ash[w][d] * wt[w];
      st<T>(a.out, o + d, a.dt, s * ((T)1 / L));
    }
  } else {
    T *part = (T *)a.part + (row * gridDim.y + sp) * (a.Dv + 2);
    if (threadIdx.x == 0) {
      part[0] = M;
      part[1] = L;
    }
    for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) {
      T s = 0;
      for (int w = 0; w < WARPS; w++)
        s += wt[w] == 0 ? (T)0 : ash[w][d] * wt[w];
      part[2 + d] = s;
    }
  }
}

/* One block per row: merges the splits' partials. */
template <typename T>
__global__ void sdpa_combine(const am_cuda_sdpa_args a, int nsplit) {
  const int64_t row = blockIdx.x;
  const T *part = (const T *)a.part + row * nsplit * (a.Dv + 2);
  const T NEG_INF = (T)-INFINITY;
  T M = NEG_INF, L = 0;
  for (int s = 0; s < nsplit; s++) {
    T v = part[s * (a.Dv + 2)];
    M = v > M ? v : M;
  }
  for (int s = 0; s < nsplit; s++) {
    const T *p = part + s * (a.Dv + 2);
    if (p[0] != NEG_INF) L += p[1] * ex(p[0] - M);
  }
  for (int d = threadIdx.x; d < a.Dv; d += blockDim.x) {
    T acc = 0;
    for (int s = 0; s < nsplit; s++) {
      const T *p = part + s * (a.Dv + 2);
      if (p[0] != NEG_INF) acc += p[2 + d] * ex(p[0] - M);
    }
    st<T>(a.out, row * a.Dv + d, a.dt, acc * ((T)1 / L));
  }
}

int64_t split_len(const am_cuda_sdpa_args *a) {
  return (a->Lkv + a->nsplit - 1) / a->nsplit;
}

} // namespace

extern "C" int am_cuda_sdpa_splits(int64_t rows, int64_t Lkv, int sm_count) {
  int64_t want = 2 * (int64_t)(sm_count > 0 ? sm_count : 100);
  if (rows >= want || Lkv < 512) return 1;
  int64_t n = (want + rows - 1) / rows, by_keys = Lkv / 256;
  if (n > by_keys) n = by_keys;
  if (n > 64) n = 64;
  return n > 1 ? (int)n : 1;
}

extern "C" size_t am_cuda_sdpa_part_bytes(const am_cuda_sdpa_args *a) {
  size_t es = a->dt == AM_F64 ? 8 : 4;
  return (size_t)(a->B * a->Hq * a->Lq) * (size_t)a->nsplit *
         (size_t)(a->Dv + 2) * es;
}

extern "C" am_status am_cuda_sdpa(const am_cuda_sdpa_args *a) {
  if (a->D > MAXD || a->Dv > MAXD)
    return am_cuda_fail(AM_ERR_UNSUPPORTED,
                        "sdpa: head dims %lld, %lld (CUDA kernel: at most %d)",
                        (long long)a->D, (long long)a->Dv, MAXD);
  int64_t rows = a->B * a->Hq * a->Lq;
  if (rows <= 0 || a->Dv <= 0) return AM_OK;
  if (rows > 0x7fffffff || a->nsplit > 65535 || a->nsplit < 1)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "sdpa: %lld rows", (long long)rows);
  cudaStream_t stream = am_cuda_resolve_stream(NULL);
  if (!stream) return AM_ERR_DEVICE;
  dim3 grid((unsigned)rows, (unsigned)a->nsplit);
  int64_t sl = split_len(a);
  if (a->dt == AM_F64)
    sdpa_kernel<double><<<grid, WARPS * 32, 0, stream>>>(*a, sl);
  else
    sdpa_kernel<float><<<grid, WARPS * 32, 0, stream>>>(*a, sl);
  am_status s = am_cuda_check(cudaGetLastError(), "sdpa kernel");
  if (s || a->nsplit == 1) return s;
  if (a->dt == AM_F64)
    sdpa_combine<double><<<(unsigned)rows, 128, 0, stream>>>(*a, a->nsplit);
  else
    sdpa_combine<float><<<(unsigned)rows, 128, 0, stream>>>(*a, a->nsplit);
  return am_cuda_check(cudaGetLastError(), "sdpa combine kernel");
}
