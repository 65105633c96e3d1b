/*
 * elementwise_simd.h — what elementwise.c and the SIMD kernels share.
 *
 * Every elementwise kernel, portable or SIMD, has one signature: it
 * computes n outputs into the contiguous `out` from inputs in[k], each
 * either contiguous (step[k] == 1) or one value broadcast (step[k] == 0).
 * `out` may be the same buffer as an input (donation): kernels read an
 * element before writing the same position, never a later one.
 */
#ifndef AM_ELEMENTWISE_SIMD_H
#define AM_ELEMENTWISE_SIMD_H

#include "../core/internal.h"

typedef void (*am_ew_kernel)(int64_t n, const void *const *in,
                             const int64_t *step, void *out);

/** The fastest float32 SIMD kernel for elementwise op `op` (an AM_OP_*
 * value) on this CPU, or NULL when there is none (the portable kernel in
 * elementwise.c runs then). `stream`: the variant with non-temporal
 * stores, for outputs larger than the cache that alias no input. */
am_ew_kernel am_ew_simd_f32(int op, bool stream);

/** The contiguous float32 kernel of elementwise op `op` with a float32
 * result (the best one for this CPU), or NULL when the op has none (bool
 * results, non-elementwise ops). Fused groups run these on tiles. */
am_ew_kernel am_ew_f32_kernel(int op);

#endif /* AM_ELEMENTWISE_SIMD_H */
