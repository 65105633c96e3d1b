/*
 * linalg.c — matmul and addmm with NumPy matmul semantics, on OpenBLAS.
 *
 * Layouts. Each batch matrix goes to BLAS where it lies whenever BLAS can
 * address it: a row-major matrix as NoTrans, a transposed view (unit
 * stride down the columns) as Trans with the other stride as leading
 * dimension, so x @ W.T never copies W. Other layouts (steps on both
 * axes, broadcast inside the matrix, negative strides) are copied to
 * row-major first. Batch dims are only pointer offsets, so broadcast batch
 * dims (stride 0) cost nothing.
 *
 * Dtypes. float32 runs sgemm, float64 dgemm. float16/bfloat16 operands are
 * converted to float32 (SIMD, on the thread pool, keeping their
 * orientation), multiplied by sgemm into a float32 scratch, and rounded
 * once on store: the conversion is O(n^2) next to the O(n^3) product.
 *
 * Skinny products (M <= 8 rows: decode, a few tokens; or N == 1) are bound
 * by memory, not arithmetic: they run our own kernels on the thread pool
 * over the matrix in its stored dtype, so a bfloat16 weight streams once
 * at two bytes per element instead of being converted first (and is never
 * repacked, as a small-M sgemm would). float64 uses dgemv / dgemm.
 *
 * Threads. A single large product lets OpenBLAS use its own threads (as
 * many as the pool has, set once and again when am_set_num_threads changes
 * the count). A batch of matrices small enough that OpenBLAS runs each on
 * one thread anyway (its own size thresholds) is spread over the batch
 * with am_parallel_for; larger batch matrices run one after another, each
 * threaded by OpenBLAS, so two thread pools never compete.
 */
#include "linalg_internal.h"
#include "linalg_params.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>

/* OpenBLAS runs a GEMM with M*N*K at most 4 * 65536 (GEMV with m*n below
 * 4 * 2304) on the calling thread only (interface/gemm.c, gemv.c). */
#define BLAS_SERIAL_GEMM 262144.0
#define BLAS_SERIAL_GEMV 9216.0

/* ======================================================================
 *  BLAS threads
 * ====================================================================== */

static atomic_int g_blas_threads;

/* Gives OpenBLAS as many threads as the pool has (only when that count
 * changed: the call is cheap but not free). */
void am_linalg_blas_init(void) {
  int n = am_get_num_threads();
  if (atomic_exchange(&g_blas_threads, n) != n) openblas_set_num_threads(n);
}

/* ======================================================================
 *  Kernels: conversion, dot and axpy rows (AVX2 + F16C, or portable)
 * ====================================================================== */

/* Test switch: use the portable kernels even where AVX2 runs. */
void am_linalg_force_portable(bool on);
static bool g_portable;
void am_linalg_force_portable(bool on) {
  g_portable = on;
}

static inline float ld_f32(const void *p, int64_t i) {
  return ((const float *)p)[i];
}
static inline float ld_f16(const void *p, int64_t i) {
  return am_f16_to_f32(((const uint16_t *)p)[i]);
}
static inline float ld_bf16(const void *p, int64_t i) {
  return am_bf16_to_f32(((const uint16_t *)p)[i]);
}

/* The matrix-vector kernels read the matrix in its dtype (float32,
 * float16 or bfloat16) and the vector as float32. Four rows at a time
 * share each vector load and keep four memory streams in flight.
 * dot: out[j] = v . row_j for the 4 rows row + j*ld (elements). */
typedef void (*dot4_fn)(const float *v, const void *row, int64_t ld, int64_t n,
                        float *out);
typedef float (*dot_fn)(const float *v, const void *row, int64_t n);
/* axpy: acc[0..n) += sum_j s[j] * row_j[0..n), 4 rows or 1. */
typedef void (*axpy4_fn)(float *acc, const float *s, const void *row,
                         int64_t ld, int64_t n);
typedef void (*axpy_fn)(float *acc, float s, const void *row, int64_t n);
/* dst[0..n) = src[0..n) as float32. */
typedef void (*cvt_fn)(const void *src, float *dst, int64_t n);

typedef struct {
  dot4_fn dot4;
  dot_fn dot;
  axpy4_fn axpy4;
  axpy_fn axpy;
  cvt_fn cvt;
} mv_kernels;

#define PORTABLE_KERNELS(T, E, LD)                                             \
  static float dot_##T##_c(const float *v, const void *row, int64_t n) {       \
    float s[4] = {0, 0, 0, 0};                                                 \
    int64_t i = 0;                                                             \
    for (; i + 4 <= n; i += 4)                                                 \
      for (int k = 0; k < 4; k++)                                              \
        s[k] += v[i + k] * LD(row, i + k);                                     \
    for (; i < n; i++)                                                         \
      s[0] += v[i] * LD(row, i);                                               \
    return (s[0] + s[1]) + (s[2] + s[3]);                                      \
  }                                                                            \
  static void dot4_##T##_c(const float *v, const void *row, int64_t ld,        \
                           int64_t n, float *out) {                            \
    for (int j = 0; j < 4; j++)                                                \
      out[j] = dot_##T##_c(v, (const E *)row + j * ld, n);                     \
  }                                                                            \
  static void axpy_##T##_c(float *acc, float s, const void *row, int64_t n) {  \
    for (int64_t i = 0; i < n; i++)                                            \
      acc[i] += s * LD(row, i);                                                \
  }                                                                            \
  static void axpy4_##T##_c(float *acc, const float *s, const void *row,       \
                            int64_t ld, int64_t n) {                           \
    const E *r = row;                                                          \
    for (int64_t i = 0; i < n; i++)                                            \
      acc[i] += s[0] * LD(r, i) + s[1] * LD(r + ld, i) +                       \
                s[2] * LD(r + 2 * ld, i) + s[3] * LD(r + 3 * ld, i);           \
  }                                                                            \
  static void cvt_##T##_c(const void *src, float *dst, int64_t n) {            \
    for (int64_t i = 0; i < n; i++)                                            \
      dst[i] = LD(src, i);                                                     \
  }
/* float32 to float16/bfloat16, rounding to nearest even. */
typedef void (*rnd_fn)(const float *src, void *dst, int64_t n);
static void rnd_f16_c(const float *src, void *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    ((uint16_t *)dst)[i] = am_f32_to_f16(src[i]);
}
static void rnd_bf16_c(const float *src, void *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    ((uint16_t *)dst)[i] = am_f32_to_bf16(src[i]);
}

PORTABLE_KERNELS(f32, float, ld_f32)
PORTABLE_KERNELS(f16, uint16_t, ld_f16)
PORTABLE_KERNELS(bf16, uint16_t, ld_bf16)

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_KERNELS 1
#define KFN __attribute__((target("avx2,fma,f16c")))

KFN static inline __m256 ld8_f32(const void *p, int64_t i) {
  return _mm256_loadu_ps((const float *)p + i);
}
KFN static inline __m256 ld8_f16(const void *p, int64_t i) {
  return _mm256_cvtph_ps(
      _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
KFN static inline __m256 ld8_bf16(const void *p, int64_t i) {
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

KFN static inline float hsum8(__m256 s) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

#define AVX2_KERNELS(T, E, LD8, LD)                                            \
  KFN static float dot_##T##_v(const float *v, const void *row, int64_t n) {   \
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                \
    int64_t i = 0;                                                             \
    for (; i + 32 <= n; i += 32) {                                             \
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i), LD8(row, i), s0);           \
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i + 8), LD8(row, i + 8), s1);   \
      s2 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i + 16), LD8(row, i + 16), s2); \
      s3 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i + 24), LD8(row, i + 24), s3); \
    }                                                                          \
    for (; i + 8 <= n; i += 8)                                                 \
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i), LD8(row, i), s0);           \
    float s =                                                                  \
        hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));    \
    for (; i < n; i++)                                                         \
      s += v[i] * LD(row, i);                                                  \
    return s;                                                                  \
  }                                                                            \
  KFN static void dot4_##T##_v(const float *v, const void *row, int64_t ld,    \
                               int64_t n, float *out) {                        \
    const E *r0 = row, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;            \
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                \
    int64_t i = 0;                                                             \
    for (; i + 8 <= n; i += 8) {                                               \
      __m256 x = _mm256_loadu_ps(v + i);                                       \
      s0 = _mm256_fmadd_ps(x, LD8(r0, i), s0);                                 \
      s1 = _mm256_fmadd_ps(x, LD8(r1, i), s1);                                 \
      s2 = _mm256_fmadd_ps(x, LD8(r2, i), s2);                                 \
      s3 = _mm256_fmadd_ps(x, LD8(r3, i), s3);                                 \
    }                                                                          \
    out[0] = hsum8(s0);                                                        \
    out[1] = hsum8(s1);                                                        \
    out[2] = hsum8(s2);                                                        \
    out[3] = hsum8(s3);                                                        \
    for (; i < n; i++) {                                                       \
      out[0] += v[i] * LD(r0, i);                                              \
      out[1] += v[i] * LD(r1, i);                                              \
      out[2] += v[i] * LD(r2, i);                                              \
      out[3] += v[i] * LD(r3, i);                                              \
    }                                                                          \
  }                                                                            \
  KFN static void axpy_##T##_v(float *acc, float s, const void *row,           \
                               int64_t n) {                                    \
    __m256 vs = _mm256_set1_ps(s);                                             \
    int64_t i = 0;                                                             \
    for (; i + 8 <= n; i += 8)                                                 \
      _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(vs, LD8(row, i),               \
                                                _mm256_loadu_ps(acc + i)));    \
    for (; i < n; i++)                                                         \
      acc[i] += s * LD(row, i);                                                \
  }                                                                            \
  KFN static void axpy4_##T##_v(float *acc, const float *s, const void *row,   \
                                int64_t ld, int64_t n) {                       \
    const E *r0 = row, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;            \
    __m256 v0 = _mm256_set1_ps(s[0]), v1 = _mm256_set1_ps(s[1]);               \
    __m256 v2 = _mm256_set1_ps(s[2]), v3 = _mm256_set1_ps(s[3]);               \
    int64_t i = 0;                                                             \
    for (; i + 8 <= n; i += 8) {                                               \
      __m256 a = _mm256_fmadd_ps(v0, LD8(r0, i), _mm256_loadu_ps(acc + i));    \
      __m256 b = _mm256_mul_ps(v1, LD8(r1, i));                                \
      a = _mm256_fmadd_ps(v2, LD8(r2, i), a);                                  \
      b = _mm256_fmadd_ps(v3, LD8(r3, i), b);                                  \
      _mm256_storeu_ps(acc + i, _mm256_add_ps(a, b));                          \
    }                                                                          \
    for (; i < n; i++)                                                         \
      acc[i] += s[0] * LD(r0, i) + s[1] * LD(r1, i) + s[2] * LD(r2, i) +       \
                s[3] * LD(r3, i);                                              \
  }                                                                            \
  KFN static void cvt_##T##_v(const void *src, float *dst, int64_t n) {        \
    int64_t i = 0;                                                             \
    for (; i + 8 <= n; i += 8)                                                 \
      _mm256_storeu_ps(dst + i, LD8(src, i));                                  \
    for (; i < n; i++)                                                         \
      dst[i] = LD(src, i);                                                     \
  }
AVX2_KERNELS(f32, float, ld8_f32, ld_f32)
AVX2_KERNELS(f16, uint16_t, ld8_f16, ld_f16)
AVX2_KERNELS(bf16, uint16_t, ld8_bf16, ld_bf16)

KFN static void rnd_f16_v(const float *src, void *dst, int64_t n) {
  uint16_t *o = dst;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(
        (__m128i *)(o + i),
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  rnd_f16_c(src + i, o + i, n - i);
}

/* As am_f32_to_bf16: add 0x7fff plus the kept lsb, truncate; NaN keeps
 * its top bits and becomes quiet. */
KFN static void rnd_bf16_v(const float *src, void *dst, int64_t n) {
  uint16_t *o = dst;
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
  const __m256i quiet = _mm256_set1_epi32(0x40);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(src + i);
    __m256i x = _mm256_castps_si256(v), hi = _mm256_srli_epi32(x, 16);
    __m256i r =
        _mm256_add_epi32(x, _mm256_add_epi32(bias, _mm256_and_si256(hi, one)));
    r = _mm256_srli_epi32(r, 16);
    __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, quiet),
                           _mm256_castps_si256(nan));
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128((__m128i *)(o + i), _mm256_castsi256_si128(p));
  }
  rnd_bf16_c(src + i, o + i, n - i);
}

static bool use_avx2(void) {
  static int have = -1;
  if (have < 0) have = am_cpu_has_avx2() && am_cpu_has_f16c();
  return have && !g_portable;
}
#else
static bool use_avx2(void) {
  return false;
}
#endif

/* Whether the AVX2 kernels run (for conv.c's depthwise kernel). */
bool am_linalg_simd(void) {
  return use_avx2();
}

/* Kernel index of a float dtype: 0 f32, 1 f16, 2 bf16, -1 otherwise. */
static int kidx(am_dtype t) {
  return t == AM_F32 ? 0 : t == AM_F16 ? 1 : t == AM_BF16 ? 2 : -1;
}

#define KSET(T, S)                                                             \
  {                                                                            \
    dot4_##T##_##S, dot_##T##_##S, axpy4_##T##_##S, axpy_##T##_##S,            \
        cvt_##T##_##S                                                          \
  }

/* The kernels for matrices of dtype t (float32, float16 or bfloat16). */
static const mv_kernels *kernels(am_dtype t) {
  static const mv_kernels c[3] = {KSET(f32, c), KSET(f16, c), KSET(bf16, c)};
#ifdef HAVE_AVX2_KERNELS
  static const mv_kernels v[3] = {KSET(f32, v), KSET(f16, v), KSET(bf16, v)};
  if (use_avx2()) return &v[kidx(t)];
#endif
  return &c[kidx(t)];
}

/* Converts n contiguous elements; SIMD between float32 and the half
 * types. */
static void convert_run(const void *src, am_dtype st, void *dst, am_dtype dt,
                        int64_t n) {
  bool half = dt == AM_F16 || dt == AM_BF16;
  if (dt == AM_F32 && kidx(st) > 0) {
    kernels(st)->cvt(src, dst, n);
  } else if (st == AM_F32 && half) {
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
      (dt == AM_F16 ? rnd_f16_v : rnd_bf16_v)(src, dst, n);
      return;
    }
#endif
    (dt == AM_F16 ? rnd_f16_c : rnd_bf16_c)(src, dst, n);
  } else {
    am_convert(src, st, dst, dt, n);
  }
}

typedef struct {
  const char *src;
  char *dst;
  am_dtype st, dt;
} cvt_ctx;

static void cvt_range(void *c, int64_t b, int64_t e) {
  const cvt_ctx *x = c;
  convert_run(x->src + b * (int64_t)am_dtype_size(x->st), x->st,
              x->dst + b * (int64_t)am_dtype_size(x->dt), x->dt, e - b);
}

/* Scratch memory from the buffer pool: a decode loop asks for the same
 * sizes every step, so its temporaries cost no page faults. Released with
 * am_buffer_release(*owner). NULL (error set) when out of memory. Also
 * used by conv.c. */
void *am_linalg_scratch(size_t bytes, am_buffer **owner) {
  *owner = am_buffer_new(bytes ? bytes : 1);
  return *owner ? (*owner)->data : NULL;
}

/* Converts n contiguous elements on the thread pool (also used by conv.c). */
void am_linalg_convert(const void *src, am_dtype st, void *dst, am_dtype dt,
                       int64_t n) {
  cvt_ctx c = {src, dst, st, dt};
  am_parallel_for(n, 1 << 15, cvt_range, &c);
}

/* ======================================================================
 *  Shape inference
 * ====================================================================== */

static const char *dtn(am_dtype t) {
  return am_dtype_name(t);
}

/* a @ b: a 1-d a is [1, K] and a 1-d b is [K, 1], those dims dropped from
 * the result; batch dims (all but the last two) broadcast. */
static am_status mm_infer(const am_meta *a, const am_meta *b, am_meta *out) {
  if (!a->ndim || !b->ndim)
    return AM_FAIL(AM_ERR_SHAPE, "operands need at least 1 dim (a 0-d array "
                                 "is not a vector or a matrix)");
  if (!am_dtype_is_float(a->dtype) || !am_dtype_is_float(b->dtype))
    return AM_FAIL(AM_ERR_DTYPE,
                   "takes float16, bfloat16, float32 or float64 operands, got "
                   "%s and %s",
                   dtn(a->dtype), dtn(b->dtype));
  if (a->dtype != b->dtype)
    return AM_FAIL(AM_ERR_DTYPE, "operands must share one dtype, got %s and %s",
                   dtn(a->dtype), dtn(b->dtype));
  int64_t ka = a->shape[a->ndim - 1];
  int64_t kb = b->ndim > 1 ? b->shape[b->ndim - 2] : b->shape[0];
  if (ka != kb)
    return AM_FAIL(AM_ERR_SHAPE,
                   "inner dims differ: a has %lld columns, b has %lld rows",
                   (long long)ka, (long long)kb);
  int na = a->ndim > 2 ? a->ndim - 2 : 0, nb = b->ndim > 2 ? b->ndim - 2 : 0;
  if (am_broadcast_shapes(a->shape, na, b->shape, nb, out->shape, &out->ndim))
    return AM_FAIL(AM_ERR_SHAPE, "batch dims do not broadcast");
  if (a->ndim > 1) out->shape[out->ndim++] = a->shape[a->ndim - 2];
  if (b->ndim > 1) out->shape[out->ndim++] = b->shape[b->ndim - 1];
  out->dtype = a->dtype;
  return AM_OK;
}

static am_status matmul_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  return mm_infer(in[0], in[1], out);
}

/* addmm(c, a, b): a @ b, and c must broadcast (one way) to that result. */
static am_status addmm_shapes(const am_meta *const *in, int n_in,
                              const void *params, am_meta *out, int n_out) {
  const am_meta *c = in[0];
  am_status s = mm_infer(in[1], in[2], out);
  if (s) return s;
  if (c->dtype != out->dtype)
    return AM_FAIL(AM_ERR_DTYPE, "c is %s but a @ b is %s", dtn(c->dtype),
                   dtn(out->dtype));
  bool ok = c->ndim <= out->ndim;
  for (int i = 0; ok && i < c->ndim; i++) {
    int64_t d = c->shape[c->ndim - 1 - i], o = out->shape[out->ndim - 1 - i];
    ok = d == 1 || d == o;
  }
  if (!ok) {
    char sh[256];
    return AM_FAIL(AM_ERR_SHAPE, "c does not broadcast to the product's %s",
                   am_meta_str(out, sh, sizeof sh));
  }
  return AM_OK;
}

/* ======================================================================
 *  The product kernel
 * ====================================================================== */

/* One operand as the batch loop reads it. */
typedef struct {
  const char *base;          /* data (maybe a converted copy)           */
  am_dtype dt;               /* dtype of base's elements                */
  int64_t bstr[AM_MAX_DIMS]; /* per output batch dim, elements; 0: bcast */
  bool trans;                /* stored transposed (column-major)        */
  int64_t ld;                /* leading dimension, elements             */
  am_buffer *tmp;            /* owned copy, released at the end        */
} mm_opnd;

typedef struct {
  int64_t M, N, K, nbatch;
  int nbd; /* batch dims of the output */
  int64_t bshape[AM_MAX_DIMS];
  am_dtype ct; /* compute dtype: float32 or float64 */
  mm_opnd a, b;
  char *c; /* [nbatch, M, N] row-major, compute dtype */
  double alpha, beta;
} mm_job;

/* Whether BLAS reads a rows x cols matrix with strides rs, cs (elements)
 * in place: row-major (unit column stride) as NoTrans, or unit row stride
 * as Trans, with a leading dimension that fits. The stride of a size-1
 * dim never matters. */
static bool blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                        bool *trans, int64_t *ld) {
  int64_t r = rows > 1 ? rs : (cols > 1 ? cols : 1), c = cols > 1 ? cs : 1;
  if (c == 1 && r >= (cols > 1 ? cols : 1) && r <= INT_MAX) {
    *trans = false;
    *ld = r;
    return true;
  }
  r = rows > 1 ? rs : 1;
  c = cols > 1 ? cs : (rows > 1 ? rows : 1);
  if (r == 1 && c >= (rows > 1 ? rows : 1) && c <= INT_MAX) {
    *trans = true;
    *ld = c;
    return true;
  }
  return false;
}

/* Matrix view of operand x: a (is_b false) or b. */
static void mat_view(const am_arr *x, bool is_b, int64_t K, int64_t *rows,
                     int64_t *cols, int64_t *rs, int64_t *cs) {
  int nd = x->m.ndim;
  if (nd == 1) {
    *rows = is_b ? K : 1;
    *cols = is_b ? 1 : K;
    *rs = is_b ? x->strides[0] : K;
    *cs = is_b ? 1 : x->strides[0];
    return;
  }
  *rows = x->m.shape[nd - 2];
  *cols = x->m.shape[nd - 1];
  *rs = x->strides[nd - 2];
  *cs = x->strides[nd - 1];
}

/* Packing of physical rows (the rows of the stored orientation). */
typedef struct {
  const am_arr *x;
  int nbx;          /* x's own batch dims */
  int64_t P, L, ld; /* physical rows, their length, source stride */
  int64_t mat;      /* elements per packed matrix */
  char *dst;
  am_dtype dt;
} pack_ctx;

static void pack_range(void *cx, int64_t g0, int64_t g1) {
  const pack_ctx *c = cx;
  const am_arr *x = c->x;
  size_t ses = am_dtype_size(x->m.dtype), des = am_dtype_size(c->dt);
  for (int64_t g = g0; g < g1; g++) {
    int64_t bi = g / c->P, p = g % c->P, off = 0, r = bi;
    for (int d = c->nbx - 1; d >= 0; d--) {
      off += (r % x->m.shape[d]) * x->strides[d];
      r /= x->m.shape[d];
    }
    const char *src = am_arr_ptr(x) + (off + p * c->ld) * (int64_t)ses;
    convert_run(src, x->m.dtype,
                c->dst + (bi * c->mat + p * c->L) * (int64_t)des, c->dt, c->L);
  }
}

/* Prepares operand x for the batch loop in dtype `want`. A matrix BLAS can
 * read in place stays where it is when it has that dtype; otherwise it is
 * converted into a packed copy that keeps its orientation (a transposed
 * bfloat16 weight becomes a transposed float32 one), or copied to
 * row-major when BLAS could not read its layout. With `rows`, the result
 * must be packed row-major (contiguous rows of cols elements). */
static am_status prep(const am_arr *x, bool is_b, const mm_job *j,
                      am_dtype want, bool rows_only, mm_opnd *o) {
  int nd = x->m.ndim, nbx = nd > 2 ? nd - 2 : 0;
  int64_t rows, cols, rs, cs, own[AM_MAX_DIMS];
  mat_view(x, is_b, j->K, &rows, &cols, &rs, &cs);
  for (int d = 0; d < nbx; d++)
    own[d] = x->strides[d];
  bool ok = blas_layout(rows, cols, rs, cs, &o->trans, &o->ld);
  if (rows_only && ok && (o->trans || o->ld != (cols > 1 ? cols : 1)))
    ok = false;
  o->base = am_arr_ptr(x);
  o->dt = x->m.dtype;
  o->tmp = NULL;
  if (!ok || x->m.dtype != want) {
    char *dst =
        am_linalg_scratch((size_t)x->size * am_dtype_size(want), &o->tmp);
    if (!dst)
      return AM_FAIL(AM_ERR_OOM,
                     "out of memory copying an operand (%lld "
                     "elements)",
                     (long long)x->size);
    if (ok) { /* same orientation, packed */
      pack_ctx pc = {x,
                     nbx,
                     o->trans ? cols : rows,
                     o->trans ? rows : cols,
                     o->ld,
                     rows * cols,
                     dst,
                     want};
      int64_t n = (x->size / (rows * cols)) * pc.P;
      am_parallel_for(n, 1 + (1 << 14) / (pc.L ? pc.L : 1), pack_range, &pc);
      o->ld = pc.L > 1 ? pc.L : 1;
    } else {
      am_copy_to_contig(x, dst, want);
      o->trans = false;
      o->ld = cols > 1 ? cols : 1;
    }
    int64_t s = rows * cols;
    for (int d = nbx - 1; d >= 0; d--) {
      own[d] = s;
      s *= x->m.shape[d];
    }
    o->base = dst;
    o->dt = want;
  }
  for (int d = 0; d < j->nbd; d++) {
    int k = d - (j->nbd - nbx);
    o->bstr[d] = (k < 0 || x->m.shape[k] == 1) ? 0 : own[k];
  }
  return AM_OK;
}

static void batch_offsets(const mm_job *j, int64_t bi, int64_t *oa,
                          int64_t *ob) {
  *oa = *ob = 0;
  for (int d = j->nbd - 1; d >= 0; d--) {
    int64_t i = bi % j->bshape[d];
    bi /= j->bshape[d];
    *oa += i * j->a.bstr[d];
    *ob += i * j->b.bstr[d];
  }
}

/* ----- the BLAS path: one batch matrix ----- */

static void blas_one(const mm_job *j, int64_t bi) {
  int64_t oa, ob;
  batch_offsets(j, bi, &oa, &ob);
  int64_t es = (int64_t)am_dtype_size(j->ct);
  const void *A = j->a.base + oa * es, *B = j->b.base + ob * es;
  void *C = j->c + bi * j->M * j->N * es;
  int M = (int)j->M, N = (int)j->N, K = (int)j->K;
  int lda = (int)j->a.ld, ldb = (int)j->b.ld;
  bool f32 = j->ct == AM_F32;
  if (M == 1 || N == 1) { /* float64 only: run_mv takes float32 */
    bool m1 = M == 1;
    const void *mat = m1 ? B : A, *vec = m1 ? A : B;
    /* the vector's stride is the leading dimension where it is strided */
    int inc = m1 ? (j->a.trans ? lda : 1) : (j->b.trans ? 1 : ldb);
    bool mt = m1 ? !j->b.trans : j->a.trans; /* stored as [K, outputs] */
    int rows = mt ? K : (m1 ? N : M), cols = mt ? (m1 ? N : M) : K;
    if (j->beta == 0) /* some OpenBLAS versions scale stale NaN by 0 */
      memset(C, 0, (size_t)(m1 ? N : M) * (size_t)es);
    cblas_dgemv(CblasRowMajor, mt ? CblasTrans : CblasNoTrans, rows, cols,
                j->alpha, mat, m1 ? ldb : lda, vec, inc, j->beta, C, 1);
    return;
  }
  enum CBLAS_TRANSPOSE ta = j->a.trans ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = j->b.trans ? CblasTrans : CblasNoTrans;
  if (f32)
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, (float)j->alpha, A, lda, B, ldb,
                (float)j->beta, C, N);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, j->alpha, A, lda, B, ldb,
                j->beta, C, N);
}

static void blas_range(void *c, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i++)
    blas_one(c, i);
}

/* a's batches follow one another as rows of one tall matrix and b is the
 * same for every batch: one GEMM of (nbatch*M) x N does them all. */
static bool fold_batches(mm_job *j) {
  if (j->nbatch <= 1 || j->a.trans || j->M == 1) return false;
  int64_t s = j->M * j->a.ld;
  for (int d = j->nbd - 1; d >= 0; d--) {
    if (j->b.bstr[d] != 0) return false;
    if (j->bshape[d] != 1 && j->a.bstr[d] != s) return false;
    s *= j->bshape[d];
  }
  if (j->nbatch * j->M > INT_MAX) return false;
  j->M *= j->nbatch;
  j->nbatch = 1;
  j->nbd = 0;
  return true;
}

static void run_blas(mm_job *j) {
  am_linalg_blas_init();
  fold_batches(j);
  double work = (double)j->M * (double)j->N * (double)j->K;
  bool serial = (j->M == 1 || j->N == 1) ? work < BLAS_SERIAL_GEMV
                                         : work <= BLAS_SERIAL_GEMM;
  if (j->nbatch > 1 && serial) {
    int64_t grain = (int64_t)(BLAS_SERIAL_GEMM / (work + 1.0));
    am_parallel_for(j->nbatch, grain < 1 ? 1 : grain, blas_range, j);
  } else {
    blas_range(j, 0, j->nbatch);
  }
}

/* ----- the skinny path: M <= MV_MAX_M or N == 1, float32 compute ----- */

/* Up to MV_MAX_M rows of a (decode, a few tokens) or one column of b
 * times a matrix kept in its stored dtype. The stored matrix either has
 * one row per output (x @ W.T with W [N, K] row-major: "dot" form, each
 * output a dot product with a contiguous row) or one row per k (x @ W
 * with W [K, N]: "axpy" form, each k adds v[k] times a row to all
 * outputs). The dot form splits the outputs over the threads. The axpy
 * form splits K instead: each task streams a contiguous band of rows into
 * partial sums over all outputs, and a second pass adds the partials, so
 * every thread reads memory front to back. Either way each block of the
 * matrix is read from memory once and reused from cache by every vector. */
/* Measured: at M = 8 this still beats sgemm (which packs the weight
 * first, and for half types needs it converted) by 3-4x; further up the
 * product turns compute-bound and BLAS blocking wins. */
#define MV_MAX_M 8

typedef struct {
  const mm_job *j;
  const mm_opnd *mat, *vec; /* vec: nv contiguous float32 K-vectors */
  bool m1;           /* vectors are a's rows: out[m, n] = v_m . B[:, n] */
  int64_t nv, R;     /* vectors and outputs per vector, per batch */
  int64_t P, kchunk; /* axpy form: K parts per batch, their size */
  float *part;       /* axpy form: [nbatch, P, nv, R] partial sums */
  const mv_kernels *k;
} mv_ctx;

static void mv_operands(const mv_ctx *c, int64_t bi, const float **v,
                        const char **m) {
  int64_t oa, ob;
  batch_offsets(c->j, bi, &oa, &ob);
  *v = (const float *)c->vec->base + (c->m1 ? oa : ob);
  *m = c->mat->base + (c->m1 ? ob : oa) * (int64_t)am_dtype_size(c->mat->dt);
}

static inline float mv_out(const mm_job *j, float acc, float old) {
  float al = (float)j->alpha, be = (float)j->beta;
  return be != 0 ? al * acc + be * old : al * acc;
}

static void mv_dot_range(void *cx, int64_t g0, int64_t g1) {
  const mv_ctx *c = cx;
  const mm_job *j = c->j;
  int64_t K = j->K, R = c->R, ld = c->mat->ld;
  int64_t es = (int64_t)am_dtype_size(c->mat->dt);
  float o[4];
  while (g0 < g1) {
    int64_t bi = g0 / R, r = g0 % R, r1 = r + (g1 - g0);
    if (r1 > R) r1 = R;
    g0 += r1 - r;
    const float *v;
    const char *m;
    mv_operands(c, bi, &v, &m);
    float *y = (float *)j->c + bi * c->nv * R;
    for (; r < r1; r += 4) {
      int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
      const char *row = m + r * ld * es;
      for (int64_t q = 0; q < c->nv; q++) {
        const float *vq = v + q * K;
        float *yq = y + q * R + r;
        if (nr == 4)
          c->k->dot4(vq, row, ld, K, o);
        else
          for (int i = 0; i < nr; i++)
            o[i] = c->k->dot(vq, row + i * ld * es, K);
        for (int i = 0; i < nr; i++)
          yq[i] = mv_out(j, o[i], yq[i]);
      }
    }
  }
}

static void mv_axpy_range(void *cx, int64_t t0, int64_t t1) {
  const mv_ctx *c = cx;
  int64_t R = c->R, ld = c->mat->ld, K = c->j->K;
  int64_t es = (int64_t)am_dtype_size(c->mat->dt);
  for (int64_t t = t0; t < t1; t++) {
    int64_t k0 = (t % c->P) * c->kchunk, k1 = k0 + c->kchunk;
    if (k1 > K) k1 = K;
    const float *v;
    const char *m;
    mv_operands(c, t / c->P, &v, &m);
    float *acc = c->part + t * c->nv * R;
    memset(acc, 0, (size_t)(c->nv * R) * sizeof *acc);
    int64_t k = k0;
    for (; k + 4 <= k1; k += 4)
      for (int64_t q = 0; q < c->nv; q++)
        c->k->axpy4(acc + q * R, v + q * K + k, m + k * ld * es, ld, R);
    for (; k < k1; k++)
      for (int64_t q = 0; q < c->nv; q++)
        c->k->axpy(acc + q * R, v[q * K + k], m + k * ld * es, R);
  }
}

static void mv_reduce_range(void *cx, int64_t g0, int64_t g1) {
  const mv_ctx *c = cx;
  int64_t per = c->nv * c->R; /* outputs per batch */
  float *y = (float *)c->j->c;
  for (int64_t g = g0; g < g1; g++) {
    const float *p = c->part + (g / per) * c->P * per + g % per;
    float s = 0;
    for (int64_t q = 0; q < c->P; q++)
      s += p[q * per];
    y[g] = mv_out(c->j, s, y[g]);
  }
}

/* The skinny product: the vectors go to float32 (packed rows), the
 * matrix stays in its dtype (copied only when BLAS-style layouts fail). */
static am_status run_mv(mm_job *j, const am_arr *a, const am_arr *b) {
  bool m1 = j->N > 1 || j->M == 1;
  const am_arr *vx = m1 ? a : b, *mx = m1 ? b : a;
  mm_opnd *vo = m1 ? &j->a : &j->b, *mo = m1 ? &j->b : &j->a;
  am_status s = prep(vx, !m1, j, AM_F32, true, vo);
  if (!s) s = prep(mx, m1, j, mx->m.dtype, false, mo);
  if (s) return s;
  mv_ctx c = {.j = j,
              .mat = mo,
              .vec = vo,
              .m1 = m1,
              .nv = m1 ? j->M : 1,
              .R = m1 ? j->N : j->M,
              .k = kernels(mo->dt)};
  int64_t K = j->K, work = K * c.R * c.nv;
  if (m1 ? mo->trans : !mo->trans) { /* dot form */
    int64_t grain = (1 << 15) / (K * c.nv);
    am_parallel_for(j->nbatch * c.R, grain < 1 ? 1 : grain, mv_dot_range, &c);
    return AM_OK;
  }
  int64_t T = am_get_num_threads();
  c.P =
      j->nbatch >= T || work < (1 << 16) ? 1 : (T + j->nbatch - 1) / j->nbatch;
  if (c.P > K / 32) c.P = K / 32 > 1 ? K / 32 : 1;
  c.kchunk = (K + c.P - 1) / c.P;
  c.P = (K + c.kchunk - 1) / c.kchunk;
  am_buffer *pb;
  c.part = am_linalg_scratch(
      (size_t)(j->nbatch * c.P * c.nv * c.R) * sizeof(float), &pb);
  if (!c.part) return AM_FAIL(AM_ERR_OOM, "out of memory (partial sums)");
  int64_t grain = (1 << 15) / (c.kchunk * c.R * c.nv);
  am_parallel_for(j->nbatch * c.P, grain < 1 ? 1 : grain, mv_axpy_range, &c);
  am_parallel_for(j->nbatch * c.nv * c.R, 1 << 14, mv_reduce_range, &c);
  am_buffer_release(pb);
  return AM_OK;
}

/* ----- addmm's c, output conversion ----- */

typedef struct {
  am_dtype st, dt;
} fill_ctx;

static void fill_row(void *cx, int64_t n, char **p, const int64_t *s) {
  const fill_ctx *c = cx;
  int64_t ss = (int64_t)am_dtype_size(c->st),
          ds = (int64_t)am_dtype_size(c->dt);
  if (s[0] == ss && s[1] == ds) {
    convert_run(p[0], c->st, p[1], c->dt, n);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    am_convert(p[0] + i * s[0], c->st, p[1] + i * s[1], c->dt, 1);
}

/* dst (row-major, out's shape, dtype dt) = c broadcast to that shape. */
static void fill_broadcast(const am_arr *c, const am_meta *om, void *dst,
                           am_dtype dt) {
  int64_t cs[AM_MAX_DIMS], ds[AM_MAX_DIMS];
  am_broadcast_strides(c, om->shape, om->ndim, cs);
  am_contig_strides(om->shape, om->ndim, ds);
  char *base[2] = {am_arr_ptr(c), dst};
  const int64_t *str[2] = {cs, ds};
  size_t es[2] = {am_dtype_size(c->m.dtype), am_dtype_size(dt)};
  am_iter it;
  am_iter_init(&it, om->shape, om->ndim, 2, base, str, es);
  fill_ctx fc = {c->m.dtype, dt};
  am_iter_run_parallel(&it, fill_row, &fc, 1 << 15);
}

/* out = beta * c + alpha * (a @ b); c NULL for matmul. */
static am_status mm_eval(am_arr *c, am_arr *a, am_arr *b, am_arr *out,
                         double alpha, double beta) {
  mm_job j;
  memset(&j, 0, sizeof j);
  int na = a->m.ndim, nb = b->m.ndim;
  j.M = na > 1 ? a->m.shape[na - 2] : 1;
  j.K = a->m.shape[na - 1];
  j.N = nb > 1 ? b->m.shape[nb - 1] : 1;
  j.nbd = out->m.ndim - (na > 1) - (nb > 1);
  j.nbatch = 1;
  for (int d = 0; d < j.nbd; d++)
    j.nbatch *= j.bshape[d] = out->m.shape[d];
  am_dtype dt = out->m.dtype;
  j.ct = dt == AM_F64 ? AM_F64 : AM_F32;
  j.alpha = alpha;
  j.beta = c ? beta : 0;
  if (j.M > INT_MAX || j.N > INT_MAX || j.K > INT_MAX)
    return AM_FAIL(AM_ERR_UNSUPPORTED,
                   "matrix dims above 2^31 - 1 (BLAS int) are not supported");
  am_status s = c ? am_out_alloc_donate(out, &c, 1) : am_out_alloc(out);
  if (s || !out->size) return s;
  size_t es = am_dtype_size(j.ct);
  void *ctmp = NULL;
  am_buffer *cb = NULL;
  if (dt != j.ct && !(ctmp = am_linalg_scratch((size_t)out->size * es, &cb)))
    return AM_FAIL(AM_ERR_OOM, "out of memory");
  j.c = ctmp ? ctmp : out->buf->data;
  /* c into the result, unless it is there already (donated buffer) */
  if (j.beta != 0 && !(out->buf == c->buf && !ctmp))
    fill_broadcast(c, &out->m, j.c, j.ct);
  if (j.K == 0) { /* an empty sum: beta * c, or zeros */
    int64_t n = out->size;
    if (j.beta == 0)
      memset(j.c, 0, (size_t)n * es);
    else if (j.ct == AM_F32)
      for (int64_t i = 0; i < n; i++)
        ((float *)j.c)[i] *= (float)j.beta;
    else
      for (int64_t i = 0; i < n; i++)
        ((double *)j.c)[i] *= j.beta;
  } else if ((j.M <= MV_MAX_M || j.N == 1) && j.ct == AM_F32) {
    s = run_mv(&j, a, b);
  } else {
    s = prep(a, false, &j, j.ct, false, &j.a);
    if (!s) s = prep(b, true, &j, j.ct, false, &j.b);
    if (!s) run_blas(&j);
  }
  if (!s && ctmp) am_linalg_convert(ctmp, j.ct, out->buf->data, dt, out->size);
  am_buffer_release(cb);
  am_buffer_release(j.a.tmp);
  am_buffer_release(j.b.tmp);
  return s;
}

static am_status matmul_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  return mm_eval(NULL, in[0], in[1], out[0], 1, 0);
}

static am_status addmm_eval(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  const addmm_params *p = params;
  return mm_eval(in[0], in[1], in[2], out[0], p->alpha, p->beta);
}

static void addmm_params_str(const void *params, char *buf, size_t n) {
  const addmm_params *p = params;
  snprintf(buf, n, "alpha=%g beta=%g", p->alpha, p->beta);
}

const am_prim am_prim_matmul = {
    .name = "matmul",
    .n_in = 2,
    .n_out = 1,
    .output_shapes = matmul_shapes,
    .eval_cpu = matmul_eval,
};

const am_prim am_prim_addmm = {
    .name = "addmm",
    .n_in = 3,
    .n_out = 1,
    .params_size = sizeof(addmm_params),
    .output_shapes = addmm_shapes,
    .eval_cpu = addmm_eval,
    .params_str = addmm_params_str,
};

/* ======================================================================
 *  Public functions
 * ====================================================================== */

/* Records op on in[0..n) after casting the float operands to their common
 * dtype (am_result_type; addmm's c as a weak scalar takes a @ b's dtype).
 * Shared with conv.c. Integer or
 * bool operands are left as they are: output_shapes rejects them with a
 * message naming the op and shapes. The casts are intermediates of a
 * private scope, so the caller gets exactly one reference. */
am_array am_linalg_make(int op, const void *params, am_arr **in, int n) {
  for (int i = 0; i < n; i++)
    if (!in[i])
      return am_error_array(AM_ERR_INVALID_ARG, "%s: input %d is NULL",
                            am_prims[op]->name, i);
  if (am_first_error(in, n)) return am_op_make(op, params, in, n);
  am_dtype t = AM_DTYPE_COUNT;
  for (int i = 0; i < n; i++) {
    am_dtype d = in[i]->m.dtype;
    if (in[i]->weak && op == AM_OP_ADDMM && i == 0)
      continue; /* a weak c follows a @ b */
    if (!am_dtype_is_float(d)) return am_op_make(op, params, in, n);
    t = t == AM_DTYPE_COUNT ? d : am_result_type(t, d);
  }
  bool cast = false;
  for (int i = 0; i < n; i++)
    cast |= in[i]->m.dtype != t;
  if (!cast) return am_op_make(op, params, in, n);
  am_scope_push();
  am_arr *cv[3];
  for (int i = 0; i < n; i++)
    cv[i] = in[i]->m.dtype != t ? am_astype(in[i], t) : in[i];
  am_array r = am_keep(am_op_make(op, params, cv, n));
  am_scope_pop();
  return am_scope_own(r);
}

am_array am_matmul(am_array a, am_array b) {
  am_arr *in[2] = {a, b};
  return am_linalg_make(AM_OP_MATMUL, NULL, in, 2);
}

am_array am_addmm(am_array c, am_array a, am_array b, float alpha, float beta) {
  addmm_params p;
  memset(&p, 0, sizeof p);
  p.alpha = alpha;
  p.beta = beta;
  am_arr *in[3] = {c, a, b};
  return am_linalg_make(AM_OP_ADDMM, &p, in, 3);
}
