/*
 * qmm.c — quantized_matmul, gather_qmm and gather_mm.
 *
 * The three ops share one engine. An op is a list of P index pairs (lhs,
 * rhs): out[p] = x[lhs[p]] @ W[rhs[p]] (W dequantized, transposed for
 * quantized transpose=True), each x matrix being M rows of K. For
 * quantized_matmul the pairs are the broadcast of the batch dims; for the
 * gathers they are the broadcast index arrays.
 *
 * Pairs are grouped by weight matrix (rhs) — counting sort, or runs when
 * the caller promises sorted indices — as ggml's mul_mat_id does: each
 * group multiplies the gathered x rows of all its pairs by its matrix, so
 * a selected expert's weights are read once per call, however many tokens
 * chose it. Work is split into tasks (group, block of rows, block of
 * output columns) spread over the thread pool.
 *
 * Kernels never dequantize a whole matrix. With transposed weights (the
 * usual layout) and a fused kernel for the format (affine 4/8-bit, mxfp4,
 * mxfp8, nvfp4 on AVX2/AVX-512), codes are decoded in registers and
 * multiplied with up to 4 prepared x rows at a time (the M = 1 decode
 * GEMV included); bfloat16 activations use AVX512-BF16 dot products.
 * Otherwise a task decodes a block of weight rows, one K-chunk at a time,
 * into a small float buffer (L1/L2) and takes 4x4-blocked dot products
 * with every x row of its group (or, not transposed, multi-row axpys),
 * accumulating in float32. The SIMD kernels (qmm_simd.c) are chosen at
 * run time; the portable ones below are the reference.
 *
 * A weight matrix that many x rows share (a prefill chunk, a busy expert:
 * QMM_BLAS_ROWS and more, transposed) is a GEMM: its rows are decoded in
 * float32 a panel at a time and multiplied by OpenBLAS's sgemm, which
 * beats any GEMV-shaped kernel once the decode is shared by enough rows.
 */
#include "linalg_internal.h"
#include "qmm_params.h"
#include "quant_formats.h"

#include <cblas.h>
#include <stdlib.h>

/* ======================================================================
 *  Portable kernels
 * ====================================================================== */

/* Scale (and bias) of group g of a row, as float. */
static inline float group_scale(const am_qfmt *f, const void *sc, int64_t g) {
  switch (f->mode) {
  case AM_QUANT_AFFINE:
    return am_q_load((const char *)sc + g * (int64_t)am_dtype_size(f->sdt),
                     f->sdt);
  case AM_QUANT_NVFP4:
    return am_q_fp8_to_f32(((const uint8_t *)sc)[g]);
  default:
    return am_q_e8m0_to_f32(((const uint8_t *)sc)[g]);
  }
}

static void decode_scalar(const am_qfmt *f, const void *codes, const void *sc,
                          const void *bi, int64_t k0, int64_t n, float *out) {
  if (f->dense) {
    size_t es = am_dtype_size(f->ddt);
    am_convert((const char *)codes + k0 * (int64_t)es, f->ddt, out, AM_F32, n);
    return;
  }
  const uint8_t *w = codes;
  int gs = f->gs, bits = f->bits;
  for (int64_t i0 = k0; i0 < k0 + n; i0 += gs, out += gs) {
    int64_t g = i0 / gs;
    float s = group_scale(f, sc, g);
    if (f->mode == AM_QUANT_AFFINE) {
      float b = am_q_load((const char *)bi + g * (int64_t)am_dtype_size(f->bdt),
                          f->bdt);
      for (int j = 0; j < gs; j++)
        out[j] = s * (float)am_q_code(w, i0 + j, bits) + b;
    } else if (f->mode == AM_QUANT_MXFP8) {
      for (int j = 0; j < gs; j++)
        out[j] = am_q_fp8_to_f32(w[i0 + j]) * s;
    } else {
      for (int j = 0; j < gs; j++)
        out[j] = am_q_fp4_lut[am_q_code(w, i0 + j, 4)] * s;
    }
  }
}

/* out[j] = sum_k a[k] * b[j*ldb + k], j < nb (<= 4) */
static void dot_scalar(const float *a, const float *b, int64_t ldb, int nb,
                       int64_t n, float *out) {
  for (int j = 0; j < nb; j++) {
    const float *bj = b + j * ldb;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
      s0 += a[k] * bj[k];
      s1 += a[k + 1] * bj[k + 1];
      s2 += a[k + 2] * bj[k + 2];
      s3 += a[k + 3] * bj[k + 3];
    }
    for (; k < n; k++)
      s0 += a[k] * bj[k];
    out[j] = (s0 + s1) + (s2 + s3);
  }
}

/* y[0..n) += sum_{i < nk} xs[i] * w[i*ldw + 0..n) */
static void axpy_scalar(const float *xs, int nk, const float *w, int64_t ldw,
                        int64_t n, float *y) {
  for (int i = 0; i < nk; i++) {
    float a = xs[i];
    const float *wi = w + i * ldw;
    if (a == 0) continue;
    for (int64_t j = 0; j < n; j++)
      y[j] += a * wi[j];
  }
}

am_q_decode_fn am_q_decoder(const am_qfmt *f) {
  am_q_decode_fn d = am_q_decoder_simd(f);
  return d ? d : decode_scalar;
}
am_q_dot_fn am_q_dot_kernel(void) {
  am_q_dot_fn d = am_q_dot_simd();
  return d ? d : dot_scalar;
}
am_q_axpy_fn am_q_axpy_kernel(void) {
  am_q_axpy_fn d = am_q_axpy_simd();
  return d ? d : axpy_scalar;
}

static atomic_bool g_grouping = true;
void am_qmm_set_grouping(bool on) {
  atomic_store(&g_grouping, on);
}

/* ======================================================================
 *  The engine
 * ====================================================================== */

/* One weight operand (quantized codes + scales + biases, or dense). */
typedef struct {
  am_qfmt f;
  const char *w, *s, *b;       /* base pointers                         */
  const int64_t *mat_off;      /* per matrix: byte offsets of w, s, b   */
  int64_t w_row, s_row, b_row; /* bytes between rows of a matrix      */
} qweights;

typedef struct {
  qweights wt;
  bool transpose; /* weight row n feeds output column n (K along rows) */
  int64_t M, N, K;
  const float *x; /* float32 [n_x][M][K]                               */
  const float *xp, *xsum; /* x prepared for the fused GEMV (or NULL)   */
  int64_t xp_stride;      /* floats between prepared rows: K + K / gs  */
  am_q_gemv_fn gemv;      /* the GEMV xp was prepared for             */
  int gemv_rows;          /* x rows it takes per call                 */
  int64_t n_x, n_w;
  int64_t P;
  const int64_t *lhs, *rhs;
  char *out; /* [P][M][N] of odt                                       */
  am_dtype odt;
} qmm_prob;

enum {
  KC = 256,   /* K chunk decoded at a time (a multiple of every group) */
  NB_T = 16,  /* weight rows per task, transposed                      */
  NB_N = 256, /* output columns per task, not transposed              */
  KB_N = 16,  /* weight rows decoded per step, not transposed          */
  RB = 128,   /* x rows per task                                       */
};

typedef struct {
  const qmm_prob *pb;
  am_q_decode_fn decode;
  am_q_dot_fn dot;
  am_q_axpy_fn axpy;
  am_q_dot44_fn dot44;
  am_q_gemv_fn gemv; /* fused GEMV (pb->xp prepared), or NULL          */
  int64_t n_groups;
  const int64_t *order;   /* pairs, group by group                     */
  const int64_t *gstart;  /* first pair of group g in order[]          */
  const int64_t *gtask;   /* first task of group g (n_groups+1 entries) */
  int64_t n_nblk;         /* column blocks per row block               */
  int64_t nb;             /* columns per block                         */
  int64_t n_tasks, batch; /* tasks, and how many a thread takes at once */
  atomic_llong next;      /* next task to hand out                     */
  atomic_int oom;
} qmm_run;

/* Row r of group g: its x row and out row. */
static inline void group_row(const qmm_run *c, int64_t g, int64_t r,
                             const float **xr, int64_t *orow) {
  const qmm_prob *pb = c->pb;
  int64_t p = c->order[c->gstart[g] + r / pb->M], m = r % pb->M;
  *xr = pb->x + (pb->lhs[p] * pb->M + m) * pb->K;
  *orow = p * pb->M + m;
}

static void store_rows(const qmm_run *c, int64_t g, int64_t r0, int64_t nr,
                       int64_t n0, int64_t nn, const float *acc, int64_t lda) {
  const qmm_prob *pb = c->pb;
  size_t oes = am_dtype_size(pb->odt);
  for (int64_t r = 0; r < nr; r++) {
    const float *xr;
    int64_t orow;
    group_row(c, g, r0 + r, &xr, &orow);
    char *o = pb->out + (orow * pb->N + n0) * (int64_t)oes;
    am_convert(acc + r * lda, AM_F32, o, pb->odt, nn);
  }
}

/* Transposed, with a fused GEMV for the format: each weight row is decoded
 * in registers once per block of (up to 4) x rows. Preferred over the
 * decode-to-buffer path whatever the row count: decoding in registers
 * costs less than the buffer's stores and reloads. */
static void task_t_fused(const qmm_run *c, int64_t g, int64_t r0, int64_t nr,
                         int64_t n0, int64_t nn, float *acc) {
  const qmm_prob *pb = c->pb;
  const qweights *wt = &pb->wt;
  int64_t e = pb->rhs[c->order[c->gstart[g]]];
  const int64_t *mo = wt->mat_off + 3 * e;
  int64_t ng = pb->K / wt->f.gs;
  int mr = pb->gemv_rows;
  for (int64_t r = 0; r < nr; r += mr) {
    int q = nr - r < mr ? (int)(nr - r) : mr;
    const float *xp[4], *xs[4];
    for (int i = 0; i < q; i++) {
      const float *xr;
      int64_t orow;
      group_row(c, g, r0 + r + i, &xr, &orow);
      int64_t xi = (xr - pb->x) / pb->K;
      xp[i] = pb->xp + xi * pb->xp_stride;
      xs[i] = pb->xsum ? pb->xsum + xi * ng : NULL;
    }
    c->gemv(&wt->f, (const uint8_t *)wt->w + mo[0] + n0 * wt->w_row, wt->w_row,
            wt->s + mo[1] + n0 * wt->s_row, wt->s_row,
            wt->b ? wt->b + mo[2] + n0 * wt->b_row : NULL, wt->b_row, pb->K, xp,
            xs, q, (int)nn, acc + r * nn);
  }
  store_rows(c, g, r0, nr, n0, nn, acc, nn);
}

/* Transposed: weight rows n0..n0+nn hold output columns; decode them a
 * K-chunk at a time and take dot products with every x row, in 4x4
 * blocks. */
static void task_t(const qmm_run *c, int64_t g, int64_t r0, int64_t nr,
                   int64_t n0, int64_t nn, float *acc, float *wdec) {
  if (c->gemv) {
    task_t_fused(c, g, r0, nr, n0, nn, acc);
    return;
  }
  const qmm_prob *pb = c->pb;
  const qweights *wt = &pb->wt;
  int64_t e = pb->rhs[c->order[c->gstart[g]]];
  const int64_t *mo = wt->mat_off + 3 * e;
  memset(acc, 0, (size_t)(nr * nn) * sizeof *acc);
  for (int64_t k0 = 0; k0 < pb->K; k0 += KC) {
    int64_t kc = pb->K - k0 < KC ? pb->K - k0 : KC;
    for (int64_t j = 0; j < nn; j++) {
      int64_t n = n0 + j;
      c->decode(&wt->f, wt->w + mo[0] + n * wt->w_row,
                wt->s ? wt->s + mo[1] + n * wt->s_row : NULL,
                wt->b ? wt->b + mo[2] + n * wt->b_row : NULL, k0, kc,
                wdec + j * KC);
    }
    int64_t r = 0;
    for (; c->dot44 && r + 4 <= nr; r += 4) {
      const float *xr[4];
      int64_t orow;
      float part[16];
      for (int i = 0; i < 4; i++) {
        group_row(c, g, r0 + r + i, &xr[i], &orow);
        xr[i] += k0;
      }
      int64_t j = 0;
      for (; j + 4 <= nn; j += 4) {
        c->dot44(xr, wdec + j * KC, KC, kc, part);
        for (int i = 0; i < 4; i++)
          for (int q = 0; q < 4; q++)
            acc[(r + i) * nn + j + q] += part[i * 4 + q];
      }
      for (; j < nn; j++)
        for (int i = 0; i < 4; i++) {
          c->dot(xr[i], wdec + j * KC, KC, 1, kc, part);
          acc[(r + i) * nn + j] += part[0];
        }
    }
    for (; r < nr; r++) {
      const float *xr;
      int64_t orow;
      group_row(c, g, r0 + r, &xr, &orow);
      float part[4];
      for (int64_t j = 0; j < nn; j += 4) {
        int q = nn - j < 4 ? (int)(nn - j) : 4;
        c->dot(xr + k0, wdec + j * KC, KC, q, kc, part);
        for (int i = 0; i < q; i++)
          acc[r * nn + j + i] += part[i];
      }
    }
  }
  store_rows(c, g, r0, nr, n0, nn, acc, nn);
}

/* Not transposed (and dense): weight row k holds output columns; decode
 * KB_N rows' column block at a time and accumulate axpys per x row. */
static void task_n(const qmm_run *c, int64_t g, int64_t r0, int64_t nr,
                   int64_t n0, int64_t nn, float *acc, float *wdec) {
  const qmm_prob *pb = c->pb;
  const qweights *wt = &pb->wt;
  int64_t e = pb->rhs[c->order[c->gstart[g]]];
  const int64_t *mo = wt->mat_off + 3 * e;
  memset(acc, 0, (size_t)(nr * nn) * sizeof *acc);
  for (int64_t k0 = 0; k0 < pb->K; k0 += KB_N) {
    int kb = pb->K - k0 < KB_N ? (int)(pb->K - k0) : KB_N;
    for (int i = 0; i < kb; i++) {
      int64_t k = k0 + i;
      c->decode(&wt->f, wt->w + mo[0] + k * wt->w_row,
                wt->s ? wt->s + mo[1] + k * wt->s_row : NULL,
                wt->b ? wt->b + mo[2] + k * wt->b_row : NULL, n0, nn,
                wdec + i * NB_N);
    }
    for (int64_t r = 0; r < nr; r++) {
      const float *xr;
      int64_t orow;
      group_row(c, g, r0 + r, &xr, &orow);
      c->axpy(xr + k0, kb, wdec, NB_N, nn, acc + r * nn);
    }
  }
  store_rows(c, g, r0, nr, n0, nn, acc, nn);
}

/* Tasks [t0, t1) with the given scratch. */
static void run_range(qmm_run *c, int64_t t0, int64_t t1, float *acc,
                      float *wdec) {
  const qmm_prob *pb = c->pb;
  /* the group of task t0, then walk forward */
  int64_t lo = 0, hi = c->n_groups - 1;
  while (lo < hi) {
    int64_t mid = (lo + hi + 1) / 2;
    if (c->gtask[mid] <= t0)
      lo = mid;
    else
      hi = mid - 1;
  }
  int64_t g = lo;
  for (int64_t t = t0; t < t1; t++) {
    while (t >= c->gtask[g + 1])
      g++;
    int64_t local = t - c->gtask[g];
    int64_t rb = local / c->n_nblk, nbk = local % c->n_nblk;
    int64_t rows = (c->gstart[g + 1] - c->gstart[g]) * pb->M;
    int64_t r0 = rb * RB, nr = rows - r0 < RB ? rows - r0 : RB;
    int64_t n0 = nbk * c->nb, nn = pb->N - n0 < c->nb ? pb->N - n0 : c->nb;
    if (pb->transpose)
      task_t(c, g, r0, nr, n0, nn, acc, wdec);
    else
      task_n(c, g, r0, nr, n0, nn, acc, wdec);
  }
}

/* One pool thread: pulls batches of tasks from the shared counter until
 * none are left, so a thread that starts late or runs slow (uneven
 * groups, a busy core) takes fewer. */
static void run_worker(void *vc, int64_t b, int64_t e) {
  (void)b;
  (void)e;
  qmm_run *c = vc;
  const qmm_prob *pb = c->pb;
  size_t wdec_n = pb->transpose ? (size_t)NB_T * KC : (size_t)KB_N * NB_N;
  float *acc = malloc(((size_t)RB * (size_t)c->nb + wdec_n) * sizeof *acc);
  if (!acc) {
    atomic_store(&c->oom, 1);
    return;
  }
  float *wdec = acc + (size_t)RB * (size_t)c->nb;
  for (;;) {
    int64_t t0 = atomic_fetch_add(&c->next, c->batch);
    if (t0 >= c->n_tasks) break;
    int64_t t1 = t0 + c->batch < c->n_tasks ? t0 + c->batch : c->n_tasks;
    run_range(c, t0, t1, acc, wdec);
  }
  free(acc);
}

/* ----- many rows on one weight matrix: decoded panels and sgemm ----- */

enum { QMM_BLAS_ROWS = 64, QMM_PANEL_BYTES = 4 << 20 };

typedef struct {
  const qmm_run *c;
  int64_t e, n0;
  float *wp; /* panel [nc, K] */
} panel_job;

static void panel_rows(void *ctx, int64_t r0, int64_t r1) {
  const panel_job *j = ctx;
  const qmm_prob *pb = j->c->pb;
  const qweights *wt = &pb->wt;
  const int64_t *mo = wt->mat_off + 3 * j->e;
  for (int64_t r = r0; r < r1; r++) {
    int64_t n = j->n0 + r;
    j->c->decode(&wt->f, wt->w + mo[0] + n * wt->w_row,
                 wt->s ? wt->s + mo[1] + n * wt->s_row : NULL,
                 wt->b ? wt->b + mo[2] + n * wt->b_row : NULL, 0, pb->K,
                 j->wp + r * pb->K);
  }
}

/* Group g (rows >= QMM_BLAS_ROWS, transposed) as GEMMs over panels of
 * weight rows; results stored through store_rows. */
static am_status group_blas(qmm_run *c, int64_t g) {
  const qmm_prob *pb = c->pb;
  int64_t rows = (c->gstart[g + 1] - c->gstart[g]) * pb->M, K = pb->K;
  int64_t nc = QMM_PANEL_BYTES / (K * (int64_t)sizeof(float));
  nc = nc < 16 ? 16 : nc > pb->N ? pb->N : nc;
  /* scratch from the buffer pool: big, and reused call after call (a fresh
   * mapping would page-fault on every call) */
  size_t nb = (size_t)(rows * K + nc * K + rows * nc) * sizeof(float);
  am_buffer *buf = am_buffer_new(nb);
  if (!buf) return AM_FAIL(AM_ERR_OOM, "out of memory");
  float *xg = buf->data, *wp = xg + rows * K, *og = wp + nc * K;
  for (int64_t r = 0; r < rows; r++) { /* the group's x rows, gathered */
    const float *xr;
    int64_t orow;
    group_row(c, g, r, &xr, &orow);
    memcpy(xg + r * K, xr, (size_t)K * sizeof *xg);
  }
  am_linalg_blas_init();
  panel_job pj = {.c = c, .e = pb->rhs[c->order[c->gstart[g]]], .wp = wp};
  for (int64_t n0 = 0; n0 < pb->N; n0 += nc) {
    int64_t nn = pb->N - n0 < nc ? pb->N - n0 : nc;
    pj.n0 = n0;
    /* decoded here, not on the pool: pool workers still spinning after
     * a job would compete with OpenBLAS's own threads */
    panel_rows(&pj, 0, nn);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nn,
                (int)K, 1.0f, xg, (int)K, wp, (int)K, 0.0f, og, (int)nn);
    store_rows(c, g, 0, rows, n0, nn, og, nn);
  }
  am_buffer_release(buf);
  return AM_OK;
}

/* Groups the pairs by weight matrix and runs every task. */
static am_status qmm_execute(const qmm_prob *pb, bool sorted) {
  int64_t P = pb->P;
  int64_t *order = malloc((size_t)(P ? P : 1) * sizeof *order);
  int64_t *gstart = malloc((size_t)(P + 2) * sizeof *gstart);
  int64_t *gtask = malloc((size_t)(P + 2) * sizeof *gtask);
  int64_t *count = NULL;
  am_status s = AM_OK;
  if (!order || !gstart || !gtask) goto oom;
  int64_t ng = 0;
  bool grouping = atomic_load(&g_grouping);
  if (!grouping || sorted) {
    /* naive: one group per pair; sorted: one group per run */
    for (int64_t p = 0; p < P; p++) {
      order[p] = p;
      if (!grouping || !p || pb->rhs[p] != pb->rhs[p - 1]) gstart[ng++] = p;
    }
  } else {
    /* counting sort by weight matrix (stable) */
    count = calloc((size_t)pb->n_w + 1, sizeof *count);
    if (!count) goto oom;
    for (int64_t p = 0; p < P; p++)
      count[pb->rhs[p] + 1]++;
    for (int64_t e = 0; e < pb->n_w; e++) {
      if (count[e + 1]) gstart[ng++] = count[e];
      count[e + 1] += count[e];
    }
    for (int64_t p = 0; p < P; p++)
      order[count[pb->rhs[p]]++] = p;
  }
  gstart[ng] = P;
  qmm_run c = {.pb = pb,
               .n_groups = ng,
               .order = order,
               .gstart = gstart,
               .gtask = gtask};
  c.decode = am_q_decoder(&pb->wt.f);
  c.dot = am_q_dot_kernel();
  c.axpy = am_q_axpy_kernel();
  c.dot44 = am_q_dot44_simd();
  c.gemv = pb->xp ? pb->gemv : NULL;
  c.nb = pb->transpose ? NB_T : NB_N;
  c.n_nblk = (pb->N + c.nb - 1) / c.nb;
  int64_t nt = 0;
  for (int64_t g = 0; g < ng; g++) {
    gtask[g] = nt;
    int64_t rows = (gstart[g + 1] - gstart[g]) * pb->M;
    bool big = pb->transpose && rows >= QMM_BLAS_ROWS && pb->N >= 16 &&
               pb->K >= 64 && rows <= INT32_MAX && pb->K <= INT32_MAX;
    if (big) { /* a GEMM now; no tasks */
      s = group_blas(&c, g);
      if (s) goto done;
      continue;
    }
    nt += (rows + RB - 1) / RB * c.n_nblk;
  }
  gtask[ng] = nt;
  if (nt) {
    /* every pool thread pulls batches of tasks (~8 per thread in all);
     * less than ~2^18 multiply-adds in all run inline */
    double work = (double)P * (double)pb->M * (double)pb->N * (double)pb->K;
    int nth = work < (double)(1 << 18) ? 1 : am_get_num_threads();
    c.n_tasks = nt;
    c.batch = nt / (8 * (int64_t)nth) > 1 ? nt / (8 * (int64_t)nth) : 1;
    atomic_init(&c.next, 0);
    am_parallel_for(nth, 1, run_worker, &c);
    if (atomic_load(&c.oom)) goto oom;
  }
  goto done;
oom:
  s = AM_FAIL(AM_ERR_OOM, "out of memory");
done:
  free(order);
  free(gstart);
  free(gtask);
  free(count);
  return s;
}

/* ======================================================================
 *  Operands: batch offsets, x as float32, index pairs
 * ====================================================================== */

static int64_t prod(const int64_t *v, int n) {
  int64_t r = 1;
  for (int i = 0; i < n; i++)
    r *= v[i];
  return r;
}

/* Element offset of matrix `e` (flat over a's batch dims) in a. */
static int64_t batch_offset(const am_arr *a, int64_t e) {
  int64_t off = a->offset;
  for (int d = a->m.ndim - 3; d >= 0; d--) {
    int64_t n = a->m.shape[d];
    off += (e % n) * a->strides[d];
    e /= n;
  }
  return off;
}

/* A copy of a with row-contiguous matrices when its last axis is strided
 * (or its rows overlap); NULL (and *own NULL) when a can be read as is. */
static am_status matrix_layout(const am_arr *a, am_arr **own) {
  int nd = a->m.ndim;
  *own = NULL;
  int64_t cols = a->m.shape[nd - 1], rows = nd >= 2 ? a->m.shape[nd - 2] : 1;
  bool ok = (a->strides[nd - 1] == 1 || cols <= 1) &&
            (nd < 2 || rows <= 1 || a->strides[nd - 2] >= cols);
  if (ok) return AM_OK;
  am_arr *c = am_arr_alloc(&a->m);
  if (!c) return AM_FAIL(AM_ERR_OOM, "out of memory");
  if (am_out_alloc(c)) {
    am_arr_release(c);
    return AM_FAIL(AM_ERR_OOM, "out of memory");
  }
  am_copy_to_contig(a, c->buf->data, a->m.dtype);
  *own = c;
  return AM_OK;
}

static int64_t row_stride_bytes(const am_arr *a) {
  int nd = a->m.ndim;
  return (nd >= 2 ? a->strides[nd - 2] : 0) *
         (int64_t)am_dtype_size(a->m.dtype);
}

/* Fills wt from the weight operands (w; scales, biases may be NULL);
 * copies that must be freed go to own[0..2]. n_mat matrices. */
static am_status setup_weights(qweights *wt, const am_qfmt *f, const am_arr *w,
                               const am_arr *s, const am_arr *b, int64_t n_mat,
                               am_arr **own, int64_t **mat_off) {
  const am_arr *ops[3] = {w, s, b};
  memset(own, 0, 3 * sizeof *own);
  for (int i = 0; i < 3; i++) {
    if (!ops[i]) continue;
    am_status st = matrix_layout(ops[i], &own[i]);
    if (st) return st;
    if (own[i]) ops[i] = own[i];
  }
  int64_t *mo = malloc((size_t)(3 * (n_mat ? n_mat : 1)) * sizeof *mo);
  if (!mo) return AM_FAIL(AM_ERR_OOM, "out of memory");
  for (int64_t e = 0; e < n_mat; e++)
    for (int i = 0; i < 3; i++)
      mo[3 * e + i] = ops[i] ? batch_offset(ops[i], e) *
                                   (int64_t)am_dtype_size(ops[i]->m.dtype)
                             : 0;
  *mat_off = mo;
  wt->f = *f;
  wt->mat_off = mo;
  wt->w = (const char *)ops[0]->buf->data;
  wt->w_row = row_stride_bytes(ops[0]);
  wt->s = ops[1] ? (const char *)ops[1]->buf->data : NULL;
  wt->s_row = ops[1] ? row_stride_bytes(ops[1]) : 0;
  wt->b = ops[2] ? (const char *)ops[2]->buf->data : NULL;
  wt->b_row = ops[2] ? row_stride_bytes(ops[2]) : 0;
  return AM_OK;
}

/* x as float32, row-major (a copy unless it already is). */
static const float *x_as_f32(const am_arr *x, float **own) {
  *own = NULL;
  if (x->m.dtype == AM_F32 && am_arr_is_contiguous(x))
    return (const float *)am_arr_ptr(x);
  *own = malloc((size_t)(x->size ? x->size : 1) * sizeof **own);
  if (*own && x->size) am_copy_to_contig(x, *own, AM_F32);
  return *own;
}

/* Index values of `idx` (or of the default arange over `bshape`, when idx
 * is NULL) broadcast to the batch shape `out` (nout dims): dst[P]. Fails
 * when a value lies outside [0, n). */
static am_status pair_indices(const am_arr *idx, const int64_t *bshape, int nb,
                              const int64_t *out, int nout, int64_t n,
                              const char *which, int64_t *dst) {
  int64_t P = prod(out, nout);
  int64_t st[AM_MAX_DIMS];
  const int64_t *shape = idx ? idx->m.shape : bshape;
  int nd = idx ? idx->m.ndim : nb;
  int64_t cst[AM_MAX_DIMS];
  am_contig_strides(shape, nd, cst);
  for (int i = 0; i < nout; i++) {
    int j = i - (nout - nd);
    st[i] =
        (j < 0 || shape[j] != out[i]) ? 0 : (idx ? idx->strides[j] : cst[j]);
  }
  size_t es = idx ? am_dtype_size(idx->m.dtype) : 0;
  const char *base = idx ? (const char *)idx->buf->data : NULL;
  for (int64_t p = 0; p < P; p++) {
    int64_t q = p, off = idx ? idx->offset : 0;
    for (int i = nout - 1; i >= 0; i--) {
      off += (q % out[i]) * st[i];
      q /= out[i];
    }
    int64_t v =
        idx ? (int64_t)am_load_f64(base + off * (int64_t)es, idx->m.dtype)
            : off;
    if (idx && idx->m.dtype == AM_I64) v = *(const int64_t *)(base + off * 8);
    if (v < 0 || v >= n)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "%s index %lld out of range for %lld matrices", which,
                     (long long)v, (long long)n);
    dst[p] = v;
  }
  return AM_OK;
}

/* x rows into the fused GEMV's layout, a range of rows per task. */
typedef struct {
  am_q_prep_fn prep;
  const float *x;
  int64_t K, xst, ng;
  int gs;
  float *xp, *xs;
} prep_job;
static void prep_rows(void *ctx, int64_t r0, int64_t r1) {
  const prep_job *j = ctx;
  for (int64_t r = r0; r < r1; r++)
    j->prep(j->x + r * j->K, j->K, j->gs, j->xp + r * j->xst,
            j->xs ? j->xs + r * j->ng : NULL);
}

/* Runs one op: pairs from the index operands (NULL: defaults), weights
 * (w, s, b) of format f, x as given. out[0] must have shape B + [M, N]
 * (or x-like for quantized_matmul; only its size matters). */
static am_status qmm_eval_common(const am_arr *x, const am_arr *w,
                                 const am_arr *s, const am_arr *b,
                                 const am_arr *lhs, const am_arr *rhs,
                                 const am_qfmt *f, bool transpose,
                                 const int64_t *B, int nb, int64_t M, int64_t N,
                                 int64_t K, bool sorted, am_arr *out) {
  am_status st = am_out_alloc(out);
  if (st) return st;
  int64_t P = prod(B, nb);
  if (!P || !M || !N) return AM_OK;
  if (!K) {
    memset(out->buf->data, 0, (size_t)out->size * am_dtype_size(out->m.dtype));
    return AM_OK;
  }
  qmm_prob pb = {.transpose = transpose,
                 .M = M,
                 .N = N,
                 .K = K,
                 .P = P,
                 .out = out->buf->data,
                 .odt = out->m.dtype};
  int xnb = x->m.ndim >= 2 ? x->m.ndim - 2 : 0;
  int wnb = w->m.ndim - 2;
  pb.n_x = prod(x->m.shape, xnb);
  pb.n_w = prod(w->m.shape, wnb);
  int64_t *lh = malloc((size_t)P * 2 * sizeof *lh), *mo = NULL;
  float *xown = NULL;
  am_arr *own[3] = {NULL, NULL, NULL};
  if (!lh) return AM_FAIL(AM_ERR_OOM, "out of memory");
  int64_t *rh = lh + P;
  st = pair_indices(lhs, x->m.shape, xnb, B, nb, pb.n_x, "lhs", lh);
  if (!st) st = pair_indices(rhs, w->m.shape, wnb, B, nb, pb.n_w, "rhs", rh);
  if (!st) st = setup_weights(&pb.wt, f, w, s, b, pb.n_w, own, &mo);
  if (!st) {
    pb.lhs = lh;
    pb.rhs = rh;
    pb.x = x_as_f32(x, &xown);
    if (!pb.x) st = AM_FAIL(AM_ERR_OOM, "out of memory");
  }
  float *xpown = NULL;
  am_q_prep_fn prep;
  if (!st && transpose &&
      am_q_fused_simd(f, K, x->m.dtype, &prep, &pb.gemv, &pb.gemv_rows)) {
    /* x rows in the fused GEMV's order, plus group sums (affine) */
    int64_t rows = pb.n_x * M, ng = K / f->gs;
    bool affine = f->mode == AM_QUANT_AFFINE;
    /* a prepared row has room for K + K / gs floats (am_q_prep_fn) */
    int64_t xst = K + ng;
    xpown = malloc((size_t)(rows * (xst + (affine ? ng : 0))) * sizeof *xpown);
    if (xpown) {
      float *xs = affine ? xpown + rows * xst : NULL;
      prep_job pj = {.prep = prep,
                     .x = pb.x,
                     .K = K,
                     .xst = xst,
                     .gs = f->gs,
                     .ng = ng,
                     .xp = xpown,
                     .xs = xs};
      pb.xp_stride = xst;
      /* many rows (prefill): as much work as a small GEMM, so in parallel */
      am_parallel_for(rows, 1 + (1 << 15) / (K + 1), prep_rows, &pj);
      pb.xp = xpown;
      pb.xsum = xs;
    }
  }
  if (!st) st = qmm_execute(&pb, sorted);
  free(lh);
  free(mo);
  free(xown);
  free(xpown);
  for (int i = 0; i < 3; i++)
    am_arr_release(own[i]);
  return st;
}

/* ======================================================================
 *  Shape checks
 * ====================================================================== */

/* Validates w/scales/biases against the format and x; writes K, N and the
 * output dtype. */
static am_status check_qmm(const am_meta *x, const am_meta *w,
                           const am_meta *sc, const am_meta *bi,
                           const qmm_params *p, int64_t *K, int64_t *N,
                           am_dtype *odt) {
  if (w->dtype != AM_U32)
    return AM_FAIL(AM_ERR_DTYPE, "w must be uint32, not %s",
                   am_dtype_name(w->dtype));
  if (w->ndim < 2)
    return AM_FAIL(AM_ERR_SHAPE, "w needs at least 2 dims, has %d", w->ndim);
  if (sc->ndim != w->ndim)
    return AM_FAIL(AM_ERR_SHAPE, "scales must have w's rank");
  for (int d = 0; d < w->ndim - 1; d++)
    if (sc->shape[d] != w->shape[d])
      return AM_FAIL(AM_ERR_SHAPE,
                     "scales must match w on every dim but the last");
  if (p->mode == AM_QUANT_AFFINE) {
    if (!bi) return AM_FAIL(AM_ERR_INVALID_ARG, "affine mode needs biases");
    if (bi->ndim != sc->ndim)
      return AM_FAIL(AM_ERR_SHAPE, "scales and biases must have one shape");
    for (int d = 0; d < sc->ndim; d++)
      if (bi->shape[d] != sc->shape[d])
        return AM_FAIL(AM_ERR_SHAPE, "scales and biases must have one shape");
    if (!am_q_is_half_or_f32(sc->dtype) || !am_q_is_half_or_f32(bi->dtype))
      return AM_FAIL(AM_ERR_DTYPE,
                     "scales and biases must be float16, bfloat16 or float32");
  } else if (sc->dtype != AM_U8) {
    return AM_FAIL(AM_ERR_DTYPE, "mode %s needs uint8 scales, not %s",
                   am_q_mode_name(p->mode), am_dtype_name(sc->dtype));
  }
  if (!am_q_is_half_or_f32(x->dtype))
    return AM_FAIL(AM_ERR_DTYPE,
                   "x must be float16, bfloat16 or float32, not %s",
                   am_dtype_name(x->dtype));
  if (x->ndim < 1) return AM_FAIL(AM_ERR_SHAPE, "x needs at least 1 dim");
  int64_t kp = w->shape[w->ndim - 1], unpacked = kp * 32 / p->bits;
  if (unpacked != sc->shape[sc->ndim - 1] * p->group_size)
    return AM_FAIL(AM_ERR_SHAPE,
                   "w's %lld words of %d bits hold %lld elements, but the "
                   "scales cover %lld",
                   (long long)kp, p->bits, (long long)unpacked,
                   (long long)(sc->shape[sc->ndim - 1] * p->group_size));
  *K = p->transpose ? unpacked : w->shape[w->ndim - 2];
  *N = p->transpose ? w->shape[w->ndim - 2] : unpacked;
  if (x->shape[x->ndim - 1] != *K)
    return AM_FAIL(AM_ERR_SHAPE,
                   "x's last dim %lld does not match the dequantized w's %s "
                   "%lld",
                   (long long)x->shape[x->ndim - 1],
                   p->transpose ? "columns" : "rows", (long long)*K);
  *odt = p->mode == AM_QUANT_AFFINE
             ? am_result_type(x->dtype, am_result_type(sc->dtype, bi->dtype))
             : x->dtype;
  return AM_OK;
}

static am_qfmt qfmt_of(const qmm_params *p, const am_meta *sc,
                       const am_meta *bi) {
  am_qfmt f = {.mode = p->mode,
               .bits = p->bits,
               .gs = p->group_size,
               .sdt = sc->dtype,
               .bdt = bi ? bi->dtype : AM_U8};
  return f;
}

/* ======================================================================
 *  quantized_matmul
 * ====================================================================== */

/* Output batch dims of quantized_matmul: x's and w's broadcast when both
 * have batch dims; x's own leading dims otherwise. Writes the batch shape
 * (B, nb) and M. */
static am_status qmm_batch(const am_meta *x, const am_meta *w, int64_t *B,
                           int *nb, int64_t *M) {
  if (x->ndim > 2 && w->ndim > 2) {
    if (am_broadcast_shapes(x->shape, x->ndim - 2, w->shape, w->ndim - 2, B,
                            nb))
      return AM_FAIL(AM_ERR_SHAPE, "the batch dims of x and w do not "
                                   "broadcast");
    *M = x->shape[x->ndim - 2];
    return AM_OK;
  }
  if (x->ndim <= 2 && prod(w->shape, w->ndim - 2) != 1)
    return AM_FAIL(AM_ERR_SHAPE,
                   "x without batch dims needs a single matrix w (w's batch "
                   "dims must all be 1)");
  *nb = x->ndim > 2 ? x->ndim - 2 : 0;
  memcpy(B, x->shape, (size_t)*nb * sizeof *B);
  *M = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1;
  return AM_OK;
}

static am_status qmatmul_shapes(const am_meta *const *in, int n_in,
                                const void *params, am_meta *out, int n_out) {
  const qmm_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  if (n_in != 3 + (int)affine)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs", n_in);
  int64_t K, N, M, B[AM_MAX_DIMS];
  int nb;
  am_dtype odt;
  am_status s =
      check_qmm(in[0], in[1], in[2], affine ? in[3] : NULL, p, &K, &N, &odt);
  if (!s) s = qmm_batch(in[0], in[1], B, &nb, &M);
  if (s) return s;
  out[0] = *in[0];
  out[0].dtype = odt;
  if (in[0]->ndim > 2 && in[1]->ndim > 2) {
    out[0].ndim = nb + 2;
    memcpy(out[0].shape, B, (size_t)nb * sizeof *B);
    out[0].shape[nb] = M;
  }
  out[0].shape[out[0].ndim - 1] = N;
  return AM_OK;
}

static am_status qmatmul_eval(am_arr *const *in, int n_in, am_arr *const *out,
                              int n_out, const void *params) {
  const qmm_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  int64_t K, N, M, B[AM_MAX_DIMS];
  int nb;
  am_dtype odt;
  am_status s = check_qmm(&in[0]->m, &in[1]->m, &in[2]->m,
                          affine ? &in[3]->m : NULL, p, &K, &N, &odt);
  if (!s) s = qmm_batch(&in[0]->m, &in[1]->m, B, &nb, &M);
  if (s) return s;
  am_qfmt f = qfmt_of(p, &in[2]->m, affine ? &in[3]->m : NULL);
  /* x without batch dims against w of batch 1: one pair (0, 0); x with
   * batch dims against a 2-d w: every x matrix with matrix 0. The default
   * (arange) indices over each operand's batch give exactly that. */
  return qmm_eval_common(in[0], in[1], in[2], affine ? in[3] : NULL, NULL, NULL,
                         &f, p->transpose, B, nb, M, N, K, false, out[0]);
}

const am_prim am_prim_quantized_matmul = {
    .name = "quantized_matmul",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(qmm_params),
    .output_shapes = qmatmul_shapes,
    .eval_cpu = qmatmul_eval,
};

/* An integer/bool x is cast to the output dtype first (affine), as MLX. */
static am_array cast_x(am_array x, am_array scales, am_array biases,
                       am_quant_mode mode) {
  if (mode != AM_QUANT_AFFINE || !x || !scales || !biases || x->err ||
      scales->err || biases->err || am_dtype_is_float(x->m.dtype))
    return x;
  am_dtype sb = am_result_type(scales->m.dtype, biases->m.dtype);
  return am_astype(x, am_result_type(x->m.dtype, sb));
}

static am_status qparams(qmm_params *p, am_quant_mode mode, int gs, int bits,
                         bool transpose, am_array biases) {
  memset(p, 0, sizeof *p);
  am_status s = am_q_resolve(mode, &gs, &bits);
  if (s) return s;
  if ((mode == AM_QUANT_AFFINE) != (biases != NULL))
    return AM_FAIL(AM_ERR_INVALID_ARG, "mode %s %s biases",
                   am_q_mode_name(mode), biases ? "takes no" : "needs");
  p->mode = mode;
  p->group_size = gs;
  p->bits = bits;
  p->transpose = transpose;
  return AM_OK;
}

am_array am_quantized_matmul(am_array x, am_array wq, am_array scales,
                             am_array biases, bool transpose, int group_size,
                             int bits, am_quant_mode mode) {
  if (!x || !wq || !scales)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "quantized_matmul: x, w and scales must not be "
                          "NULL");
  qmm_params p;
  am_status s = qparams(&p, mode, group_size, bits, transpose, biases);
  if (s) return am_error_array(s, "quantized_matmul: %s", am_last_error());
  am_arr *in[4] = {cast_x(x, scales, biases, mode), wq, scales, biases};
  return am_op_make(AM_OP_QUANTIZED_MATMUL, &p, in, 3 + (biases != NULL));
}

/* ======================================================================
 *  gather_qmm
 * ====================================================================== */

/* Index operand shapes (given or defaulted to the batch shape) broadcast
 * to B. */
static am_status gather_batch(const am_meta *x, const am_meta *w,
                              const am_meta *lhs, const am_meta *rhs,
                              int64_t *B, int *nb) {
  if (x->ndim < 2 || w->ndim < 2)
    return AM_FAIL(AM_ERR_SHAPE, "both operands need at least 2 dims");
  for (int i = 0; i < 2; i++) {
    const am_meta *ix = i ? rhs : lhs;
    if (ix && !am_dtype_is_int(ix->dtype))
      return AM_FAIL(AM_ERR_DTYPE, "indices must be integers, not %s",
                     am_dtype_name(ix->dtype));
  }
  const int64_t *ls = lhs ? lhs->shape : x->shape;
  const int64_t *rs = rhs ? rhs->shape : w->shape;
  int ln = lhs ? lhs->ndim : x->ndim - 2, rn = rhs ? rhs->ndim : w->ndim - 2;
  if (am_broadcast_shapes(ls, ln, rs, rn, B, nb))
    return AM_FAIL(AM_ERR_SHAPE, "the indices do not broadcast");
  if (*nb + 2 > AM_MAX_DIMS) return AM_FAIL(AM_ERR_SHAPE, "too many dims");
  return AM_OK;
}

/* Input slots of a gather op: after the `base` operands come lhs (if
 * given) and rhs (if given). */
static void gather_slots(const qmm_params *p, int base, int *il, int *ir) {
  *il = p->has_lhs ? base : -1;
  *ir = p->has_rhs ? base + (int)p->has_lhs : -1;
}

static am_status gqmm_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  const qmm_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  int base = 3 + (int)affine, il, ir;
  gather_slots(p, base, &il, &ir);
  if (n_in != base + (int)p->has_lhs + (int)p->has_rhs)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs", n_in);
  int64_t K, N, B[AM_MAX_DIMS];
  int nb;
  am_dtype odt;
  am_status s =
      check_qmm(in[0], in[1], in[2], affine ? in[3] : NULL, p, &K, &N, &odt);
  if (!s)
    s = gather_batch(in[0], in[1], il >= 0 ? in[il] : NULL,
                     ir >= 0 ? in[ir] : NULL, B, &nb);
  if (s) return s;
  out[0].dtype = odt;
  out[0].ndim = nb + 2;
  memcpy(out[0].shape, B, (size_t)nb * sizeof *B);
  out[0].shape[nb] = in[0]->shape[in[0]->ndim - 2];
  out[0].shape[nb + 1] = N;
  return AM_OK;
}

static am_status gqmm_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  const qmm_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  int il, ir;
  gather_slots(p, 3 + (int)affine, &il, &ir);
  const am_arr *x = in[0];
  am_qfmt f = qfmt_of(p, &in[2]->m, affine ? &in[3]->m : NULL);
  int nb = out[0]->m.ndim - 2;
  int64_t K = x->m.shape[x->m.ndim - 1];
  return qmm_eval_common(x, in[1], in[2], affine ? in[3] : NULL,
                         il >= 0 ? in[il] : NULL, ir >= 0 ? in[ir] : NULL, &f,
                         p->transpose, out[0]->m.shape, nb, out[0]->m.shape[nb],
                         out[0]->m.shape[nb + 1], K, p->right_sorted, out[0]);
}

static void qmm_params_str(const void *params, char *buf, size_t n) {
  const qmm_params *p = params;
  snprintf(buf, n, "mode=%s group_size=%d bits=%d transpose=%d%s%s",
           am_q_mode_name(p->mode), p->group_size, p->bits, p->transpose,
           p->left_sorted ? " left_sorted" : "",
           p->right_sorted ? " right_sorted" : "");
}

const am_prim am_prim_gather_qmm = {
    .name = "gather_qmm",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(qmm_params),
    .output_shapes = gqmm_shapes,
    .eval_cpu = gqmm_eval,
    .params_str = qmm_params_str,
};

am_array am_gather_qmm(am_array x, am_array wq, am_array scales,
                       am_array biases, am_array lhs_indices,
                       am_array rhs_indices, bool transpose, int group_size,
                       int bits, am_quant_mode mode, bool sorted_indices) {
  if (!lhs_indices && !rhs_indices)
    return am_quantized_matmul(x, wq, scales, biases, transpose, group_size,
                               bits, mode);
  if (!x || !wq || !scales)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "gather_qmm: x, w and scales must not be NULL");
  qmm_params p;
  am_status s = qparams(&p, mode, group_size, bits, transpose, biases);
  if (s) return am_error_array(s, "gather_qmm: %s", am_last_error());
  p.has_lhs = lhs_indices != NULL;
  p.has_rhs = rhs_indices != NULL;
  p.left_sorted = sorted_indices && !rhs_indices;
  p.right_sorted = sorted_indices && !lhs_indices;
  am_arr *in[6];
  int n = 0;
  in[n++] = cast_x(x, scales, biases, mode);
  in[n++] = wq;
  in[n++] = scales;
  if (biases) in[n++] = biases;
  if (lhs_indices) in[n++] = lhs_indices;
  if (rhs_indices) in[n++] = rhs_indices;
  return am_op_make(AM_OP_GATHER_QMM, &p, in, n);
}

/* ======================================================================
 *  gather_mm (float weights)
 * ====================================================================== */

static am_status gmm_shapes(const am_meta *const *in, int n_in,
                            const void *params, am_meta *out, int n_out) {
  const qmm_params *p = params;
  int il, ir;
  gather_slots(p, 2, &il, &ir);
  if (n_in != 2 + (int)p->has_lhs + (int)p->has_rhs)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs", n_in);
  const am_meta *a = in[0], *b = in[1];
  if (!am_q_is_half_or_f32(a->dtype) || a->dtype != b->dtype)
    return AM_FAIL(AM_ERR_DTYPE,
                   "a and b must share a float16, bfloat16 or float32 "
                   "dtype (got %s, %s)",
                   am_dtype_name(a->dtype), am_dtype_name(b->dtype));
  int64_t B[AM_MAX_DIMS];
  int nb;
  am_status s = gather_batch(a, b, il >= 0 ? in[il] : NULL,
                             ir >= 0 ? in[ir] : NULL, B, &nb);
  if (s) return s;
  if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
    return AM_FAIL(AM_ERR_SHAPE,
                   "a's last dim %lld does not match b's second to last %lld",
                   (long long)a->shape[a->ndim - 1],
                   (long long)b->shape[b->ndim - 2]);
  out[0].dtype = a->dtype;
  out[0].ndim = nb + 2;
  memcpy(out[0].shape, B, (size_t)nb * sizeof *B);
  out[0].shape[nb] = a->shape[a->ndim - 2];
  out[0].shape[nb + 1] = b->shape[b->ndim - 1];
  return AM_OK;
}

static am_status gmm_eval(am_arr *const *in, int n_in, am_arr *const *out,
                          int n_out, const void *params) {
  const qmm_params *p = params;
  int il, ir;
  gather_slots(p, 2, &il, &ir);
  am_qfmt f = {.dense = true, .ddt = in[1]->m.dtype, .gs = 1};
  int nb = out[0]->m.ndim - 2;
  int64_t K = in[0]->m.shape[in[0]->m.ndim - 1];
  return qmm_eval_common(in[0], in[1], NULL, NULL, il >= 0 ? in[il] : NULL,
                         ir >= 0 ? in[ir] : NULL, &f, false, out[0]->m.shape,
                         nb, out[0]->m.shape[nb], out[0]->m.shape[nb + 1], K,
                         p->right_sorted, out[0]);
}

const am_prim am_prim_gather_mm = {
    .name = "gather_mm",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(qmm_params),
    .output_shapes = gmm_shapes,
    .eval_cpu = gmm_eval,
    .params_str = qmm_params_str,
};

am_array am_gather_mm(am_array a, am_array b, am_array lhs_indices,
                      am_array rhs_indices, bool sorted_indices) {
  if (!a || !b)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "gather_mm: a and b must not be NULL");
  am_arr *e = am_first_error((am_arr *[]){a, b}, 2);
  if (!e && lhs_indices) e = am_first_error(&lhs_indices, 1);
  if (!e && rhs_indices) e = am_first_error(&rhs_indices, 1);
  if (e) return am_error_array(e->err, "%s", e->err_msg ? e->err_msg : "");
  if (!a->m.ndim || !b->m.ndim)
    return am_error_array(AM_ERR_SHAPE,
                          "gather_mm: inputs need at least 1 dim (got %d "
                          "and %d)",
                          a->m.ndim, b->m.ndim);
  am_dtype dt = am_result_type(a->m.dtype, b->m.dtype);
  if (!am_q_is_half_or_f32(dt))
    return am_error_array(AM_ERR_DTYPE,
                          "gather_mm: the operands promote to %s (float16, "
                          "bfloat16 or float32 needed)",
                          am_dtype_name(dt));
  bool a1 = a->m.ndim == 1, b1 = b->m.ndim == 1;
  am_scope_push();
  am_array aa = a1 ? am_expand_dims(a, (int[]){0}, 1) : a;
  am_array bb = b1 ? am_expand_dims(b, (int[]){1}, 1) : b;
  if (aa->m.dtype != dt) aa = am_astype(aa, dt);
  if (bb->m.dtype != dt) bb = am_astype(bb, dt);
  qmm_params p;
  memset(&p, 0, sizeof p);
  p.has_lhs = lhs_indices != NULL;
  p.has_rhs = rhs_indices != NULL;
  p.left_sorted = sorted_indices && !rhs_indices;
  p.right_sorted = sorted_indices && !lhs_indices;
  am_arr *in[4];
  int n = 0;
  in[n++] = aa;
  in[n++] = bb;
  if (lhs_indices) in[n++] = lhs_indices;
  if (rhs_indices) in[n++] = rhs_indices;
  am_array y = am_op_make(AM_OP_GATHER_MM, &p, in, n);
  if (a1 && b1)
    y = am_squeeze(y, (int[]){-2, -1}, 2);
  else if (a1)
    y = am_squeeze(y, (int[]){-2}, 1);
  else if (b1)
    y = am_squeeze(y, (int[]){-1}, 1);
  am_array r = am_keep(y);
  am_scope_pop();
  return am_scope_own(r);
}
