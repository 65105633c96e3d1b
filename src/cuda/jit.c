/*
 * jit.c — loading and launching NVRTC-compiled kernels with the CUDA
 * runtime only (see jit.h). A library loaded from PTX is context
 * independent (the runtime JIT-compiles it for each device on first use),
 * so one table serves every device; entries live until the process ends.
 */
#include "jit.h"

#include "ops.h"

#include "../kernel/kernel_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct jit_ent {
  uint64_t key;
  cudaLibrary_t lib;
  cudaKernel_t kern;
  int smem_max; /* cudaFuncAttributeMaxDynamicSharedMemorySize set so far */
  struct jit_ent *next;
} jit_ent;

#define JIT_BUCKETS 256
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static jit_ent *g_tab[JIT_BUCKETS];

static jit_ent *find_locked(uint64_t key) {
  for (jit_ent *e = g_tab[key % JIT_BUCKETS]; e; e = e->next)
    if (e->key == key) return e;
  return NULL;
}

void *am_jit_find(uint64_t key) {
  pthread_mutex_lock(&g_mu);
  jit_ent *e = find_locked(key);
  void *k = e ? (void *)e->kern : NULL;
  pthread_mutex_unlock(&g_mu);
  return k;
}

const char *am_jit_arch(void) {
  /* Per thread: threads may run on devices of different capabilities. */
  static _Thread_local char arch[32];
  const am_cuda_device_info *d = am_cuda_current_info();
  if (!d) return NULL;
  snprintf(arch, sizeof arch, "compute_%d%d", d->cc_major, d->cc_minor);
  return arch;
}

am_status am_jit_load_ptx(uint64_t key, const char *ptx, const char *entry,
                          void **kernel) {
  *kernel = NULL;
  /* Loading outside the lock: it JIT-compiles the PTX (slow); a racing
   * loader of the same key loses and unloads its copy. */
  cudaLibrary_t lib;
  AM_CUDA_TRY(cudaLibraryLoadData(&lib, ptx, NULL, NULL, 0, NULL, NULL, 0));
  cudaKernel_t kern;
  cudaError_t e = cudaLibraryGetKernel(&kern, lib, entry);
  if (e != cudaSuccess) {
    am_status s = am_cuda_check(e, "cudaLibraryGetKernel");
    cudaLibraryUnload(lib);
    return am_set_error(s, "jit: entry '%s' not found in its PTX: %s", entry,
                        am_last_error());
  }
  jit_ent *n = malloc(sizeof *n);
  if (!n) {
    cudaLibraryUnload(lib);
    return am_set_error(AM_ERR_OOM, "jit: out of memory");
  }
  pthread_mutex_lock(&g_mu);
  jit_ent *old = find_locked(key);
  if (old) {
    *kernel = (void *)old->kern;
    pthread_mutex_unlock(&g_mu);
    free(n);
    cudaLibraryUnload(lib);
    return AM_OK;
  }
  *n = (jit_ent){.key = key, .lib = lib, .kern = kern, .smem_max = 48 << 10};
  n->next = g_tab[key % JIT_BUCKETS];
  g_tab[key % JIT_BUCKETS] = n;
  pthread_mutex_unlock(&g_mu);
  *kernel = (void *)kern;
  return AM_OK;
}

am_status am_jit_load_source(uint64_t key, const char *name, const char *src,
                             const char *entry, void **kernel) {
  *kernel = NULL;
  const char *arch = am_jit_arch();
  if (!arch)
    return am_set_error(AM_ERR_DEVICE, "jit: no current CUDA device: %s",
                        am_cuda_last_error());
  char *ptx = NULL;
  am_status s = am_nvrtc_compile_cached(name, src, arch, &ptx);
  if (!s) s = am_jit_load_ptx(key, ptx, entry, kernel);
  free(ptx);
  return s;
}

/* Raises the kernel's dynamic shared memory limit once per size. */
static am_status allow_smem(void *kernel, size_t smem) {
  if (smem <= (48 << 10)) return AM_OK;
  pthread_mutex_lock(&g_mu);
  jit_ent *hit = NULL;
  for (int b = 0; b < JIT_BUCKETS && !hit; b++)
    for (jit_ent *e = g_tab[b]; e; e = e->next)
      if ((void *)e->kern == kernel) {
        hit = e;
        break;
      }
  am_status s = AM_OK;
  if (!hit || (size_t)hit->smem_max < smem) {
    s = am_cuda_check(
        cudaFuncSetAttribute(
            kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
        "cudaFuncSetAttribute(max dynamic shared memory)");
    if (!s && hit) hit->smem_max = (int)smem;
  }
  pthread_mutex_unlock(&g_mu);
  return s;
}

am_status am_jit_launch(void *kernel, const unsigned grid[3],
                        const unsigned block[3], size_t smem, void **args,
                        const char *what) {
  cudaStream_t st = am_cuda_resolve_stream(NULL);
  if (!st) return AM_ERR_DEVICE;
  am_status s = allow_smem(kernel, smem);
  if (s) return s;
  dim3 g = {grid[0], grid[1], grid[2]}, b = {block[0], block[1], block[2]};
  /* A cudaKernel_t is accepted wherever a kernel's address is (cast). */
  cudaError_t e = cudaLaunchKernel((const void *)kernel, g, b, args, smem, st);
  if (e != cudaSuccess) {
    char w[200];
    snprintf(w, sizeof w, "launch of %s", what);
    return am_cuda_check(e, w);
  }
  return am_cuda_check(cudaGetLastError(), what);
}

/* Frees the table at exit (quiet leak checkers). The libraries are left
 * to the CUDA context's teardown: calling CUDA from a destructor, after
 * the runtime may have shut down, is not safe. */
__attribute__((destructor)) static void jit_clear(void) {
  pthread_mutex_lock(&g_mu);
  for (int b = 0; b < JIT_BUCKETS; b++)
    while (g_tab[b]) {
      jit_ent *e = g_tab[b];
      g_tab[b] = e->next;
      free(e);
    }
  pthread_mutex_unlock(&g_mu);
}
