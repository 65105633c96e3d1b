/* sort.cu — every row becomes (key, index) pairs sorted by CUB's radix
 * sort (DeviceRadixSort for a single row such as a 152k-vocab sampling
 * row, DeviceSegmentedRadixSort for many). Radix sort is stable and the
 * indices start in order, so pairs end in (key, index) order: the CPU's
 * tie order (its merge sort is stable).
 *
 * Keys are unsigned words whose order is the CPU's: integers with the
 * sign bit flipped; floats by the usual sign-magnitude flip, after
 * mapping -0 to +0 (the CPU's `<` finds them equal) and every NaN to the
 * largest word (NaN last, NaNs equal). float16/bfloat16 keep 16-bit keys:
 * their order is that of their float32 values. topk sorts descending by
 * inverting the keys (NaN first: it counts as the largest), takes the
 * first k. argpartition returns a full argsort, a valid partition.
 * sort and topk gather the values from x by index, bit for bit. */
#include "cuda_internal.h"
#include "sort.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <limits.h>

namespace {

struct rowmap {
  int nd;
  int64_t shape[AM_CUSORT_DIMS], xst[AM_CUSORT_DIMS], ost[AM_CUSORT_DIMS];
};

__device__ __forceinline__ void row_offsets(const rowmap &m, int64_t r,
                                            int64_t *xo, int64_t *oo) {
  int64_t a = 0, b = 0;
  for (int d = m.nd - 1; d >= 0; d--) {
    int64_t q = r / m.shape[d], c = r - q * m.shape[d];
    a += c * m.xst[d];
    b += c * m.ost[d];
    r = q;
  }
  *xo = a;
  *oo = b;
}

/* Sign-magnitude float bits -> an unsigned word in the CPU's order. */
template <typename U>
__device__ __forceinline__ U fkey(U b, U sign, U inf_bits) {
  U mag = b & (sign - 1);
  if (mag > inf_bits) return ~(U)0 & (sign | (sign - 1)); /* NaN: largest */
  if (mag == 0) b = 0;                                    /* -0 == +0 */
  return (b & sign) ? (U)(~b & (sign | (sign - 1))) : (U)(b | sign);
}

template <typename K>
__device__ __forceinline__ K load_key(const void *x, int64_t o, int dt) {
  switch (dt) {
  case AM_BOOL:
  case AM_U8:
    return ((const uint8_t *)x)[o];
  case AM_I8:
    return (K)(uint8_t)(((const uint8_t *)x)[o] ^ 0x80u);
  case AM_U32:
    return ((const uint32_t *)x)[o];
  case AM_I32:
    return (K)(((const uint32_t *)x)[o] ^ 0x80000000u);
  case AM_F16:
    return (K)fkey<uint32_t>(((const uint16_t *)x)[o], 0x8000u, 0x7c00u);
  case AM_BF16:
    return (K)fkey<uint32_t>(((const uint16_t *)x)[o], 0x8000u, 0x7f80u);
  case AM_F32:
    return (K)fkey<uint32_t>(((const uint32_t *)x)[o], 0x80000000u,
                             0x7f800000u);
  case AM_I64:
    return (K)(((const uint64_t *)x)[o] ^ 0x8000000000000000ull);
  default:
    return (K)fkey<uint64_t>(((const uint64_t *)x)[o], 0x8000000000000000ull,
                             0x7ff0000000000000ull);
  }
}

template <typename K>
__global__ void prep_kernel(const void *x, int dt, rowmap m, int64_t n,
                            int64_t xs, K flip, K *keys, uint32_t *vals,
                            int64_t total) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / n, j = i - r * n, xo, oo;
    row_offsets(m, r, &xo, &oo);
    keys[i] = load_key<K>(x, xo + j * xs, dt) ^ flip;
    vals[i] = (uint32_t)j;
  }
}

__global__ void offsets_kernel(int *offs, int64_t rows, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i <= rows;
       i += (int64_t)gridDim.x * blockDim.x)
    offs[i] = (int)(i * n);
}

__global__ void out_kernel(const void *x, void *out, int es, bool arg, rowmap m,
                           int64_t n, int64_t mo, int64_t xs, int64_t os,
                           const uint32_t *vals, int64_t total) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / mo, j = i - r * mo, xo, oo;
    row_offsets(m, r, &xo, &oo);
    uint32_t id = vals[r * n + j];
    int64_t d = oo + j * os, s = xo + (int64_t)id * xs;
    if (arg) {
      ((uint32_t *)out)[d] = id;
      continue;
    }
    switch (es) {
    case 1:
      ((uint8_t *)out)[d] = ((const uint8_t *)x)[s];
      break;
    case 2:
      ((uint16_t *)out)[d] = ((const uint16_t *)x)[s];
      break;
    case 4:
      ((uint32_t *)out)[d] = ((const uint32_t *)x)[s];
      break;
    default:
      ((uint64_t *)out)[d] = ((const uint64_t *)x)[s];
      break;
    }
  }
}

int key_bits(am_dtype t) {
  switch (t) {
  case AM_BOOL:
  case AM_U8:
  case AM_I8:
    return 8;
  case AM_F16:
  case AM_BF16:
    return 16;
  case AM_I64:
  case AM_F64:
    return 64;
  default:
    return 32;
  }
}

int elem_size(am_dtype t) {
  switch (t) {
  case AM_BOOL:
  case AM_U8:
  case AM_I8:
    return 1;
  case AM_F16:
  case AM_BF16:
    return 2;
  case AM_I64:
  case AM_F64:
    return 8;
  default:
    return 4;
  }
}

size_t align_up(size_t v) {
  return (v + 255) & ~(size_t)255;
}

struct layout {
  size_t keys_in, keys_out, vals_in, vals_out, offs, temp, total, temp_bytes;
};

/* Sizes the scratch; with scratch non-NULL also queues the work. */
template <typename K>
am_status sort_impl(const am_cusort_job *j, char *scratch, size_t bytes,
                    size_t *need) {
  int64_t total = j->rows * j->n;
  if (total > INT_MAX || j->rows > INT_MAX - 1)
    return am_cuda_fail(AM_ERR_UNSUPPORTED,
                        "%lld rows of %lld elements (at most 2^31 - 1 in all)",
                        (long long)j->rows, (long long)j->n);
  if (j->nd > AM_CUSORT_DIMS)
    return am_cuda_fail(AM_ERR_UNSUPPORTED, "%d dims", j->nd);
  int bits = key_bits(j->dtype);
  int N = (int)total, R = (int)j->rows;
  cudaStream_t s = am_cuda_resolve_stream(NULL);
  layout L;
  size_t kb = align_up((size_t)N * sizeof(K)), vb = align_up((size_t)N * 4);
  L.keys_in = 0;
  L.keys_out = kb;
  L.vals_in = 2 * kb;
  L.vals_out = 2 * kb + vb;
  L.offs = 2 * kb + 2 * vb;
  L.temp = L.offs + align_up((size_t)(R + 1) * sizeof(int));
  K *ki = scratch ? (K *)(scratch + L.keys_in) : nullptr;
  K *ko = scratch ? (K *)(scratch + L.keys_out) : nullptr;
  uint32_t *vi = scratch ? (uint32_t *)(scratch + L.vals_in) : nullptr;
  uint32_t *vo = scratch ? (uint32_t *)(scratch + L.vals_out) : nullptr;
  int *offs = scratch ? (int *)(scratch + L.offs) : nullptr;
  void *temp = scratch ? scratch + L.temp : nullptr;
  size_t tb = 0;
  /* sizing (temp NULL) and running take the same call */
  auto cub_sort = [&](void *t, size_t &b) -> cudaError_t {
    if (R == 1)
      return cub::DeviceRadixSort::SortPairs(t, b, ki, ko, vi, vo, N, 0, bits,
                                             s);
    return cub::DeviceSegmentedRadixSort::SortPairs(t, b, ki, ko, vi, vo, N, R,
                                                    offs, offs + 1, 0, bits, s);
  };
  AM_CUDA_TRY(cub_sort(nullptr, tb));
  L.total = L.temp + align_up(tb);
  if (!scratch) {
    *need = L.total;
    return AM_OK;
  }
  if (bytes < L.total)
    return am_cuda_fail(AM_ERR_INTERNAL, "sort scratch too small");
  rowmap m = {};
  m.nd = j->nd;
  for (int d = 0; d < j->nd; d++) {
    m.shape[d] = j->shape[d];
    m.xst[d] = j->xst[d];
    m.ost[d] = j->ost[d];
  }
  /* topk: descending keys inside the key's bits */
  K flip = j->kind == AM_CUSORT_TOPK
               ? (bits == 64 ? ~(K)0 : (K)(((uint64_t)1 << bits) - 1))
               : (K)0;
  auto grid = [](int64_t n) {
    int64_t b = (n + 255) / 256;
    return (unsigned)(b > 65536 ? 65536 : b < 1 ? 1 : b);
  };
  prep_kernel<K>
      <<<grid(N), 256, 0, s>>>(j->x, j->dtype, m, j->n, j->xs, flip, ki, vi, N);
  AM_CUDA_TRY(cudaGetLastError());
  if (R > 1) {
    offsets_kernel<<<grid(R + 1), 256, 0, s>>>(offs, R, j->n);
    AM_CUDA_TRY(cudaGetLastError());
  }
  AM_CUDA_TRY(cub_sort(temp, tb));
  bool arg = j->kind == AM_CUSORT_ARGSORT || j->kind == AM_CUSORT_ARGPARTITION;
  int64_t outs = j->rows * j->m;
  out_kernel<<<grid(outs), 256, 0, s>>>(j->x, j->out, elem_size(j->dtype), arg,
                                        m, j->n, j->m, j->xs, j->os, vo, outs);
  return am_cuda_check(cudaGetLastError(), "sort output kernel");
}

am_status dispatch(const am_cusort_job *j, char *scratch, size_t bytes,
                   size_t *need) {
  if (key_bits(j->dtype) == 64)
    return sort_impl<uint64_t>(j, scratch, bytes, need);
  return sort_impl<uint32_t>(j, scratch, bytes, need);
}

} // namespace

extern "C" am_status am_cusort_scratch(const am_cusort_job *j, size_t *bytes) {
  *bytes = 0;
  if (j->rows * j->n == 0) return AM_OK;
  return dispatch(j, nullptr, 0, bytes);
}

extern "C" am_status am_cusort_run(const am_cusort_job *j, void *scratch,
                                   size_t bytes) {
  if (j->rows * j->n == 0 || j->rows * j->m == 0) return AM_OK;
  size_t need;
  return dispatch(j, (char *)scratch, bytes, &need);
}
