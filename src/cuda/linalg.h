/*
 * linalg.h — launchers of the linalg family's CUDA kernels (linalg.cu,
 * quant.cu, attention.cu), C-callable, on plain device pointers. All are
 * queued on the calling thread's stream, never synchronize and never
 * allocate: scratch comes from the caller (linalg.c, through the caching
 * allocator), so that a compiled step can be captured as a CUDA graph.
 */
#ifndef AM_CUDA_LINALG_H
#define AM_CUDA_LINALG_H

#include "amorph.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AM_CUDA_LA_DIMS 16

/* ----- matmul helpers (linalg.cu) ----- */

/** Per-batch matrix pointers for cublasGemmBatchedEx: for batch i (row-major
 * over shape[0..nd)), ptrs[i] = a + sum idx*sa (bytes), ptrs[n + i] = b +
 * ..., ptrs[2n + i] = c + i * c_bytes. */
typedef struct {
  const char *a, *b;
  char *c;
  int nd;
  int64_t shape[AM_CUDA_LA_DIMS], sa[AM_CUDA_LA_DIMS], sb[AM_CUDA_LA_DIMS];
  int64_t c_bytes, n;
} am_cuda_mm_ptr_args;
am_status am_cuda_mm_ptrs(const am_cuda_mm_ptr_args *a, void **ptrs);

/** c[i] = beta * c[i] (or 0 when beta == 0: no NaN kept) in float32 (double
 * for float64), n elements of dtype dt. */
am_status am_cuda_mm_scale(void *c, am_dtype dt, int64_t n, double beta);

/* ----- gathered / quantized matmul (linalg.cu) ----- */

/** int32 pair indices out[p], p < P: the index array (data, dtype) read at
 * offset sum_d idx_d * strides[d] over the batch shape, or that offset
 * itself when data is NULL (the default arange); values outside [0, n)
 * become -1 (the matmul kernels then write NaN). */
typedef struct {
  const void *data;
  am_dtype dtype;
  int nd;
  int64_t shape[AM_CUDA_LA_DIMS], strides[AM_CUDA_LA_DIMS];
  int64_t n;
} am_cuda_idx_args;
am_status am_cuda_gather_indices(const am_cuda_idx_args *a, int32_t *out,
                                 int64_t P);

/** y[p, m, n] = sum_k x[lhs[p], m, k] * W[rhs[p]](k, n), float32 sums.
 * x: [n_x, M, K] row-major (xdt f16/bf16/f32). W: dense (wdt, [n_w, K, N]
 * row-major) or quantized (mode/bits/gs; codes [n_w, R, L*bits/32] with
 * R, L = N, K when transposed, else K, N; scales/biases [n_w, R, L/gs]).
 * y: [P, M, N] row-major of ydt. */
typedef struct {
  const void *x;
  am_dtype xdt;
  const void *w, *s, *b;
  bool dense, transpose;
  am_dtype wdt, sdt, bdt;
  int mode, bits, gs;
  const int32_t *lhs, *rhs;
  void *y;
  am_dtype ydt;
  int64_t P, M, N, K, n_x, n_w;
} am_cuda_qmm_gen_args;
am_status am_cuda_qmm_generic(const am_cuda_qmm_gen_args *a);

/* ----- quantize / dequantize (quant.cu) ----- */

/** rows x k contiguous w (wdt) into wq (uint32 bit streams), scales (wdt for
 * affine, uint8 otherwise) and biases (affine), as the CPU (MLX) does.
 * global: device float32 scalar (nvfp4) or NULL. */
am_status am_cuda_quantize(const void *w, am_dtype wdt, int64_t rows, int64_t k,
                           int mode, int gs, int bits, const float *global,
                           void *wq, void *scales, void *biases);

/** Output row i (k elements of odt) = dequantized table row idx[i] (idx
 * NULL: row i); negative indices count from the end (n_table rows); rows
 * out of range give NaN. w, s, b contiguous. global as above. */
am_status am_cuda_dequantize(const void *w, const void *s, am_dtype sdt,
                             const void *b, am_dtype bdt, int mode, int gs,
                             int bits, const float *global, const int64_t *idx,
                             int64_t n_table, int64_t rows, int64_t k,
                             void *out, am_dtype odt);

/* ----- sdpa (attention.cu) ----- */

typedef struct {
  const void *q, *k, *v;
  am_dtype dt;                 /* f16, bf16, f32, f64 */
  int64_t qs[4], ks[4], vs[4]; /* element strides over (b, h, l, d) */
  const void *mask;            /* NULL: none */
  am_dtype mdt;
  int64_t ms[4];    /* broadcast to [B, Hq, Lq, Lkv] */
  const void *qoff; /* device integer scalar, or NULL (Lkv - Lq) */
  am_dtype qoff_dt;
  int causal;
  float scale;
  int64_t B, Hq, Hkv, Lq, Lkv, D, Dv;
  void *out;  /* [B, Hq, Lq, Dv] contiguous, dt */
  int nsplit; /* key splits (flash-decoding); > 1 needs part */
  void *part; /* am_cuda_sdpa_part_bytes() of scratch */
} am_cuda_sdpa_args;

/** Splits of the key range worth using for this problem (1: none). */
int am_cuda_sdpa_splits(int64_t rows, int64_t Lkv, int sm_count);
size_t am_cuda_sdpa_part_bytes(const am_cuda_sdpa_args *a);
/** D and Dv at most 256 (else AM_ERR_UNSUPPORTED). */
am_status am_cuda_sdpa(const am_cuda_sdpa_args *a);

#ifdef __cplusplus
}
#endif
#endif
