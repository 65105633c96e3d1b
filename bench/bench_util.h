/*
 * bench_util.h — what every benchmark shares: a monotonic clock and the
 * physical limits measured in the same run (memory read and read+write
 * bandwidth on all pool threads). Header-only; benchmarks include the
 * library's internal header for the thread pool.
 */
#ifndef AM_BENCH_UTIL_H
#define AM_BENCH_UTIL_H

#include "core/internal.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  const float *a;
  float *b;
  double sink[64];
} bench_bw_ctx;

__attribute__((target("avx2"))) static inline double
bench_sum_avx2(const float *a, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
  }
  float t[8];
  _mm256_storeu_ps(t,
                   _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  double s = 0;
  for (int k = 0; k < 8; k++)
    s += t[k];
  for (; i < n; i++)
    s += a[i];
  return s;
}

static inline double bench_sum_plain(const float *a, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++)
      acc[k] += a[i + k];
  double s = 0;
  for (int k = 0; k < 16; k++)
    s += acc[k];
  for (; i < n; i++)
    s += a[i];
  return s;
}

static void bench_read_part(void *c, int64_t b, int64_t e) {
  bench_bw_ctx *x = c;
  double s = am_cpu_has_avx2() ? bench_sum_avx2(x->a + b, e - b)
                               : bench_sum_plain(x->a + b, e - b);
  x->sink[(b >> 10) & 63] += s;
}

static void bench_scale_part(void *c, int64_t b, int64_t e) {
  bench_bw_ctx *x = c;
  for (int64_t i = b; i < e; i++)
    x->b[i] = x->a[i] * 2.0f;
}

/* The same with non-temporal stores (no read of the destination): the
 * best a streaming op can do. */
__attribute__((target("avx2"))) static void
bench_scale_nt_part(void *c, int64_t b, int64_t e) {
  bench_bw_ctx *x = c;
  int64_t i = b;
  for (; i < e && ((uintptr_t)(x->b + i) & 31); i++)
    x->b[i] = x->a[i] * 2.0f;
  __m256 two = _mm256_set1_ps(2.0f);
  for (; i + 8 <= e; i += 8)
    _mm256_stream_ps(x->b + i, _mm256_mul_ps(_mm256_loadu_ps(x->a + i), two));
  for (; i < e; i++)
    x->b[i] = x->a[i] * 2.0f;
  _mm_sfence();
}

/* Best-of-reps GB/s over `bytes` of float32 on all pool threads:
 * read-only (sum) or read+write (b = 2a: the traffic of a unary op; the
 * better of ordinary and non-temporal stores, counted as bytes read plus
 * bytes written). */
static inline double bench_bandwidth_gbs(size_t bytes, bool write) {
  int64_t n = (int64_t)(bytes / 4);
  float *a = aligned_alloc(64, (size_t)n * 4 + 64);
  float *b = write ? aligned_alloc(64, (size_t)n * 4 + 64) : NULL;
  for (int64_t i = 0; i < n; i++)
    a[i] = (float)(i & 1023) * 1e-3f;
  if (b) memset(b, 0, (size_t)n * 4);
  bench_bw_ctx c = {.a = a, .b = b};
  int nt = am_get_num_threads();
  double best = 1e30;
  for (int r = 0; r < (write ? 14 : 7); r++) {
    am_range_fn fn = !write                         ? bench_read_part
                     : (r & 1) && am_cpu_has_avx2() ? bench_scale_nt_part
                                                    : bench_scale_part;
    double t0 = bench_now();
    am_parallel_for(n, (n + nt - 1) / nt, fn, &c);
    double t = bench_now() - t0;
    if (t < best) best = t;
  }
  free(a);
  free(b);
  return (double)bytes * (write ? 2 : 1) / best / 1e9;
}
#endif
