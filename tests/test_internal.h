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
/* x read back in its own dtype, exactly (malloc'd; the caller frees). */
static inline void *t_read_native(am_array x) {
  size_t es = am_dtype_size(am_array_dtype(x));
  int64_t n = am_array_size(x);
  void *v = malloc((size_t)(n ? n : 1) * es);
  if (am_array_read(x, am_array_dtype(x), v, n) != AM_OK)
    CHECK(0, "read failed: %s", am_last_error());
  return v;
}

/* Same values as x, every element two slots apart starting at slot 1: a
 * strided view in which no dim is contiguous. */
static inline am_array t_spread(am_array x) {
  int nd = am_array_ndim(x);
  int64_t n = am_array_size(x), m = 2 * n + 1, st[AM_MAX_DIMS];
  size_t es = am_dtype_size(am_array_dtype(x));
  char *v = t_read_native(x), *t = calloc((size_t)m, es);
  for (int64_t i = 0; i < n; i++)
    memcpy(t + (1 + 2 * i) * (int64_t)es, v + i * (int64_t)es, es);
  am_array r = am_array_new_data(t, &m, 1, am_array_dtype(x));
  free(v);
  free(t);
  am_contig_strides(am_array_shape(x), nd, st);
  for (int d = 0; d < nd; d++)
    st[d] *= 2;
  return t_view(r, am_array_shape(x), nd, st, 1);
}

/* Same values as x, stored with every axis reversed (column-major) and
 * viewed back: a transposed layout. */
static inline am_array t_reversed_layout(am_array x) {
  int nd = am_array_ndim(x);
  if (nd < 2) return x;
  am_array xt = t_transposed(x);
  void *v = t_read_native(xt);
  am_array c = am_array_new_data(v, am_array_shape(xt), nd, am_array_dtype(x));
  free(v);
  return t_transposed(c);
}
#endif
