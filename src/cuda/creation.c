/* creation.c — CUDA glue of full, arange and full_like (see ops.h); the
 * kernels are in creation.cu. */
#include "creation.h"
#include "../ops/creation_params.h"
#include "ops.h"

/* out filled with v: the element is made on the host by the CPU's own
 * conversion (am_store_f64), so both backends store identical bits. */
static am_status fill(am_arr *out, double v) {
  am_status s = am_out_alloc(out);
  if (s || !out->size) return s;
  uint64_t e = 0;
  am_store_f64(&e, out->m.dtype, v);
  return am_cu_fill(am_arr_ptr(out), am_dtype_size(out->m.dtype), e, out->size);
}

static am_status full_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                           int n_out, const void *params) {
  (void)in;
  (void)n_in;
  (void)n_out;
  return fill(out[0], ((const full_params *)params)->value);
}

static am_status full_like_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  (void)in;
  (void)n_in;
  (void)n_out;
  return fill(out[0], ((const full_like_params *)params)->value);
}

static am_status arange_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)in;
  (void)n_in;
  (void)n_out;
  const arange_params *p = params;
  am_status s = am_out_alloc(out[0]);
  if (s || !out[0]->size) return s;
  return am_cu_arange(am_arr_ptr(out[0]), out[0]->m.dtype, p->start, p->step,
                      out[0]->size);
}

void am_cuda_register_creation(am_backend *b) {
  b->eval[AM_OP_FULL] = full_cuda;
  b->eval[AM_OP_ARANGE] = arange_cuda;
  b->eval[AM_OP_FULL_LIKE] = full_like_cuda;
}
