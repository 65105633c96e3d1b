/*
 * profile.c — time spent per primitive (eager and compiled evaluation),
 * for finding where a model's step goes. Off by default: one branch per
 * node. AM_PROFILE=1 turns it on and prints the table at exit.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROF_MAX 256

typedef struct {
  const char *name;
  uint64_t calls;
  double seconds;
} prof_row;

static prof_row rows[PROF_MAX];
static int n_rows;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
bool am_prof_on;

static void print_at_exit(void) {
  am_profile_print(stderr);
}

static void init(void) {
  const char *e = getenv("AM_PROFILE");
  if (e && *e && *e != '0') {
    am_prof_on = true;
    atexit(print_at_exit);
  }
}

void am_prof_init(void) {
  pthread_once(&once, init);
}

double am_prof_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void am_prof_add(const char *name, double seconds) {
  pthread_mutex_lock(&lock);
  int i = 0;
  while (i < n_rows && rows[i].name != name)
    i++;
  if (i == n_rows && n_rows < PROF_MAX)
    rows[n_rows++] = (prof_row){.name = name};
  if (i < n_rows) {
    rows[i].calls++;
    rows[i].seconds += seconds;
  }
  pthread_mutex_unlock(&lock);
}

void am_profile_enable(bool on) {
  am_prof_init();
  am_prof_on = on;
}

void am_profile_reset(void) {
  pthread_mutex_lock(&lock);
  n_rows = 0;
  pthread_mutex_unlock(&lock);
}

static int by_time(const void *a, const void *b) {
  double x = ((const prof_row *)a)->seconds, y = ((const prof_row *)b)->seconds;
  return x < y ? 1 : x > y ? -1 : 0;
}

void am_profile_print(FILE *f) {
  pthread_mutex_lock(&lock);
  prof_row r[PROF_MAX];
  int n = n_rows;
  memcpy(r, rows, (size_t)n * sizeof *r);
  pthread_mutex_unlock(&lock);
  qsort(r, (size_t)n, sizeof *r, by_time);
  double total = 0;
  for (int i = 0; i < n; i++)
    total += r[i].seconds;
  fprintf(f, "%-24s %10s %12s %8s %10s\n", "primitive", "calls", "total ms",
          "share", "us/call");
  for (int i = 0; i < n; i++)
    fprintf(f, "%-24s %10llu %12.3f %7.1f%% %10.2f\n", r[i].name,
            (unsigned long long)r[i].calls, 1e3 * r[i].seconds,
            total > 0 ? 100 * r[i].seconds / total : 0,
            1e6 * r[i].seconds / (double)r[i].calls);
  fprintf(f, "%-24s %10s %12.3f\n", "total", "", 1e3 * total);
}
