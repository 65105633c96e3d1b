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
