/* Samples for the sort family: every dtype, every axis (also negative). */
#include "samples.h"

static am_array sort_input(t_rng *r, uint64_t pseed, int *axis, int64_t lo) {
  int nd = (int)s_pick(pseed, 1, 1, 3);
  *axis = (int)s_pick(pseed, 2, -nd, nd - 1);
  return s_rand(r, nd, lo, 6, (am_dtype)s_pick(pseed, 3, 0, AM_F64), NULL);
}

int sample_sort(t_rng *r, uint64_t pseed, am_array *outs) {
  int axis;
  am_array x = sort_input(r, pseed, &axis, 0);
  outs[0] = am_sort(x, axis);
  return 1;
}

int sample_argsort(t_rng *r, uint64_t pseed, am_array *outs) {
  int axis;
  am_array x = sort_input(r, pseed, &axis, 0);
  outs[0] = am_argsort(x, axis);
  return 1;
}

int sample_argpartition(t_rng *r, uint64_t pseed, am_array *outs) {
  int axis;
  am_array x = sort_input(r, pseed, &axis, 3);
  outs[0] = am_argpartition(x, (int)s_pick(pseed, 4, -3, 2), axis);
  return 1;
}

int sample_topk(t_rng *r, uint64_t pseed, am_array *outs) {
  int axis;
  am_array x = sort_input(r, pseed, &axis, 3);
  outs[0] = am_topk(x, (int)s_pick(pseed, 4, 0, 3), axis);
  return 1;
}
