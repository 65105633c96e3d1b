/*
 * test_elementwise — values, dtypes, promotion, layouts, SIMD/portable
 * agreement, donation and errors of the elementwise ops.
 *
 * The golden cases (scripts/golden_elementwise.py, NumPy and MLX) run in
 * three input layouts (contiguous, every other element, transposed) and
 * with both the SIMD and the portable kernels.
 */
#include "test_internal.h"

#include <float.h>
#include <stdint.h>

/* Test switches defined in src/ops/elementwise.c and elementwise_simd.c:
 * force the portable kernels; cap the SIMD level (2 AVX-512, 1 AVX2);
 * the output size from which streaming stores are used (-1: default). */
extern void am_ew_force_scalar(bool on);
extern void am_ew_simd_limit(int level);
extern void am_ew_stream_threshold(int64_t bytes);

/* Kernel sets every value test runs under: the best SIMD level the CPU
 * has and AVX2 (even on an AVX-512 machine), each with ordinary and with
 * streaming stores, and the portable kernels. */
enum { M_BEST, M_STREAM, M_AVX2, M_AVX2_STREAM, M_PORTABLE, M_COUNT };
static const char *const k_mode_names[M_COUNT] = {"simd", "simd-stream", "avx2",
                                                  "avx2-stream", "portable"};
static void set_mode(int m) {
  am_ew_force_scalar(m == M_PORTABLE);
  am_ew_simd_limit(m == M_AVX2 || m == M_AVX2_STREAM ? 1 : 2);
  am_ew_stream_threshold(m == M_STREAM || m == M_AVX2_STREAM ? 0 : -1);
}

enum { C_EXACT, C_TRANS }; /* tolerance class */

typedef struct {
  const char *name;
  am_array (*u)(am_array);
  am_array (*b)(am_array, am_array);
  int cls;
} op_entry;

static const op_entry k_ops[] = {
    {"neg", am_neg, NULL, C_EXACT},
    {"abs", am_abs, NULL, C_EXACT},
    {"sign", am_sign, NULL, C_EXACT},
    {"exp", am_exp, NULL, C_TRANS},
    {"expm1", am_expm1, NULL, C_TRANS},
    {"log", am_log, NULL, C_TRANS},
    {"log1p", am_log1p, NULL, C_TRANS},
    {"sqrt", am_sqrt, NULL, C_EXACT},
    {"rsqrt", am_rsqrt, NULL, C_EXACT},
    {"square", am_square, NULL, C_EXACT},
    {"sin", am_sin, NULL, C_TRANS},
    {"cos", am_cos, NULL, C_TRANS},
    {"tanh", am_tanh, NULL, C_TRANS},
    {"sigmoid", am_sigmoid, NULL, C_TRANS},
    {"erf", am_erf, NULL, C_TRANS},
    {"floor", am_floor, NULL, C_EXACT},
    {"ceil", am_ceil, NULL, C_EXACT},
    {"round", am_round, NULL, C_EXACT},
    {"logical_not", am_logical_not, NULL, C_EXACT},
    {"add", NULL, am_add, C_EXACT},
    {"sub", NULL, am_sub, C_EXACT},
    {"mul", NULL, am_mul, C_EXACT},
    {"div", NULL, am_div, C_EXACT},
    {"pow", NULL, am_pow, C_TRANS},
    {"maximum", NULL, am_maximum, C_EXACT},
    {"minimum", NULL, am_minimum, C_EXACT},
    {"remainder", NULL, am_remainder, C_EXACT},
    {"equal", NULL, am_equal, C_EXACT},
    {"not_equal", NULL, am_not_equal, C_EXACT},
    {"less", NULL, am_less, C_EXACT},
    {"less_equal", NULL, am_less_equal, C_EXACT},
    {"greater", NULL, am_greater, C_EXACT},
    {"greater_equal", NULL, am_greater_equal, C_EXACT},
    {"logical_and", NULL, am_logical_and, C_EXACT},
    {"logical_or", NULL, am_logical_or, C_EXACT},
    {"where", NULL, NULL, C_EXACT},
    {"astype", NULL, NULL, C_EXACT},
};
#define N_OPS ((int)(sizeof k_ops / sizeof *k_ops))

static const op_entry *find_op(const char *case_name) {
  size_t len = strcspn(case_name, ".");
  for (int i = 0; i < N_OPS; i++)
    if (strlen(k_ops[i].name) == len && !strncmp(k_ops[i].name, case_name, len))
      return &k_ops[i];
  return NULL;
}

/* Tolerances by result dtype: f32 1e-6 (arithmetic) / 2e-6
 * (transcendental); f16 and bf16 one unit in the last place after
 * rounding; integers and bool exact. */
static void tolerance(am_dtype t, int cls, double *rtol, double *atol) {
  *rtol = 0;
  *atol = 0;
  switch (t) {
  case AM_F32:
    *rtol = cls == C_TRANS ? 2e-6 : 1e-6;
    *atol = cls == C_TRANS ? 1e-37 : 0;
    break;
  case AM_F64:
    *rtol = cls == C_TRANS ? 1e-13 : 1e-15;
    *atol = 1e-300;
    break;
  case AM_F16:
    *rtol = 1.0 / 1024;
    *atol = 6e-8;
    break;
  case AM_BF16:
    *rtol = 1.0 / 128;
    *atol = 1e-38;
    break;
  default:
    break;
  }
}

/* ---------------------------------------------------------------------
 *  Input layouts for golden cases
 * --------------------------------------------------------------------- */

enum { L_CONTIG, L_STRIDED, L_TRANSPOSED, L_COUNT };

/* The golden array g as an amorph array laid out as asked: contiguous;
 * every other element of a twice-as-long last axis; or the transpose of
 * an array holding the transposed values. */
static am_array make_input(const t_garr *g, int layout) {
  int nd = g->ndim;
  if (layout == L_CONTIG || nd == 0 || g->n == 0) return t_garr_array(g);
  int64_t shape[AM_MAX_DIMS], st[AM_MAX_DIMS];
  double *v = malloc((size_t)g->n * 2 * sizeof *v);
  am_array r;
  if (layout == L_STRIDED) {
    memcpy(shape, g->shape, (size_t)nd * sizeof *shape);
    shape[nd - 1] *= 2;
    for (int64_t i = 0; i < g->n; i++) {
      v[2 * i] = g->v[i];
      v[2 * i + 1] = 77; /* never read */
    }
    am_array big = t_arr(v, shape, nd, g->dtype);
    am_contig_strides(shape, nd, st);
    st[nd - 1] = 2;
    r = t_view(big, g->shape, nd, st, 0);
  } else {
    for (int i = 0; i < nd; i++)
      shape[i] = g->shape[nd - 1 - i];
    int64_t gst[AM_MAX_DIMS], idx[AM_MAX_DIMS] = {0};
    am_contig_strides(g->shape, nd, gst);
    /* walk the reversed shape row-major; its index reversed is g's */
    for (int64_t k = 0; k < g->n; k++) {
      int64_t off = 0;
      for (int i = 0; i < nd; i++)
        off += idx[i] * gst[nd - 1 - i];
      v[k] = g->v[off];
      for (int i = nd - 1; i >= 0; i--) {
        if (++idx[i] < shape[i]) break;
        idx[i] = 0;
      }
    }
    r = t_transposed(t_arr(v, shape, nd, g->dtype));
  }
  free(v);
  return r;
}

static int g_cases_run;

static void run_golden_case(const t_gcase *c) {
  const op_entry *op = find_op(c->name);
  CHECK(op != NULL, "golden case %s: unknown op", c->name);
  if (!op) return;
  /* unary: x; binary: x, y; where: c, x, y; astype: x (to out's dtype) */
  bool is_astype = !strcmp(op->name, "astype"),
       is_where = !op->u && !op->b && !is_astype;
  const t_garr *out = t_gcase_arr(c, "out");
  const t_garr *x = t_gcase_arr(c, "x");
  const t_garr *y = op->b || is_where ? t_gcase_arr(c, "y") : NULL;
  const t_garr *cond = is_where ? t_gcase_arr(c, "c") : NULL;
  if (!out || !x || ((op->b || is_where) && !y) || (is_where && !cond)) return;
  double rtol, atol;
  tolerance(out->dtype, op->cls, &rtol, &atol);
  for (int mode = 0; mode < M_COUNT; mode++) {
    set_mode(mode);
    for (int layout = 0; layout < L_COUNT; layout++) {
      am_scope_push();
      am_array ax = make_input(x, layout);
      am_array r;
      if (op->u)
        r = op->u(ax);
      else if (op->b)
        r = op->b(ax, make_input(y, layout));
      else if (is_astype)
        r = am_astype(ax, out->dtype);
      else
        r = am_where(make_input(cond, layout), ax, make_input(y, layout));
      char what[200];
      snprintf(what, sizeof what, "%s (%s, layout %d)", c->name,
               k_mode_names[mode], layout);
      t_expect_garr(r, out, rtol, atol, what);
      am_scope_pop();
    }
  }
  set_mode(M_BEST);
  g_cases_run++;
}

static void test_golden(void) {
  t_golden *g = t_golden_load("golden/elementwise.txt");
  if (!g) return;
  for (int i = 0; i < g->n; i++)
    run_golden_case(&g->cases[i]);
  /* every op has golden coverage */
  for (int k = 0; k < N_OPS; k++) {
    bool found = false;
    for (int i = 0; i < g->n && !found; i++)
      found = find_op(g->cases[i].name) == &k_ops[k];
    CHECK(found, "no golden case for %s", k_ops[k].name);
  }
  t_golden_free(g);
  printf("golden: %d cases x 15 runs\n", g_cases_run);
}

/* ---------------------------------------------------------------------
 *  Hand-computed cases
 * --------------------------------------------------------------------- */

static am_array f32v(const float *v, const int64_t *shape, int nd) {
  return am_array_new_data(v, shape, nd, AM_F32);
}

static void test_hand_values(void) {
  am_scope_push();
  int64_t s23[] = {2, 3}, s3[] = {3}, s5[] = {5};
  am_array a = f32v((float[]){1, 2, 3, 4, 5, 6}, s23, 2);
  am_array b = f32v((float[]){10, 20, 30}, s3, 1);
  t_expect(am_add(a, b), (double[]){11, 22, 33, 14, 25, 36}, 6, 0, 0, "add");
  t_expect(am_sub(a, b), (double[]){-9, -18, -27, -6, -15, -24}, 6, 0, 0,
           "sub");
  t_expect(am_mul(b, a), (double[]){10, 40, 90, 40, 100, 180}, 6, 0, 0, "mul");
  t_expect(am_div(a, b), (double[]){0.1f, 0.1f, 0.1f, 0.4f, 0.25f, 0.2f}, 6, 0,
           0, "div");
  t_expect(am_maximum(a, am_float(3.5)), (double[]){3.5, 3.5, 3.5, 4, 5, 6}, 6,
           0, 0, "maximum");
  t_expect(am_minimum(am_float(3.5), a), (double[]){1, 2, 3, 3.5, 3.5, 3.5}, 6,
           0, 0, "minimum");
  t_expect(am_pow(a, am_float(2)), (double[]){1, 4, 9, 16, 25, 36}, 6, 0, 0,
           "pow");
  t_expect(am_square(b), (double[]){100, 400, 900}, 3, 0, 0, "square");
  t_expect(am_sqrt(am_square(b)), (double[]){10, 20, 30}, 3, 0, 0, "sqrt");
  t_expect(am_rsqrt(f32v((float[]){4, 0.25f, 0}, s3, 1)),
           (double[]){0.5, 2, INFINITY}, 3, 0, 0, "rsqrt");
  t_expect(am_exp(f32v((float[]){0, 1, -1}, s3, 1)),
           (double[]){1, 2.718281828459045, 0.36787944117144233}, 3, 2e-7, 0,
           "exp");
  t_expect(am_log(f32v((float[]){1, 2.718281828f, 0}, s3, 1)),
           (double[]){0, 1, -INFINITY}, 3, 2e-7, 1e-7, "log");
  t_expect(am_tanh(f32v((float[]){0, 1, -20}, s3, 1)),
           (double[]){0, 0.7615941559557649, -1}, 3, 2e-7, 0, "tanh");
  t_expect(am_sigmoid(f32v((float[]){0, 2, -200}, s3, 1)),
           (double[]){0.5, 0.8807970779778823, 0}, 3, 2e-7, 0, "sigmoid");
  t_expect(am_erf(f32v((float[]){0, 1, -10}, s3, 1)),
           (double[]){0, 0.8427007929497149, -1}, 3, 2e-7, 0, "erf");
  t_expect(am_sin(f32v((float[]){0, 1.5707963705062866f, -0.5f}, s3, 1)),
           (double[]){0, 1, -0.479425538604203}, 3, 2e-7, 0, "sin");
  t_expect(am_cos(f32v((float[]){0, 3.1415927410125732f, 0.5f}, s3, 1)),
           (double[]){1, -1, 0.8775825618903728}, 3, 2e-7, 0, "cos");
  t_expect(am_expm1(f32v((float[]){1e-10f, 0, 1}, s3, 1)),
           (double[]){1e-10, 0, 1.718281828459045}, 3, 2e-7, 0, "expm1");
  t_expect(am_log1p(f32v((float[]){1e-10f, 0, -1}, s3, 1)),
           (double[]){1e-10, 0, -INFINITY}, 3, 2e-7, 0, "log1p");
  am_array h = f32v((float[]){0.5f, 1.5f, 2.5f, -0.5f, -2.7f}, s5, 1);
  t_expect(am_round(h), (double[]){0, 2, 2, -0.0, -3}, 5, 0, 0, "round");
  t_expect(am_floor(h), (double[]){0, 1, 2, -1, -3}, 5, 0, 0, "floor");
  t_expect(am_ceil(h), (double[]){1, 2, 3, -0.0, -2}, 5, 0, 0, "ceil");
  t_expect(am_neg(h), (double[]){-0.5, -1.5, -2.5, 0.5, 2.7f}, 5, 0, 0, "neg");
  t_expect(am_abs(h), (double[]){0.5, 1.5, 2.5, 0.5, 2.7f}, 5, 0, 0, "abs");
  t_expect(am_sign(h), (double[]){1, 1, 1, -1, -1}, 5, 0, 0, "sign");
  /* Python-style remainder: the sign of the divisor */
  int64_t s4[] = {4};
  am_array i1 = am_array_new_data((int32_t[]){5, -5, 5, -5}, s4, 1, AM_I32);
  am_array i2 = am_array_new_data((int32_t[]){3, 3, -3, -3}, s4, 1, AM_I32);
  t_expect(am_remainder(i1, i2), (double[]){2, 1, -1, -2}, 4, 0, 0,
           "remainder int");
  t_expect(am_remainder(am_astype(i1, AM_F32), am_astype(i2, AM_F32)),
           (double[]){2, 1, -1, -2}, 4, 0, 0, "remainder f32");
  t_expect(am_pow(i2, am_abs(i1)), (double[]){243, 243, -243, -243}, 4, 0, 0,
           "pow int");
  t_expect(am_less(i1, i2), (double[]){0, 1, 0, 1}, 4, 0, 0, "less");
  t_expect(am_greater_equal(i1, am_neg(i2)), (double[]){1, 0, 1, 0}, 4, 0, 0,
           "greater_equal");
  t_expect(am_equal(i1, am_int(5)), (double[]){1, 0, 1, 0}, 4, 0, 0, "equal");
  t_expect(am_not_equal(i1, am_int(5)), (double[]){0, 1, 0, 1}, 4, 0, 0,
           "not_equal");
  t_expect(am_less_equal(i1, am_int(-5)), (double[]){0, 1, 0, 1}, 4, 0, 0,
           "less_equal");
  t_expect(am_greater(i1, am_int(-5)), (double[]){1, 0, 1, 0}, 4, 0, 0,
           "greater");
  am_array z = am_array_new_data((int32_t[]){0, 2, 0, -1}, s4, 1, AM_I32);
  t_expect(am_logical_and(i1, z), (double[]){0, 1, 0, 1}, 4, 0, 0,
           "logical_and");
  t_expect(am_logical_or(z, am_int(0)), (double[]){0, 1, 0, 1}, 4, 0, 0,
           "logical_or");
  t_expect(am_logical_not(z), (double[]){1, 0, 1, 0}, 4, 0, 0, "logical_not");
  t_expect(am_where(z, i1, am_int(100)), (double[]){100, -5, 100, -5}, 4, 0, 0,
           "where");
  am_scope_pop();
}

/* Signs of zero and nan, which tolerances cannot see. */
static void test_special_bits(void) {
  am_scope_push();
  for (int mode = 0; mode < M_COUNT; mode++) {
    set_mode(mode);
    int64_t s4[] = {4};
    am_array x = f32v((float[]){-0.4f, -0.0f, NAN, 0.0f}, s4, 1);
    float r[4];
    CHECK(!am_array_read(am_round(x), AM_F32, r, 4), "round read");
    CHECK(signbit(r[0]) && signbit(r[1]) && isnan(r[2]) && !signbit(r[3]),
          "round keeps the sign of zero (%d)", mode);
    CHECK(!am_array_read(am_sign(x), AM_F32, r, 4), "sign read");
    CHECK(r[0] == -1 && r[1] == 0 && !signbit(r[1]) && isnan(r[2]) && r[3] == 0,
          "sign(-0.4, -0, nan, 0) = %g %g %g %g (%d)", r[0], r[1], r[2], r[3],
          mode);
    CHECK(!am_array_read(am_neg(x), AM_F32, r, 4), "neg read");
    CHECK(!signbit(r[1]) && signbit(r[3]), "neg flips zero signs (%d)", mode);
    CHECK(!am_array_read(am_abs(x), AM_F32, r, 4), "abs read");
    CHECK(!signbit(r[1]) && r[0] == 0.4f, "abs(-0) = +0 (%d)", mode);
    am_array y = f32v((float[]){0.0f, 0.0f, 1.0f, -0.0f}, s4, 1);
    CHECK(!am_array_read(am_maximum(x, y), AM_F32, r, 4), "maximum read");
    CHECK(r[0] == 0 && !signbit(r[1]) && isnan(r[2]) && signbit(r[3]),
          "maximum: (a > b || isnan(a)) ? a : b (%d)", mode);
    CHECK(!am_array_read(am_minimum(y, x), AM_F32, r, 4), "minimum read");
    CHECK(r[0] == -0.4f && signbit(r[1]) && isnan(r[2]) && !signbit(r[3]),
          "minimum: (a < b || isnan(a)) ? a : b (%d)", mode);
    CHECK(!am_array_read(am_remainder(am_neg(y), am_float(-3)), AM_F32, r, 4),
          "remainder read");
    CHECK(signbit(r[0]) && signbit(r[1]) && r[2] == -1 && signbit(r[3]),
          "remainder zeros take the divisor's sign (%d)", mode);
    uint8_t bl[4];
    CHECK(!am_array_read(am_logical_not(x), AM_BOOL, bl, 4), "not read");
    CHECK(!bl[0] && bl[1] && !bl[2] && bl[3], "logical_not: nan is true");
  }
  set_mode(M_BEST);
  am_scope_pop();
}

/* ---------------------------------------------------------------------
 *  Type promotion
 * --------------------------------------------------------------------- */

static am_array arr_of(am_dtype t, int n) {
  int64_t shape[] = {n};
  double v[8] = {1, 0, 2, 1, 0, 3, 1, 2};
  return t_arr(v, shape, 1, t);
}

static void expect_dtype(am_array x, am_dtype t, const char *what) {
  CHECK(am_array_status(x) == AM_OK, "%s: %s", what, am_array_error(x));
  CHECK(am_array_dtype(x) == t, "%s: dtype %s, want %s", what,
        am_dtype_name(am_array_dtype(x)), am_dtype_name(t));
}

static void test_promotion(void) {
  am_scope_push();
  am_array f32 = arr_of(AM_F32, 4), f16 = arr_of(AM_F16, 4),
           bf = arr_of(AM_BF16, 4), f64 = arr_of(AM_F64, 4),
           i8 = arr_of(AM_I8, 4), u8 = arr_of(AM_U8, 4),
           i32 = arr_of(AM_I32, 4), u32 = arr_of(AM_U32, 4),
           i64 = arr_of(AM_I64, 4), bo = arr_of(AM_BOOL, 4);
  /* strong with strong: am_result_type */
  expect_dtype(am_add(f32, f16), AM_F32, "f32+f16");
  expect_dtype(am_add(f16, bf), AM_F32, "f16+bf16");
  expect_dtype(am_mul(f32, f64), AM_F64, "f32*f64");
  expect_dtype(am_add(i8, u8), AM_I32, "i8+u8");
  expect_dtype(am_sub(u32, i32), AM_I64, "u32-i32");
  expect_dtype(am_add(i32, f16), AM_F16, "i32+f16");
  expect_dtype(am_maximum(bo, i8), AM_I8, "max(bool, i8)");
  expect_dtype(am_where(bo, i8, f16), AM_F16, "where(bool, i8, f16)");
  /* weak scalars take the array's dtype ... */
  expect_dtype(am_mul(f16, am_float(0.5)), AM_F16, "f16*weak float");
  expect_dtype(am_mul(bf, am_float(0.5)), AM_BF16, "bf16*weak float");
  expect_dtype(am_add(f64, am_float(0.5)), AM_F64, "f64+weak float");
  expect_dtype(am_add(u8, am_int(3)), AM_U8, "u8+weak int");
  expect_dtype(am_add(am_int(3), i64), AM_I64, "weak int+i64");
  expect_dtype(am_add(f16, am_int(3)), AM_F16, "f16+weak int");
  /* ... unless of a higher kind, or an int that does not fit */
  expect_dtype(am_mul(i32, am_float(0.5)), AM_F32, "i32*weak float");
  expect_dtype(am_mul(bo, am_float(2)), AM_F32, "bool*weak float");
  expect_dtype(am_add(bo, am_int(2)), AM_I32, "bool+weak int");
  expect_dtype(am_add(u8, am_int(300)), AM_I32, "u8+weak 300");
  expect_dtype(am_add(u8, am_int(-1)), AM_I32, "u8+weak -1");
  expect_dtype(am_add(i8, am_int(1000)), AM_I32, "i8+weak 1000");
  expect_dtype(am_add(i32, am_int(INT64_C(1) << 40)), AM_I64, "i32+weak 2^40");
  expect_dtype(am_add(am_float(2), am_float(3)), AM_F32, "weak+weak");
  expect_dtype(am_add(am_int(2), am_float(0.5)), AM_F32, "weak int+float");
  expect_dtype(am_where(bo, am_int(1), am_float(2.5)), AM_F32,
               "where(weak int, weak float)");
  /* op-specific results */
  expect_dtype(am_div(i32, i32), AM_F32, "int/int");
  expect_dtype(am_div(f16, f16), AM_F16, "f16/f16");
  expect_dtype(am_div(i32, am_int(2)), AM_F32, "int/weak int");
  expect_dtype(am_exp(i32), AM_F32, "exp(int)");
  expect_dtype(am_sqrt(bo), AM_F32, "sqrt(bool)");
  expect_dtype(am_exp(bf), AM_BF16, "exp(bf16)");
  expect_dtype(am_floor(i32), AM_I32, "floor(int)");
  expect_dtype(am_abs(i8), AM_I8, "abs(i8)");
  expect_dtype(am_pow(i32, i32), AM_I32, "pow(int, int)");
  expect_dtype(am_pow(i32, am_float(0.5)), AM_F32, "pow(int, weak float)");
  expect_dtype(am_less(f16, i64), AM_BOOL, "less");
  expect_dtype(am_logical_and(f32, i8), AM_BOOL, "logical_and");
  expect_dtype(am_logical_not(f64), AM_BOOL, "logical_not");
  /* bool arithmetic stays bool (as MLX) */
  expect_dtype(am_add(bo, bo), AM_BOOL, "bool+bool");
  expect_dtype(am_mul(bo, bo), AM_BOOL, "bool*bool");

  /* values through the promotion */
  t_expect(am_mul(i32, am_float(0.5)), (double[]){0.5, 0, 1, 0.5}, 4, 0, 0,
           "i32*0.5 values");
  int64_t s3[] = {3};
  am_array u = am_array_new_data((uint8_t[]){255, 0, 7}, s3, 1, AM_U8);
  t_expect(am_add(u, am_int(3)), (double[]){2, 3, 10}, 3, 0, 0, "u8 + 3 wraps");
  t_expect(am_add(u, am_int(300)), (double[]){555, 300, 307}, 3, 0, 0,
           "u8 + 300 widens");
  t_expect(am_less(u, am_int(-1)), (double[]){0, 0, 0}, 3, 0, 0,
           "u8 < -1 is false");
  t_expect(am_sub(u, am_int(1)), (double[]){254, 255, 6}, 3, 0, 0,
           "u8 - 1 wraps");
  am_array b1 =
      am_array_new_data((uint8_t[]){1, 1, 0, 0}, (int64_t[]){4}, 1, AM_BOOL);
  am_array b2 =
      am_array_new_data((uint8_t[]){1, 0, 1, 0}, (int64_t[]){4}, 1, AM_BOOL);
  t_expect(am_add(b1, b2), (double[]){1, 1, 1, 0}, 4, 0, 0, "bool add = or");
  t_expect(am_sub(b1, b2), (double[]){0, 1, 1, 0}, 4, 0, 0, "bool sub = xor");
  t_expect(am_mul(b1, b2), (double[]){1, 0, 0, 0}, 4, 0, 0, "bool mul = and");
  t_expect(am_remainder(b1, b2), (double[]){0, 0, 0, 0}, 4, 0, 0,
           "bool remainder (x % 0 = 0)");
  t_expect(am_add(b1, am_int(2)), (double[]){3, 3, 2, 2}, 4, 0, 0, "bool + 2");
  am_scope_pop();
}

/* ---------------------------------------------------------------------
 *  Integer edge cases (read back exactly as int64)
 * --------------------------------------------------------------------- */

static void expect_i64(am_array x, const int64_t *want, int n,
                       const char *what) {
  int64_t got[8];
  am_status s = am_array_read(x, AM_I64, got, n);
  CHECK(s == AM_OK, "%s: %s", what, am_last_error());
  for (int i = 0; !s && i < n; i++)
    CHECK(got[i] == want[i], "%s[%d] = %lld, want %lld", what, i,
          (long long)got[i], (long long)want[i]);
}

static void test_int_edges(void) {
  am_scope_push();
  int64_t s4[] = {4};
  am_array a = am_array_new_data(
      (int64_t[]){INT64_MAX, INT64_MIN, 5, INT64_MIN}, s4, 1, AM_I64);
  am_array b =
      am_array_new_data((int64_t[]){1, -1, 0, INT64_MIN}, s4, 1, AM_I64);
  expect_i64(am_add(a, b), (int64_t[]){INT64_MIN, INT64_MAX, 5, 0}, 4,
             "i64 add wraps");
  expect_i64(am_sub(a, b), (int64_t[]){INT64_MAX - 1, INT64_MIN + 1, 5, 0}, 4,
             "i64 sub");
  expect_i64(am_mul(a, b), (int64_t[]){INT64_MAX, INT64_MIN, 0, 0}, 4,
             "i64 mul wraps");
  expect_i64(am_remainder(a, b), (int64_t[]){0, 0, 0, 0}, 4,
             "i64 remainder: % 1, % -1 (no trap), % 0 = 0");
  expect_i64(am_neg(a), (int64_t[]){-INT64_MAX, INT64_MIN, -5, INT64_MIN}, 4,
             "i64 neg");
  expect_i64(am_abs(a), (int64_t[]){INT64_MAX, INT64_MIN, 5, INT64_MIN}, 4,
             "i64 abs wraps");
  expect_i64(am_sign(a), (int64_t[]){1, -1, 1, -1}, 4, "i64 sign");
  expect_i64(am_maximum(a, b), (int64_t[]){INT64_MAX, -1, 5, INT64_MIN}, 4,
             "i64 maximum");
  /* pow: 3^40 mod 2^64 by repeated multiplication (independent of the
   * library's square-and-multiply) */
  uint64_t p = 1;
  for (int i = 0; i < 40; i++)
    p *= 3;
  am_array base = am_array_new_data((int64_t[]){3, 2, -1, 1}, s4, 1, AM_I64);
  am_array ex = am_array_new_data((int64_t[]){40, 63, -3, -7}, s4, 1, AM_I64);
  expect_i64(am_pow(base, ex), (int64_t[]){(int64_t)p, INT64_MIN, -1, 1}, 4,
             "i64 pow");
  am_array ex2 = am_array_new_data((int64_t[]){-1, 0, -2, 64}, s4, 1, AM_I64);
  expect_i64(am_pow(base, ex2), (int64_t[]){0, 1, 1, 1}, 4,
             "pow: negative exponents, x^0, 2^64 wraps... (1^64)");
  am_array zero = am_array_new_data((int64_t[]){0, 0, 0, 0}, s4, 1, AM_I64);
  expect_i64(am_pow(zero, ex2), (int64_t[]){0, 1, 0, 0}, 4, "pow(0, e)");
  /* int32 wraps like C's uint32 arithmetic */
  am_array c = am_array_new_data((int32_t[]){INT32_MAX, INT32_MIN, 46341, -7},
                                 s4, 1, AM_I32);
  expect_i64(am_add(c, am_int(1)),
             (int64_t[]){INT32_MIN, INT32_MIN + 1, 46342, -6}, 4,
             "i32 add wraps");
  expect_i64(am_square(c), (int64_t[]){1, 0, (int32_t)(46341u * 46341u), 49}, 4,
             "i32 square wraps");
  expect_i64(am_remainder(c, am_int(0)), (int64_t[]){0, 0, 0, 0}, 4,
             "i32 % 0 = 0");
  expect_i64(am_remainder(c, am_int(-1)), (int64_t[]){0, 0, 0, 0}, 4,
             "INT32_MIN % -1 = 0");
  am_array u =
      am_array_new_data((uint32_t[]){0, 1, UINT32_MAX, 5}, s4, 1, AM_U32);
  expect_i64(am_neg(u), (int64_t[]){0, UINT32_MAX, 1, UINT32_MAX - 4}, 4,
             "u32 neg wraps");
  expect_i64(am_sign(u), (int64_t[]){0, 1, 1, 1}, 4, "u32 sign");
  expect_i64(am_sub(am_int(0), am_astype(u, AM_I64)),
             (int64_t[]){0, -1, -(int64_t)UINT32_MAX, -5}, 4, "0 - u32 in i64");
  am_scope_pop();
}

/* ---------------------------------------------------------------------
 *  SIMD kernels against the portable ones, and against float64
 * --------------------------------------------------------------------- */

static double ulp_f32(double ref) {
  float f = fabsf((float)ref);
  if (!(f < FLT_MAX)) return 1;
  if (f < FLT_MIN) return ldexp(1, -149);
  return (double)(nextafterf(f, INFINITY) - f);
}

/* Max error in float32 ulps of op over x[] (NaN must match NaN). */
static double max_ulp(am_array (*op)(am_array), const float *x, int64_t n,
                      double (*ref)(double), int64_t *worst) {
  am_scope_push();
  am_array r = op(am_array_new_data(x, (int64_t[]){n}, 1, AM_F32));
  float *got = malloc((size_t)n * sizeof *got);
  double m = 0;
  if (am_array_read(r, AM_F32, got, n)) {
    CHECK(0, "read failed: %s", am_last_error());
    n = 0;
  }
  for (int64_t i = 0; i < n; i++) {
    double want = ref(x[i]);
    double e;
    if (isnan(want) || isnan(got[i]))
      e = isnan(want) == isnan(got[i]) ? 0 : 1e9;
    else if (isinf(want) || isinf(got[i]))
      e = (float)want == got[i] ? 0 : 1e9;
    else
      e = fabs(got[i] - want) / ulp_f32(want);
    if (e > m) {
      m = e;
      *worst = i;
    }
  }
  free(got);
  am_scope_pop();
  return m;
}

static double ref_sigmoid(double x) {
  return 1 / (1 + exp(-x));
}

static void test_accuracy(void) {
  int64_t n = t_quick() ? 50000 : 400000;
  float *x = malloc((size_t)n * sizeof *x);
  t_rng r = {42};
  struct {
    const char *name;
    am_array (*op)(am_array);
    double (*ref)(double);
    double lo, hi, max_ulp;
  } fns[] = {
      {"exp", am_exp, exp, -104, 89, 2},
      {"exp(small)", am_exp, exp, -1, 1, 2},
      {"sigmoid", am_sigmoid, ref_sigmoid, -30, 30, 3},
      {"tanh", am_tanh, tanh, -10, 10, 3},
      {"tanh(small)", am_tanh, tanh, -0.7, 0.7, 3},
      {"log", am_log, log, 0, 0, 2}, /* random positive bit patterns */
      {"log(near 1)", am_log, log, 0.5, 2, 2},
  };
  for (int mode = 0; mode < M_COUNT; mode++) {
    set_mode(mode);
    for (size_t k = 0; k < sizeof fns / sizeof *fns; k++) {
      for (int64_t i = 0; i < n; i++) {
        if (fns[k].lo == 0 && fns[k].hi == 0) {
          uint32_t bits = (uint32_t)(t_next(&r) & 0x7f7fffffu);
          memcpy(&x[i], &bits, 4);
        } else {
          x[i] = (float)(fns[k].lo + (fns[k].hi - fns[k].lo) * t_uniform(&r));
        }
      }
      int64_t worst = 0;
      double e = max_ulp(fns[k].op, x, n, fns[k].ref, &worst);
      CHECK(e <= fns[k].max_ulp, "%s (%s): %.2f ulp at x = %.9g", fns[k].name,
            k_mode_names[mode], e, x[worst]);
      printf("accuracy %-12s %-8s %.2f ulp max\n", fns[k].name,
             k_mode_names[mode], e);
    }
  }
  set_mode(M_BEST);
  free(x);
}

/* Every SIMD-backed op, on an odd-length array (threads and tails) with
 * special values sprinkled in, against the portable kernels: bitwise for
 * exact ops, within a few ulp for the approximations. */
static void test_simd_vs_portable(void) {
  int64_t n = t_quick() ? 70001 : 300007;
  float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
  float *g1 = malloc((size_t)n * sizeof *g1),
        *g2 = malloc((size_t)n * sizeof *g2);
  t_rng r = {7};
  const float sp[] = {NAN,    INFINITY, -INFINITY, 0.0f,     -0.0f,
                      1e-40f, -1e-40f,  FLT_MAX,   -FLT_MAX, FLT_MIN,
                      0.5f,   -2.5f,    100.0f,    -100.0f};
  for (int64_t i = 0; i < n; i++) {
    x[i] = (float)((t_uniform(&r) - 0.5) * 40);
    y[i] = (float)((t_uniform(&r) - 0.5) * 40);
    if (i % 17 == 0) x[i] = sp[(i / 17) % 14];
    if (i % 23 == 0) y[i] = sp[(i / 23) % 14];
  }
  struct {
    const char *name;
    am_array (*u)(am_array);
    am_array (*b)(am_array, am_array);
    double ulps;
  } ops[] = {
      {"neg", am_neg, NULL, 0},         {"abs", am_abs, NULL, 0},
      {"sign", am_sign, NULL, 0},       {"square", am_square, NULL, 0},
      {"sqrt", am_sqrt, NULL, 0},       {"rsqrt", am_rsqrt, NULL, 0},
      {"floor", am_floor, NULL, 0},     {"ceil", am_ceil, NULL, 0},
      {"round", am_round, NULL, 0},     {"exp", am_exp, NULL, 3},
      {"log", am_log, NULL, 3},         {"sigmoid", am_sigmoid, NULL, 4},
      {"tanh", am_tanh, NULL, 4},       {"add", NULL, am_add, 0},
      {"sub", NULL, am_sub, 0},         {"mul", NULL, am_mul, 0},
      {"div", NULL, am_div, 0},         {"maximum", NULL, am_maximum, 0},
      {"minimum", NULL, am_minimum, 0},
  };
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
    for (int bc = 0; bc < 3; bc++) { /* y full, y scalar, x scalar */
      if (ops[k].u && bc) break;
      /* the portable result first (g2), then each SIMD level (g1) */
      for (int mode = M_PORTABLE; mode >= 0; mode--) {
        set_mode(mode);
        am_scope_push();
        am_array ax = am_array_new_data(x, (int64_t[]){n}, 1, AM_F32);
        am_array ay = am_array_new_data(y, (int64_t[]){n}, 1, AM_F32);
        am_array res;
        if (ops[k].u)
          res = ops[k].u(ax);
        else if (bc == 0)
          res = ops[k].b(ax, ay);
        else if (bc == 1)
          res = ops[k].b(ax, am_float(y[5]));
        else
          res = ops[k].b(am_float(x[3]), ay);
        CHECK(!am_array_read(res, AM_F32, mode == M_PORTABLE ? g2 : g1, n),
              "%s: %s", ops[k].name, am_last_error());
        am_scope_pop();
        if (mode == M_PORTABLE) continue;
        int bad = 0;
        for (int64_t i = 0; i < n && bad < 3; i++) {
          bool ok;
          if (isnan(g1[i]) || isnan(g2[i]))
            ok = isnan(g1[i]) && isnan(g2[i]);
          else if (ops[k].ulps == 0)
            ok = !memcmp(&g1[i], &g2[i], 4); /* bitwise, signed zeros too */
          else if (isinf(g1[i]) || isinf(g2[i]))
            ok = g1[i] == g2[i];
          else
            ok = fabs((double)g1[i] - g2[i]) <= ops[k].ulps * ulp_f32(g2[i]);
          if (!ok) {
            bad++;
            CHECK(0, "%s (%s, bcast %d) [%lld]: %.9g, portable %.9g (x %.9g)",
                  ops[k].name, k_mode_names[mode], bc, (long long)i, g1[i],
                  g2[i], x[i]);
          }
        }
        if (!bad) t_pass++;
      }
    }
  }
  set_mode(M_BEST);
  printf("simd kernels: %s\n", am_cpu_has_avx512() ? "avx512"
                               : am_cpu_has_avx2() ? "avx2"
                                                   : "none");
  free(x);
  free(y);
  free(g1);
  free(g2);
}

/* Large strided and converted inputs: the multi-threaded general path
 * against the contiguous fast path. */
static void test_large_layouts(void) {
  am_scope_push();
  int64_t rows = 517, cols = 1031, n = rows * cols;
  int64_t shape[] = {rows, cols}, tshape[] = {cols, rows};
  t_rng r = {99};
  am_array base = t_rand(&r, tshape, 2, AM_F32, -5, 5);
  am_array xt = t_transposed(base);    /* [rows, cols], strided */
  am_array xc = am_astype(xt, AM_F32); /* contiguous copy */
  am_array row = t_rand(&r, (int64_t[]){cols}, 1, AM_F32, -5, 5);
  double *w = malloc((size_t)n * sizeof *w);
  CHECK(!am_array_read(am_add(am_exp(xc), row), AM_F64, w, n), "contig");
  t_expect(am_add(am_exp(xt), row), w, n, 1e-6, 0, "exp+bcast transposed");
  CHECK(!am_array_read(am_mul(xc, am_float(2)), AM_F64, w, n), "mul contig");
  t_expect(am_mul(xt, am_float(2)), w, n, 0, 0, "mul transposed");
  /* f16 in, converted per block */
  am_array h = am_astype(xt, AM_F16);
  double *hv = malloc((size_t)n * sizeof *hv);
  CHECK(!am_array_read(h, AM_F64, hv, n), "f16 read");
  for (int64_t i = 0; i < n; i++)
    hv[i] = tanh(hv[i]);
  t_expect(am_tanh(h), hv, n, 1.0 / 1024, 6e-8, "tanh f16 large");
  /* int32 broadcast outer sum */
  am_array ci = am_astype(am_mul(row, am_float(100)), AM_I32);
  am_array ri = am_astype(am_mul(am_astype(xc, AM_F32), am_float(100)), AM_I32);
  int32_t *cv = malloc((size_t)cols * sizeof *cv),
          *rv = malloc((size_t)n * sizeof *rv);
  CHECK(!am_array_read(ci, AM_I32, cv, cols) &&
            !am_array_read(ri, AM_I32, rv, n),
        "int reads");
  for (int64_t i = 0; i < n; i++)
    w[i] = (double)rv[i] - cv[i % cols];
  t_expect(am_sub(ri, ci), w, n, 0, 0, "i32 sub bcast large");
  (void)shape;
  free(w);
  free(hv);
  free(cv);
  free(rv);
  am_scope_pop();
}

/* ---------------------------------------------------------------------
 *  Donation, errors, shapes
 * --------------------------------------------------------------------- */

static void test_donation(void) {
  int64_t n = 1 << 16;
  am_scope_push();
  t_rng r = {5};
  am_array x = t_rand(&r, &n, 1, AM_F32, -2, 2);
  am_array y = t_rand(&r, &n, 1, AM_F32, -2, 2);
  float *xv = malloc((size_t)n * sizeof *xv), *yv = malloc((size_t)n * 4);
  CHECK(!am_array_read(x, AM_F32, xv, n) && !am_array_read(y, AM_F32, yv, n),
        "read inputs");
  am_array e = am_keep(am_exp(am_add(x, y)));
  am_scope_pop(); /* x, y and the sum now live only in the graph */
  am_memory_stats s0 = am_memory_get_stats();
  CHECK(am_eval(&e, 1) == AM_OK, "eval: %s", am_last_error());
  am_memory_stats s1 = am_memory_get_stats();
  CHECK(s1.n_donated >= s0.n_donated + 2,
        "add and exp should reuse dead input buffers (%llu -> %llu)",
        (unsigned long long)s0.n_donated, (unsigned long long)s1.n_donated);
  double *want = malloc((size_t)n * sizeof *want);
  for (int64_t i = 0; i < n; i++)
    want[i] = exp((double)(xv[i] + yv[i]));
  t_expect(e, want, n, 2e-6, 0, "exp(add) with donation");
  am_array_free(e);
  /* a same-dtype cast that takes over its input's buffer has nothing to
   * copy (and must not memcpy the buffer onto itself) */
  am_scope_push();
  am_array c = am_keep(am_astype(am_array_new_data(xv, &n, 1, AM_F32), AM_F32));
  am_scope_pop();
  s0 = am_memory_get_stats();
  for (int64_t i = 0; i < n; i++)
    want[i] = xv[i];
  t_expect(c, want, n, 0, 0, "astype to the same dtype, donated");
  CHECK(am_memory_get_stats().n_donated == s0.n_donated + 1,
        "same-dtype astype donated");
  am_array_free(c);
  /* a live input is never overwritten */
  am_scope_push();
  am_array a = am_array_new_data(xv, &n, 1, AM_F32);
  am_array b = am_neg(a);
  CHECK(am_eval(&b, 1) == AM_OK, "eval neg");
  const float *ad = am_array_data(a);
  CHECK(ad && ad[1] == xv[1] && am_array_data(b) != (const void *)ad,
        "live input kept its buffer");
  am_scope_pop();
  free(xv);
  free(yv);
  free(want);
}

static void test_errors(void) {
  am_scope_push();
  int64_t s23[] = {2, 3}, s4[] = {4}, s2[] = {2};
  am_array a = am_zeros(s23, 2, AM_F32), b = am_zeros(s4, 1, AM_F32);
  am_array e = am_add(a, b);
  t_expect_error(e, AM_ERR_SHAPE, "add", "add [2,3] [4]");
  CHECK(strstr(am_array_error(e), "[2,3]") && strstr(am_array_error(e), "[4]"),
        "message names the shapes: %s", am_array_error(e));
  t_expect_error(am_less(b, a), AM_ERR_SHAPE, "less", "less [4] [2,3]");
  t_expect_error(am_where(am_zeros(s2, 1, AM_BOOL), a, a), AM_ERR_SHAPE,
                 "where", "where [2] [2,3]");
  t_expect_error(am_neg(am_zeros(s2, 1, AM_BOOL)), AM_ERR_DTYPE, "neg",
                 "neg bool");
  t_expect_error(am_add(NULL, a), AM_ERR_INVALID_ARG, "add", "add NULL");
  t_expect_error(am_exp(NULL), AM_ERR_INVALID_ARG, "exp", "exp NULL");
  t_expect_error(am_where(a, NULL, a), AM_ERR_INVALID_ARG, "where",
                 "where NULL");
  t_expect_error(am_astype(a, (am_dtype)99), AM_ERR_DTYPE, "astype",
                 "astype bad dtype");
  /* errors propagate through later ops and surface at eval */
  am_array chain = am_exp(am_mul(e, am_float(2)));
  CHECK(am_array_status(chain) == AM_ERR_SHAPE, "propagated: %s",
        am_array_error(chain));
  CHECK(am_eval(&chain, 1) == AM_ERR_SHAPE, "eval of an error");
  CHECK(strstr(am_last_error(), "add") != NULL, "last error names add: %s",
        am_last_error());

  /* output_shapes checks dtypes itself (a replay does not go through the
   * public functions' promotion) */
  am_meta mf = {AM_F32, 1, {4}}, mi = {AM_I32, 1, {4}}, mb = {AM_BOOL, 1, {4}},
          m3 = {AM_F32, 1, {3}}, out;
  const am_meta *fi[] = {&mf, &mi}, *ii[] = {&mi}, *bb[] = {&mb},
                *f3[] = {&mf, &m3}, *wh[] = {&mb, &mf, &mi},
                *wok[] = {&mi, &mf, &mf};
  CHECK(am_prims[AM_OP_ADD]->output_shapes(fi, 2, NULL, &out, 1) ==
            AM_ERR_DTYPE,
        "add f32,i32 rejected");
  CHECK(am_prims[AM_OP_EXP]->output_shapes(ii, 1, NULL, &out, 1) ==
            AM_ERR_DTYPE,
        "exp i32 rejected");
  CHECK(am_prims[AM_OP_NEG]->output_shapes(bb, 1, NULL, &out, 1) ==
            AM_ERR_DTYPE,
        "neg bool rejected");
  CHECK(am_prims[AM_OP_MUL]->output_shapes(f3, 2, NULL, &out, 1) ==
            AM_ERR_SHAPE,
        "mul [4] [3] rejected");
  CHECK(am_prims[AM_OP_WHERE]->output_shapes(wh, 3, NULL, &out, 1) ==
            AM_ERR_DTYPE,
        "where f32,i32 rejected");
  CHECK(am_prims[AM_OP_WHERE]->output_shapes(wok, 3, NULL, &out, 1) == AM_OK &&
            out.dtype == AM_F32 && out.ndim == 1 && out.shape[0] == 4,
        "where i32 cond ok");
  CHECK(am_prims[AM_OP_LESS]->output_shapes(fi, 1, NULL, &out, 1) == AM_OK &&
            out.dtype == AM_BOOL,
        "less gives bool");
  am_clear_error();
  am_scope_pop();
}

static void test_shapes_small(void) {
  am_scope_push();
  int64_t s03[] = {0, 3}, s3[] = {3}, s1[] = {1}, s21[] = {2, 1},
          s12[] = {1, 2}, s13[] = {1, 3};
  am_array e = am_add(am_zeros(s03, 2, AM_F32), am_ones(s3, 1, AM_F32));
  CHECK(am_eval(&e, 1) == AM_OK, "empty eval");
  t_expect_shape(e, s03, 2, "[0,3] + [3]");
  am_array s = am_mul(am_float(3), am_full(s1, 0, 2, AM_F32));
  t_expect_shape(s, NULL, 0, "0-d * 0-d");
  t_expect(s, (double[]){6}, 1, 0, 0, "0-d value");
  am_array o = am_add(am_arange(0, 2, 1, AM_I32), am_zeros(s21, 2, AM_I32));
  t_expect(am_add(o, am_full(s12, 2, 10, AM_I32)), (double[]){10, 11, 10, 11},
           4, 0, 0, "[2] + [2,1] + [1,2]");
  am_array w = am_where(am_full(s1, 1, 1, AM_BOOL), am_zeros(s21, 2, AM_F32),
                        am_ones(s13, 2, AM_F32));
  t_expect_shape(w, (int64_t[]){2, 3}, 2, "where [1] [2,1] [1,3]");
  /* a broadcast view (stride 0) as input */
  am_array base = am_arange(0, 3, 1, AM_F32);
  am_array bv = t_view(base, (int64_t[]){2, 3}, 2, (int64_t[]){0, 1}, 0);
  t_expect(am_exp(bv), (double[]){1, M_E, M_E * M_E, 1, M_E, M_E * M_E}, 6,
           2e-6, 0, "exp of a stride-0 view");
  am_array one = t_view(base, (int64_t[]){4}, 1, (int64_t[]){0}, 2);
  t_expect(am_add(one, am_float(1)), (double[]){3, 3, 3, 3}, 4, 0, 0,
           "stride-0 view + scalar");
  am_array b8 = am_astype(base, AM_I8);
  am_array v8 = t_view(b8, s3, 1, (int64_t[]){0}, 2);
  t_expect(am_sub(v8, b8), (double[]){2, 1, 0}, 3, 0, 0,
           "i8 stride-0 view - i8");
  am_scope_pop();
}

int main(void) {
  test_hand_values();
  test_special_bits();
  test_promotion();
  test_int_edges();
  test_errors();
  test_shapes_small();
  test_donation();
  test_golden();
  test_simd_vs_portable();
  test_accuracy();
  test_large_layouts();
  return t_summary();
}
