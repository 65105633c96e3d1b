/*
 * quant_formats.h — the quantized formats shared by quant.c (quantize,
 * dequantize, embedding) and qmm.c / qmm_simd.c (the matmul kernels).
 *
 * Formats are MLX's, bit for bit (see shared/spec/quantization.md):
 *  - affine: code q in [0, 2^bits), w = scale*q + bias per group; codes
 *    form one little-endian bit stream per row (code i at stream bits
 *    [i*bits, (i+1)*bits), byte n holding bits 8n..8n+7), stored in uint32
 *    words. That one rule covers every width, 3/5/6 bits included.
 *  - mxfp4 / nvfp4: E2M1 nibbles (element 0 in the low nibble), with an
 *    E8M0 (mx, groups of 32) or E4M3 (nv, groups of 16) scale byte.
 *  - mxfp8: E4M3 bytes, E8M0 scale byte per 32.
 * E4M3 encoding/decoding copies MLX's ToFP8/FromFP8 exactly (including
 * saturation to 448 and 0x7f decoding to 480: MLX has no fp8 NaN).
 */
#ifndef AM_QUANT_FORMATS_H
#define AM_QUANT_FORMATS_H

#include "../core/internal.h"

#include <math.h>

/* ======================================================================
 *  Modes
 * ====================================================================== */

/** Group size and bits with 0 meaning the mode's default; checks that the
 * pair is one the mode supports. */
static inline am_status am_q_resolve(am_quant_mode mode, int *gs, int *bits) {
  static const int def_gs[] = {64, 32, 32, 16}, def_bits[] = {4, 4, 8, 4};
  if ((unsigned)mode >= AM_QUANT_MODE_COUNT)
    return AM_FAIL(AM_ERR_INVALID_ARG, "invalid quantization mode %d",
                   (int)mode);
  if (!*gs) *gs = def_gs[mode];
  if (!*bits) *bits = def_bits[mode];
  if (mode == AM_QUANT_AFFINE) {
    if (*gs != 32 && *gs != 64 && *gs != 128)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "affine group size %d (supported: 32, 64, 128)", *gs);
    if (*bits < 2 || *bits > 8 || *bits == 7)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "affine bits %d (supported: 2, 3, 4, 5, 6, 8)", *bits);
    return AM_OK;
  }
  if (*gs != def_gs[mode] || *bits != def_bits[mode])
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "mode %s needs group size %d and %d bits (got %d, %d)",
                   mode == AM_QUANT_MXFP4   ? "mxfp4"
                   : mode == AM_QUANT_MXFP8 ? "mxfp8"
                                            : "nvfp4",
                   def_gs[mode], def_bits[mode], *gs, *bits);
  return AM_OK;
}

static inline const char *am_q_mode_name(am_quant_mode m) {
  static const char *const n[] = {"affine", "mxfp4", "mxfp8", "nvfp4"};
  return (unsigned)m < AM_QUANT_MODE_COUNT ? n[m] : "?";
}

/** The float dtypes quantized data and activations may have. */
static inline bool am_q_is_half_or_f32(am_dtype t) {
  return t == AM_F16 || t == AM_BF16 || t == AM_F32;
}

/* ======================================================================
 *  Scalar conversions
 * ====================================================================== */

static inline float am_q_bits_f32(uint32_t b) {
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static inline uint32_t am_q_f32_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}

/** v rounded to dtype t (f16/bf16) and back; f32 and others unchanged. */
static inline float am_q_round(float v, am_dtype t) {
  if (t == AM_F16) return am_f16_to_f32(am_f32_to_f16(v));
  if (t == AM_BF16) return am_bf16_to_f32(am_f32_to_bf16(v));
  return v;
}

/** Reads one f16/bf16/f32 (or other) element as float. */
static inline float am_q_load(const void *p, am_dtype t) {
  switch (t) {
  case AM_F32:
    return *(const float *)p;
  case AM_F16:
    return am_f16_to_f32(*(const uint16_t *)p);
  case AM_BF16:
    return am_bf16_to_f32(*(const uint16_t *)p);
  default:
    return (float)am_load_f64(p, t);
  }
}

static inline void am_q_store(void *p, am_dtype t, float v) {
  switch (t) {
  case AM_F32:
    *(float *)p = v;
    break;
  case AM_F16:
    *(uint16_t *)p = am_f32_to_f16(v);
    break;
  case AM_BF16:
    *(uint16_t *)p = am_f32_to_bf16(v);
    break;
  default:
    am_store_f64(p, t, v);
  }
}

/** E2M1 values by code; bit 3 is the sign. */
static const float am_q_fp4_lut[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,
                                       4.0f,  6.0f,  -0.0f, -0.5f, -1.0f, -1.5f,
                                       -2.0f, -3.0f, -4.0f, -6.0f};

/** E4M3 byte to float as MLX's FromFP8: the 7 magnitude bits placed in a
 * float16 (<< 7) times 256, then the sign. 0x7f/0xff decode to +-480. */
static inline float am_q_fp8_to_f32(uint8_t x) {
  float v = am_f16_to_f32((uint16_t)((x & 127u) << 7)) * 256.0f;
  return (x & 128u) ? -v : v;
}

/** Float to E4M3 byte as MLX's ToFP8: round to nearest even, saturating
 * to 448 (0x7e) beyond the range, NaN and infinities included. */
static inline uint8_t am_q_f32_to_fp8(float f) {
  const uint32_t fp8_max = 543u << 21, denorm_mask = 141u << 23;
  uint32_t fb = am_q_f32_bits(f);
  uint32_t sign = fb & 0x80000000u;
  fb ^= sign;
  uint8_t r;
  if (fb >= fp8_max) {
    r = 0x7e;
  } else if (fb < (121u << 23)) {
    uint32_t low =
        am_q_f32_bits(am_q_bits_f32(fb) + am_q_bits_f32(denorm_mask));
    r = (uint8_t)(low - denorm_mask);
  } else {
    uint32_t mant_odd = (fb >> 20) & 1u;
    uint32_t high = fb + (((uint32_t)(7 - 127) << 23) + 0x7ffffu) + mant_odd;
    r = (uint8_t)(high >> 20);
  }
  return (uint8_t)(r | (sign >> 24));
}

/** E8M0 scale byte s to 2^(s-127) as MLX's CPU kernels decode it: s in the
 * float exponent field, s == 0 giving 2^-127 (subnormal), 255 infinity. */
static inline float am_q_e8m0_to_f32(uint8_t s) {
  return am_q_bits_f32(s ? (uint32_t)s << 23 : 0x00400000u);
}

/* ======================================================================
 *  Bit streams
 * ====================================================================== */

/** Code i of a packed row (bytes), `bits` wide. Reads only bytes holding
 * the code. */
static inline unsigned am_q_code(const uint8_t *row, int64_t i, int bits) {
  int64_t bit = i * bits;
  const uint8_t *p = row + (bit >> 3);
  int sh = (int)(bit & 7);
  unsigned v = p[0];
  if (sh + bits > 8) v |= (unsigned)p[1] << 8;
  return (v >> sh) & ((1u << bits) - 1u);
}

/** Writes n codes (each < 2^bits) as a bit stream into row, which must be
 * zeroed first. */
static inline void am_q_pack(uint8_t *row, const uint8_t *codes, int64_t n,
                             int bits) {
  for (int64_t i = 0; i < n; i++) {
    int64_t bit = i * bits;
    uint8_t *p = row + (bit >> 3);
    int sh = (int)(bit & 7);
    unsigned v = (unsigned)codes[i] << sh;
    p[0] |= (uint8_t)v;
    if (sh + bits > 8) p[1] |= (uint8_t)(v >> 8);
  }
}

/* ======================================================================
 *  Quantizing one group, exactly as MLX
 * ====================================================================== */

/** Affine (MLX's CPU quantize<T>): w holds the group as float values of
 * the input dtype. NaN elements are ignored by min/max (std::max order)
 * and quantize as 0 would; results of groups with infinities follow the
 * float arithmetic, with a NaN code clamped to 0. */
static inline void am_q_affine_group(const float *w, int gs, int bits,
                                     uint8_t *codes, float *scale_out,
                                     float *bias_out) {
  float n_bins = (float)((1 << bits) - 1), eps = 1e-7f;
  float wmin = INFINITY, wmax = -INFINITY;
  for (int j = 0; j < gs; j++) {
    wmax = (wmax < w[j]) ? w[j] : wmax; /* std::max(wmax, w) */
    wmin = (w[j] < wmin) ? w[j] : wmin; /* std::min(wmin, w) */
  }
  bool mask = fabsf(wmin) > fabsf(wmax);
  float d = (wmax - wmin) / n_bins;
  float scale = (d < eps) ? eps : d; /* std::max(d, eps) */
  scale = mask ? scale : -scale;
  float edge = mask ? wmin : wmax;
  float q0 = rintf(edge / scale), bias = 0;
  if (q0 != 0) {
    scale = edge / q0;
    bias = edge;
  }
  for (int j = 0; j < gs; j++) {
    float v = isnan(w[j]) ? 0.0f : w[j];
    float q = rintf((v - bias) / scale);
    q = q < 0.0f ? 0.0f : q; /* also maps NaN (no comparison holds) ... */
    q = q > n_bins ? n_bins : q;
    codes[j] = (q >= 0.0f && q <= n_bins) ? (uint8_t)q : 0; /* ... to 0 */
  }
  *scale_out = scale;
  *bias_out = bias;
}

/** Index of the E2M1 value nearest to v, ties and non-finite v going to
 * the first LUT entry (MLX's argmin of |v - lut| over the LUT rounded to
 * t, with the differences computed in dtype `dt`). */
static inline uint8_t am_q_fp4_nearest(float v, am_dtype dt) {
  if (!isfinite(v)) return 0;
  uint8_t best = 0;
  float bd = fabsf(am_q_round(v - am_q_fp4_lut[0], dt));
  for (int i = 1; i < 16; i++) {
    float d = fabsf(am_q_round(v - am_q_fp4_lut[i], dt));
    if (d < bd) {
      bd = d;
      best = (uint8_t)i;
    }
  }
  return best;
}

/** ceil(log2(s)) for a finite s > 0, exactly (from the float's bits). */
static inline int am_q_ceil_log2(float s) {
  uint32_t b = am_q_f32_bits(s), m = b & 0x7fffffu;
  int ex = (int)((b >> 23) & 0xffu);
  if (ex) return ex - 127 + (m != 0);
  int fl = 31 - __builtin_clz(m); /* subnormal: s = m * 2^-149 */
  return fl - 149 + ((m & (m - 1)) != 0);
}

/** mxfp4 / mxfp8, as MLX 0.32.4's CPU quantize: the scale is the smallest
 * power of two 2^e >= amax / maxval (maxval 6 for E2M1, 448 for E4M3;
 * e = 0 for an all-zero group), computed in float32 from the input
 * values, clamped to E8M0's [-127, 127] and stored as e + 127; elements
 * w / 2^e go to the nearest E2M1 value (ties and non-finite values to the
 * first LUT entry, so towards the smaller magnitude, and -0.25 to +0) or
 * to E4M3 (MLX's ToFP8). A group holding NaN or an infinity gets scale
 * byte 0xff (E8M0 NaN, which decodes to infinity) and codes 0, so it
 * dequantizes to NaN. MLX wraps exponents below -127 instead of clamping
 * them, and gives a group holding NaN/inf the exponent 1. */
static inline void am_q_mx_group(const float *w, int gs, bool fp8,
                                 uint8_t *codes, uint8_t *scale_out) {
  float amax = 0;
  bool finite = true;
  for (int j = 0; j < gs; j++) {
    float a = fabsf(w[j]);
    if (!isfinite(a))
      finite = false;
    else if (a > amax)
      amax = a;
  }
  if (!finite) {
    memset(codes, 0, (size_t)gs);
    *scale_out = 0xff;
    return;
  }
  float s = amax / (fp8 ? 448.0f : 6.0f);
  int e = s == 0 ? 0 : am_q_ceil_log2(s);
  e = e < -127 ? -127 : e > 127 ? 127 : e;
  float p2 = ldexpf(1.0f, e);
  for (int j = 0; j < gs; j++) {
    float v = w[j] / p2;
    codes[j] = fp8 ? am_q_f32_to_fp8(v) : am_q_fp4_nearest(v, AM_F32);
  }
  *scale_out = (uint8_t)(e + 127);
}

/** nvfp4 (MLX's op fallback): enc = 448*6 / global_scale (1 without);
 * scale byte = e4m3((amax/6 in t) * enc); elements e2m1(w / fp8(scale) in
 * t, times enc in float32). Follows the float arithmetic throughout, so
 * NaN/inf saturate the scale to 448 and give code 0. */
static inline void am_q_nv_group(const float *w, int gs, am_dtype t,
                                 bool has_global, float global, uint8_t *codes,
                                 uint8_t *scale_out) {
  float amax = 0;
  for (int j = 0; j < gs; j++) {
    float a = fabsf(w[j]);
    amax = (isnan(a) || a > amax) && !isnan(amax) ? a : amax;
  }
  float enc = has_global ? (448.0f * 6.0f) / global : 1.0f;
  uint8_t sb = am_q_f32_to_fp8(am_q_round(amax / 6.0f, t) * enc);
  float sd = am_q_round(am_q_fp8_to_f32(sb), t);
  for (int j = 0; j < gs; j++)
    codes[j] = am_q_fp4_nearest(am_q_round(w[j] / sd, t) * enc, AM_F32);
  *scale_out = sb;
}

/* ======================================================================
 *  Fast decoding for the matmul kernels (qmm.c, qmm_simd.c)
 * ====================================================================== */

/** One quantized (or dense float) weight format as the kernels see it. */
typedef struct {
  am_quant_mode mode;
  int bits, gs;
  am_dtype sdt, bdt; /* scale / bias dtypes (affine)               */
  bool dense;        /* gather_mm: plain float rows of dtype `ddt` */
  am_dtype ddt;
} am_qfmt;

/** Decodes elements [k0, k0 + n) of one row into float: `codes` is the
 * packed row, `scales` / `biases` that row's per-group values (affine;
 * biases NULL otherwise). k0 and n are multiples of the group size, or
 * any range for dense rows (then `codes` is the float row). Plain float
 * math (scale * q + bias), no rounding to the scale dtype. */
typedef void (*am_q_decode_fn)(const am_qfmt *f, const void *codes,
                               const void *scales, const void *biases,
                               int64_t k0, int64_t n, float *out);

/** The fastest decoder for f on this CPU (never NULL). */
am_q_decode_fn am_q_decoder(const am_qfmt *f);

/** Dot products of one float row a with nb (<= 4) rows of b (row stride
 * ldb): out[j] = sum_k a[k] * b[j*ldb + k], k < n. */
typedef void (*am_q_dot_fn)(const float *a, const float *b, int64_t ldb, int nb,
                            int64_t n, float *out);
/** y[0..n) += sum_{i < nk} xs[i] * w[i*ldw + 0..n). */
typedef void (*am_q_axpy_fn)(const float *xs, int nk, const float *w,
                             int64_t ldw, int64_t n, float *y);

am_q_dot_fn am_q_dot_kernel(void);
am_q_axpy_fn am_q_axpy_kernel(void);

/** Dot products of 4 rows of a (pointers) with 4 rows of b (stride ldb):
 * out[i*4 + j] = sum_k a[i][k] * b[j*ldb + k], k < n. */
typedef void (*am_q_dot44_fn)(const float *const *a, const float *b,
                              int64_t ldb, int64_t n, float *out);

/** The fused GEMV of a format (transposed weights, decoded in registers):
 * prep rewrites one x row of K floats into the kernel's element order
 * (xp, room for K + K / gs floats) and, for affine, the row's per-group
 * sums (xsum);
 * gemv computes out[r*nw + j] = x_r . deq(W row j) for nr <= max_rows
 * (see am_q_fused_simd) prepared
 * rows and nw weight rows (row strides w_row, s_row, b_row in bytes; K
 * elements each). */
typedef void (*am_q_prep_fn)(const float *x, int64_t K, int gs, float *xp,
                             float *xsum);
typedef void (*am_q_gemv_fn)(const am_qfmt *f, const uint8_t *w, int64_t w_row,
                             const char *s, int64_t s_row, const char *b,
                             int64_t b_row, int64_t K, const float *const *xp,
                             const float *const *xsum, int nr, int nw,
                             float *out);

/** SIMD versions (qmm_simd.c); NULL when the CPU lacks the ISA. */
am_q_decode_fn am_q_decoder_simd(const am_qfmt *f);
am_q_dot_fn am_q_dot_simd(void);
am_q_axpy_fn am_q_axpy_simd(void);
am_q_dot44_fn am_q_dot44_simd(void);
/** The fused GEMV for f (affine 4/8 bits, mxfp4, mxfp8, nvfp4), or false
 * when there is none for it on this CPU (rows of K elements). xdt: x's
 * dtype: bfloat16 values allow a bfloat16 dot-product kernel (prep then
 * writes bfloat16 elements), float32 ones the 16-bit integer kernel
 * (unless am_set_qmm_float_kernels). */
bool am_q_fused_simd(const am_qfmt *f, int64_t K, am_dtype xdt,
                     am_q_prep_fn *prep, am_q_gemv_fn *gemv, int *max_rows);

/** Test switch: the instruction set the kernels may use: 0 the best one
 * (default), 1 portable C only, 2 up to AVX2, 512 up to AVX-512 (F, BW),
 * 1024 also AVX512-BF16. */
void am_qmm_set_isa(int isa);

/** Bench/test switch: when false, gather_qmm / gather_mm run one small
 * matmul per index pair instead of grouping pairs by weight matrix (the
 * naive path, to measure what grouping buys). Default true. */
void am_qmm_set_grouping(bool on);

#endif /* AM_QUANT_FORMATS_H */
