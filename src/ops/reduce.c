/*
 * reduce.c — reductions over a set of axes (sum, mean, prod, max, min,
 * logsumexp, all, any) and along one axis (argmax, argmin).
 *
 * One engine runs them all. At eval the input's dims are split into kept
 * and reduced ones; size-1 dims are dropped, dims are ordered by input
 * stride (memory order: the order of a sum does not matter, so a
 * transposed input is walked like a contiguous one) and neighbours that
 * stay contiguous are merged. What is left is one of two layouts:
 *  - "row" mode: the innermost dim is reduced. Each output folds rows
 *    (contiguous runs) of its reduced elements: sums of the last axis.
 *  - "col" mode: the innermost dim is kept. A block of up to RED_MAXB
 *    neighbouring outputs is accumulated row by row into an array of
 *    partial results that stays in cache: sums of a leading axis.
 * Work units are (outer kept index, block of the innermost kept dim). When
 * there are fewer units than threads (a whole-array sum, or a column sum
 * of few wide rows), each unit's reduced range is also split, the pieces
 * reduce into partial states in parallel and are merged in order at the
 * end. Each (op, dtype) pair supplies a small kernel table (red_fns)
 * generated from one macro per kind of op, written with GCC/Clang vector
 * extensions (SSE2 everywhere; AVX2 and AVX-512 versions of the float
 * sums and max/min, picked at run time).
 *
 * Accumulation: float32 sums run in float32 vector lanes over blocks of
 * RED_RBLOCK elements of a row (columns: RED_CROWS rows) and add each
 * block into a double, so a 16M-element sum stays within ~1e-7 of the
 * exact one; float16/bfloat16 sums accumulate in double, float64 sums in
 * double lanes. Integer sums and products are computed modulo 2^64 and
 * wrap to the output type, as NumPy's do.
 */
#include "../core/internal.h"
#include "reduce_params.h"

#include <math.h>
#include <stdlib.h>

/* ======================================================================
 *  Params and shape inference
 * ====================================================================== */

/* Which reduction; the kernel table is indexed by it. */
enum {
  RK_SUM,
  RK_MEAN,
  RK_PROD,
  RK_MAX,
  RK_MIN,
  RK_LSE,
  RK_ALL,
  RK_ANY,
  RK_ARGMAX, /* ordered kinds (they report positions) from here on */
  RK_ARGMIN,
  RK_COUNT
};

static const char *const red_names[RK_COUNT] = {
    "sum",       "mean", "prod", "max",    "min",
    "logsumexp", "all",  "any",  "argmax", "argmin"};

/* The reduced axes of an ndim-d input, normalized; fails on an axis out
 * of range or given twice (after normalization, so -1 and ndim-1 clash). */
am_status am_red_mask(const red_params *p, int ndim, bool *mask) {
  memset(mask, 0, AM_MAX_DIMS * sizeof *mask);
  if (p->all) {
    for (int i = 0; i < ndim; i++)
      mask[i] = true;
    return AM_OK;
  }
  for (int k = 0; k < p->naxes; k++) {
    int ax = am_norm_axis(p->axes[k], ndim);
    if (ax < 0)
      return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d is out of range for %d dims",
                     (int)p->axes[k], ndim);
    if (mask[ax])
      return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d is repeated",
                     (int)p->axes[k]);
    mask[ax] = true;
  }
  return AM_OK;
}

static am_dtype red_out_dtype(int kind, am_dtype t) {
  switch (kind) {
  case RK_SUM:
  case RK_PROD:
    return t == AM_BOOL ? AM_I32 : t;
  case RK_MEAN:
  case RK_LSE:
    return am_dtype_is_float(t) ? t : AM_F32;
  case RK_MAX:
  case RK_MIN:
    return t;
  case RK_ALL:
  case RK_ANY:
    return AM_BOOL;
  default:
    return AM_U32;
  }
}

static am_status red_shapes(int kind, const am_meta *x, const red_params *p,
                            am_meta *out) {
  bool mask[AM_MAX_DIMS];
  am_status s = am_red_mask(p, x->ndim, mask);
  if (s) return s;
  /* max/min have no identity; arg* report a position that must exist */
  bool need_items = kind == RK_MAX || kind == RK_MIN || kind >= RK_ARGMAX;
  out->dtype = red_out_dtype(kind, x->dtype);
  out->ndim = 0;
  for (int i = 0; i < x->ndim; i++) {
    if (!mask[i]) {
      out->shape[out->ndim++] = x->shape[i];
      continue;
    }
    if (need_items && x->shape[i] == 0)
      return AM_FAIL(AM_ERR_SHAPE, "cannot reduce an empty axis (axis %d)", i);
    if (kind >= RK_ARGMAX && x->shape[i] > (int64_t)UINT32_MAX)
      return AM_FAIL(AM_ERR_SHAPE, "axis %d is too long for uint32 indices", i);
    if (p->keepdims) out->shape[out->ndim++] = 1;
  }
  return AM_OK;
}

/* ======================================================================
 *  Kernels
 * ====================================================================== */

/* A kernel table works on arrays of accumulator states (asz bytes each)
 * for n neighbouring outputs. p is a byte pointer, s and ms byte strides.
 *  row: acc[k] ⊕= x[k*ms + i*s] for i < n, k < m  (reduce along s)
 *  col: acc[i] ⊕= x[k*ms + i*s] for k < m, i < n  (reduce along ms)
 * r0 is the reduced index of the first element folded (for arg*);
 * merge folds states of a later part of the reduced range into acc;
 * store finalizes (count = reduced elements per output, for mean). */
typedef void (*red_fold_fn)(void *acc, const char *p, int64_t n, int64_t s,
                            int64_t m, int64_t ms, int64_t r0);
/* Instruction sets with their own row/col kernels (hot ops only). */
enum { RED_ISA_SSE2, RED_ISA_AVX2, RED_ISA_AVX512, RED_NISA };
typedef struct red_fns {
  size_t asz;
  void (*init)(void *acc, int64_t n, int64_t r0);
  red_fold_fn row[RED_NISA], col[RED_NISA];
  void (*merge)(void *acc, const void *b, int64_t n);
  void (*store)(char *o, int64_t os, const void *acc, int64_t n, int64_t count);
} red_fns;

#define RED_NACC 4         /* vector accumulators in a row fold          */
#define RED_RBLOCK 4096    /* row elements per lane partial (accuracy)   */
#define RED_CROWS 8        /* column rows summed in lanes per acc pass   */
#define RED_MAXB 4096      /* outputs per block (column accumulators)    */
#define RED_MAX_ASZ 16     /* largest accumulator state                  */
#define RED_NARROW 512     /* column blocks narrower than this widen     */
#define RED_LSE_BLOCK 512  /* logsumexp row block                        */
#define RED_ARG_BLOCK 1024 /* argmax/argmin row block                    */

static inline int red_isnanf(float x) {
  return x != x;
}
static inline int red_isnand(double x) {
  return x != x;
}
static inline int red_nonan(int64_t x) {
  return (void)x, 0;
}
#define ISNAN(x)                                                               \
  _Generic((x), float : red_isnanf, double : red_isnand, default : red_nonan)(x)

/* loads: storage -> compute type */
#define LD_ID(x) (x)
#define LD_B(x) ((x) != 0)
#define LD_F16(x) am_f16_to_f32(x)
#define LD_BF16(x) am_bf16_to_f32(x)
/* stores: value -> storage type OT (integers wrap: modulo 2^bits) */
#define ST_CAST(OT, v) ((OT)(v))
#define ST_F16(OT, v) am_f32_to_f16((float)(v))
#define ST_BF16(OT, v) am_f32_to_bf16((float)(v))
/* element maps and combiners; NaN wins in max/min */
#define MAP_ID(v) (v)
#define MAP_NZ(v) ((v) != 0)
#define C_ADD(a, x) ((a) + (x))
#define C_MUL(a, x) ((a) * (x))
#define C_MAX(a, x) ((((x) > (a)) | ISNAN(x)) ? (x) : (a))
#define C_MIN(a, x) ((((x) < (a)) | ISNAN(x)) ? (x) : (a))
#define C_AND(a, x) ((a) & (x))
#define C_OR(a, x) ((a) | (x))
#define FIN_ID(a, count) (a)
#define FIN_MEAN(a, count) ((count) ? (a) / (double)(count) : (double)NAN)

/* GCC/Clang vector extensions of VB bytes (16: SSE2, the x86-64 baseline;
 * 32: AVX2; 64: AVX-512, compiled with target attributes and picked at
 * run time), so the hot loops vectorize at -O2 on any compiler that has
 * them. Comparisons give lane masks; VSEL blends with them. */
#define VSEL(m, x, a)                                                          \
  ((__typeof__(a))((((__typeof__(m))(x)) & (m)) |                              \
                   (((__typeof__(m))(a)) & ~(m))))
#define VC_ADD(a, x) ((a) + (x))
#define VC_MUL(a, x) ((a) * (x))
#define VC_MAX(a, x) VSEL(((x) > (a)) | ((x) != (x)), (x), (a))
#define VC_MIN(a, x) VSEL(((x) < (a)) | ((x) != (x)), (x), (a))
#define VC_AND(a, x) ((a) & (x))
#define VC_OR(a, x) ((a) | (x))
#define VMAP_ID(v) (v)
#define VMAP_NZ(v) (((v) != 0) & 1)
/* per-dtype vector normalization before the map (bool: any byte -> 0/1) */
#define VN_ID(v) (v)
#define VN_B(v) (((v) != 0) & 1)

#if defined(__x86_64__) || defined(__i386__)
#define RED_TGT_AVX2 __attribute__((target("avx2,fma")))
#define RED_TGT_AVX512 __attribute__((target("avx512f,avx512bw")))
/* FAST kernels get AVX2 and AVX-512 versions of row/col; BASE ones run
 * their SSE2 version everywhere. */
#define RED_ISAS_FAST(GEN, NAME, ...)                                          \
  GEN(NAME, _avx2, RED_TGT_AVX2, 32, __VA_ARGS__)                              \
  GEN(NAME, _avx512, RED_TGT_AVX512, 64, __VA_ARGS__)
#define RED_FNS_FAST(NAME, F)                                                  \
  { NAME##_##F, NAME##_##F##_avx2, NAME##_##F##_avx512 }
#else
#define RED_ISAS_FAST(GEN, NAME, ...)
#define RED_FNS_FAST(NAME, F)                                                  \
  { NAME##_##F, NAME##_##F, NAME##_##F }
#endif
#define RED_ISAS_BASE(GEN, NAME, ...)
#define RED_FNS_BASE(NAME, F)                                                  \
  { NAME##_##F, NAME##_##F, NAME##_##F }

/* The row and col kernels of one instruction set (suffix ISA, attribute
 * TGT, vectors of VB bytes): contiguous runs go through RED_NACC vectors
 * of lane type L, e.g. float for float32 sums (fast), flushed into the
 * accumulator type A (double) every RED_RBLOCK elements or RED_CROWS
 * rows. Dtypes without a vector form (VEC == 0: f16/bf16, whose
 * conversions stay scalar) and strided runs take the scalar loops. */
#define DEF_SIMPLE_ISA(NAME, ISA, TGT, VB, T, LD, MAP, A, L, ID, COMB, VEC,    \
                       VN, VMAP, VCOMB)                                        \
  typedef L NAME##_lv##ISA __attribute__((vector_size(VB)));                   \
  typedef T NAME##_tv##ISA                                                     \
      __attribute__((vector_size(VB / sizeof(L) * sizeof(T))));                \
  typedef A NAME##_av##ISA                                                     \
      __attribute__((vector_size(VB / sizeof(L) * sizeof(A))));                \
  enum { NAME##_nv##ISA = VB / sizeof(L) };                                    \
  /* (by pointer: returning wide vectors by value trips -Wpsabi) */            \
  TGT static inline void NAME##_vload##ISA(NAME##_lv##ISA *v, const T *x) {    \
    NAME##_tv##ISA t;                                                          \
    memcpy(&t, x, sizeof t);                                                   \
    *v = __builtin_convertvector(VMAP(VN(t)), NAME##_lv##ISA);                 \
  }                                                                            \
  TGT static A NAME##_fold##ISA(const char *p, int64_t n, int64_t s) {         \
    enum { NV = NAME##_nv##ISA, STEP = RED_NACC * NV };                        \
    A a = (A)(ID);                                                             \
    int64_t i = 0;                                                             \
    if (VEC && s == (int64_t)sizeof(T)) {                                      \
      const T *x = (const T *)p;                                               \
      while (i + STEP <= n) {                                                  \
        int64_t e = n - i < RED_RBLOCK ? n : i + RED_RBLOCK;                   \
        NAME##_lv##ISA v[RED_NACC], t;                                         \
        for (int k = 0; k < RED_NACC; k++)                                     \
          v[k] = (NAME##_lv##ISA){0} + (L)(ID);                                \
        for (; i + STEP <= e; i += STEP)                                       \
          for (int k = 0; k < RED_NACC; k++) {                                 \
            NAME##_vload##ISA(&t, x + i + k * NV);                             \
            v[k] = VCOMB(v[k], t);                                             \
          }                                                                    \
        for (int k = 1; k < RED_NACC; k++)                                     \
          v[0] = VCOMB(v[0], v[k]);                                            \
        L l = v[0][0];                                                         \
        for (int j = 1; j < NV; j++)                                           \
          l = COMB(l, v[0][j]);                                                \
        a = COMB(a, (A)l);                                                     \
      }                                                                        \
    }                                                                          \
    for (; i < n; i++)                                                         \
      a = COMB(a, (A)MAP(LD(*(const T *)(p + i * s))));                        \
    return a;                                                                  \
  }                                                                            \
  TGT static void NAME##_row##ISA(void *acc, const char *p, int64_t n,         \
                                  int64_t s, int64_t m, int64_t ms,            \
                                  int64_t r0) {                                \
    A *a = acc;                                                                \
    int64_t k = 0;                                                             \
    if (n < 2 * RED_NACC * NAME##_nv##ISA) /* short rows: 8 chains at once */  \
      for (; k + 8 <= m; k += 8)                                               \
        for (int64_t i = 0; i < n; i++)                                        \
          for (int j = 0; j < 8; j++)                                          \
            a[k + j] = COMB(                                                   \
                a[k + j], (A)MAP(LD(*(const T *)(p + (k + j) * ms + i * s)))); \
    for (; k < m; k++)                                                         \
      a[k] = COMB(a[k], NAME##_fold##ISA(p + k * ms, n, s));                   \
  }                                                                            \
  TGT static void NAME##_col##ISA(void *acc, const char *p, int64_t n,         \
                                  int64_t s, int64_t m, int64_t ms,            \
                                  int64_t r0) {                                \
    enum { NV = NAME##_nv##ISA };                                              \
    A *a = acc;                                                                \
    if (!VEC || s != (int64_t)sizeof(T) || n > RED_MAXB) {                     \
      for (int64_t k = 0; k < m; k++)                                          \
        for (int64_t i = 0; i < n; i++)                                        \
          a[i] = COMB(a[i], (A)MAP(LD(*(const T *)(p + k * ms + i * s))));     \
      return;                                                                  \
    }                                                                          \
    if (2 * n <= RED_NARROW && ms == n * s && m >= 2 * (RED_NARROW / n)) {     \
      /* narrow and back to back: g rows at a time are one wide row of    */   \
      /* w outputs, folded down to n at the end (sum of [4M, 4], axis 0)  */   \
      int64_t g = RED_NARROW / n, w = g * n, mg = m / g;                       \
      A t[RED_NARROW];                                                         \
      for (int64_t i = 0; i < w; i++)                                          \
        t[i] = (A)(ID);                                                        \
      NAME##_col##ISA(t, p, w, s, mg, (ms)*g, r0);                             \
      for (int64_t i = 0; i < w; i++)                                          \
        a[i % n] = COMB(a[i % n], t[i]);                                       \
      p += mg * g * ms;                                                        \
      m -= mg * g;                                                             \
    }                                                                          \
    /* RED_CROWS rows at a time in lane type L (registers), then into the */   \
    /* accumulators A (e.g. float rows -> double sums): one pass over acc */   \
    /* per RED_CROWS rows, and float32 sums exact to ~8 float roundings   */   \
    int64_t nv = n - n % NV;                                                   \
    for (int64_t k = 0; k < m; k += RED_CROWS) {                               \
      int rows = m - k < RED_CROWS ? (int)(m - k) : RED_CROWS;                 \
      const char *x = p + k * ms;                                              \
      for (int64_t i = 0; i < nv; i += NV) {                                   \
        NAME##_lv##ISA u, t[RED_CROWS];                                        \
        if (rows == RED_CROWS) { /* a tree: short dependency chains */         \
          for (int j = 0; j < RED_CROWS; j++)                                  \
            NAME##_vload##ISA(&t[j], (const T *)(x + j * ms) + i);             \
          for (int w = RED_CROWS / 2; w; w /= 2)                               \
            for (int j = 0; j < w; j++)                                        \
              t[j] = VCOMB(t[j], t[j + w]);                                    \
          u = t[0];                                                            \
        } else {                                                               \
          NAME##_vload##ISA(&u, (const T *)x + i);                             \
          for (int j = 1; j < rows; j++) {                                     \
            NAME##_vload##ISA(&t[0], (const T *)(x + j * ms) + i);             \
            u = VCOMB(u, t[0]);                                                \
          }                                                                    \
        }                                                                      \
        NAME##_av##ISA v;                                                      \
        memcpy(&v, a + i, sizeof v);                                           \
        v = VCOMB(v, __builtin_convertvector(u, NAME##_av##ISA));              \
        memcpy(a + i, &v, sizeof v);                                           \
      }                                                                        \
      for (int j = 0; j < rows; j++)                                           \
        for (int64_t i = nv; i < n; i++)                                       \
          a[i] = COMB(a[i], (A)MAP(LD(*(const T *)(x + j * ms + i * s))));     \
    }                                                                          \
  }

/* A full kernel table for acc = COMB(acc, MAP(LD(x))) with accumulator A
 * and identity ID; FIN finalizes, OT/ST are the output type and store;
 * ISAS is FAST or BASE (which instruction sets get their own kernels). */
/* (clang-format joins the ISA expansion with the next definition) */
// clang-format off
#define DEF_SIMPLE(NAME, T, LD, MAP, A, L, ID, COMB, OT, ST, FIN, VEC, VN,     \
                   VMAP, VCOMB, ISAS)                                          \
  DEF_SIMPLE_ISA(NAME, , , 16, T, LD, MAP, A, L, ID, COMB, VEC, VN, VMAP,      \
                 VCOMB)                                                        \
  RED_ISAS_##ISAS(DEF_SIMPLE_ISA, NAME, T, LD, MAP, A, L, ID, COMB, VEC, VN,   \
                  VMAP, VCOMB)                                                 \
  static void NAME##_init(void *acc, int64_t n, int64_t r0) {                  \
    A *a = acc;                                                                \
    for (int64_t i = 0; i < n; i++)                                            \
      a[i] = (A)(ID);                                                          \
  }                                                                            \
  static void NAME##_merge(void *acc, const void *bv, int64_t n) {             \
    A *a = acc;                                                                \
    const A *b = bv;                                                           \
    for (int64_t i = 0; i < n; i++)                                            \
      a[i] = COMB(a[i], b[i]);                                                 \
  }                                                                            \
  static void NAME##_store(char *o, int64_t os, const void *acc, int64_t n,    \
                           int64_t count) {                                    \
    const A *a = acc;                                                          \
    for (int64_t i = 0; i < n; i++)                                            \
      *(OT *)(o + i * os) = ST(OT, FIN(a[i], count));                          \
  }                                                                            \
  static const red_fns NAME##_fns = {                                          \
      sizeof(A), NAME##_init, RED_FNS_##ISAS(NAME, row),                       \
      RED_FNS_##ISAS(NAME, col), NAME##_merge, NAME##_store};
// clang-format on

/* ---- logsumexp: state (m, s) = running max and sum of exp(x - m) ---- */

typedef struct {
  double m, s;
} lse_acc;

/* Folds the state (m, s) into a. NaN sticks; +inf wins; all -inf stays
 * -inf (no exp(-inf - -inf) = NaN). */
static inline void lse_add(lse_acc *a, double m, double s) {
  if (a->m != a->m) return;
  if (m != m) {
    a->m = m;
    return;
  }
  double M = m > a->m ? m : a->m;
  if (M == -INFINITY) return;
  if (M == INFINITY) {
    a->m = M;
    a->s = 1;
    return;
  }
  a->s = a->s * exp(a->m - M) + s * exp(m - M);
  a->m = M;
}

static inline void lse_add1(lse_acc *a, double x) {
  if (isfinite(x) && isfinite(a->m)) {
    if (x <= a->m) {
      a->s += exp(x - a->m);
    } else {
      a->s = a->s * exp(a->m - x) + 1;
      a->m = x;
    }
  } else {
    lse_add(a, x, 1);
  }
}

static void lse_init(void *acc, int64_t n, int64_t r0) {
  lse_acc *a = acc;
  for (int64_t i = 0; i < n; i++)
    a[i] = (lse_acc){-INFINITY, 0};
}

static void lse_merge(void *acc, const void *bv, int64_t n) {
  lse_acc *a = acc;
  const lse_acc *b = bv;
  for (int64_t i = 0; i < n; i++)
    lse_add(&a[i], b[i].m, b[i].s);
}

static inline double lse_final(const lse_acc *a) {
  return isfinite(a->m) ? a->m + log(a->s) : a->m;
}

/* Sum of exp(d[i] - m) for d[i] <= m (m: the block max), float32:
 * Cephes-style expf on vectors of VB bytes (range reduction by ln 2,
 * degree-6 polynomial, 2^n built in the exponent bits; within 2 ulp),
 * since a scalar expf per element would dominate logsumexp. Arguments
 * below -87.3 (and -inf) count as 0, negligible next to the max's
 * exp(0) = 1. One version per instruction set, as the sums'. */
#define DEF_EXPSUM(ISA, TGT, VB)                                               \
  typedef float red_vf##ISA __attribute__((vector_size(VB)));                  \
  typedef int32_t red_vi##ISA __attribute__((vector_size(VB)));                \
  TGT static inline void red_vexpf##ISA(red_vf##ISA *px) {                     \
    const red_vf##ISA zero = {0}, lo = zero - 87.3f;                           \
    red_vf##ISA x = VSEL(*px < lo, lo, *px); /* -inf too */                    \
    red_vf##ISA y = x * 1.44269504088896341f + 0.5f;                           \
    red_vf##ISA f = __builtin_convertvector(                                   \
        __builtin_convertvector(y, red_vi##ISA), red_vf##ISA);                 \
    f -= VSEL(f > y, zero + 1.0f, zero); /* floor */                           \
    red_vf##ISA r = x - f * 0.693359375f + f * 2.12194440e-4f;                 \
    red_vf##ISA q = zero + 1.9875691500e-4f;                                   \
    q = q * r + 1.3981999507e-3f;                                              \
    q = q * r + 8.3334519073e-3f;                                              \
    q = q * r + 4.1665795894e-2f;                                              \
    q = q * r + 1.6666665459e-1f;                                              \
    q = q * r + 5.0000001201e-1f;                                              \
    q = q * (r * r) + r + 1.0f;                                                \
    red_vi##ISA e = (__builtin_convertvector(f, red_vi##ISA) + 127) << 23;     \
    *px = q * (red_vf##ISA)e;                                                  \
  }                                                                            \
  TGT static double red_expsum_f##ISA(const float *d, int64_t n, float m) {    \
    enum { NV = VB / 4, NA = 4 };                                              \
    red_vf##ISA acc[NA] = {{0}}, v;                                            \
    int64_t i = 0;                                                             \
    for (; i + NA * NV <= n; i += NA * NV)                                     \
      for (int k = 0; k < NA; k++) { /* NA chains hide the latency */          \
        memcpy(&v, d + i + k * NV, sizeof v);                                  \
        v -= m;                                                                \
        red_vexpf##ISA(&v);                                                    \
        acc[k] += v;                                                           \
      }                                                                        \
    for (int k = 1; k < NA; k++)                                               \
      acc[0] += acc[k];                                                        \
    double s = 0;                                                              \
    for (int j = 0; j < NV; j++)                                               \
      s += acc[0][j];                                                          \
    for (; i < n; i++)                                                         \
      s += expf(d[i] - m);                                                     \
    return s;                                                                  \
  }
DEF_EXPSUM(, , 16)
#if defined(__x86_64__) || defined(__i386__)
DEF_EXPSUM(_avx2, RED_TGT_AVX2, 32)
DEF_EXPSUM(_avx512, RED_TGT_AVX512, 64)
#endif

static int red_isa(void);

static double red_expsum_any_f(const float *d, int64_t n, float m) {
#if defined(__x86_64__) || defined(__i386__)
  switch (red_isa()) {
  case RED_ISA_AVX512:
    return red_expsum_f_avx512(d, n, m);
  case RED_ISA_AVX2:
    return red_expsum_f_avx2(d, n, m);
  default:
    break;
  }
#endif
  return red_expsum_f(d, n, m);
}

static double red_expsum_d(const double *d, int64_t n, double m) {
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += exp(d[i] - m);
  return s;
}

/* Rows go by blocks of RED_LSE_BLOCK: the block's max (the max kernel),
 * then its sum of exp(x - max) in the compute type FT, folded into the
 * double state once per block. */
#define DEF_LSE(NAME, T, LD, FT, EXPSUM, OT, ST, MAXFOLD)                      \
  static void NAME##_fold(lse_acc *a, const char *p, int64_t n, int64_t s) {   \
    FT d[RED_LSE_BLOCK];                                                       \
    /* contiguous FT data goes to EXPSUM as it is, the rest through d */       \
    bool direct = _Generic((T){0}, FT : 1, default : 0) && s == sizeof(T);     \
    for (int64_t b = 0; b < n; b += RED_LSE_BLOCK) {                           \
      int64_t e = n - b < RED_LSE_BLOCK ? n : b + RED_LSE_BLOCK;               \
      FT bm = (FT)MAXFOLD(p + b * s, e - b, s);                                \
      if (!isfinite(bm)) {                                                     \
        lse_add(a, bm, 1);                                                     \
        continue;                                                              \
      }                                                                        \
      if (!direct)                                                             \
        for (int64_t i = b; i < e; i++)                                        \
          d[i - b] = (FT)LD(*(const T *)(p + i * s));                          \
      const FT *src = direct ? (const FT *)(p + b * s) : d;                    \
      lse_add(a, bm, EXPSUM(src, e - b, bm));                                  \
    }                                                                          \
  }                                                                            \
  static void NAME##_row(void *acc, const char *p, int64_t n, int64_t s,       \
                         int64_t m, int64_t ms, int64_t r0) {                  \
    for (int64_t k = 0; k < m; k++)                                            \
      NAME##_fold((lse_acc *)acc + k, p + k * ms, n, s);                       \
  }                                                                            \
  static void NAME##_col(void *acc, const char *p, int64_t n, int64_t s,       \
                         int64_t m, int64_t ms, int64_t r0) {                  \
    lse_acc *a = acc;                                                          \
    for (int64_t k = 0; k < m; k++)                                            \
      for (int64_t i = 0; i < n; i++)                                          \
        lse_add1(&a[i], (FT)LD(*(const T *)(p + k * ms + i * s)));             \
  }                                                                            \
  static void NAME##_store(char *o, int64_t os, const void *acc, int64_t n,    \
                           int64_t count) {                                    \
    const lse_acc *a = acc;                                                    \
    for (int64_t i = 0; i < n; i++)                                            \
      *(OT *)(o + i * os) = ST(OT, lse_final(&a[i]));                          \
  }                                                                            \
  static const red_fns NAME##_fns = {                                          \
      sizeof(lse_acc),         lse_init,  RED_FNS_BASE(NAME, row),             \
      RED_FNS_BASE(NAME, col), lse_merge, NAME##_store};

/* ---- argmax/argmin: state (best value, its index) ---- */

/* x beats the best so far v: strictly better, or the first NaN. */
#define BETTER_MAX(x, v) ((x) > (v) || (ISNAN(x) && !ISNAN(v)))
#define BETTER_MIN(x, v) ((x) < (v) || (ISNAN(x) && !ISNAN(v)))

/* The initial state (worst value, index r0) is beaten by any element but
 * one equal to the worst value, whose first index then is r0 anyway. */
#define DEF_ARG(NAME, T, CT, LD, WORST, BETTER, FOLD)                          \
  typedef struct {                                                             \
    CT v;                                                                      \
    int64_t i;                                                                 \
  } NAME##_acc;                                                                \
  static void NAME##_init(void *acc, int64_t n, int64_t r0) {                  \
    NAME##_acc *a = acc;                                                       \
    for (int64_t i = 0; i < n; i++)                                            \
      a[i] = (NAME##_acc){(CT)(WORST), r0};                                    \
  }                                                                            \
  static void NAME##_row(void *acc, const char *p, int64_t n, int64_t s,       \
                         int64_t m, int64_t ms, int64_t r0) {                  \
    NAME##_acc *a = acc;                                                       \
    for (int64_t k = 0; k < m; k++) {                                          \
      CT v = a[k].v;                                                           \
      int64_t best = a[k].i;                                                   \
      const char *q = p + k * ms;                                              \
      /* by blocks: the best value (vectorized max/min kernel), and only */    \
      /* when it beats the best so far, the first place it occurs        */    \
      for (int64_t b = 0; b < n; b += RED_ARG_BLOCK) {                         \
        int64_t e = n - b < RED_ARG_BLOCK ? n : b + RED_ARG_BLOCK;             \
        CT bm = (CT)FOLD(q + b * s, e - b, s);                                 \
        if (!BETTER(bm, v)) continue;                                          \
        for (int64_t i = b; i < e; i++) {                                      \
          CT x = (CT)LD(*(const T *)(q + i * s));                              \
          if (x == bm || (ISNAN(x) && ISNAN(bm))) {                            \
            v = x;                                                             \
            best = r0 + i;                                                     \
            break;                                                             \
          }                                                                    \
        }                                                                      \
      }                                                                        \
      a[k] = (NAME##_acc){v, best};                                            \
    }                                                                          \
  }                                                                            \
  static void NAME##_col(void *acc, const char *p, int64_t n, int64_t s,       \
                         int64_t m, int64_t ms, int64_t r0) {                  \
    NAME##_acc *a = acc;                                                       \
    for (int64_t k = 0; k < m; k++)                                            \
      for (int64_t i = 0; i < n; i++) {                                        \
        CT x = (CT)LD(*(const T *)(p + k * ms + i * s));                       \
        if (BETTER(x, a[i].v)) a[i] = (NAME##_acc){x, r0 + k};                 \
      }                                                                        \
  }                                                                            \
  static void NAME##_merge(void *acc, const void *bv, int64_t n) {             \
    NAME##_acc *a = acc;                                                       \
    const NAME##_acc *b = bv;                                                  \
    for (int64_t i = 0; i < n; i++)                                            \
      if (BETTER(b[i].v, a[i].v)) a[i] = b[i];                                 \
  }                                                                            \
  static void NAME##_store(char *o, int64_t os, const void *acc, int64_t n,    \
                           int64_t count) {                                    \
    const NAME##_acc *a = acc;                                                 \
    for (int64_t i = 0; i < n; i++)                                            \
      *(uint32_t *)(o + i * os) = (uint32_t)a[i].i;                            \
  }                                                                            \
  static const red_fns NAME##_fns = {                                          \
      sizeof(NAME##_acc),      NAME##_init,  RED_FNS_BASE(NAME, row),          \
      RED_FNS_BASE(NAME, col), NAME##_merge, NAME##_store};

/* ---- per-dtype instantiation ----
 * sfx, enum, storage T, compare type CT, load, store,
 * sum accumulator / lanes / output type / output store, mean lanes,
 * float type for logsumexp (FT, its exp, output type and store),
 * product accumulator, lowest and highest CT values, has a vector form,
 * vector normalization, unsigned type of T's width (all/any lanes),
 * which ISAs sum/mean/max/min get (FAST: also AVX2 and AVX-512). */
#define RED_DTYPES(X)                                                          \
  X(b, AM_BOOL, uint8_t, uint8_t, LD_B, ST_CAST, uint64_t, uint64_t, int32_t,  \
    ST_CAST, double, float, red_expsum_any_f, float, ST_CAST, uint64_t, 0, 1,  \
    1, VN_B, uint8_t, BASE)                                                    \
  X(u8, AM_U8, uint8_t, uint8_t, LD_ID, ST_CAST, uint64_t, uint64_t, uint8_t,  \
    ST_CAST, double, float, red_expsum_any_f, float, ST_CAST, uint64_t, 0,     \
    UINT8_MAX, 1, VN_ID, uint8_t, BASE)                                        \
  X(i8, AM_I8, int8_t, int8_t, LD_ID, ST_CAST, uint64_t, uint64_t, int8_t,     \
    ST_CAST, double, float, red_expsum_any_f, float, ST_CAST, uint64_t,        \
    INT8_MIN, INT8_MAX, 1, VN_ID, uint8_t, BASE)                               \
  X(u32, AM_U32, uint32_t, uint32_t, LD_ID, ST_CAST, uint64_t, uint64_t,       \
    uint32_t, ST_CAST, double, float, red_expsum_any_f, float, ST_CAST,        \
    uint64_t, 0, UINT32_MAX, 1, VN_ID, uint32_t, BASE)                         \
  X(i32, AM_I32, int32_t, int32_t, LD_ID, ST_CAST, uint64_t, uint64_t,         \
    int32_t, ST_CAST, double, float, red_expsum_any_f, float, ST_CAST,         \
    uint64_t, INT32_MIN, INT32_MAX, 1, VN_ID, uint32_t, BASE)                  \
  X(i64, AM_I64, int64_t, int64_t, LD_ID, ST_CAST, uint64_t, uint64_t,         \
    int64_t, ST_CAST, double, float, red_expsum_any_f, float, ST_CAST,         \
    uint64_t, INT64_MIN, INT64_MAX, 1, VN_ID, uint64_t, BASE)                  \
  X(f16, AM_F16, uint16_t, float, LD_F16, ST_F16, double, float, uint16_t,     \
    ST_F16, float, float, red_expsum_any_f, uint16_t, ST_F16, float,           \
    -INFINITY, INFINITY, 0, VN_ID, uint16_t, BASE)                             \
  X(bf16, AM_BF16, uint16_t, float, LD_BF16, ST_BF16, double, float, uint16_t, \
    ST_BF16, float, float, red_expsum_any_f, uint16_t, ST_BF16, float,         \
    -INFINITY, INFINITY, 0, VN_ID, uint16_t, BASE)                             \
  X(f32, AM_F32, float, float, LD_ID, ST_CAST, double, float, float, ST_CAST,  \
    float, float, red_expsum_any_f, float, ST_CAST, float, -INFINITY,          \
    INFINITY, 1, VN_ID, uint32_t, FAST)                                        \
  X(f64, AM_F64, double, double, LD_ID, ST_CAST, double, double, double,       \
    ST_CAST, double, double, red_expsum_d, double, ST_CAST, double, -INFINITY, \
    INFINITY, 1, VN_ID, uint64_t, FAST)

#define INST(sfx, E, T, CT, LD, ST, SA, SL, ST_T, ST_ST, ML, FT, EXP, FT_T,    \
             FT_ST, PA, LO, HI, VEC, VN, UT, ISAS)                             \
  DEF_SIMPLE(sum_##sfx, T, LD, MAP_ID, SA, SL, 0, C_ADD, ST_T, ST_ST, FIN_ID,  \
             VEC, VN, VMAP_ID, VC_ADD, ISAS)                                   \
  DEF_SIMPLE(mean_##sfx, T, LD, MAP_ID, double, ML, 0, C_ADD, FT_T, FT_ST,     \
             FIN_MEAN, VEC, VN, VMAP_ID, VC_ADD, ISAS)                         \
  DEF_SIMPLE(prod_##sfx, T, LD, MAP_ID, PA, PA, 1, C_MUL, ST_T, ST_ST, FIN_ID, \
             VEC, VN, VMAP_ID, VC_MUL, BASE)                                   \
  DEF_SIMPLE(max_##sfx, T, LD, MAP_ID, CT, CT, LO, C_MAX, T, ST, FIN_ID, VEC,  \
             VN, VMAP_ID, VC_MAX, ISAS)                                        \
  DEF_SIMPLE(min_##sfx, T, LD, MAP_ID, CT, CT, HI, C_MIN, T, ST, FIN_ID, VEC,  \
             VN, VMAP_ID, VC_MIN, ISAS)                                        \
  DEF_SIMPLE(all_##sfx, T, LD, MAP_NZ, uint8_t, UT, 1, C_AND, uint8_t,         \
             ST_CAST, FIN_ID, VEC, VN, VMAP_NZ, VC_AND, BASE)                  \
  DEF_SIMPLE(any_##sfx, T, LD, MAP_NZ, uint8_t, UT, 0, C_OR, uint8_t, ST_CAST, \
             FIN_ID, VEC, VN, VMAP_NZ, VC_OR, BASE)                            \
  DEF_LSE(lse_##sfx, T, LD, FT, EXP, FT_T, FT_ST, max_##sfx##_fold)            \
  DEF_ARG(argmax_##sfx, T, CT, LD, LO, BETTER_MAX, max_##sfx##_fold)           \
  DEF_ARG(argmin_##sfx, T, CT, LD, HI, BETTER_MIN, min_##sfx##_fold)
RED_DTYPES(INST)
#undef INST

#define REF(op, sfx, E) [E] = &op##_##sfx##_fns,
#define REF_SUM(sfx, E, ...) REF(sum, sfx, E)
#define REF_MEAN(sfx, E, ...) REF(mean, sfx, E)
#define REF_PROD(sfx, E, ...) REF(prod, sfx, E)
#define REF_MAX(sfx, E, ...) REF(max, sfx, E)
#define REF_MIN(sfx, E, ...) REF(min, sfx, E)
#define REF_LSE(sfx, E, ...) REF(lse, sfx, E)
#define REF_ALL(sfx, E, ...) REF(all, sfx, E)
#define REF_ANY(sfx, E, ...) REF(any, sfx, E)
#define REF_ARGMAX(sfx, E, ...) REF(argmax, sfx, E)
#define REF_ARGMIN(sfx, E, ...) REF(argmin, sfx, E)
static const red_fns *const red_table[RK_COUNT][AM_DTYPE_COUNT] = {
    [RK_SUM] = {RED_DTYPES(REF_SUM)},
    [RK_MEAN] = {RED_DTYPES(REF_MEAN)},
    [RK_PROD] = {RED_DTYPES(REF_PROD)},
    [RK_MAX] = {RED_DTYPES(REF_MAX)},
    [RK_MIN] = {RED_DTYPES(REF_MIN)},
    [RK_LSE] = {RED_DTYPES(REF_LSE)},
    [RK_ALL] = {RED_DTYPES(REF_ALL)},
    [RK_ANY] = {RED_DTYPES(REF_ANY)},
    [RK_ARGMAX] = {RED_DTYPES(REF_ARGMAX)},
    [RK_ARGMIN] = {RED_DTYPES(REF_ARGMIN)},
};

/* ======================================================================
 *  The engine
 * ====================================================================== */

#define RED_SERIAL_WORK 65536 /* below: run inline, one task */
#define RED_TASK_WORK 32768   /* elements per task at least  */
#define RED_FINISH_CHUNK 128  /* outputs per task merging partials */

typedef struct {
  int64_t n, is, os; /* size, input and output strides in bytes */
  bool red;
} red_dim;

typedef struct {
  const red_fns *f;
  const char *in;
  char *out;
  bool rowmode;
  int isa;     /* RED_ISA_*          */
  int nko, nr; /* outer kept, reduced  */
  int64_t kn[AM_MAX_DIMS], kis[AM_MAX_DIMS], kos[AM_MAX_DIMS];
  int64_t rn[AM_MAX_DIMS], ris[AM_MAX_DIMS];
  int64_t C, cis, cos; /* block dim: the innermost kept dim (or 1)     */
  int64_t B, nblk;     /* outputs per block, blocks per outer index    */
  int64_t rtotal;      /* reduced elements per output                  */
  int64_t nsplit;      /* parts of each unit's reduced range           */
  char *part;          /* nsplit > 1: states, [unit][split][B]         */
} red_plan;

/* Orders dims for the walk and merges neighbours: see the file comment.
 * Kept dims with negative strides are flipped (input and output together);
 * reduced ones too unless the op is ordered. Returns the dim count. */
static int red_dims(const am_arr *x, const bool *mask, bool ordered, size_t oes,
                    const char **in, char **out, red_dim *d) {
  size_t es = am_dtype_size(x->m.dtype);
  int64_t ost = (int64_t)oes, os[AM_MAX_DIMS];
  for (int i = x->m.ndim - 1; i >= 0; i--) {
    os[i] = mask[i] ? 0 : ost;
    if (!mask[i]) ost *= x->m.shape[i];
  }
  int nd = 0;
  for (int i = 0; i < x->m.ndim; i++) {
    if (x->m.shape[i] == 1) continue;
    red_dim t = {x->m.shape[i], x->strides[i] * (int64_t)es, os[i], mask[i]};
    if (t.is < 0 && (!t.red || !ordered)) {
      *in += (t.n - 1) * t.is;
      *out += (t.n - 1) * t.os;
      t.is = -t.is;
      t.os = -t.os;
    }
    /* insertion keeps the order stable among equal |strides| */
    int j = nd++;
    for (; j > 0 && llabs(d[j - 1].is) < llabs(t.is); j--)
      d[j] = d[j - 1];
    d[j] = t;
  }
  int m = 0;
  for (int i = 0; i < nd; i++) {
    red_dim *l = m ? &d[m - 1] : NULL;
    if (l && l->red == d[i].red && l->is == d[i].is * d[i].n &&
        l->os == d[i].os * d[i].n) {
      l->n *= d[i].n;
      l->is = d[i].is;
      l->os = d[i].os;
    } else {
      d[m++] = d[i];
    }
  }
  return m;
}

/* Folds the reduced range [r0, r1) of one unit into acc (nb outputs). */
static void red_walk(const red_plan *P, void *acc, const char *p, int64_t nb,
                     int64_t r0, int64_t r1) {
  int nr = P->nr;
  int64_t L = P->rn[nr - 1], rs = P->ris[nr - 1];
  int64_t q = r0 / L, j = r0 % L, idx[AM_MAX_DIMS];
  for (int d = nr - 2; d >= 0; d--) {
    idx[d] = q % P->rn[d];
    q /= P->rn[d];
    p += idx[d] * P->ris[d];
  }
  for (int64_t r = r0; r < r1;) {
    int64_t len = L - j < r1 - r ? L - j : r1 - r;
    const char *q0 = p + j * rs;
    if (P->rowmode)
      P->f->row[P->isa](acc, q0, len, rs, nb, P->cis, r);
    else
      P->f->col[P->isa](acc, q0, nb, P->cis, len, rs, r);
    r += len;
    j = 0;
    for (int d = nr - 2; d >= 0; d--) { /* odometer over outer reduced */
      if (++idx[d] < P->rn[d]) {
        p += P->ris[d];
        break;
      }
      idx[d] = 0;
      p -= (P->rn[d] - 1) * P->ris[d];
    }
  }
}

/* Input and output positions of unit u and its output count. */
static int64_t red_unit(const red_plan *P, int64_t u, const char **pin,
                        char **pout) {
  int64_t o = u / P->nblk, b = u % P->nblk;
  const char *in = P->in + b * P->B * P->cis;
  char *out = P->out + b * P->B * P->cos;
  for (int d = P->nko - 1; d >= 0; d--) {
    int64_t i = o % P->kn[d];
    o /= P->kn[d];
    in += i * P->kis[d];
    out += i * P->kos[d];
  }
  *pin = in;
  *pout = out;
  int64_t nb = P->C - b * P->B;
  return nb < P->B ? nb : P->B;
}

static void red_task(void *ctx, int64_t t0, int64_t t1) {
  const red_plan *P = ctx;
  _Alignas(64) unsigned char local[RED_MAXB * RED_MAX_ASZ];
  for (int64_t t = t0; t < t1; t++) {
    int64_t u = t / P->nsplit, k = t % P->nsplit;
    int64_t r0 = P->rtotal * k / P->nsplit,
            r1 = P->rtotal * (k + 1) / P->nsplit;
    const char *in;
    char *out;
    int64_t nb = red_unit(P, u, &in, &out);
    void *acc = P->nsplit > 1 ? (void *)(P->part + t * P->B * P->f->asz)
                              : (void *)local;
    P->f->init(acc, nb, r0);
    if (r1 > r0) red_walk(P, acc, in, nb, r0, r1);
    if (P->nsplit == 1) P->f->store(out, P->cos, acc, nb, P->rtotal);
  }
}

/* Merges each unit's partial states in order and stores the result. */
static void red_finish(void *ctx, int64_t j0, int64_t j1) {
  const red_plan *P = ctx;
  size_t asz = P->f->asz, bytes = (size_t)P->B * asz;
  int64_t nch = (P->B + RED_FINISH_CHUNK - 1) / RED_FINISH_CHUNK;
  for (int64_t j = j0; j < j1; j++) { /* (unit, chunk of its outputs) */
    int64_t u = j / nch, c0 = j % nch * RED_FINISH_CHUNK;
    const char *in;
    char *out;
    int64_t nb = red_unit(P, u, &in, &out) - c0;
    if (nb <= 0) continue;
    if (nb > RED_FINISH_CHUNK) nb = RED_FINISH_CHUNK;
    char *acc = P->part + (size_t)(u * P->nsplit) * bytes + (size_t)c0 * asz;
    for (int64_t k = 1; k < P->nsplit; k++)
      P->f->merge(acc, acc + (size_t)k * bytes, nb);
    P->f->store(out + c0 * P->cos, P->cos, acc, nb, P->rtotal);
  }
}

/* Test hook (not in a header): caps the instruction set the kernels use,
 * so that a machine with AVX-512 also runs the SSE2 and AVX2 versions. */
static atomic_int g_isa_cap = RED_NISA - 1;
void am_reduce_set_isa_cap(int cap);
void am_reduce_set_isa_cap(int cap) {
  atomic_store(&g_isa_cap, cap < 0 ? RED_NISA - 1 : cap);
}

static int red_isa(void) {
  int isa = am_cpu_has_avx512() ? RED_ISA_AVX512
            : am_cpu_has_avx2() ? RED_ISA_AVX2
                                : RED_ISA_SSE2;
  int cap = atomic_load_explicit(&g_isa_cap, memory_order_relaxed);
  return isa < cap ? isa : cap;
}

static am_status red_run(const red_fns *f, const am_arr *x, const bool *mask,
                         bool ordered, am_arr *out) {
  red_plan P;
  memset(&P, 0, sizeof P);
  red_dim d[AM_MAX_DIMS + 1];
  P.f = f;
  P.isa = red_isa();
  P.in = am_arr_ptr(x);
  P.out = am_arr_ptr(out);
  int nd =
      red_dims(x, mask, ordered, am_dtype_size(out->m.dtype), &P.in, &P.out, d);
  int last_kept = -1;
  for (int i = 0; i < nd; i++) {
    if (d[i].red) {
      P.rn[P.nr] = d[i].n;
      P.ris[P.nr++] = d[i].is;
    } else {
      last_kept = i;
    }
  }
  if (!P.nr) { /* nothing left to reduce: one "row" of one element */
    P.rn[0] = 1;
    P.nr = 1;
  }
  P.rowmode = nd == 0 || d[nd - 1].red;
  P.C = 1;
  for (int i = 0; i < nd; i++) {
    if (d[i].red) continue;
    if (i == last_kept) {
      P.C = d[i].n;
      P.cis = d[i].is;
      P.cos = d[i].os;
    } else {
      P.kn[P.nko] = d[i].n;
      P.kis[P.nko] = d[i].is;
      P.kos[P.nko++] = d[i].os;
    }
  }
  P.rtotal = 1;
  for (int i = 0; i < P.nr; i++)
    P.rtotal *= P.rn[i];
  int64_t nout = out->size, work = nout * (P.rtotal ? P.rtotal : 1);
  int T = am_get_num_threads();
  bool par = T > 1 && work >= RED_SERIAL_WORK;

  /* Blocks: columns as wide as possible (fewer passes over the rows, and
   * rows of contiguous reads); rows narrow enough for every thread. */
  int64_t maxb = P.C < RED_MAXB ? P.C : RED_MAXB;
  if (P.rowmode && par) {
    int64_t b = nout / (4 * (int64_t)T);
    P.B = b < 1 ? 1 : b > maxb ? maxb : b;
  } else {
    P.B = maxb;
  }
  P.nblk = (P.C + P.B - 1) / P.B;
  P.B = (P.C + P.nblk - 1) / P.nblk; /* balance the blocks */
  int64_t units = nout / P.C * P.nblk;

  P.nsplit = 1;
  am_buffer *part = NULL;
  if (par && units < 2 * (int64_t)T) {
    int64_t want = (2 * (int64_t)T + units - 1) / units;
    int64_t most = work / units / RED_TASK_WORK;
    if (most > P.rtotal) most = P.rtotal;
    P.nsplit = want < most ? want : most;
    if (P.nsplit < 2) P.nsplit = 1;
  }
  if (P.nsplit > 1) {
    /* from the buffer pool: a fresh malloc of this size would page-fault
     * on every call */
    part = am_buffer_new((size_t)(units * P.nsplit * P.B) * f->asz);
    if (part)
      P.part = part->data;
    else
      P.nsplit = 1; /* still correct, just on fewer threads */
  }
  int64_t tasks = units * P.nsplit;
  int64_t grain = tasks;
  if (par) {
    int64_t per = work / tasks;
    grain = RED_TASK_WORK / (per ? per : 1);
    if (grain < 1) grain = 1;
  }
  am_parallel_for(tasks, grain, red_task, &P);
  if (P.nsplit > 1) { /* merge the partials in order, wide ones in parallel */
    int64_t nch = (P.B + RED_FINISH_CHUNK - 1) / RED_FINISH_CHUNK;
    int64_t fg = RED_TASK_WORK / (P.nsplit * RED_FINISH_CHUNK);
    am_parallel_for(units * nch, fg < 1 ? 1 : fg, red_finish, &P);
    am_buffer_release(part);
  }
  return AM_OK;
}

/* ======================================================================
 *  Descriptors and public API
 * ====================================================================== */

static am_status red_eval(int kind, am_arr *const *in, am_arr *const *out,
                          const void *params) {
  bool mask[AM_MAX_DIMS];
  am_status s = am_red_mask(params, in[0]->m.ndim, mask);
  if (!s) s = am_out_alloc(out[0]);
  if (s || !out[0]->size) return s;
  return red_run(red_table[kind][in[0]->m.dtype], in[0], mask,
                 kind >= RK_ARGMAX, out[0]);
}

static void red_params_str(const void *params, char *buf, size_t n) {
  const red_params *p = params;
  size_t k = 0;
  if (p->all) {
    k = (size_t)snprintf(buf, n, "axes=all");
  } else {
    k = (size_t)snprintf(buf, n, "axes=[");
    for (int i = 0; i < p->naxes && k < n; i++)
      k += (size_t)snprintf(buf + k, n - k, i ? ",%d" : "%d", (int)p->axes[i]);
    if (k < n) k += (size_t)snprintf(buf + k, n - k, "]");
  }
  if (k < n) snprintf(buf + k, n - k, " keepdims=%d", (int)p->keepdims);
}

#define RED_PRIM(NM, KIND)                                                     \
  static am_status NM##_shapes(const am_meta *const *in, int n_in,             \
                               const void *params, am_meta *out, int n_out) {  \
    return red_shapes(KIND, in[0], params, out);                               \
  }                                                                            \
  static am_status NM##_eval(am_arr *const *in, int n_in, am_arr *const *out,  \
                             int n_out, const void *params) {                  \
    return red_eval(KIND, in, out, params);                                    \
  }                                                                            \
  const am_prim am_prim_##NM = {                                               \
      .name = #NM,                                                             \
      .n_in = 1,                                                               \
      .n_out = 1,                                                              \
      .flags = AM_OPF_REDUCTION,                                               \
      .params_size = sizeof(red_params),                                       \
      .output_shapes = NM##_shapes,                                            \
      .eval_cpu = NM##_eval,                                                   \
      .params_str = red_params_str,                                            \
  };
RED_PRIM(sum, RK_SUM)
RED_PRIM(mean, RK_MEAN)
RED_PRIM(prod, RK_PROD)
RED_PRIM(max, RK_MAX)
RED_PRIM(min, RK_MIN)
RED_PRIM(logsumexp, RK_LSE)
RED_PRIM(all, RK_ALL)
RED_PRIM(any, RK_ANY)
RED_PRIM(argmax, RK_ARGMAX)
RED_PRIM(argmin, RK_ARGMIN)

static am_array red_make(int op, int kind, am_array x, const int *axes,
                         int naxes, bool keepdims) {
  red_params p;
  memset(&p, 0, sizeof p);
  if (!axes) {
    p.all = 1;
  } else {
    if (naxes < 0 || naxes > AM_MAX_DIMS)
      return am_error_array(AM_ERR_INVALID_ARG, "%s: %d axes (at most %d)",
                            red_names[kind], naxes, AM_MAX_DIMS);
    p.naxes = naxes;
    for (int i = 0; i < naxes; i++)
      p.axes[i] = axes[i];
  }
  p.keepdims = keepdims;
  return am_op_make(op, &p, &x, 1);
}

am_array am_sum(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_SUM, RK_SUM, x, axes, naxes, keepdims);
}
am_array am_mean(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_MEAN, RK_MEAN, x, axes, naxes, keepdims);
}
am_array am_prod(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_PROD, RK_PROD, x, axes, naxes, keepdims);
}
am_array am_max(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_MAX, RK_MAX, x, axes, naxes, keepdims);
}
am_array am_min(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_MIN, RK_MIN, x, axes, naxes, keepdims);
}
am_array am_logsumexp(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_LOGSUMEXP, RK_LSE, x, axes, naxes, keepdims);
}
am_array am_all(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_ALL, RK_ALL, x, axes, naxes, keepdims);
}
am_array am_any(am_array x, const int *axes, int naxes, bool keepdims) {
  return red_make(AM_OP_ANY, RK_ANY, x, axes, naxes, keepdims);
}
am_array am_argmax(am_array x, int axis, bool keepdims) {
  return red_make(AM_OP_ARGMAX, RK_ARGMAX, x, &axis, 1, keepdims);
}
am_array am_argmin(am_array x, int axis, bool keepdims) {
  return red_make(AM_OP_ARGMIN, RK_ARGMIN, x, &axis, 1, keepdims);
}
