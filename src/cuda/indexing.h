/* indexing.h — the gather, scatter and dynamic-window kernels of the
 * indexing family (indexing.cu), C-callable. Strides are in elements;
 * index and start arrays are read on the device, in any integer dtype. */
#ifndef AM_CUDA_INDEXING_H
#define AM_CUDA_INDEXING_H
#include "amorph.h"
#ifdef __cplusplus
extern "C" {
#endif
/** Most dims of the walks below (amorph's AM_MAX_DIMS). */
#define AM_CUIDX_DIMS 16

/** out (row-major over `shape`) [i] = x[i . xs + j * ax_stride], j the
 * index idx[i . is] (negative counts from the end of an axis of n_ax);
 * an index out of range writes zero bits. es: element size in bytes. */
am_status am_cuidx_gather(int nd, const int64_t *shape, void *out,
                          const void *x, const int64_t *xs, const void *idx,
                          am_dtype idx_dtype, const int64_t *is, int64_t n_ax,
                          int64_t ax_stride, int es);

/** For each position p of the outer `shape` (nd dims) and j in [0, L),
 * in that order of j: out[p . os + k * o_ax] = vals[p . vs + j * v_ax],
 * k = idx[p . is + j * i_ax] wrapped into [0, n_ax); out-of-range
 * indices write nothing. Later j win among duplicates. */
am_status am_cuidx_scatter(int nd, const int64_t *shape, void *out,
                           const int64_t *os, const void *idx,
                           am_dtype idx_dtype, const int64_t *is,
                           const void *vals, const int64_t *vs, int64_t L,
                           int64_t n_ax, int64_t o_ax, int64_t i_ax,
                           int64_t v_ax, int es);

/** A strided copy (as am_cushape_copy, es-byte elements) whose source
 * (on_dst false) or destination (on_dst true) is shifted by
 * sum_i clamp(start[i * start_stride], 0, hi[i]) * ax_st[i], i < nax:
 * the window position of dynamic_slice / dynamic_slice_update, read on
 * the device. */
am_status am_cuidx_dyn_copy(int nd, const int64_t *shape, const void *src,
                            const int64_t *ss, void *dst, const int64_t *ds,
                            int es, int nax, const int64_t *ax_st,
                            const int64_t *hi, const void *start,
                            am_dtype start_dtype, int64_t start_stride,
                            bool on_dst);
#ifdef __cplusplus
}
#endif
#endif
