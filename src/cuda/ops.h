/*
 * ops.h — what the CUDA backend's per-family kernel files share.
 *
 * Layout: each family of primitives (src/ops/<family>.def) has
 *   src/cuda/<family>.c   the glue, in C: reads an op's params and its
 *                         arrays (shapes, strides, dtypes, device
 *                         pointers), allocates outputs, calls launchers;
 *                         ends with am_cuda_register_<family>(), which
 *                         fills the backend's table entry of each op;
 *   src/cuda/<family>.cu  the kernels and their C-callable launchers,
 *                         declared in src/cuda/<family>.h (no amorph
 *                         internals: .cu files are C++ and see plain
 *                         pointers, sizes and am_dtype only).
 * Glue functions have am_prim.eval_cpu's signature and contract (the
 * same params struct; src/ops/<family>_params.h shares it), with every
 * input and output buffer on the device: am_out_alloc / _donate /
 * am_out_view work as on the CPU and allocate device memory here.
 * Kernels are queued on the calling thread's stream (am_cuda_stream())
 * and never synchronize, allocate with cudaMalloc, or read device data
 * on the host: a compiled step is captured as a CUDA graph, where any of
 * those would break the capture. Errors: a status and am_set_error text
 * naming what failed (am_cuda_check for CUDA calls).
 */
#ifndef AM_CUDA_OPS_H
#define AM_CUDA_OPS_H

#include "../core/internal.h"
#include "cuda.h"
#include "cuda_internal.h"

/* ----- registration: one per family file ----- */
void am_cuda_register_elementwise(am_backend *b); /* + fused, activations */
void am_cuda_register_creation(am_backend *b);
void am_cuda_register_reduce(am_backend *b);  /* + softmax, norms, rope */
void am_cuda_register_shape(am_backend *b);   /* + indexing, sort, conv1d */
void am_cuda_register_linalg(am_backend *b);  /* + quant, sdpa */
void am_cuda_register_kernel(am_backend *b);  /* custom kernels, random */
void am_cuda_register_capture(am_backend *b); /* capture.c */

/* ----- shared utilities (copy.cu / backend.c) ----- */

/** A strided view as kernels see it: up to AM_CUDA_DIMS dims after
 * collapsing contiguous runs; strides in elements. */
#define AM_CUDA_DIMS 8
typedef struct am_cuda_view {
  void *data; /* device pointer to element [0, ..., 0] */
  am_dtype dtype;
  int ndim;
  int64_t shape[AM_CUDA_DIMS];
  int64_t strides[AM_CUDA_DIMS];
} am_cuda_view;

/** a's view (dims merged where contiguous, size-1 dims dropped);
 * AM_ERR_UNSUPPORTED beyond AM_CUDA_DIMS dims. */
am_status am_cuda_view_of(const am_arr *a, am_cuda_view *v);
/** The view of `a` broadcast to out's shape (stride 0 on broadcast dims),
 * collapsed together with the other operands: n views over one shape. */
am_status am_cuda_views_broadcast(am_arr *const *a, int n, const int64_t *shape,
                                  int ndim, am_cuda_view *v);

/** dst (row-major, dst_dtype) = src converted elementwise; any dtypes. */
am_status am_cuda_copy_view(const am_cuda_view *src, void *dst,
                            am_dtype dst_dtype, int64_t n);
/** A row-major copy of a in dtype dt (a itself, retained, when a is
 * already contiguous from offset 0 in dt): release with am_arr_release. */
am_status am_cuda_contiguous(am_arr *a, am_dtype dt, am_arr **out);
#endif
