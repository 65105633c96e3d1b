/* shape.h — the strided element copy and fill of the shape family
 * (shape.cu), C-callable. Also used by the indexing glue (slice_update,
 * the copy of a non-donated input). */
#ifndef AM_CUDA_SHAPE_H
#define AM_CUDA_SHAPE_H
#include "amorph.h"
#ifdef __cplusplus
extern "C" {
#endif
/** Most dims a copy takes after dropping size-1 dims and merging runs
 * contiguous on both sides (tile's [r0, s0, r1, s1, ..] view can have
 * up to 32 before that; each kept dim is >= 2, so more than 16 would
 * mean over 2^16 times the elements of any real output). */
#define AM_CUSHAPE_DIMS 16

/** dst[i . dst_st] = src[i . src_st] for every index i of `shape` (nd
 * dims, at most 2 * AM_MAX_DIMS + 1 before collapsing); strides in
 * elements, possibly 0 (broadcast source) or negative. Elements move as
 * es-byte words (es 1, 2, 4 or 8): exact for every dtype. src NULL:
 * fills with the es low bytes of `fill_bits` instead. src and dst must
 * not overlap. Queued on the thread's stream. */
am_status am_cushape_copy(int nd, const int64_t *shape, const void *src,
                          const int64_t *src_st, void *dst,
                          const int64_t *dst_st, int es, uint64_t fill_bits);
#ifdef __cplusplus
}
#endif
#endif
