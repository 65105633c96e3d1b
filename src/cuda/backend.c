/*
 * backend.c — the CUDA backend as the core sees it: memory through the
 * caching allocator, copies on the thread's stream, the kernel table
 * filled by the family files, and stream capture for compiled replays.
 * am_cuda_init registers it (am_backend_register).
 */
#include "copy.h"
#include "ops.h"

#include <pthread.h>
#include <stdlib.h>

static void *dev_alloc(size_t bytes) {
  void *p = NULL;
  return am_cuda_malloc(&p, bytes) ? NULL : p;
}

static void dev_free(void *p) {
  (void)am_cuda_free(p);
}

static am_status dev_upload(void *dst, const void *src, size_t n) {
  return am_cuda_memcpy_h2d(dst, src, n, NULL);
}

static am_status dev_copy(void *dst, const void *src, size_t n) {
  return am_cuda_memcpy_d2d(dst, src, n, NULL);
}

static am_status dev_download(void *dst, const void *src, size_t n) {
  return am_cuda_download(dst, src, n);
}

static am_status dev_sync(void) {
  return am_cuda_stream_synchronize();
}

/* ----- views ----- */

am_status am_cuda_views_broadcast(am_arr *const *a, int n, const int64_t *shape,
                                  int ndim, am_cuda_view *v) {
  int64_t st[AM_ITER_MAX_ARGS][AM_MAX_DIMS];
  if (n > AM_ITER_MAX_ARGS)
    return am_set_error(AM_ERR_UNSUPPORTED, "at most %d operands",
                        AM_ITER_MAX_ARGS);
  for (int k = 0; k < n; k++)
    am_broadcast_strides(a[k], shape, ndim, st[k]);
  /* Drop size-1 dims, then merge a dim into the next when every operand
   * is contiguous across the pair. */
  int64_t cs[AM_MAX_DIMS], cst[AM_ITER_MAX_ARGS][AM_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1) continue;
    if (nd) {
      bool merge = true;
      for (int k = 0; k < n && merge; k++)
        merge = cst[k][nd - 1] == st[k][d] * shape[d];
      if (merge) {
        cs[nd - 1] *= shape[d];
        for (int k = 0; k < n; k++)
          cst[k][nd - 1] = st[k][d];
        continue;
      }
    }
    cs[nd] = shape[d];
    for (int k = 0; k < n; k++)
      cst[k][nd] = st[k][d];
    nd++;
  }
  if (nd > AM_CUDA_DIMS)
    return am_set_error(AM_ERR_UNSUPPORTED,
                        "%d dims after collapsing (CUDA kernels take %d)", nd,
                        AM_CUDA_DIMS);
  for (int k = 0; k < n; k++) {
    v[k].data = a[k]->size ? am_arr_ptr(a[k]) : NULL;
    v[k].dtype = a[k]->m.dtype;
    v[k].ndim = nd;
    for (int d = 0; d < nd; d++) {
      v[k].shape[d] = cs[d];
      v[k].strides[d] = cst[k][d];
    }
  }
  return AM_OK;
}

am_status am_cuda_view_of(const am_arr *a, am_cuda_view *v) {
  am_arr *x = (am_arr *)a;
  return am_cuda_views_broadcast(&x, 1, a->m.shape, a->m.ndim, v);
}

am_status am_cuda_copy_view(const am_cuda_view *src, void *dst,
                            am_dtype dst_dtype, int64_t n) {
  return am_cuda_launch_copy(src->data, src->dtype, src->ndim, src->shape,
                             src->strides, dst, dst_dtype, n, NULL);
}

am_status am_cuda_contiguous(am_arr *a, am_dtype dt, am_arr **out) {
  *out = NULL;
  if (a->m.dtype == dt && a->offset == 0 && am_arr_is_contiguous(a)) {
    am_arr_retain(a);
    *out = a;
    return AM_OK;
  }
  am_meta m = a->m;
  m.dtype = dt;
  am_arr *c = am_arr_alloc(&m);
  if (!c) return am_set_error(AM_ERR_OOM, "out of memory");
  am_cuda_view v;
  am_status s = am_out_alloc(c);
  if (!s) s = am_cuda_view_of(a, &v);
  if (!s) s = am_cuda_copy_view(&v, am_arr_ptr(c), dt, a->size);
  if (s) {
    am_arr_release(c);
    return s;
  }
  c->device = AM_DEVICE_CUDA;
  *out = c;
  return AM_OK;
}

static am_status dev_copy_view(const am_arr *src, void *dst) {
  am_cuda_view v;
  am_status s = am_cuda_view_of(src, &v);
  return s ? s : am_cuda_copy_view(&v, dst, src->m.dtype, src->size);
}

/* ----- placement: to_device with the GPU as target ----- */

static am_status to_device_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  (void)n_in, (void)n_out, (void)params;
  return am_to_device_upload(in, out, AM_DEVICE_CUDA);
}

/* ----- registration ----- */

static am_backend g_be = {
    .name = "cuda",
    .alloc = dev_alloc,
    .free = dev_free,
    .upload = dev_upload,
    .copy = dev_copy,
    .copy_view = dev_copy_view,
    .download = dev_download,
    .synchronize = dev_sync,
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static am_status g_init_status;
static char g_init_msg[512];

static void init_once(void) {
  if (am_cuda_device_count() <= 0) {
    g_init_status = AM_ERR_DEVICE;
    snprintf(g_init_msg, sizeof g_init_msg, "am_cuda_init: no CUDA device: %s",
             am_cuda_last_error());
    return;
  }
  g_be.eval[AM_OP_TO_DEVICE] = to_device_cuda;
  am_cuda_register_elementwise(&g_be);
  am_cuda_register_creation(&g_be);
  am_cuda_register_reduce(&g_be);
  am_cuda_register_shape(&g_be);
  am_cuda_register_linalg(&g_be);
  am_cuda_register_kernel(&g_be);
  am_cuda_register_capture(&g_be);
  am_backend_register(AM_DEVICE_CUDA, &g_be);
}

am_status am_cuda_init(void) {
  pthread_once(&g_once, init_once);
  if (g_init_status) return am_set_error(g_init_status, "%s", g_init_msg);
  return AM_OK;
}
