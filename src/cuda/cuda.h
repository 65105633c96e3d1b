/*
 * cuda.h — amorph's CUDA backend: device runtime and kernels (C API).
 *
 * Every function here is C-callable and returns an am_status (amorph.h);
 * none exits or aborts. A failing CUDA call gives AM_ERR_DEVICE (AM_ERR_OOM
 * for an allocation) with a message naming the call, readable with
 * am_cuda_last_error() and, when the library is built inside amorph
 * (AM_CUDA_WITH_AMORPH), with am_last_error() as well.
 *
 * Devices: the calling thread's current device (am_cuda_set_device).
 * Streams: each host thread gets its own non-blocking stream, created on
 * first use (am_cuda_stream); every call below that takes a `stream`
 * argument uses that stream when it is NULL. Copies and kernels are
 * asynchronous on that stream unless named *_sync.
 *
 * Memory: am_cuda_malloc / am_cuda_free go through a caching allocator
 * on top of cudaMalloc (never managed memory). Sizes are rounded up to a
 * size class (512 bytes, then four classes per power of two); freed
 * blocks stay cached for reuse by the stream that freed them, since work
 * queued on that stream may still read them. am_cuda_empty_cache
 * synchronizes the device and returns every cached block to CUDA. A
 * failed cudaMalloc empties the cache and retries once.
 */
#ifndef AM_CUDA_H
#define AM_CUDA_H

#include "amorph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 *  Devices and errors
 * ====================================================================== */

/** Number of usable CUDA devices: 0 when there is no device or no driver
 * (that is not an error; am_cuda_last_error() then says why). */
int am_cuda_device_count(void);

typedef struct am_cuda_device_info {
  char name[256];
  int cc_major, cc_minor; /* compute capability */
  int sm_count;           /* multiprocessors */
  size_t total_mem;       /* bytes of device memory */
  size_t free_mem;        /* bytes free now (cudaMemGetInfo) */
  int l2_bytes;
  int mem_bus_bits;
  size_t smem_per_block_optin; /* largest dynamic shared memory a block
                                  may ask for */
} am_cuda_device_info;

/** Properties of device `dev` (0 <= dev < am_cuda_device_count()). */
am_status am_cuda_get_device_info(int dev, am_cuda_device_info *out);
/** Makes `dev` the calling thread's device. */
am_status am_cuda_set_device(int dev);
/** The calling thread's most recent CUDA-backend error message. */
const char *am_cuda_last_error(void);

/** The calling thread's stream (a cudaStream_t), created on first use;
 * NULL (with the error set) when it cannot be created. */
void *am_cuda_stream(void);
/** Waits for the calling thread's stream. */
am_status am_cuda_stream_synchronize(void);
/** Waits for the whole device. */
am_status am_cuda_device_synchronize(void);

/* ======================================================================
 *  Caching allocator
 * ====================================================================== */

typedef struct am_cuda_mem_stats {
  size_t allocated;        /* bytes handed out and not freed (class sizes) */
  size_t requested;        /* bytes asked for by those allocations */
  size_t cached;           /* bytes held in the free lists */
  size_t peak_allocated;   /* highest `allocated` since start / reset */
  size_t reserved;         /* allocated + cached: what cudaMalloc holds */
  uint64_t n_cuda_mallocs; /* cudaMalloc calls that succeeded */
  uint64_t n_cache_hits;   /* allocations served from the free lists */
  uint64_t n_frees;        /* am_cuda_free calls on live blocks */
} am_cuda_mem_stats;

/** Device memory of at least `bytes` (> 0), 256-byte aligned, for use
 * on the calling thread's stream. *ptr is NULL on error. */
am_status am_cuda_malloc(void **ptr, size_t bytes);
/** Returns a block from am_cuda_malloc to the cache (NULL: no-op). A
 * pointer the allocator did not hand out gives AM_ERR_INVALID_ARG. */
am_status am_cuda_free(void *ptr);
/** Size class that a request of `bytes` is rounded up to. */
size_t am_cuda_size_class(size_t bytes);
am_cuda_mem_stats am_cuda_memory_stats(void);
void am_cuda_reset_peak(void);
/** Capture pools: between am_cuda_pool_begin and am_cuda_pool_end the
 * calling thread's allocations are tagged with a new pool (returned), and
 * blocks of that pool, once freed, are reused only by that pool, until
 * am_cuda_pool_release returns them to general use. A CUDA graph captured
 * meanwhile may then be replayed safely: nothing else writes its memory. */
int am_cuda_pool_begin(void);
void am_cuda_pool_end(void);
void am_cuda_pool_release(int pool);
/** Synchronizes the device and cudaFree's every cached block. */
am_status am_cuda_empty_cache(void);
/** Empties the cache and destroys the streams this library created.
 * Blocks still allocated stay valid until the process ends. */
void am_cuda_shutdown(void);

/* ======================================================================
 *  Copies (asynchronous on `stream`, NULL: the thread's stream)
 * ====================================================================== */

am_status am_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes,
                             void *stream);
am_status am_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes,
                             void *stream);
am_status am_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes,
                             void *stream);
am_status am_cuda_memset(void *dst, int value, size_t bytes, void *stream);
/** Copy then wait for the stream: host memory may be reused at once. */
am_status am_cuda_upload(void *dst, const void *src, size_t bytes);
am_status am_cuda_download(void *dst, const void *src, size_t bytes);

/* ======================================================================
 *  Quantized matmul (affine, MLX layout, transposed weights)
 * ====================================================================== */

/** y[p, m, n] = sum_k x[xi(p), m, k] * deq(w[wi(p)])[n, k] for p < P,
 * m < M, n < N: MLX's gather_qmm with transpose = true, affine mode, on
 * device pointers.
 *  - x: [Bx, M, K] row-major, float32 or bfloat16 (x_dtype).
 *  - w: uint32 [E, N, K*bits/32], codes packed as MLX (at 4 bits element
 *    0 in the low nibble of word 0). scales, biases: [E, N, K/group_size]
 *    of s_dtype (float32, float16 or bfloat16); deq = scale*q + bias.
 *  - lhs / rhs: int32 device arrays of P flat indices into x's and w's
 *    batch (the broadcast MLX index arrays); NULL stands for p, or for 0
 *    when that batch is 1. An index outside [0, Bx) / [0, E) writes NaN
 *    to that pair's output and flags it for am_cuda_qmm_check.
 *  - y: float32 [P, M, N].
 * group_size 32/64/128; bits 2, 3, 4, 5, 6, 8. Products and sums in
 * float32 (see `precise`). 4-bit weights with M <= 8 run the fused GEMV
 * kernel (16-byte weight loads, shared-memory x, one pass over the
 * weights); the rest a simple reference kernel (float32 products). */
typedef struct am_cuda_qmm_args {
  const void *x;
  am_dtype x_dtype;
  const uint32_t *w;
  const void *scales, *biases;
  am_dtype s_dtype;
  const int32_t *lhs, *rhs; /* may be NULL */
  float *y;
  int64_t P, M, N, K;
  int64_t Bx, E; /* batch sizes of x and of w */
  int group_size, bits;
  /* Launch with programmatic dependent launch (sm_90): the kernel may
   * start before the previous kernel on the stream ends; dense weights
   * (rhs == NULL) are then prefetched before waiting for it, so they must
   * not be written by that kernel. */
  bool pdl;
  /* float32 products (x not rounded). By default the fused kernel splits
   * x per 32-element chunk into two 16-bit integer terms, x ~ s (hi + lo
   * / 65536) (error about 2^-32 of the chunk's largest |x|, as the CPU
   * library's default on AVX512-VNNI), multiplies in integers (exact) and
   * combines in float32: as accurate as float32 products. */
  bool precise;
  void *stream; /* NULL: the thread's stream */
} am_cuda_qmm_args;

am_status am_cuda_gather_qmm(const am_cuda_qmm_args *a);
/** am_quantized_matmul (transpose = true, affine): x [M, K], w [N, K*b/32],
 * y [M, N] float32. */
am_status am_cuda_quantized_matmul(const void *x, am_dtype x_dtype,
                                   const uint32_t *w, const void *scales,
                                   const void *biases, am_dtype s_dtype,
                                   int64_t M, int64_t N, int64_t K,
                                   int group_size, int bits, float *y,
                                   void *stream);
/** Waits for the stream, then reports (and clears) an out-of-range index
 * seen by a gather kernel since the last check: AM_ERR_INVALID_ARG. */
am_status am_cuda_qmm_check(void *stream);

/** Bench/test switches of the fused kernel; 0 keeps the automatic choice.
 * lanes: lanes per weight row (8, 16, 32); warps: warps per block (1..8);
 * rows: rows per lane (1, 2; 4 for M <= 2); tiles: row tiles per block.
 * force_ref: use the reference kernel for everything. */
typedef struct am_cuda_qmm_tuning {
  int lanes, warps, rows, tiles;
  bool force_ref;
  int l2_prefetch; /* 0: default (off), 1: on, 2: off */
} am_cuda_qmm_tuning;
void am_cuda_qmm_set_tuning(const am_cuda_qmm_tuning *t); /* NULL: auto */

#ifdef __cplusplus
}
#endif

#endif /* AM_CUDA_H */
