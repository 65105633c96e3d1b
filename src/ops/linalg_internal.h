/* linalg_internal.h — helpers linalg.c shares with conv.c. */
#ifndef AM_LINALG_INTERNAL_H
#define AM_LINALG_INTERNAL_H
#include "../core/internal.h"

/* Sets OpenBLAS's thread count to the pool's, once. */
void am_linalg_blas_init(void);
/* Threaded, SIMD dtype conversion of n contiguous elements. */
void am_linalg_convert(const void *src, am_dtype st, void *dst, am_dtype dt,
                       int64_t n);
/* am_op_make with linalg's dtype promotion of float operands. */
am_array am_linalg_make(int op, const void *params, am_arr **in, int n);
/* Whether the SIMD kernels are in use (tests can force portable ones). */
bool am_linalg_simd(void);
/* Pooled scratch memory; release *owner when done. */
void *am_linalg_scratch(size_t bytes, am_buffer **owner);
#endif
