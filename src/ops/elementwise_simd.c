/*
 * elementwise_simd.c — AVX2 and AVX-512 float32 elementwise kernels,
 * chosen at run time.
 *
 * The kernels are written once (elementwise_simd_impl.h) against a small
 * vector vocabulary; this file defines that vocabulary for each
 * instruction set and includes the template under it. Functions carry
 * target attributes, so the library still builds for (and runs on) any
 * x86-64: am_ew_simd_f32 only hands out kernels the CPU supports. On other
 * architectures it hands out none and the portable kernels run.
 */
#include "elementwise_simd.h"

#include <math.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

/* ============================================================== AVX2 */

#define KFN __attribute__((target("avx2,fma")))
#define KNAME(x) x##_avx2
#define W 8
#define V __m256
#define VI __m256i
#define VM __m256 /* comparison mask: all-ones lanes */
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSTREAM(p, v) _mm256_stream_ps((p), (v)) /* p 32-byte aligned */
#define VFENCE() _mm_sfence()
#define VSET1(x) _mm256_set1_ps(x)
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))   /* a*b + c */
#define VFNMA(a, b, c) _mm256_fnmadd_ps((a), (b), (c)) /* c - a*b */
#define VMAX _mm256_max_ps
#define VMIN _mm256_min_ps
#define VSQRT _mm256_sqrt_ps
#define VRINT(x)                                                               \
  _mm256_round_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VFLOOR(x)                                                              \
  _mm256_round_ps((x), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
#define VCEIL(x) _mm256_round_ps((x), _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC)
#define VAND _mm256_and_ps
#define VOR _mm256_or_ps
#define VXOR _mm256_xor_ps
#define VANDNOT _mm256_andnot_ps /* ~a & b */
#define VLT(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define VEQ(a, b) _mm256_cmp_ps((a), (b), _CMP_EQ_OQ)
#define VUNORD(a, b) _mm256_cmp_ps((a), (b), _CMP_UNORD_Q)
#define VSEL(m, f, t) _mm256_blendv_ps((f), (t), (m)) /* m ? t : f */
#define VCVTI _mm256_cvtps_epi32                      /* nearest */
#define VCVTF _mm256_cvtepi32_ps
#define VCASTF _mm256_castsi256_ps
#define VCASTI _mm256_castps_si256
#define VISET1 _mm256_set1_epi32
#define VIADD _mm256_add_epi32
#define VISUB _mm256_sub_epi32
#define VIAND _mm256_and_si256
#define VIOR _mm256_or_si256
#define VISRAI _mm256_srai_epi32
#define VISRLI _mm256_srli_epi32
#define VISLLI _mm256_slli_epi32

#include "elementwise_simd_impl.h"

#undef KFN
#undef KNAME
#undef W
#undef V
#undef VI
#undef VM
#undef VLOAD
#undef VSTORE
#undef VSTREAM
#undef VFENCE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VFMA
#undef VFNMA
#undef VMAX
#undef VMIN
#undef VSQRT
#undef VRINT
#undef VFLOOR
#undef VCEIL
#undef VAND
#undef VOR
#undef VXOR
#undef VANDNOT
#undef VLT
#undef VEQ
#undef VUNORD
#undef VSEL
#undef VCVTI
#undef VCVTF
#undef VCASTF
#undef VCASTI
#undef VISET1
#undef VIADD
#undef VISUB
#undef VIAND
#undef VIOR
#undef VISRAI
#undef VISRLI
#undef VISLLI

/* =========================================================== AVX-512 */

/* Float bit operations go through the integer unit (AVX512F) rather than
 * the AVX512DQ float forms, so the kernels need nothing beyond F. */
#define KFN __attribute__((target("avx512f,avx512bw,avx512dq")))
#define KNAME(x) x##_avx512
#define W 16
#define V __m512
#define VI __m512i
#define VM __mmask16
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSTREAM(p, v) _mm512_stream_ps((p), (v)) /* p 64-byte aligned */
#define VFENCE() _mm_sfence()
#define VSET1(x) _mm512_set1_ps(x)
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VFNMA(a, b, c) _mm512_fnmadd_ps((a), (b), (c))
#define VMAX _mm512_max_ps
#define VMIN _mm512_min_ps
#define VSQRT _mm512_sqrt_ps
#define VRINT(x)                                                               \
  _mm512_roundscale_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VFLOOR(x)                                                              \
  _mm512_roundscale_ps((x), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
#define VCEIL(x)                                                               \
  _mm512_roundscale_ps((x), _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC)
#define VBITS(op, a, b)                                                        \
  _mm512_castsi512_ps(op(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VAND(a, b) VBITS(_mm512_and_si512, a, b)
#define VOR(a, b) VBITS(_mm512_or_si512, a, b)
#define VXOR(a, b) VBITS(_mm512_xor_si512, a, b)
#define VANDNOT(a, b) VBITS(_mm512_andnot_si512, a, b)
#define VLT(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ)
#define VEQ(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ)
#define VUNORD(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_UNORD_Q)
#define VSEL(m, f, t) _mm512_mask_blend_ps((m), (f), (t))
#define VCVTI _mm512_cvtps_epi32
#define VCVTF _mm512_cvtepi32_ps
#define VCASTF _mm512_castsi512_ps
#define VCASTI _mm512_castps_si512
#define VISET1 _mm512_set1_epi32
#define VIADD _mm512_add_epi32
#define VISUB _mm512_sub_epi32
#define VIAND _mm512_and_si512
#define VIOR _mm512_or_si512
#define VISRAI _mm512_srai_epi32
#define VISRLI _mm512_srli_epi32
#define VISLLI _mm512_slli_epi32

#include "elementwise_simd_impl.h"

/* Tests lower this to run the AVX2 kernels on an AVX-512 machine.
 * Declared here only: the test declares it extern. */
void am_ew_simd_limit(int level);
static int g_level = 2; /* 0: none, 1: up to AVX2, 2: up to AVX-512 */
void am_ew_simd_limit(int level) {
  g_level = level;
}

am_ew_kernel am_ew_simd_f32(int op, bool stream) {
  if (op < 0 || op >= AM_OP_COUNT) return NULL;
  if (g_level >= 2 && am_cpu_has_avx512())
    return (stream ? g_kernels_nt_avx512 : g_kernels_avx512)[op];
  if (g_level >= 1 && am_cpu_has_avx2())
    return (stream ? g_kernels_nt_avx2 : g_kernels_avx2)[op];
  return NULL;
}

#else /* not x86 */

void am_ew_simd_limit(int level);
void am_ew_simd_limit(int level) {
  (void)level;
}

am_ew_kernel am_ew_simd_f32(int op, bool stream) {
  (void)op;
  (void)stream;
  return NULL;
}

#endif
