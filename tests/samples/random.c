/* Samples for the random family: literal shapes of every rank (bits and
 * uniform dtypes) and the shape-relative uniform_like. */
#include "samples.h"

static am_array sample_key(uint64_t pseed) {
  uint32_t k[2] = {(uint32_t)s_pick(pseed, 9, 0, 1000),
                   (uint32_t)s_pick(pseed, 10, 0, 1000)};
  return am_array_new_data(k, (int64_t[]){2}, 1, AM_U32);
}

static const am_dtype uniform_dtypes[3] = {AM_F32, AM_F16, AM_BF16};

int sample_random_bits(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 4);
  int64_t shape[4];
  for (int i = 0; i < nd; i++)
    shape[i] = t_randint(r, 0, 7);
  int kind = (int)s_pick(pseed, 2, 0, 3);
  am_array key = sample_key(pseed);
  outs[0] = kind == 3 ? am_random_bits(key, shape, nd)
                      : am_random_uniform(key, shape, nd, uniform_dtypes[kind]);
  return 1;
}

int sample_random_like(t_rng *r, uint64_t pseed, am_array *outs) {
  am_dtype dt = (am_dtype)s_pick(pseed, 2, 0, AM_F64);
  am_array like = s_rand(r, (int)s_pick(pseed, 1, 0, 4), 0, 9, dt, NULL);
  outs[0] = am_random_uniform_like(sample_key(pseed), like,
                                   uniform_dtypes[s_pick(pseed, 3, 0, 2)]);
  return 1;
}
