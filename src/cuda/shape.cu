/* shape.cu — the one kernel of the copying shape ops (reshape of a
 * non-viewable layout, concatenate, pad, repeat, tile) and of the
 * indexing family's plain region copies: a strided copy or fill that
 * moves elements by their size, so every dtype (NaN payloads included)
 * comes through bit for bit. One thread per element. */
#include "cuda_internal.h"
#include "shape.h"

#include <string.h>

namespace {

struct copy_args {
  int nd;
  int64_t shape[AM_CUSHAPE_DIMS], ss[AM_CUSHAPE_DIMS], ds[AM_CUSHAPE_DIMS];
};

template <typename T, bool FILL>
__global__ void sh_copy_kernel(const T *__restrict__ src, T *__restrict__ dst,
                               T fill, copy_args a, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i, so = 0, dof = 0;
    for (int d = a.nd - 1; d >= 0; d--) {
      int64_t q = r / a.shape[d], c = r - q * a.shape[d];
      so += c * a.ss[d];
      dof += c * a.ds[d];
      r = q;
    }
    dst[dof] = FILL ? fill : src[so];
  }
}

template <typename T>
am_status launch(const void *src, void *dst, uint64_t bits, const copy_args &a,
                 int64_t n) {
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65536) blocks = 65536;
  T fill;
  memcpy(&fill, &bits, sizeof fill); /* little endian: the low bytes */
  if (src)
    sh_copy_kernel<T, false>
        <<<(unsigned)blocks, 256, 0, s>>>((const T *)src, (T *)dst, fill, a, n);
  else
    sh_copy_kernel<T, true>
        <<<(unsigned)blocks, 256, 0, s>>>((const T *)src, (T *)dst, fill, a, n);
  return am_cuda_check(cudaGetLastError(), "shape copy kernel launch");
}

} // namespace

extern "C" am_status am_cushape_copy(int nd, const int64_t *shape,
                                     const void *src, const int64_t *src_st,
                                     void *dst, const int64_t *dst_st, int es,
                                     uint64_t fill_bits) {
  /* Drop size-1 dims and merge a dim into the previous one when both
   * sides are contiguous across the pair (as the CPU's am_sh_copy). */
  copy_args a = {};
  int k = 0;
  int64_t n = 1;
  for (int i = 0; i < nd; i++) {
    if (shape[i] == 0) return AM_OK;
    if (shape[i] == 1) continue;
    int64_t ss = src ? src_st[i] : 0;
    n *= shape[i];
    if (k && a.ss[k - 1] == ss * shape[i] &&
        a.ds[k - 1] == dst_st[i] * shape[i]) {
      a.shape[k - 1] *= shape[i];
      a.ss[k - 1] = ss;
      a.ds[k - 1] = dst_st[i];
      continue;
    }
    if (k == AM_CUSHAPE_DIMS)
      return am_cuda_fail(AM_ERR_UNSUPPORTED,
                          "strided copy over more than %d dims",
                          AM_CUSHAPE_DIMS);
    a.shape[k] = shape[i];
    a.ss[k] = ss;
    a.ds[k] = dst_st[i];
    k++;
  }
  a.nd = k;
  switch (es) {
  case 1:
    return launch<uint8_t>(src, dst, fill_bits, a, n);
  case 2:
    return launch<uint16_t>(src, dst, fill_bits, a, n);
  case 4:
    return launch<uint32_t>(src, dst, fill_bits, a, n);
  case 8:
    return launch<uint64_t>(src, dst, fill_bits, a, n);
  default:
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "element size %d", es);
  }
}
