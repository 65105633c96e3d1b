/*
 * sort.c — CUDA glue of the sort family (see ops.h): sort, argsort,
 * argpartition, topk along any axis, every dtype, with sort.c's order
 * (NaN last, ties by index; topk descending, NaN first). The rows are
 * sorted by sort.cu with scratch from the caching allocator.
 */
#include "sort.h"
#include "ops.h"

#include "../ops/sort_params.h"

void am_cuda_register_sort(am_backend *b);

static am_status sort_cuda_kind(am_arr *const *in, am_arr *const *out,
                                const void *params, int kind) {
  const sort_params *p = params;
  const am_arr *x = in[0];
  am_arr *o = out[0];
  int ax = am_norm_axis(p->axis, x->m.ndim);
  if (ax < 0)
    return am_set_error(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                        p->axis, x->m.ndim);
  am_status s = am_out_alloc(o);
  if (s || !o->size || !x->size) return s;
  am_cusort_job j;
  memset(&j, 0, sizeof j);
  j.kind = kind;
  j.dtype = x->m.dtype;
  j.x = am_arr_ptr(x);
  j.out = am_arr_ptr(o);
  j.n = x->m.shape[ax];
  j.m = o->m.shape[ax];
  j.xs = x->strides[ax];
  j.os = o->strides[ax];
  j.rows = 1;
  for (int d = 0; d < x->m.ndim; d++) {
    if (d == ax || x->m.shape[d] == 1) continue;
    j.shape[j.nd] = x->m.shape[d];
    j.xst[j.nd] = x->strides[d];
    j.ost[j.nd] = o->strides[d];
    j.rows *= x->m.shape[d];
    j.nd++;
  }
  size_t bytes;
  s = am_cusort_scratch(&j, &bytes);
  if (s || !bytes) return s;
  am_buffer *scratch = am_buffer_new(bytes);
  if (!scratch) return AM_ERR_OOM;
  s = am_cusort_run(&j, scratch->data, bytes);
  /* stream-ordered: the allocator hands it out again only behind this
   * stream's work */
  am_buffer_release(scratch);
  return s;
}

#define SORT_GLUE(NAME, KIND)                                                  \
  static am_status NAME##_cuda(am_arr *const *in, int n_in,                    \
                               am_arr *const *out, int n_out,                  \
                               const void *params) {                           \
    (void)n_in, (void)n_out;                                                   \
    return sort_cuda_kind(in, out, params, KIND);                              \
  }
SORT_GLUE(sort, AM_CUSORT_SORT)
SORT_GLUE(argsort, AM_CUSORT_ARGSORT)
SORT_GLUE(argpartition, AM_CUSORT_ARGPARTITION)
SORT_GLUE(topk, AM_CUSORT_TOPK)

void am_cuda_register_sort(am_backend *b) {
  b->eval[AM_OP_SORT] = sort_cuda;
  b->eval[AM_OP_ARGSORT] = argsort_cuda;
  b->eval[AM_OP_ARGPARTITION] = argpartition_cuda;
  b->eval[AM_OP_TOPK] = topk_cuda;
}
