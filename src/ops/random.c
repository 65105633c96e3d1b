/*
 * random.c — counter-based random numbers: Threefry-2x32 with 20 rounds,
 * the generator of JAX and MLX, laid out as MLX's RandomBits so that
 * am_random_bits / am_random_uniform reproduce mx.random.bits /
 * mx.random.uniform bit for bit for the same key.
 *
 * A key is data (a uint32 [2] input), so new key values never change a
 * graph. Each output word is a pure function of (key, its index, the
 * output size): MLX hashes counter pairs (j, h + odd + j) for j < h =
 * n / 2 and writes the two halves of each hash to words j and h + odd + j;
 * with n odd, word h is the first half of hash(h, 0). So the result is the
 * same for any thread count, and tasks split the pairs freely.
 *
 * Two primitives: random_bits (a literal shape, guarded by compile like
 * full) and random_like (the shape of a second input, taken anew at every
 * replay). Their dtype param picks what a word becomes: uint32 keeps the
 * bits; a float type gives MLX's uniform in [0, 1): float(bits) * 2^-32
 * in float32, clamped to the largest value below 1 of the target type,
 * then rounded to it (so 1.0 never appears).
 */
#include "random_params.h"

#include <math.h>

/* ------------------------------------------------------------- cipher */

#define TF_ROTL(x, r) (((x) << (r)) | ((x) >> (32 - (r))))
#define TF_MIX(r)                                                              \
  x0 += x1;                                                                    \
  x1 = TF_ROTL(x1, r);                                                         \
  x1 ^= x0
#define TF_ROUNDS_A                                                            \
  TF_MIX(13);                                                                  \
  TF_MIX(15);                                                                  \
  TF_MIX(26);                                                                  \
  TF_MIX(6)
#define TF_ROUNDS_B                                                            \
  TF_MIX(17);                                                                  \
  TF_MIX(29);                                                                  \
  TF_MIX(16);                                                                  \
  TF_MIX(24)
#define TF_INJECT(i)                                                           \
  x0 += ks[((i) + 1) % 3];                                                     \
  x1 += ks[((i) + 2) % 3] + (i) + 1
/* Threefry-2x32, 20 rounds, of the counters (x0, x1) in place under the
 * key schedule ks = {k0, k1, k0 ^ k1 ^ 0x1BD11BDA} (as MLX's
 * threefry2x32_hash). */
#define TF_BODY                                                                \
  x0 += ks[0];                                                                 \
  x1 += ks[1];                                                                 \
  TF_ROUNDS_A;                                                                 \
  TF_INJECT(0);                                                                \
  TF_ROUNDS_B;                                                                 \
  TF_INJECT(1);                                                                \
  TF_ROUNDS_A;                                                                 \
  TF_INJECT(2);                                                                \
  TF_ROUNDS_B;                                                                 \
  TF_INJECT(3);                                                                \
  TF_ROUNDS_A;                                                                 \
  TF_INJECT(4)

static inline void threefry2x32(const uint32_t ks[3], uint32_t c0, uint32_t c1,
                                uint32_t *o0, uint32_t *o1) {
  uint32_t x0 = c0, x1 = c1;
  TF_BODY;
  *o0 = x0;
  *o1 = x1;
}

/* ------------------------------------------------ words to output values */

/* MLX's uniform: bits / float32(UINT32_MAX) (which is 2^32: exact scaling),
 * clamped below 1 in the target type. */
static inline float unit_f32(uint32_t b, float below_one) {
  float u = (float)b * 0x1p-32f;
  return u < below_one ? u : below_one;
}

static inline uint32_t conv_u32(uint32_t b) {
  return b;
}
static inline float conv_f32(uint32_t b) {
  return unit_f32(b, 0x1.fffffep-1f);
}
static inline uint16_t conv_f16(uint32_t b) {
  return am_f32_to_f16(unit_f32(b, 0x1.ffcp-1f)); /* f16 0x3bff */
}
static inline uint16_t conv_bf16(uint32_t b) {
  return am_f32_to_bf16(unit_f32(b, 0x1.fep-1f)); /* bf16 0x3f7f */
}

typedef struct {
  uint32_t ks[3];
  void *out;
  int64_t second; /* h + odd: where the second halves go */
} rb_job;

/* The bulk: 8 counter pairs at a time in GCC/clang vector registers (SSE2,
 * or AVX2 in the _avx2 kernels), the key schedule broadcast once. */
#define TF_LANES 8
#if defined(__GNUC__)
typedef uint32_t tf_vec __attribute__((vector_size(4 * TF_LANES)));
typedef float tf_vecf __attribute__((vector_size(4 * TF_LANES)));
/* Stores of 8 words to lo + s and hi + s: uint32 as they are, float32
 * converted in vector registers (as conv_f32), the half types one by one. */
#define RB_STORE_u32(x0, x1)                                                   \
  memcpy(lo + s, &x0, sizeof x0);                                              \
  memcpy(hi + s, &x1, sizeof x1)
#define RB_STORE_f32(x0, x1)                                                   \
  {                                                                            \
    tf_vecf u0, u1;                                                            \
    RB_UNIT_VEC(u0, x0);                                                       \
    RB_UNIT_VEC(u1, x1);                                                       \
    memcpy(lo + s, &u0, sizeof u0);                                            \
    memcpy(hi + s, &u1, sizeof u1);                                            \
  }
#define RB_STORE_SCALAR(SUF, x0, x1)                                           \
  {                                                                            \
    uint32_t y0[TF_LANES], y1[TF_LANES];                                       \
    memcpy(y0, &x0, sizeof x0);                                                \
    memcpy(y1, &x1, sizeof x1);                                                \
    for (int t = 0; t < TF_LANES; t++) {                                       \
      lo[s + t] = conv_##SUF(y0[t]);                                           \
      hi[s + t] = conv_##SUF(y1[t]);                                           \
    }                                                                          \
  }
#define RB_STORE_f16(x0, x1) RB_STORE_SCALAR(f16, x0, x1)
#define RB_STORE_bf16(x0, x1) RB_STORE_SCALAR(bf16, x0, x1)
/* u = conv_f32 of 8 words x: the uint32 -> float conversion rounds to
 * nearest as the scalar cast does. A macro, so it takes the kernel's
 * target. */
#define RB_UNIT_VEC(u, x)                                                      \
  {                                                                            \
    const tf_vecf zf_ = {0}, top_ = zf_ + 0x1.fffffep-1f;                      \
    tf_vecf v_ = __builtin_convertvector((x), tf_vecf) * 0x1p-32f;             \
    tf_vec m_ = (tf_vec)(v_ < top_);                                           \
    u = (tf_vecf)(((tf_vec)v_ & m_) | ((tf_vec)top_ & ~m_));                   \
  }
#define RB_VEC_LOOP(SUF)                                                       \
  {                                                                            \
    const tf_vec z = {0}, lane = {0, 1, 2, 3, 4, 5, 6, 7};                     \
    const tf_vec ks[3] = {z + j->ks[0], z + j->ks[1], z + j->ks[2]};           \
    for (; s + TF_LANES <= e; s += TF_LANES) {                                 \
      tf_vec x0 = lane + (uint32_t)s, x1 = lane + (uint32_t)(s + j->second);   \
      TF_BODY;                                                                 \
      RB_STORE_##SUF(x0, x1);                                                  \
    }                                                                          \
  }
#else
#define RB_VEC_LOOP(SUF)
#endif

/* Pairs [b, e): word j and word j + second. */
#define RB_KERNEL(NAME, ATTR, SUF, T)                                          \
  ATTR static void NAME(void *ctx, int64_t b, int64_t e) {                     \
    const rb_job *j = ctx;                                                     \
    T *lo = (T *)j->out, *hi = lo + j->second;                                 \
    int64_t s = b;                                                             \
    RB_VEC_LOOP(SUF)                                                           \
    for (; s < e; s++) {                                                       \
      uint32_t w0, w1;                                                         \
      threefry2x32(j->ks, (uint32_t)s, (uint32_t)(s + j->second), &w0, &w1);   \
      lo[s] = conv_##SUF(w0);                                                  \
      hi[s] = conv_##SUF(w1);                                                  \
    }                                                                          \
  }
#define RB_KERNELS(ATTR, SFX)                                                  \
  RB_KERNEL(rb_u32##SFX, ATTR, u32, uint32_t)                                  \
  RB_KERNEL(rb_f32##SFX, ATTR, f32, float)                                     \
  RB_KERNEL(rb_f16##SFX, ATTR, f16, uint16_t)                                  \
  RB_KERNEL(rb_bf16##SFX, ATTR, bf16, uint16_t)                                \
  static const am_range_fn rb_kernels##SFX[4] = {rb_u32##SFX, rb_f32##SFX,     \
                                                 rb_f16##SFX, rb_bf16##SFX};
RB_KERNELS(, )
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RB_HAVE_AVX2 1
RB_KERNELS(__attribute__((target("avx2"))), _avx2)
#endif

/* The kernel for dtype t (u32, f32, f16, bf16), AVX2 when the CPU has it. */
static am_range_fn rb_kernel(am_dtype t) {
  int i = t == AM_U32 ? 0 : t == AM_F32 ? 1 : t == AM_F16 ? 2 : 3;
#ifdef RB_HAVE_AVX2
  if (am_cpu_has_avx2()) return rb_kernels_avx2[i];
#endif
  return rb_kernels[i];
}

/* ---------------------------------------------------------- primitives */

static bool random_dtype_ok(am_dtype t) {
  return t == AM_U32 || t == AM_F32 || t == AM_F16 || t == AM_BF16;
}

/* The key and dtype checks both primitives share. */
static am_status random_check(const am_meta *key, am_dtype dtype) {
  char buf[64];
  if (key->dtype != AM_U32)
    return AM_FAIL(AM_ERR_DTYPE, "the key must be uint32 (got %s)",
                   am_meta_str(key, buf, sizeof buf));
  if (key->ndim != 1 || key->shape[0] != 2)
    return AM_FAIL(AM_ERR_SHAPE, "the key must have shape [2] (got %s)",
                   am_meta_str(key, buf, sizeof buf));
  if (!random_dtype_ok(dtype))
    return AM_FAIL(AM_ERR_DTYPE,
                   "dtype %s is not uint32 (bits) or float32, float16, "
                   "bfloat16 (uniform)",
                   (unsigned)dtype < AM_DTYPE_COUNT ? am_dtype_name(dtype)
                                                    : "invalid");
  return AM_OK;
}

/* Counters are 32-bit (as MLX's): at most 2^32 - 1 words. */
static am_status random_size_check(const am_meta *m) {
  if (am_meta_size(m) > (int64_t)UINT32_MAX)
    return AM_FAIL(AM_ERR_SHAPE, "%lld elements is too many (max 2^32 - 1)",
                   (long long)am_meta_size(m));
  return AM_OK;
}

static am_status random_bits_shapes(const am_meta *const *in, int n_in,
                                    const void *params, am_meta *out,
                                    int n_out) {
  const random_params *p = params;
  am_status s = random_check(in[0], p->dtype);
  if (s) return s;
  out[0].dtype = p->dtype;
  out[0].ndim = p->ndim;
  memcpy(out[0].shape, p->shape, sizeof p->shape);
  return random_size_check(&out[0]);
}

static am_status random_like_shapes(const am_meta *const *in, int n_in,
                                    const void *params, am_meta *out,
                                    int n_out) {
  const random_params *p = params;
  am_status s = random_check(in[0], p->dtype);
  if (s) return s;
  out[0] = *in[1];
  out[0].dtype = p->dtype;
  return random_size_check(&out[0]);
}

static am_status random_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  am_arr *o = out[0];
  /* random_like never reads `like`: its buffer may hold the output. */
  am_status s = n_in > 1 ? am_out_alloc_donate(o, &in[1], 1) : am_out_alloc(o);
  if (s || !o->size) return s;
  const am_arr *key = in[0];
  const uint32_t *kp = (const uint32_t *)am_arr_ptr(key);
  rb_job j = {.out = o->buf->data};
  j.ks[0] = kp[0];
  j.ks[1] = kp[key->strides[0]];
  j.ks[2] = j.ks[0] ^ j.ks[1] ^ 0x1BD11BDAu;
  int64_t n = o->size, h = n / 2, odd = n & 1;
  j.second = h + odd;
  am_parallel_for(h, 1 << 13, rb_kernel(o->m.dtype), &j);
  if (odd) { /* the middle word: first half of hash(h, 0) */
    uint32_t w0, w1;
    threefry2x32(j.ks, (uint32_t)h, 0, &w0, &w1);
    switch (o->m.dtype) {
    case AM_U32:
      ((uint32_t *)j.out)[h] = w0;
      break;
    case AM_F32:
      ((float *)j.out)[h] = conv_f32(w0);
      break;
    case AM_F16:
      ((uint16_t *)j.out)[h] = conv_f16(w0);
      break;
    default:
      ((uint16_t *)j.out)[h] = conv_bf16(w0);
      break;
    }
  }
  return AM_OK;
}

static int random_bits_literals(const void *params, int64_t *out, int max) {
  const random_params *p = params;
  return am_literals_add(p->shape, p->ndim, out, 0, max);
}

static void random_params_str(const void *params, char *buf, size_t n) {
  const random_params *p = params;
  snprintf(buf, n, "%s", p->dtype == AM_U32 ? "bits" : am_dtype_name(p->dtype));
}

const am_prim am_prim_random_bits = {
    .name = "random_bits",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_SHAPE_DEPENDENT,
    .params_size = sizeof(random_params),
    .output_shapes = random_bits_shapes,
    .eval_cpu = random_eval,
    .params_str = random_params_str,
    .literal_sizes = random_bits_literals,
};

const am_prim am_prim_random_like = {
    .name = "random_like",
    .n_in = 2,
    .n_out = 1,
    .params_size = sizeof(random_params),
    .output_shapes = random_like_shapes,
    .eval_cpu = random_eval,
    .params_str = random_params_str,
};

/* ---------------------------------------------------------- public API */

static am_array random_make(const char *name, am_array key,
                            const int64_t *shape, int ndim, am_dtype dtype) {
  random_params p;
  memset(&p, 0, sizeof p);
  if (ndim < 0 || ndim > AM_MAX_DIMS || (ndim && !shape))
    return am_error_array(AM_ERR_SHAPE, "%s: bad shape (ndim %d)", name, ndim);
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0)
      return am_error_array(AM_ERR_SHAPE, "%s: negative size %lld on axis %d",
                            name, (long long)shape[i], i);
  p.dtype = dtype;
  p.ndim = ndim;
  if (ndim) memcpy(p.shape, shape, (size_t)ndim * sizeof *shape);
  return am_op_make(AM_OP_RANDOM_BITS, &p, &key, 1);
}

/* Public dtype check, so that the message names the function called. */
static bool uniform_dtype_ok(am_dtype t) {
  return t == AM_F32 || t == AM_F16 || t == AM_BF16;
}

am_array am_random_bits(am_array key, const int64_t *shape, int ndim) {
  return random_make("random_bits", key, shape, ndim, AM_U32);
}

am_array am_random_uniform(am_array key, const int64_t *shape, int ndim,
                           am_dtype dtype) {
  if (!uniform_dtype_ok(dtype))
    return am_error_array(
        AM_ERR_DTYPE,
        "random_uniform: dtype %s is not float32, float16 "
        "or bfloat16",
        (unsigned)dtype < AM_DTYPE_COUNT ? am_dtype_name(dtype) : "invalid");
  return random_make("random_uniform", key, shape, ndim, dtype);
}

am_array am_random_uniform_like(am_array key, am_array like, am_dtype dtype) {
  if (!uniform_dtype_ok(dtype))
    return am_error_array(
        AM_ERR_DTYPE,
        "random_uniform_like: dtype %s is not float32, "
        "float16 or bfloat16",
        (unsigned)dtype < AM_DTYPE_COUNT ? am_dtype_name(dtype) : "invalid");
  random_params p;
  memset(&p, 0, sizeof p);
  p.dtype = dtype;
  am_arr *in[2] = {key, like};
  return am_op_make(AM_OP_RANDOM_LIKE, &p, in, 2);
}
