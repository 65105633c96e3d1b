/* indexing.cu — gathers (take, take_along_axis), the scatter of
 * put_along_axis and the dynamic-window copies (dynamic_slice,
 * dynamic_slice_update). Elements move as words of their size, so every
 * dtype passes bit for bit; indices load through dtype.cuh as int64.
 *
 * The CPU stops with an error on an index out of range; a kernel cannot
 * (that would need the host to read device data), so here a gather
 * writes zero bits and a scatter skips the write. Valid indices,
 * negative ones included, behave exactly as on the CPU. */
#include "cuda_internal.h"
#include "dtype.cuh"
#include "indexing.h"

#define DIMS AM_CUIDX_DIMS

namespace {

inline unsigned grid_for(int64_t n) {
  int64_t b = (n + 255) / 256;
  return (unsigned)(b > 65536 ? 65536 : b < 1 ? 1 : b);
}

/* ----- gather ----- */

struct gather_args {
  int nd, it;
  int64_t n_ax, ax_stride;
  int64_t shape[DIMS], xs[DIMS], is[DIMS];
};

template <typename T>
__global__ void gather_kernel(T *__restrict__ out, const T *__restrict__ x,
                              const void *__restrict__ idx, gather_args a,
                              int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i, xo = 0, io = 0;
    for (int d = a.nd - 1; d >= 0; d--) {
      int64_t q = r / a.shape[d], c = r - q * a.shape[d];
      xo += c * a.xs[d];
      io += c * a.is[d];
      r = q;
    }
    int64_t k = am_ld_i64(idx, io, a.it);
    if (k < 0) k += a.n_ax;
    out[i] = (uint64_t)k < (uint64_t)a.n_ax ? x[xo + k * a.ax_stride] : T(0);
  }
}

/* ----- scatter ----- */

struct scatter_args {
  int nd, it;
  int64_t L, n_ax, o_ax, i_ax, v_ax;
  int64_t shape[DIMS], os[DIMS], is[DIMS], vs[DIMS];
};

/* One thread per outer position walks its whole line in order, so
 * duplicate indices resolve as on the CPU: the last write wins. */
template <typename T>
__global__ void scatter_kernel(T *out, const void *__restrict__ idx,
                               const T *__restrict__ vals, scatter_args a,
                               int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i, oo = 0, io = 0, vo = 0;
    for (int d = a.nd - 1; d >= 0; d--) {
      int64_t q = r / a.shape[d], c = r - q * a.shape[d];
      oo += c * a.os[d];
      io += c * a.is[d];
      vo += c * a.vs[d];
      r = q;
    }
    for (int64_t j = 0; j < a.L; j++) {
      int64_t k = am_ld_i64(idx, io + j * a.i_ax, a.it);
      if (k < 0) k += a.n_ax;
      if ((uint64_t)k < (uint64_t)a.n_ax)
        out[oo + k * a.o_ax] = vals[vo + j * a.v_ax];
    }
  }
}

/* ----- dynamic window copy ----- */

struct dyn_args {
  int nd, nax, st_dt;
  bool on_dst;
  int64_t st_stride;
  int64_t shape[DIMS], ss[DIMS], ds[DIMS];
  int64_t ax_st[DIMS], hi[DIMS];
};

template <typename T>
__global__ void dyn_copy_kernel(const T *__restrict__ src, T *__restrict__ dst,
                                const void *__restrict__ start, dyn_args a,
                                int64_t n) {
  /* The window's offset: a few cached loads per thread, cheaper than a
   * separate kernel and a scratch buffer. */
  int64_t base = 0;
  for (int i = 0; i < a.nax; i++) {
    int64_t v = am_ld_i64(start, i * a.st_stride, a.st_dt);
    v = v < 0 ? 0 : v > a.hi[i] ? a.hi[i] : v;
    base += v * a.ax_st[i];
  }
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i, so = 0, dof = 0;
    for (int d = a.nd - 1; d >= 0; d--) {
      int64_t q = r / a.shape[d], c = r - q * a.shape[d];
      so += c * a.ss[d];
      dof += c * a.ds[d];
      r = q;
    }
    if (a.on_dst)
      dof += base;
    else
      so += base;
    dst[dof] = src[so];
  }
}

/* Drops size-1 dims and merges dims contiguous for all k stride sets;
 * returns the element count (0: nothing to do) and the new rank. */
int64_t collapse(int nd, const int64_t *shape, int k, const int64_t *const *st,
                 int64_t *cs, int64_t (*cst)[DIMS], int *cnd) {
  int m = 0;
  int64_t n = 1;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 0) return 0;
    if (shape[d] == 1) continue;
    n *= shape[d];
    bool merge = m > 0;
    for (int j = 0; j < k && merge; j++)
      merge = cst[j][m - 1] == st[j][d] * shape[d];
    if (merge) {
      cs[m - 1] *= shape[d];
      for (int j = 0; j < k; j++)
        cst[j][m - 1] = st[j][d];
      continue;
    }
    cs[m] = shape[d];
    for (int j = 0; j < k; j++)
      cst[j][m] = st[j][d];
    m++;
  }
  *cnd = m;
  return n;
}

template <typename F> am_status by_size(int es, F f) {
  switch (es) {
  case 1:
    f((uint8_t)0);
    break;
  case 2:
    f((uint16_t)0);
    break;
  case 4:
    f((uint32_t)0);
    break;
  case 8:
    f((uint64_t)0);
    break;
  default:
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "element size %d", es);
  }
  return AM_OK;
}

} // namespace

extern "C" am_status am_cuidx_gather(int nd, const int64_t *shape, void *out,
                                     const void *x, const int64_t *xs,
                                     const void *idx, am_dtype idx_dtype,
                                     const int64_t *is, int64_t n_ax,
                                     int64_t ax_stride, int es) {
  if (nd > DIMS) return am_cuda_fail(AM_ERR_UNSUPPORTED, "%d dims", nd);
  gather_args a = {};
  int64_t ost[DIMS], cst[3][DIMS];
  /* out's own strides: row-major */
  int64_t acc = 1;
  for (int d = nd - 1; d >= 0; d--) {
    ost[d] = acc;
    acc *= shape[d];
  }
  const int64_t *st[3] = {ost, xs, is};
  int64_t n = collapse(nd, shape, 3, st, a.shape, cst, &a.nd);
  if (!n) return AM_OK;
  for (int d = 0; d < a.nd; d++) {
    a.xs[d] = cst[1][d];
    a.is[d] = cst[2][d];
  }
  a.it = idx_dtype;
  a.n_ax = n_ax;
  a.ax_stride = ax_stride;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  am_status r = by_size(es, [&](auto z) {
    using T = decltype(z);
    gather_kernel<T>
        <<<grid_for(n), 256, 0, s>>>((T *)out, (const T *)x, idx, a, n);
  });
  return r ? r : am_cuda_check(cudaGetLastError(), "gather kernel launch");
}

extern "C" am_status am_cuidx_scatter(int nd, const int64_t *shape, void *out,
                                      const int64_t *os, const void *idx,
                                      am_dtype idx_dtype, const int64_t *is,
                                      const void *vals, const int64_t *vs,
                                      int64_t L, int64_t n_ax, int64_t o_ax,
                                      int64_t i_ax, int64_t v_ax, int es) {
  if (nd > DIMS) return am_cuda_fail(AM_ERR_UNSUPPORTED, "%d dims", nd);
  if (L <= 0) return AM_OK;
  scatter_args a = {};
  int64_t cst[3][DIMS];
  const int64_t *st[3] = {os, is, vs};
  int64_t n = collapse(nd, shape, 3, st, a.shape, cst, &a.nd);
  if (!n) return AM_OK;
  for (int d = 0; d < a.nd; d++) {
    a.os[d] = cst[0][d];
    a.is[d] = cst[1][d];
    a.vs[d] = cst[2][d];
  }
  a.it = idx_dtype;
  a.L = L;
  a.n_ax = n_ax;
  a.o_ax = o_ax;
  a.i_ax = i_ax;
  a.v_ax = v_ax;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  am_status r = by_size(es, [&](auto z) {
    using T = decltype(z);
    scatter_kernel<T>
        <<<grid_for(n), 256, 0, s>>>((T *)out, idx, (const T *)vals, a, n);
  });
  return r ? r : am_cuda_check(cudaGetLastError(), "scatter kernel launch");
}

extern "C" am_status am_cuidx_dyn_copy(int nd, const int64_t *shape,
                                       const void *src, const int64_t *ss,
                                       void *dst, const int64_t *ds, int es,
                                       int nax, const int64_t *ax_st,
                                       const int64_t *hi, const void *start,
                                       am_dtype start_dtype,
                                       int64_t start_stride, bool on_dst) {
  if (nd > DIMS || nax > DIMS)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "%d dims", nd);
  dyn_args a = {};
  int64_t cst[2][DIMS];
  const int64_t *st[2] = {ss, ds};
  int64_t n = collapse(nd, shape, 2, st, a.shape, cst, &a.nd);
  if (!n) return AM_OK;
  for (int d = 0; d < a.nd; d++) {
    a.ss[d] = cst[0][d];
    a.ds[d] = cst[1][d];
  }
  a.nax = nax;
  for (int i = 0; i < nax; i++) {
    a.ax_st[i] = ax_st[i];
    a.hi[i] = hi[i];
  }
  a.st_dt = start_dtype;
  a.st_stride = start_stride;
  a.on_dst = on_dst;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  am_status r = by_size(es, [&](auto z) {
    using T = decltype(z);
    dyn_copy_kernel<T>
        <<<grid_for(n), 256, 0, s>>>((const T *)src, (T *)dst, start, a, n);
  });
  return r ? r : am_cuda_check(cudaGetLastError(), "dynamic slice kernel");
}
