/*
 * bench/eval_overhead — cost per node of recording and evaluating graphs
 * of tiny (one-element) arrays, where the op itself is free and only the
 * graph machinery is left. Goal: < 1 us per node for eval.
 * Last line: BENCH eval_overhead key=value ...
 */
#include <amorph.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
  const int n = 10000, reps = 20;
  double best_build = 1e30, best_eval = 1e30;
  float one = 1;
  am_array x0 = am_array_new_data(&one, NULL, 0, AM_F32);
  am_array c = am_array_new_data(&one, NULL, 0, AM_F32);
  double expect = 1 + n;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    am_scope_push();
    am_array x = x0;
    for (int i = 0; i < n; i++) /* alternate ops so no kernel is special */
      x = (i & 1) ? am_add(x, c) : am_sub(x, am_neg(c));
    x = am_keep(x);
    am_scope_pop();
    double t1 = now();
    if (am_eval(&x, 1) != AM_OK) {
      fprintf(stderr, "eval failed: %s\n", am_last_error());
      return 1;
    }
    double t2 = now();
    float v;
    if (am_array_read(x, AM_F32, &v, 1) != AM_OK || v != (float)expect) {
      fprintf(stderr, "wrong result %g, want %g\n", v, expect);
      return 1;
    }
    am_array_free(x);
    /* 1.5 nodes per step: add, or sub + neg */
    double nodes = n * 1.5;
    if ((t1 - t0) / nodes < best_build) best_build = (t1 - t0) / nodes;
    if ((t2 - t1) / nodes < best_eval) best_eval = (t2 - t1) / nodes;
  }
  am_array_free(x0);
  am_array_free(c);
  printf("graph of %d tiny nodes: record %.3f us/node, eval %.3f us/node\n",
         n * 3 / 2, best_build * 1e6, best_eval * 1e6);
  printf("BENCH eval_overhead nodes=%d record_us_per_node=%.3f "
         "eval_us_per_node=%.3f goal_us=1.0\n",
         n * 3 / 2, best_build * 1e6, best_eval * 1e6);
  return 0;
}
