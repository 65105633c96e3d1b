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
#define KEY_PAIRS 0
#define PV_CHAINS 8

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
#undef VHSUM16
#undef VLD_BF16
#undef VLD_F16
#undef KEY_PAIRS
#undef PV_CHAINS

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
#define KEY_PAIRS 0 /* 16 registers: no room for two keys */
#define PV_CHAINS 8

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
#undef VHSUM16
#undef VLD_BF16
#undef VLD_F16
#undef KEY_PAIRS
#undef PV_CHAINS

/* =========================================================== AVX-512 */

#define KFN __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

KFN static inline __m256 fold512(__m512 v) {
  return _mm256_add_ps(
      _mm512_castps512_ps256(v),
      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

KFN static inline __attribute__((always_inline)) void
hsum8_avx512(const __m512 *a, float *t) {
  __m256 h[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++)
    h[i] = fold512(a[i]);
  __m256 t0 = _mm256_hadd_ps(h[0], h[1]), t1 = _mm256_hadd_ps(h[2], h[3]);
  __m256 t2 = _mm256_hadd_ps(h[4], h[5]), t3 = _mm256_hadd_ps(h[6], h[7]);
  __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                    _mm256_permute2f128_ps(u0, u1, 0x31)));
}

/* Sixteen vectors to their sixteen sums (t[i] = sum of a[i]) with one
 * tree: 256-bit halves, then 128-bit blocks, then lane pairs, then lanes
 * (15 adds). Taking the inputs in the order sg (an involution) lands each
 * sum in its own lane. */
KFN static inline __attribute__((always_inline)) void
hsum16_avx512(const __m512 *a, float *t) {
  static const int sg[16] = {0, 2, 1, 3, 8,  10, 9,  11,
                             4, 6, 5, 7, 12, 14, 13, 15};
  __m512 b[8], c[4], d[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    __m512 x = a[sg[i]], y = a[sg[i + 8]];
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44),
                         _mm512_shuffle_f32x4(x, y, 0xee));
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[i], b[i + 4], 0x88),
                         _mm512_shuffle_f32x4(b[i], b[i + 4], 0xdd));
#pragma GCC unroll 2
  for (int i = 0; i < 2; i++)
    d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[i], c[i + 2], 0x44),
                         _mm512_shuffle_ps(c[i], c[i + 2], 0xee));
  _mm512_storeu_ps(t, _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88),
                                    _mm512_shuffle_ps(d[0], d[1], 0xdd)));
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
#define VHSUM16 hsum16_avx512
#define VLD_BF16(p)                                                            \
  _mm512_castsi512_ps(_mm512_slli_epi32(                                       \
      _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define VLD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define KEY_PAIRS 1
#define PV_CHAINS 16

#include "nn_simd_impl.h"

/* ---------------------------------------- AVX-512 BF16 dot products */

/* Scores from bfloat16 q rows and bfloat16 keys with vdpbf16ps: pairs of
 * exact bfloat16 products summed into float32, 32 per instruction, twice
 * the float32 FMA rate. Same structure as scores_nk: RT rows, NK keys,
 * CB chunks of 32 side by side. */
#define KFN_DP                                                                 \
  __attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma,f16c")))

KFN_DP static inline __attribute__((always_inline)) void
dp_nk(const int RT, const int NK, const uint16_t *q, int64_t qs,
      const uint16_t *k, int64_t ks, int64_t j, int64_t d, float *s,
      int64_t ss) {
  const int CB = 8 / RT;
  const int64_t dbig = d - d % (CB * 32), dvec = d - d % 32;
#pragma GCC unroll 2
  for (int u = 0; u < NK; u++)
    prefetch_row_avx512(AM_NN_KV_BF16, k, (j + u + PF_KEYS) * ks, d, 0);
  __m512 acc[16]; /* key u, chain a: acc[u * 8 + a] */
#pragma GCC unroll 2
  for (int u = 0; u < NK; u++)
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++)
      acc[u * 8 + a] = _mm512_setzero_ps();
  for (int64_t c = 0; c < dbig; c += CB * 32) {
#pragma GCC unroll 8
    for (int b = 0; b < CB; b++) {
      __m512i kv[2];
#pragma GCC unroll 2
      for (int u = 0; u < NK; u++)
        kv[u] = _mm512_loadu_si512(k + (j + u) * ks + c + b * 32);
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++) {
        __m512bh qv = (__m512bh)_mm512_loadu_si512(q + r * qs + c + b * 32);
#pragma GCC unroll 2
        for (int u = 0; u < NK; u++)
          acc[u * 8 + r * CB + b] =
              _mm512_dpbf16_ps(acc[u * 8 + r * CB + b], qv, (__m512bh)kv[u]);
      }
    }
  }
  for (int64_t c = dbig; c < dvec; c += 32) {
#pragma GCC unroll 2
    for (int u = 0; u < NK; u++) {
      __m512bh kv = (__m512bh)_mm512_loadu_si512(k + (j + u) * ks + c);
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++)
        acc[u * 8 + r * CB] =
            _mm512_dpbf16_ps(acc[u * 8 + r * CB],
                             (__m512bh)_mm512_loadu_si512(q + r * qs + c), kv);
    }
  }
  float tt[16];
  if (RT == 8 && NK == 2) hsum16_avx512(acc, tt);
#pragma GCC unroll 2
  for (int u = 0; u < NK; u++) {
    float *t = tt + u * 8;
    if (RT == 8 && NK == 2) {
    } else if (RT == 8) {
      hsum8_avx512(acc + u * 8, t);
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++) {
        __m512 a = acc[u * 8 + r * CB];
#pragma GCC unroll 8
        for (int b = 1; b < CB; b++)
          a = _mm512_add_ps(a, acc[u * 8 + r * CB + b]);
        t[r] = _mm512_reduce_add_ps(a);
      }
    }
    for (int64_t c = dvec; c < d; c++) {
      float kx = am_bf16_to_f32(k[(j + u) * ks + c]);
      for (int r = 0; r < RT; r++)
        t[r] += am_bf16_to_f32(q[r * qs + c]) * kx;
    }
    for (int r = 0; r < RT; r++)
      s[r * ss + j + u] = t[r];
  }
}

KFN_DP static inline __attribute__((always_inline)) void
dp_rt(const int RT, const uint16_t *q, int64_t qs, const uint16_t *k,
      int64_t ks, int64_t nk, int64_t d, float *s, int64_t ss) {
  int64_t j = 0;
  for (; j + 2 <= nk; j += 2)
    dp_nk(RT, 2, q, qs, k, ks, j, d, s, ss);
  for (; j < nk; j++)
    dp_nk(RT, 1, q, qs, k, ks, j, d, s, ss);
}

KFN_DP static void sc_bf16dp_avx512(int rt, const uint16_t *q, int64_t qs,
                                    const void *k, int64_t ks, int64_t nk,
                                    int64_t d, float *s, int64_t ss) {
  for (int step; rt > 0; rt -= step, q += step * qs, s += step * ss) {
    step = rt >= 8 ? 8 : rt >= 4 ? 4 : rt >= 2 ? 2 : 1;
    if (step == 8)
      dp_rt(8, q, qs, k, ks, nk, d, s, ss);
    else if (step == 4)
      dp_rt(4, q, qs, k, ks, nk, d, s, ss);
    else if (step == 2)
      dp_rt(2, q, qs, k, ks, nk, d, s, ss);
    else
      dp_rt(1, q, qs, k, ks, nk, d, s, ss);
  }
}

/* P @ V with vdpbf16ps: acc[r][c] += p[r][j] v[j][c] + p[r][j+1] v[j+1][c]
 * per instruction, from bfloat16 probabilities (the caller rounded them)
 * and two V rows interleaved by unpacklo/hi_epi16. The interleave leaves
 * the columns of a 32-column group in the order of LO_COLS / HI_COLS; acc
 * is permuted into that order on load and back on store, so memory keeps
 * the natural order. RT rows times G groups times two halves = 16 FMA-like
 * chains. */
static const int32_t perm_in[2][16] = {
    {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
    {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31}};
static const int32_t perm_out[2][16] = {
    {0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23},
    {8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31}};

KFN_DP static inline __attribute__((always_inline)) void
dpv_rt(const int RT, const int G, const uint32_t *pp, int64_t pps,
       const uint16_t *v, int64_t vs, int64_t nk, int64_t dv, int64_t c,
       float *acc, int64_t as, const float *corr) {
  __m512i pin0 = _mm512_loadu_si512(perm_in[0]);
  __m512i pin1 = _mm512_loadu_si512(perm_in[1]);
  __m512 a[16]; /* row r, group g, half h: a[(r * G + g) * 2 + h] */
#pragma GCC unroll 8
  for (int r = 0; r < RT; r++) {
    __m512 cr = _mm512_set1_ps(corr[r]);
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) {
      const float *ap = acc + r * as + c + g * 32;
      __m512 n0 = _mm512_mul_ps(_mm512_loadu_ps(ap), cr);
      __m512 n1 = _mm512_mul_ps(_mm512_loadu_ps(ap + 16), cr);
      a[(r * G + g) * 2] = _mm512_permutex2var_ps(n0, pin0, n1);
      a[(r * G + g) * 2 + 1] = _mm512_permutex2var_ps(n0, pin1, n1);
    }
  }
  for (int64_t j = 0; j < nk; j += 2) {
    const uint16_t *v0 = v + j * vs + c, *v1 = v0 + vs;
    if (c == 0) /* rows far ahead to L2, the rest of these two to L1 */
      for (int u = 0; u < 2; u++) {
        prefetch_row_avx512(AM_NN_KV_BF16, v, (j + u + PF_KEYS) * vs, dv, 0);
        if (j + u < nk)
          prefetch_row_avx512(AM_NN_KV_BF16, v, (j + u) * vs + G * 32,
                              dv - G * 32, 1);
      }
    __m512i lo[8], hi[8];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) {
      __m512i x0 = _mm512_loadu_si512(v0 + g * 32);
      __m512i x1 =
          j + 1 < nk ? _mm512_loadu_si512(v1 + g * 32) : _mm512_setzero_si512();
      lo[g] = _mm512_unpacklo_epi16(x0, x1);
      hi[g] = _mm512_unpackhi_epi16(x0, x1);
    }
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++) {
      __m512bh pb = (__m512bh)_mm512_set1_epi32((int)pp[r * pps + j / 2]);
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) {
        a[(r * G + g) * 2] =
            _mm512_dpbf16_ps(a[(r * G + g) * 2], (__m512bh)lo[g], pb);
        a[(r * G + g) * 2 + 1] =
            _mm512_dpbf16_ps(a[(r * G + g) * 2 + 1], (__m512bh)hi[g], pb);
      }
    }
  }
  __m512i pout0 = _mm512_loadu_si512(perm_out[0]);
  __m512i pout1 = _mm512_loadu_si512(perm_out[1]);
#pragma GCC unroll 8
  for (int r = 0; r < RT; r++)
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) {
      float *ap = acc + r * as + c + g * 32;
      __m512 l = a[(r * G + g) * 2], h = a[(r * G + g) * 2 + 1];
      _mm512_storeu_ps(ap, _mm512_permutex2var_ps(l, pout0, h));
      _mm512_storeu_ps(ap + 16, _mm512_permutex2var_ps(l, pout1, h));
    }
}

/* Columns in passes of G groups of 32 (G = 8 / RT, then single groups);
 * the last dv % 32 columns in float32 from the same bfloat16 values. */
KFN_DP static inline __attribute__((always_inline)) void
dpv_cols(const int RT, const uint32_t *pp, int64_t pps, const float *p,
         int64_t ps, const uint16_t *v, int64_t vs, int64_t nk, int64_t dv,
         float *acc, int64_t as, const float *corr) {
  const int G = 8 / RT;
  int64_t c = 0;
  for (; c + G * 32 <= dv; c += G * 32)
    dpv_rt(RT, G, pp, pps, v, vs, nk, dv, c, acc, as, corr);
  for (; c + 32 <= dv; c += 32)
    dpv_rt(RT, 1, pp, pps, v, vs, nk, dv, c, acc, as, corr);
  for (; c < dv; c++)
    for (int r = 0; r < RT; r++) {
      float x = acc[r * as + c] * corr[r];
      for (int64_t j = 0; j < nk; j++)
        x += p[r * ps + j] * am_bf16_to_f32(v[j * vs + c]);
      acc[r * as + c] = x;
    }
}

/* n probabilities as bfloat16 pairs (p[2k], p[2k + 1]) in one dword each,
 * a zero completing an odd count; vcvtne2ps2bf16 keeps the order. */
KFN_DP static void pack_pairs(const float *p, int64_t n, uint32_t *pp) {
  int64_t j = 0;
  for (; j + 32 <= n; j += 32)
    _mm512_storeu_si512(
        pp + j / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + j + 16),
                                                 _mm512_loadu_ps(p + j)));
  for (; j < n; j += 2) {
    uint32_t lo = am_f32_to_bf16(p[j]);
    uint32_t hi = j + 1 < n ? am_f32_to_bf16(p[j + 1]) : 0;
    pp[j / 2] = lo | hi << 16;
  }
}

/* Keys in chunks of up to 128: their probabilities become bfloat16 pairs
 * (the high halves: the caller rounded them already). */
KFN_DP static void pv_bf16dp_avx512(int rt, const float *p, int64_t ps,
                                    const void *vv, int64_t vs, int64_t nk,
                                    int64_t dv, float *acc, int64_t as,
                                    const float *corr) {
  const uint16_t *v = vv;
  uint32_t pp[8 * 64];
  float one[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  for (int r0 = 0; r0 < rt; r0 += 8) {
    int n = rt - r0 < 8 ? rt - r0 : 8;
    for (int64_t j0 = 0; j0 < nk; j0 += 128) {
      int64_t m = nk - j0 < 128 ? nk - j0 : 128;
      for (int r = 0; r < n; r++)
        pack_pairs(p + (r0 + r) * ps + j0, m, pp + r * 64);
      /* the rescale applies once, with the first chunk */
      const float *cr = j0 ? one : corr + r0;
      const float *pr = p + r0 * ps + j0;
      const uint16_t *vj = v + j0 * vs;
      float *ar = acc + r0 * as;
      for (int done = 0; done < n;) {
        int step = n - done >= 8   ? 8
                   : n - done >= 4 ? 4
                   : n - done >= 2 ? 2
                                   : 1;
        const uint32_t *pq = pp + done * 64;
        if (step == 8)
          dpv_cols(8, pq, 64, pr, ps, vj, vs, m, dv, ar, as, cr);
        else if (step == 4)
          dpv_cols(4, pq, 64, pr, ps, vj, vs, m, dv, ar, as, cr);
        else if (step == 2)
          dpv_cols(2, pq, 64, pr, ps, vj, vs, m, dv, ar, as, cr);
        else
          dpv_cols(1, pq, 64, pr, ps, vj, vs, m, dv, ar, as, cr);
        done += step;
        pr += step * ps;
        ar += step * as;
        cr += step;
      }
    }
  }
}

/* The AVX-512 helpers plus the bfloat16 dot-product kernels. */
static const am_nn_vec g_vec_avx512_bf16 =
    NN_VEC_INIT(sc_bf16dp_avx512, pv_bf16dp_avx512);

static bool has_avx2_f16c(void) {
  return am_cpu_has_avx2() && am_cpu_has_f16c();
}
#define HAVE_X86 1
#endif

/* 0: portable, 1: up to AVX2, 2: up to AVX-512, 3: and the bfloat16
 * dot products where they pay, 4: wherever the CPU has them (tests). */
static int g_level = 3;

void am_nn_simd_limit(int level) {
  g_level = level;
}

#ifdef HAVE_X86
/* vdpbf16ps does two float32 FMAs' work per lane. It pays on AMD Zen 4,
 * whose 512-bit FMAs run at half rate (one per cycle); Intel cores with
 * two 512-bit FMA units run the float32 kernels as fast, without the
 * interleaving shuffles (measured on a Xeon: float32 faster). */
static bool dp_pays(void) {
  return __builtin_cpu_is("amd");
}
#endif

const am_nn_vec *am_nn_vec_get(void) {
#ifdef HAVE_X86
  bool avx512 = am_cpu_has_avx512() && has_avx2_f16c();
  if (avx512 && am_cpu_has_avx512bf16() &&
      (g_level >= 4 || (g_level == 3 && dp_pays())))
    return &g_vec_avx512_bf16;
  if (g_level >= 2 && avx512) return &g_vec_avx512;
  if (g_level >= 1 && has_avx2_f16c()) return &g_vec_avx2;
#endif
  return &g_vec_scalar;
}
