/*
 * test_cuda_qmm.c — the CUDA backend: argument errors (run everywhere),
 * then, on a machine with a GPU, the caching allocator, copies and the
 * quantized matmul kernels against a float64 reference and against the
 * CPU library's am_gather_qmm (unless built with AM_CUDA_TEST_STANDALONE,
 * without libamorph). Exits 77 (skip) when there is no device, after the
 * checks that need none. AM_TEST_QUICK=1 runs fewer kernel layouts,
 * AM_TEST_QUICK=2 only the automatic one (for compute-sanitizer).
 */
#include "cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail, g_checks;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    g_checks++;                                                                \
    if (!(cond)) {                                                             \
      g_fail++;                                                                \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
    }                                                                          \
  } while (0)

/* ======================================================================
 *  Host helpers: random numbers, half conversions
 * ====================================================================== */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd64(void) {
  uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static float rndu(void) { /* [-1, 1) */
  return (float)((double)(rnd64() >> 11) / 4503599627370496.0 - 1.0);
}

static uint32_t f32_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}
static float bits_f32(uint32_t b) {
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static uint16_t f32_to_bf16(float f) {
  uint32_t b = f32_bits(f);
  b += 0x7fffu + ((b >> 16) & 1u);
  return (uint16_t)(b >> 16);
}
static float bf16_to_f32(uint16_t h) {
  return bits_f32((uint32_t)h << 16);
}
/* Normal-range values only (the test's scales and biases). */
static uint16_t f32_to_f16(float f) {
  uint32_t b = f32_bits(f), sign = (b >> 16) & 0x8000u;
  int e = (int)((b >> 23) & 0xff) - 127 + 15;
  uint32_t m = b & 0x7fffffu;
  if (e <= 0) return (uint16_t)sign; /* flush (not used) */
  uint32_t h = ((uint32_t)e << 10) | (m >> 13);
  uint32_t rest = m & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}
static float f16_to_f32(uint16_t h) {
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float v = e ? ldexpf((float)(m | 0x400), (int)e - 25) : ldexpf((float)m, -24);
  return (h & 0x8000u) ? -v : v;
}

/* ======================================================================
 *  One test case
 * ====================================================================== */

typedef struct tcase {
  const char *name;
  int P, M, N, K, Bx, E, gs, bits;
  am_dtype xdt, sdt;
  bool lhs, rhs;
} tcase;

typedef struct hdata {
  uint32_t *w;
  void *s, *b, *x;
  float *sf, *bf, *xf; /* values as the kernels see them */
  int32_t *lhs, *rhs;
  size_t wn, sn, xn;
} hdata;

static size_t dsize(am_dtype t) {
  return t == AM_F32 ? 4 : 2;
}

static void store_val(void *p, size_t i, am_dtype t, float v, float *vf) {
  if (t == AM_F32) {
    ((float *)p)[i] = v;
    vf[i] = v;
  } else if (t == AM_BF16) {
    uint16_t h = f32_to_bf16(v);
    ((uint16_t *)p)[i] = h;
    vf[i] = bf16_to_f32(h);
  } else {
    uint16_t h = f32_to_f16(v);
    ((uint16_t *)p)[i] = h;
    vf[i] = f16_to_f32(h);
  }
}

static bool make_data(const tcase *c, hdata *h) {
  memset(h, 0, sizeof *h);
  h->wn = (size_t)c->E * c->N * ((size_t)c->K * c->bits / 32);
  h->sn = (size_t)c->E * c->N * (c->K / c->gs);
  h->xn = (size_t)c->Bx * c->M * c->K;
  h->w = malloc(h->wn * 4);
  h->s = malloc(h->sn * dsize(c->sdt));
  h->b = malloc(h->sn * dsize(c->sdt));
  h->x = malloc(h->xn * dsize(c->xdt));
  h->sf = malloc(h->sn * 4);
  h->bf = malloc(h->sn * 4);
  h->xf = malloc(h->xn * 4);
  h->lhs = malloc((size_t)c->P * 4);
  h->rhs = malloc((size_t)c->P * 4);
  if (!h->w || !h->s || !h->b || !h->x || !h->sf || !h->bf || !h->xf ||
      !h->lhs || !h->rhs)
    return false;
  for (size_t i = 0; i < h->wn; i++)
    h->w[i] = (uint32_t)rnd64();
  for (size_t i = 0; i < h->sn; i++) {
    store_val(h->s, i, c->sdt, 0.02f * rndu() + 0.001f, h->sf);
    store_val(h->b, i, c->sdt, 0.1f * rndu(), h->bf);
  }
  for (size_t i = 0; i < h->xn; i++)
    store_val(h->x, i, c->xdt, rndu(), h->xf);
  for (int p = 0; p < c->P; p++) {
    /* Few distinct experts: repeats are certain when P > E / 2. */
    h->rhs[p] =
        c->rhs ? (int32_t)(rnd64() % (uint64_t)c->E) : (c->E == 1 ? 0 : p);
    h->lhs[p] =
        c->lhs ? (int32_t)(rnd64() % (uint64_t)c->Bx) : (c->Bx == 1 ? 0 : p);
  }
  return true;
}

static void free_data(hdata *h) {
  free(h->w);
  free(h->s);
  free(h->b);
  free(h->x);
  free(h->sf);
  free(h->bf);
  free(h->xf);
  free(h->lhs);
  free(h->rhs);
}

/* Code k of a packed row (MLX's bit stream). */
static unsigned code_at(const uint32_t *row, int k, int bits) {
  const uint8_t *p = (const uint8_t *)row;
  int bit = k * bits, sh = bit & 7;
  unsigned v = p[bit >> 3];
  if (sh + bits > 8) v |= (unsigned)p[(bit >> 3) + 1] << 8;
  return (v >> sh) & ((1u << bits) - 1u);
}

static void ref_f64(const tcase *c, const hdata *h, double *y) {
  int Kp = c->K * c->bits / 32, ng = c->K / c->gs;
  double *deq = malloc((size_t)c->K * sizeof *deq);
  if (!deq) return;
  for (int p = 0; p < c->P; p++) {
    int e = h->rhs[p], xb = h->lhs[p];
    for (int n = 0; n < c->N; n++) {
      const uint32_t *row = h->w + ((size_t)e * c->N + n) * Kp;
      size_t g0 = ((size_t)e * c->N + n) * ng;
      for (int k = 0; k < c->K; k++) {
        int g = k / c->gs;
        deq[k] = (double)h->sf[g0 + g] * code_at(row, k, c->bits) +
                 (double)h->bf[g0 + g];
      }
      for (int m = 0; m < c->M; m++) {
        const float *xr = h->xf + ((size_t)xb * c->M + m) * c->K;
        double acc = 0;
        for (int k = 0; k < c->K; k++)
          acc += deq[k] * xr[k];
        y[((size_t)p * c->M + m) * c->N + n] = acc;
      }
    }
  }
  free(deq);
}

/* ||a - b|| / ||b|| over n elements; NaN/inf in a gives +inf. */
static double rel_err(const float *a, const double *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return sqrt(num / (den > 0 ? den : 1));
}

#ifndef AM_CUDA_TEST_STANDALONE
/* The CPU library's am_gather_qmm on the same packed data. */
static bool ref_amorph(const tcase *c, const hdata *h, double *y) {
  int64_t xs[3] = {c->Bx, c->M, c->K};
  int64_t ws[3] = {c->E, c->N, (int64_t)c->K * c->bits / 32};
  int64_t ss[3] = {c->E, c->N, c->K / c->gs};
  int64_t is[1] = {c->P};
  am_scope_push();
  am_array x = am_array_new_data(h->x, xs, 3, c->xdt);
  am_array w = am_array_new_data(h->w, ws, 3, AM_U32);
  am_array s = am_array_new_data(h->s, ss, 3, c->sdt);
  am_array b = am_array_new_data(h->b, ss, 3, c->sdt);
  am_array l = c->lhs ? am_array_new_data(h->lhs, is, 1, AM_I32) : NULL;
  am_array r = c->rhs ? am_array_new_data(h->rhs, is, 1, AM_I32) : NULL;
  am_array out;
  if (!c->lhs && !c->rhs && c->Bx == 1 && c->E == 1) {
    int64_t x2[2] = {c->M, c->K};
    int64_t w2[2] = {c->N, (int64_t)c->K * c->bits / 32};
    int64_t s2[2] = {c->N, c->K / c->gs};
    out = am_quantized_matmul(am_array_new_data(h->x, x2, 2, c->xdt),
                              am_array_new_data(h->w, w2, 2, AM_U32),
                              am_array_new_data(h->s, s2, 2, c->sdt),
                              am_array_new_data(h->b, s2, 2, c->sdt), true,
                              c->gs, c->bits, AM_QUANT_AFFINE);
  } else {
    out = am_gather_qmm(x, w, s, b, l, r, true, c->gs, c->bits, AM_QUANT_AFFINE,
                        false);
  }
  size_t n = (size_t)c->P * c->M * c->N;
  float *tmp = malloc(n * 4);
  bool ok = tmp && am_array_size(out) == (int64_t)n &&
            am_array_read(out, AM_F32, tmp, (int64_t)n) == AM_OK;
  if (!ok) fprintf(stderr, "amorph reference: %s\n", am_last_error());
  for (size_t i = 0; ok && i < n; i++)
    y[i] = tmp[i];
  free(tmp);
  am_scope_pop();
  return ok;
}
#endif

typedef struct dbufs {
  void *w, *s, *b, *x, *lhs, *rhs, *y;
} dbufs;

static void dfree(dbufs *d) {
  void **p = (void **)d;
  for (size_t i = 0; i < sizeof *d / sizeof(void *); i++)
    am_cuda_free(p[i]);
  memset(d, 0, sizeof *d);
}

static bool upload_case(const tcase *c, const hdata *h, dbufs *d) {
  memset(d, 0, sizeof *d);
  size_t yn = (size_t)c->P * c->M * c->N * 4;
  size_t sb = h->sn * dsize(c->sdt), xb = h->xn * dsize(c->xdt);
  size_t ib = (size_t)c->P * 4;
  if (am_cuda_malloc(&d->w, h->wn * 4) || am_cuda_malloc(&d->s, sb) ||
      am_cuda_malloc(&d->b, sb) || am_cuda_malloc(&d->x, xb) ||
      am_cuda_malloc(&d->lhs, ib) || am_cuda_malloc(&d->rhs, ib) ||
      am_cuda_malloc(&d->y, yn))
    return false;
  return !am_cuda_upload(d->w, h->w, h->wn * 4) &&
         !am_cuda_upload(d->s, h->s, sb) && !am_cuda_upload(d->b, h->b, sb) &&
         !am_cuda_upload(d->x, h->x, xb) &&
         !am_cuda_upload(d->lhs, h->lhs, ib) &&
         !am_cuda_upload(d->rhs, h->rhs, ib);
}

static am_cuda_qmm_args case_args(const tcase *c, const dbufs *d) {
  am_cuda_qmm_args a = {0};
  a.x = d->x;
  a.x_dtype = c->xdt;
  a.w = d->w;
  a.scales = d->s;
  a.biases = d->b;
  a.s_dtype = c->sdt;
  a.lhs = c->lhs ? d->lhs : NULL;
  a.rhs = c->rhs ? d->rhs : NULL;
  a.y = d->y;
  a.P = c->P;
  a.M = c->M;
  a.N = c->N;
  a.K = c->K;
  a.Bx = c->Bx;
  a.E = c->E;
  a.group_size = c->gs;
  a.bits = c->bits;
  return a;
}

/* Runs the case on the GPU (y poisoned with NaN first); error vs ref. */
static double run_gpu(const tcase *c, const dbufs *d, const double *ref,
                      float *y, bool pdl, bool precise) {
  size_t n = (size_t)c->P * c->M * c->N;
  if (am_cuda_memset(d->y, 0xff, n * 4, NULL)) return INFINITY;
  am_cuda_qmm_args a = case_args(c, d);
  a.pdl = pdl;
  a.precise = precise;
  am_status st = am_cuda_gather_qmm(&a);
  if (st != AM_OK) {
    fprintf(stderr, "%s: %s\n", c->name, am_cuda_last_error());
    return INFINITY;
  }
  if (am_cuda_download(y, d->y, n * 4) || am_cuda_qmm_check(NULL))
    return INFINITY;
  return rel_err(y, ref, n);
}

static int g_quick; /* 1: fewer layouts, 2: none */

/* ||gpu - float64|| / ||float64|| of the fused 4-bit kernel, both modes
 * (measured about 1e-7 on an H100). */
#define TOL_FUSED 1e-6

static void test_case(const tcase *c) {
  hdata h;
  dbufs d;
  size_t n = (size_t)c->P * c->M * c->N;
  double *r64 = malloc(n * sizeof *r64), *ram = malloc(n * sizeof *ram);
  float *y = malloc(n * 4);
  if (!make_data(c, &h) || !r64 || !ram || !y || !upload_case(c, &h, &d)) {
    CHECK(false, "%s: setup failed: %s", c->name, am_cuda_last_error());
    goto done;
  }
  ref_f64(c, &h, r64);
  /* The fused kernel's default splits x per chunk into two 16-bit terms
   * (x to ~2^-32 of the chunk's max |x|): as accurate as float32
   * products, ~1e-7 here (one term gave ~1.2e-5). */
  const bool fused = c->bits == 4 && c->M <= 8;
  const double tol = fused ? TOL_FUSED : 1e-5;
  double e64 = run_gpu(c, &d, r64, y, false, false);
  CHECK(e64 < tol, "%s: gpu vs float64: %.3g", c->name, e64);
  double eam = 0;
#ifndef AM_CUDA_TEST_STANDALONE
  if (ref_amorph(c, &h, ram)) {
    /* bfloat16 x with bfloat16 scales: amorph's output is bfloat16. */
    bool half_out = c->xdt == AM_BF16 && c->sdt == AM_BF16;
    eam = rel_err(y, ram, n);
    CHECK(eam < (half_out ? 1e-2 : 1e-5), "%s: gpu vs am_gather_qmm: %.3g",
          c->name, eam);
  } else {
    CHECK(false, "%s: amorph reference failed", c->name);
  }
#endif
  double ep = run_gpu(c, &d, r64, y, false, true);
  CHECK(ep < (fused ? TOL_FUSED : 1e-5), "%s: precise gpu vs float64: %.3g",
        c->name, ep);
  printf("  %-26s P=%-5d M=%d N=%-5d K=%-4d gs=%-3d b=%d x=%s s=%s: "
         "err64 %.1e precise %.1e cpu %.1e\n",
         c->name, c->P, c->M, c->N, c->K, c->gs, c->bits,
         c->xdt == AM_F32 ? "f32" : "bf16",
         c->sdt == AM_F32   ? "f32"
         : c->sdt == AM_F16 ? "f16"
                            : "bf16",
         e64, ep, eam);

  /* Every kernel layout on the 4-bit cases (both modes), PDL launches. */
  if (fused && g_quick < 2) {
    static const int lanes[] = {8, 16, 32}, rows[] = {1, 2, 4};
    static const int warps[] = {1, 4, 8}, tiles[] = {1, 3};
    double worst[2] = {0, 0};
    for (int pr = 0; pr < 2; pr++)
      for (int li = 0; li < 3; li++)
        for (int ri = 0; ri < 3; ri++)
          for (int wi = 0; wi < 3; wi++)
            for (int ti = 0; ti < 2; ti++) {
              if (g_quick && (wi != 2 || ti != 0 || pr)) continue;
              /* L2 prefetch off with 4 warps, on otherwise. */
              am_cuda_qmm_tuning t = {.lanes = lanes[li],
                                      .warps = warps[wi],
                                      .rows = rows[ri],
                                      .tiles = tiles[ti],
                                      .l2_prefetch = wi == 1 ? 2 : 1};
              am_cuda_qmm_set_tuning(&t);
              double e = run_gpu(c, &d, r64, y, ti == 1, pr == 1);
              CHECK(e < TOL_FUSED,
                    "%s: lanes %d warps %d rows %d tiles %d precise %d: %.3g",
                    c->name, t.lanes, t.warps, t.rows, t.tiles, pr, e);
              if (e > worst[pr]) worst[pr] = e;
            }
    am_cuda_qmm_tuning t = {.force_ref = true};
    am_cuda_qmm_set_tuning(&t);
    double e = run_gpu(c, &d, r64, y, false, false);
    CHECK(e < 1e-5, "%s: reference kernel: %.3g", c->name, e);
    am_cuda_qmm_set_tuning(NULL);
    printf("  %-26s every layout: worst err64 %.1e, precise %.1e; "
           "reference kernel %.1e\n",
           "", worst[0], worst[1], e);
  }
done:
  dfree(&d);
  free_data(&h);
  free(r64);
  free(ram);
  free(y);
}

/* ======================================================================
 *  Errors that need no device
 * ====================================================================== */

static am_status try_args(void (*edit)(am_cuda_qmm_args *)) {
  static float dummy[64];
  am_cuda_qmm_args a = {0};
  a.x = dummy;
  a.x_dtype = AM_F32;
  a.w = (const uint32_t *)dummy;
  a.scales = dummy;
  a.biases = dummy;
  a.s_dtype = AM_BF16;
  a.y = dummy;
  a.P = 1;
  a.M = 1;
  a.N = 8;
  a.K = 64;
  a.Bx = 1;
  a.E = 1;
  a.group_size = 64;
  a.bits = 4;
  edit(&a);
  return am_cuda_gather_qmm(&a);
}
static void e_gs(am_cuda_qmm_args *a) {
  a->group_size = 48;
}
static void e_k(am_cuda_qmm_args *a) {
  a->K = 100;
}
static void e_m(am_cuda_qmm_args *a) {
  a->M = 0;
}
static void e_bits(am_cuda_qmm_args *a) {
  a->bits = 7;
}
static void e_null(am_cuda_qmm_args *a) {
  a->x = NULL;
}
static void e_xdt(am_cuda_qmm_args *a) {
  a->x_dtype = AM_F16;
}
static void e_sdt(am_cuda_qmm_args *a) {
  a->s_dtype = AM_U8;
}
static void e_batch(am_cuda_qmm_args *a) {
  a->E = 3;
  a->P = 2;
}
static void e_big(am_cuda_qmm_args *a) {
  a->N = (int64_t)1 << 40;
}

static void test_arg_errors(void) {
  struct {
    void (*edit)(am_cuda_qmm_args *);
    am_status want;
    const char *what;
  } t[] = {
      {e_gs, AM_ERR_INVALID_ARG, "group size"},
      {e_k, AM_ERR_SHAPE, "multiple of the group size"},
      {e_m, AM_ERR_SHAPE, "out of range"},
      {e_bits, AM_ERR_INVALID_ARG, "bits"},
      {e_null, AM_ERR_INVALID_ARG, "NULL"},
      {e_xdt, AM_ERR_DTYPE, "x dtype"},
      {e_sdt, AM_ERR_DTYPE, "scales dtype"},
      {e_batch, AM_ERR_SHAPE, "w batch"},
      {e_big, AM_ERR_SHAPE, "out of range"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    am_status st = try_args(t[i].edit);
    CHECK(st == t[i].want, "arg error %zu: status %d, want %d (%s)", i, (int)st,
          (int)t[i].want, am_cuda_last_error());
    CHECK(strstr(am_cuda_last_error(), t[i].what),
          "arg error %zu: message '%s' lacks '%s'", i, am_cuda_last_error(),
          t[i].what);
#ifndef AM_CUDA_TEST_STANDALONE
    CHECK(strstr(am_last_error(), t[i].what),
          "arg error %zu: am_last_error '%s' lacks '%s'", i, am_last_error(),
          t[i].what);
#endif
  }
  CHECK(am_cuda_gather_qmm(NULL) == AM_ERR_INVALID_ARG, "NULL args");
  void *p = (void *)&p;
  CHECK(am_cuda_malloc(NULL, 16) == AM_ERR_INVALID_ARG, "malloc NULL out");
  CHECK(am_cuda_malloc(&p, 0) == AM_ERR_INVALID_ARG && p == NULL,
        "malloc of 0 bytes");
  CHECK(am_cuda_free(NULL) == AM_OK, "free(NULL)");
  int dummy;
  CHECK(am_cuda_free(&dummy) == AM_ERR_INVALID_ARG, "free of a host pointer");
  CHECK(am_cuda_size_class(1) == 512 && am_cuda_size_class(512) == 512 &&
            am_cuda_size_class(513) == 640 &&
            am_cuda_size_class(1024) == 1024 &&
            am_cuda_size_class(1025) == 1280 &&
            am_cuda_size_class((size_t)1 << 20) == (size_t)1 << 20 &&
            am_cuda_size_class(((size_t)1 << 20) + 1) == ((size_t)5 << 18),
        "size classes");
  for (size_t n = 1; n < ((size_t)1 << 34); n = n * 3 + 1) {
    size_t s = am_cuda_size_class(n);
    CHECK(s >= n && (n <= 512 || s < n + n / 4 + 1), "size class of %zu: %zu",
          n, s);
  }
}

/* ======================================================================
 *  Device runtime and allocator
 * ====================================================================== */

static void test_runtime(void) {
  am_cuda_device_info info;
  CHECK(am_cuda_get_device_info(0, &info) == AM_OK, "device info: %s",
        am_cuda_last_error());
  printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB (%.1f free), L2 %d MiB\n",
         info.name, info.cc_major, info.cc_minor, info.sm_count,
         info.total_mem / 1073741824.0, info.free_mem / 1073741824.0,
         info.l2_bytes >> 20);
  CHECK(info.sm_count > 0 && info.total_mem > 0, "device info values");
  am_cuda_device_info bad;
  CHECK(am_cuda_get_device_info(am_cuda_device_count(), &bad) ==
            AM_ERR_INVALID_ARG,
        "device out of range");
  CHECK(am_cuda_set_device(-1) == AM_ERR_INVALID_ARG, "set_device(-1)");
  CHECK(am_cuda_set_device(0) == AM_OK, "set_device(0)");
  CHECK(am_cuda_stream() != NULL, "thread stream");

  CHECK(am_cuda_empty_cache() == AM_OK, "empty cache");
  am_cuda_mem_stats s0 = am_cuda_memory_stats();
  CHECK(s0.cached == 0, "cached after empty_cache: %zu", s0.cached);
  void *a = NULL, *b = NULL, *c = NULL;
  CHECK(am_cuda_malloc(&a, 1000) == AM_OK && a, "malloc 1000");
  am_cuda_mem_stats s1 = am_cuda_memory_stats();
  CHECK(s1.allocated == s0.allocated + 1024 &&
            s1.requested == s0.requested + 1000 &&
            s1.n_cuda_mallocs == s0.n_cuda_mallocs + 1,
        "stats after malloc: allocated %zu requested %zu", s1.allocated,
        s1.requested);
  CHECK(am_cuda_free(a) == AM_OK, "free");
  am_cuda_mem_stats s2 = am_cuda_memory_stats();
  CHECK(s2.allocated == s0.allocated && s2.cached == s0.cached + 1024 &&
            s2.reserved == s2.allocated + s2.cached,
        "stats after free: allocated %zu cached %zu", s2.allocated, s2.cached);
  CHECK(am_cuda_free(a) == AM_ERR_INVALID_ARG, "double free");
  CHECK(am_cuda_malloc(&b, 900) == AM_OK && b == a, "cache hit reuses %p", a);
  am_cuda_mem_stats s3 = am_cuda_memory_stats();
  CHECK(s3.n_cache_hits == s2.n_cache_hits + 1 && s3.cached == s0.cached,
        "stats after cache hit");
  CHECK(am_cuda_malloc(&c, (size_t)3 << 20) == AM_OK && c, "malloc 3 MiB");
  CHECK(((uintptr_t)b & 255) == 0 && ((uintptr_t)c & 255) == 0, "alignment");
  am_cuda_mem_stats s4 = am_cuda_memory_stats();
  CHECK(s4.peak_allocated >= s4.allocated &&
            s4.allocated == s0.allocated + 1024 + ((size_t)3 << 20),
        "peak %zu allocated %zu", s4.peak_allocated, s4.allocated);

  /* Copies: host -> device -> device -> host. */
  enum { NB = 1 << 20 };
  uint8_t *h = malloc(NB), *h2 = malloc(NB);
  void *d1 = NULL, *d2 = NULL;
  if (h && h2 && am_cuda_malloc(&d1, NB) == AM_OK &&
      am_cuda_malloc(&d2, NB) == AM_OK) {
    for (int i = 0; i < NB; i++)
      h[i] = (uint8_t)rnd64();
    CHECK(am_cuda_memcpy_h2d(d1, h, NB, NULL) == AM_OK &&
              am_cuda_memcpy_d2d(d2, d1, NB, NULL) == AM_OK &&
              am_cuda_download(h2, d2, NB) == AM_OK,
          "copies: %s", am_cuda_last_error());
    CHECK(memcmp(h, h2, NB) == 0, "copied bytes differ");
    CHECK(am_cuda_memset(d2, 0, NB, NULL) == AM_OK &&
              am_cuda_download(h2, d2, NB) == AM_OK && h2[0] == 0 &&
              h2[NB - 1] == 0,
          "memset");
  } else {
    CHECK(false, "copy buffers");
  }
  CHECK(am_cuda_memcpy_h2d(NULL, h, 16, NULL) == AM_ERR_INVALID_ARG,
        "copy to NULL");
  free(h);
  free(h2);
  am_cuda_free(d1);
  am_cuda_free(d2);

  /* Out of device memory: an error, never a crash. */
  void *huge = (void *)&huge;
  am_status st = am_cuda_malloc(&huge, (size_t)1 << 46);
  CHECK(st == AM_ERR_OOM && huge == NULL &&
            strstr(am_cuda_last_error(), "cudaMalloc"),
        "64 TiB malloc: status %d, '%s'", (int)st, am_cuda_last_error());
  CHECK(am_cuda_malloc(&huge, (size_t)1 << 51) == AM_ERR_OOM, "2 PiB malloc");
  /* The failed malloc emptied the cache; live blocks survive. */
  am_cuda_mem_stats s5 = am_cuda_memory_stats();
  CHECK(s5.cached == 0 && s5.allocated == s4.allocated,
        "after OOM: cached %zu allocated %zu", s5.cached, s5.allocated);
  am_cuda_free(b);
  am_cuda_free(c);
  CHECK(am_cuda_empty_cache() == AM_OK, "empty cache");
  am_cuda_mem_stats s6 = am_cuda_memory_stats();
  CHECK(s6.cached == 0 && s6.allocated == s0.allocated &&
            s6.reserved == s6.allocated,
        "after empty_cache: cached %zu allocated %zu", s6.cached, s6.allocated);
}

/* An out-of-range expert index: NaN rows, flagged, others intact. */
static void test_bad_index(void) {
  tcase c = {"bad index", 3, 2,      64,      256,   1,   4,
             64,          4, AM_F32, AM_BF16, false, true};
  hdata h;
  dbufs d;
  if (!make_data(&c, &h) || !upload_case(&c, &h, &d)) {
    CHECK(false, "bad index setup");
    free_data(&h);
    return;
  }
  int32_t bad = 4; /* == E */
  size_t n = (size_t)c.P * c.M * c.N;
  float *y = malloc(n * 4);
  for (int kernel = 0; kernel < 2 && y; kernel++) {
    am_cuda_qmm_tuning t = {.force_ref = kernel == 1};
    am_cuda_qmm_set_tuning(&t);
    CHECK(am_cuda_upload((int32_t *)d.rhs + 1, &bad, 4) == AM_OK, "upload");
    am_cuda_qmm_args a = case_args(&c, &d);
    CHECK(am_cuda_gather_qmm(&a) == AM_OK, "launch");
    am_status st = am_cuda_qmm_check(NULL);
    CHECK(st == AM_ERR_INVALID_ARG && strstr(am_cuda_last_error(), "index"),
          "bad index not reported (kernel %d): %d", kernel, (int)st);
    CHECK(am_cuda_qmm_check(NULL) == AM_OK, "flag not cleared");
    CHECK(am_cuda_download(y, d.y, n * 4) == AM_OK, "download");
    bool nan1 = true, fin0 = true;
    for (size_t i = 0; i < (size_t)c.M * c.N; i++) {
      nan1 = nan1 && isnan(y[(size_t)c.M * c.N + i]);
      fin0 = fin0 && isfinite(y[i]);
    }
    CHECK(nan1 && fin0, "bad pair rows NaN (%d), others finite (%d)", nan1,
          fin0);
  }
  am_cuda_qmm_set_tuning(NULL);
  free(y);
  dfree(&d);
  free_data(&h);
}

int main(void) {
  g_quick = getenv("AM_TEST_QUICK") ? atoi(getenv("AM_TEST_QUICK")) : 0;
  test_arg_errors();
  int ndev = am_cuda_device_count();
  if (ndev == 0) {
    void *p = NULL;
    CHECK(am_cuda_malloc(&p, 64) != AM_OK && p == NULL,
          "malloc without a device must fail");
    printf("no CUDA device (%s): %d checks, %d failures; skipping the rest\n",
           am_cuda_last_error(), g_checks, g_fail);
    am_cuda_shutdown();
    return g_fail ? 1 : 77;
  }
#ifndef AM_CUDA_TEST_STANDALONE
  am_set_qmm_float_kernels(true); /* the CPU reference in float32 */
#endif
  test_runtime();
  const am_dtype F = AM_F32, B = AM_BF16, H = AM_F16;
  const tcase cases[] = {
      /* name, P, M, N, K, Bx, E, gs, bits, x, scales, lhs, rhs */
      {"moe gate (K 2048)", 10, 1, 512, 2048, 1, 16, 64, 4, F, B, false, true},
      {"moe down (K 512)", 10, 1, 2048, 512, 1, 16, 64, 4, F, B, false, true},
      {"moe gate M=2 x bf16", 6, 2, 512, 2048, 1, 8, 64, 4, B, B, false, true},
      {"dense M=1 gs32 f16", 1, 1, 300, 2048, 1, 1, 32, 4, F, H, false, false},
      {"dense M=3 gs128 f32", 1, 3, 200, 2048, 1, 1, 128, 4, F, F, false,
       false},
      {"dense M=5 gs64 x bf16", 1, 5, 96, 1024, 1, 1, 64, 4, B, H, false,
       false},
      {"dense M=8 gs32 bf16", 1, 8, 130, 512, 1, 1, 32, 4, F, B, false, false},
      {"dense M=4 K=4096", 1, 4, 64, 4096, 1, 1, 64, 4, F, B, false, false},
      {"lhs+rhs M=3 K 512 gs32", 6, 3, 77, 512, 4, 5, 32, 4, F, B, true, true},
      {"batched no index M=6", 3, 6, 40, 256, 3, 3, 128, 4, B, F, false, false},
      {"M=7 K=160 gs32", 2, 7, 33, 160, 1, 2, 32, 4, F, B, false, true},
      {"M=12 (reference)", 2, 12, 64, 512, 1, 3, 64, 4, F, B, false, true},
      {"8 bits (reference)", 3, 2, 64, 256, 1, 3, 64, 8, F, B, false, true},
      {"3 bits (reference)", 3, 2, 64, 256, 1, 3, 32, 3, F, H, false, true},
      {"2 bits (reference)", 2, 1, 48, 256, 2, 2, 128, 2, B, B, true, true},
      {"5 bits (reference)", 2, 3, 40, 256, 1, 2, 64, 5, F, F, false, true},
      {"6 bits (reference)", 2, 3, 40, 128, 1, 2, 32, 6, F, B, false, true},
      {"many pairs (grid loop)", 70000, 1, 8, 64, 1, 4, 32, 4, F, B, false,
       true},
  };
  printf("cases:\n");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (g_quick && cases[i].P > 1000) continue;
    test_case(&cases[i]);
  }
  test_bad_index();
  CHECK(am_cuda_empty_cache() == AM_OK, "final empty cache");
  am_cuda_mem_stats s = am_cuda_memory_stats();
  CHECK(s.allocated == 0 && s.cached == 0, "leak: allocated %zu cached %zu",
        s.allocated, s.cached);
  am_cuda_shutdown();
  printf("%d checks, %d failures\n", g_checks, g_fail);
  return g_fail ? 1 : 0;
}
