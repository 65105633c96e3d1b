/* reduce.h — launchers of the reduction kernels (reduce.cu): reductions
 * over a set of axes and cumulative sums, C-callable, no amorph internals.
 * Geometry comes pre-collapsed from the glue (reduce.c): strides are in
 * elements and may be negative or zero. */
#ifndef AM_CUDA_REDUCE_H
#define AM_CUDA_REDUCE_H
#include "amorph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AM_CUDA_RED_DIMS 16 /* AM_MAX_DIMS */

/* Which reduction (as reduce.c's RK_*). */
enum {
  AM_CUDA_RED_SUM,
  AM_CUDA_RED_MEAN,
  AM_CUDA_RED_PROD,
  AM_CUDA_RED_MAX,
  AM_CUDA_RED_MIN,
  AM_CUDA_RED_LSE,
  AM_CUDA_RED_ALL,
  AM_CUDA_RED_ANY,
  AM_CUDA_RED_ARGMAX,
  AM_CUDA_RED_ARGMIN,
  AM_CUDA_RED_COUNT
};

/* Output o (row-major over the kept dims) folds the input elements at
 * offset kept(o) + red(r) for r < rtotal, r row-major over the reduced
 * dims (for argmax/argmin: the index reported). */
typedef struct am_cuda_red_geom {
  int nk, nr;
  int64_t kshape[AM_CUDA_RED_DIMS], kstride[AM_CUDA_RED_DIMS];
  int64_t rshape[AM_CUDA_RED_DIMS], rstride[AM_CUDA_RED_DIMS];
  int64_t nout, rtotal;
} am_cuda_red_geom;

/** out (dtype ot, contiguous, g->nout elements) = reduction `kind` of x
 * (dtype xt) with the CPU's accumulation types and output conversions. */
am_status am_cuda_launch_reduce(int kind, const void *x, am_dtype xt, void *out,
                                am_dtype ot, const am_cuda_red_geom *g);

/* Lanes: the 1-d runs along one axis at each index of the other dims
 * (shape[0..nd)); operand k starts a lane at sum idx[d] * st[k][d] and
 * steps ast[k] along it. Operands: 0 the output, 1 x, 2 a second input. */
typedef struct am_cuda_lanes {
  int nd;
  int64_t shape[AM_CUDA_RED_DIMS];
  int64_t st[3][AM_CUDA_RED_DIMS];
  int64_t ast[3];
  int64_t len, nlanes;
} am_cuda_lanes;

/** Cumulative sum of x (dtype xt) along the lanes into out (dtype ot):
 * integers modulo 2^64 wrapped on store, floats in double. */
am_status am_cuda_launch_cumsum(const void *x, am_dtype xt, void *out,
                                am_dtype ot, const am_cuda_lanes *l,
                                int reverse, int inclusive);

#ifdef __cplusplus
}
#endif
#endif
