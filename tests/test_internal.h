/*
 * test_internal.h — test helpers that need the library's internals.
 */
#ifndef AM_TEST_INTERNAL_H
#define AM_TEST_INTERNAL_H
#include "core/internal.h"
#include "test.h"

/* An evaluated array viewing x's buffer (x is evaluated first) with the
 * given shape, strides and offset in elements — for testing kernels on
 * non-contiguous inputs independently of the view ops. The caller owns the
 * result (scope rules as any op). */
static inline am_array t_view(am_array x, const int64_t *shape, int ndim,
                              const int64_t *strides, int64_t offset) {
  if (am_eval(&x, 1) != AM_OK) return x;
  am_meta m = x->m;
  m.ndim = ndim;
  memcpy(m.shape, shape, (size_t)ndim * sizeof *shape);
  am_arr *v = am_arr_alloc(&m);
  v->buf = x->buf;
  am_buffer_retain(x->buf);
  memcpy(v->strides, strides, (size_t)ndim * sizeof *strides);
  v->offset = offset;
  return am_scope_own(v);
}

/* The transpose (reversed axes) of x as a strided view. */
static inline am_array t_transposed(am_array x) {
  if (am_eval(&x, 1) != AM_OK) return x;
  int64_t sh[AM_MAX_DIMS], st[AM_MAX_DIMS];
  int n = x->m.ndim;
  for (int i = 0; i < n; i++) {
    sh[i] = x->m.shape[n - 1 - i];
    st[i] = x->strides[n - 1 - i];
  }
  return t_view(x, sh, n, st, x->offset);
}
#endif
