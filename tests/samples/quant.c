/* Samples for the quantization family. Modes, bits, group sizes, dtypes
 * and ranks come from pseed; sizes (rows, group counts, batch dims, index
 * values) from the shape rng. */
#include "samples.h"

static const int affine_bits[] = {2, 3, 4, 5, 6, 8};
static const int affine_gs[] = {32, 64, 128};
static const am_dtype float_types[] = {AM_F16, AM_BF16, AM_F32};

typedef struct {
  am_quant_mode mode;
  int gs, bits;
} s_fmt;

static s_fmt pick_fmt(uint64_t pseed, int salt) {
  s_fmt f = {(am_quant_mode)s_pick(pseed, salt, 0, 3), 0, 0};
  if (f.mode == AM_QUANT_AFFINE) {
    f.bits = affine_bits[s_pick(pseed, salt + 1, 0, 5)];
    f.gs = affine_gs[s_pick(pseed, salt + 2, 0, 2)];
  } else {
    f.gs = f.mode == AM_QUANT_NVFP4 ? 16 : 32;
    f.bits = f.mode == AM_QUANT_MXFP8 ? 8 : 4;
  }
  return f;
}

static am_dtype pick_float(uint64_t pseed, int salt) {
  return float_types[s_pick(pseed, salt, 0, 2)];
}

/* Quantized w of shape lead + [rows, K]: q[0..2] = wq, scales, biases. */
static void make_q(t_rng *r, s_fmt f, const int64_t *lead, int nlead,
                   int64_t rows, int64_t k, am_dtype dt, am_array *q) {
  int64_t sh[AM_MAX_DIMS];
  for (int i = 0; i < nlead; i++)
    sh[i] = lead[i];
  sh[nlead] = rows;
  sh[nlead + 1] = k;
  am_array w = t_rand(r, sh, nlead + 2, dt, -2, 2);
  (void)am_quantize(w, f.gs, f.bits, f.mode, NULL, q);
}

int sample_quantize(t_rng *r, uint64_t pseed, am_array *outs) {
  s_fmt f = pick_fmt(pseed, 1);
  int nd = (int)s_pick(pseed, 4, 2, 4);
  int64_t sh[4];
  for (int i = 0; i < nd - 1; i++)
    sh[i] = t_randint(r, 1, 3);
  sh[nd - 1] = f.gs * t_randint(r, 1, 3);
  am_array w = t_rand(r, sh, nd, pick_float(pseed, 5), -3, 3);
  am_array g = NULL;
  if (f.mode == AM_QUANT_NVFP4 && s_pick(pseed, 6, 0, 1))
    g = am_scalar(0.5 + (double)s_pick(pseed, 7, 0, 4), AM_F32);
  (void)am_quantize(w, f.gs, f.bits, f.mode, g, outs);
  return f.mode == AM_QUANT_AFFINE ? 3 : 2;
}

int sample_dequantize(t_rng *r, uint64_t pseed, am_array *outs) {
  s_fmt f = pick_fmt(pseed, 1);
  int nlead = (int)s_pick(pseed, 4, 0, 2);
  int64_t lead[2];
  for (int i = 0; i < nlead; i++)
    lead[i] = t_randint(r, 1, 3);
  am_array q[3];
  make_q(r, f, lead, nlead, t_randint(r, 1, 4), f.gs * t_randint(r, 1, 3),
         pick_float(pseed, 5), q);
  am_array g = NULL;
  if (f.mode == AM_QUANT_NVFP4 && s_pick(pseed, 6, 0, 1))
    g = am_scalar(2.0, AM_F32);
  am_dtype dt = s_pick(pseed, 7, 0, 1) ? AM_DTYPE_COUNT : pick_float(pseed, 8);
  outs[0] = am_dequantize(q[0], q[1], q[2], f.gs, f.bits, f.mode, g, dt);
  return 1;
}

int sample_quantized_embedding(t_rng *r, uint64_t pseed, am_array *outs) {
  s_fmt f = pick_fmt(pseed, 1);
  am_array q[3];
  make_q(r, f, NULL, 0, t_randint(r, 3, 6), f.gs * t_randint(r, 1, 2),
         pick_float(pseed, 5), q);
  int ni = (int)s_pick(pseed, 6, 0, 3);
  int64_t ish[3];
  for (int i = 0; i < ni; i++)
    ish[i] = t_randint(r, 0, 3);
  static const am_dtype it[] = {AM_U8, AM_I8, AM_U32, AM_I32, AM_I64};
  am_dtype idt = it[s_pick(pseed, 7, 0, 4)];
  bool sign = idt == AM_I8 || idt == AM_I32 || idt == AM_I64;
  am_array idx = t_rand(r, ish, ni, idt, sign ? -3 : 0, 2);
  am_dtype dt = s_pick(pseed, 8, 0, 1) ? AM_DTYPE_COUNT : pick_float(pseed, 9);
  outs[0] =
      am_quantized_embedding(q[0], q[1], q[2], idx, f.gs, f.bits, f.mode, dt);
  return 1;
}

/* A batch pattern for two operands of `nb` batch dims: per dim, equal
 * sizes, or one side 1 (broadcast), chosen by pseed. */
static void batch_pair(t_rng *r, uint64_t pseed, int salt, int nb, int64_t *a,
                       int64_t *b) {
  for (int i = 0; i < nb; i++) {
    int64_t n = t_randint(r, 2, 3);
    int mode = (int)s_pick(pseed, salt + i, 0, 2);
    a[i] = mode == 1 ? 1 : n;
    b[i] = mode == 2 ? 1 : n;
  }
}

int sample_quantized_matmul(t_rng *r, uint64_t pseed, am_array *outs) {
  s_fmt f = pick_fmt(pseed, 1);
  bool tr = s_pick(pseed, 4, 0, 3) != 0;
  int xnd = (int)s_pick(pseed, 5, 1, 4), wnd = (int)s_pick(pseed, 6, 2, 3);
  int64_t xb[2] = {1, 1}, wb[2] = {1, 1};
  int xnb = xnd > 2 ? xnd - 2 : 0, wnb = wnd - 2;
  if (xnb && wnb) {
    int nb = xnb < wnb ? xnb : wnb;
    batch_pair(r, pseed, 10, nb, xb + (xnb - nb), wb + (wnb - nb));
    for (int i = 0; i < xnb - nb; i++)
      xb[i] = t_randint(r, 1, 3);
  } else {
    for (int i = 0; i < xnb; i++)
      xb[i] = t_randint(r, 1, 3);
  }
  int64_t n = tr ? t_randint(r, 1, 5) : f.gs * t_randint(r, 1, 2);
  int64_t k = tr ? f.gs * t_randint(r, 1, 2) : t_randint(r, 1, 5);
  am_array q[3];
  make_q(r, f, wb, wnb, tr ? n : k, tr ? k : n, pick_float(pseed, 7), q);
  int64_t xs[4];
  memcpy(xs, xb, (size_t)xnb * sizeof *xs);
  if (xnd >= 2) xs[xnd - 2] = t_randint(r, 1, 4);
  xs[xnd - 1] = k;
  am_dtype xdt = f.mode == AM_QUANT_AFFINE && s_pick(pseed, 8, 0, 4) == 0
                     ? AM_I32
                     : pick_float(pseed, 9);
  am_array x = t_rand(r, xs, xnd, xdt, -2, 2);
  outs[0] = am_quantized_matmul(x, q[0], q[1], q[2], tr, f.gs, f.bits, f.mode);
  return 1;
}

static am_array rand_index(t_rng *r, uint64_t pseed, int salt,
                           const int64_t *shape, int nd, int64_t n) {
  static const am_dtype it[] = {AM_U8, AM_I8, AM_U32, AM_I32, AM_I64};
  return t_rand(r, shape, nd, it[s_pick(pseed, salt, 0, 4)], 0,
                (double)(n - 1));
}

/* x's batch dims (xb, *nxb) and the index operands of a gather against
 * nw >= 2 matrices: rhs only (MoE: x [T, 1, ..], rhs [T, k]), lhs only
 * ([P, 1] against w's default arange), or both (broadcasting shapes). */
static void gather_setup(t_rng *r, uint64_t pseed, int64_t nw, int64_t *xb,
                         int *nxb, am_array *lhs, am_array *rhs) {
  int which = (int)s_pick(pseed, 20, 0, 2);
  *lhs = *rhs = NULL;
  if (which == 0) {
    int64_t is[2] = {t_randint(r, 1, 3), t_randint(r, 1, 3)};
    xb[0] = is[0];
    xb[1] = 1;
    *nxb = 2;
    *rhs = rand_index(r, pseed, 26, is, 2, nw);
  } else if (which == 1) {
    int64_t is[2] = {t_randint(r, 1, 3), 1};
    xb[0] = t_randint(r, 2, 3);
    *nxb = 1;
    *lhs = rand_index(r, pseed, 25, is, 2, 2);
  } else {
    int nd = (int)s_pick(pseed, 21, 0, 2);
    int64_t ls[2], rs[2];
    batch_pair(r, pseed, 22, nd, ls, rs);
    xb[0] = t_randint(r, 2, 3);
    *nxb = 1;
    *lhs = rand_index(r, pseed, 25, ls, nd, 2);
    *rhs = rand_index(r, pseed, 26, rs, nd, 2);
  }
}

int sample_gather_qmm(t_rng *r, uint64_t pseed, am_array *outs) {
  s_fmt f = pick_fmt(pseed, 1);
  bool tr = s_pick(pseed, 4, 0, 3) != 0;
  int64_t n = tr ? t_randint(r, 1, 5) : f.gs * t_randint(r, 1, 2);
  int64_t k = tr ? f.gs * t_randint(r, 1, 2) : t_randint(r, 1, 5);
  int64_t e = t_randint(r, 2, 4);
  am_array q[3];
  make_q(r, f, &e, 1, tr ? n : k, tr ? k : n, pick_float(pseed, 7), q);
  int64_t xs[4];
  int nxb;
  am_array lhs, rhs;
  gather_setup(r, pseed, e, xs, &nxb, &lhs, &rhs);
  xs[nxb] = t_randint(r, 1, 3);
  xs[nxb + 1] = k;
  am_array x = t_rand(r, xs, nxb + 2, pick_float(pseed, 9), -2, 2);
  outs[0] = am_gather_qmm(x, q[0], q[1], q[2], lhs, rhs, tr, f.gs, f.bits,
                          f.mode, s_pick(pseed, 30, 0, 1));
  return 1;
}

int sample_gather_mm(t_rng *r, uint64_t pseed, am_array *outs) {
  am_dtype dt = pick_float(pseed, 1);
  int64_t m = t_randint(r, 1, 3), k = t_randint(r, 1, 5),
          n = t_randint(r, 1, 5);
  int64_t e = t_randint(r, 2, 4), bs[3] = {e, k, n}, as[4];
  int nxb;
  am_array lhs, rhs;
  bool plain = s_pick(pseed, 31, 0, 3) == 0; /* batched matmul */
  if (plain) {
    as[0] = s_pick(pseed, 32, 0, 1) ? e : 1;
    nxb = 1;
    lhs = rhs = NULL;
  } else {
    gather_setup(r, pseed, e, as, &nxb, &lhs, &rhs);
  }
  as[nxb] = m;
  as[nxb + 1] = k;
  am_array a = t_rand(r, as, nxb + 2, dt, -2, 2),
           b = t_rand(r, bs, 3, dt, -2, 2);
  outs[0] = am_gather_mm(a, b, lhs, rhs, s_pick(pseed, 30, 0, 1));
  return 1;
}
