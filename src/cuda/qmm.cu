/*
 * qmm.cu — affine quantized matmul / gather_qmm on CUDA (MLX layout,
 * transposed weights): the decode hot path of MoE models (see cuda.h).
 *
 * Fused 4-bit kernel (M <= 8 rows of x). A block works on one (x, expert)
 * pair and a run of row tiles. It first stages the pair's x rows in
 * shared memory as float32 (16-byte units XOR-swizzled so that lanes
 * reading different 32-element chunks hit different banks) together with
 * the sum of every 32-element chunk of x. Each weight row is read by T
 * lanes (8, 16 or 32: T*16 consecutive bytes per load), each lane
 * loading 16 bytes (32 codes, one "chunk") per row for R rows at once,
 * two chunks deep, so 2R independent 16-byte loads are in flight per
 * lane. For a chunk, with d = sum q*x and xs = sum x over its 32 elements:
 *     y += scale * d + bias * xs,
 * so scales and biases are loaded once per chunk (group sizes 32/64/128
 * are whole chunks). Codes become floats without conversion
 * instructions: (w & 0xF<<4j) | 0x4B000000 is the float 2^23 + q*16^j,
 * and one FMA by constants gives q exactly. The T partial sums of a row
 * meet through warp shuffles.
 *
 * Reference kernel: one warp per output row, any bits, any M; slow and
 * simple.
 */
#include "cuda_internal.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <pthread.h>
#include <stdint.h>

namespace {

/* Out-of-range gather index seen (per device). */
__device__ unsigned int g_index_error;

enum { SDT_F32 = 0, SDT_F16 = 1, SDT_BF16 = 2 };

__device__ __forceinline__ float bf16_bits_to_f32(unsigned short v) {
  return __uint_as_float((unsigned)v << 16);
}

__device__ __forceinline__ float load_scale(const void *p, int64_t i, int sdt) {
  if (sdt == SDT_F32) return __ldg((const float *)p + i);
  unsigned short v = __ldg((const unsigned short *)p + i);
  if (sdt == SDT_BF16) return bf16_bits_to_f32(v);
  return __half2float(__ushort_as_half(v));
}

/* 16 bytes of weights, read once: no L1 allocation, 256-byte L2 fetch. */
__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* The 8 codes of one word as exact floats (see the file comment). */
__device__ __forceinline__ void decode8(uint32_t w, float q[8]) {
  const uint32_t mag = 0x4B000000u;
  q[0] = __uint_as_float((w & 0xFu) | mag) - 8388608.0f;
  q[1] = fmaf(__uint_as_float((w & 0xF0u) | mag), 0.0625f, -524288.0f);
  q[2] = fmaf(__uint_as_float((w & 0xF00u) | mag), 0.00390625f, -32768.0f);
  q[3] = fmaf(__uint_as_float((w & 0xF000u) | mag), 0.000244140625f, -2048.0f);
  q[4] =
      fmaf(__uint_as_float((w & 0xF0000u) | mag), 1.52587890625e-05f, -128.0f);
  q[5] =
      fmaf(__uint_as_float((w & 0xF00000u) | mag), 9.5367431640625e-07f, -8.0f);
  uint32_t h = w >> 24;
  q[6] = __uint_as_float((h & 0xFu) | mag) - 8388608.0f;
  q[7] = fmaf(__uint_as_float((h & 0xF0u) | mag), 0.0625f, -524288.0f);
}

struct QmmParams {
  const void *x;
  const uint32_t *w;
  const void *s, *b;
  const int32_t *lhs, *rhs;
  float *y;
  int P, N, K, Bx, E;
  int xbf16, sdt;
  int gshift;        /* log2(group_size / 32) */
  int tshift;        /* log2(lanes per row) */
  int tiles_per_blk; /* row tiles per block */
  int ntiles;        /* row tiles per pair */
  int bits;          /* reference kernel */
  int M;             /* reference kernel */
  int group_size;    /* reference kernel */
};

/* Pair p's weight matrix index and x batch index; false (after flagging
 * and NaN-filling rows [n0, n1) of the pair's output) when out of range. */
__device__ __forceinline__ int pair_expert(const QmmParams &p, int pair) {
  return p.rhs ? p.rhs[pair] : (p.E == 1 ? 0 : pair);
}
__device__ __forceinline__ int pair_xbatch(const QmmParams &p, int pair) {
  return p.lhs ? p.lhs[pair] : (p.Bx == 1 ? 0 : pair);
}

__device__ void fail_rows(const QmmParams &p, int pair, int M, int n0, int n1) {
  if (threadIdx.x == 0) atomicOr(&g_index_error, 1u);
  if (n1 > p.N) n1 = p.N;
  for (int m = 0; m < M; m++)
    for (int n = n0 + (int)threadIdx.x; n < n1; n += blockDim.x)
      p.y[((int64_t)pair * M + m) * p.N + n] = __int_as_float(0x7fc00000);
}

/* Swizzled position (in 16-byte units) of unit u of an x row. */
__device__ __forceinline__ int swz(int u) {
  return u ^ ((u >> 3) & 7);
}

template <int M, int R>
__global__ void __launch_bounds__(256)
    qmm4_fused(const QmmParams p, bool dense_prefetch) {
  extern __shared__ float4 smem[];
  float4 *xs4 = smem;                             /* M * K/4 units       */
  float *xsum = (float *)(smem + M * (p.K >> 2)); /* M * K/32 chunk sums */

  pdl_trigger();
  const int T = 1 << p.tshift;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = blockDim.x >> 5;
  const int sub = lane & (T - 1), slot = lane >> p.tshift;
  const int nslots = 32 >> p.tshift;
  const int rows_warp = nslots * R, rows_tile = nwarps * rows_warp;
  const int nch = p.K >> 5;             /* chunks per row */
  const int64_t wrow = p.K >> 3;        /* words per row  */
  const int64_t grow = nch >> p.gshift; /* groups per row */
  const int units = p.K >> 2;           /* 16-byte x units per row */

  for (int pair = blockIdx.y; pair < p.P; pair += gridDim.y) {
    const int tile0 = blockIdx.x * p.tiles_per_blk;
    const int n_lo = tile0 * rows_tile;
    const int n_hi = (tile0 + p.tiles_per_blk) * rows_tile;
    if (!dense_prefetch) pdl_wait();
    const int e = pair_expert(p, pair);
    if (e < 0 || e >= p.E) {
      fail_rows(p, pair, M, n_lo, n_hi);
      continue;
    }
    const uint32_t *wb = p.w + (int64_t)e * p.N * wrow;
    const int64_t sb = (int64_t)e * p.N * grow;

    /* Weights of the first tile's first two chunks, before x is staged. */
    uint4 wv[R][2];
    float sc[R][2], bi[R][2];
    auto load = [&](int tile, int c0) {
#pragma unroll
      for (int r = 0; r < R; r++) {
        int n = tile * rows_tile + warp * rows_warp + r * nslots + slot;
        n = n < p.N ? n : p.N - 1;
#pragma unroll
        for (int u = 0; u < 2; u++) {
          int c = c0 + u * T;
          if (c < nch) {
            wv[r][u] = ld_stream((const uint4 *)(wb + n * wrow) + c);
            int64_t gi = sb + n * grow + (c >> p.gshift);
            sc[r][u] = load_scale(p.s, gi, p.sdt);
            bi[r][u] = load_scale(p.b, gi, p.sdt);
          }
        }
      }
    };
    if (tile0 < p.ntiles) load(tile0, sub);
    if (dense_prefetch) pdl_wait();

    const int xb = pair_xbatch(p, pair);
    if (xb < 0 || xb >= p.Bx) {
      fail_rows(p, pair, M, n_lo, n_hi);
      continue;
    }

    /* Stage x (float32, swizzled) and its 32-element chunk sums. */
    __syncthreads(); /* the previous pair's readers are done */
    const int total = M * units;
    for (int base = 0; base < total; base += blockDim.x) {
      int i = base + threadIdx.x;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      int m = i / units, u = i - m * units;
      if (i < total) {
        int64_t off = ((int64_t)xb * M + m) * p.K + (int64_t)u * 4;
        if (p.xbf16) {
          uint2 h = __ldg((const uint2 *)((const unsigned short *)p.x + off));
          v.x = __uint_as_float(h.x << 16);
          v.y = __uint_as_float(h.x & 0xffff0000u);
          v.z = __uint_as_float(h.y << 16);
          v.w = __uint_as_float(h.y & 0xffff0000u);
        } else {
          v = __ldg((const float4 *)((const float *)p.x + off));
        }
        xs4[m * units + swz(u)] = v;
      }
      float t = (v.x + v.y) + (v.z + v.w);
      t += __shfl_xor_sync(0xffffffffu, t, 1);
      t += __shfl_xor_sync(0xffffffffu, t, 2);
      t += __shfl_xor_sync(0xffffffffu, t, 4);
      if (i < total && (u & 7) == 0) xsum[m * nch + (u >> 3)] = t;
    }
    __syncthreads();

    bool pre = true;
    for (int t = 0; t < p.tiles_per_blk; t++) {
      const int tile = tile0 + t;
      if (tile >= p.ntiles) break;
      float acc[R][M];
#pragma unroll
      for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++)
          acc[r][m] = 0.f;

      for (int c0 = sub; c0 < nch; c0 += 2 * T) {
        if (!pre) load(tile, c0);
        pre = false;
#pragma unroll
        for (int u = 0; u < 2; u++) {
          const int c = c0 + u * T;
          if (c >= nch) break;
          float d[R][M];
#pragma unroll
          for (int r = 0; r < R; r++)
#pragma unroll
            for (int m = 0; m < M; m++)
              d[r][m] = 0.f;
#pragma unroll
          for (int i = 0; i < 4; i++) {
            float q[R][8];
#pragma unroll
            for (int r = 0; r < R; r++) {
              const uint32_t wd = i == 0   ? wv[r][u].x
                                  : i == 1 ? wv[r][u].y
                                  : i == 2 ? wv[r][u].z
                                           : wv[r][u].w;
              decode8(wd, q[r]);
            }
#pragma unroll
            for (int m = 0; m < M; m++) {
              const float4 *row = xs4 + m * units;
              const float4 a = row[swz(c * 8 + 2 * i)];
              const float4 b = row[swz(c * 8 + 2 * i + 1)];
#pragma unroll
              for (int r = 0; r < R; r++) {
                float s = d[r][m];
                s = fmaf(q[r][0], a.x, s);
                s = fmaf(q[r][1], a.y, s);
                s = fmaf(q[r][2], a.z, s);
                s = fmaf(q[r][3], a.w, s);
                s = fmaf(q[r][4], b.x, s);
                s = fmaf(q[r][5], b.y, s);
                s = fmaf(q[r][6], b.z, s);
                s = fmaf(q[r][7], b.w, s);
                d[r][m] = s;
              }
            }
          }
#pragma unroll
          for (int m = 0; m < M; m++) {
            const float xsm = xsum[m * nch + c];
#pragma unroll
            for (int r = 0; r < R; r++)
              acc[r][m] =
                  fmaf(sc[r][u], d[r][m], fmaf(bi[r][u], xsm, acc[r][m]));
          }
        }
      }

      /* Sum the T lanes of each row; lane (r*M + m) % T stores. */
#pragma unroll
      for (int r = 0; r < R; r++) {
        const int n = tile * rows_tile + warp * rows_warp + r * nslots + slot;
#pragma unroll
        for (int m = 0; m < M; m++) {
          float v = acc[r][m];
          for (int o = T >> 1; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
          if (sub == ((r * M + m) & (T - 1)) && n < p.N)
            p.y[((int64_t)pair * M + m) * p.N + n] = v;
        }
      }
    }
  }
}

/* Reference: one warp per (pair, row n); lanes stride over k. */
__global__ void qmm_ref(const QmmParams p) {
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int rowbytes = p.K * p.bits / 8;
  const int ng = p.K / p.group_size;
  for (int pair = blockIdx.y; pair < p.P; pair += gridDim.y) {
    const int e = pair_expert(p, pair), xb = pair_xbatch(p, pair);
    if (e < 0 || e >= p.E || xb < 0 || xb >= p.Bx) {
      int n0 = blockIdx.x * (blockDim.x >> 5);
      fail_rows(p, pair, p.M, n0, n0 + (blockDim.x >> 5));
      continue;
    }
    if (n >= p.N) continue;
    const uint8_t *row =
        (const uint8_t *)p.w + ((int64_t)e * p.N + n) * rowbytes;
    const int64_t g0 = ((int64_t)e * p.N + n) * ng;
    for (int m = 0; m < p.M; m++) {
      const int64_t xo = ((int64_t)xb * p.M + m) * p.K;
      float acc = 0.f;
      for (int k = lane; k < p.K; k += 32) {
        const int bit = k * p.bits;
        const uint8_t *q = row + (bit >> 3);
        const int sh = bit & 7;
        unsigned v = q[0];
        if (sh + p.bits > 8) v |= (unsigned)q[1] << 8;
        v = (v >> sh) & ((1u << p.bits) - 1u);
        const int g = k / p.group_size;
        const float s = load_scale(p.s, g0 + g, p.sdt);
        const float b = load_scale(p.b, g0 + g, p.sdt);
        const float xv =
            p.xbf16 ? bf16_bits_to_f32(((const unsigned short *)p.x)[xo + k])
                    : ((const float *)p.x)[xo + k];
        acc = fmaf(fmaf(s, (float)v, b), xv, acc);
      }
      for (int o = 16; o > 0; o >>= 1)
        acc += __shfl_xor_sync(0xffffffffu, acc, o);
      if (lane == 0) p.y[((int64_t)pair * p.M + m) * p.N + n] = acc;
    }
  }
}

typedef void (*fused_fn)(const QmmParams, bool);

template <int R> fused_fn fused_for_m(int M) {
  switch (M) {
  case 1:
    return qmm4_fused<1, R>;
  case 2:
    return qmm4_fused<2, R>;
  case 3:
    return qmm4_fused<3, R>;
  case 4:
    return qmm4_fused<4, R>;
  case 5:
    return qmm4_fused<5, R>;
  case 6:
    return qmm4_fused<6, R>;
  case 7:
    return qmm4_fused<7, R>;
  case 8:
    return qmm4_fused<8, R>;
  default:
    return nullptr;
  }
}

fused_fn fused_kernel(int M, int R) {
  switch (R) {
  case 1:
    return fused_for_m<1>(M);
  case 2:
    return fused_for_m<2>(M);
  case 4:
    return fused_for_m<4>(M);
  default:
    return nullptr;
  }
}

am_cuda_qmm_tuning g_tuning;

int ilog2(int v) {
  int s = 0;
  while ((1 << s) < v)
    s++;
  return s;
}

} // namespace

extern "C" void am_cuda_qmm_set_tuning(const am_cuda_qmm_tuning *t) {
  if (t)
    g_tuning = *t;
  else
    g_tuning = am_cuda_qmm_tuning{};
}

/* Resident blocks per SM of a fused kernel (cached). */
static am_status occupancy(fused_fn fn, int threads, size_t smem, int *out) {
  static struct {
    fused_fn fn;
    int threads;
    size_t smem;
    int dev, n;
  } cache[64];
  static int ncache;
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  int dev = 0;
  AM_CUDA_TRY(cudaGetDevice(&dev));
  pthread_mutex_lock(&mu);
  for (int i = 0; i < ncache; i++)
    if (cache[i].fn == fn && cache[i].threads == threads &&
        cache[i].smem == smem && cache[i].dev == dev) {
      *out = cache[i].n;
      pthread_mutex_unlock(&mu);
      return AM_OK;
    }
  pthread_mutex_unlock(&mu);
  if (smem > 48 * 1024)
    AM_CUDA_TRY(cudaFuncSetAttribute(
        (const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
        (int)smem));
  int n = 0;
  AM_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &n, (const void *)fn, threads, smem));
  pthread_mutex_lock(&mu);
  if (ncache < 64) {
    cache[ncache].fn = fn;
    cache[ncache].threads = threads;
    cache[ncache].smem = smem;
    cache[ncache].dev = dev;
    cache[ncache].n = n;
    ncache++;
  }
  pthread_mutex_unlock(&mu);
  *out = n;
  return AM_OK;
}

static am_status check_args(const am_cuda_qmm_args *a) {
  if (!a) return am_cuda_fail(AM_ERR_INVALID_ARG, "cuda qmm: NULL args");
  if (!a->x || !a->w || !a->scales || !a->biases || !a->y)
    return am_cuda_fail(AM_ERR_INVALID_ARG,
                        "cuda qmm: NULL x, w, scales, biases or y");
  if (a->x_dtype != AM_F32 && a->x_dtype != AM_BF16)
    return am_cuda_fail(AM_ERR_DTYPE,
                        "cuda qmm: x dtype %d (float32 or bfloat16 only)",
                        (int)a->x_dtype);
  if (a->s_dtype != AM_F32 && a->s_dtype != AM_F16 && a->s_dtype != AM_BF16)
    return am_cuda_fail(AM_ERR_DTYPE,
                        "cuda qmm: scales dtype %d (float32, float16 or "
                        "bfloat16 only)",
                        (int)a->s_dtype);
  if (a->group_size != 32 && a->group_size != 64 && a->group_size != 128)
    return am_cuda_fail(AM_ERR_INVALID_ARG,
                        "cuda qmm: affine group size %d (supported: 32, 64, "
                        "128)",
                        a->group_size);
  if (a->bits < 2 || a->bits > 8 || a->bits == 7)
    return am_cuda_fail(AM_ERR_INVALID_ARG,
                        "cuda qmm: affine bits %d (supported: 2, 3, 4, 5, 6, "
                        "8)",
                        a->bits);
  const int64_t lim = (int64_t)1 << 30;
  if (a->P < 1 || a->M < 1 || a->N < 1 || a->K < 1 || a->Bx < 1 || a->E < 1 ||
      a->P > lim || a->M > lim || a->N > lim || a->K > lim || a->Bx > lim ||
      a->E > lim)
    return am_cuda_fail(AM_ERR_SHAPE,
                        "cuda qmm: sizes P=%lld M=%lld N=%lld K=%lld Bx=%lld "
                        "E=%lld out of range",
                        (long long)a->P, (long long)a->M, (long long)a->N,
                        (long long)a->K, (long long)a->Bx, (long long)a->E);
  if (a->K % a->group_size)
    return am_cuda_fail(AM_ERR_SHAPE,
                        "cuda qmm: K=%lld is not a multiple of the group size "
                        "%d",
                        (long long)a->K, a->group_size);
  if (!a->lhs && a->Bx != 1 && a->Bx != a->P)
    return am_cuda_fail(AM_ERR_SHAPE,
                        "cuda qmm: no lhs indices: x batch %lld must be 1 or "
                        "P=%lld",
                        (long long)a->Bx, (long long)a->P);
  if (!a->rhs && a->E != 1 && a->E != a->P)
    return am_cuda_fail(AM_ERR_SHAPE,
                        "cuda qmm: no rhs indices: w batch %lld must be 1 or "
                        "P=%lld",
                        (long long)a->E, (long long)a->P);
  return AM_OK;
}

extern "C" am_status am_cuda_gather_qmm(const am_cuda_qmm_args *a) {
  am_status st = check_args(a);
  if (st != AM_OK) return st;
  cudaStream_t stream = am_cuda_resolve_stream(a->stream);
  if (!stream) return AM_ERR_DEVICE;
  const am_cuda_device_info *info = am_cuda_current_info();
  if (!info) return AM_ERR_DEVICE;

  QmmParams p = {};
  p.x = a->x;
  p.w = a->w;
  p.s = a->scales;
  p.b = a->biases;
  p.lhs = a->lhs;
  p.rhs = a->rhs;
  p.y = a->y;
  p.P = (int)a->P;
  p.N = (int)a->N;
  p.K = (int)a->K;
  p.Bx = (int)a->Bx;
  p.E = (int)a->E;
  p.M = (int)a->M;
  p.xbf16 = a->x_dtype == AM_BF16;
  p.sdt = a->s_dtype == AM_F32   ? SDT_F32
          : a->s_dtype == AM_F16 ? SDT_F16
                                 : SDT_BF16;
  p.bits = a->bits;
  p.group_size = a->group_size;
  p.gshift = ilog2(a->group_size / 32);
  const unsigned gy = (unsigned)(a->P < 65535 ? a->P : 65535);
  const int M = (int)a->M, K = (int)a->K;
  const am_cuda_qmm_tuning tn = g_tuning;

  /* Fused path: 4 bits, M <= 8, 16-byte aligned rows and x. */
  bool fused = !tn.force_ref && a->bits == 4 && M <= 8 &&
               ((uintptr_t)a->w & 15) == 0 &&
               ((uintptr_t)a->x & (a->x_dtype == AM_BF16 ? 7 : 15)) == 0;
  size_t smem = (size_t)M * K * 4 + (size_t)M * (K / 32) * 4;
  if (smem > info->smem_per_block_optin) fused = false;
  if (fused) {
    const int nch = K / 32;
    int T = tn.lanes ? tn.lanes : (nch >= 64 ? 32 : nch >= 32 ? 16 : 8);
    int R = tn.rows ? tn.rows : (M <= 4 ? 4 : 2);
    int W = tn.warps ? tn.warps : 4;
    if ((T != 8 && T != 16 && T != 32) || W < 1 || W > 8)
      return am_cuda_fail(AM_ERR_INVALID_ARG,
                          "cuda qmm: tuning lanes=%d warps=%d", T, W);
    fused_fn fn = fused_kernel(M, R);
    if (!fn)
      return am_cuda_fail(AM_ERR_INVALID_ARG, "cuda qmm: tuning rows=%d", R);
    const int rows_tile = W * (32 / T) * R;
    const int ntiles = (int)((a->N + rows_tile - 1) / rows_tile);
    int tpb = tn.tiles;
    if (!tpb) {
      /* When the tiles outnumber the blocks that fit on the device at
       * once, give each block several (it stages x once), so that the
       * grid is one balanced wave. */
      int per_sm = 0;
      st = occupancy(fn, 32 * W, smem, &per_sm);
      if (st != AM_OK) return st;
      int64_t slots = (int64_t)info->sm_count * (per_sm > 0 ? per_sm : 1);
      int64_t tiles = (int64_t)ntiles * (a->P < 65535 ? a->P : 65535);
      tpb = (int)((tiles + slots - 1) / slots);
      tpb = tpb < 1 ? 1 : tpb > ntiles ? ntiles : tpb;
    }
    p.tshift = ilog2(T);
    p.tiles_per_blk = tpb;
    p.ntiles = ntiles;
    if (smem > 48 * 1024) {
      AM_CUDA_TRY(cudaFuncSetAttribute(
          (const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
          (int)smem));
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)((ntiles + tpb - 1) / tpb), gy, 1);
    cfg.blockDim = dim3((unsigned)(32 * W), 1, 1);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    if (a->pdl && info->cc_major >= 9) {
      attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr[0].val.programmaticStreamSerializationAllowed = 1;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
    }
    const bool dense_prefetch = a->rhs == nullptr;
    AM_CUDA_TRY(cudaLaunchKernelEx(&cfg, fn, p, dense_prefetch));
    return AM_OK;
  }

  const int wpb = 8;
  dim3 grid((unsigned)((a->N + wpb - 1) / wpb), gy, 1);
  qmm_ref<<<grid, 32 * wpb, 0, stream>>>(p);
  AM_CUDA_TRY(cudaGetLastError());
  return AM_OK;
}

extern "C" am_status
am_cuda_quantized_matmul(const void *x, am_dtype x_dtype, const uint32_t *w,
                         const void *scales, const void *biases,
                         am_dtype s_dtype, int64_t M, int64_t N, int64_t K,
                         int group_size, int bits, float *y, void *stream) {
  am_cuda_qmm_args a = {};
  a.x = x;
  a.x_dtype = x_dtype;
  a.w = w;
  a.scales = scales;
  a.biases = biases;
  a.s_dtype = s_dtype;
  a.y = y;
  a.P = 1;
  a.M = M;
  a.N = N;
  a.K = K;
  a.Bx = 1;
  a.E = 1;
  a.group_size = group_size;
  a.bits = bits;
  a.stream = stream;
  return am_cuda_gather_qmm(&a);
}

extern "C" am_status am_cuda_qmm_check(void *stream) {
  cudaStream_t s = am_cuda_resolve_stream(stream);
  if (!s) return AM_ERR_DEVICE;
  AM_CUDA_TRY(cudaStreamSynchronize(s));
  unsigned int flag = 0, zero = 0;
  AM_CUDA_TRY(cudaMemcpyFromSymbol(&flag, g_index_error, sizeof flag));
  if (!flag) return AM_OK;
  AM_CUDA_TRY(cudaMemcpyToSymbol(g_index_error, &zero, sizeof zero));
  return am_cuda_fail(AM_ERR_INVALID_ARG,
                      "cuda gather_qmm: an index was outside the batch of x "
                      "or w (that pair's output is NaN)");
}
