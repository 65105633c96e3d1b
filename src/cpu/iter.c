/*
 * iter.c — the strided N-operand walk every general-path kernel uses.
 *
 * Dimensions of size 1 are dropped and neighbouring dimensions that are
 * contiguous for every operand are merged, so a transposed or broadcast
 * operand costs only as many nested loops as its layout really needs; the
 * last dimension is handed to the kernel as one row.
 */
#include "../core/internal.h"

void am_iter_init(am_iter *it, const int64_t *shape, int ndim, int narg,
                  char *const *base, const int64_t *const *strides,
                  const size_t *esize) {
  it->narg = narg;
  for (int k = 0; k < narg; k++)
    it->base[k] = base[k];
  int nd = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == 1) continue;
    if (shape[i] == 0) { /* empty: one zero-length row */
      it->ndim = 1;
      it->shape[0] = 0;
      for (int k = 0; k < narg; k++)
        it->strides[k][0] = 0;
      return;
    }
    bool merge = nd > 0;
    for (int k = 0; k < narg && merge; k++)
      merge = it->strides[k][nd - 1] ==
              strides[k][i] * (int64_t)esize[k] * shape[i];
    if (merge) {
      it->shape[nd - 1] *= shape[i];
      for (int k = 0; k < narg; k++)
        it->strides[k][nd - 1] = strides[k][i] * (int64_t)esize[k];
    } else {
      it->shape[nd] = shape[i];
      for (int k = 0; k < narg; k++)
        it->strides[k][nd] = strides[k][i] * (int64_t)esize[k];
      nd++;
    }
  }
  if (nd == 0) { /* scalar */
    it->shape[0] = 1;
    for (int k = 0; k < narg; k++)
      it->strides[k][0] = 0;
    nd = 1;
  }
  it->ndim = nd;
}

int64_t am_iter_rows(const am_iter *it) {
  int64_t r = 1;
  for (int i = 0; i < it->ndim - 1; i++)
    r *= it->shape[i];
  return r;
}

void am_iter_run(const am_iter *it, int64_t row_begin, int64_t row_end,
                 am_row_fn fn, void *ctx) {
  int nd = it->ndim, na = it->narg;
  int64_t n = it->shape[nd - 1];
  int64_t inner[AM_ITER_MAX_ARGS];
  for (int k = 0; k < na; k++)
    inner[k] = it->strides[k][nd - 1];
  /* unravel row_begin into an index over the outer dims */
  int64_t idx[AM_MAX_DIMS] = {0};
  char *p[AM_ITER_MAX_ARGS];
  int64_t r = row_begin;
  for (int k = 0; k < na; k++)
    p[k] = it->base[k];
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = r % it->shape[d];
    r /= it->shape[d];
    for (int k = 0; k < na; k++)
      p[k] += idx[d] * it->strides[k][d];
  }
  for (int64_t row = row_begin; row < row_end; row++) {
    fn(ctx, n, p, inner);
    for (int d = nd - 2; d >= 0; d--) { /* odometer step */
      if (++idx[d] < it->shape[d]) {
        for (int k = 0; k < na; k++)
          p[k] += it->strides[k][d];
        break;
      }
      idx[d] = 0;
      for (int k = 0; k < na; k++)
        p[k] -= (it->shape[d] - 1) * it->strides[k][d];
    }
  }
}

typedef struct {
  const am_iter *it;
  am_row_fn fn;
  void *ctx;
} par_ctx;

static void par_rows(void *c, int64_t b, int64_t e) {
  par_ctx *pc = c;
  am_iter_run(pc->it, b, e, pc->fn, pc->ctx);
}

/* Splits one long row into pieces so a 1-d op still uses every thread. */
static void par_split(void *c, int64_t b, int64_t e) {
  par_ctx *pc = c;
  const am_iter *it = pc->it;
  char *p[AM_ITER_MAX_ARGS];
  int64_t inner[AM_ITER_MAX_ARGS];
  for (int k = 0; k < it->narg; k++) {
    inner[k] = it->strides[k][0];
    p[k] = it->base[k] + b * inner[k];
  }
  pc->fn(pc->ctx, e - b, p, inner);
}

void am_iter_run_parallel(const am_iter *it, am_row_fn fn, void *ctx,
                          int64_t min_elems_per_task) {
  int64_t rows = am_iter_rows(it), n = it->shape[it->ndim - 1];
  if (min_elems_per_task < 1) min_elems_per_task = 1;
  par_ctx pc = {it, fn, ctx};
  if (rows == 1) {
    am_parallel_for(n, min_elems_per_task, par_split, &pc);
    return;
  }
  int64_t grain = min_elems_per_task / (n ? n : 1);
  am_parallel_for(rows, grain < 1 ? 1 : grain, par_rows, &pc);
}
