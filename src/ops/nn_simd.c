/*
 * nn_simd.c — float32 SIMD helpers of the neural-network family (row
 * reductions, attention scores and P @ V), chosen at run time.
 *
 * The helpers are written once (nn_simd_impl.h) against a small vector
 * vocabulary that this file defines three times: portable scalar code
 * (W = 1, also the reference the tests hold the others to), AVX2+FMA+F16C
 * and AVX-512. Functions carry target attributes, so the library builds
 * for any x86-64 and am_nn_vec_get only hands out what the CPU supports.
 */
#include "nn_common.h"

#include <math.h>

/* ========================================================== portable */

#define KFN
#define KNAME(x) x##_scalar
#define W 1
#define V float
#define VZERO() 0.0f
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET1(x) (x)
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define VHSUM(v) (v)
#define VHMAX(v) (v)
#define VHSUM8(acc, t)                                                         \
  for (int i_ = 0; i_ < 8; i_++)                                               \
  (t)[i_] = (acc)[i_]
#define VLD_BF16(p) am_bf16_to_f32(*(p))
#define VLD_F16(p) am_f16_to_f32(*(p))

#include "nn_simd_impl.h"

#undef KFN
#undef KNAME
#undef W
#undef V
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VFMA
#undef VMAX
#undef VHSUM
#undef VHMAX
#undef VHSUM8
#undef VLD_BF16
#undef VLD_F16

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

/* ============================================================== AVX2 */

#define KFN __attribute__((target("avx2,fma,f16c")))

KFN static inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

KFN static inline float hmax_avx2(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* Eight vectors to their eight sums, in order, with one transpose tree. */
KFN static inline void hsum8_avx2(const __m256 *a, float *t) {
  __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                    _mm256_permute2f128_ps(u0, u1, 0x31)));
}

#define KNAME(x) x##_avx2
#define W 8
#define V __m256
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET1(x) _mm256_set1_ps(x)
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VMAX _mm256_max_ps
#define VHSUM hsum_avx2
#define VHMAX hmax_avx2
#define VHSUM8 hsum8_avx2
#define VLD_BF16(p)                                                            \
  _mm256_castsi256_ps(_mm256_slli_epi32(                                       \
      _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define VLD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

#include "nn_simd_impl.h"

#undef KFN
#undef KNAME
#undef W
#undef V
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VFMA
#undef VMAX
#undef VHSUM
#undef VHMAX
#undef VHSUM8
#undef VLD_BF16
#undef VLD_F16

/* =========================================================== AVX-512 */

#define KFN __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

KFN static inline __m256 fold512(__m512 v) {
  return _mm256_add_ps(
      _mm512_castps512_ps256(v),
      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

KFN static inline void hsum8_avx512(const __m512 *a, float *t) {
  __m256 h[8];
  for (int i = 0; i < 8; i++)
    h[i] = fold512(a[i]);
  __m256 t0 = _mm256_hadd_ps(h[0], h[1]), t1 = _mm256_hadd_ps(h[2], h[3]);
  __m256 t2 = _mm256_hadd_ps(h[4], h[5]), t3 = _mm256_hadd_ps(h[6], h[7]);
  __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                    _mm256_permute2f128_ps(u0, u1, 0x31)));
}

#define KNAME(x) x##_avx512
#define W 16
#define V __m512
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSET1(x) _mm512_set1_ps(x)
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VMAX _mm512_max_ps
#define VHSUM _mm512_reduce_add_ps
#define VHMAX _mm512_reduce_max_ps
#define VHSUM8 hsum8_avx512
#define VLD_BF16(p)                                                            \
  _mm512_castsi512_ps(_mm512_slli_epi32(                                       \
      _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define VLD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))

#include "nn_simd_impl.h"

static bool has_avx2_f16c(void) {
  return am_cpu_has_avx2() && __builtin_cpu_supports("f16c");
}
#define HAVE_X86 1
#endif

static int g_level = 2; /* 0: portable, 1: up to AVX2, 2: up to AVX-512 */

void am_nn_simd_limit(int level) {
  g_level = level;
}

const am_nn_vec *am_nn_vec_get(void) {
#ifdef HAVE_X86
  if (g_level >= 2 && am_cpu_has_avx512() && has_avx2_f16c())
    return &g_vec_avx512;
  if (g_level >= 1 && has_avx2_f16c()) return &g_vec_avx2;
#endif
  return &g_vec_scalar;
}
