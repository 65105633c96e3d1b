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

static void *read_native(am_array x) {
  size_t es = am_dtype_size(am_array_dtype(x));
  int64_t n = am_array_size(x);
  void *v = malloc((size_t)(n ? n : 1) * es);
  if (am_array_read(x, am_array_dtype(x), v, n) != AM_OK)
    CHECK(0, "read failed: %s", am_last_error());
  return v;
}

/* Same values as x, every element two slots apart, starting at slot 1: a
 * strided view (no dim is contiguous). */
static am_array spread(am_array x) {
  int nd = am_array_ndim(x);
  int64_t n = am_array_size(x), m = 2 * n + 1, st[AM_MAX_DIMS];
  size_t es = am_dtype_size(am_array_dtype(x));
  char *v = read_native(x), *t = calloc((size_t)m, es);
  for (int64_t i = 0; i < n; i++)
    memcpy(t + (1 + 2 * i) * (int64_t)es, v + i * (int64_t)es, es);
  am_array r = am_array_new_data(t, &m, 1, am_array_dtype(x));
  free(v);
  free(t);
  am_contig_strides(am_array_shape(x), nd, st);
  for (int d = 0; d < nd; d++)
    st[d] *= 2;
  return t_view(r, am_array_shape(x), nd, st, 1);
}

/* Same values, stored with the last two axes swapped and viewed back: a
 * transposed layout (the last axis is not contiguous). */
static am_array colmajor(am_array x) {
  int nd = am_array_ndim(x);
  if (nd < 2) return spread(x);
  int perm[AM_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    perm[d] = d;
  perm[nd - 2] = nd - 1;
  perm[nd - 1] = nd - 2;
  am_array t = am_transpose(x, perm, nd);
  /* materialize t contiguously, then view it transposed back */
  void *v = read_native(t);
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
  return !x ? x : mode == 0 ? x : mode == 1 ? spread(x) : colmajor(x);
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
  uint32_t *v = read_native(x);
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

int main(void) {
  test_hand();
  test_quant_goldens();
  test_empty();
  test_errors();
  test_roundtrip();
  return t_summary();
}
