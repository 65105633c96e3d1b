#include "compile/fused.h"
#include "samples.h"

/* exp(a + b) * a, with b broadcast along the rows, optionally rounded to
 * bfloat16 on the way out. */
int sample_fused(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3);
  int64_t shape[3];
  am_array a = s_rand(r, nd, 1, 5, AM_F32, shape);
  am_array b = t_rand(r, shape + nd - 1, 1, AM_F32, -1, 1);
  am_fprog *p = am_fprog_new();
  p->n_in = 2;
  p->in_dtype[0] = p->in_dtype[1] = AM_F32;
  p->ins[0] = (am_fins){AM_OP_ADD, 0, 1, AM_F32};
  p->ins[1] = (am_fins){AM_OP_EXP, 2, -1, AM_F32};
  p->ins[2] = (am_fins){AM_OP_MUL, 3, 0, AM_F32};
  p->n_ops = 3;
  p->out_dtype = AM_F32;
  if (s_pick(pseed, 2, 0, 1)) {
    p->ins[3] = (am_fins){AM_OP_ASTYPE, 4, -1, AM_BF16};
    p->n_ops = 4;
    p->out_dtype = AM_BF16;
  }
  am_fused_params fp = {p};
  am_arr *in[2] = {a, b};
  outs[0] = am_op_make(AM_OP_FUSED, &fp, in, 2);
  am_fprog_release(p); /* the node holds its own reference */
  return 1;
}
