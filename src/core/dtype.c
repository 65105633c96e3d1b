/* dtype.c — element types: sizes, names, promotion and conversion. */
#include "internal.h"

#include <stdlib.h>

#include <math.h>

static const struct {
  const char *name;
  size_t size;
} g_dt[AM_DTYPE_COUNT] = {
    [AM_BOOL] = {"bool", 1},   [AM_U8] = {"uint8", 1},
    [AM_I8] = {"int8", 1},     [AM_U32] = {"uint32", 4},
    [AM_I32] = {"int32", 4},   [AM_I64] = {"int64", 8},
    [AM_F16] = {"float16", 2}, [AM_BF16] = {"bfloat16", 2},
    [AM_F32] = {"float32", 4}, [AM_F64] = {"float64", 8},
};

size_t am_dtype_size(am_dtype t) {
  return (unsigned)t < AM_DTYPE_COUNT ? g_dt[t].size : 0;
}
const char *am_dtype_name(am_dtype t) {
  return (unsigned)t < AM_DTYPE_COUNT ? g_dt[t].name : "invalid";
}
bool am_dtype_is_float(am_dtype t) {
  return t == AM_F16 || t == AM_BF16 || t == AM_F32 || t == AM_F64;
}
bool am_dtype_is_int(am_dtype t) {
  return t == AM_U8 || t == AM_I8 || t == AM_U32 || t == AM_I32 || t == AM_I64;
}

static bool is_unsigned(am_dtype t) {
  return t == AM_U8 || t == AM_U32;
}

am_dtype am_result_type(am_dtype a, am_dtype b) {
  if (a == b) return a;
  if (a == AM_BOOL) return b;
  if (b == AM_BOOL) return a;
  bool fa = am_dtype_is_float(a), fb = am_dtype_is_float(b);
  if (fa && fb) {
    if (a == AM_F64 || b == AM_F64) return AM_F64;
    if (a == AM_F32 || b == AM_F32) return AM_F32;
    return AM_F32; /* f16 with bf16 */
  }
  if (fa) return a;
  if (fb) return b;
  /* both integers */
  size_t sa = g_dt[a].size, sb = g_dt[b].size;
  if (is_unsigned(a) == is_unsigned(b)) return sa >= sb ? a : b;
  am_dtype u = is_unsigned(a) ? a : b, s = is_unsigned(a) ? b : a;
  if (g_dt[s].size > g_dt[u].size) return s; /* signed holds unsigned */
  /* unsigned at least as wide as signed: next wider signed type */
  return g_dt[u].size == 1 ? AM_I32 : AM_I64;
}

double am_load_f64(const void *p, am_dtype t) {
  switch (t) {
  case AM_BOOL:
    return *(const uint8_t *)p ? 1.0 : 0.0;
  case AM_U8:
    return *(const uint8_t *)p;
  case AM_I8:
    return *(const int8_t *)p;
  case AM_U32:
    return *(const uint32_t *)p;
  case AM_I32:
    return *(const int32_t *)p;
  case AM_I64:
    return (double)*(const int64_t *)p;
  case AM_F16:
    return am_f16_to_f32(*(const uint16_t *)p);
  case AM_BF16:
    return am_bf16_to_f32(*(const uint16_t *)p);
  case AM_F32:
    return *(const float *)p;
  case AM_F64:
    return *(const double *)p;
  default:
    return 0;
  }
}

/* Float to integer conversions saturate (NaN -> 0) so that no input is
 * undefined behaviour; in range they truncate toward zero as C does. */
static int64_t sat_i64(double v, double lo, double hi) {
  if (v != v) return 0;
  if (v <= lo) return (int64_t)lo;
  if (v >= hi) return (int64_t)hi;
  return (int64_t)v;
}

void am_store_f64(void *p, am_dtype t, double v) {
  switch (t) {
  case AM_BOOL:
    *(uint8_t *)p = v != 0;
    break;
  case AM_U8:
    *(uint8_t *)p = (uint8_t)sat_i64(v, 0, 255);
    break;
  case AM_I8:
    *(int8_t *)p = (int8_t)sat_i64(v, -128, 127);
    break;
  case AM_U32:
    *(uint32_t *)p = (uint32_t)sat_i64(v, 0, 4294967295.0);
    break;
  case AM_I32:
    *(int32_t *)p = (int32_t)sat_i64(v, -2147483648.0, 2147483647.0);
    break;
  case AM_I64:
    *(int64_t *)p = (v != v)                      ? 0
                    : v >= 9223372036854775807.0  ? INT64_MAX
                    : v <= -9223372036854775808.0 ? INT64_MIN
                                                  : (int64_t)v;
    break;
  case AM_F16:
    *(uint16_t *)p = am_f32_to_f16((float)v);
    break;
  case AM_BF16:
    *(uint16_t *)p = am_f32_to_bf16((float)v);
    break;
  case AM_F32:
    *(float *)p = (float)v;
    break;
  case AM_F64:
    *(double *)p = v;
    break;
  default:
    break;
  }
}

/* ---- contiguous conversion: typed loops for the common pairs ---- */

#define CONV_LOOP(ST, DT, EXPR)                                                \
  do {                                                                         \
    const ST *s_ = (const ST *)src;                                            \
    DT *d_ = (DT *)dst;                                                        \
    for (int64_t i = 0; i < n; i++) {                                          \
      ST x = s_[i];                                                            \
      d_[i] = (EXPR);                                                          \
    }                                                                          \
  } while (0)

static bool int_exact(am_dtype t) {
  return am_dtype_is_int(t) || t == AM_BOOL;
}

int64_t am_load_i64(const void *p, am_dtype t) {
  switch (t) {
  case AM_BOOL:
    return *(const uint8_t *)p != 0;
  case AM_U8:
    return *(const uint8_t *)p;
  case AM_I8:
    return *(const int8_t *)p;
  case AM_U32:
    return *(const uint32_t *)p;
  case AM_I32:
    return *(const int32_t *)p;
  case AM_I64:
    return *(const int64_t *)p;
  default: /* floats truncate toward zero, saturating like astype */
  {
    int64_t v;
    am_store_f64(&v, AM_I64, am_load_f64(p, t));
    return v;
  }
  }
}

static void store_i64(char *p, am_dtype t, int64_t v) {
  switch (t) { /* integer to integer wraps, as C and NumPy do */
  case AM_BOOL:
    *(uint8_t *)p = v != 0;
    break;
  case AM_U8:
    *(uint8_t *)p = (uint8_t)v;
    break;
  case AM_I8:
    *(int8_t *)p = (int8_t)(uint8_t)v;
    break;
  case AM_U32:
    *(uint32_t *)p = (uint32_t)v;
    break;
  case AM_I32:
    *(int32_t *)p = (int32_t)(uint32_t)v;
    break;
  default:
    *(int64_t *)p = v;
    break;
  }
}

void am_convert(const void *src, am_dtype st, void *dst, am_dtype dt,
                int64_t n) {
  if (st == dt) {
    memcpy(dst, src, (size_t)n * am_dtype_size(st));
    return;
  }
  if (st == AM_F32 && dt == AM_F16)
    CONV_LOOP(float, uint16_t, am_f32_to_f16(x));
  else if (st == AM_F16 && dt == AM_F32)
    CONV_LOOP(uint16_t, float, am_f16_to_f32(x));
  else if (st == AM_F32 && dt == AM_BF16)
    CONV_LOOP(float, uint16_t, am_f32_to_bf16(x));
  else if (st == AM_BF16 && dt == AM_F32)
    CONV_LOOP(uint16_t, float, am_bf16_to_f32(x));
  else if (st == AM_F32 && dt == AM_F64)
    CONV_LOOP(float, double, (double)x);
  else if (st == AM_F64 && dt == AM_F32)
    CONV_LOOP(double, float, (float)x);
  else if (st == AM_I32 && dt == AM_F32)
    CONV_LOOP(int32_t, float, (float)x);
  else if (int_exact(st) && int_exact(dt)) {
    size_t ss = am_dtype_size(st), ds = am_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
      store_i64((char *)dst + i * ds, dt,
                am_load_i64((const char *)src + i * ss, st));
  } else {
    size_t ss = am_dtype_size(st), ds = am_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
      am_store_f64((char *)dst + i * ds, dt,
                   am_load_f64((const char *)src + i * ss, st));
  }
}

/* ---- strided copy into row-major, with conversion ---- */

typedef struct {
  am_dtype st, dt;
} copy_ctx;

static void copy_row(void *ctx, int64_t n, char **p, const int64_t *s) {
  const copy_ctx *c = ctx;
  size_t ss = am_dtype_size(c->st), ds = am_dtype_size(c->dt);
  if (s[0] == (int64_t)ss && s[1] == (int64_t)ds) {
    am_convert(p[0], c->st, p[1], c->dt, n);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    am_convert(p[0] + i * s[0], c->st, p[1] + i * s[1], c->dt, 1);
}

am_status am_copy_to_contig(const am_arr *a, void *dst, am_dtype dt) {
  if (a->size == 0) return AM_OK;
  if (a->buf->device != AM_DEVICE_CPU) {
    /* Device data: the bytes its view spans come down first. */
    const am_backend *be = am_backend_get(a->buf->device);
    void *host = malloc(a->buf->bytes ? a->buf->bytes : 1);
    if (!host || be->download(host, a->buf->data, a->buf->bytes)) {
      free(host);
      return am_set_error(host ? AM_ERR_DEVICE : AM_ERR_OOM,
                          "reading a %s array: %s",
                          am_device_name(a->buf->device), am_last_error());
    }
    am_buffer hb = {.data = host, .bytes = a->buf->bytes};
    am_arr h = *a;
    h.buf = &hb;
    am_copy_to_contig(&h, dst, dt);
    free(host);
    return AM_OK;
  }
  int64_t cst[AM_MAX_DIMS];
  am_contig_strides(a->m.shape, a->m.ndim, cst);
  char *base[2] = {am_arr_ptr(a), dst};
  const int64_t *str[2] = {a->strides, cst};
  size_t es[2] = {am_dtype_size(a->m.dtype), am_dtype_size(dt)};
  am_iter it;
  am_iter_init(&it, a->m.shape, a->m.ndim, 2, base, str, es);
  copy_ctx c = {a->m.dtype, dt};
  am_iter_run_parallel(&it, copy_row, &c, 1 << 16);
  return AM_OK;
}
