/*
 * linalg.cu — kernels of matmul's helpers and of the gathered / quantized
 * matmuls (gather_mm, quantized_matmul, gather_qmm) on CUDA.
 *
 * The generic matmul kernel covers every weight format (dense float,
 * affine 2-8 bits, mxfp4, mxfp8, nvfp4), both weight orientations and any
 * pair list: a block computes a BM x 64 output tile of one (x, W) pair,
 * walking K in chunks of 32; each chunk's weight tile is decoded once
 * into shared memory (float32, exactly as the CPU decodes: scale * q +
 * bias, no rounding to the scale dtype) and multiplied by the x tile, sums
 * in float32. Decoding threads walk along the packed rows (k for
 * transposed weights, n otherwise) so their reads coalesce. The fast
 * affine GEMV of qmm.cu takes the decode-shaped cases (see linalg.c).
 */
#include "cuda_internal.h"
#include "linalg.h"
#include "quant_dev.h"

using namespace amq;

namespace {

unsigned blocks(int64_t n, int t) {
  return (unsigned)((n + t - 1) / t);
}

__global__ void mm_ptrs_kernel(const am_cuda_mm_ptr_args a, void **ptrs) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= a.n) return;
  int64_t oa = 0, ob = 0, r = i;
  for (int d = a.nd - 1; d >= 0; d--) {
    int64_t j = r % a.shape[d];
    r /= a.shape[d];
    oa += j * a.sa[d];
    ob += j * a.sb[d];
  }
  ptrs[i] = (void *)(a.a + oa);
  ptrs[a.n + i] = (void *)(a.b + ob);
  ptrs[2 * a.n + i] = (void *)(a.c + i * a.c_bytes);
}

__global__ void mm_scale_kernel(void *c, int dt, int64_t n, double beta) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (dt == AM_F64) {
    double *p = (double *)c;
    p[i] = beta == 0 ? 0.0 : p[i] * beta;
  } else {
    stf(c, i, dt, beta == 0 ? 0.f : ldf(c, i, dt) * (float)beta);
  }
}

__global__ void indices_kernel(const am_cuda_idx_args a, int32_t *out,
                               int64_t P) {
  int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= P) return;
  int64_t off = 0, r = p;
  for (int d = a.nd - 1; d >= 0; d--) {
    off += (r % a.shape[d]) * a.strides[d];
    r /= a.shape[d];
  }
  int64_t v = off;
  if (a.data) switch (a.dtype) {
    case AM_U8:
      v = ((const uint8_t *)a.data)[off];
      break;
    case AM_I8:
      v = ((const int8_t *)a.data)[off];
      break;
    case AM_U32:
      v = ((const uint32_t *)a.data)[off];
      break;
    case AM_I32:
      v = ((const int32_t *)a.data)[off];
      break;
    case AM_I64:
      v = ((const int64_t *)a.data)[off];
      break;
    default:
      v = -1;
    }
  out[p] = (v < 0 || v >= a.n) ? -1 : (int32_t)v;
}

constexpr int BN = 64, BK = 32, NT = 256;

/* Element (k, n) of weight matrix e, as float. */
__device__ __forceinline__ float wval(const am_cuda_qmm_gen_args &a, int64_t e,
                                      int64_t k, int64_t n) {
  const int64_t R = a.transpose ? a.N : a.K, L = a.transpose ? a.K : a.N;
  const int64_t row = e * R + (a.transpose ? n : k), col = a.transpose ? k : n;
  if (a.dense) return ldf(a.w, row * L + col, a.wdt);
  const uint8_t *rp = (const uint8_t *)a.w + row * (L * a.bits / 8);
  const unsigned q = code(rp, col, a.bits);
  const int64_t g = row * (L / a.gs) + col / a.gs;
  switch (a.mode) {
  case AM_QUANT_AFFINE:
    return ldf(a.s, g, a.sdt) * (float)q + ldf(a.b, g, a.bdt);
  case AM_QUANT_MXFP8:
    return fp8(q) * e8m0(((const uint8_t *)a.s)[g]);
  case AM_QUANT_MXFP4:
    return fp4(q) * e8m0(((const uint8_t *)a.s)[g]);
  default:
    return fp4(q) * fp8(((const uint8_t *)a.s)[g]);
  }
}

template <int BM>
__global__ void __launch_bounds__(NT) qmm_tiled(const am_cuda_qmm_gen_args a) {
  __shared__ float xs[BM][BK + 1];
  __shared__ float ws[BK][BN + 1];
  constexpr int RPT = BM / (NT / BN); /* output rows per thread */
  const int tid = threadIdx.x, tx = tid % BN, ty = tid / BN;
  const int64_t n0 = (int64_t)blockIdx.x * BN, m0 = (int64_t)blockIdx.y * BM;
  for (int64_t p = blockIdx.z; p < a.P; p += gridDim.z) {
    const int32_t xi = a.lhs[p], e = a.rhs[p];
    const bool bad = xi < 0 || xi >= a.n_x || e < 0 || e >= a.n_w;
    float acc[RPT];
    for (int r = 0; r < RPT; r++)
      acc[r] = bad ? __int_as_float(0x7fc00000) : 0.f;
    if (!bad) {
      const int64_t xb = (int64_t)xi * a.M * a.K;
      for (int64_t k0 = 0; k0 < a.K; k0 += BK) {
        for (int i = tid; i < BM * BK; i += NT) {
          int r = i / BK, c = i % BK;
          int64_t m = m0 + r, k = k0 + c;
          xs[r][c] =
              (m < a.M && k < a.K) ? ldf(a.x, xb + m * a.K + k, a.xdt) : 0.f;
        }
        for (int i = tid; i < BK * BN; i += NT) {
          int kk, nn;
          if (a.transpose) {
            kk = i % BK;
            nn = i / BK;
          } else {
            nn = i % BN;
            kk = i / BN;
          }
          int64_t n = n0 + nn, k = k0 + kk;
          ws[kk][nn] = (n < a.N && k < a.K) ? wval(a, e, k, n) : 0.f;
        }
        __syncthreads();
        for (int kk = 0; kk < BK; kk++) {
          const float wv = ws[kk][tx];
          for (int r = 0; r < RPT; r++)
            acc[r] = fmaf(xs[ty + r * (NT / BN)][kk], wv, acc[r]);
        }
        __syncthreads();
      }
    }
    const int64_t n = n0 + tx;
    if (n >= a.N) continue;
    for (int r = 0; r < RPT; r++) {
      int64_t m = m0 + ty + r * (NT / BN);
      if (m < a.M) stf(a.y, (p * a.M + m) * a.N + n, a.ydt, acc[r]);
    }
  }
}

} // namespace

extern "C" am_status am_cuda_mm_ptrs(const am_cuda_mm_ptr_args *a,
                                     void **ptrs) {
  if (a->n <= 0) return AM_OK;
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  if (!st) return AM_ERR_DEVICE;
  mm_ptrs_kernel<<<blocks(a->n, 256), 256, 0, st>>>(*a, ptrs);
  return am_cuda_check(cudaGetLastError(), "matmul pointer kernel");
}

extern "C" am_status am_cuda_mm_scale(void *c, am_dtype dt, int64_t n,
                                      double beta) {
  if (n <= 0) return AM_OK;
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  if (!st) return AM_ERR_DEVICE;
  mm_scale_kernel<<<blocks(n, 256), 256, 0, st>>>(c, (int)dt, n, beta);
  return am_cuda_check(cudaGetLastError(), "matmul scale kernel");
}

extern "C" am_status am_cuda_gather_indices(const am_cuda_idx_args *a,
                                            int32_t *out, int64_t P) {
  if (P <= 0) return AM_OK;
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  if (!st) return AM_ERR_DEVICE;
  indices_kernel<<<blocks(P, 256), 256, 0, st>>>(*a, out, P);
  return am_cuda_check(cudaGetLastError(), "gather index kernel");
}

extern "C" am_status am_cuda_qmm_generic(const am_cuda_qmm_gen_args *a) {
  if (a->P <= 0 || a->M <= 0 || a->N <= 0) return AM_OK;
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  if (!st) return AM_ERR_DEVICE;
  const unsigned gx = blocks(a->N, BN);
  /* pairs beyond the grid's z limit loop inside the kernel */
  const unsigned gz = (unsigned)(a->P < 65535 ? a->P : 65535);
  if (a->M <= 4) {
    qmm_tiled<4><<<dim3(gx, blocks(a->M, 4), gz), NT, 0, st>>>(*a);
  } else if (a->M <= 16) {
    qmm_tiled<16><<<dim3(gx, blocks(a->M, 16), gz), NT, 0, st>>>(*a);
  } else {
    if (blocks(a->M, 64) > 65535)
      return am_cuda_fail(AM_ERR_UNSUPPORTED, "gather matmul: M=%lld",
                          (long long)a->M);
    qmm_tiled<64><<<dim3(gx, blocks(a->M, 64), gz), NT, 0, st>>>(*a);
  }
  return am_cuda_check(cudaGetLastError(), "gather matmul kernel");
}
