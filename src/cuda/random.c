/* random.c — CUDA glue of random_bits / random_like (src/ops/random.c):
 * the same Threefry words, computed by random.cu on the device. */
#include "random.h"
#include "ops.h"

#include "../ops/random_params.h"

static am_status random_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_out, (void)params;
  am_arr *o = out[0];
  /* random_like never reads `like`: its buffer may hold the output. */
  am_status s = n_in > 1 ? am_out_alloc_donate(o, &in[1], 1) : am_out_alloc(o);
  if (s || !o->size) return s;
  const am_arr *key = in[0];
  return am_cuda_launch_random(am_arr_ptr(key), key->strides[0], am_arr_ptr(o),
                               o->m.dtype, o->size);
}

void am_cuda_register_random(am_backend *b);
void am_cuda_register_random(am_backend *b) {
  b->eval[AM_OP_RANDOM_BITS] = random_cuda;
  b->eval[AM_OP_RANDOM_LIKE] = random_cuda;
}
