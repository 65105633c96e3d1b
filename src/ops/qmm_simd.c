/*
 * qmm_simd.c — AVX2 and AVX-512 kernels of the quantized matmuls: the
 * row decoders (packed codes + group scales to float), the dot products
 * (one row against up to 4) and the multi-row axpy, chosen at run time.
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
 * codes are the bytes, 2-bit codes come from variable shifts of one word,
 * and 3/5/6-bit codes are extracted one by one (rare formats). E2M1 maps
 * through a 16-entry table permute, E4M3 through float16 conversion (as
 * MLX's FromFP8: magnitude bits << 7 as a half, times 256).
 */
#ifndef QMM_ISA
#include "quant_formats.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

/* ============================================================== AVX2 */
#define QMM_ISA 2
#define KFN __attribute__((target("avx2,fma,f16c")))
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

#else /* not x86 */
void am_qmm_set_isa(int isa) {
  (void)isa;
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
#endif

#else /* ======================= the kernels, once per instruction set */

/* ---- 16 codes (bytes, natural order) to 16 floats ---- */

#if QMM_ISA == 512
/* out[0..16) = s * q + b */
static KFN inline void KNAME(emit_affine)(__m128i c, V s, V b, float *out) {
  V q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c));
  VSTORE(out, VFMA(q, s, b));
}
/* out = E2M1(c) * s */
static KFN inline void KNAME(emit_fp4)(__m128i c, V s, float *out) {
  const __m512 lut = _mm512_loadu_ps(am_q_fp4_lut);
  V v = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(c), lut);
  VSTORE(out, VMUL(v, s));
}
/* out = E4M3(c) * s: magnitude << 7 as float16, times 256, sign */
static KFN inline void KNAME(emit_fp8)(__m128i c, V s, float *out) {
  __m256i h = _mm256_cvtepu8_epi16(c);
  __m256i mag =
      _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(127)), 7);
  __m256i sgn =
      _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(128)), 8);
  V v = _mm512_cvtph_ps(_mm256_or_si256(mag, sgn));
  VSTORE(out, VMUL(v, VMUL(s, VSET1(256.0f))));
}
#else
static KFN inline void KNAME(emit_affine)(__m128i c, V s, V b, float *out) {
  V q0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
  V q1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)));
  VSTORE(out, VFMA(q0, s, b));
  VSTORE(out + 8, VFMA(q1, s, b));
}
static KFN inline V KNAME(fp4_8)(__m256i idx) {
  const __m256 lut = _mm256_loadu_ps(am_q_fp4_lut); /* 8 magnitudes */
  V mag = _mm256_permutevar8x32_ps(lut, idx);       /* uses idx & 7 */
  __m256i sgn =
      _mm256_slli_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(8)), 28);
  return _mm256_xor_ps(mag, _mm256_castsi256_ps(sgn));
}
static KFN inline void KNAME(emit_fp4)(__m128i c, V s, float *out) {
  VSTORE(out, VMUL(KNAME(fp4_8)(_mm256_cvtepu8_epi32(c)), s));
  VSTORE(out + 8,
         VMUL(KNAME(fp4_8)(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8))), s));
}
static KFN inline void KNAME(emit_fp8)(__m128i c, V s, float *out) {
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
static KFN inline __m128i KNAME(nibbles16)(const uint8_t *p) {
  __m128i v = _mm_loadl_epi64((const __m128i *)p);
  __m128i m = _mm_set1_epi8(0x0f);
  __m128i lo = _mm_and_si128(v, m);
  __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
  return _mm_unpacklo_epi8(lo, hi);
}

/* 16 two-bit codes from one word. */
static KFN inline __m128i KNAME(crumbs16)(const uint8_t *p) {
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
static KFN inline __m128i KNAME(odd16)(const uint8_t *row, int64_t i,
                                       int bits) {
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

static KFN inline float KNAME(hsum)(V v) {
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
static KFN inline void KNAME(dotn)(const float *a, const float *b, int64_t ldb,
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

#endif /* QMM_ISA */
