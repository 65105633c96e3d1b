/*
 * qmm.cu — affine quantized matmul / gather_qmm on CUDA (MLX layout,
 * transposed weights), the host side: argument checks, layout choice,
 * launches; and the reference kernel. The fused kernel and its design
 * are in qmm_kernels.cuh.
 */
#include "cuda_internal.h"
#include "qmm_kernels.cuh"

#include <pthread.h>

using namespace am_cuda_detail;

namespace {

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

am_cuda_qmm_tuning g_tuning;

int ilog2(int v) {
  int s = 0;
  while ((1 << s) < v)
    s++;
  return s;
}

} // namespace

/* The current device's out-of-range-index flag (a device word), made
 * on first use; NULL (error set) on failure. */
static pthread_mutex_t g_flag_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned int *g_flag[64];

static unsigned int *index_flag(void) {
  int dev = 0;
  if (am_cuda_check(cudaGetDevice(&dev), "cudaGetDevice") != AM_OK)
    return nullptr;
  if (dev < 0 || dev >= 64) {
    am_cuda_fail(AM_ERR_UNSUPPORTED, "cuda: device %d: too many", dev);
    return nullptr;
  }
  pthread_mutex_lock(&g_flag_mu);
  unsigned int *f = g_flag[dev];
  if (!f) {
    void *p = nullptr;
    if (am_cuda_check(cudaMalloc(&p, sizeof(unsigned int)),
                      "cudaMalloc(index flag)") == AM_OK &&
        am_cuda_check(cudaMemset(p, 0, sizeof(unsigned int)),
                      "cudaMemset(index flag)") == AM_OK)
      f = g_flag[dev] = (unsigned int *)p;
    else if (p)
      cudaFree(p);
  }
  pthread_mutex_unlock(&g_flag_mu);
  return f;
}

extern "C" void am_cuda_qmm_release(void) {
  pthread_mutex_lock(&g_flag_mu);
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess) cur = -1;
  for (int d = 0; d < 64; d++)
    if (g_flag[d]) {
      if (cudaSetDevice(d) == cudaSuccess) cudaFree(g_flag[d]);
      g_flag[d] = nullptr;
    }
  if (cur >= 0) cudaSetDevice(cur);
  (void)cudaGetLastError();
  pthread_mutex_unlock(&g_flag_mu);
}

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
  p.err = index_flag();
  if (!p.err) return AM_ERR_DEVICE;
  const unsigned gy = (unsigned)(a->P < 65535 ? a->P : 65535);
  const int M = (int)a->M, K = (int)a->K;
  const am_cuda_qmm_tuning tn = g_tuning;

  /* Fused path: 4 bits, M <= 8, 16-byte aligned rows and x. */
  bool fused = !tn.force_ref && a->bits == 4 && M <= 8 &&
               ((uintptr_t)a->w & 15) == 0 &&
               ((uintptr_t)a->x & (a->x_dtype == AM_BF16 ? 7 : 15)) == 0;
  /* x (float32, or two 16-bit integer terms) and a (scale, sum) per
   * chunk. */
  size_t smem = (size_t)M * K * 4 + (size_t)M * (K / 32) * 8;
  if (smem > info->smem_per_block_optin) fused = false;
  if (fused) {
    const int nch = K / 32;
    /* Measured on an H100 (bench/cuda_qmm --sweep): 8 lanes per row, one
     * row per lane (two for M > 2), 8 warps; for M <= 2, 16 lanes when
     * that makes too few tiles to fill the device (shorter chains per
     * warp). For M > 2, 8 lanes stay better (MoE gate M = 4: 17.8 us
     * with 8 lanes, 22.1 with 16; dense M = 4, 8: the same). */
    int R = tn.rows ? tn.rows : (M <= 2 ? 1 : 2);
    int W = tn.warps ? tn.warps : 8;
    int T = tn.lanes;
    if (!T) {
      int64_t tiles8 = (a->N + W * 4 * R - 1) / (W * 4 * R) * a->P;
      T = (M <= 2 && nch >= 32 && tiles8 < 2 * info->sm_count) ? 16 : 8;
    }
    if (R == 4 && M > 2) R = 2; /* not instantiated */
    if ((T != 8 && T != 16 && T != 32) || W < 1 || W > 8)
      return am_cuda_fail(AM_ERR_INVALID_ARG,
                          "cuda qmm: tuning lanes=%d warps=%d", T, W);
    fused_fn fn = a->precise ? fused_kernel_f32(M, R) : fused_kernel_i16(M, R);
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
    /* Off by default: it cost 5-15% in every case measured (H100). */
    p.l2pf = tn.l2_prefetch == 1;
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
  unsigned int *f = index_flag();
  if (!f) return AM_ERR_DEVICE;
  unsigned int flag = 0;
  AM_CUDA_TRY(
      cudaMemcpyAsync(&flag, f, sizeof flag, cudaMemcpyDeviceToHost, s));
  AM_CUDA_TRY(cudaStreamSynchronize(s));
  if (!flag) return AM_OK;
  AM_CUDA_TRY(cudaMemsetAsync(f, 0, sizeof flag, s));
  AM_CUDA_TRY(cudaStreamSynchronize(s));
  return am_cuda_fail(AM_ERR_INVALID_ARG,
                      "cuda gather_qmm: an index was outside the batch of x "
                      "or w (that pair's output is NaN)");
}
