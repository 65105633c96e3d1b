/*
 * test_nn — norms, RoPE, attention, softmax and activations: MLX / NumPy
 * goldens (scripts/golden_nn.py), hand-computed cases, a naive float64
 * attention reference for long-KV decode, GQA, causal alignment and masks,
 * float16/bfloat16/float64, strided inputs, every SIMD level, empty and
 * 0-d arrays, errors, and compiled graphs whose offsets and KV lengths
 * change between calls.
 */
#include "test_internal.h"

#include <float.h>

/* nn_simd.c: 0 portable, 1 up to AVX2, 2 up to AVX-512, 3 the default, 4
 * the AVX512-BF16 kernels wherever the CPU has them. */
void am_nn_simd_limit(int level);

static const char *const level_name[5] = {"portable", "avx2", "avx512", "auto",
                                          "avx512-bf16"};

/* ---------------------------------------------------------- helpers */

static const t_garr *gfind(const t_gcase *c, const char *key) {
  for (int i = 0; c && i < c->n; i++)
    if (!strcmp(c->arr[i].key, key)) return &c->arr[i];
  return NULL;
}

static am_array garr(const t_gcase *c, const char *key) {
  const t_garr *a = gfind(c, key);
  return a ? t_garr_array(a) : NULL;
}

/* x against golden values (shape and values; dtype checked separately). */
static void expect_g(am_array x, const t_gcase *c, const char *key, double rtol,
                     double atol, const char *what) {
  const t_garr *want = t_gcase_arr(c, key);
  if (!want) return;
  if (!t_expect_shape(x, want->shape, want->ndim, what)) return;
  t_expect(x, want->v, want->n, rtol, atol, what);
}

static double *read_f64(am_array x) {
  int64_t n = am_array_size(x);
  double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  if (am_array_read(x, AM_F64, v, n) != AM_OK)
    CHECK(0, "read: %s", am_last_error());
  return v;
}

/* Same values as x in a buffer twice as wide (every other element): a
 * strided view with an offset. */
static am_array strided(am_array x) {
  int nd = am_array_ndim(x);
  int64_t n = am_array_size(x), m = 2 * n + 1, st[AM_MAX_DIMS];
  am_dtype dt = am_array_dtype(x);
  size_t es = am_dtype_size(dt);
  char *v = malloc((size_t)(n ? n : 1) * es), *t = calloc((size_t)m, es);
  CHECK(am_array_read(x, dt, v, n) == AM_OK, "read");
  for (int64_t i = 0; i < n; i++)
    memcpy(t + (1 + 2 * i) * (int64_t)es, v + i * (int64_t)es, es);
  am_array r = am_array_new_data(t, &m, 1, dt);
  free(v);
  free(t);
  am_contig_strides(am_array_shape(x), nd, st);
  for (int d = 0; d < nd; d++)
    st[d] *= 2;
  return t_view(r, am_array_shape(x), nd, st, 1);
}

static am_array i32_scalar(int32_t v) {
  return am_array_new_data(&v, NULL, 0, AM_I32);
}

/* ------------------------------------------------- naive attention */

/* float64 attention with MLX's rules: hidden keys score -FLT_MAX, the
 * additive mask adds. mask_add / mask_keep: full [B, Hq, Lq, Lkv] or
 * NULL. qoff: causal alignment (only with causal). */
static void ref_sdpa(const double *q, const double *k, const double *v,
                     int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq,
                     int64_t Lkv, int64_t D, int64_t Dv, double scale,
                     const double *mask_add, const uint8_t *mask_keep,
                     bool causal, int64_t qoff, double *out) {
  int64_t G = Hq / Hkv;
  double *s = malloc((size_t)(Lkv ? Lkv : 1) * sizeof *s);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++)
      for (int64_t i = 0; i < Lq; i++) {
        const double *qr = q + ((b * Hq + h) * Lq + i) * D;
        const double *kb = k + (b * Hkv + h / G) * Lkv * D;
        const double *vb = v + (b * Hkv + h / G) * Lkv * Dv;
        int64_t mrow = ((b * Hq + h) * Lq + i) * Lkv;
        double m = -INFINITY;
        for (int64_t j = 0; j < Lkv; j++) {
          double x = 0;
          for (int64_t d = 0; d < D; d++)
            x += qr[d] * kb[j * D + d];
          x *= scale;
          if (mask_add) x += mask_add[mrow + j];
          if (mask_keep && !mask_keep[mrow + j]) x = -FLT_MAX;
          if (causal && j > qoff + i) x = -FLT_MAX;
          s[j] = x;
          if (x > m) m = x;
        }
        double l = 0;
        double *o = out + ((b * Hq + h) * Lq + i) * Dv;
        for (int64_t d = 0; d < Dv; d++)
          o[d] = 0;
        for (int64_t j = 0; j < Lkv; j++) {
          double p = exp(s[j] - m);
          l += p;
          for (int64_t d = 0; d < Dv; d++)
            o[d] += p * vb[j * Dv + d];
        }
        for (int64_t d = 0; d < Dv; d++)
          o[d] = Lkv ? o[d] / l : 0;
      }
  free(s);
}

typedef struct {
  int64_t B, Hq, Hkv, Lq, Lkv, D, Dv;
  am_dtype dt;
  int mask; /* 0 none, 1 bool [Lq, Lkv], 2 additive [B, 1, Lq, Lkv] */
  bool causal;
  int64_t qoff;       /* -1: default alignment */
  bool kv_transposed; /* k, v given as swapaxes views of [B, L, H, D] */
} att_cfg;

/* Random attention problem through am_sdpa vs ref_sdpa. */
static void check_sdpa(const att_cfg *c, uint64_t seed, double rtol,
                       double atol, const char *what) {
  am_scope_push();
  t_rng r = {seed};
  int64_t qs[4] = {c->B, c->Hq, c->Lq, c->D};
  int64_t ks[4] = {c->B, c->Hkv, c->Lkv, c->D};
  int64_t vs[4] = {c->B, c->Hkv, c->Lkv, c->Dv};
  am_array q = t_rand(&r, qs, 4, c->dt, -1, 1);
  am_array k, v;
  if (c->kv_transposed) {
    int64_t kt[4] = {c->B, c->Lkv, c->Hkv, c->D};
    int64_t vt[4] = {c->B, c->Lkv, c->Hkv, c->Dv};
    am_array k0 = t_rand(&r, kt, 4, c->dt, -1, 1);
    am_array v0 = t_rand(&r, vt, 4, c->dt, -1, 1);
    CHECK(am_eval(&k0, 1) == AM_OK && am_eval(&v0, 1) == AM_OK, "eval");
    k = am_swapaxes(k0, 1, 2);
    v = am_swapaxes(v0, 1, 2);
  } else {
    k = t_rand(&r, ks, 4, c->dt, -1, 1);
    v = t_rand(&r, vs, 4, c->dt, -1, 1);
  }
  int64_t full = c->B * c->Hq * c->Lq * c->Lkv;
  double *madd = NULL;
  uint8_t *mkeep = NULL;
  am_array mask = NULL;
  if (c->mask == 1) {
    int64_t ms[2] = {c->Lq, c->Lkv};
    uint8_t *mv = malloc((size_t)(c->Lq * c->Lkv + 1));
    for (int64_t i = 0; i < c->Lq * c->Lkv; i++)
      mv[i] = t_uniform(&r) > 0.3;
    mask = am_array_new_data(mv, ms, 2, AM_BOOL);
    mkeep = malloc((size_t)full + 1);
    for (int64_t i = 0; i < full; i++)
      mkeep[i] = mv[i % (c->Lq * c->Lkv)];
    free(mv);
  } else if (c->mask == 2) {
    int64_t ms[4] = {c->B, 1, c->Lq, c->Lkv};
    mask = t_rand(&r, ms, 4, AM_F32, -3, 1);
    double *mv = read_f64(mask);
    madd = malloc((size_t)(full + 1) * sizeof *madd);
    int64_t per_b = c->Lq * c->Lkv;
    for (int64_t i = 0; i < full; i++) {
      int64_t b = i / (c->Hq * per_b);
      madd[i] = mv[b * per_b + i % per_b];
    }
    free(mv);
  }
  am_array qoff = c->qoff >= 0 ? i32_scalar((int32_t)c->qoff) : NULL;
  float scale = 1.0f / sqrtf((float)(c->D ? c->D : 1));
  am_array o = am_sdpa(q, k, v, scale, mask, c->causal, qoff);
  /* read back in logical [B, H, L, D] order whatever the layout */
  double *qd = read_f64(q), *kd = read_f64(k), *vd = read_f64(v);
  int64_t n_out = c->B * c->Hq * c->Lq * c->Dv;
  double *want = malloc((size_t)(n_out + 1) * sizeof *want);
  ref_sdpa(qd, kd, vd, c->B, c->Hq, c->Hkv, c->Lq, c->Lkv, c->D, c->Dv, scale,
           madd, mkeep, c->causal, c->qoff >= 0 ? c->qoff : c->Lkv - c->Lq,
           want);
  int64_t shape[4] = {c->B, c->Hq, c->Lq, c->Dv};
  if (t_expect_shape(o, shape, 4, what)) {
    CHECK(am_array_dtype(o) == c->dt, "%s: dtype", what);
    t_expect(o, want, n_out, rtol, atol, what);
  }
  free(qd);
  free(kd);
  free(vd);
  free(want);
  free(madd);
  free(mkeep);
  am_scope_pop();
}

/* ================================================================ norms */

static void test_norm_golden(const t_golden *g) {
  static const char *const rms[] = {"rms_w", "rms_now", "rms_bf16"};
  for (int i = 0; i < 3; i++) {
    am_scope_push();
    const t_gcase *c = t_golden_case(g, rms[i]);
    if (!c) {
      am_scope_pop();
      continue;
    }
    am_array x = garr(c, "x"), w = garr(c, "w");
    float eps = (float)t_gcase_arr(c, "p")->v[0];
    bool low = am_array_dtype(x) == AM_BF16;
    am_array y = am_rms_norm(x, w, eps);
    CHECK(am_array_dtype(y) == am_array_dtype(x), "%s dtype", rms[i]);
    expect_g(y, c, "y", low ? 1e-2 : 1e-5, low ? 1e-3 : 1e-6, rms[i]);
    /* strided and transposed-layout inputs give the same values */
    expect_g(am_rms_norm(strided(x), w ? strided(w) : NULL, eps), c, "y",
             low ? 1e-2 : 1e-5, low ? 1e-3 : 1e-6, rms[i]);
    am_scope_pop();
  }
  static const char *const gated[] = {"gated", "gated_now"};
  for (int i = 0; i < 2; i++) {
    am_scope_push();
    const t_gcase *c = t_golden_case(g, gated[i]);
    if (c) {
      am_array x = garr(c, "x"), z = garr(c, "z"), w = garr(c, "w");
      float eps = (float)t_gcase_arr(c, "p")->v[0];
      expect_g(am_rms_norm_gated(x, w, z, eps), c, "y", 1e-5, 1e-6, gated[i]);
      expect_g(am_rms_norm_gated(strided(x), w, strided(z), eps), c, "y", 1e-5,
               1e-6, gated[i]);
      /* float64 computes in double */
      expect_g(am_rms_norm_gated(am_astype(x, AM_F64),
                                 w ? am_astype(w, AM_F64) : NULL,
                                 am_astype(z, AM_F64), eps),
               c, "y", 1e-12, 1e-13, gated[i]);
      /* bfloat16 z and float32 x promote to float32 */
      am_array y = am_rms_norm_gated(x, w, am_astype(z, AM_BF16), eps);
      CHECK(am_array_dtype(y) == AM_F32, "gated promotion: %s",
            am_dtype_name(am_array_dtype(y)));
    }
    am_scope_pop();
  }
  static const char *const ln[] = {"ln_wb", "ln_b", "ln_w", "ln_f16"};
  for (int i = 0; i < 4; i++) {
    am_scope_push();
    const t_gcase *c = t_golden_case(g, ln[i]);
    if (c) {
      am_array x = garr(c, "x"), w = garr(c, "w"), b = garr(c, "b");
      float eps = (float)t_gcase_arr(c, "p")->v[0];
      bool low = am_array_dtype(x) == AM_F16;
      am_array y = am_layer_norm(x, w, b, eps);
      CHECK(am_array_dtype(y) == am_array_dtype(x), "%s dtype", ln[i]);
      expect_g(y, c, "y", low ? 2e-3 : 1e-5, low ? 2e-3 : 1e-5, ln[i]);
      expect_g(am_layer_norm(t_transposed(t_transposed(strided(x))), w, b, eps),
               c, "y", low ? 2e-3 : 1e-5, low ? 2e-3 : 1e-5, ln[i]);
    }
    am_scope_pop();
  }
}

static void test_norm_hand(void) {
  am_scope_push();
  /* rms of [3, 4] is sqrt(12.5): y = x / sqrt(12.5 + eps) * w */
  double xv[2] = {3, 4}, wv[2] = {2, 0.5};
  int64_t s2 = 2;
  double want[2] = {2 * 3 / sqrt(12.5 + 0.5), 0.5 * 4 / sqrt(12.5 + 0.5)};
  t_expect(
      am_rms_norm(t_arr(xv, &s2, 1, AM_F32), t_arr(wv, &s2, 1, AM_F32), 0.5f),
      want, 2, 1e-6, 0, "rms hand");
  /* layer norm of [1, 3]: mean 2, var 1 -> [-1, 1] / sqrt(1 + eps) */
  double lv[2] = {1, 3}, lw[2] = {-1 / sqrt(1.25), 1 / sqrt(1.25)};
  t_expect(am_layer_norm(t_arr(lv, &s2, 1, AM_F64), NULL, NULL, 0.25f), lw, 2,
           1e-12, 0, "ln hand");
  /* gated: z = 0 gives silu 0; silu(40) is 40 */
  double zv[2] = {0, 40};
  double gw[2] = {0, 4 / sqrt(12.5) * 40};
  t_expect(am_rms_norm_gated(t_arr(xv, &s2, 1, AM_F32), NULL,
                             t_arr(zv, &s2, 1, AM_F32), 0.0f),
           gw, 2, 1e-6, 1e-7, "gated hand");
  /* integer x becomes float32 */
  am_array xi = am_astype(t_arr(xv, &s2, 1, AM_F64), AM_I32);
  am_array yi = am_rms_norm(xi, NULL, 0);
  CHECK(am_array_dtype(yi) == AM_F32, "int x -> float32");
  double wi[2] = {3 / sqrt(12.5), 4 / sqrt(12.5)};
  t_expect(yi, wi, 2, 1e-6, 0, "rms int");
  /* long rows (SIMD bodies and tails) at every level vs float64 */
  t_rng r = {5};
  int64_t sh[2] = {7, 1003};
  am_array x = t_rand(&r, sh, 2, AM_F32, -3, 3);
  am_array w = t_rand(&r, sh + 1, 1, AM_F32, 0, 2);
  am_array b = t_rand(&r, sh + 1, 1, AM_F32, -1, 1);
  double *w64 =
      read_f64(am_rms_norm(am_astype(x, AM_F64), am_astype(w, AM_F64), 1e-5f));
  double *l64 = read_f64(am_layer_norm(
      am_astype(x, AM_F64), am_astype(w, AM_F64), am_astype(b, AM_F64), 1e-5f));
  for (int lv2 = 0; lv2 < 5; lv2++) {
    am_nn_simd_limit(lv2);
    char what[64];
    snprintf(what, sizeof what, "rms long %s", level_name[lv2]);
    t_expect(am_rms_norm(x, w, 1e-5f), w64, 7 * 1003, 1e-5, 1e-6, what);
    snprintf(what, sizeof what, "ln long %s", level_name[lv2]);
    t_expect(am_layer_norm(x, w, b, 1e-5f), l64, 7 * 1003, 1e-5, 1e-5, what);
  }
  am_nn_simd_limit(3);
  free(w64);
  free(l64);
  /* empty: no rows, or rows of length 0 */
  int64_t e1[2] = {0, 4}, e2[2] = {3, 0};
  am_array y1 =
      am_rms_norm(am_zeros(e1, 2, AM_F32), am_ones(e1 + 1, 1, AM_F32), 1e-5f);
  am_array y2 = am_layer_norm(am_zeros(e2, 2, AM_BF16), NULL, NULL, 1e-5f);
  CHECK(am_eval(&y1, 1) == AM_OK && am_eval(&y2, 1) == AM_OK, "empty norms: %s",
        am_last_error());
  t_expect_shape(y1, e1, 2, "rms empty");
  t_expect_shape(y2, e2, 2, "ln empty");
  am_scope_pop();
}

static void test_norm_errors(void) {
  am_scope_push();
  int64_t s[2] = {2, 4}, s3 = 3, s22[2] = {1, 4};
  am_array x = am_ones(s, 2, AM_F32);
  t_expect_error(am_rms_norm(x, am_ones(&s3, 1, AM_F32), 1e-5f), AM_ERR_SHAPE,
                 "rms_norm", "w size");
  t_expect_error(am_rms_norm(x, am_ones(s22, 2, AM_F32), 1e-5f), AM_ERR_SHAPE,
                 "rms_norm", "w 2-d");
  t_expect_error(am_rms_norm(am_scalar(1, AM_F32), NULL, 1e-5f), AM_ERR_SHAPE,
                 "rms_norm", "0-d x");
  t_expect_error(am_rms_norm(x, NULL, -1.0f), AM_ERR_INVALID_ARG, "rms_norm",
                 "negative eps");
  t_expect_error(am_rms_norm(NULL, NULL, 1e-5f), AM_ERR_INVALID_ARG, "rms_norm",
                 "NULL x");
  t_expect_error(am_rms_norm_gated(x, NULL, am_ones(s22, 2, AM_F32), 1e-5f),
                 AM_ERR_SHAPE, "rms_norm_gated", "z shape");
  t_expect_error(am_rms_norm_gated(x, NULL, NULL, 1e-5f), AM_ERR_INVALID_ARG,
                 "rms_norm_gated", "NULL z");
  t_expect_error(am_layer_norm(x, NULL, am_ones(&s3, 1, AM_F32), 1e-5f),
                 AM_ERR_SHAPE, "layer_norm", "b size");
  /* an error input propagates */
  am_array bad = am_rms_norm(x, am_ones(&s3, 1, AM_F32), 1e-5f);
  t_expect_error(am_layer_norm(bad, NULL, NULL, 1e-5f), AM_ERR_SHAPE,
                 "rms_norm", "propagation");
  am_scope_pop();
}

/* ================================================================= rope */

static void test_rope_golden(const t_golden *g) {
  static const char *const names[] = {
      "rope_neox",         "rope_neox_partial", "rope_trad",
      "rope_trad_partial", "rope_vec",          "rope_vec_trad",
      "rope_scale",        "rope_qwen",         "rope_bf16"};
  for (int i = 0; i < 9; i++) {
    am_scope_push();
    const t_gcase *c = t_golden_case(g, names[i]);
    if (c) {
      const double *p = t_gcase_arr(c, "p")->v;
      am_array x = garr(c, "x"), off = garr(c, "off");
      bool low = am_array_dtype(x) == AM_BF16;
      double tol = low ? 1e-2 : 2e-5;
      am_array y =
          am_rope(x, (int)p[0], p[1] != 0, (float)p[2], (float)p[3], off);
      CHECK(am_array_dtype(y) == am_array_dtype(x), "%s dtype", names[i]);
      expect_g(y, c, "y", tol, tol, names[i]);
      /* strided x, int64 offsets */
      expect_g(am_rope(strided(x), (int)p[0], p[1] != 0, (float)p[2],
                       (float)p[3], am_astype(off, AM_I64)),
               c, "y", tol, tol, names[i]);
      if (!low) /* float64 */
        expect_g(am_rope(am_astype(x, AM_F64), (int)p[0], p[1] != 0,
                         (float)p[2], (float)p[3], off),
                 c, "y", 2e-5, 2e-5, names[i]);
    }
    am_scope_pop();
  }
}

static void test_rope_hand(void) {
  am_scope_push();
  /* dims 2 at position 1 (offset 1, row 0) turns (1, 0) by 1 radian; the
   * third element is past dims and copied */
  double xv[3] = {1, 0, 7};
  int64_t sh[3] = {1, 1, 3};
  double want[3] = {cos(1.0), sin(1.0), 7};
  t_expect(am_rope(t_arr(xv, sh, 3, AM_F32), 2, false, 10000.0f, 1.0f,
                   i32_scalar(1)),
           want, 3, 1e-6, 1e-7, "rope hand");
  /* NULL offset = 0: row l at position l; 2-d x [L, D] */
  double x2[4] = {1, 0, 1, 0};
  int64_t s2[2] = {2, 2};
  double w2[4] = {1, 0, cos(0.5), sin(0.5)};
  t_expect(am_rope(t_arr(x2, s2, 2, AM_F64), 2, true, 10000.0f, 0.5f, NULL), w2,
           4, 1e-12, 1e-12, "rope null offset");
  /* half precision: float16 close to float32 */
  t_rng r = {9};
  int64_t s4[4] = {2, 3, 5, 32};
  am_array x = t_rand(&r, s4, 4, AM_F32, -1, 1);
  am_array off = i32_scalar(1000);
  double *ref = read_f64(am_rope(x, 16, false, 1e6f, 1.0f, off));
  t_expect(am_rope(am_astype(x, AM_F16), 16, false, 1e6f, 1.0f, off), ref,
           2 * 3 * 5 * 32, 2e-3, 2e-3, "rope f16");
  free(ref);
  /* empty L */
  int64_t e[3] = {2, 0, 8};
  am_array y = am_rope(am_zeros(e, 3, AM_F32), 8, false, 1e4f, 1, NULL);
  CHECK(am_eval(&y, 1) == AM_OK, "rope empty: %s", am_last_error());
  t_expect_shape(y, e, 3, "rope empty");
  am_scope_pop();
}

static void test_rope_errors(void) {
  am_scope_push();
  int64_t s[4] = {2, 1, 3, 8}, two = 2, three = 3;
  am_array x = am_ones(s, 4, AM_F32);
  t_expect_error(am_rope(x, 5, false, 1e4f, 1, NULL), AM_ERR_INVALID_ARG,
                 "rope", "odd dims");
  t_expect_error(am_rope(x, 10, false, 1e4f, 1, NULL), AM_ERR_INVALID_ARG,
                 "rope", "dims > D");
  t_expect_error(am_rope(x, 8, false, -1, 1, NULL), AM_ERR_INVALID_ARG, "rope",
                 "base");
  t_expect_error(am_rope(x, 8, false, 1e4f, 1, am_scalar(1.5, AM_F32)),
                 AM_ERR_DTYPE, "rope", "float offset");
  t_expect_error(am_rope(x, 8, false, 1e4f, 1, am_zeros(&three, 1, AM_I32)),
                 AM_ERR_SHAPE, "rope", "offset size");
  t_expect_error(am_rope(am_ones(s + 2, 1, AM_F32), 8, false, 1e4f, 1, NULL),
                 AM_ERR_SHAPE, "rope", "1-d x");
  t_expect_error(am_rope(am_ones(s + 2, 2, AM_F32), 8, false, 1e4f, 1,
                         am_zeros(&two, 1, AM_I32)),
                 AM_ERR_SHAPE, "rope", "vector offset on 2-d x");
  am_scope_pop();
}

/* Offsets are data: one compiled graph serves offsets 0..5. */
typedef struct {
  int dims;
  bool trad;
} rope_fn_ctx;

static am_status rope_fn(void *ctx, const am_array *in, int n_in, am_array *out,
                         int n_out) {
  const rope_fn_ctx *c = ctx;
  out[0] = am_rope(in[0], c->dims, c->trad, 1e7f, 1.0f, in[1]);
  return AM_OK;
}

static void test_rope_offsets_data(void) {
  for (int shapeless = 0; shapeless < 2; shapeless++) {
    rope_fn_ctx ctx = {64, false};
    am_compile_options o = {.shapeless = shapeless};
    am_compiled f = am_compile(rope_fn, &ctx, 2, 1, &o);
    t_rng r = {11};
    int64_t s[4] = {1, 4, 1, 256};
    am_scope_push(); /* t_rand's intermediates belong to a scope */
    am_array x = am_keep(t_rand(&r, s, 4, AM_BF16, -1, 1));
    am_scope_pop();
    for (int32_t off = 0; off <= 5; off++) {
      am_array in[2] = {x, i32_scalar(off)}, y;
      CHECK(am_compiled_call(f, in, &y) == AM_OK, "call: %s", am_last_error());
      am_array want = am_rope(x, 64, false, 1e7f, 1.0f, in[1]);
      double *wv = read_f64(want);
      t_expect(y, wv, 1024, 1e-6, 1e-6, "rope compiled offset");
      free(wv);
      am_array_free(y);
      am_array_free(want);
      am_array_free(in[1]);
    }
    am_compile_stats st = am_compiled_stats(f);
    CHECK(st.traces == 1 && st.calls == 6, "rope offsets re-traced: %llu",
          (unsigned long long)st.traces);
    am_compiled_free(f);
    am_array_free(x);
  }
}

/* ================================================================= sdpa */

static void test_sdpa_golden(const t_golden *g) {
  static const char *const names[] = {
      "sdpa_mha",    "sdpa_gqa2_dv",       "sdpa_gqa8_decode",
      "sdpa_causal", "sdpa_causal_square", "sdpa_causal_qoff",
      "sdpa_bool",   "sdpa_additive",      "sdpa_causal_short_kv"};
  for (int lv = 0; lv < 5; lv++) {
    am_nn_simd_limit(lv);
    for (int i = 0; i < 9; i++) {
      am_scope_push();
      const t_gcase *c = t_golden_case(g, names[i]);
      if (c) {
        const double *p = t_gcase_arr(c, "p")->v;
        am_array q = garr(c, "q"), k = garr(c, "k"), v = garr(c, "v");
        am_array mask = garr(c, "mask");
        am_array qoff = p[2] >= 0 ? i32_scalar((int32_t)p[2]) : NULL;
        char what[96];
        snprintf(what, sizeof what, "%s %s", names[i], level_name[lv]);
        expect_g(am_sdpa(q, k, v, (float)p[0], mask, p[1] != 0, qoff), c, "y",
                 2e-5, 2e-6, what);
        if (lv == 4) { /* float64 reference path, strided q */
          snprintf(what, sizeof what, "%s f64", names[i]);
          expect_g(am_sdpa(strided(am_astype(q, AM_F64)), am_astype(k, AM_F64),
                           am_astype(v, AM_F64), (float)p[0], mask, p[1] != 0,
                           qoff),
                   c, "y", 1e-5, 1e-6, what);
        }
      }
      am_scope_pop();
    }
  }
  am_nn_simd_limit(3);
}

static void test_sdpa_hand(void) {
  am_scope_push();
  /* one key: the output is that value row, whatever q */
  double qv[2] = {3, -1}, kv[2] = {0.5, 2}, vv[3] = {1, 2, 3};
  int64_t qs[4] = {1, 1, 1, 2}, vs[4] = {1, 1, 1, 3};
  t_expect(am_sdpa(t_arr(qv, qs, 4, AM_F32), t_arr(kv, qs, 4, AM_F32),
                   t_arr(vv, vs, 4, AM_F32), 1.0f, NULL, false, NULL),
           vv, 3, 1e-6, 0, "sdpa one key");
  /* two keys with scores 0 and ln 3: weights 1/4, 3/4 */
  double q2[1] = {1}, k2[2] = {0, log(3.0)}, v2[2] = {4, 8};
  int64_t q2s[4] = {1, 1, 1, 1}, k2s[4] = {1, 1, 2, 1};
  double w2[1] = {4 * 0.25 + 8 * 0.75};
  t_expect(am_sdpa(t_arr(q2, q2s, 4, AM_F32), t_arr(k2, k2s, 4, AM_F32),
                   t_arr(v2, k2s, 4, AM_F32), 1.0f, NULL, false, NULL),
           w2, 1, 1e-6, 0, "sdpa two keys");
  /* Lkv = 0 gives zeros (MLX); Lq = 0 gives an empty result */
  int64_t qe[4] = {1, 2, 3, 4}, ke[4] = {1, 1, 0, 4}, ve[4] = {1, 1, 0, 5};
  double z[30] = {0};
  am_array y = am_sdpa(am_ones(qe, 4, AM_F32), am_ones(ke, 4, AM_F32),
                       am_ones(ve, 4, AM_F32), 0.5f, NULL, true, NULL);
  t_expect(y, z, 30, 0, 0, "sdpa Lkv 0");
  int64_t q0[4] = {1, 2, 0, 4}, k0[4] = {1, 1, 3, 4}, o0[4] = {1, 2, 0, 4};
  am_array y0 = am_sdpa(am_ones(q0, 4, AM_F32), am_ones(k0, 4, AM_F32),
                        am_ones(k0, 4, AM_F32), 0.5f, NULL, false, NULL);
  CHECK(am_eval(&y0, 1) == AM_OK, "sdpa Lq 0: %s", am_last_error());
  t_expect_shape(y0, o0, 4, "sdpa Lq 0");
  /* additive -inf on every key: NaN (MLX); all-false bool: mean of v */
  double ninf[2] = {-INFINITY, -INFINITY}, nanv[1] = {NAN};
  int64_t ms[2] = {1, 2};
  t_expect(am_sdpa(t_arr(q2, q2s, 4, AM_F32), t_arr(k2, k2s, 4, AM_F32),
                   t_arr(v2, k2s, 4, AM_F32), 1.0f, t_arr(ninf, ms, 2, AM_F32),
                   false, NULL),
           nanv, 1, 0, 0, "sdpa all -inf");
  uint8_t no[2] = {0, 0};
  double mean[1] = {6};
  t_expect(am_sdpa(t_arr(q2, q2s, 4, AM_F32), t_arr(k2, k2s, 4, AM_F32),
                   t_arr(v2, k2s, 4, AM_F32), 1.0f,
                   am_array_new_data(no, ms, 2, AM_BOOL), false, NULL),
           mean, 1, 1e-6, 0, "sdpa all hidden");
  /* causal with q_offset -1: the query sees nothing -> mean (MLX rule) */
  t_expect(am_sdpa(t_arr(q2, q2s, 4, AM_F32), t_arr(k2, k2s, 4, AM_F32),
                   t_arr(v2, k2s, 4, AM_F32), 1.0f, NULL, true, i32_scalar(-1)),
           mean, 1, 1e-6, 0, "sdpa causal none visible");
  am_scope_pop();
}

static void test_sdpa_reference(void) {
  /* Long-KV decode at every SIMD level and GQA factor, dtypes, layouts. */
  static const int64_t groups[3] = {1, 2, 8};
  uint64_t seed = 100;
  int quick = t_quick();
  for (int lv = 0; lv < 5; lv++) {
    am_nn_simd_limit(lv);
    for (int gi = 0; gi < 3; gi++) {
      static const am_dtype dts[3] = {AM_F32, AM_BF16, AM_F16};
      for (int di = 0; di < 3; di++) {
        if (quick && (gi != 2 || (lv != 0 && lv != 4))) continue;
        att_cfg c = {.B = 1,
                     .Hq = 2 * groups[gi],
                     .Hkv = 2,
                     .Lq = 1,
                     .Lkv = 4096,
                     .D = 64,
                     .Dv = 64,
                     .dt = dts[di],
                     .qoff = -1,
                     .kv_transposed = di == 1};
        char what[96];
        snprintf(what, sizeof what, "decode 4096 G%lld %s %s",
                 (long long)groups[gi], am_dtype_name(dts[di]), level_name[lv]);
        double tol = dts[di] == AM_F32 ? 1e-4 : 1e-2;
        check_sdpa(&c, seed++, tol, tol * 0.1, what);
      }
    }
  }
  am_nn_simd_limit(3);
  /* odd sizes: head dims off the vector width, Dv != D, several batches,
   * GQA with Lq > 1 (decode of a few tokens and prefill), masks, causal
   * with and without q_offset, transposed K/V, float64 */
  att_cfg cfgs[] = {
      {1, 8, 1, 3, 300, 37, 19, AM_F32, 0, true, -1, false},
      {2, 4, 2, 8, 1000, 24, 40, AM_F32, 1, false, -1, true},
      {2, 4, 2, 8, 1000, 24, 40, AM_BF16, 2, true, 990, false},
      {1, 2, 1, 150, 150, 16, 16, AM_F32, 0, true, -1, false},
      {1, 6, 3, 70, 200, 8, 12, AM_F32, 1, true, 100, true},
      {1, 2, 2, 130, 130, 32, 32, AM_F16, 2, true, -1, false},
      {1, 2, 1, 5, 600, 16, 16, AM_F32, 0, true, 20, false},
      {1, 2, 1, 40, 30, 8, 8, AM_F32, 0, true, -1, false},
      {2, 4, 4, 9, 65, 10, 3, AM_F64, 1, true, 50, true},
      {1, 16, 2, 1, 777, 256, 256, AM_BF16, 0, false, -1, true},
  };
  int n = (int)(sizeof cfgs / sizeof *cfgs);
  for (int i = 0; i < n; i++) {
    att_cfg *c = &cfgs[i];
    char what[128];
    snprintf(what, sizeof what,
             "sdpa cfg %d: B%lld Hq%lld Hkv%lld Lq%lld Lkv%lld D%lld Dv%lld %s "
             "mask%d causal%d qoff%lld",
             i, (long long)c->B, (long long)c->Hq, (long long)c->Hkv,
             (long long)c->Lq, (long long)c->Lkv, (long long)c->D,
             (long long)c->Dv, am_dtype_name(c->dt), c->mask, c->causal,
             (long long)c->qoff);
    double tol = c->dt == AM_F32 ? 1e-4 : c->dt == AM_F64 ? 1e-10 : 1e-2;
    check_sdpa(c, seed++, tol, tol * 0.1, what);
  }
  /* one thread (no key splits) gives the same */
  int nt = am_get_num_threads();
  am_set_num_threads(1);
  check_sdpa(&cfgs[0], 7, 1e-4, 1e-5, "sdpa one thread");
  am_set_num_threads(8);
  check_sdpa(&cfgs[1], 8, 1e-4, 1e-5, "sdpa eight threads");
  am_set_num_threads(nt);
}

static void test_sdpa_errors(void) {
  am_scope_push();
  int64_t q[4] = {1, 3, 2, 8}, k[4] = {1, 2, 5, 8}, k4[4] = {1, 1, 5, 4},
          q4[4] = {1, 4, 2, 8};
  am_array Q = am_ones(q4, 4, AM_F32), K = am_ones(k, 4, AM_F32);
  t_expect_error(am_sdpa(am_ones(q, 4, AM_F32), K, K, 1, NULL, false, NULL),
                 AM_ERR_SHAPE, "sdpa", "Hq % Hkv");
  t_expect_error(am_sdpa(Q, am_ones(k4, 4, AM_F32), am_ones(k4, 4, AM_F32), 1,
                         NULL, false, NULL),
                 AM_ERR_SHAPE, "sdpa", "D mismatch");
  int64_t vbad[4] = {1, 2, 4, 8};
  t_expect_error(am_sdpa(Q, K, am_ones(vbad, 4, AM_F32), 1, NULL, false, NULL),
                 AM_ERR_SHAPE, "sdpa", "v length");
  t_expect_error(
      am_sdpa(am_ones(q4 + 1, 3, AM_F32), K, K, 1, NULL, false, NULL),
      AM_ERR_SHAPE, "sdpa", "3-d q");
  int64_t mb[2] = {2, 4};
  t_expect_error(am_sdpa(Q, K, K, 1, am_ones(mb, 2, AM_F32), false, NULL),
                 AM_ERR_SHAPE, "sdpa", "mask shape");
  int64_t mg[2] = {2, 5};
  t_expect_error(am_sdpa(Q, K, K, 1, am_ones(mg, 2, AM_I32), false, NULL),
                 AM_ERR_DTYPE, "sdpa", "int mask");
  t_expect_error(am_sdpa(Q, K, K, 1, NULL, false, i32_scalar(0)),
                 AM_ERR_INVALID_ARG, "sdpa", "q_offset without causal");
  t_expect_error(am_sdpa(Q, K, K, 1, NULL, true, am_scalar(0, AM_F32)),
                 AM_ERR_SHAPE, "sdpa", "float q_offset");
  t_expect_error(am_sdpa(Q, K, NULL, 1, NULL, false, NULL), AM_ERR_INVALID_ARG,
                 "sdpa", "NULL v");
  /* mixed dtypes promote: bf16 q with f32 k, v -> f32 */
  am_array y = am_sdpa(am_astype(Q, AM_BF16), K, K, 1, NULL, false, NULL);
  CHECK(am_array_dtype(y) == AM_F32, "sdpa promotion");
  am_scope_pop();
}

/* A compiled decode step: KV length and q_offset change per call, the
 * trace does not. */
static am_status decode_fn(void *ctx, const am_array *in, int n_in,
                           am_array *out, int n_out) {
  out[0] = am_sdpa(in[0], in[1], in[2], 0.125f, NULL, true, in[3]);
  return AM_OK;
}

static void test_sdpa_compiled(void) {
  am_compile_options o = {.shapeless = true};
  am_compiled f = am_compile(decode_fn, NULL, 4, 1, &o);
  t_rng r = {77};
  for (int step = 0; step < 6; step++) {
    am_scope_push();
    int64_t lkv = 10 + 37 * step;
    int64_t qs[4] = {1, 8, 1, 64}, ks[4] = {1, 2, lkv, 64};
    am_array q = t_rand(&r, qs, 4, AM_BF16, -1, 1);
    am_array k = t_rand(&r, ks, 4, AM_BF16, -1, 1);
    am_array v = t_rand(&r, ks, 4, AM_BF16, -1, 1);
    am_array off = i32_scalar((int32_t)(lkv - 1 - step));
    am_array in[4] = {q, k, v, off}, y;
    CHECK(am_compiled_call(f, in, &y) == AM_OK, "call: %s", am_last_error());
    double *want = read_f64(am_sdpa(q, k, v, 0.125f, NULL, true, off));
    t_expect(y, want, 8 * 64, 1e-6, 1e-6, "compiled decode");
    free(want);
    am_scope_pop();
  }
  am_compile_stats st = am_compiled_stats(f);
  CHECK(st.traces == 1 && st.calls == 6,
        "compiled decode re-traced: %llu traces (%s)",
        (unsigned long long)st.traces, am_compiled_last_fallback(f));
  am_compiled_free(f);
}

/* ============================================== softmax and activations */

static void test_axis_golden(const t_golden *g) {
  static const char *const names[] = {"softmax_ax0", "softmax_ax1",
                                      "softmax_ax2", "softmax_extreme"};
  for (int lv = 0; lv < 5; lv++) {
    am_nn_simd_limit(lv);
    for (int i = 0; i < 4; i++) {
      am_scope_push();
      const t_gcase *c = t_golden_case(g, names[i]);
      if (c) {
        int ax = (int)t_gcase_arr(c, "p")->v[0];
        am_array x = garr(c, "x");
        char what[64];
        snprintf(what, sizeof what, "%s %s", names[i], level_name[lv]);
        expect_g(am_softmax(x, ax), c, "y", 1e-5, 1e-7, what);
        expect_g(am_log_softmax(x, ax), c, "ly", 1e-5, 1e-5, what);
        expect_g(am_softmax(strided(x), ax), c, "y", 1e-5, 1e-7, what);
        expect_g(am_softmax(am_astype(x, AM_F64), ax), c, "y", 1e-12, 1e-14,
                 what);
        expect_g(am_log_softmax(am_astype(x, AM_F64), ax), c, "ly", 1e-12,
                 1e-12, what);
        /* the same axis counted from the other end */
        int nd = am_array_ndim(x), other = ax < 0 ? ax + nd : ax - nd;
        expect_g(am_softmax(x, other), c, "y", 1e-5, 1e-7, what);
      }
      am_scope_pop();
    }
  }
  am_nn_simd_limit(3);
  static const char *const l2[] = {"l2_ax1", "l2_ax0"};
  for (int i = 0; i < 2; i++) {
    am_scope_push();
    const t_gcase *c = t_golden_case(g, l2[i]);
    if (c) {
      const double *p = t_gcase_arr(c, "p")->v;
      am_array x = garr(c, "x");
      expect_g(am_l2_normalize(x, (int)p[0], (float)p[1]), c, "y", 1e-5, 1e-7,
               l2[i]);
      /* on the transposed layout along the other axis, transposed back */
      expect_g(am_transpose(am_l2_normalize(t_transposed(x), (int)(1 - p[0]),
                                            (float)p[1]),
                            NULL, 0),
               c, "y", 1e-5, 1e-7, "l2 transposed");
    }
    am_scope_pop();
  }
}

static void test_act_golden(const t_golden *g) {
  const t_gcase *c = t_golden_case(g, "act");
  if (!c) return;
  for (int lv = 0; lv < 5; lv++) {
    am_nn_simd_limit(lv);
    am_scope_push();
    am_array x = garr(c, "x");
    am_array xs = strided(x);
    expect_g(am_silu(x), c, "silu", 1e-5, 1e-6, "silu");
    expect_g(am_gelu(x, false), c, "gelu", 1e-5, 1e-6, "gelu");
    expect_g(am_gelu(x, true), c, "gelu_tanh", 1e-5, 1e-6, "gelu tanh");
    expect_g(am_softplus(x), c, "softplus", 1e-5, 1e-6, "softplus");
    expect_g(am_silu(xs), c, "silu", 1e-5, 1e-6, "silu strided");
    expect_g(am_softplus(xs), c, "softplus", 1e-5, 1e-6, "softplus strided");
    am_array x64 = am_astype(x, AM_F64);
    expect_g(am_silu(x64), c, "silu", 1e-12, 1e-14, "silu f64");
    expect_g(am_gelu(x64, false), c, "gelu", 1e-12, 1e-14, "gelu f64");
    expect_g(am_gelu(x64, true), c, "gelu_tanh", 1e-12, 1e-14, "gelu tanh f64");
    expect_g(am_softplus(x64), c, "softplus", 1e-12, 1e-14, "softplus f64");
    am_array xb = am_astype(x, AM_BF16);
    double *xbv = read_f64(xb); /* bf16-rounded inputs: compare loosely */
    am_array yb = am_silu(xb);
    CHECK(am_array_dtype(yb) == AM_BF16, "silu bf16 dtype");
    double *ybv = read_f64(yb);
    int bad = 0;
    for (int64_t i = 0; i < am_array_size(x); i++) {
      double want = xbv[i] / (1 + exp(-xbv[i]));
      bad += fabs(ybv[i] - want) > 1e-2 * fabs(want) + 1e-6;
    }
    CHECK(!bad, "silu bf16: %d bad", bad);
    free(xbv);
    free(ybv);
    am_scope_pop();
  }
  am_nn_simd_limit(3);
}

static void test_axis_act_misc(void) {
  am_scope_push();
  /* softmax of [0, ln 2] is [1/3, 2/3]; integer inputs become float32 */
  double xv[2] = {0, log(2.0)}, want[2] = {1.0 / 3, 2.0 / 3};
  int64_t s2 = 2;
  t_expect(am_softmax(t_arr(xv, &s2, 1, AM_F16), 0), want, 2, 2e-3, 0,
           "softmax f16");
  double iv[3] = {1, 2, 3};
  int64_t s3 = 3;
  am_array si = am_softmax(t_arr(iv, &s3, 1, AM_I32), -1);
  CHECK(am_array_dtype(si) == AM_F32, "softmax int -> f32");
  double e1 = exp(-2.0), e2 = exp(-1.0), sum = e1 + e2 + 1;
  double ws[3] = {e1 / sum, e2 / sum, 1 / sum};
  t_expect(si, ws, 3, 1e-6, 0, "softmax int");
  /* a long row through the vector kernels */
  t_rng r = {3};
  int64_t sl[2] = {3, 5001};
  am_array x = t_rand(&r, sl, 2, AM_F32, -20, 20);
  double *ref = read_f64(am_softmax(am_astype(x, AM_F64), 1));
  t_expect(am_softmax(x, 1), ref, 3 * 5001, 1e-5, 1e-10, "softmax long");
  free(ref);
  /* 0-d activations, empty arrays */
  double sw[1] = {2 / (1 + exp(-2.0))};
  t_expect(am_silu(am_scalar(2, AM_F32)), sw, 1, 1e-6, 0, "silu 0-d");
  int64_t e[2] = {2, 0};
  am_array ys[3] = {am_softmax(am_zeros(e, 2, AM_F32), -1),
                    am_gelu(am_zeros(e, 2, AM_BF16), true),
                    am_l2_normalize(am_zeros(e, 2, AM_F32), 0, 1e-6f)};
  CHECK(am_eval(ys, 3) == AM_OK, "empty: %s", am_last_error());
  for (int i = 0; i < 3; i++)
    t_expect_shape(ys[i], e, 2, "empty act");
  /* errors */
  t_expect_error(am_softmax(am_scalar(1, AM_F32), 0), AM_ERR_INVALID_ARG,
                 "softmax", "0-d axis");
  t_expect_error(am_log_softmax(am_zeros(e, 2, AM_F32), 2), AM_ERR_INVALID_ARG,
                 "log_softmax", "axis 2");
  t_expect_error(am_l2_normalize(am_zeros(e, 2, AM_F32), -3, 0),
                 AM_ERR_INVALID_ARG, "l2_normalize", "axis -3");
  t_expect_error(am_l2_normalize(am_zeros(e, 2, AM_F32), 0, -1),
                 AM_ERR_INVALID_ARG, "l2_normalize", "eps");
  t_expect_error(am_gelu(NULL, false), AM_ERR_INVALID_ARG, "gelu", "NULL");
  am_scope_pop();
}

int main(void) {
  t_golden *g = t_golden_load("golden/nn.txt");
  test_norm_golden(g);
  test_norm_hand();
  test_norm_errors();
  test_rope_golden(g);
  test_rope_hand();
  test_rope_errors();
  test_rope_offsets_data();
  test_sdpa_golden(g);
  test_sdpa_hand();
  test_sdpa_reference();
  test_sdpa_errors();
  test_sdpa_compiled();
  test_axis_golden(g);
  test_act_golden(g);
  test_axis_act_misc();
  t_golden_free(g);
  return t_summary();
}
