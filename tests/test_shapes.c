/*
 * test_shapes — the generic test over every registered primitive.
 *
 * For each primitive, its sample (tests/samples/) is recorded twice with
 * the same non-shape choices and different input shapes (A, B). Then:
 *  - the descriptor is complete (name, output_shapes, eval_cpu);
 *  - unless the primitive declares itself shape-dependent, A's params equal
 *    B's (they are stored shape-relative), and A's params run through
 *    output_shapes on B's input shapes give exactly B's output shapes —
 *    what a shapeless replay of A's graph would compute;
 *  - evaluating B gives arrays of the inferred shapes whose strided extent
 *    lies inside their buffers.
 * A primitive without a sample does not link; one without inference fails.
 */
#include "core/internal.h"
#include "samples/samples.h"

#include <stdlib.h>

typedef int (*sample_fn)(t_rng *, uint64_t, am_array *);
static const sample_fn samples[AM_OP_COUNT] = {
#define AM_OP(E, n) [AM_OP_##E] = sample_##n,
#include "ops/ops.def"
#undef AM_OP
};
static const char *const names[AM_OP_COUNT] = {
#define AM_OP(E, n) [AM_OP_##E] = #n,
#include "ops/ops.def"
#undef AM_OP
};

#define MAX_OUT 64

static bool meta_eq(const am_meta *a, const am_meta *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

static bool shape_dependent(const am_node *n) {
  return (n->prim->flags & AM_OPF_SHAPE_DEPENDENT) ||
         (n->prim->shape_dependent && n->prim->shape_dependent(n->params));
}

/* Strided extent of an evaluated array lies inside its buffer. */
static bool in_bounds(const am_arr *a) {
  if (!a->size) return true;
  int64_t lo = a->offset, hi = a->offset;
  for (int i = 0; i < a->m.ndim; i++) {
    int64_t span = (a->m.shape[i] - 1) * a->strides[i];
    if (span < 0)
      lo += span;
    else
      hi += span;
  }
  size_t es = am_dtype_size(a->m.dtype);
  return lo >= 0 && (size_t)(hi + 1) * es <= a->buf->bytes;
}

static void test_op(int op, int trials) {
  const am_prim *p = am_prims[op];
  CHECK(p && p->name && !strcmp(p->name, names[op]),
        "op %d: descriptor name mismatch", op);
  CHECK(p->output_shapes != NULL, "%s: no output_shapes", names[op]);
  CHECK(p->eval_cpu != NULL, "%s: no eval_cpu", names[op]);
  if (!p->output_shapes || !p->eval_cpu) return;
  int replays = 0;
  for (int trial = 0; trial < trials; trial++) {
    uint64_t pseed = (uint64_t)trial * 7919u + (uint64_t)op;
    am_scope_push();
    am_array A[MAX_OUT], B[MAX_OUT];
    t_rng ra = {pseed * 31 + 1};
    int na = samples[op](&ra, pseed, A);
    am_node *nA = na > 0 ? A[0]->node : NULL;
    CHECK(na > 0 && !am_array_status(A[0]) && nA && nA->op == op,
          "%s: sample A (trial %d) did not record the op: %s", names[op], trial,
          am_array_error(A[0]));
    for (int v = 0; nA && v < 3; v++) {
      t_rng rb = {pseed * 31 + 2 + (uint64_t)v};
      int nb = samples[op](&rb, pseed, B);
      am_node *nB = nb > 0 ? B[0]->node : NULL;
      CHECK(nb == na && nB && nB->op == op,
            "%s: sample B did not record the op: %s", names[op],
            am_array_error(B[0]));
      if (!nB || nb != na) break;
      if (!shape_dependent(nA)) {
        CHECK(am_params_equal(nA, nB),
              "%s: params differ between input shapes: not shape-relative",
              names[op]);
        const am_meta *im[64];
        am_meta om[MAX_OUT];
        for (int i = 0; i < nB->n_in && i < 64; i++)
          im[i] = &nB->in[i]->m;
        am_status s = p->output_shapes(im, nB->n_in, nA->params, om, nb);
        CHECK(s == AM_OK, "%s: replay inference failed: %s", names[op],
              am_last_error());
        for (int j = 0; !s && j < nb; j++) {
          char x[256], y[256];
          CHECK(meta_eq(&om[j], &B[j]->m),
                "%s: replayed output %d is %s, recording gives %s", names[op],
                j, am_meta_str(&om[j], x, sizeof x),
                am_meta_str(&B[j]->m, y, sizeof y));
        }
        replays++;
      }
      am_meta before[MAX_OUT];
      for (int j = 0; j < nb; j++)
        before[j] = B[j]->m;
      am_status s = am_eval(B, nb);
      CHECK(s == AM_OK, "%s: eval failed: %s", names[op], am_last_error());
      for (int j = 0; !s && j < nb; j++) {
        CHECK(B[j]->buf && meta_eq(&before[j], &B[j]->m) && in_bounds(B[j]),
              "%s: output %d inconsistent with its inferred shape", names[op],
              j);
      }
    }
    am_scope_pop();
  }
  if (!(p->flags & AM_OPF_SHAPE_DEPENDENT))
    CHECK(replays > 0, "%s: never replayed", names[op]);
}

int main(void) {
  int trials = t_quick() ? 3 : 8;
  for (int op = 0; op < AM_OP_COUNT; op++)
    test_op(op, trials);
  printf("%d primitives checked\n", AM_OP_COUNT);
  return t_summary();
}
