/*
 * elementwise.c — unary and binary elementwise ops, where, astype.
 *
 * Thirty-odd primitives share one implementation, driven by a table:
 *  - each op has scalar expressions per *compute type* (float for
 *    f16/bf16/f32, double for f64, int64 for bool and the integer types),
 *    turned into block kernels (am_ew_kernel, see elementwise_simd.h) by
 *    the X-macro lists below; AVX2/AVX-512 float32 kernels from
 *    elementwise_simd.c replace the portable ones when the CPU has them;
 *  - one shape function (broadcast + dtype checks) and one eval function
 *    serve every op; per-op descriptors and public functions are thin
 *    generated wrappers.
 *
 * Eval has two paths. Fast: every input is contiguous with the output's
 * size or a single broadcast value, in the compute type itself (f32, f64,
 * i64): the kernel runs straight on the buffers, split over the threads.
 * General: am_iter walks any strides/broadcast; each row is processed in
 * blocks that are converted to the compute type, computed, and converted
 * back on store (f16/bf16 round once, integers wrap).
 *
 * Type promotion happens in the public functions, which insert am_astype
 * nodes so that a primitive's inputs always share one dtype; the shape
 * functions re-check that at every replay. astype itself runs through
 * the same block conversions when source and target share a compute type.
 */
#include "elementwise_params.h"
#include "elementwise_simd.h"

#include <tgmath.h> /* exp(x) is expf for float x, exp for double */
#include <unistd.h>

/* ======================================================================
 *  Compute types and the scalar expressions
 * ====================================================================== */

enum { CT_F32, CT_F64, CT_I64, CT_COUNT };

static int ct_of(am_dtype t) {
  return t == AM_F64 ? CT_F64 : am_dtype_is_float(t) ? CT_F32 : CT_I64;
}
static const am_dtype ct_native[CT_COUNT] = {AM_F32, AM_F64, AM_I64};

/* Integer arithmetic goes through uint64 so that overflow wraps (two's
 * complement, as NumPy) instead of being undefined; narrower integer
 * types keep the low bits on store, which is the same wrap. */
#define U64(x) ((uint64_t)(x))
#define WRAP(e) ((int64_t)(e))

/* x**y for integers, exact modulo 2^64. A negative exponent gives 0,
 * except for bases 1 and -1 (NumPy raises there; we cannot). */
static int64_t i_pow(int64_t b, int64_t e) {
  if (e < 0) return b == 1 ? 1 : b == -1 ? ((e & 1) ? -1 : 1) : 0;
  uint64_t r = 1, x = U64(b);
  for (; e; e >>= 1) {
    if (e & 1) r *= x;
    x *= x;
  }
  return WRAP(r);
}

/* Python remainder (sign of the divisor). Division by zero gives 0 (as
 * NumPy's result, without its warning); b == -1 is special-cased because
 * INT64_MIN % -1 traps on x86. */
static int64_t i_rem(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  int64_t r = a % b;
  return (r != 0 && (r < 0) != (b < 0)) ? r + b : r;
}

/* NumPy's float remainder: fmod corrected to the divisor's sign; a zero
 * result takes the divisor's sign; b == 0 gives nan. */
#define DEF_FREM(T, NAME)                                                      \
  static inline T NAME(T a, T b) {                                             \
    T m = fmod(a, b);                                                          \
    if (b == 0) return m;                                                      \
    if (m != 0) {                                                              \
      if ((b < 0) != (m < 0)) m += b;                                          \
    } else {                                                                   \
      m = copysign((T)0, b);                                                   \
    }                                                                          \
    return m;                                                                  \
  }
DEF_FREM(float, f_rem_f32)
DEF_FREM(double, f_rem_f64)
#define F_REM(x, y) _Generic((x), float : f_rem_f32, default : f_rem_f64)(x, y)

/* sign: -1, 0 (also for -0.0, as NumPy), 1; nan stays nan. */
#define F_SIGN(x) ((x) > 0 ? 1 : (x) < 0 ? -1 : (x) == 0 ? 0 : (x))

// clang-format off
/* Unary ops that keep the dtype: NAME, ENUM, accepted dtypes,
 * float/double expression of x, int64 expression of x. */
#define EW_KEEP_UNARY(X)                                                      \
  X(neg, NEG, ACC_NUM, -x, WRAP(0 - U64(x)))                                  \
  X(abs, ABS, ACC_ALL, fabs(x), x < 0 ? WRAP(0 - U64(x)) : x)                 \
  X(sign, SIGN, ACC_ALL, F_SIGN(x), (x > 0) - (x < 0))                        \
  X(square, SQUARE, ACC_ALL, x * x, WRAP(U64(x) * U64(x)))                    \
  X(floor, FLOOR, ACC_ALL, floor(x), x)                                       \
  X(ceil, CEIL, ACC_ALL, ceil(x), x)                                          \
  X(round, ROUND, ACC_ALL, rint(x), x) /* half to even */

/* Float-only unary ops (integer inputs are promoted to float32 by the
 * public function): NAME, ENUM, heavy (libm-bound), expression. */
#define EW_FLOAT_UNARY(X)                                                     \
  X(exp, EXP, 1, exp(x))                                                      \
  X(expm1, EXPM1, 1, expm1(x))                                                \
  X(log, LOG, 1, log(x))                                                      \
  X(log1p, LOG1P, 1, log1p(x))                                                \
  X(sqrt, SQRT, 0, sqrt(x))                                                   \
  X(rsqrt, RSQRT, 0, 1 / sqrt(x))                                             \
  X(sin, SIN, 1, sin(x))                                                      \
  X(cos, COS, 1, cos(x))                                                      \
  X(tanh, TANH, 1, tanh(x))                                                   \
  X(sigmoid, SIGMOID, 1, 1 / (1 + exp(-x)))                                   \
  X(erf, ERF, 1, erf(x))

/* Binary ops that keep the dtype: NAME, ENUM, flags, float expression of
 * x and y, int64 expression. maximum/minimum propagate nan (NumPy). */
#define EW_KEEP_BINARY(X)                                                     \
  X(add, ADD, AM_OPF_COMMUTATIVE, x + y, WRAP(U64(x) + U64(y)))               \
  X(sub, SUB, 0, x - y, WRAP(U64(x) - U64(y)))                                \
  X(mul, MUL, AM_OPF_COMMUTATIVE, x * y, WRAP(U64(x) * U64(y)))               \
  X(pow, POW, 0, pow(x, y), i_pow(x, y))                                      \
  X(maximum, MAXIMUM, AM_OPF_COMMUTATIVE, (x > y || x != x) ? x : y,          \
    x > y ? x : y)                                                            \
  X(minimum, MINIMUM, AM_OPF_COMMUTATIVE, (x < y || x != x) ? x : y,          \
    x < y ? x : y)                                                            \
  X(remainder, REMAINDER, 0, F_REM(x, y), i_rem(x, y))

/* Binary ops with a bool result (any dtype in): NAME, ENUM, flags, expr. */
#define EW_BOOL_BINARY(X)                                                     \
  X(equal, EQUAL, AM_OPF_COMMUTATIVE, x == y)                                 \
  X(not_equal, NOT_EQUAL, AM_OPF_COMMUTATIVE, x != y)                         \
  X(less, LESS, 0, x < y)                                                     \
  X(less_equal, LESS_EQUAL, 0, x <= y)                                        \
  X(greater, GREATER, 0, x > y)                                               \
  X(greater_equal, GREATER_EQUAL, 0, x >= y)                                  \
  X(logical_and, LOGICAL_AND, AM_OPF_COMMUTATIVE, x != 0 && y != 0)           \
  X(logical_or, LOGICAL_OR, AM_OPF_COMMUTATIVE, x != 0 || y != 0)
// clang-format on

/* ======================================================================
 *  Portable block kernels, generated from the lists
 * ====================================================================== */

/* A step of 0 means one broadcast value: separate loops keep the common
 * contiguous one simple enough for the compiler to vectorize. */
#define UN_KERNEL(NAME, T, OT, EXPR)                                           \
  static void NAME(int64_t n, const void *const *in, const int64_t *st,        \
                   void *out) {                                                \
    const T *a = in[0];                                                        \
    OT *o = out;                                                               \
    if (!st[0]) {                                                              \
      T x = a[0];                                                              \
      OT v = (OT)(EXPR);                                                       \
      for (int64_t i = 0; i < n; i++)                                          \
        o[i] = v;                                                              \
      return;                                                                  \
    }                                                                          \
    for (int64_t i = 0; i < n; i++) {                                          \
      T x = a[i];                                                              \
      o[i] = (OT)(EXPR);                                                       \
    }                                                                          \
  }

#define BIN_KERNEL(NAME, T, OT, EXPR)                                          \
  static void NAME(int64_t n, const void *const *in, const int64_t *st,        \
                   void *out) {                                                \
    const T *a = in[0], *b = in[1];                                            \
    OT *o = out;                                                               \
    if (st[0] && st[1]) {                                                      \
      for (int64_t i = 0; i < n; i++) {                                        \
        T x = a[i], y = b[i];                                                  \
        o[i] = (OT)(EXPR);                                                     \
      }                                                                        \
    } else if (st[0]) {                                                        \
      const T y = b[0];                                                        \
      for (int64_t i = 0; i < n; i++) {                                        \
        T x = a[i];                                                            \
        o[i] = (OT)(EXPR);                                                     \
      }                                                                        \
    } else if (st[1]) {                                                        \
      const T x = a[0];                                                        \
      for (int64_t i = 0; i < n; i++) {                                        \
        T y = b[i];                                                            \
        o[i] = (OT)(EXPR);                                                     \
      }                                                                        \
    } else {                                                                   \
      T x = a[0], y = b[0];                                                    \
      OT v = (OT)(EXPR);                                                       \
      for (int64_t i = 0; i < n; i++)                                          \
        o[i] = v;                                                              \
    }                                                                          \
  }

#define GEN_KEEP_UNARY(NM, E, ACC, FE, IE)                                     \
  UN_KERNEL(NM##_f32, float, float, FE)                                        \
  UN_KERNEL(NM##_f64, double, double, FE)                                      \
  UN_KERNEL(NM##_i64, int64_t, int64_t, IE)
#define GEN_FLOAT_UNARY(NM, E, HEAVY, FE)                                      \
  UN_KERNEL(NM##_f32, float, float, FE)                                        \
  UN_KERNEL(NM##_f64, double, double, FE)
#define GEN_KEEP_BINARY(NM, E, FL, FE, IE)                                     \
  BIN_KERNEL(NM##_f32, float, float, FE)                                       \
  BIN_KERNEL(NM##_f64, double, double, FE)                                     \
  BIN_KERNEL(NM##_i64, int64_t, int64_t, IE)
#define GEN_BOOL_BINARY(NM, E, FL, EX)                                         \
  BIN_KERNEL(NM##_f32, float, uint8_t, EX)                                     \
  BIN_KERNEL(NM##_f64, double, uint8_t, EX)                                    \
  BIN_KERNEL(NM##_i64, int64_t, uint8_t, EX)

EW_KEEP_UNARY(GEN_KEEP_UNARY)
EW_FLOAT_UNARY(GEN_FLOAT_UNARY)
EW_KEEP_BINARY(GEN_KEEP_BINARY)
EW_BOOL_BINARY(GEN_BOOL_BINARY)
BIN_KERNEL(div_f32, float, float, x / y)
BIN_KERNEL(div_f64, double, double, x / y)
UN_KERNEL(logical_not_f32, float, uint8_t, x == 0)
UN_KERNEL(logical_not_f64, double, uint8_t, x == 0)
UN_KERNEL(logical_not_i64, int64_t, uint8_t, x == 0)

/* ======================================================================
 *  The op table
 * ====================================================================== */

/* Dtypes an op accepts (after the public function's promotion). */
enum { ACC_BOOL = 1, ACC_INT = 2, ACC_FLOAT = 4 };
#define ACC_NUM (ACC_INT | ACC_FLOAT)
#define ACC_ALL (ACC_BOOL | ACC_INT | ACC_FLOAT)

static unsigned acc_bit(am_dtype t) {
  return t == AM_BOOL ? ACC_BOOL : am_dtype_is_float(t) ? ACC_FLOAT : ACC_INT;
}

// clang-format off
typedef struct {
  unsigned accept;          /* ACC_*                                         */
  bool out_bool;            /* the result is bool, else the input dtype      */
  bool to_float;            /* the public function promotes to a float dtype */
  bool heavy;               /* libm-bound: parallelize smaller arrays        */
  am_ew_kernel k[CT_COUNT]; /* portable kernels; NULL: not accepted          */
} ew_info;

#define INFO_KEEP_UNARY(NM, E, ACC, FE, IE)                                    \
  [AM_OP_##E] = {ACC, false, false, false, {NM##_f32, NM##_f64, NM##_i64}},
#define INFO_FLOAT_UNARY(NM, E, HEAVY, FE)                                     \
  [AM_OP_##E] = {ACC_FLOAT, false, true, HEAVY, {NM##_f32, NM##_f64, NULL}},
#define INFO_KEEP_BINARY(NM, E, FL, FE, IE)                                    \
  [AM_OP_##E] = {ACC_ALL, false, false, false, {NM##_f32, NM##_f64, NM##_i64}},
#define INFO_BOOL_BINARY(NM, E, FL, EX)                                        \
  [AM_OP_##E] = {ACC_ALL, true, false, false, {NM##_f32, NM##_f64, NM##_i64}},

static const ew_info g_info[AM_OP_COUNT] = {
  EW_KEEP_UNARY(INFO_KEEP_UNARY)
  EW_FLOAT_UNARY(INFO_FLOAT_UNARY)
  EW_KEEP_BINARY(INFO_KEEP_BINARY)
  EW_BOOL_BINARY(INFO_BOOL_BINARY)
  [AM_OP_DIV] = {ACC_FLOAT, false, true, false, {div_f32, div_f64, NULL}},
  [AM_OP_LOGICAL_NOT] = {ACC_ALL, true, false, false,
                         {logical_not_f32, logical_not_f64, logical_not_i64}},
};
// clang-format on

/* Tests flip this to check the SIMD kernels against the portable ones.
 * Declared here only: the test declares it extern. */
void am_ew_force_scalar(bool on);
static bool g_force_scalar;
void am_ew_force_scalar(bool on) {
  g_force_scalar = on;
}

/* ======================================================================
 *  Shape inference
 * ====================================================================== */

/* Broadcasts the n input shapes into out (ping-pong: the helper must not
 * read and write the same array). */
static am_status broadcast_all(const am_meta *const *in, int n, am_meta *out) {
  int64_t sh[2][AM_MAX_DIMS];
  int nd = in[0]->ndim, cur = 0;
  memcpy(sh[0], in[0]->shape, (size_t)nd * sizeof(int64_t));
  for (int i = 1; i < n; i++) {
    if (am_broadcast_shapes(sh[cur], nd, in[i]->shape, in[i]->ndim, sh[!cur],
                            &nd))
      return AM_FAIL(AM_ERR_SHAPE, "shapes cannot be broadcast together");
    cur = !cur;
  }
  out->ndim = nd;
  memcpy(out->shape, sh[cur], (size_t)nd * sizeof(int64_t));
  return AM_OK;
}

static am_status ew_shapes(int op, const am_meta *const *in, int n,
                           am_meta *out) {
  const ew_info *d = &g_info[op];
  am_dtype t = in[0]->dtype;
  for (int i = 1; i < n; i++)
    if (in[i]->dtype != t)
      return AM_FAIL(AM_ERR_DTYPE,
                     "inputs must share one dtype (got %s and %s)",
                     am_dtype_name(t), am_dtype_name(in[i]->dtype));
  if (!(d->accept & acc_bit(t)))
    return AM_FAIL(AM_ERR_DTYPE, "%s inputs are not supported%s",
                   am_dtype_name(t),
                   t == AM_BOOL             ? " (use logical_not)"
                   : d->accept == ACC_FLOAT ? " (needs a float dtype)"
                                            : "");
  am_status s = broadcast_all(in, n, out);
  out->dtype = d->out_bool ? AM_BOOL : t;
  return s;
}

/* ======================================================================
 *  Eval
 * ====================================================================== */

#define EW_BLOCK 256       /* elements per converted block           */
#define EW_FAST_CHUNK 1024 /* fast path: elements per scheduling unit */

/* ---- block conversion to and from the compute type ---- */

#define LOAD_LOOP(ST, DT, CONV)                                                \
  do {                                                                         \
    DT *d_ = dst;                                                              \
    for (int64_t i = 0; i < n; i++) {                                          \
      ST v = *(const ST *)(src + i * s);                                       \
      d_[i] = (CONV);                                                          \
    }                                                                          \
  } while (0)

/* n elements of dtype t at src (byte stride s) into the compute type. */
static void load_ct(am_dtype t, const char *src, int64_t s, int64_t n,
                    void *dst) {
  switch (t) {
  case AM_BOOL:
    LOAD_LOOP(uint8_t, int64_t, v != 0);
    break;
  case AM_U8:
    LOAD_LOOP(uint8_t, int64_t, v);
    break;
  case AM_I8:
    LOAD_LOOP(int8_t, int64_t, v);
    break;
  case AM_U32:
    LOAD_LOOP(uint32_t, int64_t, v);
    break;
  case AM_I32:
    LOAD_LOOP(int32_t, int64_t, v);
    break;
  case AM_I64:
    LOAD_LOOP(int64_t, int64_t, v);
    break;
  case AM_F16:
    LOAD_LOOP(uint16_t, float, am_f16_to_f32(v));
    break;
  case AM_BF16:
    LOAD_LOOP(uint16_t, float, am_bf16_to_f32(v));
    break;
  case AM_F32:
    LOAD_LOOP(float, float, v);
    break;
  case AM_F64:
    LOAD_LOOP(double, double, v);
    break;
  default:
    break;
  }
}

#define STORE_LOOP(ST, DT, CONV)                                               \
  do {                                                                         \
    const ST *s_ = src;                                                        \
    for (int64_t i = 0; i < n; i++) {                                          \
      ST v = s_[i];                                                            \
      *(DT *)(dst + i * s) = (DT)(CONV);                                       \
    }                                                                          \
  } while (0)

/* n compute-type values (bytes 0/1 when is_bool) to dtype t at dst. */
static void store_ct(am_dtype t, bool is_bool, const void *src, char *dst,
                     int64_t s, int64_t n) {
  if (is_bool) {
    STORE_LOOP(uint8_t, uint8_t, v);
    return;
  }
  switch (t) {
  case AM_BOOL:
    STORE_LOOP(int64_t, uint8_t, v != 0);
    break;
  case AM_U8:
    STORE_LOOP(int64_t, uint8_t, v);
    break;
  case AM_I8:
    STORE_LOOP(int64_t, int8_t, (uint8_t)v);
    break;
  case AM_U32:
    STORE_LOOP(int64_t, uint32_t, v);
    break;
  case AM_I32:
    STORE_LOOP(int64_t, int32_t, (uint32_t)v);
    break;
  case AM_I64:
    STORE_LOOP(int64_t, int64_t, v);
    break;
  case AM_F16:
    STORE_LOOP(float, uint16_t, am_f32_to_f16(v));
    break;
  case AM_BF16:
    STORE_LOOP(float, uint16_t, am_f32_to_bf16(v));
    break;
  case AM_F32:
    STORE_LOOP(float, float, v);
    break;
  case AM_F64:
    STORE_LOOP(double, double, v);
    break;
  default:
    break;
  }
}

/* ---- general path: strided rows, converted in blocks ---- */

typedef struct {
  am_ew_kernel k;
  int nin;
  am_dtype in_dt, out_dt;
  bool in_native;  /* inputs already in the compute type */
  bool out_native; /* the kernel's output type is out_dt */
  bool out_bool;
  int64_t in_es, out_es;
} ew_row_ctx;

static void ew_row(void *c, int64_t n, char **p, const int64_t *s) {
  const ew_row_ctx *x = c;
  _Alignas(64) char tmp[3][EW_BLOCK * 8];
  for (int64_t off = 0; off < n; off += EW_BLOCK) {
    int64_t m = n - off < EW_BLOCK ? n - off : EW_BLOCK;
    const void *src[2];
    int64_t step[2];
    for (int k = 0; k < x->nin; k++) {
      const char *ip = p[k + 1] + off * s[k + 1];
      step[k] = s[k + 1] != 0;
      if (x->in_native && (!step[k] || s[k + 1] == x->in_es)) {
        src[k] = ip;
      } else {
        load_ct(x->in_dt, ip, s[k + 1], step[k] ? m : 1, tmp[k]);
        src[k] = tmp[k];
      }
    }
    char *op = p[0] + off * s[0];
    bool direct = x->out_native && s[0] == x->out_es;
    void *dst = direct ? (void *)op : (void *)tmp[2];
    x->k(m, src, step, dst);
    if (!direct) store_ct(x->out_dt, x->out_bool, dst, op, s[0], m);
  }
}

/* ---- fast path: contiguous (or single-value) inputs in the compute
 * type; chunks of EW_FAST_CHUNK elements keep thread boundaries on
 * cache lines ---- */

typedef struct {
  am_ew_kernel k;
  int64_t n;
  const char *in[2];
  int64_t step[2];
  int64_t in_es, out_es;
  char *out;
} ew_fast_ctx;

static void ew_fast(void *c, int64_t b, int64_t e) {
  const ew_fast_ctx *x = c;
  int64_t i0 = b * EW_FAST_CHUNK, i1 = e * EW_FAST_CHUNK;
  if (i1 > x->n) i1 = x->n;
  const void *src[2];
  for (int k = 0; k < 2; k++)
    src[k] = x->in[k] ? x->in[k] + i0 * x->step[k] * x->in_es : NULL;
  x->k(i1 - i0, src, x->step, x->out + i0 * x->out_es);
}

static am_ew_kernel pick_kernel(int op, int ct, bool stream) {
  if (ct == CT_F32 && !g_force_scalar) {
    am_ew_kernel v = am_ew_simd_f32(op, stream);
    if (v) return v;
  }
  return stream ? NULL : g_info[op].k[ct];
}

am_ew_kernel am_ew_f32_kernel(int op) {
  if (op < 0 || op >= AM_OP_COUNT || g_info[op].out_bool ||
      !(g_info[op].accept & ACC_FLOAT))
    return NULL;
  return pick_kernel(op, CT_F32, false);
}

/* Outputs at least this large (bytes) are written with streaming stores
 * where a kernel has them: beyond the last-level cache the output would
 * be evicted before anyone reads it, and streaming skips reading its old
 * contents in (a third of a unary op's memory traffic). The size is the
 * L3 that cpu0 shares (sysfs, as lscpu shows it; sysconf's figure is the
 * whole package's on some systems), kept within [4, 64] MiB. -1: not
 * yet known. Tests set it (declared here only). */
void am_ew_stream_threshold(int64_t bytes);
static _Atomic int64_t g_stream_bytes = -1;
void am_ew_stream_threshold(int64_t bytes) {
  atomic_store(&g_stream_bytes, bytes);
}

static int64_t l3_bytes(void) {
  long long v = 0;
  char unit = 0;
  FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
  if (f) {
    if (fscanf(f, "%lld%c", &v, &unit) < 1) v = 0;
    fclose(f);
    v *= unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : 1;
  }
#ifdef _SC_LEVEL3_CACHE_SIZE
  if (v <= 0) v = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
  return v > 0 ? (int64_t)v : (int64_t)32 << 20;
}

static int64_t stream_bytes(void) {
  int64_t b = atomic_load_explicit(&g_stream_bytes, memory_order_relaxed);
  if (b >= 0) return b;
  b = l3_bytes();
  b = b < (4 << 20) ? 4 << 20 : b > (64 << 20) ? 64 << 20 : b;
  atomic_store(&g_stream_bytes, b);
  return b;
}

/* Runs kernel k (inputs and result in the compute type of in[0]'s dtype,
 * or bool bytes when out_bool) over out, allocated already: the fast path
 * when every input is contiguous or a single value and no conversion is
 * needed, else the strided walk with per-block conversions. k_stream
 * (may be NULL) is k with streaming stores, for large fast-path outputs
 * that do not overwrite an input. */
static void run_map(am_ew_kernel k, am_ew_kernel k_stream, am_arr *const *in,
                    int nin, am_arr *out, bool out_bool, int64_t grain) {
  am_dtype t = in[0]->m.dtype;
  int ct = ct_of(t);
  bool in_native = t == ct_native[ct];
  bool out_native = out_bool || out->m.dtype == ct_native[ct];
  int64_t in_es = (int64_t)am_dtype_size(t);
  int64_t out_es = (int64_t)am_dtype_size(out->m.dtype);

  ew_fast_ctx f = {k,     out->size, {NULL, NULL},   {0, 0},
                   in_es, out_es,    am_arr_ptr(out)};
  bool fast = in_native && out_native;
  for (int i = 0; fast && i < nin; i++) {
    f.in[i] = am_arr_ptr(in[i]);
    if (in[i]->size == out->size && am_arr_is_contiguous(in[i]))
      f.step[i] = 1;
    else if (in[i]->size == 1)
      f.step[i] = 0;
    else
      fast = false;
  }
  if (fast) {
    if (k_stream && out->size * out_es >= stream_bytes()) {
      bool alias = false;
      for (int i = 0; i < nin; i++)
        alias |= in[i]->buf == out->buf;
      if (!alias) f.k = k_stream;
    }
    int64_t chunks = (out->size + EW_FAST_CHUNK - 1) / EW_FAST_CHUNK;
    am_parallel_for(chunks, grain / EW_FAST_CHUNK, ew_fast, &f);
    return;
  }

  ew_row_ctx rc = {k,          nin,      t,     out->m.dtype, in_native,
                   out_native, out_bool, in_es, out_es};
  char *base[3] = {am_arr_ptr(out)};
  const int64_t *str[3] = {out->strides};
  size_t es[3] = {(size_t)out_es};
  int64_t bst[2][AM_MAX_DIMS];
  for (int i = 0; i < nin; i++) {
    am_broadcast_strides(in[i], out->m.shape, out->m.ndim, bst[i]);
    base[i + 1] = am_arr_ptr(in[i]);
    str[i + 1] = bst[i];
    es[i + 1] = (size_t)in_es;
  }
  am_iter it;
  am_iter_init(&it, out->m.shape, out->m.ndim, nin + 1, base, str, es);
  am_iter_run_parallel(&it, ew_row, &rc, grain);
}

static am_status ew_eval(int op, am_arr *const *in, int nin, am_arr *out) {
  const ew_info *d = &g_info[op];
  am_dtype t = in[0]->m.dtype;
  am_ew_kernel k = pick_kernel(op, ct_of(t), false);
  if (!k) return AM_FAIL(AM_ERR_INTERNAL, "no kernel for %s", am_dtype_name(t));
  am_status s = am_out_alloc_donate(out, in, nin);
  if (s || !out->size) return s;
  run_map(k, pick_kernel(op, ct_of(t), true), in, nin, out, d->out_bool,
          d->heavy ? 1 << 12 : 1 << 15);
  return AM_OK;
}

/* ======================================================================
 *  Public functions: type promotion
 * ====================================================================== */

enum { KIND_BOOL, KIND_INT, KIND_FLOAT };
static int kind_of(am_dtype t) {
  return t == AM_BOOL           ? KIND_BOOL
         : am_dtype_is_float(t) ? KIND_FLOAT
                                : KIND_INT;
}

/* Whether weak integer scalar w's value fits integer dtype t. */
static bool weak_int_fits(const am_arr *w, am_dtype t) {
  if (!w->buf || w->size != 1) return true;
  int64_t v = w->m.dtype == AM_I64 ? *(const int64_t *)am_arr_ptr(w)
                                   : *(const int32_t *)am_arr_ptr(w);
  switch (t) {
  case AM_U8:
    return v >= 0 && v <= UINT8_MAX;
  case AM_I8:
    return v >= INT8_MIN && v <= INT8_MAX;
  case AM_U32:
    return v >= 0 && v <= UINT32_MAX;
  case AM_I32:
    return v >= INT32_MIN && v <= INT32_MAX;
  default:
    return true;
  }
}

/* The dtype n operands promote to. Strong dtypes combine by
 * am_result_type. A weak scalar (am_float, am_int) takes the strong
 * dtype unless it is of a higher kind (a float scalar with an integer or
 * bool array gives float32, an int scalar with a bool array its own
 * int32/int64), or an int scalar does not fit the strong integer dtype
 * (u8 array + 300 gives int32, so values are never silently wrapped). */
static am_dtype promote(am_arr *const *x, int n) {
  am_dtype s = AM_DTYPE_COUNT, w = AM_DTYPE_COUNT;
  for (int i = 0; i < n; i++) {
    am_dtype t = x[i]->m.dtype;
    am_dtype *acc = x[i]->weak ? &w : &s;
    *acc = *acc == AM_DTYPE_COUNT ? t : am_result_type(*acc, t);
  }
  if (w == AM_DTYPE_COUNT) return s;
  if (s == AM_DTYPE_COUNT) return w;
  if (kind_of(w) > kind_of(s)) /* float32, whatever width w is held in */
    return kind_of(w) == KIND_FLOAT ? AM_F32 : w;
  if (kind_of(w) == KIND_INT && kind_of(s) == KIND_INT)
    for (int i = 0; i < n; i++)
      if (x[i]->weak && !weak_int_fits(x[i], s)) return am_result_type(s, w);
  return s;
}

/* Records op on in[0..n), casting in[first..n) to their promoted dtype
 * (float32 at least for float ops). The casts are intermediates: they are
 * created in a private scope that ends before we return, so the caller
 * gets exactly one reference (to its scope, or its own), as for any op. */
static am_array ew_make(int op, am_arr **in, int n, int first) {
  for (int i = 0; i < n; i++)
    if (!in[i])
      return am_error_array(AM_ERR_INVALID_ARG, "%s: input %d is NULL",
                            am_prims[op]->name, i);
  if (am_first_error(in, n)) /* am_op_make propagates it */
    return am_op_make(op, NULL, in, n);
  am_dtype t = promote(in + first, n - first);
  if (g_info[op].to_float && !am_dtype_is_float(t)) t = AM_F32;
  bool cast = false;
  for (int i = first; i < n; i++)
    cast |= in[i]->m.dtype != t;
  if (!cast) return am_op_make(op, NULL, in, n);
  am_scope_push();
  am_arr *cv[3];
  for (int i = 0; i < n; i++)
    cv[i] = (i >= first && in[i]->m.dtype != t) ? am_astype(in[i], t) : in[i];
  am_array r = am_keep(am_op_make(op, NULL, cv, n));
  am_scope_pop();
  return am_scope_own(r);
}

/* ======================================================================
 *  Descriptors and public functions, generated from the lists
 * ====================================================================== */

#define EW_PRIM(NM, E, NIN, FLAGS)                                             \
  static am_status NM##_shapes(const am_meta *const *in, int n_in,             \
                               const void *params, am_meta *out, int n_out) {  \
    return ew_shapes(AM_OP_##E, in, n_in, out);                                \
  }                                                                            \
  static am_status NM##_eval(am_arr *const *in, int n_in, am_arr *const *out,  \
                             int n_out, const void *params) {                  \
    return ew_eval(AM_OP_##E, in, n_in, out[0]);                               \
  }                                                                            \
  const am_prim am_prim_##NM = {                                               \
      .name = #NM,                                                             \
      .n_in = NIN,                                                             \
      .n_out = 1,                                                              \
      .flags = AM_OPF_ELEMENTWISE | (FLAGS),                                   \
      .output_shapes = NM##_shapes,                                            \
      .eval_cpu = NM##_eval,                                                   \
  };

#define EW_PUBLIC_UNARY(NM, E)                                                 \
  am_array am_##NM(am_array x) {                                               \
    return ew_make(AM_OP_##E, &x, 1, 0);                                       \
  }
#define EW_PUBLIC_BINARY(NM, E)                                                \
  am_array am_##NM(am_array a, am_array b) {                                   \
    am_arr *in[2] = {a, b};                                                    \
    return ew_make(AM_OP_##E, in, 2, 0);                                       \
  }

#define DEF_KEEP_UNARY(NM, E, ACC, FE, IE)                                     \
  EW_PRIM(NM, E, 1, 0) EW_PUBLIC_UNARY(NM, E)
#define DEF_FLOAT_UNARY(NM, E, HEAVY, FE)                                      \
  EW_PRIM(NM, E, 1, 0) EW_PUBLIC_UNARY(NM, E)
#define DEF_KEEP_BINARY(NM, E, FL, FE, IE)                                     \
  EW_PRIM(NM, E, 2, FL) EW_PUBLIC_BINARY(NM, E)
#define DEF_BOOL_BINARY(NM, E, FL, EX)                                         \
  EW_PRIM(NM, E, 2, FL) EW_PUBLIC_BINARY(NM, E)

EW_KEEP_UNARY(DEF_KEEP_UNARY)
EW_FLOAT_UNARY(DEF_FLOAT_UNARY)
EW_KEEP_BINARY(DEF_KEEP_BINARY)
EW_BOOL_BINARY(DEF_BOOL_BINARY)
EW_PRIM(logical_not, LOGICAL_NOT, 1, 0)
EW_PUBLIC_UNARY(logical_not, LOGICAL_NOT)
EW_PRIM(div, DIV, 2, 0)
EW_PUBLIC_BINARY(div, DIV)

/* --------------------------------------------------------------- where */

static am_status where_shapes(const am_meta *const *in, int n_in,
                              const void *params, am_meta *out, int n_out) {
  if (in[1]->dtype != in[2]->dtype)
    return AM_FAIL(AM_ERR_DTYPE, "x and y must share one dtype (got %s and %s)",
                   am_dtype_name(in[1]->dtype), am_dtype_name(in[2]->dtype));
  out->dtype = in[1]->dtype;
  return broadcast_all(in, 3, out);
}

#define TRUTH_LOOP(ST, TEST)                                                   \
  do {                                                                         \
    for (int64_t i = 0; i < n; i++) {                                          \
      ST v = *(const ST *)(src + i * s);                                       \
      d[i] = (TEST);                                                           \
    }                                                                          \
  } while (0)

/* n elements of dtype t (byte stride s) tested != 0 into bytes. A nan is
 * true, -0.0 false (f16/bf16 tested on their bits for the same). */
static void truth_block(am_dtype t, const char *src, int64_t s, int64_t n,
                        uint8_t *d) {
  switch (t) {
  case AM_BOOL:
  case AM_U8:
  case AM_I8:
    TRUTH_LOOP(uint8_t, v != 0);
    break;
  case AM_U32:
  case AM_I32:
    TRUTH_LOOP(uint32_t, v != 0);
    break;
  case AM_I64:
    TRUTH_LOOP(uint64_t, v != 0);
    break;
  case AM_F16:
  case AM_BF16:
    TRUTH_LOOP(uint16_t, (v & 0x7fff) != 0);
    break;
  case AM_F32:
    TRUTH_LOOP(float, v != 0);
    break;
  case AM_F64:
    TRUTH_LOOP(double, v != 0);
    break;
  default:
    break;
  }
}

typedef struct {
  am_dtype cond_dt;
  size_t es; /* element size of x, y and the output */
} where_ctx;

#define SELECT_LOOP(T)                                                         \
  for (int64_t i = 0; i < m; i++)                                              \
    *(T *)(o + i * s[0]) =                                                     \
        c[i] ? *(const T *)(a + i * s[2]) : *(const T *)(b + i * s[3]);

/* Operands: out, cond, x, y. Pure selection: bytes move, no arithmetic. */
static void where_row(void *ctx, int64_t n, char **p, const int64_t *s) {
  const where_ctx *x = ctx;
  uint8_t c[EW_BLOCK];
  for (int64_t off = 0; off < n; off += EW_BLOCK) {
    int64_t m = n - off < EW_BLOCK ? n - off : EW_BLOCK;
    truth_block(x->cond_dt, p[1] + off * s[1], s[1], m, c);
    char *o = p[0] + off * s[0];
    const char *a = p[2] + off * s[2], *b = p[3] + off * s[3];
    switch (x->es) {
    case 1:
      SELECT_LOOP(uint8_t) break;
    case 2:
      SELECT_LOOP(uint16_t) break;
    case 4:
      SELECT_LOOP(uint32_t) break;
    default:
      SELECT_LOOP(uint64_t) break;
    }
  }
}

static am_status where_eval(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  am_arr *o = out[0];
  am_status s = am_out_alloc_donate(o, in, 3);
  if (s || !o->size) return s;
  char *base[4] = {am_arr_ptr(o)};
  const int64_t *str[4] = {o->strides};
  size_t es[4] = {am_dtype_size(o->m.dtype)};
  int64_t bst[3][AM_MAX_DIMS];
  for (int i = 0; i < 3; i++) {
    am_broadcast_strides(in[i], o->m.shape, o->m.ndim, bst[i]);
    base[i + 1] = am_arr_ptr(in[i]);
    str[i + 1] = bst[i];
    es[i + 1] = am_dtype_size(in[i]->m.dtype);
  }
  am_iter it;
  am_iter_init(&it, o->m.shape, o->m.ndim, 4, base, str, es);
  where_ctx c = {in[0]->m.dtype, es[0]};
  am_iter_run_parallel(&it, where_row, &c, 1 << 15);
  return AM_OK;
}

const am_prim am_prim_where = {
    .name = "where",
    .n_in = 3,
    .n_out = 1,
    .flags = AM_OPF_ELEMENTWISE,
    .output_shapes = where_shapes,
    .eval_cpu = where_eval,
};

am_array am_where(am_array cond, am_array a, am_array b) {
  am_arr *in[3] = {cond, a, b};
  return ew_make(AM_OP_WHERE, in, 3, 1);
}

/* -------------------------------------------------------------- astype */

static am_status astype_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  out[0] = *in[0];
  out[0].dtype = ((const astype_params *)params)->dtype;
  return AM_OK;
}

/* Casts between dtypes of one compute type (among f16/bf16/f32, or among
 * bool and the integers, or f64 to f64) are a copy kernel between the
 * block conversions: the same rounding/wrapping as am_convert, but
 * strided inputs run block-wise on every thread. */
UN_KERNEL(copy_f32, float, float, x)
UN_KERNEL(copy_f64, double, double, x)
UN_KERNEL(copy_i64, int64_t, int64_t, x)
static const am_ew_kernel k_copy[CT_COUNT] = {copy_f32, copy_f64, copy_i64};

static am_status astype_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  am_arr *o = out[0];
  am_status s = am_out_alloc_donate(o, in, 1);
  if (s || !o->size) return s;
  /* A same-dtype cast that took over its input's buffer is done already
   * (copying a buffer onto itself would be an overlapping memcpy). */
  if (o->buf == in[0]->buf && o->m.dtype == in[0]->m.dtype) return AM_OK;
  int ct = ct_of(in[0]->m.dtype);
  if (ct == ct_of(o->m.dtype))
    run_map(k_copy[ct], NULL, in, 1, o, false, 1 << 15);
  else
    am_copy_to_contig(in[0], o->buf->data, o->m.dtype);
  return AM_OK;
}

const am_prim am_prim_astype = {
    .name = "astype",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_ELEMENTWISE,
    .params_size = sizeof(astype_params),
    .output_shapes = astype_shapes,
    .eval_cpu = astype_eval,
};

am_array am_astype(am_array x, am_dtype dtype) {
  if ((unsigned)dtype >= AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "astype: invalid dtype %d", (int)dtype);
  astype_params p;
  memset(&p, 0, sizeof p);
  p.dtype = dtype;
  return am_op_make(AM_OP_ASTYPE, &p, &x, 1);
}
