/*
 * threadpool.c — one persistent pool of CPU workers.
 *
 * am_parallel_for splits [0, n) into at most one chunk per thread (chunks
 * are taken from an atomic counter, so a slow thread does not hold the
 * others up). Workers spin briefly before sleeping, because eval issues
 * many short jobs back to back. Calls from inside a job, or while another
 * thread is using the pool, run inline: simple, and never deadlocks.
 */
#include "../core/internal.h"

#include <pthread.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ITERS 20000

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t wake, done_cv;
  pthread_mutex_t busy; /* held by the thread dispatching a job */
  pthread_t *threads;
  int n_workers; /* threads besides the caller */
  int n_threads; /* desired total, >= 1 */
  bool started;
  atomic_bool stop;
  atomic_uint gen;   /* job generation: odd while being set up */
  atomic_int active; /* workers inside run_chunks */
  /* current job */
  am_range_fn fn;
  void *ctx;
  int64_t n, chunk;
  int64_t n_chunks;
  atomic_llong next; /* next chunk index */
  atomic_llong done; /* chunks finished */
} pool_t;

static pool_t g_pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
                        .wake = PTHREAD_COND_INITIALIZER,
                        .done_cv = PTHREAD_COND_INITIALIZER,
                        .busy = PTHREAD_MUTEX_INITIALIZER};
static _Thread_local bool tl_in_job;

static void run_chunks(pool_t *p) {
  for (;;) {
    int64_t c = atomic_fetch_add(&p->next, 1);
    if (c >= p->n_chunks) break;
    int64_t b = c * p->chunk, e = b + p->chunk;
    if (e > p->n) e = p->n;
    p->fn(p->ctx, b, e);
    if (atomic_fetch_add(&p->done, 1) + 1 == p->n_chunks) {
      pthread_mutex_lock(&p->lock);
      pthread_cond_broadcast(&p->done_cv);
      pthread_mutex_unlock(&p->lock);
    }
  }
}

static bool published(pool_t *p, unsigned seen) {
  unsigned g = atomic_load(&p->gen);
  return g != seen && !(g & 1);
}

static void *worker(void *arg) {
  pool_t *p = arg;
  tl_in_job = true;
  unsigned seen = atomic_load(&p->gen) & ~1u;
  for (;;) {
    int spins = 0;
    while (!published(p, seen) && !p->stop && spins < SPIN_ITERS)
      spins++;
    if (!published(p, seen) && !p->stop) {
      pthread_mutex_lock(&p->lock);
      while (!published(p, seen) && !p->stop)
        pthread_cond_wait(&p->wake, &p->lock);
      pthread_mutex_unlock(&p->lock);
    }
    if (p->stop) return NULL;
    unsigned g = atomic_load(&p->gen);
    atomic_fetch_add(&p->active, 1);
    if (atomic_load(&p->gen) == g && !(g & 1)) run_chunks(p);
    atomic_fetch_sub(&p->active, 1);
    seen = g;
  }
}

static int default_threads(void) {
  const char *e = getenv("AM_NUM_THREADS");
  int n = e ? atoi(e) : 0;
  if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? n : 1;
}

static void pool_stop(pool_t *p) {
  if (!p->started) return;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->n_workers; i++)
    pthread_join(p->threads[i], NULL);
  free(p->threads);
  p->threads = NULL;
  p->n_workers = 0;
  p->started = false;
  p->stop = false;
}

static void pool_start(pool_t *p) {
  if (!p->n_threads) p->n_threads = default_threads();
  p->started = true;
  int nw = p->n_threads - 1;
  if (nw <= 0) return;
  p->threads = calloc((size_t)nw, sizeof *p->threads);
  if (!p->threads) return;
  for (int i = 0; i < nw; i++) {
    if (pthread_create(&p->threads[i], NULL, worker, p)) break;
    p->n_workers++;
  }
}

void am_set_num_threads(int n) {
  pthread_mutex_lock(&g_pool.busy);
  pool_stop(&g_pool);
  g_pool.n_threads = n > 0 ? n : default_threads();
  pthread_mutex_unlock(&g_pool.busy);
}

int am_get_num_threads(void) {
  if (!g_pool.n_threads) g_pool.n_threads = default_threads();
  return g_pool.n_threads;
}

void am_parallel_for(int64_t n, int64_t grain, am_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  pool_t *p = &g_pool;
  int nt = am_get_num_threads();
  if (n <= grain || nt <= 1 || tl_in_job || pthread_mutex_trylock(&p->busy)) {
    fn(ctx, 0, n);
    return;
  }
  if (!p->started) pool_start(p);
  int64_t parts = n / grain;
  if (parts > p->n_workers + 1) parts = p->n_workers + 1;
  if (parts <= 1) {
    pthread_mutex_unlock(&p->busy);
    fn(ctx, 0, n);
    return;
  }
  atomic_fetch_add(&p->gen, 1);   /* odd: the job is being rewritten */
  while (atomic_load(&p->active)) /* late workers of the last job leave */
    ;
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->chunk = (n + parts - 1) / parts;
  p->n_chunks = (n + p->chunk - 1) / p->chunk;
  atomic_store(&p->next, 0);
  atomic_store(&p->done, 0);
  pthread_mutex_lock(&p->lock);
  atomic_fetch_add(&p->gen, 1); /* even: published */
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  tl_in_job = true;
  run_chunks(p);
  tl_in_job = false;
  int spins = 0;
  while (atomic_load(&p->done) < p->n_chunks && spins < SPIN_ITERS)
    spins++;
  if (atomic_load(&p->done) < p->n_chunks) {
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->done) < p->n_chunks)
      pthread_cond_wait(&p->done_cv, &p->lock);
    pthread_mutex_unlock(&p->lock);
  }
  pthread_mutex_unlock(&p->busy);
}

bool am_cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

/* Features some compilers' __builtin_cpu_supports does not know (clang 14
 * rejects "f16c" and "avx512bf16") come from CPUID directly. CPUID traps
 * to the hypervisor in a virtual machine (microseconds), and
 * kernels ask per call: each answer is cached (0 unknown, 1 no, 2 yes). */
static bool cached(_Atomic int *slot, bool (*probe)(void)) {
  int v = atomic_load_explicit(slot, memory_order_relaxed);
  if (v) return v == 2;
  bool r = probe();
  atomic_store_explicit(slot, r ? 2 : 1, memory_order_relaxed);
  return r;
}

#if defined(__x86_64__) || defined(__i386__)
/* CPUID leaf 7 (subleaf `sub`) register `reg` (0 eax .. 3 edx) bit. */
static bool leaf7_bit(unsigned sub, int reg, int bit) {
  unsigned r[4];
  if (__get_cpuid_max(0, NULL) < 7) return false;
  __cpuid_count(7, sub, r[0], r[1], r[2], r[3]);
  return (r[reg] >> bit) & 1u;
}
static bool probe_f16c(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
static bool probe_bf16(void) {
  return am_cpu_has_avx512() && leaf7_bit(1, 0, 5);
}
static bool probe_vnni(void) {
  return am_cpu_has_avx512() && leaf7_bit(0, 2, 11);
}
#else
static bool probe_none(void) {
  return false;
}
#define probe_f16c probe_none
#define probe_bf16 probe_none
#define probe_vnni probe_none
#endif

static _Atomic int has_f16c, has_bf16, has_vnni;
bool am_cpu_has_f16c(void) {
  return cached(&has_f16c, probe_f16c);
}
bool am_cpu_has_avx512bf16(void) {
  return cached(&has_bf16, probe_bf16);
}
bool am_cpu_has_avx512vnni(void) {
  return cached(&has_vnni, probe_vnni);
}

bool am_cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}
