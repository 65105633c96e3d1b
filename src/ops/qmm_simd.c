/*
 * qmm_simd.c — AVX2 and AVX-512 kernels of the quantized matmuls, chosen
 * at run time: row decoders (packed codes + group scales to float), dot
 * products (1x4 and 4x4 blocks), multi-row axpys, and the fused GEMVs that
 * decode codes in registers (see qmm.c for when each runs).
 *
 * The kernels are written once, in the second half of this file, against
 * a small vector vocabulary; the first half defines the vocabulary for one
 * instruction set and includes this very file again to instantiate them
 * (QMM_ISA tells which pass is running). Functions carry target
 * attributes, so the library builds for any x86-64 and only hands out
 * kernels the CPU supports; elsewhere it hands out none and qmm.c's
 * portable kernels run.
 *
 * Decoding works on 16 codes at a time, as 16 bytes in natural order (one
 * code per byte) that a per-ISA helper widens to float: 4-bit codes
 * (affine, E2M1) interleave the low and high nibbles of 8 bytes, 8-bit
 * codes are the bytes, 2-bit codes come from shifts of one word, and
 * 3/5/6-bit codes are extracted one by one (rare formats). E2M1 maps
 * through a 16-entry table permute, E4M3 through float16 conversion (as
 * MLX's FromFP8: magnitude bits << 7 as a half, times 256).
 *
 * The fused GEMVs never put codes in natural order: x is laid out (once
 * per call) in the order the codes come out of the words, low nibbles
 * then high nibbles, or, for the affine 4-bit "lane" kernels, code k of
 * every 32-bit lane (see prep4l_f32), which needs neither shuffles nor
 * int-to-float conversions.
 */
#ifndef QMM_ISA
#include "quant_formats.h"

#include <stdlib.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

/* ============================================================== AVX2 */
#define QMM_ISA 2
#define KFN __attribute__((target("avx2,fma,f16c")))
#define KFNI KFN __attribute__((always_inline)) inline
#define KNAME(x) x##_avx2
#define W 8
#define V __m256
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VADD _mm256_add_ps
#define VMUL _mm256_mul_ps
#include "qmm_simd.c"
#undef QMM_ISA
#undef KFN
#undef KFNI
#undef KNAME
#undef W
#undef V
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VFMA
#undef VADD
#undef VMUL

/* =========================================================== AVX-512 */
#define QMM_ISA 512
#define KFN __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
#define KFNI KFN __attribute__((always_inline)) inline
#define KFNB                                                                   \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma,f16c")))
#define KNAME(x) x##_avx512
#define W 16
#define V __m512
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VADD _mm512_add_ps
#define VMUL _mm512_mul_ps
#include "qmm_simd.c"

static atomic_int g_isa; /* am_qmm_set_isa */
void am_qmm_set_isa(int isa) {
  atomic_store(&g_isa, isa);
}

static bool use512(void) {
  int f = atomic_load(&g_isa);
  return (f == 0 || f >= 512) && am_cpu_has_avx512();
}
static bool use_bf16(void) {
  int f = atomic_load(&g_isa);
  return (f == 0 || f >= 1024) && am_cpu_has_avx512() &&
         am_cpu_has_avx512bf16();
}
/* am_set_qmm_float_kernels / AM_QMM_FLOAT: 0 unknown, 1 float, 2 integer */
static atomic_int g_precise;
void am_set_qmm_float_kernels(bool on) {
  atomic_store(&g_precise, on ? 1 : 2);
}
static bool use_vnni(void) {
  int p = atomic_load(&g_precise);
  if (!p) {
    const char *e = getenv("AM_QMM_FLOAT");
    p = e && *e && *e != '0' ? 1 : 2;
    atomic_store(&g_precise, p);
  }
  int f = atomic_load(&g_isa);
  return p == 2 && (f == 0 || f >= 1024) && am_cpu_has_avx512() &&
         am_cpu_has_avx512vnni();
}
static bool use2(void) {
  int f = atomic_load(&g_isa);
  return (f == 0 || f >= 2) && am_cpu_has_avx2();
}

am_q_decode_fn am_q_decoder_simd(const am_qfmt *f) {
  if (f->dense) return NULL;
  return use512() ? decode_avx512 : use2() ? decode_avx2 : NULL;
}
am_q_dot_fn am_q_dot_simd(void) {
  return use512() ? dot_avx512 : use2() ? dot_avx2 : NULL;
}
am_q_axpy_fn am_q_axpy_simd(void) {
  return use512() ? axpy_avx512 : use2() ? axpy_avx2 : NULL;
}
am_q_dot44_fn am_q_dot44_simd(void) {
  return use512() ? dot44_avx512 : use2() ? dot44_avx2 : NULL;
}

/* AVX-512 steps over 32 codes, so it takes groups of 32 and more; nvfp4's
 * groups of 16 go to the AVX2 kernel (also fine on AVX-512 CPUs). */
bool am_q_fused_simd(const am_qfmt *f, int64_t K, am_dtype xdt,
                     am_q_prep_fn *prep, am_q_gemv_fn *gemv, int *max_rows) {
  *max_rows = 4;
  bool x_bf16 = xdt == AM_BF16;
  bool ok =
      !f->dense && (f->mode != AM_QUANT_AFFINE || f->bits == 4 || f->bits == 8);
  if (!ok) return false;
  bool aff4 = f->mode == AM_QUANT_AFFINE && f->bits == 4;
  if (aff4 && K % 128 == 0 && xdt == AM_F32 && use_vnni()) {
    *prep = prep4i;
    *gemv = gemv4i;
    return true;
  }
  if (aff4 && K % 128 == 0 && use512()) {
    bool bf = x_bf16 && use_bf16();
    *prep = bf ? prep4l_bf16 : prep4l_f32;
    *gemv = bf ? gemv4l_bf16 : gemv4l_f32;
    return true;
  }
  if (x_bf16 && aff4 && f->gs % 64 == 0 && use_bf16()) {
    *prep = prep4_bf16;
    *gemv = gemv_bf16;
    return true;
  }
  if (use512() && f->gs >= 32) {
    *prep = f->bits == 4 ? prep4_avx512 : prep8_avx512;
    *gemv = gemv_avx512;
    return true;
  }
  if (use2()) {
    *prep = f->bits == 4 ? prep4_avx2 : prep8_avx2;
    *gemv = gemv_avx2;
    return true;
  }
  return false;
}

#else /* not x86 */
void am_qmm_set_isa(int isa) {
  (void)isa;
}
void am_set_qmm_float_kernels(bool on) {
  (void)on; /* the portable kernels are float32 throughout */
}
am_q_decode_fn am_q_decoder_simd(const am_qfmt *f) {
  (void)f;
  return NULL;
}
am_q_dot_fn am_q_dot_simd(void) {
  return NULL;
}
am_q_axpy_fn am_q_axpy_simd(void) {
  return NULL;
}
am_q_dot44_fn am_q_dot44_simd(void) {
  return NULL;
}
bool am_q_fused_simd(const am_qfmt *f, int64_t K, am_dtype xdt,
                     am_q_prep_fn *prep, am_q_gemv_fn *gemv, int *max_rows) {
  (void)f, (void)K, (void)xdt, (void)prep, (void)gemv, (void)max_rows;
  return false;
}
#endif

#else /* ======================= the kernels, once per instruction set */

/* ---- 16 codes (bytes, natural order) to 16 floats ---- */

#if QMM_ISA == 512
/* out[0..16) = s * q + b */
static KFNI void KNAME(emit_affine)(__m128i c, V s, V b, float *out) {
  V q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c));
  VSTORE(out, VFMA(q, s, b));
}
/* out = E2M1(c) * s */
static KFNI void KNAME(emit_fp4)(__m128i c, V s, float *out) {
  const __m512 lut = _mm512_loadu_ps(am_q_fp4_lut);
  V v = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(c), lut);
  VSTORE(out, VMUL(v, s));
}
/* out = E4M3(c) * s: magnitude << 7 as float16, times 256, sign */
static KFNI void KNAME(emit_fp8)(__m128i c, V s, float *out) {
  __m256i h = _mm256_cvtepu8_epi16(c);
  __m256i mag =
      _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(127)), 7);
  __m256i sgn =
      _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(128)), 8);
  V v = _mm512_cvtph_ps(_mm256_or_si256(mag, sgn));
  VSTORE(out, VMUL(v, VMUL(s, VSET1(256.0f))));
}
#else
static KFNI void KNAME(emit_affine)(__m128i c, V s, V b, float *out) {
  V q0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
  V q1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)));
  VSTORE(out, VFMA(q0, s, b));
  VSTORE(out + 8, VFMA(q1, s, b));
}
static KFNI V KNAME(fp4_8)(__m256i idx) {
  const __m256 lut = _mm256_loadu_ps(am_q_fp4_lut); /* 8 magnitudes */
  V mag = _mm256_permutevar8x32_ps(lut, idx);       /* uses idx & 7 */
  __m256i sgn =
      _mm256_slli_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(8)), 28);
  return _mm256_xor_ps(mag, _mm256_castsi256_ps(sgn));
}
static KFNI void KNAME(emit_fp4)(__m128i c, V s, float *out) {
  VSTORE(out, VMUL(KNAME(fp4_8)(_mm256_cvtepu8_epi32(c)), s));
  VSTORE(out + 8,
         VMUL(KNAME(fp4_8)(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8))), s));
}
static KFNI void KNAME(emit_fp8)(__m128i c, V s, float *out) {
  V s256 = VMUL(s, VSET1(256.0f));
  for (int half = 0; half < 2; half++) {
    __m128i h = _mm_cvtepu8_epi16(half ? _mm_srli_si128(c, 8) : c);
    __m128i mag = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(127)), 7);
    __m128i sgn = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(128)), 8);
    V v = _mm256_cvtph_ps(_mm_or_si128(mag, sgn));
    VSTORE(out + 8 * half, VMUL(v, s256));
  }
}
#endif

/* 16 four-bit codes from 8 bytes, natural order (low nibble first). */
static KFNI __m128i KNAME(nibbles16)(const uint8_t *p) {
  __m128i v = _mm_loadl_epi64((const __m128i *)p);
  __m128i m = _mm_set1_epi8(0x0f);
  __m128i lo = _mm_and_si128(v, m);
  __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
  return _mm_unpacklo_epi8(lo, hi);
}

/* 16 two-bit codes from one word. */
static KFNI __m128i KNAME(crumbs16)(const uint8_t *p) {
  uint32_t w;
  memcpy(&w, p, 4);
  __m128i v = _mm_set1_epi32((int)w);
  /* byte j of lane i: code 4i + j: shift the lane right by 8j + 2j */
  __m128i b0 = _mm_and_si128(v, _mm_set1_epi32(0x03030303));
  __m128i b1 = _mm_and_si128(_mm_srli_epi32(v, 2), _mm_set1_epi32(0x03030303));
  __m128i b2 = _mm_and_si128(_mm_srli_epi32(v, 4), _mm_set1_epi32(0x03030303));
  __m128i b3 = _mm_and_si128(_mm_srli_epi32(v, 6), _mm_set1_epi32(0x03030303));
  /* b0 holds codes 0,4,8,12 (bytes 0..3), b1 codes 1,5,9,13, ... */
  __m128i lo = _mm_unpacklo_epi8(b0, b1); /* c0 c1 c4 c5 c8 c9 c12 c13 .. */
  __m128i hi = _mm_unpacklo_epi8(b2, b3); /* c2 c3 c6 c7 ...             */
  __m128i r = _mm_unpacklo_epi16(lo, hi); /* c0 c1 c2 c3 c4 ...          */
  return r;
}

/* 16 codes of `bits` (3, 5, 6) starting at code i (a multiple of 16). */
static KFNI __m128i KNAME(odd16)(const uint8_t *row, int64_t i, int bits) {
  uint8_t c[16];
  const uint8_t *p = row + i * bits / 8; /* 16 codes: 2*bits whole bytes */
  uint64_t lo = 0, hi = 0;
  size_t nbytes = (size_t)(2 * bits);
  memcpy(&lo, p, nbytes < 8 ? nbytes : 8);
  if (nbytes > 8) memcpy(&hi, p + 8, nbytes - 8);
  unsigned mask = (1u << bits) - 1u;
  for (int j = 0; j < 16; j++) {
    int b = j * bits;
    uint64_t v;
    if (b >= 64) {
      v = hi >> (b - 64);
    } else {
      v = lo >> b;
      if (b + bits > 64) v |= hi << (64 - b);
    }
    c[j] = (uint8_t)(v & mask);
  }
  return _mm_loadu_si128((const __m128i *)c);
}

static KFN void KNAME(decode)(const am_qfmt *f, const void *codes,
                              const void *sc, const void *bi, int64_t k0,
                              int64_t n, float *out) {
  const uint8_t *w = codes;
  int gs = f->gs, bits = f->bits;
  size_t ses = am_dtype_size(f->sdt), bes = am_dtype_size(f->bdt);
  for (int64_t i0 = k0; i0 < k0 + n; i0 += gs, out += gs) {
    int64_t g = i0 / gs;
    switch (f->mode) {
    case AM_QUANT_AFFINE: {
      V s = VSET1(am_q_load((const char *)sc + g * (int64_t)ses, f->sdt));
      V b = VSET1(am_q_load((const char *)bi + g * (int64_t)bes, f->bdt));
      for (int j = 0; j < gs; j += 16) {
        int64_t i = i0 + j;
        __m128i c;
        if (bits == 4)
          c = KNAME(nibbles16)(w + i / 2);
        else if (bits == 8)
          c = _mm_loadu_si128((const __m128i *)(w + i));
        else if (bits == 2)
          c = KNAME(crumbs16)(w + i / 4);
        else
          c = KNAME(odd16)(w, i, bits);
        KNAME(emit_affine)(c, s, b, out + j);
      }
      break;
    }
    case AM_QUANT_MXFP8: {
      V s = VSET1(am_q_e8m0_to_f32(((const uint8_t *)sc)[g]));
      for (int j = 0; j < gs; j += 16)
        KNAME(emit_fp8)
      (_mm_loadu_si128((const __m128i *)(w + i0 + j)), s, out + j);
      break;
    }
    default: {
      uint8_t sb = ((const uint8_t *)sc)[g];
      V s = VSET1(f->mode == AM_QUANT_NVFP4 ? am_q_fp8_to_f32(sb)
                                            : am_q_e8m0_to_f32(sb));
      for (int j = 0; j < gs; j += 16)
        KNAME(emit_fp4)(KNAME(nibbles16)(w + (i0 + j) / 2), s, out + j);
    }
    }
  }
}

static KFNI float KNAME(hsum)(V v) {
#if QMM_ISA == 512
  return _mm512_reduce_add_ps(v);
#else
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
#endif
}

/* a . b[j] for j < NB (a compile-time count after inlining) */
static KFNI void KNAME(dotn)(const float *a, const float *b, int64_t ldb,
                             int64_t n, float *out, const int nb) {
  V acc0[4], acc1[4];
#pragma GCC unroll 4
  for (int j = 0; j < nb; j++)
    acc0[j] = acc1[j] = VZERO();
  int64_t k = 0;
  for (; k + 2 * W <= n; k += 2 * W) {
    V a0 = VLOAD(a + k), a1 = VLOAD(a + k + W);
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) {
      acc0[j] = VFMA(a0, VLOAD(b + j * ldb + k), acc0[j]);
      acc1[j] = VFMA(a1, VLOAD(b + j * ldb + k + W), acc1[j]);
    }
  }
  for (; k + W <= n; k += W) {
    V a0 = VLOAD(a + k);
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++)
      acc0[j] = VFMA(a0, VLOAD(b + j * ldb + k), acc0[j]);
  }
  for (int j = 0; j < nb; j++) {
    float s = KNAME(hsum)(VADD(acc0[j], acc1[j]));
    for (int64_t t = k; t < n; t++)
      s += a[t] * b[j * ldb + t];
    out[j] = s;
  }
}

static KFN void KNAME(dot)(const float *a, const float *b, int64_t ldb, int nb,
                           int64_t n, float *out) {
  switch (nb) {
  case 1:
    KNAME(dotn)(a, b, ldb, n, out, 1);
    break;
  case 2:
    KNAME(dotn)(a, b, ldb, n, out, 2);
    break;
  case 3:
    KNAME(dotn)(a, b, ldb, n, out, 3);
    break;
  default:
    KNAME(dotn)(a, b, ldb, n, out, 4);
  }
}

static KFN void KNAME(axpy)(const float *xs, int nk, const float *w,
                            int64_t ldw, int64_t n, float *y) {
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    V acc = VLOAD(y + j);
    for (int i = 0; i < nk; i++)
      acc = VFMA(VSET1(xs[i]), VLOAD(w + i * ldw + j), acc);
    VSTORE(y + j, acc);
  }
  for (; j < n; j++) {
    float acc = y[j];
    for (int i = 0; i < nk; i++)
      acc += xs[i] * w[i * ldw + j];
    y[j] = acc;
  }
}

/* ---- 4x4 blocked dot products (the GEMM path) ---- */

static KFNI void KNAME(dotmn)(const float *const *a, const float *b,
                              int64_t ldb, int64_t n, float *out, int ldo,
                              const int m, const int nb) {
  V acc[4][4];
#pragma GCC unroll 4
  for (int i = 0; i < m; i++)
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++)
      acc[i][j] = VZERO();
  int64_t k = 0;
  for (; k + W <= n; k += W) {
    V av[4], bv[4];
#pragma GCC unroll 4
    for (int i = 0; i < m; i++)
      av[i] = VLOAD(a[i] + k);
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++)
      bv[j] = VLOAD(b + j * ldb + k);
#pragma GCC unroll 4
    for (int i = 0; i < m; i++)
#pragma GCC unroll 4
      for (int j = 0; j < nb; j++)
        acc[i][j] = VFMA(av[i], bv[j], acc[i][j]);
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < nb; j++) {
      float s = KNAME(hsum)(acc[i][j]);
      for (int64_t t = k; t < n; t++)
        s += a[i][t] * b[j * ldb + t];
      out[i * ldo + j] = s;
    }
}

static KFN void KNAME(dot44)(const float *const *a, const float *b, int64_t ldb,
                             int64_t n, float *out) {
#if QMM_ISA == 512
  KNAME(dotmn)(a, b, ldb, n, out, 4, 4, 4);
#else /* 16 registers: two 2x4 blocks */
  KNAME(dotmn)(a, b, ldb, n, out, 4, 2, 4);
  KNAME(dotmn)(a + 2, b, ldb, n, out + 8, 4, 2, 4);
#endif
}

/* ---- fused GEMV: codes decoded in registers ----
 *
 * A step takes 2W 4-bit codes from W bytes (low nibbles: the even
 * elements, high nibbles: the odd ones) or W 8-bit codes, so prep4 lays a
 * row out in blocks of 2W: the W even elements, then the W odd ones. Per
 * group: t = x . q (codes as float), acc += scale * t, and the affine bias
 * adds bias * sum(x of the group). */

/* W bytes of codes */
static KFNI __m128i KNAME(ldw)(const uint8_t *p) {
#if QMM_ISA == 512
  return _mm_loadu_si128((const __m128i *)p);
#else
  return _mm_loadl_epi64((const __m128i *)p);
#endif
}

#ifndef QMM_KINDS
#define QMM_KINDS
enum { K_AFF = 0, K_FP4 = 1, K_FP8 = 2 };
enum { QMM_GCHUNK = 256 }; /* groups whose scales are converted at once */
#endif

/* the first W bytes of c as floats: codes, E2M1 values, or E4M3 / 256 */
static KFNI V KNAME(widen)(__m128i c, const int kind) {
#if QMM_ISA == 512
  if (kind == K_FP4)
    return _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(c),
                                 _mm512_loadu_ps(am_q_fp4_lut));
  if (kind == K_FP8) {
    __m256i h = _mm256_cvtepu8_epi16(c);
    __m256i mag =
        _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(127)), 7);
    __m256i sgn =
        _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(128)), 8);
    return _mm512_cvtph_ps(_mm256_or_si256(mag, sgn));
  }
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c));
#else
  if (kind == K_FP4) return KNAME(fp4_8)(_mm256_cvtepu8_epi32(c));
  if (kind == K_FP8) {
    __m128i h = _mm_cvtepu8_epi16(c);
    __m128i mag = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(127)), 7);
    __m128i sgn = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(128)), 8);
    return _mm256_cvtph_ps(_mm_or_si128(mag, sgn));
  }
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
#endif
}

static KFN void KNAME(prep4)(const float *x, int64_t K, int gs, float *xp,
                             float *xsum) {
  for (int64_t b = 0; b < K; b += 2 * W)
    for (int i = 0; i < W; i++) {
      xp[b + i] = x[b + 2 * i];
      xp[b + W + i] = x[b + 2 * i + 1];
    }
  if (xsum)
    for (int64_t g = 0; g * gs < K; g++) {
      float s = 0;
      for (int j = 0; j < gs; j++)
        s += x[g * gs + j];
      xsum[g] = s;
    }
}

static KFN void KNAME(prep8)(const float *x, int64_t K, int gs, float *xp,
                             float *xsum) {
  memcpy(xp, x, (size_t)K * sizeof *xp);
  if (xsum)
    for (int64_t g = 0; g * gs < K; g++) {
      float s = 0;
      for (int j = 0; j < gs; j++)
        s += x[g * gs + j];
      xsum[g] = s;
    }
}

/* A weight row's group scales (and biases) as float: sc[g], bi[g] for
 * g < ng (the E4M3 scale of mxfp8 codes times 256, see widen). Returns
 * sum_g bi[g] * xs[r][g] in bsum[r] for the nr rows. */
static KFNI void KNAME(row_scales)(const am_qfmt *f, const char *s,
                                   const char *b, int64_t ng, float *sc,
                                   float *bi) {
  if (f->mode == AM_QUANT_AFFINE) {
    am_convert(s, f->sdt, sc, AM_F32, ng);
    am_convert(b, f->bdt, bi, AM_F32, ng);
    return;
  }
  const uint8_t *sb = (const uint8_t *)s;
  for (int64_t g = 0; g < ng; g++)
    sc[g] = f->mode == AM_QUANT_NVFP4
                ? am_q_fp8_to_f32(sb[g])
                : am_q_e8m0_to_f32(sb[g]) *
                      (f->mode == AM_QUANT_MXFP8 ? 256.0f : 1.0f);
}

static KFNI float KNAME(dotf)(const float *a, const float *b, int64_t n) {
  V acc = VZERO();
  int64_t k = 0;
  for (; k + W <= n; k += W)
    acc = VFMA(VLOAD(a + k), VLOAD(b + k), acc);
  float s = KNAME(hsum)(acc);
  for (; k < n; k++)
    s += a[k] * b[k];
  return s;
}

static KFNI void KNAME(gemv_k)(const am_qfmt *f, const uint8_t *w,
                               int64_t w_row, const char *s, int64_t s_row,
                               const char *b, int64_t b_row, int64_t K,
                               const float *const *xp, const float *const *xs,
                               int nw, float *out, const int nr, const int kind,
                               const int four) {
  int gs = f->gs;
  int64_t ng = K / gs;
  size_t ses = am_dtype_size(f->sdt), bes = am_dtype_size(f->bdt);
  const __m128i m4 = _mm_set1_epi8(0x0f);
  float sc[QMM_GCHUNK], bi[QMM_GCHUNK];
  for (int j = 0; j < nw; j++) {
    const uint8_t *wj = w + j * w_row;
    const char *sj = s + j * s_row, *bj = b ? b + j * b_row : NULL;
    V acc[4] = {VZERO(), VZERO(), VZERO(), VZERO()};
    float bs[4] = {0, 0, 0, 0};
    for (int64_t g0 = 0; g0 < ng; g0 += QMM_GCHUNK) {
      int64_t gn = ng - g0 < QMM_GCHUNK ? ng - g0 : QMM_GCHUNK;
      KNAME(row_scales)
      (f, sj + g0 * (int64_t)ses, bj ? bj + g0 * (int64_t)bes : NULL, gn, sc,
       bi);
      if (kind == K_AFF)
        for (int r = 0; r < nr; r++)
          bs[r] += KNAME(dotf)(bi, xs[r] + g0, gn);
      for (int64_t gi = 0; gi < gn; gi++) {
        V t[4] = {VZERO(), VZERO(), VZERO(), VZERO()};
        int64_t c0 = (g0 + gi) * gs;
        /* the next row, same place (rows are usually contiguous) */
        _mm_prefetch((const char *)(wj + (four ? c0 / 2 : c0)) + w_row,
                     _MM_HINT_T1);
        if (four) {
          for (int64_t c = c0; c < c0 + gs; c += 2 * W) {
            __m128i v = KNAME(ldw)(wj + c / 2);
            V ql = KNAME(widen)(_mm_and_si128(v, m4), kind);
            V qh = KNAME(widen)(_mm_and_si128(_mm_srli_epi16(v, 4), m4), kind);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) {
              t[r] = VFMA(ql, VLOAD(xp[r] + c), t[r]);
              t[r] = VFMA(qh, VLOAD(xp[r] + c + W), t[r]);
            }
          }
        } else {
          for (int64_t c = c0; c < c0 + gs; c += W) {
            V q = KNAME(widen)(KNAME(ldw)(wj + c), kind);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++)
              t[r] = VFMA(q, VLOAD(xp[r] + c), t[r]);
          }
        }
        V vs = VSET1(sc[gi]);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
          acc[r] = VFMA(t[r], vs, acc[r]);
      }
    }
    for (int r = 0; r < nr; r++)
      out[r * nw + j] = KNAME(hsum)(acc[r]) + bs[r];
  }
}

#define GEMV_NR(kind, four)                                                    \
  switch (nr) {                                                                \
  case 1:                                                                      \
    KNAME(gemv_k)                                                              \
    (f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, 1, kind, four);      \
    break;                                                                     \
  case 2:                                                                      \
    KNAME(gemv_k)                                                              \
    (f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, 2, kind, four);      \
    break;                                                                     \
  case 3:                                                                      \
    KNAME(gemv_k)                                                              \
    (f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, 3, kind, four);      \
    break;                                                                     \
  default:                                                                     \
    KNAME(gemv_k)                                                              \
    (f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, 4, kind, four);      \
  }

static KFN void KNAME(gemv)(const am_qfmt *f, const uint8_t *w, int64_t w_row,
                            const char *s, int64_t s_row, const char *b,
                            int64_t b_row, int64_t K, const float *const *xp,
                            const float *const *xs, int nr, int nw,
                            float *out) {
  if (f->mode == AM_QUANT_AFFINE) {
    if (f->bits == 4) GEMV_NR(K_AFF, 1) else GEMV_NR(K_AFF, 0)
  } else if (f->mode == AM_QUANT_MXFP8) {
    GEMV_NR(K_FP8, 0)
  } else {
    GEMV_NR(K_FP4, 1)
  }
}
#undef GEMV_NR

#if QMM_ISA == 512
#ifndef GEMV_BY_ROWS
/* A fused GEMV entry point (am_q_gemv_fn) dispatching the x row count to
 * a kernel instantiated for it (1..4, a compile-time constant there). */
#define GEMV_BY_ROWS(name, attr, CALL)                                         \
  static attr void name(const am_qfmt *f, const uint8_t *w, int64_t w_row,     \
                        const char *s, int64_t s_row, const char *b,           \
                        int64_t b_row, int64_t K, const float *const *xp,      \
                        const float *const *xs, int nr, int nw, float *out) {  \
    switch (nr) {                                                              \
    case 1:                                                                    \
      CALL(1);                                                                 \
      break;                                                                   \
    case 2:                                                                    \
      CALL(2);                                                                 \
      break;                                                                   \
    case 3:                                                                    \
      CALL(3);                                                                 \
      break;                                                                   \
    default:                                                                   \
      CALL(4);                                                                 \
    }                                                                          \
  }
#endif
/* ---- fused GEMV on bfloat16 activations (AVX512-BF16) ----
 *
 * For x held exactly in bfloat16 (a bfloat16 x), 4-bit codes become
 * bfloat16 through a 16-entry table (vpermw) and vdpbf16ps multiplies 32
 * pairs per instruction with float32 accumulation: the products are exact
 * (as in the float32 path), at half the instructions. A step takes 64
 * codes from 32 bytes, so prep lays x out per 64-block as the 32 even
 * elements then the 32 odd ones, in bfloat16. */

static KFNB void prep4_bf16(const float *x, int64_t K, int gs, float *xpv,
                            float *xsum) {
  uint16_t *xp = (uint16_t *)xpv;
  for (int64_t b = 0; b < K; b += 64)
    for (int i = 0; i < 32; i++) {
      xp[b + i] = am_f32_to_bf16(x[b + 2 * i]);
      xp[b + 32 + i] = am_f32_to_bf16(x[b + 2 * i + 1]);
    }
  for (int64_t g = 0; g * gs < K; g++) {
    float s = 0;
    for (int j = 0; j < gs; j++)
      s += x[g * gs + j];
    xsum[g] = s;
  }
}

static __attribute__((always_inline)) inline KFNB void
gemv_bf16_k(const am_qfmt *f, const uint8_t *w, int64_t w_row, const char *s,
            int64_t s_row, const char *b, int64_t b_row, int64_t K,
            const float *const *xpf, const float *const *xs, int nw, float *out,
            const int nr) {
  int gs = f->gs;
  int64_t ng = K / gs;
  size_t ses = am_dtype_size(f->sdt), bes = am_dtype_size(f->bdt);
  const __m512i lut = _mm512_set_epi16(
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x4170, 0x4160, 0x4150,
      0x4140, 0x4130, 0x4120, 0x4110, 0x4100, 0x40e0, 0x40c0, 0x40a0, 0x4080,
      0x4040, 0x4000, 0x3f80, 0x0000);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const uint16_t *xp[4];
  float sc[QMM_GCHUNK], bi[QMM_GCHUNK];
  for (int r = 0; r < nr; r++)
    xp[r] = (const uint16_t *)xpf[r];
  for (int j = 0; j < nw; j++) {
    const uint8_t *wj = w + j * w_row;
    const char *sj = s + j * s_row, *bj = b + j * b_row;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps(), _mm512_setzero_ps()};
    float bs[4] = {0, 0, 0, 0};
    for (int64_t g0 = 0; g0 < ng; g0 += QMM_GCHUNK) {
      int64_t gn = ng - g0 < QMM_GCHUNK ? ng - g0 : QMM_GCHUNK;
      am_convert(sj + g0 * (int64_t)ses, f->sdt, sc, AM_F32, gn);
      am_convert(bj + g0 * (int64_t)bes, f->bdt, bi, AM_F32, gn);
      for (int r = 0; r < nr; r++)
        bs[r] += dotf_avx512(bi, xs[r] + g0, gn);
      for (int64_t gi = 0; gi < gn; gi++) {
        __m512 t[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(),
                       _mm512_setzero_ps(), _mm512_setzero_ps()};
        int64_t c0 = (g0 + gi) * gs;
        for (int64_t c = c0; c < c0 + gs; c += 64) {
          __m256i v = _mm256_loadu_si256((const __m256i *)(wj + c / 2));
          _mm_prefetch((const char *)(wj + c / 2) + w_row, _MM_HINT_T1);
          __m256i lo = _mm256_and_si256(v, m4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
          __m512i wl = _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(lo), lut);
          __m512i wh = _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(hi), lut);
#pragma GCC unroll 4
          for (int r = 0; r < nr; r++) {
            __m512i xl = _mm512_loadu_si512((const void *)(xp[r] + c));
            __m512i xh = _mm512_loadu_si512((const void *)(xp[r] + c + 32));
            t[r] = _mm512_dpbf16_ps(t[r], (__m512bh)wl, (__m512bh)xl);
            t[r] = _mm512_dpbf16_ps(t[r], (__m512bh)wh, (__m512bh)xh);
          }
        }
        __m512 vs = _mm512_set1_ps(sc[gi]);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
          acc[r] = _mm512_fmadd_ps(t[r], vs, acc[r]);
      }
    }
    for (int r = 0; r < nr; r++)
      out[r * nw + j] = _mm512_reduce_add_ps(acc[r]) + bs[r];
  }
}

#define GEMV_BF16_CALL(n)                                                      \
  gemv_bf16_k(f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, n)
GEMV_BY_ROWS(gemv_bf16, KFNB, GEMV_BF16_CALL)
#undef GEMV_BF16_CALL
#endif

#if QMM_ISA == 512
/* ---- affine 4-bit "lane" kernels: no shuffles ----
 *
 * A 64-byte load holds 128 codes: u32 lane i holds codes 8i..8i+7. Code k
 * of every lane, shifted to bits 19..22 and or-ed with 0x41800000 (one
 * vpternlogd), is the float 16 + q, exactly; so t = sum x * (16 + q) and
 * the 16 * sum(x) this adds folds into the bias term: per group,
 * s*sum(x*q) + b*sum(x) = s*t + (b - 16 s)*sum(x). The products are exact
 * and the sums only twice as large, so the precision stays that of the
 * float path. In bfloat16 (u16 lanes of 4 codes) the same trick gives
 * 0x4180 | q << 3 = bfloat16(16 + q) for vdpbf16ps.
 *
 * f32 lane j of t covers codes [8j, 8j + 8) of the 128-block in both
 * forms, so its group is 8j / gs: the scales are spread over the lanes
 * with one permute per block. prep lays x out per 128-block in the same
 * order: 8 runs of 16 (x[8i + k] for code k, float) or 4 runs of 32
 * (x[4i + k], bfloat16). */

static KFN void prep4l_f32(const float *x, int64_t K, int gs, float *xp,
                           float *xsum) {
  for (int64_t b = 0; b < K; b += 128)
    for (int k = 0; k < 8; k++)
      for (int i = 0; i < 16; i++)
        xp[b + 16 * k + i] = x[b + 8 * i + k];
  for (int64_t g = 0; g * gs < K; g++) {
    float s = 0;
    for (int j = 0; j < gs; j++)
      s += x[g * gs + j];
    xsum[g] = s;
  }
}

static KFN void prep4l_bf16(const float *x, int64_t K, int gs, float *xpv,
                            float *xsum) {
  uint16_t *xp = (uint16_t *)xpv;
  for (int64_t b = 0; b < K; b += 128)
    for (int k = 0; k < 4; k++)
      for (int i = 0; i < 32; i++)
        xp[b + 32 * k + i] = am_f32_to_bf16(x[b + 4 * i + k]);
  for (int64_t g = 0; g * gs < K; g++) {
    float s = 0;
    for (int j = 0; j < gs; j++)
      s += x[g * gs + j];
    xsum[g] = s;
  }
}

/* code k of each u32 lane as the float 16 + q */
#define LANE_F32(v, k)                                                         \
  _mm512_castsi512_ps(_mm512_ternarylogic_epi32(                               \
      (k) < 5 ? _mm512_slli_epi32((v), 19 - 4 * (k))                           \
              : _mm512_srli_epi32((v), 4 * (k)-19),                            \
      _mm512_set1_epi32(0x00780000), _mm512_set1_epi32(0x41800000), 0xea))
/* code k of each u16 lane as bfloat16(16 + q) */
#define LANE_BF16(v, k)                                                        \
  _mm512_ternarylogic_epi32((k) == 0 ? _mm512_slli_epi16((v), 3)               \
                                     : _mm512_srli_epi16((v), 4 * (k)-3),      \
                            _mm512_set1_epi16(0x0078),                         \
                            _mm512_set1_epi16(0x4180), 0xea)

/* Up to 16 group scales/biases (float16, bfloat16, float32) as float
 * lanes (the lanes past the mask are 0), kept in a register: with small K
 * (a few groups a row) a round trip through memory per row costs as much
 * as the row's codes. */
static __attribute__((always_inline)) inline KFNB __m512
ld_f32_512(const char *src, am_dtype t, __mmask16 k) {
  if (t == AM_F32) return _mm512_maskz_loadu_ps(k, (const float *)src);
  __m256i h = _mm256_maskz_loadu_epi16(k, (const uint16_t *)src);
  return t == AM_F16 ? _mm512_cvtph_ps(h)
                     : _mm512_castsi512_ps(
                           _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* f32 lane j of a 128-code block covers codes [8j, 8j + 8): its group's
 * slot among the block's (<= 4) groups. */
static __attribute__((always_inline)) inline KFNB __m512i lane_groups(int gs) {
  return _mm512_srli_epi32(
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5,
                                          4, 3, 2, 1, 0),
                         _mm512_set1_epi32(8)),
      gs == 32   ? 5
      : gs == 64 ? 6
                 : 7);
}

/* Code prefetch distance: two passes of nwb rows ahead, and at least
 * 8 KiB (short rows, K = 512, would otherwise be asked for too late). */
static inline int64_t pf_distance(int nwb, int64_t w_row) {
  int64_t pf = 2 * nwb * w_row;
  return pf < 8192 ? (8192 + w_row - 1) / w_row * w_row : pf;
}

/* The sums of four vectors at once (transposing adds, not four separate
 * reductions): rows with few groups (K = 512) spend a good share of their
 * time here. */
static __attribute__((always_inline)) inline KFNB void
hsum4_512(__m512 a, __m512 b, __m512 c, __m512 d, float *out) {
  __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(
                               _mm512_castps_pd(ab), _mm512_castps_pd(cd))),
                           _mm512_castpd_ps(_mm512_unpackhi_pd(
                               _mm512_castps_pd(ab), _mm512_castps_pd(cd))));
  __m256 v = _mm256_add_ps(
      _mm512_castps512_ps256(u),
      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
  _mm_storeu_ps(
      out, _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

/* nwb weight rows (j0..) against nr x rows at once: nr * nwb chains; np
 * partial sums each make at least 4 (the dot/FMA latency hides). */
static __attribute__((always_inline)) inline KFNB void
gemv4l_blk(const am_qfmt *f, const uint8_t *w, int64_t w_row, const char *s,
           int64_t s_row, const char *b, int64_t b_row, int64_t K,
           const float *const *xpf, const float *const *xs, int j0, int nw,
           float *out, const int nr, const int nwb, const int bf) {
  int gs = f->gs;
  int64_t ng = K / gs;
  size_t ses = am_dtype_size(f->sdt), bes = am_dtype_size(f->bdt);
  const int np = nr * nwb >= 4 ? 1 : 4 / (nr * nwb);
  const __m512i gidx = lane_groups(gs);
  const uint8_t *wj[4];
  __m512 acc[4][4];
  const int64_t pf = pf_distance(nwb, w_row);
#pragma GCC unroll 4
  for (int q = 0; q < nwb; q++) {
    wj[q] = w + (j0 + q) * w_row;
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
      acc[q][r] = _mm512_setzero_ps();
  }
  /* 16 groups at a time: their scales stay in one register per row */
  for (int64_t g0 = 0; g0 < ng; g0 += 16) {
    int64_t gn = ng - g0 < 16 ? ng - g0 : 16;
    __mmask16 gm = (__mmask16)((1u << gn) - 1u);
    __m512 sq[4], xsv[4];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
      xsv[r] = _mm512_maskz_loadu_ps(gm, xs[r] + g0);
#pragma GCC unroll 4
    for (int q = 0; q < nwb; q++) {
      const char *sj = s + (j0 + q) * s_row + g0 * (int64_t)ses,
                 *bj = b + (j0 + q) * b_row + g0 * (int64_t)bes;
      _mm_prefetch(sj + nwb * s_row, _MM_HINT_T0);
      _mm_prefetch(bj + nwb * b_row, _MM_HINT_T0);
      sq[q] = ld_f32_512(sj, f->sdt, gm);
      /* b - 16 s: see above; the bias term joins the lanes of acc */
      __m512 bq = _mm512_fnmadd_ps(sq[q], _mm512_set1_ps(16.0f),
                                   ld_f32_512(bj, f->bdt, gm));
#pragma GCC unroll 4
      for (int r = 0; r < nr; r++)
        acc[q][r] = _mm512_fmadd_ps(bq, xsv[r], acc[q][r]);
    }
    int64_t c0 = g0 * gs, c1 = c0 + gn * gs, gb = 0, gstep = 128 / gs;
    for (int64_t c = c0; c < c1; c += 128, gb += gstep) {
      __m512i v[4];
      __m512 t[4][4][4];
#pragma GCC unroll 4
      for (int q = 0; q < nwb; q++) {
        v[q] = _mm512_loadu_si512((const void *)(wj[q] + c / 2));
        /* the same place two passes ahead (2 nwb rows): this machine's
         * hardware prefetcher does not follow these streams */
        _mm_prefetch((const char *)(wj[q] + c / 2) + pf, _MM_HINT_T1);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
          for (int p = 0; p < np; p++)
            t[q][r][p] = _mm512_setzero_ps();
      }
      if (bf) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
          __m512i xv[4];
#pragma GCC unroll 4
          for (int r = 0; r < nr; r++)
            xv[r] = _mm512_loadu_si512(
                (const void *)((const uint16_t *)xpf[r] + c + 32 * k));
#pragma GCC unroll 4
          for (int q = 0; q < nwb; q++) {
            __m512i qv = LANE_BF16(v[q], k);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++)
              t[q][r][k % np] = _mm512_dpbf16_ps(t[q][r][k % np], (__m512bh)qv,
                                                 (__m512bh)xv[r]);
          }
        }
      } else {
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
          __m512 xv[4];
#pragma GCC unroll 4
          for (int r = 0; r < nr; r++)
            xv[r] = _mm512_loadu_ps(xpf[r] + c + 16 * k);
#pragma GCC unroll 4
          for (int q = 0; q < nwb; q++) {
            __m512 qv = LANE_F32(v[q], k);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++)
              t[q][r][k % np] = _mm512_fmadd_ps(qv, xv[r], t[q][r][k % np]);
          }
        }
      }
#pragma GCC unroll 4
      for (int q = 0; q < nwb; q++) {
        __m512 sv = _mm512_permutexvar_ps(
            _mm512_add_epi32(gidx, _mm512_set1_epi32((int)gb)), sq[q]);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
          __m512 tr = t[q][r][0];
#pragma GCC unroll 4
          for (int p = 1; p < np; p++)
            tr = _mm512_add_ps(tr, t[q][r][p]);
          acc[q][r] = _mm512_fmadd_ps(tr, sv, acc[q][r]);
        }
      }
    }
  }
  for (int q = 0; q < nwb; q++)
    for (int r = 0; r < nr; r++)
      out[r * nw + j0 + q] = _mm512_reduce_add_ps(acc[q][r]);
}

/* All nw weight rows: blocks of 4/nr rows, then one at a time. */
static __attribute__((always_inline)) inline KFNB void
gemv4l_k(const am_qfmt *f, const uint8_t *w, int64_t w_row, const char *s,
         int64_t s_row, const char *b, int64_t b_row, int64_t K,
         const float *const *xpf, const float *const *xs, int nw, float *out,
         const int nr, const int bf) {
  const int nwb = nr == 1 ? 4 : nr == 2 ? 4 : 2;
  int j = 0;
  if (nwb > 1)
    for (; j + nwb <= nw; j += nwb)
      gemv4l_blk(f, w, w_row, s, s_row, b, b_row, K, xpf, xs, j, nw, out, nr,
                 nwb, bf);
  for (; j < nw; j++)
    gemv4l_blk(f, w, w_row, s, s_row, b, b_row, K, xpf, xs, j, nw, out, nr, 1,
               bf);
}
#undef LANE_F32
#undef LANE_BF16

/* ---- affine 4-bit, integer dot products (AVX512-VNNI) ----
 *
 * The float kernels above spend three vector operations per 16 codes
 * (place the code, convert, multiply-add): on 2 cores they are bound by
 * arithmetic, not memory. Here x is rounded per group to int16 with its
 * own scale (sx = max|x| / 32767: relative error <= 2^-16 of the group's
 * largest element, far below 4-bit weights' own error) and one vpdpwssd
 * multiplies 32 codes by 32 x values and adds pairs into 16 int32 lanes,
 * exactly. A 64-byte block (128 codes, u16 lane i = codes 4i..4i+3) takes
 * 4 (shift/and) extractions + 4 vpdpwssd per weight row, then one
 * conversion and one multiply-add by the (weight scale x x scale) of each
 * lane's group. int32 lane j gathers codes [8j, 8j + 8) (u16 lanes 2j,
 * 2j + 1), as the float lanes do, so the group bookkeeping is shared.
 * The bias term is b * sum(x) in float32, per group.
 *
 * prep4i writes, per 128-block, 4 runs of 32 int16 (x[b + 4i + k] for
 * nibble k), then the ng group scales after the K int16 values. */
#define KFNV                                                                   \
  __attribute__((                                                              \
      target("avx512f,avx512bw,avx512vl,avx512bf16,avx512vnni,fma,f16c")))

static KFNV void prep4i(const float *x, int64_t K, int gs, float *xpv,
                        float *xsum) {
  int16_t *hi = (int16_t *)xpv, *lo = hi + K;
  float *sx = xpv + K;                   /* after the 2K int16 values */
  for (int64_t g = 0; g * gs < K; g++) { /* gs is 32, 64 or 128 */
    __m512 m = _mm512_setzero_ps(), sm = _mm512_setzero_ps();
    for (int j = 0; j < gs; j += 16) {
      __m512 v = _mm512_loadu_ps(x + g * gs + j);
      m = _mm512_max_ps(m, _mm512_abs_ps(v));
      sm = _mm512_add_ps(sm, v);
    }
    float mx = _mm512_reduce_max_ps(m);
    xsum[g] = _mm512_reduce_add_ps(sm);
    sx[g] = mx > 0 && isfinite(mx) ? mx / 32767.0f : 0.0f;
  }
  /* per 128-block: hi = round(x / sx), lo = round((x - hi sx) 65536 / sx)
   * in natural order (16 lanes share a group), then x[b + 4i + k] to run
   * k. The residual is at most sx / 2, so lo fits; both terms together
   * hold x to ~2^-32 of the group's largest |x|. */
  for (int64_t b = 0; b < K; b += 128) {
    int16_t th[128], tl[128];
    for (int c = 0; c < 8; c++) {
      float d = sx[(b + 16 * c) / gs];
      __m512 dv = _mm512_set1_ps(d), iv = _mm512_set1_ps(d > 0 ? 1 / d : 0),
             iv2 = _mm512_set1_ps(d > 0 ? 65536.0f / d : 0);
      __m512 v = _mm512_loadu_ps(x + b + 16 * c);
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v, iv));
      __m512 r = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(q), dv, v);
      __m512i ql = _mm512_cvtps_epi32(_mm512_mul_ps(r, iv2));
      _mm256_storeu_si256((__m256i *)(th + 16 * c), _mm512_cvtsepi32_epi16(q));
      _mm256_storeu_si256((__m256i *)(tl + 16 * c), _mm512_cvtsepi32_epi16(ql));
    }
    for (int i = 0; i < 32; i++)
      for (int k = 0; k < 4; k++) {
        hi[b + 32 * k + i] = th[4 * i + k];
        lo[b + 32 * k + i] = tl[4 * i + k];
      }
  }
}

/* nibble k of each u16 lane */
#define NIB16(v, k)                                                            \
  ((k) == 3   ? _mm512_srli_epi16((v), 12)                                     \
   : (k) == 0 ? _mm512_and_si512((v), _mm512_set1_epi16(0xF))                  \
              : _mm512_and_si512(_mm512_srli_epi16((v), 4 * (k)),              \
                                 _mm512_set1_epi16(0xF)))

static __attribute__((always_inline)) inline KFNV void
gemv4i_blk(const am_qfmt *f, const uint8_t *w, int64_t w_row, const char *s,
           int64_t s_row, const char *b, int64_t b_row, int64_t K,
           const float *const *xpf, const float *const *xs, int j0, int nw,
           float *out, const int nr, const int nwb) {
  int gs = f->gs;
  int64_t ng = K / gs;
  size_t ses = am_dtype_size(f->sdt), bes = am_dtype_size(f->bdt);
  const __m512i gidx = lane_groups(gs);
  const uint8_t *wj[4];
  const float *sxr[4];
  __m512 acc[4][4];
  const int64_t pf = pf_distance(nwb, w_row);
#pragma GCC unroll 4
  for (int r = 0; r < nr; r++)
    sxr[r] = xpf[r] + K; /* after hi and lo */
#pragma GCC unroll 4
  for (int q = 0; q < nwb; q++) {
    wj[q] = w + (j0 + q) * w_row;
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
      acc[q][r] = _mm512_setzero_ps();
  }
  for (int64_t g0 = 0; g0 < ng; g0 += 16) {
    int64_t gn = ng - g0 < 16 ? ng - g0 : 16;
    __mmask16 gm = (__mmask16)((1u << gn) - 1u);
    __m512 sqx[4][4], xsv[4], sxv[4];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) {
      xsv[r] = _mm512_maskz_loadu_ps(gm, xs[r] + g0);
      sxv[r] = _mm512_maskz_loadu_ps(gm, sxr[r] + g0);
    }
#pragma GCC unroll 4
    for (int q = 0; q < nwb; q++) {
      const char *sj = s + (j0 + q) * s_row + g0 * (int64_t)ses,
                 *bj = b + (j0 + q) * b_row + g0 * (int64_t)bes;
      _mm_prefetch(sj + nwb * s_row, _MM_HINT_T0);
      _mm_prefetch(bj + nwb * b_row, _MM_HINT_T0);
      __m512 sq = ld_f32_512(sj, f->sdt, gm), bq = ld_f32_512(bj, f->bdt, gm);
#pragma GCC unroll 4
      for (int r = 0; r < nr; r++) {
        acc[q][r] = _mm512_fmadd_ps(bq, xsv[r], acc[q][r]);
        sqx[q][r] = _mm512_mul_ps(sq, sxv[r]);
      }
    }
    int64_t c0 = g0 * gs, c1 = c0 + gn * gs, gb = 0, gstep = 128 / gs;
    for (int64_t c = c0; c < c1; c += 128, gb += gstep) {
      __m512i v[4], t[4][4], u[4][4]; /* hi and lo products */
#pragma GCC unroll 4
      for (int q = 0; q < nwb; q++) {
        v[q] = _mm512_loadu_si512((const void *)(wj[q] + c / 2));
        _mm_prefetch((const char *)(wj[q] + c / 2) + pf, _MM_HINT_T1);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
          t[q][r] = u[q][r] = _mm512_setzero_si512();
      }
#pragma GCC unroll 4
      for (int k = 0; k < 4; k++) {
        __m512i xh[4], xl[4];
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
          const int16_t *xr = (const int16_t *)xpf[r] + c + 32 * k;
          xh[r] = _mm512_loadu_si512((const void *)xr);
          xl[r] = _mm512_loadu_si512((const void *)(xr + K));
        }
#pragma GCC unroll 4
        for (int q = 0; q < nwb; q++) {
          __m512i qv = NIB16(v[q], k);
#pragma GCC unroll 4
          for (int r = 0; r < nr; r++) {
            t[q][r] = _mm512_dpwssd_epi32(t[q][r], qv, xh[r]);
            u[q][r] = _mm512_dpwssd_epi32(u[q][r], qv, xl[r]);
          }
        }
      }
      __m512i pi = _mm512_add_epi32(gidx, _mm512_set1_epi32((int)gb));
      const __m512 lo_w = _mm512_set1_ps(1.0f / 65536.0f);
#pragma GCC unroll 4
      for (int q = 0; q < nwb; q++)
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
          __m512 tv = _mm512_fmadd_ps(_mm512_cvtepi32_ps(u[q][r]), lo_w,
                                      _mm512_cvtepi32_ps(t[q][r]));
          acc[q][r] = _mm512_fmadd_ps(tv, _mm512_permutexvar_ps(pi, sqx[q][r]),
                                      acc[q][r]);
        }
    }
  }
  if (nwb == 4) {
    for (int r = 0; r < nr; r++)
      hsum4_512(acc[0][r], acc[1][r], acc[2][r], acc[3][r], out + r * nw + j0);
  } else {
    for (int q = 0; q < nwb; q++)
      for (int r = 0; r < nr; r++)
        out[r * nw + j0 + q] = _mm512_reduce_add_ps(acc[q][r]);
  }
}

static __attribute__((always_inline)) inline KFNV void
gemv4i_k(const am_qfmt *f, const uint8_t *w, int64_t w_row, const char *s,
         int64_t s_row, const char *b, int64_t b_row, int64_t K,
         const float *const *xpf, const float *const *xs, int nw, float *out,
         const int nr) {
  const int nwb = nr <= 2 ? 4 : 2;
  int j = 0;
  for (; j + nwb <= nw; j += nwb)
    gemv4i_blk(f, w, w_row, s, s_row, b, b_row, K, xpf, xs, j, nw, out, nr,
               nwb);
  for (; j < nw; j++)
    gemv4i_blk(f, w, w_row, s, s_row, b, b_row, K, xpf, xs, j, nw, out, nr, 1);
}
#undef NIB16

#define GEMV4I_CALL(n)                                                         \
  gemv4i_k(f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, n)
GEMV_BY_ROWS(gemv4i, KFNV, GEMV4I_CALL)
#undef GEMV4I_CALL

#define GEMV4L_F32_CALL(n)                                                     \
  gemv4l_k(f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, n, 0)
#define GEMV4L_BF16_CALL(n)                                                    \
  gemv4l_k(f, w, w_row, s, s_row, b, b_row, K, xp, xs, nw, out, n, 1)
GEMV_BY_ROWS(gemv4l_f32, KFNB, GEMV4L_F32_CALL)
GEMV_BY_ROWS(gemv4l_bf16, KFNB, GEMV4L_BF16_CALL)
#undef GEMV4L_F32_CALL
#undef GEMV4L_BF16_CALL
#endif

#endif /* QMM_ISA */
