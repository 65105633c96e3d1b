/*
 * attention.c — scaled dot-product attention (sdpa) with grouped-query
 * heads, masks, causal alignment and a float32 online softmax.
 *
 * q [B, Hq, Lq, D], k [B, Hkv, Lkv, D], v [B, Hkv, Lkv, Dv]; query head h
 * reads KV head h / (Hq / Hkv). Semantics follow MLX's
 * mx.fast.scaled_dot_product_attention (its CPU path):
 *  - scores = (q * scale) . k, in float32 (double for float64 inputs);
 *  - an additive mask is added; a bool mask (true = keep) and the causal
 *    rule (key j is visible to query i when j <= q_offset + i) replace
 *    hidden scores by the lowest finite value (-FLT_MAX), not -inf: a row
 *    whose every key is hidden therefore averages V uniformly, as MLX,
 *    while a row whose scores are all -inf (additive mask) gives NaN;
 *  - Lkv == 0 gives zeros.
 *
 * Work is organised per KV head: the G = Hq / Hkv query heads of a group
 * times the Lq queries form R = G * Lq rows, ordered (query, head), that
 * share every K and V row they read. A task takes a block of up to 64 of
 * these rows and a range of keys; it walks the keys in blocks of ATT_BK,
 * computes scores for up to 8 rows at a time (nn_simd: each key row is
 * loaded and converted once for all of them), applies the masks, updates
 * the running (max, sum, acc) of each row (online softmax) and adds P @ V.
 *  - Decode (few rows): the key range is split across threads, each split
 *    leaves its partial (max, sum, acc) and a combine step merges them
 *    (flash-decoding), so K and V are streamed from memory exactly once.
 *  - Prefill (many rows): tasks are row blocks over all keys; with causal,
 *    key blocks past the last visible key of a tile are skipped. A row
 *    whose visible keys all score -FLT_MAX or -inf would need the
 *    skipped ones (MLX averages over every hidden key); such rare rows
 *    are recomputed by the reference path below.
 * float64 inputs run the reference path (double precision) for all rows.
 */
#include "attention_params.h"
#include "nn_common.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#define ATT_BK 64   /* keys per block                         */
#define ATT_ROWS 64 /* rows per task                          */
#define ATT_TILE 8  /* rows whose scores are computed at once */

/* ---------------------------------------------------------------- shapes */

static am_status sdpa_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  const sdpa_params *p = params;
  const am_meta *q = in[0], *k = in[1], *v = in[2];
  if (n_in != 3 + p->has_mask + p->has_qoff)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs, expected %d", n_in,
                   3 + p->has_mask + p->has_qoff);
  if (!am_dtype_is_float(q->dtype))
    return AM_FAIL(AM_ERR_DTYPE, "needs float q, k, v (got %s)",
                   am_dtype_name(q->dtype));
  if (k->dtype != q->dtype || v->dtype != q->dtype)
    return AM_FAIL(AM_ERR_DTYPE,
                   "q, k and v must share one dtype (got %s, "
                   "%s, %s)",
                   am_dtype_name(q->dtype), am_dtype_name(k->dtype),
                   am_dtype_name(v->dtype));
  if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
    return AM_FAIL(AM_ERR_SHAPE, "q, k and v must be 4-d [B, H, L, D]");
  if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
    return AM_FAIL(AM_ERR_SHAPE, "q, k and v must share the batch size");
  if (k->shape[1] != v->shape[1] || k->shape[2] != v->shape[2])
    return AM_FAIL(AM_ERR_SHAPE, "k and v must have the same heads and length");
  if (k->shape[3] != q->shape[3])
    return AM_FAIL(AM_ERR_SHAPE, "q and k must have the same head dim");
  int64_t hq = q->shape[1], hkv = k->shape[1];
  if (hkv ? hq % hkv != 0 : hq != 0)
    return AM_FAIL(AM_ERR_SHAPE,
                   "query heads (%lld) must be a multiple of KV heads (%lld)",
                   (long long)hq, (long long)hkv);
  if (!isfinite(p->scale))
    return AM_FAIL(AM_ERR_INVALID_ARG, "scale must be finite (got %g)",
                   (double)p->scale);
  int at = 3;
  if (p->has_mask) {
    const am_meta *m = in[at++];
    if (m->dtype != AM_BOOL && !am_dtype_is_float(m->dtype))
      return AM_FAIL(AM_ERR_DTYPE, "mask must be bool or float (got %s)",
                     am_dtype_name(m->dtype));
    int64_t full[4] = {q->shape[0], hq, q->shape[2], k->shape[2]};
    bool ok = m->ndim <= 4;
    for (int i = 0; ok && i < m->ndim; i++) {
      int64_t d = m->shape[i], f = full[4 - m->ndim + i];
      ok = d == 1 || d == f;
    }
    if (!ok)
      return AM_FAIL(AM_ERR_SHAPE,
                     "mask must broadcast to [B, Hq, Lq, Lkv] = "
                     "[%lld, %lld, %lld, %lld]",
                     (long long)full[0], (long long)full[1], (long long)full[2],
                     (long long)full[3]);
  }
  if (p->has_qoff) {
    const am_meta *o = in[at];
    if (!p->causal) return AM_FAIL(AM_ERR_INVALID_ARG, "q_offset needs causal");
    if (!am_dtype_is_int(o->dtype) || am_meta_size(o) != 1 || o->ndim > 1)
      return AM_FAIL(AM_ERR_SHAPE,
                     "q_offset must be a 0-d integer array (got %s, %d dims)",
                     am_dtype_name(o->dtype), o->ndim);
  }
  out->dtype = q->dtype;
  out->ndim = 4;
  out->shape[0] = q->shape[0];
  out->shape[1] = hq;
  out->shape[2] = q->shape[2];
  out->shape[3] = v->shape[3];
  return AM_OK;
}

/* ------------------------------------------------------------ context */

typedef struct {
  int64_t B, Hq, Hkv, G, Lq, Lkv, D, Dv;
  float scale;
  bool causal;
  int64_t qoff; /* query i sits at key position qoff + i */
  const am_arr *q;
  am_arr *out;
  /* K and V: base, strides in elements over (b, h, l, d) */
  const char *kp, *vp;
  int64_t ks[4], vs[4];
  am_dtype kvt;
  int kt; /* AM_NN_KV_* for the fast kernels */
  /* mask broadcast to [B, Hq, Lq, Lkv]; mp NULL when absent */
  const char *mp;
  int64_t ms[4];
  am_dtype mt;
  /* tasks: (b, kvh, row block, split) */
  int64_t rows, rmax, nrb, nsplit, split_len;
  float *part; /* per task and row: m, l, skipped, acc[Dv] */
  const am_nn_vec *vec;
  am_nn_map exp;
} att_ctx;

static inline size_t esize(am_dtype t) {
  return am_dtype_size(t);
}

/* -------------------------------------------------- reference (double) */

/* One output row (b, hq, i) over every key, in double, with the same
 * masking rules; `lowest` is what hidden keys score. sc: Lkv, acc: Dv,
 * qd: D scratch. Used for float64 inputs and for the rare float rows
 * whose visible keys all score <= -FLT_MAX. */
static void att_row_ref(const att_ctx *c, int64_t b, int64_t hq, int64_t i,
                        double lowest, double *sc, double *acc, double *qd) {
  int64_t kvh = hq / c->G;
  const am_arr *q = c->q;
  size_t qes = esize(q->m.dtype), kes = esize(c->kvt);
  am_nn_load_f64(am_arr_ptr(q) + (b * q->strides[0] + hq * q->strides[1] +
                                  i * q->strides[2]) *
                                     (int64_t)qes,
                 q->strides[3] * (int64_t)qes, q->m.dtype, c->D, qd);
  const char *kb = c->kp + (b * c->ks[0] + kvh * c->ks[1]) * (int64_t)kes;
  const char *vb = c->vp + (b * c->vs[0] + kvh * c->vs[1]) * (int64_t)kes;
  double m = -INFINITY;
  for (int64_t j = 0; j < c->Lkv; j++) {
    double s = 0;
    for (int64_t d = 0; d < c->D; d++)
      s += qd[d] * c->scale *
           am_load_f64(kb + (j * c->ks[2] + d * c->ks[3]) * (int64_t)kes,
                       c->kvt);
    if (c->mp) {
      const char *mp =
          c->mp + (b * c->ms[0] + hq * c->ms[1] + i * c->ms[2] + j * c->ms[3]) *
                      (int64_t)esize(c->mt);
      if (c->mt == AM_BOOL)
        s = *mp ? s : lowest;
      else
        s += am_load_f64(mp, c->mt);
    }
    if (c->causal && j > c->qoff + i) s = lowest;
    sc[j] = s;
    if (s > m || s != s) m = s;
  }
  double l = 0;
  for (int64_t d = 0; d < c->Dv; d++)
    acc[d] = 0;
  for (int64_t j = 0; j < c->Lkv; j++) {
    double p = exp(sc[j] - m);
    l += p;
    for (int64_t d = 0; d < c->Dv; d++)
      acc[d] +=
          p * am_load_f64(vb + (j * c->vs[2] + d * c->vs[3]) * (int64_t)kes,
                          c->kvt);
  }
  for (int64_t d = 0; d < c->Dv; d++)
    acc[d] /= l;
  size_t oes = esize(c->out->m.dtype);
  am_nn_store_f64(acc,
                  am_arr_ptr(c->out) +
                      ((b * c->Hq + hq) * c->Lq + i) * c->Dv * (int64_t)oes,
                  (int64_t)oes, c->out->m.dtype, c->Dv);
}

static void att_ref_rows(void *cv, int64_t r0, int64_t r1) {
  const att_ctx *c = cv;
  double *buf = malloc((size_t)(c->Lkv + c->Dv + c->D + 1) * sizeof *buf);
  if (!buf) return;
  for (int64_t r = r0; r < r1; r++) {
    int64_t i = r % c->Lq, hq = (r / c->Lq) % c->Hq, b = r / c->Lq / c->Hq;
    att_row_ref(c, b, hq, i, -DBL_MAX, buf, buf + c->Lkv, buf + c->Lkv + c->Dv);
  }
  free(buf);
}

/* ------------------------------------------------------ fast path tasks */

/* Row r of a group: query i = r / G, head g = r % G. */
static inline int64_t row_query(const att_ctx *c, int64_t r) {
  return r / c->G;
}

/* Adds the mask to (or hides with it) the scores of one row over keys
 * [j0, j0 + n). */
static void apply_mask(const att_ctx *c, int64_t b, int64_t hq, int64_t i,
                       int64_t j0, int64_t n, float *s) {
  size_t es = esize(c->mt);
  const char *p =
      c->mp + (b * c->ms[0] + hq * c->ms[1] + i * c->ms[2] + j0 * c->ms[3]) *
                  (int64_t)es;
  int64_t st = c->ms[3] * (int64_t)es;
  if (c->mt == AM_BOOL) {
    for (int64_t j = 0; j < n; j++)
      if (!p[j * st]) s[j] = -FLT_MAX;
    return;
  }
  float add[ATT_BK];
  am_nn_load_f32(p, st, c->mt, n, add);
  for (int64_t j = 0; j < n; j++)
    s[j] += add[j];
}

/* q * scale rounded to q's dtype, as MLX computes it (exact for the usual
 * power-of-two scales of bfloat16/float16 q); qb, when not NULL, gets the
 * bfloat16 bits for the dot-product kernel. */
static void round_q(am_dtype t, float *q, uint16_t *qb, int64_t n) {
  if (t == AM_BF16)
    for (int64_t i = 0; i < n; i++) {
      uint16_t h = am_f32_to_bf16(q[i]);
      q[i] = am_bf16_to_f32(h);
      if (qb) qb[i] = h;
    }
  else if (t == AM_F16)
    for (int64_t i = 0; i < n; i++)
      q[i] = am_f16_to_f32(am_f32_to_f16(q[i]));
}

/* bfloat16 probabilities, as MLX's bfloat16 path multiplies them with V;
 * the row sum is taken from the rounded values, so the weights still sum
 * to exactly one after the final division. */
static void round_p(float *p, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    p[i] = am_bf16_to_f32(am_f32_to_bf16(p[i]));
}

typedef struct {
  int64_t qs, as; /* row strides of q (and qb) and acc, in elements */
  uint16_t *qb;   /* rows x D, bfloat16 q for the dot-product kernel, or NULL */
  float *q;       /* rows x D, scaled */
  float *s;       /* ATT_TILE x ATT_BK scores, then probabilities */
  float *acc;     /* rows x Dv */
  float *m, *l, *corr;
  bool skipped[ATT_ROWS]; /* per row: causal-hidden keys were not visited */
} att_scratch;

/* One tile of rt rows (scratch rows t0..) against keys [jb, jb + nk):
 * scores, masks, the online-softmax update and P @ V. */
static void tile_block(const att_ctx *c, att_scratch *w, int64_t b, int64_t kvh,
                       int64_t row0, int rt, int64_t t0, int64_t jb, int64_t nk,
                       const char *kb, const char *vb) {
  const am_nn_vec *vec = c->vec;
  int64_t kes = (int64_t)esize(c->kvt);
  if (w->qb)
    vec->scores_bf16dp(rt, w->qb + t0 * w->qs, w->qs, kb + jb * c->ks[2] * kes,
                       c->ks[2], nk, c->D, w->s, ATT_BK);
  else
    vec->scores[c->kt](rt, w->q + t0 * w->qs, w->qs, kb + jb * c->ks[2] * kes,
                       c->ks[2], nk, c->D, w->s, ATT_BK);
  for (int r = 0; r < rt; r++) {
    int64_t row = row0 + r, i = row_query(c, row);
    int64_t hq = kvh * c->G + row % c->G;
    float *s = w->s + r * ATT_BK;
    if (c->mp) apply_mask(c, b, hq, i, jb, nk, s);
    if (c->causal) /* keys after position qoff + i are hidden */
      for (int64_t j = c->qoff + i + 1 - jb < 0 ? 0 : c->qoff + i + 1 - jb;
           j < nk; j++)
        s[j] = -FLT_MAX;
    float *m = w->m + t0 + r, *l = w->l + t0 + r;
    float mn = vec->max(s, nk);
    if (*m > mn) mn = *m;
    if (mn == -INFINITY) { /* nothing finite yet: keep l = acc = 0 */
      w->corr[r] = 1.0f;
      memset(s, 0, (size_t)nk * sizeof *s);
      continue;
    }
    w->corr[r] = expf(*m - mn);
    vec->affine(s, s, -mn, 1.0f, NULL, NULL, NULL, nk);
    am_nn_map1(c->exp, s, s, nk);
    if (c->kvt == AM_BF16) round_p(s, nk);
    *l = *l * w->corr[r] + vec->sum(s, nk);
    *m = mn;
  }
  if (c->kt == AM_NN_KV_BF16 && vec->pv_bf16dp)
    vec->pv_bf16dp(rt, w->s, ATT_BK, vb + jb * c->vs[2] * kes, c->vs[2], nk,
                   c->Dv, w->acc + t0 * w->as, w->as, w->corr);
  else
    vec->pv[c->kt](rt, w->s, ATT_BK, vb + jb * c->vs[2] * kes, c->vs[2], nk,
                   c->Dv, w->acc + t0 * w->as, w->as, w->corr);
}

/* Rows [r0, r1) of group (b, kvh) over keys [j0, j1): leaves each row's
 * running max, sum and accumulator in the scratch. */
static void att_rows_keys(const att_ctx *c, att_scratch *w, int64_t b,
                          int64_t kvh, int64_t r0, int64_t r1, int64_t j0,
                          int64_t j1) {
  const am_nn_vec *vec = c->vec;
  int64_t nr = r1 - r0;
  size_t kes = esize(c->kvt);
  const am_arr *q = c->q;
  size_t qes = esize(q->m.dtype);
  for (int64_t r = 0; r < nr; r++) {
    int64_t i = row_query(c, r0 + r), hq = kvh * c->G + (r0 + r) % c->G;
    float *qr = w->q + r * w->qs;
    am_nn_load_f32(am_arr_ptr(q) + (b * q->strides[0] + hq * q->strides[1] +
                                    i * q->strides[2]) *
                                       (int64_t)qes,
                   q->strides[3] * (int64_t)qes, q->m.dtype, c->D, qr);
    vec->affine(qr, qr, 0.0f, c->scale, NULL, NULL, NULL, c->D);
    round_q(q->m.dtype, qr, w->qb ? w->qb + r * w->qs : NULL, c->D);
    w->m[r] = -INFINITY;
    w->l[r] = 0;
    memset(w->acc + r * w->as, 0, (size_t)c->Dv * sizeof(float));
  }
  const char *kb = c->kp + (b * c->ks[0] + kvh * c->ks[1]) * (int64_t)kes;
  const char *vb = c->vp + (b * c->vs[0] + kvh * c->vs[1]) * (int64_t)kes;
  /* With causal, keys past a tile's last visible one are hidden for all
   * its rows: the tile stops there (and its rows note the skip). */
  int64_t tend[ATT_ROWS / ATT_TILE], jmax = j0;
  int ntiles = (int)((nr + ATT_TILE - 1) / ATT_TILE);
  for (int t = 0; t < ntiles; t++) {
    int64_t t0 = (int64_t)t * ATT_TILE;
    int64_t last = r0 + (nr - t0 < ATT_TILE ? nr : t0 + ATT_TILE) - 1;
    int64_t end = j1;
    if (c->causal) {
      int64_t vis = c->qoff + row_query(c, last) + 1;
      if (vis < end) end = vis < j0 ? j0 : vis;
    }
    tend[t] = end;
    if (end > jmax) jmax = end;
    for (int64_t r = t0; r < nr && r < t0 + ATT_TILE; r++)
      w->skipped[r] = end < j1;
  }
  /* Key blocks outermost: each K and V block is read from memory once and
   * serves every tile from cache (the kernels prefetch ahead). */
  for (int64_t jb = j0; jb < jmax; jb += ATT_BK) {
    for (int t = 0; t < ntiles; t++) {
      if (jb >= tend[t]) continue;
      int64_t t0 = (int64_t)t * ATT_TILE;
      int rt = (int)(nr - t0 < ATT_TILE ? nr - t0 : ATT_TILE);
      int64_t nk = tend[t] - jb < ATT_BK ? tend[t] - jb : ATT_BK;
      tile_block(c, w, b, kvh, r0 + t0, rt, t0, jb, nk, kb, vb);
    }
  }
}

/* One 64-byte aligned block; q and acc rows are padded to whole cache
 * lines so that no vector load of them splits across two. */
static bool scratch_alloc(const att_ctx *c, att_scratch *w, void **mem) {
  bool dp = c->kt == AM_NN_KV_BF16 && c->vec->scores_bf16dp;
  int64_t rm = c->rmax;
  w->qs = (c->D + 31) / 32 * 32;
  w->as = (c->Dv + 15) / 16 * 16;
  /* q, qb, acc, s in whole cache lines; then m, l, corr */
  size_t qbytes = (size_t)(rm * w->qs) * sizeof(float);
  size_t bbytes = dp ? (size_t)(rm * w->qs) * sizeof(uint16_t) : 0;
  size_t abytes = (size_t)(rm * w->as) * sizeof(float);
  size_t sbytes = ATT_TILE * ATT_BK * sizeof(float);
  size_t rest = (size_t)(2 * rm + ATT_TILE) * sizeof(float);
  char *raw = malloc(qbytes + bbytes + abytes + sbytes + rest + 64);
  *mem = raw;
  if (!raw) return false;
  char *p = raw + (64 - (uintptr_t)raw % 64) % 64;
  w->q = (float *)p;
  w->qb = dp ? (uint16_t *)(p + qbytes) : NULL;
  w->acc = (float *)(p + qbytes + bbytes);
  w->s = (float *)(p + qbytes + bbytes + abytes);
  w->m = (float *)(p + qbytes + bbytes + abytes + sbytes);
  w->l = w->m + rm;
  w->corr = w->l + rm;
  return true;
}

/* Writes row (b, kvh, r) from its final max, sum and accumulator; a row
 * with skipped keys and no score above -FLT_MAX goes to the reference. */
static void att_finish_row(const att_ctx *c, int64_t b, int64_t kvh, int64_t r,
                           float m, float l, bool skipped, float *acc,
                           double *ref) {
  int64_t i = row_query(c, r), hq = kvh * c->G + r % c->G;
  if (skipped && !(m > -FLT_MAX)) {
    att_row_ref(c, b, hq, i, -FLT_MAX, ref, ref + c->Lkv, ref + c->Lkv + c->Dv);
    return;
  }
  float inv = 1.0f / l;
  c->vec->affine(acc, acc, 0.0f, inv, NULL, NULL, NULL, c->Dv);
  size_t oes = esize(c->out->m.dtype);
  am_nn_store_f32(acc,
                  am_arr_ptr(c->out) +
                      ((b * c->Hq + hq) * c->Lq + i) * c->Dv * (int64_t)oes,
                  (int64_t)oes, c->out->m.dtype, c->Dv);
}

static double *ref_scratch(const att_ctx *c) {
  return malloc((size_t)(c->Lkv + c->Dv + c->D + 1) * sizeof(double));
}

static void att_tasks(void *cv, int64_t t0, int64_t t1) {
  const att_ctx *c = cv;
  att_scratch w;
  void *mem;
  if (!scratch_alloc(c, &w, &mem)) return;
  double *ref = NULL;
  size_t pstride = (size_t)(c->Dv + 3);
  for (int64_t t = t0; t < t1; t++) {
    int64_t sp = t % c->nsplit, rb = t / c->nsplit % c->nrb;
    int64_t bh = t / c->nsplit / c->nrb, b = bh / c->Hkv, kvh = bh % c->Hkv;
    int64_t r0 = rb * ATT_ROWS;
    int64_t r1 = r0 + ATT_ROWS < c->rows ? r0 + ATT_ROWS : c->rows;
    int64_t j0 = sp * c->split_len;
    int64_t j1 = j0 + c->split_len < c->Lkv ? j0 + c->split_len : c->Lkv;
    att_rows_keys(c, &w, b, kvh, r0, r1, j0, j1);
    for (int64_t r = 0; r < r1 - r0; r++) {
      float *acc = w.acc + r * w.as;
      if (c->nsplit > 1) { /* partial: m, l, skipped, acc */
        float *p = c->part + ((size_t)(t * c->rmax + r)) * pstride;
        p[0] = w.m[r];
        p[1] = w.l[r];
        p[2] = w.skipped[r];
        memcpy(p + 3, acc, (size_t)c->Dv * sizeof *acc);
        continue;
      }
      bool redo = w.skipped[r] && !(w.m[r] > -FLT_MAX);
      if (redo && !ref && !(ref = ref_scratch(c))) continue; /* OOM */
      att_finish_row(c, b, kvh, r0 + r, w.m[r], w.l[r], w.skipped[r], acc, ref);
    }
  }
  free(ref);
  free(mem);
}

/* Merges the splits of each (b, kvh, row block) task group. */
static void att_combine(void *cv, int64_t g0, int64_t g1) {
  const att_ctx *c = cv;
  size_t pstride = (size_t)(c->Dv + 3);
  float *acc = malloc((size_t)(c->Dv ? c->Dv : 1) * sizeof *acc);
  double *ref = NULL;
  if (!acc) return;
  for (int64_t g = g0; g < g1; g++) {
    int64_t rb = g % c->nrb, bh = g / c->nrb, b = bh / c->Hkv,
            kvh = bh % c->Hkv;
    int64_t r0 = rb * ATT_ROWS;
    int64_t nr = c->rows - r0 < ATT_ROWS ? c->rows - r0 : ATT_ROWS;
    for (int64_t r = 0; r < nr; r++) {
      float m = -INFINITY, l = 0;
      bool skipped = false;
      for (int64_t sp = 0; sp < c->nsplit; sp++) {
        const float *p =
            c->part + ((size_t)((g * c->nsplit + sp) * c->rmax + r)) * pstride;
        if (p[0] > m) m = p[0];
        skipped |= p[2] != 0;
      }
      memset(acc, 0, (size_t)c->Dv * sizeof *acc);
      for (int64_t sp = 0; sp < c->nsplit; sp++) {
        const float *p =
            c->part + ((size_t)((g * c->nsplit + sp) * c->rmax + r)) * pstride;
        if (p[0] == -INFINITY) continue; /* contributed nothing */
        float wgt = expf(p[0] - m);
        l += p[1] * wgt;
        c->vec->affine(acc, p + 3, 0.0f, wgt, NULL, NULL, acc, c->Dv);
      }
      if (skipped && !(m > -FLT_MAX) && !ref && !(ref = ref_scratch(c)))
        continue;
      att_finish_row(c, b, kvh, r0 + r, m, l, skipped, acc, ref);
    }
  }
  free(ref);
  free(acc);
}

/* ------------------------------------------------------------------ eval */

/* K or V with unit stride along D (the fast kernels' need): the array
 * itself, or a contiguous copy in *tmp. */
static const char *kv_unit(const am_arr *a, int64_t *st, void **tmp) {
  memcpy(st, a->strides, 4 * sizeof *st);
  *tmp = NULL;
  if (a->m.shape[3] <= 1 || a->strides[3] == 1) return am_arr_ptr(a);
  *tmp = malloc((size_t)a->size * esize(a->m.dtype) + 1);
  if (!*tmp) return NULL;
  am_copy_to_contig(a, *tmp, a->m.dtype);
  am_contig_strides(a->m.shape, 4, st);
  return *tmp;
}

static am_status sdpa_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  const sdpa_params *p = params;
  const am_arr *q = in[0], *k = in[1], *v = in[2];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  att_ctx c = {.B = q->m.shape[0],
               .Hq = q->m.shape[1],
               .Hkv = k->m.shape[1],
               .Lq = q->m.shape[2],
               .Lkv = k->m.shape[2],
               .D = q->m.shape[3],
               .Dv = v->m.shape[3],
               .scale = p->scale,
               .causal = p->causal,
               .q = q,
               .out = o,
               .kvt = k->m.dtype,
               .vec = am_nn_vec_get(),
               .exp = am_nn_map_f32(AM_OP_EXP)};
  if (c.Lkv == 0) { /* softmax over nothing, then an empty sum: zeros */
    memset(o->buf->data, 0, (size_t)o->size * esize(o->m.dtype));
    return AM_OK;
  }
  c.G = c.Hq / c.Hkv;
  c.qoff = c.Lkv - c.Lq; /* MLX: the last query sees the last key */
  int at = 3;
  if (p->has_mask) {
    const am_arr *m = in[at++];
    int64_t full[4] = {c.B, c.Hq, c.Lq, c.Lkv};
    am_broadcast_strides(m, full, 4, c.ms);
    c.mp = am_arr_ptr(m);
    c.mt = m->m.dtype;
  }
  if (p->has_qoff) c.qoff = am_load_i64(am_arr_ptr(in[at]), in[at]->m.dtype);
  /* Keys after the last query's position are hidden from every row, and
   * each row still sees key 0 (qoff >= 0): they are never read. A KV cache
   * of some capacity filled up to qoff + Lq thus costs only what it holds. */
  if (c.causal && c.qoff >= 0 && c.qoff + c.Lq < c.Lkv) c.Lkv = c.qoff + c.Lq;

  if (o->m.dtype == AM_F64) { /* reference path, any strides */
    c.kp = am_arr_ptr(k);
    c.vp = am_arr_ptr(v);
    memcpy(c.ks, k->strides, sizeof c.ks);
    memcpy(c.vs, v->strides, sizeof c.vs);
    int64_t rows = c.B * c.Hq * c.Lq;
    am_parallel_for(rows, 1 + (1 << 16) / (c.Lkv * (c.D + c.Dv) + 1),
                    att_ref_rows, &c);
    return AM_OK;
  }

  c.kt = c.kvt == AM_BF16  ? AM_NN_KV_BF16
         : c.kvt == AM_F16 ? AM_NN_KV_F16
                           : AM_NN_KV_F32;
  void *tk, *tv;
  c.kp = kv_unit(k, c.ks, &tk);
  c.vp = kv_unit(v, c.vs, &tv);
  if (!c.kp || !c.vp) {
    free(tk);
    free(tv);
    return AM_FAIL(AM_ERR_OOM, "out of memory");
  }

  /* Tasks: row blocks of each (b, kvh) group; when they are too few to
   * feed every thread, the keys are split too (decode). */
  c.rows = c.G * c.Lq;
  c.nrb = (c.rows + ATT_ROWS - 1) / ATT_ROWS;
  c.rmax = c.rows < ATT_ROWS ? c.rows : ATT_ROWS; /* rows of a task, at most */
  int64_t groups = c.B * c.Hkv * c.nrb;
  int64_t want = 4 * (int64_t)am_get_num_threads();
  c.nsplit = 1;
  if (groups < want) {
    int64_t by_keys = c.Lkv / (4 * ATT_BK); /* at least 256 keys a split */
    c.nsplit = (want + groups - 1) / groups;
    if (c.nsplit > by_keys) c.nsplit = by_keys > 1 ? by_keys : 1;
  }
  /* whole key blocks per split */
  c.split_len = (c.Lkv + c.nsplit - 1) / c.nsplit;
  c.split_len = (c.split_len + ATT_BK - 1) / ATT_BK * ATT_BK;
  c.nsplit = (c.Lkv + c.split_len - 1) / c.split_len;
  if (c.nsplit > 1) {
    c.part = malloc((size_t)(groups * c.nsplit * c.rmax) * (size_t)(c.Dv + 3) *
                    sizeof(float));
    if (!c.part) {
      free(tk);
      free(tv);
      return AM_FAIL(AM_ERR_OOM, "out of memory");
    }
  }
  int64_t work = c.rmax * c.split_len * (c.D + c.Dv);
  am_parallel_for(groups * c.nsplit, 1 + (1 << 18) / (work + 1), att_tasks, &c);
  if (c.nsplit > 1)
    am_parallel_for(groups, 1 + (1 << 14) / (c.nsplit * c.rows * c.Dv + 1),
                    att_combine, &c);
  free(c.part);
  free(tk);
  free(tv);
  return AM_OK;
}

const am_prim am_prim_sdpa = {
    .name = "sdpa",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(sdpa_params),
    .output_shapes = sdpa_shapes,
    .eval_cpu = sdpa_eval,
};

am_array am_sdpa(am_array q, am_array k, am_array v, float scale, am_array mask,
                 bool causal, am_array q_offset) {
  sdpa_params p;
  memset(&p, 0, sizeof p);
  p.scale = scale;
  p.causal = causal;
  p.has_mask = mask != NULL;
  p.has_qoff = q_offset != NULL;
  am_arr *in[5] = {q, k, v};
  int n = 3;
  if (mask) in[n++] = mask;
  if (q_offset) in[n++] = q_offset;
  return am_nn_make(AM_OP_SDPA, &p, in, n, 3);
}
