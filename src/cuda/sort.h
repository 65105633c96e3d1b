/* sort.h — sort, argsort, argpartition and topk rows on the GPU
 * (sort.cu), C-callable. */
#ifndef AM_CUDA_SORT_H
#define AM_CUDA_SORT_H
#include "amorph.h"
#ifdef __cplusplus
extern "C" {
#endif
#define AM_CUSORT_DIMS 16

enum {
  AM_CUSORT_SORT,
  AM_CUSORT_ARGSORT,
  AM_CUSORT_ARGPARTITION,
  AM_CUSORT_TOPK
};

/** One call: `rows` rows of n elements along the axis (element strides xs
 * in x, os in out); the other axes (nd of them, row-major over `shape`)
 * place each row by xst / ost. m outputs per row (n, or k for topk). */
typedef struct am_cusort_job {
  int kind;
  am_dtype dtype;
  const void *x;
  void *out;
  int64_t n, m, rows, xs, os;
  int nd;
  int64_t shape[AM_CUSORT_DIMS], xst[AM_CUSORT_DIMS], ost[AM_CUSORT_DIMS];
} am_cusort_job;

/** Scratch bytes am_cusort_run needs for j (on the device). */
am_status am_cusort_scratch(const am_cusort_job *j, size_t *bytes);
/** Queues the sort on the thread's stream; scratch from the caller. */
am_status am_cusort_run(const am_cusort_job *j, void *scratch, size_t bytes);
#ifdef __cplusplus
}
#endif
#endif
