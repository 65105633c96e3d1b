/*
 * quant.cu — quantize and dequantize (and the quantized embedding, which
 * is a dequantize of gathered rows) on CUDA, bit-exact with the CPU
 * kernels of src/ops/quant.c (MLX's formats). Every rounding step of the
 * CPU is spelled out with __f*_rn intrinsics: nvcc would otherwise fuse a
 * multiply and an add into one FMA and change a code or a scale.
 */
#include "cuda_internal.h"
#include "linalg.h"
#include "quant_dev.h"

using namespace amq;

namespace {

struct QArgs {
  const void *w;
  int wdt;
  int64_t rows, k, ng;
  int mode, gs, bits;
  const float *global;
  uint8_t *wq;
  void *scales, *biases;
};

__device__ int ceil_log2(float s) {
  uint32_t b = __float_as_uint(s), m = b & 0x7fffffu;
  int ex = (int)((b >> 23) & 0xffu);
  if (ex) return ex - 127 + (m != 0);
  int fl = 31 - __clz(m);
  return fl - 149 + ((m & (m - 1)) != 0);
}

/* One thread per group (at most 128 elements). */
__global__ void quantize_kernel(const QArgs a) {
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= a.rows * a.ng) return;
  const int gs = a.gs, bits = a.bits;
  const int64_t base = t * gs; /* element index of the group's first */
  float w[128];
  uint8_t c[128];
  for (int j = 0; j < gs; j++)
    w[j] = ldf(a.w, base + j, a.wdt);
  if (a.mode == AM_QUANT_AFFINE) {
    const float n_bins = (float)((1 << bits) - 1), eps = 1e-7f;
    float wmin = INFINITY, wmax = -INFINITY;
    for (int j = 0; j < gs; j++) {
      wmax = (wmax < w[j]) ? w[j] : wmax;
      wmin = (w[j] < wmin) ? w[j] : wmin;
    }
    bool mask = fabsf(wmin) > fabsf(wmax);
    float d = __fdiv_rn(__fsub_rn(wmax, wmin), n_bins);
    float scale = (d < eps) ? eps : d;
    scale = mask ? scale : -scale;
    float edge = mask ? wmin : wmax;
    float q0 = rintf(__fdiv_rn(edge, scale)), bias = 0;
    if (q0 != 0) {
      scale = __fdiv_rn(edge, q0);
      bias = edge;
    }
    for (int j = 0; j < gs; j++) {
      float v = isnan(w[j]) ? 0.0f : w[j];
      float q = rintf(__fdiv_rn(__fsub_rn(v, bias), scale));
      q = q < 0.0f ? 0.0f : q;
      q = q > n_bins ? n_bins : q;
      c[j] = (q >= 0.0f && q <= n_bins) ? (uint8_t)q : 0;
    }
    stf(a.scales, t, a.wdt, scale);
    stf(a.biases, t, a.wdt, bias);
  } else if (a.mode == AM_QUANT_NVFP4) {
    float amax = 0;
    for (int j = 0; j < gs; j++) {
      float v = fabsf(w[j]);
      amax = (isnan(v) || v > amax) && !isnan(amax) ? v : amax;
    }
    float enc = a.global ? __fdiv_rn(448.0f * 6.0f, *a.global) : 1.0f;
    uint8_t sb = to_fp8(__fmul_rn(rnd(__fdiv_rn(amax, 6.0f), a.wdt), enc));
    float sd = rnd(fp8(sb), a.wdt);
    for (int j = 0; j < gs; j++)
      c[j] =
          fp4_nearest(__fmul_rn(rnd(__fdiv_rn(w[j], sd), a.wdt), enc), AM_F32);
    ((uint8_t *)a.scales)[t] = sb;
  } else {
    const bool f8 = a.mode == AM_QUANT_MXFP8;
    float amax = 0;
    bool finite = true;
    for (int j = 0; j < gs; j++) {
      float v = fabsf(w[j]);
      if (!isfinite(v))
        finite = false;
      else if (v > amax)
        amax = v;
    }
    if (!finite) {
      for (int j = 0; j < gs; j++)
        c[j] = 0;
      ((uint8_t *)a.scales)[t] = 0xff;
    } else {
      float s = __fdiv_rn(amax, f8 ? 448.0f : 6.0f);
      int e = s == 0 ? 0 : ceil_log2(s);
      e = e < -127 ? -127 : e > 127 ? 127 : e;
      float p2 = ldexpf(1.0f, e);
      for (int j = 0; j < gs; j++) {
        float v = __fdiv_rn(w[j], p2);
        c[j] = f8 ? to_fp8(v) : fp4_nearest(v, AM_F32);
      }
      ((uint8_t *)a.scales)[t] = (uint8_t)(e + 127);
    }
  }
  /* A group's codes fill whole bytes (gs * bits is a multiple of 8). */
  uint8_t *out = a.wq + t * (int64_t)(gs * bits / 8);
  unsigned acc = 0;
  int nacc = 0, o = 0;
  for (int j = 0; j < gs; j++) {
    acc |= (unsigned)c[j] << nacc;
    nacc += bits;
    while (nacc >= 8) {
      out[o++] = (uint8_t)acc;
      acc >>= 8;
      nacc -= 8;
    }
  }
}

struct DArgs {
  const uint8_t *w;
  const void *s, *b;
  int sdt, bdt, sbdt, odt;
  int mode, gs, bits;
  const float *global;
  const int64_t *idx;
  int64_t n_table, rows, k;
  void *out;
};

__global__ void dequantize_kernel(const DArgs a) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= a.rows * a.k) return;
  int64_t r = i / a.k, col = i % a.k;
  int64_t tr = r;
  if (a.idx) {
    tr = a.idx[r];
    if (tr < 0) tr += a.n_table;
    if (tr < 0 || tr >= a.n_table) { /* the CPU refuses; NaN here */
      stf(a.out, i, a.odt, __int_as_float(0x7fc00000));
      return;
    }
  }
  const int64_t ng = a.k / a.gs, g = tr * ng + col / a.gs;
  const uint8_t *row = a.w + tr * (a.k * a.bits / 8);
  unsigned q = code(row, col, a.bits);
  float v;
  if (a.mode == AM_QUANT_AFFINE) {
    float sc = ldf(a.s, g, a.sdt), bi = ldf(a.b, g, a.bdt);
    v = rnd(__fmul_rn((float)q, sc), a.sdt);
    v = rnd(__fadd_rn(v, bi), a.sbdt);
  } else {
    unsigned sb = ((const uint8_t *)a.s)[g];
    float sc;
    if (a.mode == AM_QUANT_NVFP4)
      sc = a.global ? __fmul_rn(fp8(sb), __fdiv_rn(*a.global, 448.0f * 6.0f))
                    : rnd(fp8(sb), a.odt);
    else
      sc = rnd(e8m0(sb), a.odt);
    v = __fmul_rn(a.mode == AM_QUANT_MXFP8 ? fp8(q) : fp4(q), sc);
  }
  stf(a.out, i, a.odt, v);
}

unsigned blocks(int64_t n, int t) {
  return (unsigned)((n + t - 1) / t);
}

} // namespace

extern "C" am_status am_cuda_quantize(const void *w, am_dtype wdt, int64_t rows,
                                      int64_t k, int mode, int gs, int bits,
                                      const float *global, void *wq,
                                      void *scales, void *biases) {
  if (gs > 128 || gs < 1 || (gs * bits) % 8)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "quantize: group size %d", gs);
  QArgs a = {w,    (int)wdt, rows,          k,      k / gs, mode, gs,
             bits, global,   (uint8_t *)wq, scales, biases};
  int64_t n = rows * a.ng;
  if (n <= 0) return AM_OK;
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  if (!st) return AM_ERR_DEVICE;
  quantize_kernel<<<blocks(n, 128), 128, 0, st>>>(a);
  return am_cuda_check(cudaGetLastError(), "quantize kernel");
}

extern "C" am_status
am_cuda_dequantize(const void *w, const void *s, am_dtype sdt, const void *b,
                   am_dtype bdt, int mode, int gs, int bits,
                   const float *global, const int64_t *idx, int64_t n_table,
                   int64_t rows, int64_t k, void *out, am_dtype odt) {
  DArgs a = {(const uint8_t *)w,
             s,
             b,
             (int)sdt,
             (int)bdt,
             (int)(sdt == bdt ? sdt : AM_F32),
             (int)odt,
             mode,
             gs,
             bits,
             global,
             idx,
             n_table,
             rows,
             k,
             out};
  int64_t n = rows * k;
  if (n <= 0) return AM_OK;
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  if (!st) return AM_ERR_DEVICE;
  dequantize_kernel<<<blocks(n, 256), 256, 0, st>>>(a);
  return am_cuda_check(cudaGetLastError(), "dequantize kernel");
}
