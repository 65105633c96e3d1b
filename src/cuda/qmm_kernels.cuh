/*
 * qmm_kernels.cuh — the device code of the quantized matmul (qmm.cu):
 * parameters, helpers and the fused 4-bit kernel template, instantiated
 * in qmm_fused_i16.cu and qmm_fused_f32.cu (compiled in parallel).
 */
/*
 * Fused 4-bit kernel (M <= 8 rows of x). A block works on one (x, expert)
 * pair and a run of row tiles. Each weight row is read by T lanes (8, 16
 * or 32: T*16 consecutive bytes per load instruction), each lane loading
 * 16 bytes (32 codes, one "chunk") per row, for R rows and two chunks at
 * once; the loads of the next step are issued before the current one is
 * computed (two register buffers), so 2R to 4R 16-byte loads per lane are
 * in flight. The first step's loads go out before x is staged. Optionally
 * (tuning l2_prefetch, off by default: slower in every case measured on
 * an H100) warp 0 also asks L2 for the block's first two tiles at once
 * (sm_90 bulk prefetch), and for tile t + 1 when tile t starts.
 *
 * x is staged once per block in shared memory, with per 32-element chunk
 * the sum of x (and a scale, below). For a chunk, with d = sum q*x:
 *     y += scale * d + bias * sum(x),
 * so scales and biases are loaded once per chunk (group sizes 32/64/128
 * are whole chunks). Two ways to form d:
 *  - default: x split per chunk into two 16-bit integer terms, as the
 *    CPU library's default (qmm_simd.c, prep4i): x ~ xs * (hi + lo /
 *    65536), xs = max|x| / 32767, hi = round(x / xs), lo = round((x - hi
 *    xs) * 65536 / xs), which holds x to ~2^-32 of the chunk's largest |x|
 *    (one term alone, 2^-16, let a 4-bit model's logits drift by up to
 *    10% over a long prompt on the CPU). Then d = xs * (sum(q * hi) +
 *    sum(q * lo) / 65536), both sums exact in int32 with dp2a (two
 *    16x8-bit products per instruction), combined in float32. The 16-bit
 *    values are stored in the order dp2a pairs them with the bytes (w &
 *    0x0F0F0F0F) and ((w >> 4) & 0x0F0F0F0F): 3 logic ops and 8 dp2a per
 *    8 codes. The lo terms take as much shared memory as the hi terms:
 *    4 bytes per element of x in all, as float32 x.
 *  - precise: float32 x; codes become floats without conversions: (w &
 *    0xF<<4j) | 0x4B000000 is the float 2^23 + q*16^j (j <= 4), and one
 *    FMA by constants gives q exactly; one FMA per product.
 * Shared-memory rows are XOR-swizzled in 16-byte units so that the lanes
 * of a quarter warp, reading different chunks, hit different banks. The
 * T partial sums of a row meet through warp shuffles.
 *
 * Reference kernel: one warp per output row, any bits, any M; slow and
 * simple.
 */
#ifndef AM_CUDA_QMM_KERNELS_CUH
#define AM_CUDA_QMM_KERNELS_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

namespace am_cuda_detail {

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

/* Asks L2 to fetch [p, p + bytes) (p 16-byte aligned, bytes a multiple of
 * 16): one instruction, no registers (sm_90's bulk copy engine). */
__device__ __forceinline__ void prefetch_l2(uintptr_t p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n\t.reg .u64 g;\n\tcvta.to.global.u64 g, %0;\n\t"
               "cp.async.bulk.prefetch.L2.global [g], %1;\n\t}" ::"l"(p),
               "r"(bytes)
               : "memory");
#endif
}

/* The 16-byte aligned inside of [p, p + bytes) to L2, in pieces of 16 KiB
 * spread over the 32 lanes of a warp. */
__device__ __forceinline__ void prefetch_range(const void *p, size_t bytes,
                                               int lane) {
  const uintptr_t a = ((uintptr_t)p + 15) & ~(uintptr_t)15;
  const uintptr_t b = ((uintptr_t)p + bytes) & ~(uintptr_t)15;
  for (uintptr_t o = a + (uintptr_t)lane * 16384; o < b; o += 32 * 16384)
    prefetch_l2(o, (uint32_t)(b - o < 16384 ? b - o : 16384));
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
  const uint32_t h = w >> 20; /* bit 23 is the exponent's: shift first */
  q[5] = __uint_as_float((h & 0xFu) | mag) - 8388608.0f;
  q[6] = fmaf(__uint_as_float((h & 0xF0u) | mag), 0.0625f, -524288.0f);
  q[7] = fmaf(__uint_as_float((h & 0xF00u) | mag), 0.00390625f, -32768.0f);
}

/* c + a.lo16 * b.byte0 + a.hi16 * b.byte1 (a signed, b unsigned). */
__device__ __forceinline__ int dp2a_lo(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp2a.lo.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
/* The same with bytes 2 and 3 of b. */
__device__ __forceinline__ int dp2a_hi(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp2a.hi.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

struct QmmParams {
  const void *x;
  const uint32_t *w;
  const void *s, *b;
  const int32_t *lhs, *rhs;
  float *y;
  unsigned int *err; /* set when an index is out of range */
  int P, N, K, Bx, E;
  int xbf16, sdt;
  int gshift;        /* log2(group_size / 32) */
  int l2pf;          /* prefetch each tile and the next to L2 */
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

__device__ inline void fail_rows(const QmmParams &p, int pair, int M, int n0,
                                 int n1) {
  if (threadIdx.x == 0) atomicOr(p.err, 1u);
  if (n1 > p.N) n1 = p.N;
  for (int m = 0; m < M; m++)
    for (int n = n0 + (int)threadIdx.x; n < n1; n += blockDim.x)
      p.y[((int64_t)pair * M + m) * p.N + n] = __int_as_float(0x7fc00000);
}

/* Swizzled 16-byte unit of a float32 x row (8 units per chunk). */
__device__ __forceinline__ int swz(int u) {
  return u ^ ((u >> 3) & 7);
}
/* The same for a 16-bit x row (4 units per chunk). */
__device__ __forceinline__ int swz16(int u) {
  return u ^ ((u >> 3) & 3);
}

template <int M, int R, bool I16>
__global__ void __launch_bounds__(256)
    qmm4_fused(const QmmParams p, bool dense_prefetch) {
  extern __shared__ float4 smem[];
  const int nch = p.K >> 5;                   /* chunks per row          */
  const int runits = I16 ? nch * 4 : nch * 8; /* 16-byte units per x row */
  /* float32 x: M * runits units; 16-bit: hi then lo, M * runits each. */
  float4 *xs4 = smem;
  float2 *xst = (float2 *)(smem + (I16 ? 2 : 1) * M * runits); /* M * nch */

  pdl_trigger();
  const int T = 1 << p.tshift;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = blockDim.x >> 5;
  const int sub = lane & (T - 1), slot = lane >> p.tshift;
  const int nslots = 32 >> p.tshift;
  const int rows_warp = nslots * R, rows_tile = nwarps * rows_warp;
  const int64_t wrow = p.K >> 3;                 /* words per row  */
  const int64_t grow = nch >> p.gshift;          /* groups per row */
  const int iters = (nch + 2 * T - 1) / (2 * T); /* steps per tile */

  for (int pair = blockIdx.y; pair < p.P; pair += gridDim.y) {
    const int tile0 = blockIdx.x * p.tiles_per_blk;
    const int n_lo = tile0 * rows_tile;
    const int n_hi = (tile0 + p.tiles_per_blk) * rows_tile;
    int ntl = p.ntiles - tile0;
    ntl = ntl < p.tiles_per_blk ? ntl : p.tiles_per_blk;
    const int S = ntl > 0 ? ntl * iters : 0; /* steps of this block */
    if (!dense_prefetch) pdl_wait();
    const int e = pair_expert(p, pair);
    if (e < 0 || e >= p.E) {
      fail_rows(p, pair, M, n_lo, n_hi);
      continue;
    }
    const uint32_t *wb = p.w + (int64_t)e * p.N * wrow;
    const int64_t sb = (int64_t)e * p.N * grow;

    /* Step s: tile tile0 + s / iters, chunks c0 and c0 + T. */
    auto load = [&](uint4(&w)[R][2], float(&sc)[R][2], float(&bi)[R][2],
                    int s) {
      const int tile = tile0 + s / iters;
      const int c0 = sub + (s % iters) * 2 * T;
#pragma unroll
      for (int r = 0; r < R; r++) {
        int n = tile * rows_tile + warp * rows_warp + r * nslots + slot;
        n = n < p.N ? n : p.N - 1;
#pragma unroll
        for (int u = 0; u < 2; u++) {
          const int c = c0 + u * T;
          if (c < nch) {
            w[r][u] = ld_stream((const uint4 *)(wb + n * wrow) + c);
            const int64_t gi = sb + n * grow + (c >> p.gshift);
            sc[r][u] = load_scale(p.s, gi, p.sdt);
            bi[r][u] = load_scale(p.b, gi, p.sdt);
          }
        }
      }
    };
    /* L2 prefetch by warp 0: the scales and biases of all the block's
     * rows and the weights of its first two tiles now, the weights of
     * tile t + 1 when tile t starts (rows are contiguous). */
    const char *pf_w = (const char *)(wb + (int64_t)n_lo * wrow);
    const int64_t pf_tile = (int64_t)rows_tile * wrow * 4;
    int64_t pf_end = 0;
    if (p.l2pf && warp == 0 && ntl > 0) {
      const int r1 =
          n_lo + ntl * rows_tile < p.N ? n_lo + ntl * rows_tile : p.N;
      pf_end = (int64_t)(r1 - n_lo) * wrow * 4;
      const int ssz = p.sdt == SDT_F32 ? 4 : 2;
      const int64_t g0 = (sb + n_lo * grow) * ssz;
      const size_t gn = (size_t)(r1 - n_lo) * grow * ssz;
      prefetch_range((const char *)p.s + g0, gn, lane);
      prefetch_range((const char *)p.b + g0, gn, lane);
      prefetch_range(pf_w, pf_end < 2 * pf_tile ? pf_end : 2 * pf_tile, lane);
    }
    auto prefetch_tile = [&](int t) {
      const int64_t o = t * pf_tile;
      if (o < pf_end)
        prefetch_range(pf_w + o, pf_end - o < pf_tile ? pf_end - o : pf_tile,
                       lane);
    };
    uint4 wa[R][2], wb2[R][2];
    float sa[R][2], ba[R][2], sb2[R][2], bb2[R][2];
    if (S > 0) load(wa, sa, ba, 0);
    if (dense_prefetch) pdl_wait();

    const int xb = pair_xbatch(p, pair);
    if (xb < 0 || xb >= p.Bx) {
      fail_rows(p, pair, M, n_lo, n_hi);
      continue;
    }

    /* Stage x: per 4-element source unit, all loads first. */
    __syncthreads(); /* the previous pair's readers are done */
    {
      const int su = p.K >> 2, total = M * su;
      /* Units per thread in flight; 2 when splitting into two terms
       * (4 made the M = 1 kernel need 119 registers, not 64). */
      constexpr int XU = I16 ? 2 : 4;
      for (int base = 0; base < total; base += XU * blockDim.x) {
        float4 v[XU];
#pragma unroll
        for (int j = 0; j < XU; j++) {
          const int i = base + j * blockDim.x + threadIdx.x;
          v[j] = make_float4(0.f, 0.f, 0.f, 0.f);
          if (i < total) {
            const int m = i / su, u = i - m * su;
            const int64_t off = ((int64_t)xb * M + m) * p.K + (int64_t)u * 4;
            if (p.xbf16) {
              const uint2 h =
                  __ldg((const uint2 *)((const unsigned short *)p.x + off));
              v[j].x = __uint_as_float(h.x << 16);
              v[j].y = __uint_as_float(h.x & 0xffff0000u);
              v[j].z = __uint_as_float(h.y << 16);
              v[j].w = __uint_as_float(h.y & 0xffff0000u);
            } else {
              v[j] = __ldg((const float4 *)((const float *)p.x + off));
            }
          }
        }
#pragma unroll
        for (int j = 0; j < XU; j++) {
          const int i = base + j * blockDim.x + threadIdx.x;
          const int m = i / su, u = i - m * su;
          const float4 t = v[j];
          float sum = (t.x + t.y) + (t.z + t.w);
          sum += __shfl_xor_sync(0xffffffffu, sum, 1);
          sum += __shfl_xor_sync(0xffffffffu, sum, 2);
          sum += __shfl_xor_sync(0xffffffffu, sum, 4);
          float scale = 1.f;
          if (I16) {
            float a = fmaxf(fmaxf(fabsf(t.x), fabsf(t.y)),
                            fmaxf(fabsf(t.z), fabsf(t.w)));
            a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, 1));
            a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, 2));
            a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, 4));
            scale = a * (1.0f / 32767.0f);
            const float inv = a > 0.f ? 32767.0f / a : 0.f;
            /* hi = round(x / xs), lo = round((x - hi xs) 65536 / xs): the
             * residual is at most xs / 2 (and a hair), so lo fits once
             * clamped. */
            auto split = [&](float v, int &h, int &l) {
              h = __float2int_rn(v * inv);
              const float r = fmaf(-(float)h, scale, v);
              l = __float2int_rn(r * (inv * 65536.0f));
              l = l < -32768 ? -32768 : l > 32767 ? 32767 : l;
            };
            int h0, h1, h2, h3, l0, l1, l2, l3;
            split(t.x, h0, l0);
            split(t.y, h1, l1);
            split(t.z, h2, l2);
            split(t.w, h3, l3);
            /* Word (u & 7) >> 1 of chunk u >> 3; this unit is its half
             * u & 1: (x0, x2), (x1, x3) or (x4, x6), (x5, x7). The lo
             * terms in the same order, M * runits units further. */
            auto pack = [](int a0, int a2) {
              return ((uint32_t)a0 & 0xffffu) | ((uint32_t)a2 << 16);
            };
            if (i < total) {
              const int o = m * runits + swz16((u >> 3) * 4 + ((u & 7) >> 1));
              ((uint2 *)(xs4 + o))[u & 1] =
                  make_uint2(pack(h0, h2), pack(h1, h3));
              ((uint2 *)(xs4 + M * runits + o))[u & 1] =
                  make_uint2(pack(l0, l2), pack(l1, l3));
            }
          } else if (i < total) {
            xs4[m * runits + swz(u)] = t;
          }
          if (i < total && (u & 7) == 0)
            xst[m * nch + (u >> 3)] = make_float2(scale, sum);
        }
      }
    }
    __syncthreads();

    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
      for (int m = 0; m < M; m++)
        acc[r][m] = 0.f;

    auto compute = [&](const uint4(&w)[R][2], const float(&sc)[R][2],
                       const float(&bi)[R][2], int s) {
      const int tile = tile0 + s / iters, it = s % iters;
      const int c0 = sub + it * 2 * T;
#pragma unroll
      for (int u = 0; u < 2; u++) {
        const int c = c0 + u * T;
        if (c < nch) {
          float d[R][M];
          if (I16) {
            /* Exact sums of q * hi and q * lo: |sum| <= 32 * 15 * 32768
             * < 2^24, so both convert to float exactly. */
            int dh[R][M], dl[R][M];
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
              for (int m = 0; m < M; m++)
                dh[r][m] = dl[r][m] = 0;
#pragma unroll
            for (int i = 0; i < 4; i++) {
              uint32_t ev[R], od[R]; /* codes 0,2,4,6 and 1,3,5,7 */
#pragma unroll
              for (int r = 0; r < R; r++) {
                const uint32_t wd = i == 0   ? w[r][u].x
                                    : i == 1 ? w[r][u].y
                                    : i == 2 ? w[r][u].z
                                             : w[r][u].w;
                ev[r] = wd & 0x0F0F0F0Fu;
                od[r] = (wd >> 4) & 0x0F0F0F0Fu;
              }
#pragma unroll
              for (int m = 0; m < M; m++) {
                const int o = m * runits + swz16(c * 4 + i);
                const uint4 xh = ((const uint4 *)xs4)[o];
                const uint4 xl = ((const uint4 *)xs4)[M * runits + o];
#pragma unroll
                for (int r = 0; r < R; r++) {
                  int t = dh[r][m];
                  t = dp2a_lo(xh.x, ev[r], t);
                  t = dp2a_lo(xh.y, od[r], t);
                  t = dp2a_hi(xh.z, ev[r], t);
                  t = dp2a_hi(xh.w, od[r], t);
                  dh[r][m] = t;
                  t = dl[r][m];
                  t = dp2a_lo(xl.x, ev[r], t);
                  t = dp2a_lo(xl.y, od[r], t);
                  t = dp2a_hi(xl.z, ev[r], t);
                  t = dp2a_hi(xl.w, od[r], t);
                  dl[r][m] = t;
                }
              }
            }
            /* x ~ xs (hi + lo / 65536): d / xs = sum q hi + sum q lo /
             * 65536 (one rounding). */
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
              for (int m = 0; m < M; m++)
                d[r][m] =
                    fmaf((float)dl[r][m], 1.0f / 65536.0f, (float)dh[r][m]);
          } else {
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
                const uint32_t wd = i == 0   ? w[r][u].x
                                    : i == 1 ? w[r][u].y
                                    : i == 2 ? w[r][u].z
                                             : w[r][u].w;
                decode8(wd, q[r]);
              }
#pragma unroll
              for (int m = 0; m < M; m++) {
                const float4 *row = xs4 + m * runits;
                const float4 a = row[swz(c * 8 + 2 * i)];
                const float4 b = row[swz(c * 8 + 2 * i + 1)];
#pragma unroll
                for (int r = 0; r < R; r++) {
                  float t = d[r][m];
                  t = fmaf(q[r][0], a.x, t);
                  t = fmaf(q[r][1], a.y, t);
                  t = fmaf(q[r][2], a.z, t);
                  t = fmaf(q[r][3], a.w, t);
                  t = fmaf(q[r][4], b.x, t);
                  t = fmaf(q[r][5], b.y, t);
                  t = fmaf(q[r][6], b.z, t);
                  t = fmaf(q[r][7], b.w, t);
                  d[r][m] = t;
                }
              }
            }
          }
#pragma unroll
          for (int m = 0; m < M; m++) {
            const float2 xt = xst[m * nch + c]; /* (scale, sum) */
#pragma unroll
            for (int r = 0; r < R; r++)
              acc[r][m] = fmaf(I16 ? sc[r][u] * xt.x : sc[r][u], d[r][m],
                               fmaf(bi[r][u], xt.y, acc[r][m]));
          }
        }
      }
      if (it != iters - 1) return;
        /* Last step of the tile: sum the T lanes of each row; lane
         * (r*M + m) % T stores. */
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
          acc[r][m] = 0.f;
        }
      }
    };

    /* Two register buffers: load step s + 1 while computing step s. */
    for (int s = 0; s < S; s += 2) {
      if (s > 0 && s % iters == 0) prefetch_tile(s / iters + 1);
      if (s + 1 < S) load(wb2, sb2, bb2, s + 1);
      compute(wa, sa, ba, s);
      if (s + 1 >= S) break;
      if ((s + 1) % iters == 0) prefetch_tile((s + 1) / iters + 1);
      if (s + 2 < S) load(wa, sa, ba, s + 2);
      compute(wb2, sb2, bb2, s + 1);
    }
  }
}

typedef void (*fused_fn)(const QmmParams, bool);

/* The fused kernel for M rows of x (1..8) and R rows per lane (1, 2, 4;
 * 4 only for M <= 2), or NULL. */
fused_fn fused_kernel_i16(int M, int R);
fused_fn fused_kernel_f32(int M, int R);

#define AM_CUDA_FUSED_TABLE(NAME, I16)                                         \
  fused_fn NAME(int M, int R) {                                                \
    static const fused_fn t1[8] = {                                            \
        qmm4_fused<1, 1, I16>, qmm4_fused<2, 1, I16>, qmm4_fused<3, 1, I16>,   \
        qmm4_fused<4, 1, I16>, qmm4_fused<5, 1, I16>, qmm4_fused<6, 1, I16>,   \
        qmm4_fused<7, 1, I16>, qmm4_fused<8, 1, I16>};                         \
    static const fused_fn t2[8] = {                                            \
        qmm4_fused<1, 2, I16>, qmm4_fused<2, 2, I16>, qmm4_fused<3, 2, I16>,   \
        qmm4_fused<4, 2, I16>, qmm4_fused<5, 2, I16>, qmm4_fused<6, 2, I16>,   \
        qmm4_fused<7, 2, I16>, qmm4_fused<8, 2, I16>};                         \
    static const fused_fn t4[2] = {qmm4_fused<1, 4, I16>,                      \
                                   qmm4_fused<2, 4, I16>};                     \
    if (M < 1 || M > 8) return nullptr;                                        \
    if (R == 1) return t1[M - 1];                                              \
    if (R == 2) return t2[M - 1];                                              \
    if (R == 4 && M <= 2) return t4[M - 1];                                    \
    return nullptr;                                                            \
  }

} // namespace am_cuda_detail

#endif /* AM_CUDA_QMM_KERNELS_CUH */
