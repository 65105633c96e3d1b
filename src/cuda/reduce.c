/* reduce.c — CUDA glue of the reduction family (see ops.h): sum, mean,
 * prod, max, min, logsumexp, all, any, argmax, argmin over a set of axes,
 * and cumsum along one; the nn ops (softmax, norms, rope) register from
 * norm.c. Inputs are read in place through their strides (any view);
 * outputs are contiguous, as on the CPU. */
#include "reduce.h"
#include "../ops/reduce_params.h"
#include "norm.h"
#include "ops.h"

/* Appends dim (n, stride) to a row-major list, merging it into the last
 * one when the pair is contiguous; size-1 dims vanish. */
static void push_dim(int *nd, int64_t *shape, int64_t *stride, int64_t n,
                     int64_t st) {
  if (n == 1) return;
  if (*nd && stride[*nd - 1] == st * n) {
    shape[*nd - 1] *= n;
    stride[*nd - 1] = st;
    return;
  }
  shape[*nd] = n;
  stride[*nd] = st;
  (*nd)++;
}

static am_status red_eval(int kind, const char *name, am_arr *const *in,
                          am_arr *const *out, const void *params) {
  const am_arr *x = in[0];
  bool mask[AM_MAX_DIMS];
  am_status s = am_red_mask(params, x->m.ndim, mask);
  if (!s) s = am_out_alloc(out[0]);
  if (s || !out[0]->size) return s;
  am_cuda_red_geom g;
  memset(&g, 0, sizeof g);
  g.nout = out[0]->size;
  g.rtotal = 1;
  for (int d = 0; d < x->m.ndim; d++) {
    if (mask[d]) {
      g.rtotal *= x->m.shape[d];
      push_dim(&g.nr, g.rshape, g.rstride, x->m.shape[d], x->strides[d]);
    } else {
      push_dim(&g.nk, g.kshape, g.kstride, x->m.shape[d], x->strides[d]);
    }
  }
  /* an empty reduction reads nothing: identities (max/min/arg* are
   * refused by shape inference) */
  const void *xp = x->size ? am_arr_ptr(x) : NULL;
  return am_cuda_launch_reduce(kind, xp, x->m.dtype, am_arr_ptr(out[0]),
                               out[0]->m.dtype, &g);
}

#define RED_GLUE(NM, KIND)                                                     \
  static am_status NM##_cuda(am_arr *const *in, int n_in, am_arr *const *out,  \
                             int n_out, const void *params) {                  \
    (void)n_in;                                                                \
    (void)n_out;                                                               \
    return red_eval(KIND, #NM, in, out, params);                               \
  }
RED_GLUE(sum, AM_CUDA_RED_SUM)
RED_GLUE(mean, AM_CUDA_RED_MEAN)
RED_GLUE(prod, AM_CUDA_RED_PROD)
RED_GLUE(max, AM_CUDA_RED_MAX)
RED_GLUE(min, AM_CUDA_RED_MIN)
RED_GLUE(logsumexp, AM_CUDA_RED_LSE)
RED_GLUE(all, AM_CUDA_RED_ALL)
RED_GLUE(any, AM_CUDA_RED_ANY)
RED_GLUE(argmax, AM_CUDA_RED_ARGMAX)
RED_GLUE(argmin, AM_CUDA_RED_ARGMIN)

static am_status cumsum_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  (void)n_in;
  (void)n_out;
  const cumsum_params *p = params;
  const am_arr *x = in[0];
  am_arr *y = out[0];
  int ax = am_norm_axis(p->axis, x->m.ndim);
  if (ax < 0)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "cumsum: axis %d is out of range for %d dims",
                        (int)p->axis, x->m.ndim);
  /* each element is read before its own output position is written, by
   * the same thread: donation is safe, as on the CPU */
  am_status s = am_out_alloc_donate(y, in, 1);
  if (s || !y->size) return s;
  am_cuda_lanes l;
  memset(&l, 0, sizeof l);
  l.len = x->m.shape[ax];
  l.ast[0] = y->strides[ax];
  l.ast[1] = x->strides[ax];
  l.nlanes = y->size / l.len;
  for (int d = 0; d < x->m.ndim; d++) {
    if (d == ax || x->m.shape[d] == 1) continue;
    l.shape[l.nd] = x->m.shape[d];
    l.st[0][l.nd] = y->strides[d];
    l.st[1][l.nd] = x->strides[d];
    l.nd++;
  }
  return am_cuda_launch_cumsum(am_arr_ptr(x), x->m.dtype, am_arr_ptr(y),
                               y->m.dtype, &l, p->reverse, p->inclusive);
}

void am_cuda_register_reduce(am_backend *b) {
  b->eval[AM_OP_SUM] = sum_cuda;
  b->eval[AM_OP_MEAN] = mean_cuda;
  b->eval[AM_OP_PROD] = prod_cuda;
  b->eval[AM_OP_MAX] = max_cuda;
  b->eval[AM_OP_MIN] = min_cuda;
  b->eval[AM_OP_LOGSUMEXP] = logsumexp_cuda;
  b->eval[AM_OP_ALL] = all_cuda;
  b->eval[AM_OP_ANY] = any_cuda;
  b->eval[AM_OP_ARGMAX] = argmax_cuda;
  b->eval[AM_OP_ARGMIN] = argmin_cuda;
  b->eval[AM_OP_CUMSUM] = cumsum_cuda;
  am_cuda_register_norm(b);
}
