/*
 * kernel_internal.h — the custom-kernel object shared by kernel.c (the
 * primitive and the API) and nvrtc.c (CUDA source generation and NVRTC).
 */
#ifndef AM_KERNEL_INTERNAL_H
#define AM_KERNEL_INTERNAL_H

#include "../core/internal.h"

struct am_kernel_s {
  atomic_int refs; /* the handle + every node (params) using it */
  char *name;
  int n_in, n_out;
  am_kernel_cpu_fn cpu;
  int64_t n_tasks;
  am_kernel_tasks_fn cpu_tasks;
  am_kernel_shape_fn shapes;
  bool allow_strided;
  int inplace[AM_KERNEL_MAX_IO]; /* am_kernel_desc.inplace */
  void *user;
  /* CUDA (has_cuda): MLX cuda_kernel fields, copied */
  bool has_cuda;
  char *in_names[AM_KERNEL_MAX_IO], *out_names[AM_KERNEL_MAX_IO];
  char *source, *header;
  int shared_memory;
  am_kernel_launch_fn launch;
};

/* The node params: the kernel (retained), the normalized args (unused
 * entries zeroed, so params compare and hash bytewise) and, for fixed
 * shapes, the input metas they were given for. */
typedef struct am_kernel_params {
  struct am_kernel_s *k;
  am_kernel_args a;
  am_meta fixed_in[AM_KERNEL_MAX_IO];
} am_kernel_params;

/* The calling thread's failure-message slot (am_kernel_fail). */
typedef struct am_kernel_err {
  atomic_flag set;
  char msg[512];
} am_kernel_err;
am_kernel_err *am_kernel_err_swap(am_kernel_err *e);

/* PTX of an arbitrary CUDA source string for `arch` ("compute_90"),
 * through the same NVRTC invocation and memory/disk cache as the custom
 * kernels' (keyed by source and arch); `name` names the cache file and the
 * errors. *ptx is malloc'd (free() it). Used by the CUDA backend for the
 * code it generates (fused elementwise programs). */
am_status am_nvrtc_compile_cached(const char *name, const char *src,
                                  const char *arch, char **ptx);

/* Which extra parameters am_kernel_cuda_source gives input i (the body
 * uses `<name>_shape`, `_strides`, `_ndim`): an AM_KUSE_* mask. They
 * follow the input's pointer, in that order. */
enum { AM_KUSE_SHAPE = 1, AM_KUSE_STRIDES = 2, AM_KUSE_NDIM = 4 };
unsigned am_kernel_cuda_uses(const struct am_kernel_s *k, int i);

#endif
