/* Samples for the reduction family: ranks, axes (negative ones too, or all
 * of them), keepdims and dtypes come from pseed; sizes from the rng. */
#include "samples.h"

/* A rank in [1, 4] and 1..3 distinct axes, each possibly negative; or,
 * one time in four, NULL (all axes). Returns naxes; *nd gets the rank. */
static int pick_axes(uint64_t pseed, int *nd, int *axes, bool *all) {
  *nd = (int)s_pick(pseed, 1, 1, 4);
  *all = s_pick(pseed, 2, 0, 3) == 0;
  int n = (int)s_pick(pseed, 3, 0, *nd < 3 ? *nd : 3), k = 0;
  int first = (int)s_pick(pseed, 4, 0, *nd - 1);
  for (int i = 0; i < n; i++) {
    int ax = (first + i) % *nd;
    axes[k++] = s_pick(pseed, 5 + i, 0, 1) ? ax - *nd : ax;
  }
  return k;
}

static am_array sample_red(t_rng *r, uint64_t pseed,
                           am_array (*fn)(am_array, const int *, int, bool)) {
  int nd, axes[4];
  bool all;
  int n = pick_axes(pseed, &nd, axes, &all);
  am_dtype dt = (am_dtype)s_pick(pseed, 9, 0, AM_F64);
  am_array x = s_rand(r, nd, 1, 5, dt, NULL);
  return fn(x, all ? NULL : axes, n, s_pick(pseed, 10, 0, 1));
}

#define RED_SAMPLE(name)                                                       \
  int sample_##name(t_rng *r, uint64_t pseed, am_array *outs) {                \
    outs[0] = sample_red(r, pseed, am_##name);                                 \
    return 1;                                                                  \
  }
RED_SAMPLE(sum)
RED_SAMPLE(mean)
RED_SAMPLE(prod)
RED_SAMPLE(max)
RED_SAMPLE(min)
RED_SAMPLE(logsumexp)
RED_SAMPLE(all)
RED_SAMPLE(any)

static am_array sample_arg(t_rng *r, uint64_t pseed,
                           am_array (*fn)(am_array, int, bool)) {
  int nd = (int)s_pick(pseed, 1, 1, 4);
  int axis = (int)s_pick(pseed, 2, -nd, nd - 1);
  am_dtype dt = (am_dtype)s_pick(pseed, 3, 0, AM_F64);
  am_array x = s_rand(r, nd, 1, 5, dt, NULL);
  return fn(x, axis, s_pick(pseed, 4, 0, 1));
}

int sample_argmax(t_rng *r, uint64_t pseed, am_array *outs) {
  outs[0] = sample_arg(r, pseed, am_argmax);
  return 1;
}

int sample_argmin(t_rng *r, uint64_t pseed, am_array *outs) {
  outs[0] = sample_arg(r, pseed, am_argmin);
  return 1;
}

int sample_cumsum(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 4);
  int axis = (int)s_pick(pseed, 2, -nd, nd - 1);
  am_dtype dt = (am_dtype)s_pick(pseed, 3, 0, AM_F64);
  am_array x = s_rand(r, nd, 0, 5, dt, NULL);
  outs[0] = am_cumsum(x, axis, s_pick(pseed, 4, 0, 1), s_pick(pseed, 5, 0, 1));
  return 1;
}
