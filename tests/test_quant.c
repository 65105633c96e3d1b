/*
 * test_quant — quantize, dequantize, quantized_embedding, quantized_matmul,
 * gather_qmm and gather_mm: MLX goldens (packed words, scales and biases
 * bit-exact; dequantize exact; matmuls within float tolerance), each run
 * on contiguous and strided inputs; hand-computed cases; a float64
 * reference for the matmuls on many shapes, modes and layouts (grouped,
 * sorted and naive paths); edge cases and errors.
 */
#include "ops/quant_formats.h"
#include "test_internal.h"

/* ------------------------------------------------------------ layouts */

/* Same values, stored with the last two axes swapped and viewed back: a
 * transposed layout (the last axis is not contiguous). */
static am_array colmajor(am_array x) {
  int nd = am_array_ndim(x);
  if (nd < 2) return t_spread(x);
  int perm[AM_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    perm[d] = d;
  perm[nd - 2] = nd - 1;
  perm[nd - 1] = nd - 2;
  am_array t = am_transpose(x, perm, nd);
  /* materialize t contiguously, then view it transposed back */
  void *v = t_read_native(t);
  am_array c = am_array_new_data(v, am_array_shape(t), nd, am_array_dtype(t));
  free(v);
  if (am_eval(&c, 1) != AM_OK) return c;
  int64_t sh[AM_MAX_DIMS], st[AM_MAX_DIMS];
  for (int d = 0; d < nd; d++) {
    sh[d] = am_array_shape(c)[perm[d]];
    st[d] = c->strides[perm[d]];
  }
  return t_view(c, sh, nd, st, 0);
}

static am_array layout(am_array x, int mode) {
  return !x ? x : mode == 0 ? x : mode == 1 ? t_spread(x) : colmajor(x);
}

/* ------------------------------------------------------ golden helpers */

static am_array garr(const t_gcase *c, const char *key) {
  const t_garr *a = t_gcase_arr(c, key);
  return a ? t_garr_array(a) : am_error_array(AM_ERR_IO, "missing %s", key);
}

static bool has_arr(const t_gcase *c, const char *key) {
  for (int i = 0; i < c->n; i++)
    if (!strcmp(c->arr[i].key, key)) return true;
  return false;
}

static int64_t P(const t_gcase *c, int i) {
  const t_garr *p = t_gcase_arr(c, "p");
  return p && i < p->n ? (int64_t)p->v[i] : 0;
}

/* ------------------------------------------------ quantize goldens */

static void run_quant_case(const t_gcase *c, int mode) {
  char what[200];
  am_scope_push();
  am_quant_mode qm = (am_quant_mode)P(c, 0);
  int gs = (int)P(c, 1), bits = (int)P(c, 2);
  am_array g = has_arr(c, "g") ? garr(c, "g") : NULL;
  am_array w = layout(garr(c, "w"), mode), q[3];
  am_status s = am_quantize(w, gs, bits, qm, g, q);
  snprintf(what, sizeof what, "%s layout %d: quantize", c->name, mode);
  CHECK(s == AM_OK, "%s: %s", what, am_last_error());
  snprintf(what, sizeof what, "%s layout %d: wq", c->name, mode);
  t_expect_garr(q[0], t_gcase_arr(c, "wq"), 0, 0, what);
  snprintf(what, sizeof what, "%s layout %d: scales", c->name, mode);
  t_expect_garr(q[1], t_gcase_arr(c, "scales"), 0, 0, what);
  if (qm == AM_QUANT_AFFINE) {
    snprintf(what, sizeof what, "%s layout %d: biases", c->name, mode);
    t_expect_garr(q[2], t_gcase_arr(c, "biases"), 0, 0, what);
  } else {
    CHECK(q[2] == NULL, "%s: biases output for an fp mode", c->name);
  }
  /* dequantize MLX's words (not ours): exact */
  static const char *const keys[] = {"deq", "deq_float32", "deq_float16"};
  static const am_dtype dts[] = {AM_DTYPE_COUNT, AM_F32, AM_F16};
  for (int k = 0; k < 3; k++) {
    if (!has_arr(c, keys[k])) continue;
    am_array wq = layout(garr(c, "wq"), mode);
    am_array sc = layout(garr(c, "scales"), mode);
    am_array bi =
        qm == AM_QUANT_AFFINE ? layout(garr(c, "biases"), mode) : NULL;
    am_array d = am_dequantize(wq, sc, bi, gs, bits, qm, g, dts[k]);
    snprintf(what, sizeof what, "%s layout %d: %s", c->name, mode, keys[k]);
    const t_garr *want = t_gcase_arr(c, keys[k]);
    if (g && want) { /* MLX returns float32 with a global scale */
      t_garr w2 = *want;
      w2.dtype = dts[k] == AM_DTYPE_COUNT ? AM_BF16 : dts[k];
      /* amorph rounds MLX's float32 values once to the dtype */
      am_array r = am_astype(t_garr_array(want), w2.dtype);
      double *v = malloc((size_t)want->n * sizeof *v);
      if (am_array_read(r, AM_F64, v, want->n) == AM_OK) {
        w2.v = v;
        t_expect_garr(d, &w2, 0, 0, what);
      }
      free(v);
    } else {
      t_expect_garr(d, want, 0, 0, what);
    }
  }
  am_scope_pop();
}

static void run_embed_case(const t_gcase *c, int mode) {
  char what[200];
  snprintf(what, sizeof what, "%s layout %d", c->name, mode);
  am_scope_push();
  am_quant_mode qm = (am_quant_mode)P(c, 0);
  am_array bi = qm == AM_QUANT_AFFINE ? layout(garr(c, "biases"), mode) : NULL;
  am_array y = am_quantized_embedding(
      layout(garr(c, "wq"), mode), layout(garr(c, "scales"), mode), bi,
      layout(garr(c, "idx"), mode), (int)P(c, 1), (int)P(c, 2), qm,
      AM_DTYPE_COUNT);
  t_expect_garr(y, t_gcase_arr(c, "out"), 0, 0, what);
  am_scope_pop();
}

static void test_quant_goldens(void) {
  t_golden *g = t_golden_load("golden/quant.txt");
  if (!g) return;
  int nq = 0;
  for (int i = 0; i < g->n; i++) {
    const t_gcase *c = &g->cases[i];
    for (int mode = 0; mode < 3; mode++) {
      if (!strncmp(c->name, "q_", 2)) {
        run_quant_case(c, mode);
        nq += mode == 0;
      } else if (!strncmp(c->name, "e_", 2)) {
        run_embed_case(c, mode);
      }
    }
  }
  CHECK(nq >= 100, "only %d quantize golden cases", nq);
  t_golden_free(g);
}

/* ------------------------------------------------------ hand-computed */

static uint32_t word(am_array x, int64_t i) {
  uint32_t *v = t_read_native(x);
  uint32_t r = v[i];
  free(v);
  return r;
}

static void test_hand(void) {
  am_scope_push();
  /* affine 4-bit, one group of 32: w = 0..31. |min| <= |max|, so the
   * edge is the max (31) and the scale negative: s = -31/15 (q0 = -15
   * exactly), bias 31, q_j = rint((31 - j) * 15/31). */
  float v[32];
  for (int j = 0; j < 32; j++)
    v[j] = (float)j;
  int64_t sh[2] = {1, 32};
  am_array w = am_array_new_data(v, sh, 2, AM_F32), q[3];
  CHECK(am_quantize(w, 32, 4, AM_QUANT_AFFINE, NULL, q) == AM_OK, "q: %s",
        am_last_error());
  CHECK(word(q[0], 0) == 0xCCDDEEFFu, "affine word 0 = %08x", word(q[0], 0));
  t_expect(q[1], (double[]){31.0f / -15.0f}, 1, 0, 0, "affine scale");
  t_expect(q[2], (double[]){31}, 1, 0, 0, "affine bias");

  /* dequantize: codes 0..15, 0..15 at 4 bits, scale .5, bias -1 */
  uint32_t wq[4] = {0x76543210u, 0xfedcba98u, 0x76543210u, 0xfedcba98u};
  int64_t wsh[2] = {1, 4}, ssh[2] = {1, 1};
  am_array d = am_dequantize(am_array_new_data(wq, wsh, 2, AM_U32),
                             am_array_new_data((float[]){0.5f}, ssh, 2, AM_F32),
                             am_array_new_data((float[]){-1}, ssh, 2, AM_F32),
                             32, 4, AM_QUANT_AFFINE, NULL, AM_DTYPE_COUNT);
  double want[32];
  for (int j = 0; j < 32; j++)
    want[j] = (j % 16) * 0.5 - 1;
  t_expect(d, want, 32, 0, 0, "affine dequantize");

  /* 3-bit stream: codes c0..c7 in 3 bytes, b0 = c0 | c1<<3 | (c2&3)<<6 */
  uint8_t codes[32], row[12] = {0};
  for (int j = 0; j < 32; j++)
    codes[j] = (uint8_t)((j * 5 + 3) & 7);
  am_q_pack(row, codes, 32, 3);
  CHECK(row[0] == (uint8_t)(codes[0] | codes[1] << 3 | (codes[2] & 3) << 6),
        "3-bit byte 0");
  CHECK(row[1] == (uint8_t)(codes[2] >> 2 | codes[3] << 1 | codes[4] << 4 |
                            (codes[5] & 1) << 7),
        "3-bit byte 1");
  for (int j = 0; j < 32; j++)
    CHECK(am_q_code(row, j, 3) == codes[j], "3-bit code %d", j);

  /* mxfp4: amax 6 -> scale 2^0 (byte 127); 6 -> 7, -6 -> 15, .5 -> 1,
   * .25 and -.25 are ties that go to the first entry (+0, code 0),
   * 1.75 -> 2 (1.5 and 2 tie: first is 1.5, code 3), -3 -> 13. */
  float m[32] = {6, -6, 0.5f, 0.25f, -0.25f, 1.75f, -3, 0};
  am_array mw = am_array_new_data(m, sh, 2, AM_F32);
  CHECK(am_quantize(mw, 0, 0, AM_QUANT_MXFP4, NULL, q) == AM_OK, "mxfp4");
  CHECK(word(q[0], 0) == 0x0d3001f7u, "mxfp4 word 0 = %08x", word(q[0], 0));
  t_expect(q[1], (double[]){127}, 1, 0, 0, "mxfp4 scale");
  /* mxfp8: 448 -> scale 2^0, E4M3 0x7e; -1 -> 0xb8 */
  float m8[32] = {448, -1};
  CHECK(am_quantize(am_array_new_data(m8, sh, 2, AM_F32), 0, 0, AM_QUANT_MXFP8,
                    NULL, q) == AM_OK,
        "mxfp8");
  CHECK(word(q[0], 0) == 0x0000b87eu, "mxfp8 word 0 = %08x", word(q[0], 0));
  /* nvfp4: amax 6 -> scale e4m3(1) = 0x38; 3 -> code 5 */
  float n4[16] = {6, 3};
  int64_t sh16[2] = {1, 16};
  CHECK(am_quantize(am_array_new_data(n4, sh16, 2, AM_F32), 0, 0,
                    AM_QUANT_NVFP4, NULL, q) == AM_OK,
        "nvfp4");
  CHECK(word(q[0], 0) == 0x57u, "nvfp4 word 0 = %08x", word(q[0], 0));
  t_expect(q[1], (double[]){0x38}, 1, 0, 0, "nvfp4 scale");
  /* mxfp4 below E8M0's range: amax/6 = 2^-130 -> exponent clamped to
   * -127 (byte 0); 6*2^-130 / 2^-127 = .75, a tie of .5 and 1: code 1 */
  float t[32] = {ldexpf(6, -130)};
  CHECK(am_quantize(am_array_new_data(t, sh, 2, AM_F32), 0, 0, AM_QUANT_MXFP4,
                    NULL, q) == AM_OK,
        "mxfp4 tiny");
  t_expect(q[1], (double[]){0}, 1, 0, 0, "mxfp4 clamped scale");
  CHECK(word(q[0], 0) == 1u, "mxfp4 tiny word 0 = %08x", word(q[0], 0));
  /* fp8 conversions: MLX's saturation and 0x7f = 480 */
  CHECK(am_q_f32_to_fp8(1e6f) == 0x7e && am_q_f32_to_fp8(-NAN) == 0xfe,
        "fp8 saturation");
  CHECK(am_q_fp8_to_f32(0x7f) == 480 && am_q_fp8_to_f32(0x01) == 0x1p-9f,
        "fp8 decode");
  am_scope_pop();
}

/* ------------------------------------------------------ empty, errors */

static void test_empty(void) {
  am_scope_push();
  int64_t sh[3] = {2, 0, 64};
  am_array q[3];
  CHECK(am_quantize(am_zeros(sh, 3, AM_F32), 64, 4, AM_QUANT_AFFINE, NULL, q) ==
            AM_OK,
        "empty quantize");
  t_expect_shape(q[0], (int64_t[]){2, 0, 8}, 3, "empty wq");
  t_expect_shape(q[1], (int64_t[]){2, 0, 1}, 3, "empty scales");
  CHECK(am_eval(q, 3) == AM_OK, "empty eval");
  am_array d = am_dequantize(q[0], q[1], q[2], 64, 4, AM_QUANT_AFFINE, NULL,
                             AM_DTYPE_COUNT);
  t_expect(d, NULL, 0, 0, 0, "empty dequantize");
  t_expect_shape(d, sh, 3, "empty dequantize shape");
  int64_t sk[2] = {3, 0};
  CHECK(am_quantize(am_zeros(sk, 2, AM_BF16), 0, 0, AM_QUANT_MXFP4, NULL, q) ==
            AM_OK,
        "K = 0 quantize");
  t_expect_shape(q[0], (int64_t[]){3, 0}, 2, "K = 0 wq");
  t_expect(am_dequantize(q[0], q[1], NULL, 0, 0, AM_QUANT_MXFP4, NULL,
                         AM_DTYPE_COUNT),
           NULL, 0, 0, 0, "K = 0 dequantize");
  /* embedding with no indices */
  int64_t ts[2] = {4, 32};
  CHECK(am_quantize(am_ones(ts, 2, AM_F32), 32, 4, AM_QUANT_AFFINE, NULL, q) ==
            AM_OK,
        "table");
  int64_t z = 0;
  am_array e = am_quantized_embedding(q[0], q[1], q[2], am_zeros(&z, 1, AM_I32),
                                      32, 4, AM_QUANT_AFFINE, AM_F16);
  t_expect_shape(e, (int64_t[]){0, 32}, 2, "empty embedding");
  t_expect(e, NULL, 0, 0, 0, "empty embedding eval");
  /* a 0-d index gives one row */
  e = am_quantized_embedding(q[0], q[1], q[2], am_int(-1), 32, 4,
                             AM_QUANT_AFFINE, AM_DTYPE_COUNT);
  double ones[32];
  for (int i = 0; i < 32; i++)
    ones[i] = 1;
  t_expect(e, ones, 32, 0, 0, "0-d index embedding");
  t_expect_shape(e, (int64_t[]){32}, 1, "0-d index shape");
  am_scope_pop();
}

static void test_errors(void) {
  am_scope_push();
  int64_t sh[2] = {2, 64}, s1[1] = {64}, sbad[2] = {2, 48};
  am_array w = am_ones(sh, 2, AM_F32), q[3];
  CHECK(am_quantize(w, 64, 4, AM_QUANT_MXFP4, NULL, q) == AM_ERR_INVALID_ARG,
        "mxfp4 group 64");
  t_expect_error(q[0], AM_ERR_INVALID_ARG, "quantize", "mxfp4 group 64");
  CHECK(am_quantize(w, 64, 7, AM_QUANT_AFFINE, NULL, q) == AM_ERR_INVALID_ARG,
        "7 bits");
  t_expect_error(q[2], AM_ERR_INVALID_ARG, "quantize", "7 bits");
  CHECK(am_quantize(w, 16, 4, AM_QUANT_AFFINE, NULL, q) == AM_ERR_INVALID_ARG,
        "affine group 16");
  am_quantize(am_ones(s1, 1, AM_F32), 64, 4, AM_QUANT_AFFINE, NULL, q);
  t_expect_error(q[0], AM_ERR_SHAPE, "quantize", "1-d w");
  am_quantize(am_ones(sbad, 2, AM_F32), 32, 4, AM_QUANT_AFFINE, NULL, q);
  t_expect_error(q[1], AM_ERR_SHAPE, "quantize", "K not a group multiple");
  am_quantize(am_ones(sh, 2, AM_I32), 32, 4, AM_QUANT_AFFINE, NULL, q);
  t_expect_error(q[0], AM_ERR_DTYPE, "quantize", "int w");
  am_quantize(am_ones(sh, 2, AM_F64), 32, 4, AM_QUANT_AFFINE, NULL, q);
  t_expect_error(q[0], AM_ERR_DTYPE, "quantize", "f64 w");
  am_quantize(w, 32, 4, AM_QUANT_AFFINE, am_scalar(1, AM_F32), q);
  t_expect_error(q[0], AM_ERR_INVALID_ARG, "quantize", "global with affine");
  am_quantize(w, 0, 0, AM_QUANT_NVFP4, am_scalar(1, AM_F16), q);
  t_expect_error(q[0], AM_ERR_DTYPE, "quantize", "f16 global");
  am_quantize(w, 0, 0, AM_QUANT_NVFP4, am_ones(sh, 2, AM_F32), q);
  t_expect_error(q[0], AM_ERR_SHAPE, "quantize", "global not scalar");
  am_quantize(w, 0, 0, (am_quant_mode)9, NULL, q);
  t_expect_error(q[0], AM_ERR_INVALID_ARG, "quantize", "bad mode");
  CHECK(am_quantize(w, 0, 0, AM_QUANT_AFFINE, NULL, NULL) == AM_ERR_INVALID_ARG,
        "NULL outs");
  CHECK(am_quantize(NULL, 0, 0, AM_QUANT_AFFINE, NULL, q) == AM_ERR_INVALID_ARG,
        "NULL w");

  CHECK(am_quantize(w, 64, 4, AM_QUANT_AFFINE, NULL, q) == AM_OK, "q");
  am_array fq[3];
  CHECK(am_quantize(w, 0, 0, AM_QUANT_MXFP4, NULL, fq) == AM_OK, "fq");
  t_expect_error(am_dequantize(q[0], q[1], NULL, 64, 4, AM_QUANT_AFFINE, NULL,
                               AM_DTYPE_COUNT),
                 AM_ERR_INVALID_ARG, "dequantize", "no biases");
  t_expect_error(am_dequantize(fq[0], fq[1], fq[1], 0, 0, AM_QUANT_MXFP4, NULL,
                               AM_DTYPE_COUNT),
                 AM_ERR_INVALID_ARG, "dequantize", "biases for mxfp4");
  t_expect_error(am_dequantize(q[0], q[1], q[2], 32, 4, AM_QUANT_AFFINE, NULL,
                               AM_DTYPE_COUNT),
                 AM_ERR_SHAPE, "dequantize", "wrong group size");
  t_expect_error(am_dequantize(am_astype(q[0], AM_I32), q[1], q[2], 64, 4,
                               AM_QUANT_AFFINE, NULL, AM_DTYPE_COUNT),
                 AM_ERR_DTYPE, "dequantize", "int32 words");
  t_expect_error(am_dequantize(fq[0], am_astype(fq[1], AM_F32), NULL, 0, 0,
                               AM_QUANT_MXFP4, NULL, AM_DTYPE_COUNT),
                 AM_ERR_DTYPE, "dequantize", "float mx scales");
  t_expect_error(
      am_dequantize(q[0], q[1], q[2], 64, 4, AM_QUANT_AFFINE, NULL, AM_I32),
      AM_ERR_DTYPE, "dequantize", "int output");
  t_expect_error(am_dequantize(q[0], am_reshape(q[1], (int64_t[]){1, 2}, 2),
                               q[2], 64, 4, AM_QUANT_AFFINE, NULL,
                               AM_DTYPE_COUNT),
                 AM_ERR_SHAPE, "dequantize", "scales shape");
  t_expect_error(am_dequantize(q[0], NULL, q[2], 64, 4, AM_QUANT_AFFINE, NULL,
                               AM_DTYPE_COUNT),
                 AM_ERR_INVALID_ARG, "dequantize", "NULL scales");

  am_array e = am_quantized_embedding(q[0], q[1], q[2], am_int(2), 64, 4,
                                      AM_QUANT_AFFINE, AM_DTYPE_COUNT);
  CHECK(am_eval(&e, 1) == AM_ERR_INVALID_ARG &&
            strstr(am_last_error(), "quantized_embedding"),
        "embedding index out of range: %s", am_last_error());
  e = am_quantized_embedding(q[0], q[1], q[2], am_int(-3), 64, 4,
                             AM_QUANT_AFFINE, AM_DTYPE_COUNT);
  CHECK(am_eval(&e, 1) == AM_ERR_INVALID_ARG, "embedding index -3");
  t_expect_error(am_quantized_embedding(q[0], q[1], q[2], am_float(1), 64, 4,
                                        AM_QUANT_AFFINE, AM_DTYPE_COUNT),
                 AM_ERR_DTYPE, "quantized_embedding", "float index");
  int64_t s3[3] = {1, 2, 64};
  am_array q3[3];
  am_quantize(am_ones(s3, 3, AM_F32), 64, 4, AM_QUANT_AFFINE, NULL, q3);
  t_expect_error(am_quantized_embedding(q3[0], q3[1], q3[2], am_int(0), 64, 4,
                                        AM_QUANT_AFFINE, AM_DTYPE_COUNT),
                 AM_ERR_SHAPE, "quantized_embedding", "3-d table");
  am_scope_pop();
}

/* Quantizing then dequantizing random data of every format stays within
 * the format's resolution, on big rows spread over threads. */
static void test_roundtrip(void) {
  t_rng r = {7};
  am_scope_push();
  static const int bits[] = {2, 3, 4, 5, 6, 8};
  for (int b = 0; b < 6; b++) {
    int64_t sh[2] = {33, 512};
    am_array w = t_rand(&r, sh, 2, AM_F32, -1, 1), q[3];
    CHECK(am_quantize(w, 32, bits[b], AM_QUANT_AFFINE, NULL, q) == AM_OK,
          "rt q");
    am_array d = am_dequantize(q[0], q[1], q[2], 32, bits[b], AM_QUANT_AFFINE,
                               NULL, AM_F32);
    am_array err = am_sub(d, w);
    int64_t n = 33 * 512;
    float *e = malloc((size_t)n * 4);
    CHECK(am_array_read(err, AM_F32, e, n) == AM_OK, "rt read");
    /* the edge rule may clip the far extreme by up to one step */
    float worst = 0, tol = 2.0f / (float)((1 << bits[b]) - 1) * 1.01f;
    for (int64_t i = 0; i < n; i++)
      worst = fabsf(e[i]) > worst ? fabsf(e[i]) : worst;
    CHECK(worst <= tol, "affine %d bits: error %g > %g", bits[b], worst, tol);
    free(e);
  }
  am_scope_pop();
}

/* ========================================================= matmuls */

/* |got - want| <= atol + rtol * max|want| for every element. */
static void expect_close(am_array y, const double *want, int64_t n, double rtol,
                         double atol, const char *what) {
  double *got = malloc((size_t)(n ? n : 1) * sizeof *got), mx = 0;
  am_status s = am_eval(&y, 1);
  CHECK(s == AM_OK, "%s: eval: %s", what, am_last_error());
  if (s || am_array_size(y) != n) {
    CHECK(s || 0, "%s: size %lld, want %lld", what, (long long)am_array_size(y),
          (long long)n);
    free(got);
    return;
  }
  CHECK(am_array_read(y, AM_F64, got, n) == AM_OK, "%s: read", what);
  for (int64_t i = 0; i < n; i++)
    mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 3; i++)
    if (!(fabs(got[i] - want[i]) <= atol + rtol * mx)) {
      bad++;
      CHECK(0, "%s: element %lld = %.8g, want %.8g (max %.4g)", what,
            (long long)i, got[i], want[i], mx);
    }
  if (!bad) t_pass++;
  free(got);
}

static double out_rtol(am_dtype t) {
  return t == AM_BF16 ? 1.6e-2 : t == AM_F16 ? 2e-3 : 2e-5;
}

static void run_mm_golden(const t_gcase *c, int mode) {
  char what[200];
  snprintf(what, sizeof what, "%s layout %d", c->name, mode);
  am_scope_push();
  const t_garr *want = t_gcase_arr(c, "out");
  am_array y;
  if (!strncmp(c->name, "mm_", 3)) {
    am_array lhs = has_arr(c, "lhs") ? layout(garr(c, "lhs"), mode) : NULL;
    am_array rhs = has_arr(c, "rhs") ? layout(garr(c, "rhs"), mode) : NULL;
    y = am_gather_mm(layout(garr(c, "a"), mode), layout(garr(c, "b"), mode),
                     lhs, rhs, P(c, 0));
  } else {
    am_quant_mode qm = (am_quant_mode)P(c, 0);
    int gs = (int)P(c, 1), bits = (int)P(c, 2);
    bool tr = P(c, 3) != 0;
    am_array x = layout(garr(c, "x"), mode);
    am_array wq = layout(garr(c, "wq"), mode);
    am_array sc = layout(garr(c, "scales"), mode);
    am_array bi = has_arr(c, "biases") ? layout(garr(c, "biases"), mode) : NULL;
    if (!strncmp(c->name, "m_", 2)) {
      y = am_quantized_matmul(x, wq, sc, bi, tr, gs, bits, qm);
    } else {
      am_array lhs = has_arr(c, "lhs") ? layout(garr(c, "lhs"), mode) : NULL;
      am_array rhs = has_arr(c, "rhs") ? layout(garr(c, "rhs"), mode) : NULL;
      y = am_gather_qmm(x, wq, sc, bi, lhs, rhs, tr, gs, bits, qm, P(c, 4));
    }
  }
  if (want) {
    t_expect_shape(y, want->shape, want->ndim, what);
    CHECK(am_array_dtype(y) == want->dtype, "%s: dtype %s", what,
          am_dtype_name(am_array_dtype(y)));
    /* MLX accumulates bfloat16 products in bfloat16 on some paths */
    double rt = want->dtype == AM_F32 ? 1e-5 : 2e-2;
    expect_close(y, want->v, want->n, rt, 1e-5, what);
  }
  am_scope_pop();
}

static void test_mm_goldens(void) {
  t_golden *g = t_golden_load("golden/quant.txt");
  if (!g) return;
  int n = 0;
  for (int i = 0; i < g->n; i++) {
    const t_gcase *c = &g->cases[i];
    if (strncmp(c->name, "m_", 2) && strncmp(c->name, "g_", 2) &&
        strncmp(c->name, "mm_", 3))
      continue;
    n++;
    for (int mode = 0; mode < 3; mode++)
      run_mm_golden(c, mode);
  }
  CHECK(n >= 30, "only %d matmul golden cases", n);
  t_golden_free(g);
}

/* ---------------------------------------------- float64 host reference */

/* Code i of a row of words: an independent reading of the bit stream. */
static unsigned h_code(const uint32_t *row, int64_t i, int bits) {
  int64_t bit = i * bits, wi = bit / 32;
  int sh = (int)(bit % 32);
  uint64_t v = row[wi];
  if (sh + bits > 32) v |= (uint64_t)row[wi + 1] << 32;
  return (unsigned)((v >> sh) & ((1u << bits) - 1u));
}

static double *read_f64(am_array x) {
  int64_t n = am_array_size(x);
  double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  if (am_array_read(x, AM_F64, v, n) != AM_OK)
    CHECK(0, "read: %s", am_last_error());
  return v;
}

/* Dequantized matrices [n_mat][rows][cols] from wq/scales/biases. */
static double *h_dequant(am_array wq, am_array sc, am_array bi,
                         am_quant_mode qm, int gs, int bits, int64_t *rows,
                         int64_t *cols) {
  int nd = am_array_ndim(wq);
  int64_t kp = am_array_dim(wq, -1), nr = am_array_size(wq) / (kp ? kp : 1);
  *rows = am_array_dim(wq, -2);
  *cols = kp * 32 / bits;
  (void)nd;
  uint32_t *w = t_read_native(am_astype(wq, AM_U32));
  double *s = read_f64(sc), *b = bi ? read_f64(bi) : NULL;
  int64_t ng = *cols / gs;
  double *d = malloc((size_t)(nr * *cols + 1) * sizeof *d);
  for (int64_t r = 0; r < nr; r++)
    for (int64_t i = 0; i < *cols; i++) {
      unsigned q = h_code(w + r * kp, i, bits);
      double sv = s[r * ng + i / gs], v;
      if (qm == AM_QUANT_AFFINE) {
        v = sv * q + b[r * ng + i / gs];
      } else {
        uint8_t sb = (uint8_t)sv;
        double scale = qm == AM_QUANT_NVFP4 ? am_q_fp8_to_f32(sb)
                                            : ldexp(1.0, (int)sb - 127);
        v = (qm == AM_QUANT_MXFP8 ? am_q_fp8_to_f32((uint8_t)q)
                                  : am_q_fp4_lut[q]) *
            scale;
      }
      d[r * *cols + i] = v;
    }
  free(w);
  free(s);
  free(b);
  return d;
}

/* out[p][m][n] = sum_k x[lhs[p]][m][k] * W(rhs[p]), W of [N][K] (tr) or
 * [K][N]; also the sum of |terms| per element (for the tolerance). */
static void h_gather(const double *x, int64_t M, int64_t K, const double *wd,
                     int64_t N, bool tr, int64_t P, const int64_t *lhs,
                     const int64_t *rhs, double *out, double *mag) {
  for (int64_t p = 0; p < P; p++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double acc = 0, a = 0;
        const double *xr = x + (lhs[p] * M + m) * K;
        const double *we = wd + rhs[p] * N * K;
        for (int64_t k = 0; k < K; k++) {
          double t = xr[k] * (tr ? we[n * K + k] : we[k * N + n]);
          acc += t;
          a += fabs(t);
        }
        out[(p * M + m) * N + n] = acc;
        mag[(p * M + m) * N + n] = a;
      }
}

static void expect_ref(am_array y, const double *want, const double *mag,
                       int64_t n, am_dtype odt, const char *what) {
  if (am_array_status(y)) {
    CHECK(0, "%s: %s", what, am_array_error(y));
    return;
  }
  CHECK(am_array_dtype(y) == odt, "%s: dtype %s, want %s", what,
        am_dtype_name(am_array_dtype(y)), am_dtype_name(odt));
  double *got = read_f64(y);
  double rt = out_rtol(odt);
  double mt = 2e-6;
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 3; i++)
    if (!(fabs(got[i] - want[i]) <= mt * mag[i] + rt * fabs(want[i]) + 1e-30)) {
      bad++;
      CHECK(0, "%s: element %lld = %.8g, want %.8g", what, (long long)i, got[i],
            want[i]);
    }
  if (!bad) t_pass++;
  free(got);
}

typedef struct {
  am_quant_mode qm;
  int gs, bits;
  bool tr;
  am_dtype xdt, sdt;
} mm_cfg;

/* Quantized random weights: n_mat matrices of rows x cols (dequantized
 * layout); q[0..2] and their host dequantization. */
static double *make_weights(t_rng *r, const mm_cfg *c, int64_t n_mat,
                            int64_t rows, int64_t cols, am_array *q,
                            int wlayout) {
  int64_t sh[3] = {n_mat, rows, cols};
  am_array w = t_rand(r, sh, 3, c->sdt, -1, 1);
  CHECK(am_quantize(w, c->gs, c->bits, c->qm, NULL, q) == AM_OK, "quantize");
  for (int i = 0; i < 3; i++)
    q[i] = layout(q[i], wlayout);
  int64_t rr, cc;
  return h_dequant(q[0], q[1], q[2], c->qm, c->gs, c->bits, &rr, &cc);
}

static am_dtype odt_of(const mm_cfg *c) {
  return c->qm == AM_QUANT_AFFINE ? am_result_type(c->xdt, c->sdt) : c->xdt;
}

/* quantized_matmul of x [M, K] (or [K]) and one matrix, vs the host. */
static void check_qmm(t_rng *r, const mm_cfg *c, int64_t M, int64_t N,
                      int64_t K, int lay, bool vec) {
  char what[160];
  snprintf(what, sizeof what,
           "qmm %s b%d g%d tr%d x %s s %s M%lld N%lld K%lld lay%d",
           am_q_mode_name(c->qm), c->bits, c->gs, c->tr, am_dtype_name(c->xdt),
           am_dtype_name(c->sdt), (long long)M, (long long)N, (long long)K,
           lay);
  am_scope_push();
  am_array q[3];
  double *wd = make_weights(r, c, 1, c->tr ? N : K, c->tr ? K : N, q, lay);
  int64_t xs[2] = {M, K};
  am_array x =
      vec ? t_rand(r, &K, 1, c->xdt, -1, 1) : t_rand(r, xs, 2, c->xdt, -1, 1);
  double *xd = read_f64(x);
  am_array y = am_quantized_matmul(layout(x, lay), q[0], q[1], q[2], c->tr,
                                   c->gs, c->bits, c->qm);
  int64_t P = 1, z = 0, n = M * N;
  double *want = malloc((size_t)(n + 1) * sizeof *want);
  double *mag = malloc((size_t)(n + 1) * sizeof *mag);
  h_gather(xd, M, K, wd, N, c->tr, P, &z, &z, want, mag);
  if (vec)
    t_expect_shape(y, &N, 1, what);
  else
    t_expect_shape(y, (int64_t[]){M, N}, 2, what);
  expect_ref(y, want, mag, n, odt_of(c), what);
  free(wd);
  free(xd);
  free(want);
  free(mag);
  am_scope_pop();
}

static void test_qmm_ref(void) {
  t_rng r = {11};
  static const int bits[] = {2, 3, 4, 5, 6, 8}, gss[] = {32, 64, 128};
  static const am_dtype fts[] = {AM_F32, AM_BF16, AM_F16};
  int quick = t_quick();
  /* every affine format, both layouts, M = 1 (GEMV) and a few rows */
  for (int b = 0; b < 6; b++)
    for (int g = 0; g < 3; g++)
      for (int tr = 0; tr < 2; tr++) {
        mm_cfg c = {AM_QUANT_AFFINE, gss[g],          bits[b], tr,
                    AM_F32,          fts[(b + g) % 3]};
        check_qmm(&r, &c, 1, tr ? 21 : gss[g], tr ? 2 * gss[g] : 19, 0, false);
        check_qmm(&r, &c, 3, tr ? 5 : 2 * gss[g], tr ? gss[g] : 7,
                  (b + g + tr) % 3, false);
      }
  /* fp modes, activation dtypes, layouts */
  for (int m = 1; m < 4; m++)
    for (int tr = 0; tr < 2; tr++)
      for (int d = 0; d < 3; d++) {
        mm_cfg c = {(am_quant_mode)m, m == 3 ? 16 : 32,
                    m == 2 ? 8 : 4,   tr,
                    fts[d],           AM_F32};
        check_qmm(&r, &c, 2, tr ? 9 : 64, tr ? 96 : 11, d, false);
      }
  /* mixed dtypes: promotion of x and scales */
  mm_cfg mix = {AM_QUANT_AFFINE, 64, 4, true, AM_F16, AM_BF16};
  check_qmm(&r, &mix, 2, 6, 128, 0, false);
  mix.xdt = AM_BF16;
  mix.sdt = AM_F16;
  check_qmm(&r, &mix, 2, 6, 128, 1, false);
  /* the 4-bit fused kernels (K a multiple of 128), 1..5 x rows, float32
   * and bfloat16 activations, every group size and scale dtype */
  for (int g = 0; g < 3; g++)
    for (int xd = 0; xd < 2; xd++)
      for (int m = 1; m <= 5; m++) {
        mm_cfg c = {AM_QUANT_AFFINE,       gss[g],          4, true,
                    xd ? AM_BF16 : AM_F32, fts[(g + m) % 3]};
        check_qmm(&r, &c, m, 19, 384, m % 3, false);
      }
  /* many rows on one matrix (prefill): decoded panels and sgemm, every
   * mode, float and bfloat16 x */
  for (int m = 0; m < 4; m++) {
    mm_cfg c = {(am_quant_mode)m,         m == 3 ? 16 : m ? 32 : 64,
                m == 2 ? 8 : 4,           true,
                m % 2 ? AM_BF16 : AM_F32, AM_BF16};
    check_qmm(&r, &c, 70 + 3 * m, 33, 256, m % 3, false);
  }
  /* 1-d x */
  mm_cfg v = {AM_QUANT_AFFINE, 32, 4, true, AM_F32, AM_F32};
  check_qmm(&r, &v, 1, 10, 64, 0, true);
  /* big: several row/column blocks, K chunks, threads */
  mm_cfg big = {AM_QUANT_AFFINE, 128, 4, true, AM_F32, AM_BF16};
  check_qmm(&r, &big, quick ? 3 : 130, 40, 640, 0, false);
  big.tr = false;
  check_qmm(&r, &big, quick ? 3 : 131, 384, 40, 2, false);
  mm_cfg bigf = {AM_QUANT_MXFP4, 32, 4, true, AM_BF16, AM_F32};
  check_qmm(&r, &bigf, 1, 300, 1024, 0, false);
  bigf.qm = AM_QUANT_MXFP8;
  bigf.bits = 8;
  check_qmm(&r, &bigf, 5, 70, 512, 1, false);
}

/* gather_qmm / gather_mm with explicit pairs: x [X, M, K], nw matrices;
 * lhs/rhs of length P; `give` bit 0: pass lhs, bit 1: pass rhs (a missing
 * one must equal arange). Checked with grouping on and off. */
static void check_gather(t_rng *r, const mm_cfg *c, bool dense, int64_t X,
                         int64_t nw, int64_t M, int64_t N, int64_t K, int64_t P,
                         const int64_t *lhs, const int64_t *rhs, int give,
                         bool sorted, int lay) {
  char what[200];
  snprintf(what, sizeof what,
           "%s %s b%d tr%d M%lld N%lld K%lld P%lld give%d sorted%d lay%d",
           dense ? "gather_mm" : "gather_qmm", am_q_mode_name(c->qm), c->bits,
           c->tr, (long long)M, (long long)N, (long long)K, (long long)P, give,
           sorted, lay);
  am_scope_push();
  am_array q[3] = {NULL, NULL, NULL}, b = NULL;
  double *wd;
  if (dense) {
    int64_t bs[3] = {nw, K, N};
    b = t_rand(r, bs, 3, c->xdt, -1, 1);
    wd = read_f64(b);
    b = layout(b, lay);
  } else {
    wd = make_weights(r, c, nw, c->tr ? N : K, c->tr ? K : N, q, lay);
  }
  int64_t xs[3] = {X, M, K};
  am_array x = t_rand(r, xs, 3, c->xdt, -1, 1);
  double *xd = read_f64(x);
  x = layout(x, lay);
  am_array li = am_array_new_data(lhs, &P, 1, AM_I64);
  am_array ri = am_astype(am_array_new_data(rhs, &P, 1, AM_I64), AM_U32);
  li = (give & 1) ? layout(li, lay) : NULL;
  ri = (give & 2) ? layout(ri, lay) : NULL;
  int64_t n = P * M * N;
  double *want = malloc((size_t)(n + 1) * sizeof *want);
  double *mag = malloc((size_t)(n + 1) * sizeof *mag);
  h_gather(xd, M, K, wd, N, dense ? false : c->tr, P, lhs, rhs, want, mag);
  for (int grouping = 1; grouping >= 0; grouping--) {
    am_qmm_set_grouping(grouping);
    am_array y = dense ? am_gather_mm(x, b, li, ri, sorted)
                       : am_gather_qmm(x, q[0], q[1], q[2], li, ri, c->tr,
                                       c->gs, c->bits, c->qm, sorted);
    t_expect_shape(y, (int64_t[]){P, M, N}, 3, what);
    expect_ref(y, want, mag, n, dense ? c->xdt : odt_of(c), what);
  }
  am_qmm_set_grouping(true);
  free(wd);
  free(xd);
  free(want);
  free(mag);
  am_scope_pop();
}

static void test_gather_ref(void) {
  t_rng r = {23};
  int quick = t_quick();
  /* MoE decode: T tokens x top-k, x [T*k, 1, K] gathered by lhs */
  int64_t lhs[600], rhs[600], ar[600];
  for (int i = 0; i < 600; i++)
    ar[i] = i;
  int64_t P = 12, E = 7;
  for (int i = 0; i < P; i++) {
    lhs[i] = i / 3;
    rhs[i] = (int64_t)(t_next(&r) % (uint64_t)E);
  }
  mm_cfg c = {AM_QUANT_AFFINE, 64, 4, true, AM_F32, AM_BF16};
  check_gather(&r, &c, false, 4, E, 1, 24, 128, P, lhs, rhs, 3, false, 0);
  check_gather(&r, &c, false, 4, E, 1, 24, 128, P, lhs, rhs, 3, true, 1);
  /* rhs only: x [P, M, K] taken in order */
  check_gather(&r, &c, false, P, E, 2, 17, 64, P, ar, rhs, 2, false, 2);
  /* sorted rhs (the caller's sort), lhs only and both */
  int64_t srt[12];
  memcpy(srt, rhs, sizeof srt);
  for (int i = 0; i < 12; i++)
    for (int j = i + 1; j < 12; j++)
      if (srt[j] < srt[i]) {
        int64_t t = srt[i];
        srt[i] = srt[j];
        srt[j] = t;
      }
  check_gather(&r, &c, false, P, E, 1, 24, 128, P, ar, srt, 2, true, 0);
  /* a broken promise (sorted_indices on unsorted rhs) is still correct:
   * each run of equal indices is a group */
  check_gather(&r, &c, false, P, E, 1, 24, 128, P, ar, rhs, 2, true, 2);
  /* lhs only: w's default arange, so P == E */
  int64_t l2[7] = {3, 0, 3, 1, 2, 2, 0};
  check_gather(&r, &c, false, 4, 7, 3, 16, 64, 7, l2, ar, 1, false, 0);
  /* every mode, not transposed too */
  for (int m = 0; m < 4; m++)
    for (int tr = 0; tr < 2; tr++) {
      mm_cfg f = {(am_quant_mode)m, m == 3 ? 16 : 32,
                  m == 2 ? 8 : 4,   tr,
                  AM_BF16,          AM_F16};
      if (m == 0) f.bits = tr ? 3 : 5;
      check_gather(&r, &f, false, 4, E, 2, tr ? 9 : 64, tr ? 96 : 10, P, lhs,
                   rhs, 3, false, tr);
    }
  /* prefill-like: many pairs over few experts, rows beyond one block */
  int64_t BP = quick ? 60 : 600;
  for (int i = 0; i < BP; i++) {
    lhs[i] = i / 4;
    rhs[i] = (int64_t)(t_next(&r) % 5u);
  }
  mm_cfg big = {AM_QUANT_AFFINE, 32, 4, true, AM_F32, AM_F32};
  check_gather(&r, &big, false, BP / 4, 5, 1, 33, 96, BP, lhs, rhs, 3, false,
               0);
  /* gather_mm, each dtype */
  static const am_dtype fts[] = {AM_F32, AM_BF16, AM_F16};
  for (int d = 0; d < 3; d++) {
    mm_cfg f = {AM_QUANT_AFFINE, 0, 0, false, fts[d], fts[d]};
    check_gather(&r, &f, true, 4, E, 3, 5, 7, P, lhs, rhs, 3, false, d);
    check_gather(&r, &f, true, P, E, 2, 300, 20, P, ar, rhs, 2, false, 0);
  }
}

/* Batch broadcasting, index broadcasting and the no-index forms. */
static void test_mm_shapes(void) {
  t_rng r = {5};
  am_scope_push();
  int64_t ws[4] = {3, 1, 8, 64};
  am_array q[3];
  CHECK(am_quantize(t_rand(&r, ws, 4, AM_F32, -1, 1), 32, 4, AM_QUANT_AFFINE,
                    NULL, q) == AM_OK,
        "q");
  int64_t xs[4] = {1, 2, 5, 64};
  am_array x = t_rand(&r, xs, 4, AM_F32, -1, 1);
  am_array y =
      am_quantized_matmul(x, q[0], q[1], q[2], true, 32, 4, AM_QUANT_AFFINE);
  t_expect_shape(y, (int64_t[]){3, 2, 5, 8}, 4, "qmm batch broadcast");
  /* matches per-batch products */
  am_array d = am_dequantize(q[0], q[1], q[2], 32, 4, AM_QUANT_AFFINE, NULL,
                             AM_F32); /* [3,1,8,64] */
  double *dv = read_f64(d), *xv = read_f64(x), *yv = read_f64(y);
  int bad = 0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++)
      for (int m = 0; m < 5; m++)
        for (int n = 0; n < 8; n++) {
          double acc = 0;
          for (int k = 0; k < 64; k++)
            acc += xv[(j * 5 + m) * 64 + k] * dv[(i * 8 + n) * 64 + k];
          if (fabs(acc - yv[((i * 2 + j) * 5 + m) * 8 + n]) > 1e-4) bad++;
        }
  CHECK(!bad, "qmm batch broadcast values: %d bad", bad);
  free(dv);
  free(xv);
  free(yv);
  /* x [2, 5, K] with a 2-d w: every batch against the matrix */
  int64_t w2s[2] = {8, 64};
  am_array q2[3];
  CHECK(am_quantize(t_rand(&r, w2s, 2, AM_F32, -1, 1), 64, 8, AM_QUANT_AFFINE,
                    NULL, q2) == AM_OK,
        "q2");
  y = am_quantized_matmul(am_reshape(x, (int64_t[]){2, 5, 64}, 3), q2[0], q2[1],
                          q2[2], true, 64, 8, AM_QUANT_AFFINE);
  t_expect_shape(y, (int64_t[]){2, 5, 8}, 3, "qmm 3-d x, 2-d w");
  /* an integer x is cast (affine) */
  y = am_quantized_matmul(am_ones((int64_t[]){2, 64}, 2, AM_I32), q2[0], q2[1],
                          q2[2], true, 64, 8, AM_QUANT_AFFINE);
  CHECK(am_array_dtype(y) == AM_F32 && !am_array_status(y), "int x");
  /* gather_qmm: index broadcasting [2,1] x [1,3] -> [2,3] + [M, N] */
  int64_t l[2] = {0, 1}, rr[3] = {2, 0, 1};
  am_array li = am_array_new_data(l, (int64_t[]){2, 1}, 2, AM_I64);
  am_array ri = am_array_new_data(rr, (int64_t[]){1, 3}, 2, AM_I64);
  am_array xg = am_reshape(x, (int64_t[]){2, 5, 64}, 3);
  am_array wg = am_reshape(q[0], (int64_t[]){3, 8, 8}, 3);
  am_array sg = am_reshape(q[1], (int64_t[]){3, 8, 2}, 3);
  am_array bg = am_reshape(q[2], (int64_t[]){3, 8, 2}, 3);
  y = am_gather_qmm(xg, wg, sg, bg, li, ri, true, 32, 4, AM_QUANT_AFFINE,
                    false);
  t_expect_shape(y, (int64_t[]){2, 3, 5, 8}, 4, "gather_qmm broadcast");
  am_array ref = am_quantized_matmul(
      am_reshape(xg, (int64_t[]){2, 1, 5, 64}, 4), wg, sg, bg, true, 32, 4,
      AM_QUANT_AFFINE); /* [2, 3, 5, 8] with i -> x[i], j -> w[j] */
  double *yv2 = read_f64(y), *rv = read_f64(ref);
  bad = 0;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++)
      for (int e = 0; e < 40; e++)
        if (fabs(yv2[(i * 3 + j) * 40 + e] - rv[(l[i] * 3 + rr[j]) * 40 + e]) >
            1e-5)
          bad++;
  CHECK(!bad, "gather_qmm broadcast values: %d bad", bad);
  free(yv2);
  free(rv);
  /* no indices: quantized_matmul */
  y = am_gather_qmm(xg, q2[0], q2[1], q2[2], NULL, NULL, true, 64, 8,
                    AM_QUANT_AFFINE, false);
  CHECK(y->node && y->node->op == AM_OP_QUANTIZED_MATMUL, "no-index form");
  /* gather_mm: 1-d operands and plain batched matmul */
  am_array a1 = t_rand(&r, (int64_t[]){4}, 1, AM_F32, -1, 1);
  am_array b3 = t_rand(&r, (int64_t[]){2, 4, 3}, 3, AM_F32, -1, 1);
  y = am_gather_mm(a1, b3, NULL,
                   am_array_new_data(l, (int64_t[]){2}, 1, AM_I64), false);
  t_expect_shape(y, (int64_t[]){2, 3}, 2, "gather_mm 1-d a");
  y = am_gather_mm(t_rand(&r, (int64_t[]){3, 1, 2, 4}, 4, AM_F32, -1, 1), b3,
                   NULL, NULL, false);
  t_expect_shape(y, (int64_t[]){3, 2, 2, 3}, 4, "gather_mm batched");
  CHECK(!am_array_status(y) && am_eval(&y, 1) == AM_OK, "batched eval");
  y = am_gather_mm(am_ones((int64_t[]){2, 4}, 2, AM_I32), b3, NULL, NULL,
                   false);
  CHECK(am_array_dtype(y) == AM_F32, "gather_mm int a promotes");
  am_scope_pop();
}

static void test_mm_empty_errors(void) {
  t_rng r = {9};
  am_scope_push();
  int64_t ws[3] = {3, 8, 64};
  am_array q[3], fq[3];
  am_array w = t_rand(&r, ws, 3, AM_F32, -1, 1);
  CHECK(am_quantize(w, 64, 4, AM_QUANT_AFFINE, NULL, q) == AM_OK, "q");
  CHECK(am_quantize(w, 0, 0, AM_QUANT_MXFP4, NULL, fq) == AM_OK, "fq");
  am_array x = t_rand(&r, (int64_t[]){2, 64}, 2, AM_F32, -1, 1);
  am_array w0 = am_slice_axis(q[0], 0, 0, 1, 1);
  am_array s0 = am_slice_axis(q[1], 0, 0, 1, 1);
  am_array b0 = am_slice_axis(q[2], 0, 0, 1, 1);
  /* empty */
  am_array y = am_quantized_matmul(am_zeros((int64_t[]){0, 64}, 2, AM_F32), w0,
                                   s0, b0, true, 64, 4, AM_QUANT_AFFINE);
  t_expect_shape(y, (int64_t[]){0, 8}, 2, "M = 0");
  t_expect(y, NULL, 0, 0, 0, "M = 0 eval");
  am_array ez = am_zeros((int64_t[]){0}, 1, AM_I32);
  y = am_gather_qmm(am_reshape(x, (int64_t[]){1, 2, 64}, 3), q[0], q[1], q[2],
                    NULL, ez, true, 64, 4, AM_QUANT_AFFINE, false);
  t_expect_shape(y, (int64_t[]){0, 2, 8}, 3, "P = 0");
  t_expect(y, NULL, 0, 0, 0, "P = 0 eval");
  y = am_gather_mm(am_zeros((int64_t[]){2, 3, 0}, 3, AM_F32),
                   am_zeros((int64_t[]){2, 0, 4}, 3, AM_F32), NULL, NULL,
                   false);
  t_expect(y, (double[24]){0}, 24, 0, 0, "K = 0 gives zeros");
  /* errors */
  t_expect_error(
      am_quantized_matmul(x, w0, s0, b0, true, 32, 4, AM_QUANT_AFFINE),
      AM_ERR_SHAPE, "quantized_matmul", "wrong group size");
  t_expect_error(
      am_quantized_matmul(x, w0, s0, b0, false, 64, 4, AM_QUANT_AFFINE),
      AM_ERR_SHAPE, "quantized_matmul", "K mismatch");
  t_expect_error(
      am_quantized_matmul(x, q[0], q[1], q[2], true, 64, 4, AM_QUANT_AFFINE),
      AM_ERR_SHAPE, "quantized_matmul", "2-d x, 3 matrices");
  t_expect_error(
      am_quantized_matmul(x, w0, s0, NULL, true, 64, 4, AM_QUANT_AFFINE),
      AM_ERR_INVALID_ARG, "quantized_matmul", "no biases");
  t_expect_error(am_quantized_matmul(am_astype(x, AM_I32), fq[0], fq[1], NULL,
                                     true, 0, 0, AM_QUANT_MXFP4),
                 AM_ERR_DTYPE, "quantized_matmul", "int x with mxfp4");
  t_expect_error(am_quantized_matmul(am_astype(x, AM_F64), w0, s0, b0, true, 64,
                                     4, AM_QUANT_AFFINE),
                 AM_ERR_DTYPE, "quantized_matmul", "f64 x");
  t_expect_error(am_quantized_matmul(x, am_astype(w0, AM_I32), s0, b0, true, 64,
                                     4, AM_QUANT_AFFINE),
                 AM_ERR_DTYPE, "quantized_matmul", "int32 w");
  t_expect_error(
      am_quantized_matmul(x, w0, s0, s0, true, 64, 4, AM_QUANT_MXFP4),
      AM_ERR_INVALID_ARG, "quantized_matmul", "mxfp4 biases");
  t_expect_error(
      am_quantized_matmul(NULL, w0, s0, b0, true, 64, 4, AM_QUANT_AFFINE),
      AM_ERR_INVALID_ARG, "quantized_matmul", "NULL x");
  am_array x3 = am_reshape(x, (int64_t[]){2, 1, 64}, 3);
  am_array bad_idx =
      am_array_new_data((int64_t[]){0, 3}, (int64_t[]){2}, 1, AM_I64);
  y = am_gather_qmm(x3, q[0], q[1], q[2], NULL, bad_idx, true, 64, 4,
                    AM_QUANT_AFFINE, false);
  CHECK(am_eval(&y, 1) == AM_ERR_INVALID_ARG &&
            strstr(am_last_error(), "gather_qmm"),
        "rhs out of range: %s", am_last_error());
  y = am_gather_qmm(x3, q[0], q[1], q[2], am_int(-1), NULL, true, 64, 4,
                    AM_QUANT_AFFINE, false);
  CHECK(am_eval(&y, 1) == AM_ERR_INVALID_ARG, "negative lhs");
  t_expect_error(am_gather_qmm(x3, q[0], q[1], q[2], NULL, am_float(0), true,
                               64, 4, AM_QUANT_AFFINE, false),
                 AM_ERR_DTYPE, "gather_qmm", "float index");
  t_expect_error(am_gather_qmm(x3, q[0], q[1], q[2], NULL,
                               am_zeros((int64_t[]){3}, 1, AM_I32), true, 64, 4,
                               AM_QUANT_AFFINE, false),
                 AM_ERR_SHAPE, "gather_qmm", "indices do not broadcast");
  t_expect_error(am_gather_qmm(am_reshape(x, (int64_t[]){128}, 1), q[0], q[1],
                               q[2], NULL, am_int(0), true, 64, 4,
                               AM_QUANT_AFFINE, false),
                 AM_ERR_SHAPE, "gather_qmm", "1-d x");
  t_expect_error(am_gather_mm(x, am_ones((int64_t[]){3, 5, 2}, 3, AM_F32), NULL,
                              am_int(0), false),
                 AM_ERR_SHAPE, "gather_mm", "K mismatch");
  t_expect_error(am_gather_mm(am_ones((int64_t[]){2, 2}, 2, AM_I32),
                              am_ones((int64_t[]){2, 2}, 2, AM_I32), NULL, NULL,
                              false),
                 AM_ERR_DTYPE, "gather_mm", "int operands");
  t_expect_error(am_gather_mm(am_float(1), x, NULL, NULL, false), AM_ERR_SHAPE,
                 "gather_mm", "0-d operand");
  y = am_gather_mm(x, am_ones((int64_t[]){3, 64, 2}, 3, AM_F32), NULL,
                   am_int(3), false);
  CHECK(am_eval(&y, 1) == AM_ERR_INVALID_ARG &&
            strstr(am_last_error(), "gather_mm"),
        "gather_mm rhs out of range");
  am_scope_pop();
}

int main(void) {
  test_hand();
  test_quant_goldens();
  test_empty();
  test_errors();
  test_roundtrip();
  /* every kernel set: portable, AVX2, AVX-512, AVX512-BF16 (those the
   * CPU has) */
  static const int isas[] = {1, 2, 512, 1024, 1024};
  for (int i = 0; i < 5; i++) {
    am_qmm_set_isa(isas[i]);
    /* the last pass with the integer (VNNI) kernels for float32 x */
    am_set_qmm_float_kernels(i < 4);
    test_mm_goldens();
    test_qmm_ref();
    test_gather_ref();
  }
  am_qmm_set_isa(0);
  am_set_qmm_float_kernels(false);
  test_mm_shapes();
  test_mm_empty_errors();
  return t_summary();
}
