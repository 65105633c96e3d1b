#include "samples.h"

int sample_astype(t_rng *r, uint64_t pseed, am_array *outs) {
  am_array x = s_rand(r, (int)s_pick(pseed, 1, 0, 4), 1, 6, AM_F32, NULL);
  outs[0] = am_astype(x, (am_dtype)s_pick(pseed, 2, 0, AM_F64));
  return 1;
}
