/*
 * buffer.c — refcounted data buffers and the size-class pool behind them.
 *
 * Freed buffers go back to a free list per size class (four classes per
 * power of two, so at most 25% slack) instead of to the system: a decode
 * loop that allocates the same sizes every step then allocates nothing.
 * The pool keeps at most AM_POOL_LIMIT bytes (env, default 1 GiB) idle.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#define N_CLASSES 256
#define ALIGN 64

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static am_buffer *g_free[N_CLASSES]; /* idle buffers per size class */
static size_t g_pooled, g_active, g_peak, g_limit;
static uint64_t g_allocs, g_reuses, g_donated;

static int size_class(size_t bytes, size_t *cap) {
  if (bytes <= ALIGN) {
    *cap = ALIGN;
    return 0;
  }
  int k = 63 - __builtin_clzll((
                   unsigned long long)(bytes - 1)); /* 2^k < bytes <= 2^(k+1) */
  size_t base = (size_t)1 << k, step = base / 4;
  size_t sub = (bytes - base + step - 1) / step; /* 1..4 */
  *cap = base + sub * step;
  if (*cap % ALIGN) *cap += ALIGN - *cap % ALIGN;
  return k * 4 + (int)sub - 1;
}

/* Big buffers (weights, KV caches, recurrent states) start on 2 MiB
 * boundaries and ask for transparent huge pages: a decode step touches a
 * few MiB in each of hundreds of expert matrices spread over gigabytes,
 * and with 4 KiB pages the page walks (page tables of tens of MiB, out of
 * cache) cost as much as the reads. */
#define HUGE_BYTES ((size_t)2 << 20)
static void *data_alloc(size_t cap) {
  /* from 8 MiB on, so that rounding up to whole huge pages wastes < 25% */
  if (cap < 4 * HUGE_BYTES) return aligned_alloc(ALIGN, cap);
  size_t n = (cap + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES;
  void *d = aligned_alloc(HUGE_BYTES, n);
#ifdef MADV_HUGEPAGE
  if (d) (void)madvise(d, n, MADV_HUGEPAGE);
#endif
  return d;
}

static size_t pool_limit(void) {
  if (!g_limit) {
    const char *e = getenv("AM_POOL_LIMIT");
    long long v = e ? atoll(e) : 0;
    g_limit = v > 0 ? (size_t)v : ((size_t)1 << 30);
  }
  return g_limit;
}

static const am_backend *g_backends[AM_DEVICE_COUNT];

void am_backend_register(int device, const am_backend *b) {
  if (device > AM_DEVICE_CPU && device < AM_DEVICE_COUNT)
    g_backends[device] = b;
}

const am_backend *am_backend_get(int device) {
  return device > AM_DEVICE_CPU && device < AM_DEVICE_COUNT ? g_backends[device]
                                                            : NULL;
}

bool am_device_available(am_device d) {
  return d == AM_DEVICE_CPU || am_backend_get(d) != NULL;
}

am_buffer *am_buffer_new_on(size_t bytes, int device) {
  if (device == AM_DEVICE_CPU) {
    am_buffer *b = am_buffer_new(bytes);
    return b;
  }
  const am_backend *be = am_backend_get(device);
  if (!be) {
    am_set_error(AM_ERR_UNSUPPORTED, "device %d has no backend registered",
                 device);
    return NULL;
  }
  am_buffer *b = calloc(1, sizeof *b);
  if (!b) {
    am_set_error(AM_ERR_OOM, "out of memory");
    return NULL;
  }
  b->data = be->alloc(bytes ? bytes : 1);
  if (!b->data) {
    free(b);
    return NULL;
  }
  atomic_init(&b->refs, 1);
  b->bytes = b->cap = bytes;
  b->device = device;
  return b;
}

static pthread_mutex_t g_mirror_lock = PTHREAD_MUTEX_INITIALIZER;

am_buffer *am_buffer_on(am_buffer *b, int device) {
  if (b->device == device) return b;
  if (b->device != AM_DEVICE_CPU || device == AM_DEVICE_CPU) {
    am_set_error(AM_ERR_INVALID_ARG,
                 "a kernel on device %d read data on device %d", device,
                 b->device);
    return NULL;
  }
  pthread_mutex_lock(&g_mirror_lock);
  am_buffer *m = b->mirror;
  if (!m || m->device != device) {
    am_buffer_release(m);
    b->mirror = NULL;
    m = am_buffer_new_on(b->bytes, device);
    if (m && am_backend_get(device)->upload(m->data, b->data, b->bytes)) {
      am_buffer_release(m);
      m = NULL;
    }
    b->mirror = m;
  }
  pthread_mutex_unlock(&g_mirror_lock);
  return m;
}

am_buffer *am_buffer_new(size_t bytes) {
  int dev = am_eval_device();
  if (dev != AM_DEVICE_CPU) return am_buffer_new_on(bytes, dev);
  size_t cap;
  int c = size_class(bytes ? bytes : 1, &cap);
  am_buffer *b = NULL;
  pthread_mutex_lock(&g_lock);
  if (c < N_CLASSES && g_free[c]) {
    b = g_free[c];
    g_free[c] = b->next_free;
    g_pooled -= b->cap;
    g_reuses++;
  }
  pthread_mutex_unlock(&g_lock);
  if (!b) {
    b = calloc(1, sizeof *b);
    void *d = b ? data_alloc(cap) : NULL;
    if (!d) {
      free(b);
      am_set_error(AM_ERR_OOM, "out of memory allocating %zu bytes", bytes);
      return NULL;
    }
    b->data = d;
    b->cap = cap;
    pthread_mutex_lock(&g_lock);
    g_allocs++;
    pthread_mutex_unlock(&g_lock);
  }
  atomic_init(&b->refs, 1);
  b->bytes = bytes;
  b->dtor = NULL;
  b->dtor_ctx = NULL;
  b->borrowed = false;
  b->device = AM_DEVICE_CPU;
  b->mirror = NULL;
  atomic_init(&b->graph_refs, 0);
  pthread_mutex_lock(&g_lock);
  g_active += b->cap;
  if (g_active > g_peak) g_peak = g_active;
  pthread_mutex_unlock(&g_lock);
  return b;
}

am_buffer *am_buffer_borrow(void *data, size_t bytes, void (*dtor)(void *),
                            void *ctx) {
  am_buffer *b = calloc(1, sizeof *b);
  if (!b) {
    am_set_error(AM_ERR_OOM, "out of memory");
    return NULL;
  }
  atomic_init(&b->refs, 1);
  b->data = data;
  b->bytes = b->cap = bytes;
  b->dtor = dtor;
  b->dtor_ctx = ctx;
  b->borrowed = true;
  return b;
}

void am_buffer_retain(am_buffer *b) {
  if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void am_buffer_release(am_buffer *b) {
  if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (b->mirror) {
    am_buffer_release(b->mirror);
    b->mirror = NULL;
  }
  if (b->device != AM_DEVICE_CPU) {
    const am_backend *be = am_backend_get(b->device);
    if (be) be->free(b->data);
    free(b);
    return;
  }
  if (b->borrowed) {
    if (b->dtor) b->dtor(b->dtor_ctx);
    free(b);
    return;
  }
  size_t cap;
  int c = size_class(b->cap, &cap);
  pthread_mutex_lock(&g_lock);
  g_active -= b->cap;
  if (c < N_CLASSES && cap == b->cap && g_pooled + b->cap <= pool_limit()) {
    b->next_free = g_free[c];
    g_free[c] = b;
    g_pooled += b->cap;
    pthread_mutex_unlock(&g_lock);
    return;
  }
  pthread_mutex_unlock(&g_lock);
  free(b->data);
  free(b);
}

void am_memory_note_donation(void) {
  pthread_mutex_lock(&g_lock);
  g_donated++;
  pthread_mutex_unlock(&g_lock);
}

am_memory_stats am_memory_get_stats(void) {
  am_memory_stats s;
  pthread_mutex_lock(&g_lock);
  s.active_bytes = g_active;
  s.pooled_bytes = g_pooled;
  s.peak_bytes = g_peak;
  s.n_allocs = g_allocs;
  s.n_reuses = g_reuses;
  s.n_donated = g_donated;
  pthread_mutex_unlock(&g_lock);
  return s;
}

void am_memory_clear_cache(void) {
  pthread_mutex_lock(&g_lock);
  for (int c = 0; c < N_CLASSES; c++) {
    am_buffer *b = g_free[c];
    while (b) {
      am_buffer *next = b->next_free;
      free(b->data);
      free(b);
      b = next;
    }
    g_free[c] = NULL;
  }
  g_pooled = 0;
  pthread_mutex_unlock(&g_lock);
}

void am_memory_reset_peak(void) {
  pthread_mutex_lock(&g_lock);
  g_peak = g_active;
  pthread_mutex_unlock(&g_lock);
}
