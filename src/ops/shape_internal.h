/*
 * shape_internal.h — what the shape-op files (shape.c, shape_copy.c)
 * share: the dtype-generic strided copy and small shape helpers.
 */
#ifndef AM_SHAPE_INTERNAL_H
#define AM_SHAPE_INTERNAL_H

#include "../core/internal.h"

/** Most dims a copy walk takes: tile views its output as [r0,s0,r1,s1,..]
 * and repeat as [.., n, r, ..]. */
#define AM_SH_COPY_MAX_DIMS (2 * AM_MAX_DIMS + 1)

/** Copies the `shape` block of elements of `es` bytes from src to dst.
 * Strides are in elements and may be 0 (broadcast source) or negative.
 * src and dst must not overlap. Multi-threaded when large; rows that are
 * contiguous on both sides are memcpy'd, a stride-0 source is a fill. */
void am_sh_copy(const int64_t *shape, int nd, const char *src,
                const int64_t *src_st, char *dst, const int64_t *dst_st,
                size_t es);

/** Copies x (any strides) into out's fresh contiguous buffer. */
am_status am_sh_copy_contig(const am_arr *x, am_arr *out);

/** AM_ERR_SHAPE (message set) when m's element count overflows int64 as
 * am_meta_size computes it (a running product). */
am_status am_sh_check_size(const am_meta *m);

/** NumPy's no-copy reshape: the strides (nst) under which x's data reads
 * as shape `to`, false when no view can (x non-empty). Shared with the
 * CUDA backend, whose reshape is the same view or a device copy. */
bool am_reshape_view_strides(const am_arr *x, const am_meta *to, int64_t *nst);

/** repeat's copy walk (nd + 1 dims): shape sh, source strides ss into
 * x, destination strides ds (row-major). Shared with the CUDA backend. */
void am_repeat_walk(const am_arr *x, int ax, int64_t repeats, int64_t *sh,
                    int64_t *ss, int64_t *ds);

/** "[2,-1,3]" into buf; returns buf. */
char *am_sh_dims_str(const int64_t *d, int n, char *buf, size_t len);

#endif
