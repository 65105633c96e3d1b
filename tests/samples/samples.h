/*
 * samples.h — one sample builder per primitive, for the generic shape test
 * (tests/test_shapes.c). sample_<name>(shape_rng, pseed, outs) records one
 * call of the primitive <name> on inputs whose *shapes* come from
 * shape_rng and whose every other choice (axes, params, dtypes, ranks)
 * comes from pseed, writes the node's outputs to outs[] and returns how
 * many. Two calls with the same pseed must differ only in input shapes
 * (same ranks), which is exactly what a shapeless replay sees.
 * A primitive without a sample fails to link the test.
 */
#ifndef AM_SAMPLES_H
#define AM_SAMPLES_H
#include "../test.h"

#define AM_OP(E, n)                                                            \
  int sample_##n(t_rng *shape_rng, uint64_t pseed, am_array *outs);
#include "../../src/ops/ops.def"
#undef AM_OP

/* Deterministic choice from pseed: an integer in [lo, hi]. */
static inline int64_t s_pick(uint64_t pseed, int salt, int64_t lo, int64_t hi) {
  t_rng r = {pseed * 1000003u + (uint64_t)salt * 7919u + 17u};
  t_next(&r);
  return t_randint(&r, lo, hi);
}

/* A random float32 array with ndim dims, each in [lo, hi] from the rng. */
static inline am_array s_rand(t_rng *r, int ndim, int64_t lo, int64_t hi,
                              am_dtype dt, int64_t *shape_out) {
  int64_t shape[AM_MAX_DIMS];
  for (int i = 0; i < ndim; i++)
    shape[i] = t_randint(r, lo, hi);
  if (shape_out) memcpy(shape_out, shape, (size_t)ndim * sizeof *shape);
  return t_rand(r, shape, ndim, dt, -2, 2);
}
#endif
