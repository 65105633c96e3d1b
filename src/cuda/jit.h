/*
 * jit.h — kernels compiled at run time (NVRTC PTX), loaded and launched
 * through the CUDA runtime only (cudaLibraryLoadData, cudaLibraryGetKernel,
 * cudaLaunchKernel on the kernel handle): libamorph_cuda never links the
 * driver API, so binaries still start where no driver is installed.
 * Loaded kernels are kept for the process in a table keyed by a 64-bit
 * key the caller derives from everything that determines the source, so
 * a hit costs neither source generation nor compilation.
 */
#ifndef AM_CUDA_JIT_H
#define AM_CUDA_JIT_H
#include "amorph.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The NVRTC target of the current device: "compute_XY" (its compute
 * capability); NULL with the error set when the device is unknown. */
const char *am_jit_arch(void);

/** The kernel loaded under `key`, or NULL when there is none yet. */
void *am_jit_find(uint64_t key);
/** Loads `entry` of the PTX text and keeps it under `key` (when another
 * thread loaded the same key first, its kernel is returned). */
am_status am_jit_load_ptx(uint64_t key, const char *ptx, const char *entry,
                          void **kernel);
/** Compiles `src` for am_jit_arch() (nvrtc.c's cache: memory, disk, then
 * NVRTC), then am_jit_load_ptx. `name` names the cache file and errors. */
am_status am_jit_load_source(uint64_t key, const char *name, const char *src,
                             const char *entry, void **kernel);

/** Launches a loaded kernel on the thread's stream (never synchronizes).
 * Dynamic shared memory above 48 KiB is enabled for the kernel first.
 * `what` names the kernel in errors. */
am_status am_jit_launch(void *kernel, const unsigned grid[3],
                        const unsigned block[3], size_t smem, void **args,
                        const char *what);

/* ----- device helpers for the JIT glue (jit.cu) ----- */

/** Writes n int64 values (n <= AM_JIT_TABLE_MAX), passed by value to a
 * kernel, to device memory dst: shapes and strides a generated kernel
 * reads through pointers reach the device without a host copy (which a
 * captured graph could not replay with new values). */
#define AM_JIT_TABLE_MAX 512
am_status am_jit_write_i64(int64_t *dst, const int64_t *vals, int n);
/** dst[0..n) = v converted to dtype (as am_store_f64). */
am_status am_jit_fill(void *dst, am_dtype dtype, int64_t n, double v);

/** FNV-1a over bytes, continuing from h (start: AM_JIT_FNV0). */
#define AM_JIT_FNV0 1469598103934665603ull
static inline uint64_t am_jit_hash(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

#ifdef __cplusplus
}
#endif
#endif
