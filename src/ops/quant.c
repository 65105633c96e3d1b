/*
 * quant.c — quantize, dequantize and the quantized embedding lookup, in
 * MLX's formats (quant_formats.h), bit-exact with MLX 0.32 on CPU.
 *
 * quantize is one primitive with 2 outputs (wq, scales) or 3 (plus
 * biases, affine), by mode. Each kernel works row by row (a row is the
 * last axis: the groups never straddle rows), so any input layout costs
 * one row copy at most, and rows are spread over the thread pool.
 *
 * Exactness: affine quantize follows MLX's CPU kernel (float math on the
 * input values), and so does mx (float32); nvfp4 follows MLX's op
 * fallback, which computes in the input dtype, so every intermediate is
 * rounded to it (am_q_round).
 * dequantize follows MLX's op graph the same way: affine is
 * round(round(q*scale) + bias) in the scale/bias dtypes, the fp modes
 * multiply the element value by the decoded scale in the output dtype.
 */
#include "quant_formats.h"
#include "quant_params.h"

#include <stdlib.h>

/* ======================================================================
 *  Shared helpers
 * ====================================================================== */

/* Row r (over all axes but the last) of a: a pointer to its elements,
 * contiguous. When the last axis is strided the row is gathered into
 * `scratch` (room for shape[-1] elements). */
static const char *row_ptr(const am_arr *a, int64_t r, void *scratch) {
  int nd = a->m.ndim;
  size_t es = am_dtype_size(a->m.dtype);
  int64_t off = a->offset;
  for (int d = nd - 2; d >= 0; d--) {
    int64_t n = a->m.shape[d];
    off += (r % n) * a->strides[d];
    r /= n;
  }
  int64_t len = a->m.shape[nd - 1], st = a->strides[nd - 1];
  const char *base = (const char *)a->buf->data;
  if (st == 1 || len <= 1) return base + off * (int64_t)es;
  for (int64_t i = 0; i < len; i++)
    memcpy((char *)scratch + i * (int64_t)es,
           base + (off + i * st) * (int64_t)es, es);
  return scratch;
}

static int64_t n_rows(const am_meta *m) {
  int64_t r = 1;
  for (int d = 0; d < m->ndim - 1; d++)
    r *= m->shape[d];
  return r;
}

/* Grain (rows per task) so that a task handles at least ~16k elements. */
static int64_t row_grain(int64_t row_len) {
  int64_t g = 16384 / (row_len > 0 ? row_len : 1);
  return g > 0 ? g : 1;
}

/* The only value of a size-1 float32 array. */
static float scalar_f32(const am_arr *g) {
  return *(const float *)am_arr_ptr(g);
}

static am_status check_global(const am_meta *g, am_quant_mode mode) {
  if (mode != AM_QUANT_NVFP4)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "a global scale is only supported by mode nvfp4");
  if (am_meta_size(g) != 1)
    return AM_FAIL(AM_ERR_SHAPE, "the global scale must have one element");
  if (g->dtype != AM_F32)
    return AM_FAIL(AM_ERR_DTYPE, "the global scale must be float32, not %s",
                   am_dtype_name(g->dtype));
  return AM_OK;
}

/* Row scratch of the decoding kernels: a packed row (at most k bytes),
 * then a row of scales and one of biases (at most 4 bytes each). */
static size_t deq_scratch_bytes(int64_t k, int64_t ng) {
  return (size_t)k + 8 * (size_t)ng + 64;
}

/* ======================================================================
 *  quantize
 * ====================================================================== */

static am_status quantize_shapes(const am_meta *const *in, int n_in,
                                 const void *params, am_meta *out, int n_out) {
  const quantize_params *p = params;
  const am_meta *w = in[0];
  if (n_out != (p->mode == AM_QUANT_AFFINE ? 3 : 2))
    return AM_FAIL(AM_ERR_INTERNAL, "%d outputs for mode %s", n_out,
                   am_q_mode_name(p->mode));
  if (n_in != 1 + (int)p->has_global)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs", n_in);
  if (!am_q_is_half_or_f32(w->dtype))
    return AM_FAIL(AM_ERR_DTYPE,
                   "w must be float16, bfloat16 or float32, not %s",
                   am_dtype_name(w->dtype));
  if (w->ndim < 2)
    return AM_FAIL(AM_ERR_SHAPE, "w needs at least 2 dims, has %d", w->ndim);
  int64_t k = w->shape[w->ndim - 1];
  if (k % p->group_size)
    return AM_FAIL(AM_ERR_SHAPE,
                   "the last dim %lld is not divisible by the group size %d",
                   (long long)k, p->group_size);
  if (p->has_global) {
    am_status s = check_global(in[1], p->mode);
    if (s) return s;
  }
  out[0] = *w;
  out[0].dtype = AM_U32;
  out[0].shape[w->ndim - 1] = k * p->bits / 32;
  out[1] = *w;
  out[1].dtype = p->mode == AM_QUANT_AFFINE ? w->dtype : AM_U8;
  out[1].shape[w->ndim - 1] = k / p->group_size;
  if (n_out == 3) out[2] = out[1];
  return AM_OK;
}

typedef struct {
  const quantize_params *p;
  const am_arr *w;
  am_arr *const *out;
  float global;
  int64_t k;
  atomic_int oom; /* a task could not get its scratch */
} quantize_ctx;

static void quantize_rows(void *vc, int64_t r0, int64_t r1) {
  quantize_ctx *c = vc;
  const quantize_params *p = c->p;
  am_dtype t = c->w->m.dtype;
  int64_t k = c->k, ng = k / p->group_size;
  size_t es = am_dtype_size(t), wbytes = (size_t)(k * p->bits / 8);
  size_t sbytes = am_dtype_size(c->out[1]->m.dtype);
  float *wf = malloc((size_t)k * 4 + (size_t)k * es + (size_t)p->group_size);
  if (!wf) {
    atomic_store(&c->oom, 1);
    return;
  }
  char *raw = (char *)(wf + k);
  uint8_t *codes = (uint8_t *)raw + k * (int64_t)es;
  for (int64_t r = r0; r < r1; r++) {
    am_convert(row_ptr(c->w, r, raw), t, wf, AM_F32, k);
    uint8_t *wq = (uint8_t *)c->out[0]->buf->data + r * (int64_t)wbytes;
    char *sc = (char *)c->out[1]->buf->data + r * ng * (int64_t)sbytes;
    char *bi = p->mode == AM_QUANT_AFFINE
                   ? (char *)c->out[2]->buf->data + r * ng * (int64_t)sbytes
                   : NULL;
    memset(wq, 0, wbytes);
    for (int64_t g = 0; g < ng; g++) {
      const float *wg = wf + g * p->group_size;
      uint8_t sb;
      float s, b;
      switch (p->mode) {
      case AM_QUANT_AFFINE:
        am_q_affine_group(wg, p->group_size, p->bits, codes, &s, &b);
        am_q_store(sc + g * (int64_t)sbytes, t, s);
        am_q_store(bi + g * (int64_t)sbytes, t, b);
        break;
      case AM_QUANT_NVFP4:
        am_q_nv_group(wg, p->group_size, t, p->has_global, c->global, codes,
                      &sb);
        ((uint8_t *)sc)[g] = sb;
        break;
      default:
        am_q_mx_group(wg, p->group_size, p->mode == AM_QUANT_MXFP8, codes, &sb);
        ((uint8_t *)sc)[g] = sb;
      }
      am_q_pack(wq + g * p->group_size * p->bits / 8, codes, p->group_size,
                p->bits);
    }
  }
  free(wf);
}

static am_status quantize_eval(am_arr *const *in, int n_in, am_arr *const *out,
                               int n_out, const void *params) {
  const quantize_params *p = params;
  for (int j = 0; j < n_out; j++) {
    am_status s = am_out_alloc(out[j]);
    if (s) return s;
  }
  quantize_ctx c = {
      .p = p, .w = in[0], .out = out, .k = in[0]->m.shape[in[0]->m.ndim - 1]};
  if (p->has_global) c.global = scalar_f32(in[1]);
  int64_t rows = n_rows(&in[0]->m);
  if (!rows || !c.k) return AM_OK;
  am_parallel_for(rows, row_grain(c.k), quantize_rows, &c);
  return atomic_load(&c.oom) ? AM_FAIL(AM_ERR_OOM, "out of memory") : AM_OK;
}

const am_prim am_prim_quantize = {
    .name = "quantize",
    .n_in = -1,
    .n_out = -1,
    .params_size = sizeof(quantize_params),
    .output_shapes = quantize_shapes,
    .eval_cpu = quantize_eval,
};

am_status am_quantize(am_array w, int group_size, int bits, am_quant_mode mode,
                      am_array global_scale, am_array *outs) {
  if (!outs) return am_set_error(AM_ERR_INVALID_ARG, "quantize: outs is NULL");
  int n_out = mode == AM_QUANT_AFFINE ? 3 : 2;
  outs[2] = NULL;
  quantize_params p;
  memset(&p, 0, sizeof p);
  am_status s = AM_OK;
  if (!w) s = AM_FAIL(AM_ERR_INVALID_ARG, "w is NULL");
  if (!s) s = am_q_resolve(mode, &group_size, &bits);
  if (s) {
    char msg[512];
    snprintf(msg, sizeof msg, "quantize: %s", am_last_error());
    for (int j = 0; j < n_out; j++)
      outs[j] = am_error_array(s, "%s", msg);
    return s;
  }
  p.mode = mode;
  p.group_size = group_size;
  p.bits = bits;
  p.has_global = global_scale != NULL;
  am_arr *in[2] = {w, global_scale};
  return am_op_make_n(AM_OP_QUANTIZE, &p, in, 1 + (int)p.has_global, n_out,
                      outs);
}

/* ======================================================================
 *  Exact row decoding (dequantize, embedding)
 * ====================================================================== */

typedef struct {
  am_quant_mode mode;
  int group_size, bits;
  am_dtype sdt, bdt, sbdt; /* scales, biases, their promotion (affine) */
  am_dtype odt;            /* output dtype                             */
  bool has_global;
  float global;
} deq_fmt;

/* Decodes one packed row of k elements into `out` (dtype odt), following
 * MLX's dequantize graph (see the file comment). */
static void deq_row(const deq_fmt *f, const uint8_t *w, const char *s,
                    const char *b, int64_t k, char *out) {
  size_t oes = am_dtype_size(f->odt);
  size_t ses = am_dtype_size(f->sdt), bes = am_dtype_size(f->bdt);
  int gs = f->group_size;
  float gsc = f->has_global ? f->global / (448.0f * 6.0f) : 1.0f;
  for (int64_t g = 0; g * gs < k; g++) {
    float sc, bi = 0;
    if (f->mode == AM_QUANT_AFFINE) {
      sc = am_q_load(s + g * (int64_t)ses, f->sdt);
      bi = am_q_load(b + g * (int64_t)bes, f->bdt);
    } else if (f->mode == AM_QUANT_NVFP4) {
      uint8_t sb = ((const uint8_t *)s)[g];
      sc = f->has_global ? am_q_fp8_to_f32(sb) * gsc
                         : am_q_round(am_q_fp8_to_f32(sb), f->odt);
    } else {
      uint8_t sb = ((const uint8_t *)s)[g];
      sc = am_q_round(exp2f((float)sb - 127.0f), f->odt);
    }
    for (int j = 0; j < gs; j++) {
      int64_t i = g * gs + j;
      unsigned q = am_q_code(w, i, f->bits);
      float v;
      if (f->mode == AM_QUANT_AFFINE) {
        v = am_q_round((float)q * sc, f->sdt);
        v = am_q_round(v + bi, f->sbdt);
      } else if (f->mode == AM_QUANT_MXFP8) {
        v = am_q_fp8_to_f32((uint8_t)q) * sc;
      } else {
        v = am_q_fp4_lut[q] * sc;
      }
      am_q_store(out + i * (int64_t)oes, f->odt, v);
    }
  }
}

/* Checks scales (and biases) against wq for the format; `what` names the
 * operand holding the rows ("w" or "the table"). Writes the element count
 * of a row to *k and the default output dtype to *def. */
static am_status check_qparts(const am_meta *w, const am_meta *sc,
                              const am_meta *bi, am_quant_mode mode, int gs,
                              int bits, int64_t *k, am_dtype *def) {
  if (w->dtype != AM_U32)
    return AM_FAIL(AM_ERR_DTYPE, "the packed weights must be uint32, not %s",
                   am_dtype_name(w->dtype));
  if (w->ndim < 2)
    return AM_FAIL(AM_ERR_SHAPE, "the packed weights need at least 2 dims");
  if (sc->ndim != w->ndim)
    return AM_FAIL(AM_ERR_SHAPE, "scales must have the weights' rank");
  for (int d = 0; d < w->ndim - 1; d++)
    if (sc->shape[d] != w->shape[d])
      return AM_FAIL(AM_ERR_SHAPE,
                     "scales must match the weights on every dim but the "
                     "last");
  if (mode == AM_QUANT_AFFINE) {
    if (!bi) return AM_FAIL(AM_ERR_INVALID_ARG, "affine mode needs biases");
    if (!am_q_is_half_or_f32(sc->dtype) || !am_q_is_half_or_f32(bi->dtype))
      return AM_FAIL(AM_ERR_DTYPE,
                     "scales and biases must be float16, bfloat16 or "
                     "float32 (got %s, %s)",
                     am_dtype_name(sc->dtype), am_dtype_name(bi->dtype));
    if (bi->ndim != sc->ndim)
      return AM_FAIL(AM_ERR_SHAPE, "scales and biases must have one shape");
    for (int d = 0; d < sc->ndim; d++)
      if (bi->shape[d] != sc->shape[d])
        return AM_FAIL(AM_ERR_SHAPE, "scales and biases must have one shape");
    *def = am_result_type(sc->dtype, bi->dtype);
  } else {
    if (bi)
      return AM_FAIL(AM_ERR_INVALID_ARG, "mode %s takes no biases",
                     am_q_mode_name(mode));
    if (sc->dtype != AM_U8)
      return AM_FAIL(AM_ERR_DTYPE, "mode %s needs uint8 scales, not %s",
                     am_q_mode_name(mode), am_dtype_name(sc->dtype));
    *def = AM_BF16;
  }
  int64_t kp = w->shape[w->ndim - 1];
  *k = kp * 32 / bits;
  if (*k != sc->shape[sc->ndim - 1] * gs)
    return AM_FAIL(AM_ERR_SHAPE,
                   "%lld packed words of %d bits hold %lld elements, but "
                   "%lld scales of groups of %d cover %lld",
                   (long long)kp, bits, (long long)*k,
                   (long long)sc->shape[sc->ndim - 1], gs,
                   (long long)(sc->shape[sc->ndim - 1] * gs));
  return AM_OK;
}

static am_status check_out_dtype(am_dtype dt) {
  if (dt != AM_DTYPE_COUNT && !am_q_is_half_or_f32(dt))
    return AM_FAIL(AM_ERR_DTYPE,
                   "the output dtype must be float16, bfloat16 or float32, "
                   "not %s",
                   (unsigned)dt < AM_DTYPE_COUNT ? am_dtype_name(dt) : "?");
  return AM_OK;
}

static deq_fmt make_deq_fmt(am_quant_mode mode, int gs, int bits,
                            const am_arr *sc, const am_arr *bi, am_dtype odt) {
  deq_fmt f = {.mode = mode,
               .group_size = gs,
               .bits = bits,
               .sdt = sc->m.dtype,
               .bdt = bi ? bi->m.dtype : AM_U8,
               .odt = odt};
  f.sbdt = bi ? am_result_type(f.sdt, f.bdt) : AM_F32;
  return f;
}

/* ======================================================================
 *  dequantize
 * ====================================================================== */

static am_status dequantize_shapes(const am_meta *const *in, int n_in,
                                   const void *params, am_meta *out,
                                   int n_out) {
  const dequantize_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  if (n_in != 2 + (int)affine + (int)p->has_global)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs", n_in);
  int64_t k;
  am_dtype def;
  am_status s = check_qparts(in[0], in[1], affine ? in[2] : NULL, p->mode,
                             p->group_size, p->bits, &k, &def);
  if (!s) s = check_out_dtype(p->dtype);
  if (!s && p->has_global) s = check_global(in[n_in - 1], p->mode);
  if (s) return s;
  out[0] = *in[0];
  out[0].shape[out[0].ndim - 1] = k;
  out[0].dtype = p->dtype == AM_DTYPE_COUNT ? def : p->dtype;
  return AM_OK;
}

/* Output row i is weight row idx[i] (the embedding lookup), or row i
 * when idx is NULL (dequantize). */
typedef struct {
  deq_fmt f;
  const am_arr *w, *s, *b;
  const int64_t *idx;
  am_arr *out;
  int64_t k;
  atomic_int oom;
} dequantize_ctx;

static void dequantize_rows(void *vc, int64_t i0, int64_t i1) {
  dequantize_ctx *c = vc;
  int64_t k = c->k, ng = k / c->f.group_size;
  size_t oes = am_dtype_size(c->f.odt);
  char *tmp = malloc(deq_scratch_bytes(k, ng));
  if (!tmp) {
    atomic_store(&c->oom, 1);
    return;
  }
  for (int64_t i = i0; i < i1; i++) {
    int64_t r = c->idx ? c->idx[i] : i;
    const uint8_t *w = (const uint8_t *)row_ptr(c->w, r, tmp);
    const char *s = row_ptr(c->s, r, tmp + k);
    const char *b = c->b ? row_ptr(c->b, r, tmp + k + 4 * ng) : NULL;
    deq_row(&c->f, w, s, b, k,
            (char *)c->out->buf->data + i * k * (int64_t)oes);
  }
  free(tmp);
}

static am_status dequantize_eval(am_arr *const *in, int n_in,
                                 am_arr *const *out, int n_out,
                                 const void *params) {
  const dequantize_params *p = params;
  am_status s = am_out_alloc(out[0]);
  if (s) return s;
  bool affine = p->mode == AM_QUANT_AFFINE;
  dequantize_ctx c = {.f = make_deq_fmt(p->mode, p->group_size, p->bits, in[1],
                                        affine ? in[2] : NULL, out[0]->m.dtype),
                      .w = in[0],
                      .s = in[1],
                      .b = affine ? in[2] : NULL,
                      .out = out[0],
                      .k = out[0]->m.shape[out[0]->m.ndim - 1]};
  if (p->has_global) {
    c.f.has_global = true;
    c.f.global = scalar_f32(in[n_in - 1]);
  }
  int64_t rows = n_rows(&out[0]->m);
  if (!rows || !c.k) return AM_OK;
  am_parallel_for(rows, row_grain(c.k), dequantize_rows, &c);
  return atomic_load(&c.oom) ? AM_FAIL(AM_ERR_OOM, "out of memory") : AM_OK;
}

const am_prim am_prim_dequantize = {
    .name = "dequantize",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(dequantize_params),
    .output_shapes = dequantize_shapes,
    .eval_cpu = dequantize_eval,
};

am_array am_dequantize(am_array wq, am_array scales, am_array biases,
                       int group_size, int bits, am_quant_mode mode,
                       am_array global_scale, am_dtype dtype) {
  if (!wq || !scales)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "dequantize: wq and scales must not be NULL");
  am_status s = am_q_resolve(mode, &group_size, &bits);
  if (s) return am_error_array(s, "dequantize: %s", am_last_error());
  if ((mode == AM_QUANT_AFFINE) != (biases != NULL))
    return am_error_array(AM_ERR_INVALID_ARG, "dequantize: mode %s %s biases",
                          am_q_mode_name(mode), biases ? "takes no" : "needs");
  if ((unsigned)dtype > AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "dequantize: invalid dtype %d",
                          (int)dtype);
  dequantize_params p;
  memset(&p, 0, sizeof p);
  p.mode = mode;
  p.group_size = group_size;
  p.bits = bits;
  p.has_global = global_scale != NULL;
  p.dtype = dtype;
  am_arr *in[4];
  int n = 0;
  in[n++] = wq;
  in[n++] = scales;
  if (biases) in[n++] = biases;
  if (global_scale) in[n++] = global_scale;
  return am_op_make(AM_OP_DEQUANTIZE, &p, in, n);
}

/* ======================================================================
 *  quantized_embedding: dequantized rows of a quantized table
 * ====================================================================== */

static am_status qembed_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  const qembed_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  if (n_in != 3 + (int)affine)
    return AM_FAIL(AM_ERR_INTERNAL, "%d inputs", n_in);
  const am_meta *idx = in[n_in - 1];
  if (in[0]->ndim != 2)
    return AM_FAIL(AM_ERR_SHAPE, "the table must have 2 dims, has %d",
                   in[0]->ndim);
  int64_t k;
  am_dtype def;
  am_status s = check_qparts(in[0], in[1], affine ? in[2] : NULL, p->mode,
                             p->group_size, p->bits, &k, &def);
  if (!s) s = check_out_dtype(p->dtype);
  if (s) return s;
  if (!am_dtype_is_int(idx->dtype))
    return AM_FAIL(AM_ERR_DTYPE, "indices must have an integer dtype, not %s",
                   am_dtype_name(idx->dtype));
  if (idx->ndim + 1 > AM_MAX_DIMS)
    return AM_FAIL(AM_ERR_SHAPE, "too many dims");
  out[0] = *idx;
  out[0].ndim = idx->ndim + 1;
  out[0].shape[idx->ndim] = k;
  out[0].dtype = p->dtype == AM_DTYPE_COUNT ? def : p->dtype;
  return AM_OK;
}

static am_status qembed_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  const qembed_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  const am_arr *ia = in[n_in - 1];
  int64_t n = ia->size, v = in[0]->m.shape[0];
  int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
  if (!idx) return AM_FAIL(AM_ERR_OOM, "out of memory");
  if (n) am_copy_to_contig(ia, idx, AM_I64);
  for (int64_t i = 0; i < n; i++) {
    int64_t r = idx[i] < 0 ? idx[i] + v : idx[i];
    if (r < 0 || r >= v) {
      am_status s = AM_FAIL(AM_ERR_INVALID_ARG,
                            "index %lld out of range for a table of %lld rows",
                            (long long)idx[i], (long long)v);
      free(idx);
      return s;
    }
    idx[i] = r;
  }
  am_status s = am_out_alloc(out[0]);
  if (s) {
    free(idx);
    return s;
  }
  dequantize_ctx c = {.f = make_deq_fmt(p->mode, p->group_size, p->bits, in[1],
                                        affine ? in[2] : NULL, out[0]->m.dtype),
                      .w = in[0],
                      .s = in[1],
                      .b = affine ? in[2] : NULL,
                      .idx = idx,
                      .out = out[0],
                      .k = out[0]->m.shape[out[0]->m.ndim - 1]};
  if (n && c.k) am_parallel_for(n, row_grain(c.k), dequantize_rows, &c);
  free(idx);
  return atomic_load(&c.oom) ? AM_FAIL(AM_ERR_OOM, "out of memory") : AM_OK;
}

const am_prim am_prim_quantized_embedding = {
    .name = "quantized_embedding",
    .n_in = -1,
    .n_out = 1,
    .params_size = sizeof(qembed_params),
    .output_shapes = qembed_shapes,
    .eval_cpu = qembed_eval,
};

am_array am_quantized_embedding(am_array wq, am_array scales, am_array biases,
                                am_array indices, int group_size, int bits,
                                am_quant_mode mode, am_dtype dtype) {
  if (!wq || !scales || !indices)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "quantized_embedding: wq, scales and indices must "
                          "not be NULL");
  am_status s = am_q_resolve(mode, &group_size, &bits);
  if (s) return am_error_array(s, "quantized_embedding: %s", am_last_error());
  if ((mode == AM_QUANT_AFFINE) != (biases != NULL))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "quantized_embedding: mode %s %s biases",
                          am_q_mode_name(mode), biases ? "takes no" : "needs");
  if ((unsigned)dtype > AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "quantized_embedding: invalid dtype %d",
                          (int)dtype);
  qembed_params p;
  memset(&p, 0, sizeof p);
  p.mode = mode;
  p.group_size = group_size;
  p.bits = bits;
  p.dtype = dtype;
  am_arr *in[4];
  int n = 0;
  in[n++] = wq;
  in[n++] = scales;
  if (biases) in[n++] = biases;
  in[n++] = indices;
  return am_op_make(AM_OP_QUANTIZED_EMBEDDING, &p, in, n);
}
