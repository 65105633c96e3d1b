/*
 * runtime.c — the CUDA backend's device runtime: errors, device queries,
 * per-thread streams, the caching allocator and copies (see cuda.h).
 */
#include "cuda_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 *  Errors
 * ====================================================================== */

static _Thread_local char tl_msg[512];

#ifdef AM_CUDA_WITH_AMORPH
/* libamorph's error channel (src/core/error.c). */
am_status am_set_error(am_status s, const char *fmt, ...);
#endif

am_status am_cuda_fail(am_status s, const char *fmt, ...) {
  char buf[sizeof tl_msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  memcpy(tl_msg, buf, sizeof tl_msg);
#ifdef AM_CUDA_WITH_AMORPH
  am_set_error(s, "%s", tl_msg);
#endif
  return s;
}

am_status am_cuda_check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return AM_OK;
  (void)cudaGetLastError(); /* clear the non-sticky error state */
  am_status s = e == cudaErrorMemoryAllocation ? AM_ERR_OOM : AM_ERR_DEVICE;
  return am_cuda_fail(s, "cuda: %s failed: %s (%s)", what,
                      cudaGetErrorString(e), cudaGetErrorName(e));
}

const char *am_cuda_last_error(void) {
  return tl_msg;
}

/* ======================================================================
 *  Devices
 * ====================================================================== */

int am_cuda_device_count(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    am_cuda_check(e, "cudaGetDeviceCount");
    return 0;
  }
  return n;
}

am_status am_cuda_get_device_info(int dev, am_cuda_device_info *out) {
  if (!out) return am_cuda_fail(AM_ERR_INVALID_ARG, "cuda: info: NULL out");
  memset(out, 0, sizeof *out);
  int n = am_cuda_device_count();
  if (dev < 0 || dev >= n)
    return am_cuda_fail(AM_ERR_INVALID_ARG,
                        "cuda: device %d out of range (%d devices)", dev, n);
  struct cudaDeviceProp p;
  AM_CUDA_TRY(cudaGetDeviceProperties(&p, dev));
  snprintf(out->name, sizeof out->name, "%s", p.name);
  out->cc_major = p.major;
  out->cc_minor = p.minor;
  out->sm_count = p.multiProcessorCount;
  out->total_mem = p.totalGlobalMem;
  out->l2_bytes = p.l2CacheSize;
  out->mem_bus_bits = p.memoryBusWidth;
  out->smem_per_block_optin = p.sharedMemPerBlockOptin;
  int cur = 0;
  AM_CUDA_TRY(cudaGetDevice(&cur));
  if (cur == dev) {
    size_t fr = 0, tot = 0;
    AM_CUDA_TRY(cudaMemGetInfo(&fr, &tot));
    out->free_mem = fr;
  }
  return AM_OK;
}

am_status am_cuda_set_device(int dev) {
  int n = am_cuda_device_count();
  if (dev < 0 || dev >= n)
    return am_cuda_fail(AM_ERR_INVALID_ARG,
                        "cuda: device %d out of range (%d devices)", dev, n);
  AM_CUDA_TRY(cudaSetDevice(dev));
  return AM_OK;
}

#define AM_CUDA_MAX_DEVICES 16

static pthread_mutex_t g_info_mu = PTHREAD_MUTEX_INITIALIZER;
static am_cuda_device_info g_info[AM_CUDA_MAX_DEVICES];
static bool g_info_ok[AM_CUDA_MAX_DEVICES];

const am_cuda_device_info *am_cuda_current_info(void) {
  int dev = 0;
  if (am_cuda_check(cudaGetDevice(&dev), "cudaGetDevice") != AM_OK) return NULL;
  if (dev < 0 || dev >= AM_CUDA_MAX_DEVICES) {
    am_cuda_fail(AM_ERR_UNSUPPORTED, "cuda: device %d: too many", dev);
    return NULL;
  }
  pthread_mutex_lock(&g_info_mu);
  const am_cuda_device_info *r = NULL;
  if (g_info_ok[dev] || am_cuda_get_device_info(dev, &g_info[dev]) == AM_OK) {
    g_info_ok[dev] = true;
    r = &g_info[dev];
  }
  pthread_mutex_unlock(&g_info_mu);
  return r;
}

/* ======================================================================
 *  Streams: one non-blocking stream per thread and device
 * ====================================================================== */

static _Thread_local cudaStream_t tl_stream[AM_CUDA_MAX_DEVICES];

/* Every stream created, for am_cuda_shutdown. */
static pthread_mutex_t g_stream_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  cudaStream_t s;
  int dev;
} * g_streams;
static size_t g_nstreams, g_capstreams;

void *am_cuda_stream(void) {
  int dev = 0;
  if (am_cuda_check(cudaGetDevice(&dev), "cudaGetDevice") != AM_OK) return NULL;
  if (dev < 0 || dev >= AM_CUDA_MAX_DEVICES) {
    am_cuda_fail(AM_ERR_UNSUPPORTED, "cuda: device %d: too many", dev);
    return NULL;
  }
  if (tl_stream[dev]) return tl_stream[dev];
  cudaStream_t s = NULL;
  if (am_cuda_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
                    "cudaStreamCreateWithFlags") != AM_OK)
    return NULL;
  pthread_mutex_lock(&g_stream_mu);
  if (g_nstreams == g_capstreams) {
    size_t cap = g_capstreams ? 2 * g_capstreams : 8;
    void *p = realloc(g_streams, cap * sizeof *g_streams);
    if (!p) {
      pthread_mutex_unlock(&g_stream_mu);
      cudaStreamDestroy(s);
      am_cuda_fail(AM_ERR_OOM, "cuda: stream registry: out of memory");
      return NULL;
    }
    g_streams = p;
    g_capstreams = cap;
  }
  g_streams[g_nstreams].s = s;
  g_streams[g_nstreams].dev = dev;
  g_nstreams++;
  pthread_mutex_unlock(&g_stream_mu);
  tl_stream[dev] = s;
  return s;
}

cudaStream_t am_cuda_resolve_stream(void *stream) {
  return stream ? (cudaStream_t)stream : (cudaStream_t)am_cuda_stream();
}

am_status am_cuda_stream_synchronize(void) {
  cudaStream_t s = am_cuda_stream();
  if (!s) return AM_ERR_DEVICE;
  AM_CUDA_TRY(cudaStreamSynchronize(s));
  return AM_OK;
}

am_status am_cuda_device_synchronize(void) {
  AM_CUDA_TRY(cudaDeviceSynchronize());
  return AM_OK;
}

/* ======================================================================
 *  Caching allocator
 * ====================================================================== */

typedef struct am_cblock {
  void *ptr;
  size_t size, req;
  cudaStream_t stream;
  int dev;
  int pool;               /* 0, or the capture pool that owns it */
  struct am_cblock *next; /* free list */
} am_cblock;

/* The thread's capture pool (0: none): blocks it hands out or frees stay
 * with that pool until am_cuda_pool_release, because a captured CUDA graph
 * writes to them whenever it is replayed. */
static _Thread_local int tl_pool;
static int g_next_pool;

#define AM_NCLASS 256

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static am_cblock *g_free[AM_NCLASS];
/* Live blocks by pointer: open addressing, linear probing. */
static am_cblock **g_live;
static size_t g_live_cap, g_live_n;
static am_cuda_mem_stats g_st;

static int size_class_index(size_t n, size_t *size) {
  if (n <= 512) {
    *size = 512;
    return 0;
  }
  int e = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^e < n */
  size_t step = (size_t)1 << (e - 2);
  size_t s = (n + step - 1) / step * step;
  *size = s;
  int k = (int)((s >> (e - 2)) - 4); /* 1..4 */
  return (e - 9) * 4 + k;
}

size_t am_cuda_size_class(size_t bytes) {
  size_t s = 0;
  size_class_index(bytes ? bytes : 1, &s);
  return s;
}

static size_t ptr_hash(const void *p, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)p;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (size_t)h & (cap - 1);
}

static bool live_insert(am_cblock *b) {
  if (2 * (g_live_n + 1) > g_live_cap) {
    size_t cap = g_live_cap ? 2 * g_live_cap : 256;
    am_cblock **t = calloc(cap, sizeof *t);
    if (!t) return false;
    for (size_t i = 0; i < g_live_cap; i++) {
      if (!g_live[i]) continue;
      size_t j = ptr_hash(g_live[i]->ptr, cap);
      while (t[j])
        j = (j + 1) & (cap - 1);
      t[j] = g_live[i];
    }
    free(g_live);
    g_live = t;
    g_live_cap = cap;
  }
  size_t j = ptr_hash(b->ptr, g_live_cap);
  while (g_live[j])
    j = (j + 1) & (g_live_cap - 1);
  g_live[j] = b;
  g_live_n++;
  return true;
}

static am_cblock *live_remove(const void *p) {
  if (!g_live_cap) return NULL;
  size_t m = g_live_cap - 1, j = ptr_hash(p, g_live_cap);
  while (g_live[j] && g_live[j]->ptr != p)
    j = (j + 1) & m;
  am_cblock *b = g_live[j];
  if (!b) return NULL;
  g_live[j] = NULL;
  g_live_n--;
  /* Backward-shift the rest of the cluster. */
  size_t i = j;
  for (size_t k = (j + 1) & m; g_live[k]; k = (k + 1) & m) {
    size_t h = ptr_hash(g_live[k]->ptr, g_live_cap);
    bool move = (i <= k) ? (h <= i || h > k) : (h <= i && h > k);
    if (move) {
      g_live[i] = g_live[k];
      g_live[k] = NULL;
      i = k;
    }
  }
  return b;
}

/* cudaFree's every cached block (of every device); g_mu held. */
static am_status release_cached_locked(void) {
  am_status st = AM_OK;
  int cur = 0;
  if (cudaGetDevice(&cur) != cudaSuccess) cur = -1;
  for (int c = 0; c < AM_NCLASS; c++) {
    while (g_free[c]) {
      am_cblock *b = g_free[c];
      g_free[c] = b->next;
      if (b->dev != cur) cudaSetDevice(b->dev);
      am_status s = am_cuda_check(cudaFree(b->ptr), "cudaFree");
      if (b->dev != cur && cur >= 0) cudaSetDevice(cur);
      if (s != AM_OK && st == AM_OK) st = s;
      g_st.cached -= b->size;
      free(b);
    }
  }
  g_st.reserved = g_st.allocated + g_st.cached;
  return st;
}

am_status am_cuda_malloc(void **ptr, size_t bytes) {
  if (!ptr) return am_cuda_fail(AM_ERR_INVALID_ARG, "cuda: malloc: NULL ptr");
  *ptr = NULL;
  if (bytes == 0)
    return am_cuda_fail(AM_ERR_INVALID_ARG, "cuda: malloc of 0 bytes");
  if (bytes > ((size_t)1 << 50))
    return am_cuda_fail(AM_ERR_OOM, "cuda: malloc of %zu bytes: too large",
                        bytes);
  size_t size = 0;
  int c = size_class_index(bytes, &size);
  int dev = 0;
  AM_CUDA_TRY(cudaGetDevice(&dev));
  cudaStream_t s = am_cuda_stream();
  if (!s) return AM_ERR_DEVICE;

  pthread_mutex_lock(&g_mu);
  am_cblock **pp, *b = NULL;
  /* A capture takes its own pool's blocks first, then general ones. */
  for (int pass = tl_pool ? 0 : 1; pass < 2 && !b; pass++) {
    int want = pass == 0 ? tl_pool : 0;
    for (pp = &g_free[c]; *pp; pp = &(*pp)->next)
      if ((*pp)->stream == s && (*pp)->dev == dev && (*pp)->pool == want) {
        b = *pp;
        *pp = b->next;
        g_st.cached -= b->size;
        g_st.n_cache_hits++;
        break;
      }
  }
  am_status st = AM_OK;
  if (!b) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation && !tl_pool) {
      (void)cudaGetLastError();
      release_cached_locked();
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      char what[96];
      snprintf(what, sizeof what, "cudaMalloc(%zu bytes)", size);
      st = am_cuda_check(e, what);
    } else {
      b = malloc(sizeof *b);
      if (!b) {
        cudaFree(p);
        st = am_cuda_fail(AM_ERR_OOM, "cuda: malloc: host out of memory");
      } else {
        *b = (am_cblock){.ptr = p, .size = size, .stream = s, .dev = dev};
        g_st.n_cuda_mallocs++;
      }
    }
  }
  if (b) {
    b->req = bytes;
    b->next = NULL;
    b->pool = tl_pool;
    if (!live_insert(b)) {
      /* Keep the block cached rather than leak it. */
      b->next = g_free[c];
      g_free[c] = b;
      g_st.cached += b->size;
      b = NULL;
      st = am_cuda_fail(AM_ERR_OOM, "cuda: malloc: host out of memory");
    } else {
      g_st.allocated += b->size;
      g_st.requested += bytes;
      if (g_st.allocated > g_st.peak_allocated)
        g_st.peak_allocated = g_st.allocated;
    }
  }
  g_st.reserved = g_st.allocated + g_st.cached;
  pthread_mutex_unlock(&g_mu);
  if (b) *ptr = b->ptr;
  return st;
}

am_status am_cuda_free(void *ptr) {
  if (!ptr) return AM_OK;
  pthread_mutex_lock(&g_mu);
  am_cblock *b = live_remove(ptr);
  if (b) {
    size_t sz = 0;
    int c = size_class_index(b->req, &sz);
    b->next = g_free[c];
    g_free[c] = b;
    g_st.allocated -= b->size;
    g_st.requested -= b->req;
    g_st.cached += b->size;
    g_st.n_frees++;
  }
  pthread_mutex_unlock(&g_mu);
  if (!b)
    return am_cuda_fail(AM_ERR_INVALID_ARG,
                        "cuda: free of %p, which am_cuda_malloc did not "
                        "hand out (or was freed already)",
                        ptr);
  return AM_OK;
}

int am_cuda_pool_begin(void) {
  pthread_mutex_lock(&g_mu);
  tl_pool = ++g_next_pool;
  pthread_mutex_unlock(&g_mu);
  return tl_pool;
}

void am_cuda_pool_end(void) {
  tl_pool = 0;
}

void am_cuda_pool_release(int pool) {
  if (!pool) return;
  pthread_mutex_lock(&g_mu);
  for (int c = 0; c < AM_NCLASS; c++)
    for (am_cblock *b = g_free[c]; b; b = b->next)
      if (b->pool == pool) b->pool = 0;
  for (size_t i = 0; i < g_live_cap; i++)
    if (g_live[i] && g_live[i]->pool == pool) g_live[i]->pool = 0;
  pthread_mutex_unlock(&g_mu);
}

am_cuda_mem_stats am_cuda_memory_stats(void) {
  pthread_mutex_lock(&g_mu);
  am_cuda_mem_stats s = g_st;
  pthread_mutex_unlock(&g_mu);
  return s;
}

void am_cuda_reset_peak(void) {
  pthread_mutex_lock(&g_mu);
  g_st.peak_allocated = g_st.allocated;
  pthread_mutex_unlock(&g_mu);
}

am_status am_cuda_empty_cache(void) {
  AM_CUDA_TRY(cudaDeviceSynchronize());
  pthread_mutex_lock(&g_mu);
  am_status st = release_cached_locked();
  pthread_mutex_unlock(&g_mu);
  return st;
}

void am_cuda_shutdown(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
  } else {
    (void)am_cuda_empty_cache();
    am_cuda_qmm_release();
  }
  pthread_mutex_lock(&g_stream_mu);
  for (size_t i = 0; i < g_nstreams; i++)
    cudaStreamDestroy(g_streams[i].s);
  free(g_streams);
  g_streams = NULL;
  g_nstreams = g_capstreams = 0;
  pthread_mutex_unlock(&g_stream_mu);
  /* This thread's handles are gone; other threads must not use theirs. */
  memset(tl_stream, 0, sizeof tl_stream);
  pthread_mutex_lock(&g_mu);
  if (g_live_n == 0) {
    free(g_live);
    g_live = NULL;
    g_live_cap = 0;
  }
  pthread_mutex_unlock(&g_mu);
}

/* ======================================================================
 *  Copies
 * ====================================================================== */

static am_status copy(void *dst, const void *src, size_t n,
                      enum cudaMemcpyKind kind, void *stream,
                      const char *what) {
  if (!n) return AM_OK;
  if (!dst || !src)
    return am_cuda_fail(AM_ERR_INVALID_ARG, "cuda: %s: NULL pointer", what);
  cudaStream_t s = am_cuda_resolve_stream(stream);
  if (!s) return AM_ERR_DEVICE;
  return am_cuda_check(cudaMemcpyAsync(dst, src, n, kind, s), what);
}

am_status am_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes,
                             void *stream) {
  return copy(dst, src, bytes, cudaMemcpyHostToDevice, stream,
              "cudaMemcpyAsync(host to device)");
}
am_status am_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes,
                             void *stream) {
  return copy(dst, src, bytes, cudaMemcpyDeviceToHost, stream,
              "cudaMemcpyAsync(device to host)");
}
am_status am_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes,
                             void *stream) {
  return copy(dst, src, bytes, cudaMemcpyDeviceToDevice, stream,
              "cudaMemcpyAsync(device to device)");
}

am_status am_cuda_memset(void *dst, int value, size_t bytes, void *stream) {
  if (!bytes) return AM_OK;
  if (!dst) return am_cuda_fail(AM_ERR_INVALID_ARG, "cuda: memset: NULL");
  cudaStream_t s = am_cuda_resolve_stream(stream);
  if (!s) return AM_ERR_DEVICE;
  return am_cuda_check(cudaMemsetAsync(dst, value, bytes, s),
                       "cudaMemsetAsync");
}

am_status am_cuda_upload(void *dst, const void *src, size_t bytes) {
  am_status st = am_cuda_memcpy_h2d(dst, src, bytes, NULL);
  return st != AM_OK ? st : am_cuda_stream_synchronize();
}

am_status am_cuda_download(void *dst, const void *src, size_t bytes) {
  am_status st = am_cuda_memcpy_d2h(dst, src, bytes, NULL);
  return st != AM_OK ? st : am_cuda_stream_synchronize();
}
