/*
 * rope.c — rotary positional encoding, as MLX's mx.fast.rope.
 *
 * x is [..., L, D]; row l of the second-to-last axis sits at position
 * offset + l, where offset is data (a 0-d integer array, or one offset per
 * entry of axis 0): a new offset never changes the graph. Pair i < dims/2
 * turns by angle scale * position * base^(-2i/dims):
 *   NeoX (traditional = false): pairs (x[i], x[i + dims/2]), the
 *     rotate-half layout of Qwen/Llama checkpoints;
 *   traditional: pairs (x[2i], x[2i + 1]).
 * Elements at dims and beyond are copied unchanged (partial rotary).
 *
 * The cos/sin table is computed once per distinct position (shared by
 * every head) in double precision and rounded to float32 (double for
 * float64 x); MLX's CPU path computes the angles in x's dtype, so results
 * agree to float32 rounding for moderate positions and are more accurate
 * at large ones.
 */
#include "nn_common.h"
#include "rope_params.h"

#include <math.h>
#include <stdlib.h>

static am_status rope_shapes(const am_meta *const *in, int n_in,
                             const void *params, am_meta *out, int n_out) {
  const rope_params *p = params;
  const am_meta *x = in[0];
  if (n_in != 1 + p->has_offset)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs, expected %d", n_in,
                   1 + p->has_offset);
  if (!am_dtype_is_float(x->dtype))
    return AM_FAIL(AM_ERR_DTYPE, "needs a float dtype (got %s)",
                   am_dtype_name(x->dtype));
  if (x->ndim < 2)
    return AM_FAIL(AM_ERR_SHAPE, "x must be [..., L, D] (got %d dims)",
                   x->ndim);
  int64_t d = x->shape[x->ndim - 1];
  if (p->dims <= 0 || p->dims % 2 || p->dims > d)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "dims must be even, positive and at most D = %lld (got %d)",
                   (long long)d, p->dims);
  if (!(p->base > 0) || !isfinite(p->base) || !isfinite(p->scale))
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "needs a finite base > 0 and a finite scale (got %g, %g)",
                   (double)p->base, (double)p->scale);
  if (p->has_offset) {
    const am_meta *o = in[1];
    if (!am_dtype_is_int(o->dtype))
      return AM_FAIL(AM_ERR_DTYPE, "offset must be an integer array (got %s)",
                     am_dtype_name(o->dtype));
    bool ok = o->ndim == 0 ||
              (o->ndim == 1 && (o->shape[0] == 1 ||
                                (x->ndim >= 3 && o->shape[0] == x->shape[0])));
    if (!ok)
      return AM_FAIL(AM_ERR_SHAPE,
                     "offset must be 0-d or hold one value per entry of axis "
                     "0 (%lld) of an x with at least 3 dims",
                     (long long)x->shape[0]);
  }
  *out = *x;
  return AM_OK;
}

/* ---------------------------------------------------------------- eval */

typedef struct {
  const rope_params *p;
  am_arr *x, *out;
  int64_t rows, len, d, half, nb; /* nb: batches with their own offset */
  const int64_t *off;
  void *cs; /* [nb][len][half] cos then sin, float or double */
  bool f64;
} rope_ctx;

/* cos/sin for table row r = (batch, l). */
static void rope_table(void *c, int64_t b, int64_t e) {
  const rope_ctx *x = c;
  double lb = log((double)x->p->base);
  for (int64_t r = b; r < e; r++) {
    double pos = (double)(x->off[r / x->len] + r % x->len) * x->p->scale;
    for (int64_t i = 0; i < x->half; i++) {
      double th = pos * exp(-(double)(2 * i) / x->p->dims * lb);
      int64_t k = (r * x->half + i) * 2;
      if (x->f64) {
        ((double *)x->cs)[k] = cos(th);
        ((double *)x->cs)[k + 1] = sin(th);
      } else {
        ((float *)x->cs)[k] = (float)cos(th);
        ((float *)x->cs)[k + 1] = (float)sin(th);
      }
    }
  }
}

/* One row: pairs (i, i + half) or (2i, 2i + 1) turned by cs; the rest
 * copied. o may be x (read before write, same position). */
#define ROPE_ROW(T)                                                            \
  static void rope_row_##T(const T *x, T *o, const T *cs, int64_t half,        \
                           int64_t d, bool trad) {                             \
    int64_t s = trad ? 1 : half, step = trad ? 2 : 1;                          \
    for (int64_t i = 0; i < half; i++) {                                       \
      T c = cs[2 * i], sn = cs[2 * i + 1];                                     \
      T a = x[i * step], b = x[i * step + s];                                  \
      o[i * step] = a * c - b * sn;                                            \
      o[i * step + s] = a * sn + b * c;                                        \
    }                                                                          \
    for (int64_t i = 2 * half; i < d; i++)                                     \
      o[i] = x[i];                                                             \
  }
ROPE_ROW(float)
ROPE_ROW(double)

static void rope_rows(void *c, int64_t b, int64_t e) {
  const rope_ctx *x = c;
  const am_arr *a = x->x;
  int nd = a->m.ndim;
  am_dtype t = a->m.dtype;
  int64_t es = (int64_t)am_dtype_size(t);
  int64_t xst = a->strides[nd - 1] * es;
  size_t ces = x->f64 ? sizeof(double) : sizeof(float);
  bool direct = !x->f64 && t == AM_F32 && xst == 4;
  char *buf = malloc(2 * (size_t)x->d * ces + 16);
  if (!buf) return; /* OOM: output left unwritten */
  char *xb = buf, *ob = buf + (size_t)x->d * ces;
  for (int64_t r = b; r < e; r++) {
    /* unravel r over the leading dims to find x's row and (batch, l) */
    int64_t rem = r, xoff = 0, l = 0, bi = 0;
    for (int k = nd - 2; k >= 0; k--) {
      int64_t i = rem % a->m.shape[k];
      rem /= a->m.shape[k];
      xoff += i * a->strides[k];
      if (k == nd - 2) l = i;
      if (k == 0) bi = i;
    }
    int64_t tr = (x->nb > 1 ? bi : 0) * x->len + l;
    const char *xp = am_arr_ptr(a) + xoff * es;
    char *op = am_arr_ptr(x->out) + r * x->d * es;
    if (x->f64) {
      am_nn_load_f64(xp, xst, t, x->d, (double *)xb);
      rope_row_double((double *)xb, (double *)op,
                      (const double *)x->cs + tr * 2 * x->half, x->half, x->d,
                      x->p->traditional);
      continue;
    }
    const float *xi = direct ? (const float *)xp : (const float *)xb;
    float *oi = t == AM_F32 ? (float *)op : (float *)ob;
    if (!direct) am_nn_load_f32(xp, xst, t, x->d, (float *)xb);
    rope_row_float(xi, oi, (const float *)x->cs + tr * 2 * x->half, x->half,
                   x->d, x->p->traditional);
    if (t != AM_F32) am_nn_store_f32(oi, op, es, t, x->d);
  }
  free(buf);
}

static am_status rope_eval(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  const rope_params *p = params;
  am_arr *x = in[0], *o = out[0];
  am_status s = am_out_alloc_donate(o, in, 1);
  if (s || !o->size) return s;
  int nd = x->m.ndim;
  rope_ctx c = {.p = p,
                .x = x,
                .out = o,
                .len = x->m.shape[nd - 2],
                .d = x->m.shape[nd - 1],
                .half = p->dims / 2,
                .nb = 1,
                .f64 = o->m.dtype == AM_F64};
  c.rows = o->size / c.d;
  const am_arr *oa = p->has_offset ? in[1] : NULL;
  if (oa && oa->m.ndim == 1) c.nb = oa->m.shape[0];
  int64_t *off = calloc((size_t)c.nb, sizeof *off);
  size_t ces = c.f64 ? sizeof(double) : sizeof(float);
  c.cs = malloc((size_t)(c.nb * c.len * c.half) * 2 * ces + 16);
  if (!off || !c.cs) {
    free(off);
    free(c.cs);
    return AM_FAIL(AM_ERR_OOM, "out of memory");
  }
  size_t oes = oa ? am_dtype_size(oa->m.dtype) : 0;
  for (int64_t i = 0; oa && i < c.nb; i++)
    off[i] = am_load_i64(
        am_arr_ptr(oa) + i * (oa->m.ndim ? oa->strides[0] : 0) * (int64_t)oes,
        oa->m.dtype);
  c.off = off;
  am_parallel_for(c.nb * c.len, 1 + (1 << 12) / (c.half + 1), rope_table, &c);
  am_parallel_for(c.rows, 1 + (1 << 15) / (c.d + 1), rope_rows, &c);
  free(off);
  free(c.cs);
  return AM_OK;
}

/* dims is a hyperparameter of the model, not a traced size: it stays
 * valid whatever D a replay brings (output_shapes re-checks dims <= D). */
const am_prim am_prim_rope = {
    .name = "rope",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(rope_params),
    .output_shapes = rope_shapes,
    .eval_cpu = rope_eval,
};

am_array am_rope(am_array x, int dims, bool traditional, float base,
                 float scale, am_array offset) {
  rope_params p;
  memset(&p, 0, sizeof p);
  p.dims = dims;
  p.traditional = traditional;
  p.has_offset = offset != NULL;
  p.base = base;
  p.scale = scale;
  am_arr *in[2] = {x, offset};
  return am_nn_make(AM_OP_ROPE, &p, in, 1 + p.has_offset, 1);
}
