/*
 * test_random — random_bits / random_uniform / random_uniform_like: MLX's
 * stream bit for bit (goldens from scripts/golden_sample.py, themselves
 * checked against MLX), the Threefry known answer, an independent C
 * Threefry on a large multithreaded output, thread-count independence,
 * uniformity with fixed keys (deterministic), never 1.0, strided keys,
 * shapeless compile, and errors.
 */
#include "test_internal.h"

static am_array key_of(uint32_t a, uint32_t b) {
  uint32_t k[2] = {a, b};
  return am_array_new_data(k, (int64_t[]){2}, 1, AM_U32);
}

/* ------------------------------------------------- reference Threefry */

static uint32_t rl(uint32_t x, int r) {
  return (x << r) | (x >> (32 - r));
}

/* Threefry-2x32-20 written from the Random123 specification. */
static void ref_threefry(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1,
                         uint32_t out[2]) {
  static const int rot[8] = {13, 15, 26, 6, 17, 29, 16, 24};
  uint32_t ks[3] = {k0, k1, 0x1BD11BDAu ^ k0 ^ k1};
  uint32_t x0 = c0 + ks[0], x1 = c1 + ks[1];
  for (int r = 0; r < 20; r++) {
    x0 += x1;
    x1 = rl(x1, rot[r % 8]) ^ x0;
    if (r % 4 == 3) {
      int s = r / 4 + 1;
      x0 += ks[s % 3];
      x1 += ks[(s + 1) % 3] + (uint32_t)s;
    }
  }
  out[0] = x0;
  out[1] = x1;
}

/* Word i of MLX's layout for n words. */
static uint32_t ref_word(uint32_t k0, uint32_t k1, int64_t n, int64_t i) {
  int64_t h = n / 2, odd = n & 1;
  uint32_t o[2];
  if (i < h) {
    ref_threefry(k0, k1, (uint32_t)i, (uint32_t)(i + h + odd), o);
    return o[0];
  }
  if (odd && i == h) {
    ref_threefry(k0, k1, (uint32_t)h, 0, o);
    return o[0];
  }
  ref_threefry(k0, k1, (uint32_t)(i - h - odd), (uint32_t)i, o);
  return o[1];
}

static void test_known_answer(void) {
  /* Random123 / JAX known answer: key 0, counter 0 -> 0x6b200159
   * 0x99ba4efe; one word of MLX's layout is hash(key, (0, 0)).first. */
  uint32_t o[2];
  ref_threefry(0, 0, 0, 0, o);
  CHECK(o[0] == 0x6b200159u && o[1] == 0x99ba4efeu, "reference KAT %08x %08x",
        o[0], o[1]);
  am_scope_push();
  am_array b = am_random_bits(key_of(0, 0), (int64_t[]){1}, 1);
  uint32_t w = 0;
  CHECK(am_array_read(b, AM_U32, &w, 1) == AM_OK && w == 0x6b200159u,
        "KAT word %08x", w);
  am_scope_pop();
}

/* ---------------------------------------------------------- goldens */

static void test_goldens(const t_golden *g) {
  int n_cases = 0;
  for (int c = 0; g && c < g->n; c++) {
    const t_gcase *gc = &g->cases[c];
    if (strncmp(gc->name, "rand_", 5)) continue;
    n_cases++;
    am_scope_push();
    const t_garr *key = t_gcase_arr(gc, "key"), *bits = t_gcase_arr(gc, "bits");
    am_array k = t_garr_array(key);
    char what[160];
    snprintf(what, sizeof what, "%s bits", gc->name);
    t_expect_garr(am_random_bits(k, bits->shape, bits->ndim), bits, 0, 0, what);
    static const char *names[3] = {"f32", "f16", "bf16"};
    static const am_dtype dts[3] = {AM_F32, AM_F16, AM_BF16};
    for (int t = 0; t < 3; t++) {
      const t_garr *want = t_gcase_arr(gc, names[t]);
      snprintf(what, sizeof what, "%s uniform %s", gc->name, names[t]);
      t_expect_garr(am_random_uniform(k, bits->shape, bits->ndim, dts[t]), want,
                    0, 0, what);
      /* like: any dtype, any layout; only its shape counts */
      am_array like = am_zeros(bits->shape, bits->ndim, (am_dtype)(t * 3));
      if (bits->ndim >= 2) like = t_transposed(t_transposed(like));
      snprintf(what, sizeof what, "%s uniform_like %s", gc->name, names[t]);
      t_expect_garr(am_random_uniform_like(k, like, dts[t]), want, 0, 0, what);
    }
    am_scope_pop();
  }
  CHECK(n_cases >= 30, "only %d random golden cases", n_cases);
}

/* A large output: the threaded path against the independent reference at
 * sampled positions, and the same bits for 1 thread and many. */
static void test_large(void) {
  int64_t n = t_quick() ? 300001 : 2000001; /* odd: the middle word too */
  am_scope_push();
  am_array k = key_of(0x9E3779B9u, 0x7F4A7C15u);
  am_array b = am_random_bits(k, &n, 1);
  CHECK(am_eval(&b, 1) == AM_OK, "eval: %s", am_last_error());
  const uint32_t *v = am_array_data(b);
  int bad = 0;
  t_rng r = {5};
  for (int s = 0; v && s < 2000 && bad < 5; s++) {
    int64_t i =
        s < 3 ? (int64_t[]){0, n / 2, n - 1}[s] : t_randint(&r, 0, n - 1);
    uint32_t want = ref_word(0x9E3779B9u, 0x7F4A7C15u, n, i);
    if (v[i] != want) {
      bad++;
      CHECK(0, "large: word %lld = %08x, want %08x", (long long)i, v[i], want);
    }
  }
  if (!bad) t_pass++;
  int nt = am_get_num_threads();
  am_set_num_threads(1);
  am_array b1 = am_random_bits(k, &n, 1);
  am_array u1 = am_random_uniform(k, &n, 1, AM_BF16);
  CHECK(am_eval(&b1, 1) == AM_OK && am_eval(&u1, 1) == AM_OK, "eval 1 thread");
  am_set_num_threads(nt > 1 ? nt : 4);
  am_array u = am_random_uniform(k, &n, 1, AM_BF16);
  CHECK(am_eval(&u, 1) == AM_OK, "eval threads");
  am_set_num_threads(nt);
  const void *p1 = am_array_data(b1), *pu1 = am_array_data(u1),
             *pu = am_array_data(u);
  CHECK(v && p1 && !memcmp(v, p1, (size_t)n * 4),
        "bits differ between thread counts");
  CHECK(pu && pu1 && !memcmp(pu, pu1, (size_t)n * 2),
        "bf16 uniform differs between thread counts");
  am_scope_pop();
}

/* Fixed keys, so these statistics are deterministic: the bounds are loose
 * enough for any decent generator and fail for a broken one. */
static void test_uniformity(void) {
  int64_t n = t_quick() ? 200000 : 1000000;
  am_scope_push();
  static const am_dtype dts[3] = {AM_F32, AM_F16, AM_BF16};
  for (int t = 0; t < 3; t++) {
    am_array u = am_random_uniform(key_of(42, (uint32_t)t), &n, 1, dts[t]);
    float *v = malloc((size_t)n * sizeof *v);
    CHECK(am_array_read(u, AM_F32, v, n) == AM_OK, "read");
    enum { BINS = 64 };
    int64_t hist[BINS] = {0};
    double sum = 0, lo = 1, hi = 0;
    for (int64_t i = 0; i < n; i++) {
      sum += v[i];
      lo = v[i] < lo ? v[i] : lo;
      hi = v[i] > hi ? v[i] : hi;
      int bin = (int)(v[i] * BINS);
      hist[bin < 0 ? 0 : bin >= BINS ? BINS - 1 : bin]++;
    }
    double mean = sum / (double)n, chi2 = 0, e = (double)n / BINS;
    for (int b = 0; b < BINS; b++)
      chi2 += (hist[b] - e) * (hist[b] - e) / e;
    CHECK(lo >= 0 && hi < 1, "%s range [%g, %g]", am_dtype_name(dts[t]), lo,
          hi);
    /* bfloat16's 8-bit mantissa puts unequal mass in fixed bins: its
     * histogram is only checked on the mean. */
    CHECK(fabs(mean - 0.5) < (dts[t] == AM_BF16 ? 0.005 : 0.002), "%s mean %g",
          am_dtype_name(dts[t]), mean);
    if (dts[t] != AM_BF16) /* 63 dof: p = 1e-4 at ~ 115 */
      CHECK(chi2 < 115, "%s chi2 %g over %d bins", am_dtype_name(dts[t]), chi2,
            BINS);
    free(v);
  }
  /* Each bit of the words is 1 half of the time. */
  am_array b = am_random_bits(key_of(7, 9), &n, 1);
  uint32_t *w = malloc((size_t)n * sizeof *w);
  CHECK(am_array_read(b, AM_U32, w, n) == AM_OK, "read bits");
  int worst = 0;
  double worst_dev = 0;
  for (int bit = 0; bit < 32; bit++) {
    int64_t ones = 0;
    for (int64_t i = 0; i < n; i++)
      ones += (w[i] >> bit) & 1;
    double dev = fabs((double)ones / (double)n - 0.5);
    if (dev > worst_dev) worst_dev = dev, worst = bit;
  }
  CHECK(worst_dev < 0.004, "bit %d is 1 with bias %g", worst, worst_dev);
  /* Neighbouring keys give unrelated streams. */
  am_array c = am_random_bits(key_of(7, 10), &n, 1);
  uint32_t *w2 = malloc((size_t)n * sizeof *w2);
  CHECK(am_array_read(c, AM_U32, w2, n) == AM_OK, "read bits 2");
  int64_t same = 0;
  for (int64_t i = 0; i < n; i++)
    same += w[i] == w2[i];
  CHECK(same < 4, "%lld equal words for neighbouring keys", (long long)same);
  free(w);
  free(w2);
  am_scope_pop();
}

/* Uniform values close to 1 clamp below it in every dtype. */
static void test_below_one(void) {
  am_scope_push();
  /* Key (0, 43287483) was searched offline with the reference: its first
   * word (hash of counter (0, 0)) is 0xffffffb6, whose float32 rounds to
   * 2^32: MLX clamps it to the largest float below 1. */
  uint32_t o[2];
  ref_threefry(0, 43287483u, 0, 0, o);
  CHECK(o[0] >= 0xFFFFFF80u, "searched key word %08x", o[0]);
  float top = 0;
  CHECK(am_array_read(
            am_random_uniform(key_of(0, 43287483u), (int64_t[]){1}, 1, AM_F32),
            AM_F32, &top, 1) == AM_OK &&
            top == nextafterf(1.0f, 0.0f),
        "float32 top %.9g", top);
  /* The same in the 8-lane path: words 6 and 12 of 16 for these keys
   * (searched offline) are >= 0xFFFFFF80. */
  static const uint32_t k16[2] = {1449012u, 1480928u};
  static const int at16[2] = {6, 12};
  for (int i = 0; i < 2; i++) {
    float v[16];
    CHECK(ref_word(1, k16[i], 16, at16[i]) >= 0xFFFFFF80u, "searched word");
    CHECK(am_array_read(
              am_random_uniform(key_of(1, k16[i]), (int64_t[]){16}, 1, AM_F32),
              AM_F32, v, 16) == AM_OK &&
              v[at16[i]] == nextafterf(1.0f, 0.0f),
          "float32 top in lanes: %.9g", v[at16[i]]);
  }
  /* A long stream: every float32 value is the clamped bits * 2^-32, and the
   * half types reach, but never pass, their largest value below 1. */
  int64_t n = 1 << 22;
  am_array k = key_of(3, 1);
  am_array b = am_random_bits(k, &n, 1);
  am_array u32 = am_random_uniform(k, &n, 1, AM_F32);
  am_array u16 = am_random_uniform(k, &n, 1, AM_F16);
  am_array ub = am_random_uniform(k, &n, 1, AM_BF16);
  am_array all[4] = {b, u32, u16, ub};
  CHECK(am_eval(all, 4) == AM_OK, "eval");
  const uint32_t *w = am_array_data(b);
  const float *f = am_array_data(u32);
  float *h = malloc((size_t)n * sizeof *h),
        *bf = malloc((size_t)n * sizeof *bf);
  CHECK(am_array_read(u16, AM_F32, h, n) == AM_OK &&
            am_array_read(ub, AM_F32, bf, n) == AM_OK,
        "read");
  int bad = 0;
  float hmax = 0, bmax = 0;
  for (int64_t i = 0; w && f && i < n; i++) {
    bad += f[i] >= 1.0f ||
           f[i] != fminf((float)w[i] * 0x1p-32f, nextafterf(1.0f, 0.0f));
    hmax = h[i] > hmax ? h[i] : hmax;
    bmax = bf[i] > bmax ? bf[i] : bmax;
  }
  CHECK(!bad, "%d float32 uniforms are not MLX's clamped bits/2^32", bad);
  CHECK(hmax == 0.99951171875f, "float16 max %.9g", hmax);
  CHECK(bmax == 0.99609375f, "bfloat16 max %.9g", bmax);
  free(h);
  free(bf);
  am_scope_pop();
}

static void test_shapes_and_keys(void) {
  am_scope_push();
  /* 0-d and empty outputs. */
  am_array z = am_random_uniform(key_of(1, 2), NULL, 0, AM_F32);
  CHECK(am_eval(&z, 1) == AM_OK && am_array_ndim(z) == 0 &&
            am_array_size(z) == 1,
        "0-d");
  am_array e = am_random_bits(key_of(1, 2), (int64_t[]){3, 0}, 2);
  CHECK(am_eval(&e, 1) == AM_OK && am_array_size(e) == 0, "empty");
  am_array el = am_random_uniform_like(
      key_of(1, 2), am_zeros((int64_t[]){0}, 1, AM_I8), AM_F16);
  CHECK(am_eval(&el, 1) == AM_OK && am_array_size(el) == 0, "empty like");
  /* A strided key (every other word of a longer array) reads the same. */
  uint32_t kv[4] = {11, 99, 22, 99};
  am_array kk = am_array_new_data(kv, (int64_t[]){4}, 1, AM_U32);
  am_array ks = t_view(kk, (int64_t[]){2}, 1, (int64_t[]){2}, 0);
  int64_t n = 37;
  am_array a = am_random_bits(ks, &n, 1),
           b = am_random_bits(key_of(11, 22), &n, 1);
  uint32_t va[37], vb[37];
  CHECK(am_array_read(a, AM_U32, va, n) == AM_OK &&
            am_array_read(b, AM_U32, vb, n) == AM_OK &&
            !memcmp(va, vb, sizeof va),
        "strided key");
  /* The key as a graph result (a sliced view of a computed array). */
  am_array kc = am_slice_axis(am_add(kk, am_int(0)), 0, 0, AM_END, 2);
  am_array c = am_random_bits(kc, &n, 1);
  uint32_t vc[37];
  CHECK(am_array_read(c, AM_U32, vc, n) == AM_OK && !memcmp(va, vc, sizeof va),
        "computed key");
  /* The output shape is a pure function of the shape: [2, 3] is the
   * first 6 words of the layout for 6 words, i.e. [6] reshaped. */
  am_array s23 = am_random_bits(key_of(5, 6), (int64_t[]){2, 3}, 2);
  am_array s6 = am_random_bits(key_of(5, 6), (int64_t[]){6}, 1);
  uint32_t v23[6], v6[6];
  CHECK(am_array_read(s23, AM_U32, v23, 6) == AM_OK &&
            am_array_read(s6, AM_U32, v6, 6) == AM_OK && !memcmp(v23, v6, 24),
        "shape [2,3] vs [6]");
  am_scope_pop();
}

static void test_errors(void) {
  am_scope_push();
  int32_t ki[2] = {1, 2};
  am_array k32 = am_array_new_data(ki, (int64_t[]){2}, 1, AM_I32);
  int64_t sh[1] = {4};
  t_expect_error(am_random_bits(k32, sh, 1), AM_ERR_DTYPE, "random_bits",
                 "int32 key");
  t_expect_error(am_random_uniform_like(k32, am_zeros(sh, 1, AM_F32), AM_F32),
                 AM_ERR_DTYPE, "random_like", "int32 key (like)");
  uint32_t k3v[3] = {1, 2, 3};
  am_array k3 = am_array_new_data(k3v, (int64_t[]){3}, 1, AM_U32);
  t_expect_error(am_random_bits(k3, sh, 1), AM_ERR_SHAPE, "random_bits",
                 "key of 3");
  am_array k21 = am_zeros((int64_t[]){2, 1}, 2, AM_U32);
  t_expect_error(am_random_uniform(k21, sh, 1, AM_F32), AM_ERR_SHAPE,
                 "random_bits", "key [2, 1]");
  am_array k0d = am_scalar(1, AM_U32);
  t_expect_error(am_random_bits(k0d, sh, 1), AM_ERR_SHAPE, "random_bits",
                 "0-d key");
  am_array k = key_of(1, 2);
  t_expect_error(am_random_uniform(k, sh, 1, AM_I32), AM_ERR_DTYPE,
                 "random_uniform", "int32 uniform");
  t_expect_error(am_random_uniform(k, sh, 1, AM_F64), AM_ERR_DTYPE,
                 "random_uniform", "float64 uniform");
  t_expect_error(am_random_uniform_like(k, k, (am_dtype)99), AM_ERR_DTYPE,
                 "random_uniform_like", "invalid dtype");
  t_expect_error(am_random_bits(k, (int64_t[]){2, -1}, 2), AM_ERR_SHAPE,
                 "random_bits", "negative size");
  t_expect_error(am_random_bits(k, sh, AM_MAX_DIMS + 1), AM_ERR_SHAPE,
                 "random_bits", "too many dims");
  t_expect_error(am_random_bits(k, NULL, 2), AM_ERR_SHAPE, "random_bits",
                 "NULL shape");
  t_expect_error(am_random_bits(k, (int64_t[]){1 << 20, 1 << 12}, 2),
                 AM_ERR_SHAPE, "random_bits", "2^32 words");
  t_expect_error(am_random_bits(NULL, sh, 1), AM_ERR_INVALID_ARG, "random_bits",
                 "NULL key");
  t_expect_error(am_random_uniform_like(k, NULL, AM_F32), AM_ERR_INVALID_ARG,
                 "random_like", "NULL like");
  /* An error key propagates. */
  am_array bad = am_random_bits(k3, sh, 1);
  t_expect_error(am_random_uniform_like(bad, am_zeros(sh, 1, AM_F32), AM_F32),
                 AM_ERR_SHAPE, "random_bits", "propagated");
  am_scope_pop();
}

/* ------------------------------------------------------------ compile */

static am_status f_like(void *ctx, const am_array *in, int n_in, am_array *out,
                        int n_out) {
  out[0] = am_add(in[1], am_random_uniform_like(in[0], in[1], AM_F32));
  return AM_OK;
}

/* The literal-shape form: the shape read from x at trace time. */
static am_status f_literal(void *ctx, const am_array *in, int n_in,
                           am_array *out, int n_out) {
  out[0] = am_add(in[1], am_random_uniform(in[0], am_array_shape(in[1]),
                                           am_array_ndim(in[1]), AM_F32));
  return AM_OK;
}

static void expect_same(am_array got, am_array key, am_array x,
                        const char *what) {
  am_scope_push();
  am_array want = am_add(
      x, am_random_uniform(key, am_array_shape(x), am_array_ndim(x), AM_F32));
  int64_t n = am_array_size(want);
  double *w = malloc((size_t)(n ? n : 1) * sizeof *w);
  if (am_array_read(want, AM_F64, w, n) == AM_OK)
    t_expect(got, w, n, 0, 0, what);
  free(w);
  am_scope_pop();
}

static void test_compile(void) {
  am_compile_options o = {.shapeless = true};
  am_compiled f = am_compile(f_like, NULL, 2, 1, &o);
  am_compiled g = am_compile(f_literal, NULL, 2, 1, &o);
  t_rng r = {9};
  for (int call = 0; call < 12; call++) {
    am_scope_push();
    int64_t sh[2] = {t_randint(&r, 1, 6), t_randint(&r, 1, 40)};
    am_array in[2] = {key_of((uint32_t)call, 77),
                      t_rand(&r, sh, 2, AM_F32, -1, 1)};
    am_array out[1];
    CHECK(am_compiled_call(f, in, out) == AM_OK, "like call %d: %s", call,
          am_last_error());
    expect_same(out[0], in[0], in[1], "compiled uniform_like");
    CHECK(am_compiled_call(g, in, out) == AM_OK, "literal call %d: %s", call,
          am_last_error());
    expect_same(out[0], in[0], in[1], "compiled literal uniform");
    am_scope_pop();
  }
  am_compile_stats s = am_compiled_stats(f);
  CHECK(s.traces == 1 && s.fallbacks == 0, "like: traces %llu fallbacks %llu",
        (unsigned long long)s.traces, (unsigned long long)s.fallbacks);
  /* The literal shape is guarded: new shapes re-trace, never reuse it. */
  s = am_compiled_stats(g);
  CHECK(s.traces > 1, "literal: traces %llu", (unsigned long long)s.traces);
  am_compiled_free(f);
  am_compiled_free(g);
}

int main(void) {
  t_golden *g = t_golden_load("golden/sample.txt");
  test_known_answer();
  test_goldens(g);
  test_large();
  test_uniformity();
  test_below_one();
  test_shapes_and_keys();
  test_errors();
  test_compile();
  t_golden_free(g);
  return t_summary();
}
