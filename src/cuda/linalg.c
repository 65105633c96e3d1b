/*
 * linalg.c — CUDA glue of the linalg family: matmul and addmm (cuBLAS),
 * gather_mm, quantized_matmul, gather_qmm (linalg.cu; qmm.cu's fused
 * affine GEMV for decode shapes), quantize, dequantize,
 * quantized_embedding (quant.cu) and sdpa (attention.cu).
 *
 * Index operands (gathers, embedding) stay on the device: an index out of
 * range, which the CPU refuses with an error, gives NaN rows here (reading
 * the indices on the host would need a synchronization).
 */
#include "linalg.h"
#include "../ops/attention_params.h"
#include "../ops/linalg_params.h"
#include "../ops/qmm_params.h"
#include "../ops/quant_params.h"
#include "ops.h"

#include <cublas_v2.h>
#include <limits.h>

/* ======================================================================
 *  cuBLAS handles: one per thread and device, on the thread's stream
 * ====================================================================== */

#define MAX_DEV 16
#define WS_BYTES ((size_t)32 << 20)

static _Thread_local struct {
  cublasHandle_t h;
  void *ws;
} g_blas[MAX_DEV];

static am_status blas_fail(cublasStatus_t st, const char *what) {
  return am_set_error(AM_ERR_DEVICE, "%s: cuBLAS status %d", what, (int)st);
}

/* The thread's handle for the current device, bound to the thread's
 * stream with a workspace from the caching allocator: cublasSetStream
 * resets the workspace, so both are set on every call (a captured graph
 * then never sees cuBLAS allocate). */
static am_status blas_handle(cublasHandle_t *out) {
  int dev = 0;
  am_status s = am_cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
  if (s) return s;
  if (dev < 0 || dev >= MAX_DEV)
    return am_set_error(AM_ERR_UNSUPPORTED, "cuBLAS: device %d", dev);
  cudaStream_t stream = am_cuda_resolve_stream(NULL);
  if (!stream) return AM_ERR_DEVICE;
  if (!g_blas[dev].h) {
    cublasStatus_t st = cublasCreate(&g_blas[dev].h);
    if (st != CUBLAS_STATUS_SUCCESS) {
      g_blas[dev].h = NULL;
      return blas_fail(st, "cublasCreate");
    }
    /* no TF32: float32 products as float32 (the test asks 1e-10 NMSE) */
    cublasSetMathMode(g_blas[dev].h, CUBLAS_DEFAULT_MATH);
    s = am_cuda_malloc(&g_blas[dev].ws, WS_BYTES);
    if (s) return s;
  }
  cublasStatus_t st = cublasSetStream(g_blas[dev].h, stream);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasSetWorkspace(g_blas[dev].h, g_blas[dev].ws, WS_BYTES);
  if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "cublasSetStream");
  *out = g_blas[dev].h;
  return AM_OK;
}

/* ======================================================================
 *  matmul / addmm
 * ====================================================================== */

static cudaDataType cuda_type(am_dtype t) {
  switch (t) {
  case AM_F16:
    return CUDA_R_16F;
  case AM_BF16:
    return CUDA_R_16BF;
  case AM_F64:
    return CUDA_R_64F;
  default:
    return CUDA_R_32F;
  }
}

/* How cuBLAS reads a rows x cols matrix with strides rs, cs: 0 row-major
 * (unit column stride), 1 column-major, with leading dimension *ld; -1
 * when neither fits (then the operand is copied). */
static int layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                  int64_t *ld) {
  if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= (cols > 1 ? cols : 1))) {
    *ld = rows <= 1 ? (cols > 1 ? cols : 1) : rs;
    return 0;
  }
  if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= (rows > 1 ? rows : 1))) {
    *ld = cols <= 1 ? (rows > 1 ? rows : 1) : cs;
    return 1;
  }
  return -1;
}

typedef struct {
  am_arr *x; /* the array read (maybe a contiguous copy, owned) */
  bool own;
  int lay; /* 0 row-major, 1 column-major */
  int64_t ld;
  int64_t bst[AM_MAX_DIMS]; /* elements per output batch dim */
} mm_op;

/* Operand x as a rows x cols matrix stack: its layout, and its strides
 * over the output batch dims (0 where broadcast). */
static am_status mm_operand(am_arr *x, bool is_b, const am_arr *out, int nbd,
                            mm_op *o) {
  int nd = x->m.ndim;
  memset(o, 0, sizeof *o);
  o->x = x;
  for (int pass = 0; pass < 2; pass++) {
    const am_arr *a = o->x;
    int64_t rows, cols, rs, cs;
    if (nd == 1) {
      rows = is_b ? a->m.shape[0] : 1;
      cols = is_b ? 1 : a->m.shape[0];
      rs = is_b ? a->strides[0] : 0;
      cs = is_b ? 0 : a->strides[0];
    } else {
      rows = a->m.shape[nd - 2];
      cols = a->m.shape[nd - 1];
      rs = a->strides[nd - 2];
      cs = a->strides[nd - 1];
    }
    o->lay = layout(rows, cols, rs, cs, &o->ld);
    if (o->lay >= 0 && o->ld <= INT_MAX) break;
    if (pass) return am_set_error(AM_ERR_INTERNAL, "matmul: operand layout");
    am_arr *c;
    am_status s = am_cuda_contiguous(x, x->m.dtype, &c);
    if (s) return s;
    o->x = c;
    o->own = true;
  }
  int xb = nd > 2 ? nd - 2 : 0;
  for (int d = 0; d < nbd; d++) {
    int j = d - (nbd - xb);
    o->bst[d] =
        (j >= 0 && o->x->m.shape[j] == out->m.shape[d]) ? o->x->strides[j] : 0;
  }
  return AM_OK;
}

static am_status mm_eval(am_arr *c, am_arr *a, am_arr *b, am_arr *out,
                         double alpha, double beta) {
  int na = a->m.ndim, nb = b->m.ndim;
  int64_t M = na > 1 ? a->m.shape[na - 2] : 1, K = a->m.shape[na - 1];
  int64_t N = nb > 1 ? b->m.shape[nb - 1] : 1;
  int nbd = out->m.ndim - (na > 1) - (nb > 1);
  am_dtype dt = out->m.dtype;
  if (!c) beta = 0;
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
    return am_set_error(AM_ERR_UNSUPPORTED,
                        "matmul: matrix dims above 2^31 - 1 (cuBLAS int)");
  am_status s = am_out_alloc(out);
  if (s || !out->size) return s;
  char *op = am_arr_ptr(out);
  if (beta != 0) { /* c broadcast into the result, then C = beta C + ... */
    am_cuda_view v;
    s = am_cuda_views_broadcast(&c, 1, out->m.shape, out->m.ndim, &v);
    if (!s) s = am_cuda_copy_view(&v, op, dt, out->size);
    if (s) return s;
  }
  if (K == 0) return am_cuda_mm_scale(op, dt, out->size, beta);
  mm_op oa, ob;
  s = mm_operand(a, false, out, nbd, &oa);
  if (s) return s;
  s = mm_operand(b, true, out, nbd, &ob);
  if (s) {
    if (oa.own) am_arr_release(oa.x);
    return s;
  }
  /* Batch dims: size-1 ones dropped, neighbours merged where a, b and the
   * (contiguous) output all step uniformly across them. */
  int64_t bs[AM_MAX_DIMS], sa[AM_MAX_DIMS], sb[AM_MAX_DIMS], sc[AM_MAX_DIMS];
  int n = 0;
  int64_t nbatch = 1, ostr = M * N;
  for (int d = nbd - 1; d >= 0; d--) { /* innermost first */
    int64_t sz = out->m.shape[d];
    nbatch *= sz;
    if (sz != 1) {
      if (n && sa[n - 1] * bs[n - 1] == oa.bst[d] &&
          sb[n - 1] * bs[n - 1] == ob.bst[d] && sc[n - 1] * bs[n - 1] == ostr) {
        bs[n - 1] *= sz;
      } else {
        bs[n] = sz;
        sa[n] = oa.bst[d];
        sb[n] = ob.bst[d];
        sc[n] = ostr;
        n++;
      }
    }
    ostr *= sz;
  }
  cublasHandle_t h = NULL;
  s = blas_handle(&h);
  if (!s) {
    /* Row-major C = A B is column-major C^T = B^T A^T: cuBLAS's first
     * operand is b (N x K), its second a. */
    cublasOperation_t ta = ob.lay ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = oa.lay ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType ty = cuda_type(dt);
    cublasComputeType_t ct =
        dt == AM_F64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
    float fa = (float)alpha, fb = (float)beta;
    const void *pa = dt == AM_F64 ? (const void *)&alpha : (const void *)&fa;
    const void *pb = dt == AM_F64 ? (const void *)&beta : (const void *)&fb;
    const char *A = am_arr_ptr(ob.x), *B = am_arr_ptr(oa.x);
    cublasStatus_t st;
    if (n <= 1) {
      st = cublasGemmStridedBatchedEx(
          h, ta, tb, (int)N, (int)M, (int)K, pa, A, ty, (int)ob.ld,
          n ? sb[0] : 0, B, ty, (int)oa.ld, n ? sa[0] : 0, pb, op, ty, (int)N,
          M * N, (int)nbatch, ct, CUBLAS_GEMM_DEFAULT);
      if (st != CUBLAS_STATUS_SUCCESS)
        s = blas_fail(st, "cublasGemmStridedBatchedEx");
    } else if (nbatch > INT_MAX) {
      s = am_set_error(AM_ERR_UNSUPPORTED, "matmul: %lld batches",
                       (long long)nbatch);
    } else {
      /* batch dims that do not merge: per-batch pointers, made on the
       * device (never uploaded from the host) */
      am_cuda_mm_ptr_args pa_ = {.a = B,
                                 .b = A,
                                 .c = op,
                                 .nd = n,
                                 .c_bytes = M * N * (int64_t)am_dtype_size(dt),
                                 .n = nbatch};
      size_t es = am_dtype_size(dt);
      for (int d = 0; d < n; d++) { /* back to outermost first */
        pa_.shape[d] = bs[n - 1 - d];
        pa_.sa[d] = sa[n - 1 - d] * (int64_t)es;
        pa_.sb[d] = sb[n - 1 - d] * (int64_t)es;
      }
      am_buffer *pbuf =
          am_buffer_new_on((size_t)nbatch * 3 * sizeof(void *), AM_DEVICE_CUDA);
      if (!pbuf) s = AM_ERR_OOM;
      if (!s) s = am_cuda_mm_ptrs(&pa_, (void **)pbuf->data);
      if (!s) {
        void **P = (void **)pbuf->data;
        st = cublasGemmBatchedEx(h, ta, tb, (int)N, (int)M, (int)K, pa,
                                 (const void *const *)(P + nbatch), ty,
                                 (int)ob.ld, (const void *const *)P, ty,
                                 (int)oa.ld, pb, P + 2 * nbatch, ty, (int)N,
                                 (int)nbatch, ct, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
          s = blas_fail(st, "cublasGemmBatchedEx");
      }
      if (pbuf) am_buffer_release(pbuf);
    }
  }
  if (oa.own) am_arr_release(oa.x);
  if (ob.own) am_arr_release(ob.x);
  return s;
}

static am_status matmul_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_in, (void)n_out, (void)params;
  return mm_eval(NULL, in[0], in[1], out[0], 1, 0);
}

static am_status addmm_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const addmm_params *p = params;
  return mm_eval(in[0], in[1], in[2], out[0], p->alpha, p->beta);
}

/* ======================================================================
 *  gather_mm, quantized_matmul, gather_qmm
 * ====================================================================== */

static int64_t prod(const int64_t *s, int n) {
  int64_t p = 1;
  for (int i = 0; i < n; i++)
    p *= s[i];
  return p;
}

/* Temporary device array of n elements of dtype dt (release it). */
static am_arr *scratch(int64_t n, am_dtype dt) {
  am_meta m;
  memset(&m, 0, sizeof m);
  m.dtype = dt;
  m.ndim = 1;
  m.shape[0] = n > 0 ? n : 1;
  am_arr *a = am_arr_alloc(&m);
  if (a && am_out_alloc(a)) {
    am_arr_release(a);
    a = NULL;
  }
  if (!a) am_set_error(AM_ERR_OOM, "out of memory (device scratch)");
  return a;
}

/* Pair indices (int32, P) from idx broadcast to the batch shape B (nb),
 * or from the operand's default arange over bshape (nbs dims). */
static am_status pair_indices(const am_arr *idx, const int64_t *bshape, int nbs,
                              const int64_t *B, int nb, int64_t n,
                              int32_t *dst) {
  am_cuda_idx_args a;
  memset(&a, 0, sizeof a);
  if (nb > AM_CUDA_LA_DIMS)
    return am_set_error(AM_ERR_UNSUPPORTED, "gather: %d batch dims", nb);
  const int64_t *shape = idx ? idx->m.shape : bshape;
  int nd = idx ? idx->m.ndim : nbs;
  int64_t cst[AM_MAX_DIMS];
  am_contig_strides(shape, nd, cst);
  for (int i = 0; i < nb; i++) {
    int j = i - (nb - nd);
    a.shape[i] = B[i];
    a.strides[i] =
        (j < 0 || shape[j] != B[i]) ? 0 : (idx ? idx->strides[j] : cst[j]);
  }
  a.nd = nb;
  a.n = n;
  if (idx) {
    a.data = am_arr_ptr(idx);
    a.dtype = idx->m.dtype;
  }
  return am_cuda_gather_indices(&a, dst, prod(B, nb));
}

/* Pair indices the fused kernel can read directly: none (NULL) when the
 * operand's batch is 1 or the whole broadcast batch, or an int32
 * contiguous index array of exactly the batch shape. */
static bool direct_indices(const am_arr *idx, int64_t n, int64_t P,
                           const int64_t *B, int nb, const int32_t **out) {
  if (!idx) {
    *out = NULL;
    return n == 1 || n == P;
  }
  if (idx->m.dtype != AM_I32 || idx->m.ndim != nb || !am_arr_is_contiguous(idx))
    return false;
  for (int i = 0; i < nb; i++)
    if (idx->m.shape[i] != B[i]) return false;
  *out = (const int32_t *)am_arr_ptr(idx);
  return true;
}

static am_status qmm_common(am_arr *x, am_arr *w, am_arr *sc, am_arr *bi,
                            const am_arr *lhs, const am_arr *rhs,
                            const qmm_params *p, bool dense, const int64_t *B,
                            int nb, int64_t M, int64_t N, int64_t K,
                            am_arr *out) {
  am_status s = am_out_alloc(out);
  if (s) return s;
  int64_t P = prod(B, nb);
  if (!P || !M || !N) return AM_OK;
  if (!K)
    return am_cuda_memset(am_arr_ptr(out), 0,
                          (size_t)out->size * am_dtype_size(out->m.dtype),
                          NULL);
  if (P > INT_MAX || M > INT_MAX)
    return am_set_error(AM_ERR_UNSUPPORTED, "gather matmul: P=%lld M=%lld",
                        (long long)P, (long long)M);
  int xnb = x->m.ndim >= 2 ? x->m.ndim - 2 : 0, wnb = w->m.ndim - 2;
  int64_t n_x = prod(x->m.shape, xnb), n_w = prod(w->m.shape, wnb);
  am_arr *own[4] = {NULL, NULL, NULL, NULL}, *ix = scratch(2 * P, AM_I32);
  am_arr *y32 = NULL;
  if (!ix) return AM_ERR_OOM;
  int32_t *lh = (int32_t *)am_arr_ptr(ix), *rh = lh + P;
  /* The fused kernel takes int32 pair indices as they are and NULL for
   * the identity (or 0 for a batch of one): no index kernel then, which
   * matters in a decode step of many small products. */
  am_dtype xdt0 = x->m.dtype;
  /* (8-bit router gates run qmm.cu's reference kernel: ~40 us each on
   * the H100, yet the tiled kernel was 5x slower still at M = 1) */
  bool fast_shape = !dense && p->mode == AM_QUANT_AFFINE && p->transpose &&
                    M <= 8 && (xdt0 == AM_F32 || xdt0 == AM_BF16) &&
                    sc->m.dtype == bi->m.dtype && K <= (1 << 30) &&
                    N <= (1 << 30) && n_x <= (1 << 30) && n_w <= (1 << 30);
  const int32_t *lhd = lh, *rhd = rh;
  if (!(fast_shape && direct_indices(lhs, n_x, P, B, nb, &lhd)))
    s = pair_indices(lhs, x->m.shape, xnb, B, nb, n_x, lh), lhd = lh;
  if (!s && !(fast_shape && direct_indices(rhs, n_w, P, B, nb, &rhd)))
    s = pair_indices(rhs, w->m.shape, wnb, B, nb, n_w, rh), rhd = rh;
  am_arr *ops[4] = {x, w, sc, bi};
  for (int i = 0; i < 4 && !s; i++)
    if (ops[i]) s = am_cuda_contiguous(ops[i], ops[i]->m.dtype, &own[i]);
  if (!s) {
    am_dtype xdt = x->m.dtype, odt = out->m.dtype;
    /* Decode shapes of transposed affine weights: qmm.cu's kernels (the
     * fused 4-bit GEMV, else its reference), float32 out. */
    if (fast_shape) {
      float *y = (float *)am_arr_ptr(out);
      if (odt != AM_F32) {
        y32 = scratch(out->size, AM_F32);
        if (!y32)
          s = AM_ERR_OOM;
        else
          y = (float *)am_arr_ptr(y32);
      }
      am_cuda_qmm_args qa = {.x = am_arr_ptr(own[0]),
                             .x_dtype = xdt,
                             .w = (const uint32_t *)am_arr_ptr(own[1]),
                             .scales = am_arr_ptr(own[2]),
                             .biases = am_arr_ptr(own[3]),
                             .s_dtype = sc->m.dtype,
                             .lhs = lhd,
                             .rhs = rhd,
                             .y = y,
                             .P = P,
                             .M = M,
                             .N = N,
                             .K = K,
                             .Bx = n_x,
                             .E = n_w,
                             .group_size = p->group_size,
                             .bits = p->bits};
      if (!s) s = am_cuda_gather_qmm(&qa);
      if (!s && y32) {
        am_cuda_view v;
        s = am_cuda_view_of(y32, &v);
        if (!s) {
          v.ndim = 1;
          v.shape[0] = out->size;
          v.strides[0] = 1;
          s = am_cuda_copy_view(&v, am_arr_ptr(out), odt, out->size);
        }
      }
    } else {
      am_cuda_qmm_gen_args g = {.x = am_arr_ptr(own[0]),
                                .xdt = xdt,
                                .w = am_arr_ptr(own[1]),
                                .s = own[2] ? am_arr_ptr(own[2]) : NULL,
                                .b = own[3] ? am_arr_ptr(own[3]) : NULL,
                                .dense = dense,
                                .transpose = p->transpose,
                                .wdt = w->m.dtype,
                                .sdt = sc ? sc->m.dtype : AM_U8,
                                .bdt = bi ? bi->m.dtype : AM_U8,
                                .mode = p->mode,
                                .bits = p->bits,
                                .gs = p->group_size,
                                .lhs = lh,
                                .rhs = rh,
                                .y = am_arr_ptr(out),
                                .ydt = odt,
                                .P = P,
                                .M = M,
                                .N = N,
                                .K = K,
                                .n_x = n_x,
                                .n_w = n_w};
      s = am_cuda_qmm_generic(&g);
    }
  }
  for (int i = 0; i < 4; i++)
    if (own[i]) am_arr_release(own[i]);
  am_arr_release(ix);
  if (y32) am_arr_release(y32);
  return s;
}

/* Output batch dims of quantized_matmul (as qmm.c's qmm_batch). */
static void qmm_batch(const am_meta *x, const am_meta *w, int64_t *B, int *nb,
                      int64_t *M) {
  if (x->ndim > 2 && w->ndim > 2) {
    am_broadcast_shapes(x->shape, x->ndim - 2, w->shape, w->ndim - 2, B, nb);
    *M = x->shape[x->ndim - 2];
    return;
  }
  *nb = x->ndim > 2 ? x->ndim - 2 : 0;
  memcpy(B, x->shape, (size_t)*nb * sizeof *B);
  *M = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1;
}

static am_status qmatmul_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                              int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const qmm_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  int64_t B[AM_MAX_DIMS], M;
  int nb;
  qmm_batch(&in[0]->m, &in[1]->m, B, &nb, &M);
  int64_t K = in[0]->m.shape[in[0]->m.ndim - 1];
  int64_t N = out[0]->m.shape[out[0]->m.ndim - 1];
  return qmm_common(in[0], in[1], in[2], affine ? in[3] : NULL, NULL, NULL, p,
                    false, B, nb, M, N, K, out[0]);
}

static am_status gqmm_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const qmm_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  int base = 3 + (int)affine;
  int il = p->has_lhs ? base : -1, ir = p->has_rhs ? base + p->has_lhs : -1;
  int nb = out[0]->m.ndim - 2;
  int64_t K = in[0]->m.shape[in[0]->m.ndim - 1];
  return qmm_common(in[0], in[1], in[2], affine ? in[3] : NULL,
                    il >= 0 ? in[il] : NULL, ir >= 0 ? in[ir] : NULL, p, false,
                    out[0]->m.shape, nb, out[0]->m.shape[nb],
                    out[0]->m.shape[nb + 1], K, out[0]);
}

static am_status gmm_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                          int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const qmm_params *p = params;
  int il = p->has_lhs ? 2 : -1, ir = p->has_rhs ? 2 + p->has_lhs : -1;
  qmm_params q = *p;
  q.transpose = false;
  int nb = out[0]->m.ndim - 2;
  int64_t K = in[0]->m.shape[in[0]->m.ndim - 1];
  return qmm_common(in[0], in[1], NULL, NULL, il >= 0 ? in[il] : NULL,
                    ir >= 0 ? in[ir] : NULL, &q, true, out[0]->m.shape, nb,
                    out[0]->m.shape[nb], out[0]->m.shape[nb + 1], K, out[0]);
}

/* ======================================================================
 *  quantize, dequantize, quantized_embedding
 * ====================================================================== */

static am_status quantize_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                               int n_out, const void *params) {
  (void)n_in;
  const quantize_params *p = params;
  for (int j = 0; j < n_out; j++) {
    am_status s = am_out_alloc(out[j]);
    if (s) return s;
  }
  const am_arr *w = in[0];
  int64_t k = w->m.shape[w->m.ndim - 1], rows = k ? w->size / k : 0;
  if (!rows || !k) return AM_OK;
  am_arr *wc;
  am_status s = am_cuda_contiguous(in[0], w->m.dtype, &wc);
  if (s) return s;
  s = am_cuda_quantize(am_arr_ptr(wc), w->m.dtype, rows, k, p->mode,
                       p->group_size, p->bits,
                       p->has_global ? (const float *)am_arr_ptr(in[1]) : NULL,
                       am_arr_ptr(out[0]), am_arr_ptr(out[1]),
                       n_out > 2 ? am_arr_ptr(out[2]) : NULL);
  am_arr_release(wc);
  return s;
}

/* Rows of a quantized table (w, s, b contiguous copies) into out. */
static am_status deq_rows(am_arr *w, am_arr *sc, am_arr *bi, const am_arr *g,
                          am_quant_mode mode, int gs, int bits,
                          const int64_t *idx, int64_t n_table, int64_t rows,
                          am_arr *out) {
  int64_t k = out->m.shape[out->m.ndim - 1];
  if (!rows || !k) return AM_OK;
  am_arr *c[3] = {NULL, NULL, NULL}, *ops[3] = {w, sc, bi};
  am_status s = AM_OK;
  for (int i = 0; i < 3 && !s; i++)
    if (ops[i]) s = am_cuda_contiguous(ops[i], ops[i]->m.dtype, &c[i]);
  if (!s)
    s = am_cuda_dequantize(am_arr_ptr(c[0]), am_arr_ptr(c[1]), sc->m.dtype,
                           c[2] ? am_arr_ptr(c[2]) : NULL,
                           bi ? bi->m.dtype : AM_U8, mode, gs, bits,
                           g ? (const float *)am_arr_ptr(g) : NULL, idx,
                           n_table, rows, k, am_arr_ptr(out), out->m.dtype);
  for (int i = 0; i < 3; i++)
    if (c[i]) am_arr_release(c[i]);
  return s;
}

static am_status dequantize_cuda(am_arr *const *in, int n_in,
                                 am_arr *const *out, int n_out,
                                 const void *params) {
  (void)n_out;
  const dequantize_params *p = params;
  am_status s = am_out_alloc(out[0]);
  if (s) return s;
  bool affine = p->mode == AM_QUANT_AFFINE;
  int64_t k = out[0]->m.shape[out[0]->m.ndim - 1];
  int64_t rows = k ? out[0]->size / k : 0;
  return deq_rows(in[0], in[1], affine ? in[2] : NULL,
                  p->has_global ? in[n_in - 1] : NULL, p->mode, p->group_size,
                  p->bits, NULL, rows, rows, out[0]);
}

static am_status qembed_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_out;
  const qembed_params *p = params;
  bool affine = p->mode == AM_QUANT_AFFINE;
  am_status s = am_out_alloc(out[0]);
  if (s) return s;
  am_arr *ia = in[n_in - 1];
  if (!ia->size) return AM_OK;
  am_arr *idx;
  s = am_cuda_contiguous(ia, AM_I64, &idx);
  if (s) return s;
  s = deq_rows(in[0], in[1], affine ? in[2] : NULL, NULL, p->mode,
               p->group_size, p->bits, (const int64_t *)am_arr_ptr(idx),
               in[0]->m.shape[0], ia->size, out[0]);
  am_arr_release(idx);
  return s;
}

/* ======================================================================
 *  sdpa
 * ====================================================================== */

static am_status sdpa_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  (void)n_in, (void)n_out;
  const sdpa_params *p = params;
  const am_arr *q = in[0], *k = in[1], *v = in[2];
  am_arr *o = out[0];
  am_status s = am_out_alloc(o);
  if (s || !o->size) return s;
  if (k->m.shape[2] == 0) /* softmax over nothing, then an empty sum */
    return am_cuda_memset(am_arr_ptr(o), 0,
                          (size_t)o->size * am_dtype_size(o->m.dtype), NULL);
  am_cuda_sdpa_args a;
  memset(&a, 0, sizeof a);
  a.q = am_arr_ptr(q);
  a.k = am_arr_ptr(k);
  a.v = am_arr_ptr(v);
  a.dt = q->m.dtype;
  memcpy(a.qs, q->strides, sizeof a.qs);
  memcpy(a.ks, k->strides, sizeof a.ks);
  memcpy(a.vs, v->strides, sizeof a.vs);
  a.B = q->m.shape[0];
  a.Hq = q->m.shape[1];
  a.Lq = q->m.shape[2];
  a.D = q->m.shape[3];
  a.Hkv = k->m.shape[1];
  a.Lkv = k->m.shape[2];
  a.Dv = v->m.shape[3];
  a.scale = p->scale;
  a.causal = p->causal;
  a.out = am_arr_ptr(o);
  int at = 3;
  if (p->has_mask) {
    const am_arr *m = in[at++];
    int64_t full[4] = {a.B, a.Hq, a.Lq, a.Lkv};
    am_broadcast_strides(m, full, 4, a.ms);
    a.mask = am_arr_ptr(m);
    a.mdt = m->m.dtype;
  }
  if (p->has_qoff) {
    a.qoff = am_arr_ptr(in[at]);
    a.qoff_dt = in[at]->m.dtype;
  }
  const am_cuda_device_info *info = am_cuda_current_info();
  a.nsplit =
      am_cuda_sdpa_splits(a.B * a.Hq * a.Lq, a.Lkv, info ? info->sm_count : 0);
  am_arr *part = NULL;
  if (a.nsplit > 1) {
    part = scratch((int64_t)(am_cuda_sdpa_part_bytes(&a) / 4), AM_F32);
    if (!part) return AM_ERR_OOM;
    a.part = am_arr_ptr(part);
  }
  s = am_cuda_sdpa(&a);
  if (part) am_arr_release(part);
  return s;
}

void am_cuda_register_linalg(am_backend *b) {
  b->eval[AM_OP_MATMUL] = matmul_cuda;
  b->eval[AM_OP_ADDMM] = addmm_cuda;
  b->eval[AM_OP_GATHER_MM] = gmm_cuda;
  b->eval[AM_OP_QUANTIZED_MATMUL] = qmatmul_cuda;
  b->eval[AM_OP_GATHER_QMM] = gqmm_cuda;
  b->eval[AM_OP_QUANTIZE] = quantize_cuda;
  b->eval[AM_OP_DEQUANTIZE] = dequantize_cuda;
  b->eval[AM_OP_QUANTIZED_EMBEDDING] = qembed_cuda;
  b->eval[AM_OP_SDPA] = sdpa_cuda;
}
