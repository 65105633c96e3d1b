/*
 * conv.c — conv1d in MLX's layout: x [N, L, C_in], w [C_out, K,
 * C_in/groups], out [N, L_out, C_out], with zero padding on both ends,
 * stride, dilation and groups:
 *
 *   out[n, t, g*Cog + o] = sum_{k, i} x[n, t*stride + k*dilation - padding,
 *                                       g*Cig + i] * w[g*Cog + o, k, i]
 *
 * Depthwise (groups == C_in == C_out, the short convolution of Gated
 * DeltaNet: K = 4, C ~ 8192, L tiny at decode) runs a direct kernel that
 * keeps the K taps of 8 channels in registers. Every other case lowers to
 * im2col + GEMM per group: a block of output positions gathers its
 * receptive fields into rows of K*Cig values, and one sgemm against the
 * group's weights (read in place as [Cog, K*Cig], transposed) writes the
 * group's output columns. float16/bfloat16 compute in float32 and round
 * on store; float64 computes in double.
 */
#include "../core/internal.h"
#include "conv_params.h"

#include "linalg_internal.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>

/* ======================================================================
 *  Shape inference
 * ====================================================================== */

static am_status conv1d_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  const conv_params *p = params;
  const am_meta *x = in[0], *w = in[1];
  if (x->ndim != 3 || w->ndim != 3)
    return AM_FAIL(AM_ERR_SHAPE, "x must be [N, L, C_in] and w [C_out, K, "
                                 "C_in/groups] (3-d both)");
  if (!am_dtype_is_float(x->dtype) || !am_dtype_is_float(w->dtype))
    return AM_FAIL(AM_ERR_DTYPE,
                   "takes float16, bfloat16, float32 or float64 operands, got "
                   "%s and %s",
                   am_dtype_name(x->dtype), am_dtype_name(w->dtype));
  if (x->dtype != w->dtype)
    return AM_FAIL(AM_ERR_DTYPE, "x and w must share one dtype, got %s and %s",
                   am_dtype_name(x->dtype), am_dtype_name(w->dtype));
  if (p->stride < 1 || p->dilation < 1 || p->padding < 0 || p->groups < 1)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "needs stride >= 1, dilation >= 1, padding >= 0 and groups "
                   ">= 1 (got %d, %d, %d, %d)",
                   p->stride, p->dilation, p->padding, p->groups);
  int64_t L = x->shape[1], cin = x->shape[2], cout = w->shape[0];
  int64_t K = w->shape[1], g = p->groups;
  if (cin % g || cout % g)
    return AM_FAIL(AM_ERR_SHAPE,
                   "groups %lld must divide C_in %lld and C_out %lld",
                   (long long)g, (long long)cin, (long long)cout);
  if (w->shape[2] != cin / g)
    return AM_FAIL(AM_ERR_SHAPE,
                   "w has %lld input channels per group, x gives C_in / groups "
                   "= %lld",
                   (long long)w->shape[2], (long long)(cin / g));
  if (K < 1) return AM_FAIL(AM_ERR_SHAPE, "kernel size must be at least 1");
  int64_t span = L + 2 * (int64_t)p->padding - (int64_t)p->dilation * (K - 1);
  if (span < 1)
    return AM_FAIL(AM_ERR_SHAPE,
                   "kernel of %lld taps at dilation %d spans %lld positions, "
                   "more than the padded input's %lld",
                   (long long)K, p->dilation,
                   (long long)((int64_t)p->dilation * (K - 1) + 1),
                   (long long)(L + 2 * (int64_t)p->padding));
  out->dtype = x->dtype;
  out->ndim = 3;
  out->shape[0] = x->shape[0];
  out->shape[1] = (span - 1) / p->stride + 1;
  out->shape[2] = cout;
  return AM_OK;
}

/* ======================================================================
 *  Kernels
 * ====================================================================== */

typedef struct {
  int64_t N, L, Lo, Cin, Cout, K, Cig, Cog;
  int64_t s, p, d, g;
  am_dtype ct;
  const char *x, *w; /* contiguous, compute dtype */
  char *y;           /* [N, Lo, Cout] contiguous, compute dtype */
  char *wt;          /* depthwise: taps as [K, C] */
} conv_job;

/* ----- depthwise ----- */

#define DW_CHUNK 1024 /* channels per task */
#define DW_MAX_K 64   /* longer kernels take the im2col path */

/* The valid taps of output row (n, t): pointers to their input rows and
 * the taps' indices. */
static int dw_taps(const conv_job *j, int64_t n, int64_t t, int64_t *rows,
                   int64_t *ks) {
  int m = 0;
  for (int64_t k = 0; k < j->K; k++) {
    int64_t pos = t * j->s + k * j->d - j->p;
    if (pos < 0 || pos >= j->L) continue;
    rows[m] = n * j->L + pos;
    ks[m++] = k;
  }
  return m;
}

#define DW_SCALAR(NAME, T)                                                     \
  static void NAME(const conv_job *j, const int64_t *rows, const int64_t *ks,  \
                   int m, T *y, int64_t c0, int64_t c1) {                      \
    const T *x = (const T *)j->x, *wt = (const T *)j->wt;                      \
    for (int64_t c = c0; c < c1; c++) {                                        \
      T acc = 0;                                                               \
      for (int i = 0; i < m; i++)                                              \
        acc += wt[ks[i] * j->Cin + c] * x[rows[i] * j->Cin + c];               \
      y[c] = acc;                                                              \
    }                                                                          \
  }
DW_SCALAR(dw_f32_c, float)
DW_SCALAR(dw_f64_c, double)

typedef void (*dw_fn)(const conv_job *, const int64_t *, const int64_t *, int,
                      void *, int64_t, int64_t);

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static void
dw_f32_v(const conv_job *j, const int64_t *rows, const int64_t *ks, int m,
         float *y, int64_t c0, int64_t c1) {
  const float *x = (const float *)j->x, *wt = (const float *)j->wt;
  int64_t C = j->Cin, c = c0;
  for (; c + 8 <= c1; c += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < m; i++)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(wt + ks[i] * C + c),
                            _mm256_loadu_ps(x + rows[i] * C + c), acc);
    _mm256_storeu_ps(y + c, acc);
  }
  dw_f32_c(j, rows, ks, m, y, c, c1);
}
#endif

static void dw_range(void *cx, int64_t g0, int64_t g1) {
  const conv_job *j = cx;
  int64_t nch = (j->Cin + DW_CHUNK - 1) / DW_CHUNK;
  int64_t rp[DW_MAX_K], kp[DW_MAX_K];
  bool simd = j->ct == AM_F32 && am_linalg_simd();
  int64_t es = (int64_t)am_dtype_size(j->ct);
  for (int64_t g = g0; g < g1; g++) {
    int64_t r = g / nch, c0 = (g % nch) * DW_CHUNK;
    int64_t c1 = c0 + DW_CHUNK < j->Cin ? c0 + DW_CHUNK : j->Cin;
    int m = dw_taps(j, r / j->Lo, r % j->Lo, rp, kp);
    char *y = j->y + r * j->Cin * es;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    if (simd) {
      dw_f32_v(j, rp, kp, m, (float *)y, c0, c1);
      continue;
    }
#endif
    (void)simd;
    if (j->ct == AM_F32)
      dw_f32_c(j, rp, kp, m, (float *)y, c0, c1);
    else
      dw_f64_c(j, rp, kp, m, (double *)y, c0, c1);
  }
}

/* w [C, K, 1] -> taps [K, C], for channels [c0, c1). */
static void dw_transpose(void *cx, int64_t c0, int64_t c1) {
  conv_job *j = cx;
  int64_t C = j->Cin, K = j->K;
#define DW_T(T)                                                                \
  for (int64_t c = c0; c < c1; c++)                                            \
    for (int64_t k = 0; k < K; k++)                                            \
      ((T *)j->wt)[k * C + c] = ((const T *)j->w)[c * K + k];
  if (j->ct == AM_F32) DW_T(float) else DW_T(double)
#undef DW_T
}

static am_status run_depthwise(conv_job *j) {
  int64_t C = j->Cin, es = (int64_t)am_dtype_size(j->ct);
  am_buffer *wb;
  j->wt = am_linalg_scratch((size_t)(j->K * C * es), &wb);
  if (!j->wt) return AM_FAIL(AM_ERR_OOM, "out of memory");
  /* a copy of the taps: on the calling thread unless it is large */
  am_parallel_for(C, (1 << 18) / j->K + 1, dw_transpose, j);
  int64_t nch = (C + DW_CHUNK - 1) / DW_CHUNK;
  int64_t per = (C < DW_CHUNK ? C : DW_CHUNK) * j->K;
  int64_t grain = (1 << 17) / (per ? per : 1);
  am_parallel_for(j->N * j->Lo * nch, grain < 1 ? 1 : grain, dw_range, j);
  am_buffer_release(wb);
  return AM_OK;
}

/* ----- im2col + GEMM ----- */

typedef struct {
  const conv_job *j;
  int64_t r0, grp;
  char *cols;
} im2col_ctx;

/* Rows r0 + [b, e) of the current block: each the K*Cig receptive field
 * of one output position, zeros where it reaches into the padding. */
static void im2col_range(void *cx, int64_t b, int64_t e) {
  const im2col_ctx *c = cx;
  const conv_job *j = c->j;
  size_t es = am_dtype_size(j->ct), seg = (size_t)j->Cig * es;
  int64_t kc = j->K * j->Cig;
  for (int64_t i = b; i < e; i++) {
    int64_t r = c->r0 + i, n = r / j->Lo, t = r % j->Lo;
    char *dst = c->cols + i * kc * (int64_t)es;
    for (int64_t k = 0; k < j->K; k++, dst += seg) {
      int64_t pos = t * j->s + k * j->d - j->p;
      if (pos < 0 || pos >= j->L)
        memset(dst, 0, seg);
      else
        memcpy(dst,
               j->x +
                   ((n * j->L + pos) * j->Cin + c->grp * j->Cig) * (int64_t)es,
               seg);
    }
  }
}

/* y[r0 .. r0+rows, group columns] = A (rows x K*Cig, lda) @ W_g^T. */
static void gemm_block(const conv_job *j, const char *A, int64_t lda,
                       int64_t r0, int64_t rows, int64_t grp) {
  int64_t kc = j->K * j->Cig, es = (int64_t)am_dtype_size(j->ct);
  const char *W = j->w + grp * j->Cog * kc * es;
  char *Y = j->y + (r0 * j->Cout + grp * j->Cog) * es;
  if (j->ct == AM_F32)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)j->Cog,
                (int)kc, 1.0f, (const float *)A, (int)lda, (const float *)W,
                (int)kc, 0.0f, (float *)Y, (int)j->Cout);
  else
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)j->Cog,
                (int)kc, 1.0, (const double *)A, (int)lda, (const double *)W,
                (int)kc, 0.0, (double *)Y, (int)j->Cout);
}

static am_status run_im2col(conv_job *j) {
  int64_t R = j->N * j->Lo, kc = j->K * j->Cig;
  if (kc > INT_MAX || R > INT_MAX || j->Cout > INT_MAX)
    return AM_FAIL(AM_ERR_UNSUPPORTED, "sizes above 2^31 - 1 (BLAS int)");
  am_linalg_blas_init();
  /* A pointwise conv reads x in place: its rows are the receptive fields */
  if (j->K == 1 && j->s == 1 && j->p == 0 && j->g == 1) {
    gemm_block(j, j->x, j->Cin, 0, R, 0);
    return AM_OK;
  }
  int64_t es = (int64_t)am_dtype_size(j->ct);
  int64_t rb = (1 << 20) / kc; /* ~4 MiB of float32 rows per block */
  if (rb < 1) rb = 1;
  if (rb > R) rb = R;
  am_buffer *cb;
  char *cols = am_linalg_scratch((size_t)(rb * kc * es), &cb);
  if (!cols) return AM_FAIL(AM_ERR_OOM, "out of memory (im2col)");
  for (int64_t grp = 0; grp < j->g; grp++)
    for (int64_t r0 = 0; r0 < R; r0 += rb) {
      int64_t rows = R - r0 < rb ? R - r0 : rb;
      im2col_ctx c = {j, r0, grp, cols};
      int64_t grain = (1 << 14) / kc;
      am_parallel_for(rows, grain < 1 ? 1 : grain, im2col_range, &c);
      gemm_block(j, cols, kc, r0, rows, grp);
    }
  am_buffer_release(cb);
  return AM_OK;
}

/* a's data as a contiguous array of dtype ct: in place, or a copy owned
 * by *tmp (SIMD conversion when contiguous, strided copy otherwise). */
static const char *as_contig(const am_arr *a, am_dtype ct, am_buffer **tmp,
                             am_status *s) {
  *tmp = NULL;
  if (a->m.dtype == ct && am_arr_is_contiguous(a)) return am_arr_ptr(a);
  char *d = am_linalg_scratch((size_t)a->size * am_dtype_size(ct), tmp);
  if (!d) {
    *s = AM_FAIL(AM_ERR_OOM, "out of memory");
    return NULL;
  }
  if (am_arr_is_contiguous(a))
    am_linalg_convert(am_arr_ptr(a), a->m.dtype, d, ct, a->size);
  else
    am_copy_to_contig(a, d, ct);
  return d;
}

static am_status conv1d_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  const conv_params *p = params;
  am_arr *x = in[0], *w = in[1], *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  conv_job j = {
      .N = x->m.shape[0],
      .L = x->m.shape[1],
      .Cin = x->m.shape[2],
      .Lo = o->m.shape[1],
      .Cout = w->m.shape[0],
      .K = w->m.shape[1],
      .Cig = w->m.shape[2],
      .s = p->stride,
      .p = p->padding,
      .d = p->dilation,
      .g = p->groups,
      .ct = o->m.dtype == AM_F64 ? AM_F64 : AM_F32,
  };
  j.Cog = j.Cout / j.g;
  size_t es = am_dtype_size(j.ct);
  if (j.Cig == 0) { /* no input channels: an empty sum */
    memset(o->buf->data, 0, (size_t)o->size * am_dtype_size(o->m.dtype));
    return AM_OK;
  }
  am_buffer *xt, *wtmp = NULL, *yb = NULL;
  char *yt = NULL;
  j.x = as_contig(x, j.ct, &xt, &s);
  if (!s) j.w = as_contig(w, j.ct, &wtmp, &s);
  if (!s && o->m.dtype != j.ct &&
      !(yt = am_linalg_scratch((size_t)o->size * es, &yb)))
    s = AM_FAIL(AM_ERR_OOM, "out of memory");
  if (!s) {
    j.y = yt ? yt : o->buf->data;
    bool dw = j.g == j.Cin && j.Cout == j.Cin && j.K <= DW_MAX_K;
    s = dw ? run_depthwise(&j) : run_im2col(&j);
  }
  if (!s && yt) am_linalg_convert(yt, j.ct, o->buf->data, o->m.dtype, o->size);
  am_buffer_release(xt);
  am_buffer_release(wtmp);
  am_buffer_release(yb);
  return s;
}

static void conv1d_params_str(const void *params, char *buf, size_t n) {
  const conv_params *p = params;
  snprintf(buf, n, "stride=%d padding=%d dilation=%d groups=%d", p->stride,
           p->padding, p->dilation, p->groups);
}

const am_prim am_prim_conv1d = {
    .name = "conv1d",
    .n_in = 2,
    .n_out = 1,
    .params_size = sizeof(conv_params),
    .output_shapes = conv1d_shapes,
    .eval_cpu = conv1d_eval,
    .params_str = conv1d_params_str,
};

am_array am_conv1d(am_array x, am_array w, int stride, int padding,
                   int dilation, int groups) {
  conv_params p;
  memset(&p, 0, sizeof p);
  p.stride = stride;
  p.padding = padding;
  p.dilation = dilation;
  p.groups = groups;
  am_arr *in[2] = {x, w};
  return am_linalg_make(AM_OP_CONV1D, &p, in, 2);
}
