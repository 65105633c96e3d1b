/*
 * sort.c — sort, argsort, argpartition and topk along one axis.
 *
 * Each row (all elements along the axis at one position of the other
 * axes) is copied into a scratch buffer, ordered there, and written out;
 * rows go to the thread pool. Order is ascending with NaN last (a total
 * preorder: NaNs compare equal to each other), integers compare exactly in
 * their own type, float16/bfloat16 compare as float32.
 *  - sort and argsort: a bottom-up merge sort (stable, O(n log n)) with
 *    insertion-sorted runs of 16; argsort sorts (key, index) pairs, so
 *    equal keys keep their original order.
 *  - argpartition and topk: quickselect with a median-of-three pivot and a
 *    three-way partition (many equal keys stay linear); after 2 log2(n)
 *    rounds without converging it merge-sorts the rest, so the worst case
 *    stays O(n log n).
 * topk returns the k largest in descending order (MLX leaves them
 * unordered; sorting them makes results deterministic). NaN counts as
 * the largest value, so NaNs come first in topk.
 */
#include "../core/internal.h"
#include "sort_params.h"

#include <stdlib.h>

/* ======================================================================
 *  Row algorithms, generated per element type
 * ====================================================================== */

#define ILESS(a, b) ((a) < (b))
/* NaN last: a < b, or b is NaN and a is not */
#define FLESS(a, b) ((a) < (b) || ((b) != (b) && (a) == (a)))

#define RUN 16

/* N: name suffix, E: element type, LT(a, b): strict "a before b". */
#define ROW_ALGOS(N, E, LT)                                                    \
  static void isort_##N(E *a, int64_t n) {                                     \
    for (int64_t i = 1; i < n; i++) {                                          \
      E x = a[i];                                                              \
      int64_t j = i;                                                           \
      for (; j > 0 && LT(x, a[j - 1]); j--)                                    \
        a[j] = a[j - 1];                                                       \
      a[j] = x;                                                                \
    }                                                                          \
  }                                                                            \
  /* Stable merge sort of a[0..n) using tmp[0..n). */                          \
  static void msort_##N(E *a, E *tmp, int64_t n) {                             \
    for (int64_t i = 0; i < n; i += RUN)                                       \
      isort_##N(a + i, n - i < RUN ? n - i : RUN);                             \
    E *src = a, *dst = tmp;                                                    \
    for (int64_t w = RUN; w < n; w *= 2) {                                     \
      for (int64_t lo = 0; lo < n; lo += 2 * w) {                              \
        int64_t mid = lo + w < n ? lo + w : n;                                 \
        int64_t hi = lo + 2 * w < n ? lo + 2 * w : n;                          \
        int64_t i = lo, j = mid, k = lo;                                       \
        if (mid == hi || !LT(src[mid], src[mid - 1])) { /* in order */         \
          memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(E));           \
          continue;                                                            \
        }                                                                      \
        while (i < mid && j < hi)                                              \
          dst[k++] = LT(src[j], src[i]) ? src[j++] : src[i++];                 \
        while (i < mid)                                                        \
          dst[k++] = src[i++];                                                 \
        while (j < hi)                                                         \
          dst[k++] = src[j++];                                                 \
      }                                                                        \
      E *t = src;                                                              \
      src = dst;                                                               \
      dst = t;                                                                 \
    }                                                                          \
    if (src != a) memcpy(a, src, (size_t)n * sizeof(E));                       \
  }                                                                            \
  static E median3_##N(E x, E y, E z) {                                        \
    if (LT(y, x)) {                                                            \
      E t = x;                                                                 \
      x = y;                                                                   \
      y = t;                                                                   \
    } /* x <= y */                                                             \
    if (LT(z, y)) y = LT(z, x) ? x : z;                                        \
    return y;                                                                  \
  }                                                                            \
  /* Reorders a[0..n) so that a[kth] is what sorting would put there, with     \
   * nothing after it smaller and nothing before it larger. */                 \
  static void select_##N(E *a, E *tmp, int64_t n, int64_t kth) {               \
    int64_t lo = 0, hi = n, budget = 2;                                        \
    for (int64_t m = n; m > 1; m >>= 1)                                        \
      budget += 2;                                                             \
    while (hi - lo > RUN) {                                                    \
      if (budget-- == 0) {                                                     \
        msort_##N(a + lo, tmp, hi - lo);                                       \
        return;                                                                \
      }                                                                        \
      E p = median3_##N(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);              \
      int64_t lt = lo, i = lo, gt = hi; /* [lo,lt) < p == [lt,gt) < [gt,hi) */ \
      while (i < gt) {                                                         \
        E x = a[i];                                                            \
        if (LT(x, p)) {                                                        \
          a[i++] = a[lt];                                                      \
          a[lt++] = x;                                                         \
        } else if (LT(p, x)) {                                                 \
          a[i] = a[--gt];                                                      \
          a[gt] = x;                                                           \
        } else {                                                               \
          i++;                                                                 \
        }                                                                      \
      }                                                                        \
      if (kth < lt)                                                            \
        hi = lt;                                                               \
      else if (kth >= gt)                                                      \
        lo = gt;                                                               \
      else                                                                     \
        return;                                                                \
    }                                                                          \
    isort_##N(a + lo, hi - lo);                                                \
  }

/* Key types: values compared directly, and (key, index) pairs. */
#define KEY_TYPES(X)                                                           \
  X(u8, uint8_t, ILESS)                                                        \
  X(i8, int8_t, ILESS)                                                         \
  X(u32, uint32_t, ILESS)                                                      \
  X(i32, int32_t, ILESS)                                                       \
  X(i64, int64_t, ILESS)                                                       \
  X(f32, float, FLESS) X(f64, double, FLESS)

#define PAIR_LT(LESS) PAIR_LT_##LESS
#define PAIR_LT_ILESS(a, b) ((a).k < (b).k)
#define PAIR_LT_FLESS(a, b) FLESS((a).k, (b).k)

#define DEFINE_KEY(N, K, LESS)                                                 \
  typedef struct {                                                             \
    K k;                                                                       \
    uint32_t i;                                                                \
  } pair_##N;                                                                  \
  ROW_ALGOS(v_##N, K, LESS)                                                    \
  ROW_ALGOS(p_##N, pair_##N, PAIR_LT(LESS))
KEY_TYPES(DEFINE_KEY)

/* ======================================================================
 *  Row kernels, generated per dtype
 * ====================================================================== */

/* One row: n elements at src (byte stride ss) to dst (byte stride ds);
 * `prm` is kth (normalized) or k; `work` holds 2n pairs of the widest key. */
typedef void (*row_kernel)(const char *src, int64_t ss, char *dst, int64_t ds,
                           int64_t n, int64_t prm, void *work);

#define LOAD_NATIVE(S, p) (*(const S *)(p))
#define LOAD_F16(S, p) am_f16_to_f32(*(const uint16_t *)(p))
#define LOAD_BF16(S, p) am_bf16_to_f32(*(const uint16_t *)(p))

/* argsort / argpartition: every dtype sorts (key, index) pairs. */
#define ARG_KERNELS(D, S, N, LOAD)                                             \
  static pair_##N *load_pairs_##D(const char *src, int64_t ss, int64_t n,      \
                                  void *work) {                                \
    pair_##N *v = work;                                                        \
    for (int64_t i = 0; i < n; i++) {                                          \
      v[i].k = LOAD(S, src + i * ss);                                          \
      v[i].i = (uint32_t)i;                                                    \
    }                                                                          \
    return v;                                                                  \
  }                                                                            \
  static void argsort_##D(const char *src, int64_t ss, char *dst, int64_t ds,  \
                          int64_t n, int64_t prm, void *work) {                \
    pair_##N *v = load_pairs_##D(src, ss, n, work);                            \
    msort_p_##N(v, v + n, n);                                                  \
    for (int64_t i = 0; i < n; i++)                                            \
      *(uint32_t *)(dst + i * ds) = v[i].i;                                    \
  }                                                                            \
  static void argpartition_##D(const char *src, int64_t ss, char *dst,         \
                               int64_t ds, int64_t n, int64_t prm,             \
                               void *work) {                                   \
    pair_##N *v = load_pairs_##D(src, ss, n, work);                            \
    select_p_##N(v, v + n, n, prm);                                            \
    for (int64_t i = 0; i < n; i++)                                            \
      *(uint32_t *)(dst + i * ds) = v[i].i;                                    \
  }

/* sort / topk on types whose keys are the values themselves. */
#define VALUE_KERNELS(D, S, N)                                                 \
  static S *load_values_##D(const char *src, int64_t ss, int64_t n,            \
                            void *work) {                                      \
    S *v = work;                                                               \
    if (ss == (int64_t)sizeof(S))                                              \
      memcpy(v, src, (size_t)n * sizeof(S));                                   \
    else                                                                       \
      for (int64_t i = 0; i < n; i++)                                          \
        v[i] = *(const S *)(src + i * ss);                                     \
    return v;                                                                  \
  }                                                                            \
  static void sort_##D(const char *src, int64_t ss, char *dst, int64_t ds,     \
                       int64_t n, int64_t prm, void *work) {                   \
    S *v = load_values_##D(src, ss, n, work);                                  \
    msort_v_##N(v, v + n, n);                                                  \
    for (int64_t i = 0; i < n; i++)                                            \
      *(S *)(dst + i * ds) = v[i];                                             \
  }                                                                            \
  static void topk_##D(const char *src, int64_t ss, char *dst, int64_t ds,     \
                       int64_t n, int64_t k, void *work) {                     \
    S *v = load_values_##D(src, ss, n, work);                                  \
    if (k < n) select_v_##N(v, v + n, n, n - k);                               \
    msort_v_##N(v + n - k, v + n, k);                                          \
    for (int64_t i = 0; i < k; i++)                                            \
      *(S *)(dst + i * ds) = v[n - 1 - i];                                     \
  }

/* sort / topk on float16/bfloat16: pairs of float32 keys and indices, the
 * output gathered from the source so every bit (NaN payloads) survives. */
#define HALF_KERNELS(D)                                                        \
  static void sort_##D(const char *src, int64_t ss, char *dst, int64_t ds,     \
                       int64_t n, int64_t prm, void *work) {                   \
    pair_f32 *v = load_pairs_##D(src, ss, n, work);                            \
    msort_p_f32(v, v + n, n);                                                  \
    for (int64_t i = 0; i < n; i++)                                            \
      *(uint16_t *)(dst + i * ds) = *(const uint16_t *)(src + v[i].i * ss);    \
  }                                                                            \
  static void topk_##D(const char *src, int64_t ss, char *dst, int64_t ds,     \
                       int64_t n, int64_t k, void *work) {                     \
    pair_f32 *v = load_pairs_##D(src, ss, n, work);                            \
    if (k < n) select_p_f32(v, v + n, n, n - k);                               \
    msort_p_f32(v + n - k, v + n, k);                                          \
    for (int64_t i = 0; i < k; i++)                                            \
      *(uint16_t *)(dst + i * ds) =                                            \
          *(const uint16_t *)(src + v[n - 1 - i].i * ss);                      \
  }

/* dtype, storage type, key name, loader */
// clang-format off
#define NATIVE_DTYPES(X)                                                       \
  X(b8, uint8_t, u8)                                                           \
  X(u8, uint8_t, u8)                                                           \
  X(i8, int8_t, i8)                                                            \
  X(u32, uint32_t, u32)                                                        \
  X(i32, int32_t, i32)                                                         \
  X(i64, int64_t, i64)                                                         \
  X(f32, float, f32)                                                           \
  X(f64, double, f64)
// clang-format on
#define NATIVE(D, S, N) ARG_KERNELS(D, S, N, LOAD_NATIVE) VALUE_KERNELS(D, S, N)
NATIVE_DTYPES(NATIVE)
ARG_KERNELS(f16, uint16_t, f32, LOAD_F16)
ARG_KERNELS(bf16, uint16_t, f32, LOAD_BF16)
HALF_KERNELS(f16)
HALF_KERNELS(bf16)

enum { K_SORT, K_ARGSORT, K_ARGPARTITION, K_TOPK };

#define KERNEL_ROW(D)                                                          \
  { sort_##D, argsort_##D, argpartition_##D, topk_##D }
static const row_kernel kernels[AM_DTYPE_COUNT][4] = {
    [AM_BOOL] = KERNEL_ROW(b8), [AM_U8] = KERNEL_ROW(u8),
    [AM_I8] = KERNEL_ROW(i8),   [AM_U32] = KERNEL_ROW(u32),
    [AM_I32] = KERNEL_ROW(i32), [AM_I64] = KERNEL_ROW(i64),
    [AM_F16] = KERNEL_ROW(f16), [AM_BF16] = KERNEL_ROW(bf16),
    [AM_F32] = KERNEL_ROW(f32), [AM_F64] = KERNEL_ROW(f64),
};

/* ======================================================================
 *  Driving the rows
 * ====================================================================== */

typedef struct {
  row_kernel fn;
  const char *x;
  char *out;
  int64_t n, prm; /* row length, kth or k */
  int64_t xs, os; /* byte strides along the axis */
  int nd;         /* the other axes */
  int64_t shape[AM_MAX_DIMS], xst[AM_MAX_DIMS], ost[AM_MAX_DIMS]; /* bytes */
  atomic_int oom;
} rows_ctx;

static void sort_rows(void *vc, int64_t b, int64_t e) {
  rows_ctx *c = vc;
  /* 2n pairs of at most 16 bytes; small rows stay on the stack */
  _Alignas(16) char local[2048];
  size_t need = (size_t)c->n * 32;
  void *work = need <= sizeof local ? local : malloc(need);
  if (!work) {
    atomic_store(&c->oom, 1);
    return;
  }
  for (int64_t r = b; r < e; r++) {
    int64_t q = r, xo = 0, oo = 0;
    for (int d = c->nd - 1; d >= 0; d--) {
      int64_t i = q % c->shape[d];
      q /= c->shape[d];
      xo += i * c->xst[d];
      oo += i * c->ost[d];
    }
    c->fn(c->x + xo, c->xs, c->out + oo, c->os, c->n, c->prm, work);
  }
  if (work != local) free(work);
}

static am_status run_rows(const am_arr *x, am_arr *o, int ax, int kind,
                          int64_t prm) {
  am_status s = am_out_alloc(o);
  if (s || !o->size || !x->size) return s;
  rows_ctx c = {
      .fn = kernels[x->m.dtype][kind], .n = x->m.shape[ax], .prm = prm};
  size_t xe = am_dtype_size(x->m.dtype), oe = am_dtype_size(o->m.dtype);
  c.x = am_arr_ptr(x);
  c.out = am_arr_ptr(o);
  c.xs = x->strides[ax] * (int64_t)xe;
  c.os = o->strides[ax] * (int64_t)oe;
  int64_t rows = 1;
  for (int d = 0; d < x->m.ndim; d++) {
    if (d == ax) continue;
    c.shape[c.nd] = x->m.shape[d];
    c.xst[c.nd] = x->strides[d] * (int64_t)xe;
    c.ost[c.nd] = o->strides[d] * (int64_t)oe;
    rows *= x->m.shape[d];
    c.nd++;
  }
  atomic_init(&c.oom, 0);
  int64_t grain = 8192 / c.n;
  am_parallel_for(rows, grain < 1 ? 1 : grain, sort_rows, &c);
  if (atomic_load(&c.oom))
    return AM_FAIL(AM_ERR_OOM, "out of memory for a row of %lld",
                   (long long)c.n);
  return AM_OK;
}

/* ======================================================================
 *  Primitives
 * ====================================================================== */

/* Validates the axis (and, when pairs index it, the row length). */
static am_status sort_axis(const am_meta *x, const sort_params *p, bool pairs,
                           int *ax) {
  *ax = am_norm_axis(p->axis, x->ndim);
  if (*ax < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                   p->axis, x->ndim);
  if (pairs && x->shape[*ax] > (int64_t)UINT32_MAX + 1)
    return AM_FAIL(AM_ERR_SHAPE, "axis of size %lld is too long (max 2^32)",
                   (long long)x->shape[*ax]);
  return AM_OK;
}

static bool is_half(am_dtype t) {
  return t == AM_F16 || t == AM_BF16;
}

static am_status sort_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  int ax;
  am_status s = sort_axis(in[0], params, is_half(in[0]->dtype), &ax);
  if (!s) out[0] = *in[0];
  return s;
}

static am_status argsort_shapes(const am_meta *const *in, int n_in,
                                const void *params, am_meta *out, int n_out) {
  int ax;
  am_status s = sort_axis(in[0], params, true, &ax);
  if (s) return s;
  out[0] = *in[0];
  out[0].dtype = AM_U32;
  return AM_OK;
}

static am_status argpartition_shapes(const am_meta *const *in, int n_in,
                                     const void *params, am_meta *out,
                                     int n_out) {
  const sort_params *p = params;
  int ax;
  am_status s = sort_axis(in[0], p, true, &ax);
  if (s) return s;
  int64_t n = in[0]->shape[ax];
  if (p->k < -n || p->k >= n)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "kth %lld out of range for axis %d of "
                   "size %lld",
                   (long long)p->k, ax, (long long)n);
  out[0] = *in[0];
  out[0].dtype = AM_U32;
  return AM_OK;
}

static am_status topk_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  const sort_params *p = params;
  int ax;
  am_status s = sort_axis(in[0], p, is_half(in[0]->dtype), &ax);
  if (s) return s;
  int64_t n = in[0]->shape[ax];
  if (p->k < 0 || p->k > n)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "k %lld out of range for axis %d of size %lld",
                   (long long)p->k, ax, (long long)n);
  out[0] = *in[0];
  out[0].shape[ax] = p->k;
  return AM_OK;
}

static am_status sort_eval_kind(am_arr *const *in, am_arr *const *out,
                                const sort_params *p, int kind) {
  int ax = am_norm_axis(p->axis, in[0]->m.ndim);
  int64_t prm = p->k;
  if (kind == K_ARGPARTITION && prm < 0) prm += in[0]->m.shape[ax];
  return run_rows(in[0], out[0], ax, kind, prm);
}

#define SORT_PRIM(NAME, KIND, SHAPES)                                          \
  static am_status NAME##_eval(am_arr *const *in, int n_in,                    \
                               am_arr *const *out, int n_out,                  \
                               const void *params) {                           \
    return sort_eval_kind(in, out, params, KIND);                              \
  }                                                                            \
  const am_prim am_prim_##NAME = {                                             \
      .name = #NAME,                                                           \
      .n_in = 1,                                                               \
      .n_out = 1,                                                              \
      .params_size = sizeof(sort_params),                                      \
      .output_shapes = SHAPES,                                                 \
      .eval_cpu = NAME##_eval,                                                 \
  };
SORT_PRIM(sort, K_SORT, sort_shapes)
SORT_PRIM(argsort, K_ARGSORT, argsort_shapes)
SORT_PRIM(argpartition, K_ARGPARTITION, argpartition_shapes)
SORT_PRIM(topk, K_TOPK, topk_shapes)

static am_array sort_make(int op, am_array x, int axis, int64_t k) {
  sort_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  p.k = k;
  return am_op_make(op, &p, &x, 1);
}

am_array am_sort(am_array x, int axis) {
  return sort_make(AM_OP_SORT, x, axis, 0);
}
am_array am_argsort(am_array x, int axis) {
  return sort_make(AM_OP_ARGSORT, x, axis, 0);
}
am_array am_argpartition(am_array x, int kth, int axis) {
  return sort_make(AM_OP_ARGPARTITION, x, axis, kth);
}
am_array am_topk(am_array x, int k, int axis) {
  return sort_make(AM_OP_TOPK, x, axis, k);
}
