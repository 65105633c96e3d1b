#include "samples.h"

int sample_full(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 4);
  int64_t shape[4];
  for (int i = 0; i < nd; i++)
    shape[i] = t_randint(r, 1, 5);
  outs[0] = am_full(shape, nd, 2.5, (am_dtype)s_pick(pseed, 2, 0, AM_F64));
  return 1;
}

int sample_arange(t_rng *r, uint64_t pseed, am_array *outs) {
  (void)r; /* no inputs: the shape comes from the params alone */
  outs[0] = am_arange(-3, (double)s_pick(pseed, 1, 0, 20), 0.5, AM_F32);
  return 1;
}

int sample_full_like(t_rng *r, uint64_t pseed, am_array *outs) {
  am_array x = s_rand(r, (int)s_pick(pseed, 1, 0, 4), 1, 5, AM_F32, NULL);
  outs[0] = am_full_like(x, -1, (am_dtype)s_pick(pseed, 2, 0, AM_DTYPE_COUNT));
  return 1;
}
