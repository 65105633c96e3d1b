/*
 * test_cuda_ops — every primitive on the GPU against the CPU backend, in
 * the manner of ggml's test-backend-ops.
 *
 * For each primitive and a series of seeds, its sample (tests/samples/,
 * the builders test_shapes uses) records one call on random inputs. The
 * inputs are evaluated on the CPU; the node runs once on the CPU and once
 * with the same params on copies of its inputs placed on the GPU (nodes
 * without inputs: with CUDA as the default device). Every output must
 * come back from the GPU with the CPU's dtype and shape and within a
 * normalized error, sum (gpu - cpu)^2 / sum cpu^2, set per dtype:
 * integers, booleans and random bits must match exactly; argpartition
 * (whose order inside each side is free) is checked as a partition.
 * Then the coverage: every primitive must have a GPU kernel.
 *
 * Exits 77 (skipped) without a GPU. AM_TEST_QUICK=1: fewer seeds.
 * AM_CUDA_OPS=name1,name2 limits the run to those primitives.
 */
#include "core/internal.h"
#include "ops/sort_params.h"
#include "samples/samples.h"

#include <stdlib.h>

typedef int (*sample_fn)(t_rng *, uint64_t, am_array *);
static const sample_fn samples[AM_OP_COUNT] = {
#define AM_OP(E, n) [AM_OP_##E] = sample_##n,
#include "ops/ops.def"
#undef AM_OP
};

#define MAX_OUT 64

static double nmse_tol(am_dtype t) {
  switch (t) {
  case AM_F64:
    return 1e-20;
  case AM_F32:
    return 1e-10;
  case AM_F16:
    return 1e-6;
  case AM_BF16:
    return 1e-4;
  default:
    return 0;
  }
}

static bool selected(const char *name) {
  const char *e = getenv("AM_CUDA_OPS");
  if (!e || !*e) return true;
  size_t n = strlen(name);
  for (const char *p = e; (p = strstr(p, name)); p += n)
    if ((p == e || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return true;
  return false;
}

static double *host_values(am_array x) {
  int64_t n = am_array_size(x);
  double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  if (am_array_read(x, AM_F64, v, n)) {
    free(v);
    return NULL;
  }
  return v;
}

/* Rows of argpartition: gpu indices must split the row at kth. */
static bool partition_ok(am_array x, am_array idx, const sort_params *p) {
  am_array g = am_take_along_axis(x, am_to_device(idx, AM_DEVICE_CPU), p->axis);
  am_array v = am_sort(x, p->axis);
  int ax = p->axis < 0 ? p->axis + am_array_ndim(x) : p->axis;
  am_array gm = am_swapaxes(g, ax, -1), vm = am_swapaxes(v, ax, -1);
  double *a = host_values(gm), *b = host_values(vm);
  bool ok = a && b;
  int64_t n = am_array_dim(x, ax), rows = n ? am_array_size(x) / n : 0;
  int64_t k = p->k < 0 ? p->k + n : p->k;
  for (int64_t r = 0; ok && r < rows; r++) {
    const double *ra = a + r * n, *rb = b + r * n;
    /* the kth value in place, nothing larger before, nothing smaller after
     * (NaN sorts last, as in the CPU's order) */
    ok = ra[k] == rb[k] || (isnan(ra[k]) && isnan(rb[k]));
    for (int64_t i = 0; ok && i < n; i++)
      if (i < k)
        ok = !(ra[i] > ra[k]) || isnan(ra[k]);
      else if (i > k)
        ok = !(ra[i] < ra[k]) || isnan(ra[i]);
  }
  free(a);
  free(b);
  return ok;
}

static int n_checked[AM_OP_COUNT], n_failed[AM_OP_COUNT];

static void check_one(int op, uint64_t seed) {
  const char *name = am_prims[op]->name;
  am_scope_push();
  am_array ref[MAX_OUT], got[MAX_OUT];
  t_rng r = {seed * 7919 + 11};
  int n_out = samples[op](&r, seed, ref);
  am_arr *o = ref[0];
  if (!o->node || o->node->op != op) {
    /* the sample's result did not come straight from this op (folded
     * or already evaluated): nothing to compare on the device */
    am_scope_pop();
    return;
  }
  am_node *nd = o->node;
  int n_in = nd->n_in;
  am_array *in = calloc((size_t)(n_in ? n_in : 1), sizeof *in);
  am_array *din = calloc((size_t)(n_in ? n_in : 1), sizeof *din);
  for (int i = 0; i < n_in; i++)
    in[i] = nd->in[i];
  am_status s = n_in ? am_eval(in, n_in) : AM_OK;
  /* the node's own params, on device copies of the same inputs */
  for (int i = 0; i < n_in && !s; i++)
    din[i] = am_to_device(in[i], AM_DEVICE_CUDA);
  am_set_default_device(AM_DEVICE_CUDA);
  if (!s)
    s = am_op_make_n(op, nd->params, (am_arr *const *)din, n_in, n_out, got);
  am_set_default_device(AM_DEVICE_CPU);
  /* the node dies when its outputs are evaluated: keep what is read later */
  sort_params sp = {0};
  if (op == AM_OP_ARGPARTITION) memcpy(&sp, nd->params, sizeof sp);
  am_status sref = am_eval(ref, n_out);
  char where[160];
  snprintf(where, sizeof where, "%s seed %llu", name, (unsigned long long)seed);
  n_checked[op]++;
  int fails = t_fail;
  if (sref) {
    /* the CPU refuses this sample (a deliberate error case): the GPU
     * must refuse it too, without crashing */
    if (!s) s = am_eval(got, n_out);
    CHECK(s != AM_OK, "%s: CPU failed (%s) but GPU succeeded", where,
          am_last_error());
    goto done;
  }
  if (!s) s = am_eval(got, n_out);
  CHECK(!s, "%s: %s", where, am_last_error());
  if (s) goto done;
  for (int j = 0; j < n_out; j++) {
    am_arr *a = got[j], *b = ref[j];
    CHECK(am_array_device(got[j]) == AM_DEVICE_CUDA || op == AM_OP_TO_DEVICE,
          "%s: output %d is not on the GPU", where, j);
    bool same =
        a->m.dtype == b->m.dtype && a->m.ndim == b->m.ndim &&
        !memcmp(a->m.shape, b->m.shape, (size_t)a->m.ndim * sizeof(int64_t));
    CHECK(same, "%s: output %d dtype/shape differ", where, j);
    if (!same) continue;
    if (op == AM_OP_ARGPARTITION) {
      CHECK(partition_ok(in[0], got[j], &sp), "%s: not a partition at kth",
            where);
      continue;
    }
    double *gv = host_values(got[j]), *rv = host_values(ref[j]);
    CHECK(gv && rv, "%s: reading output %d: %s", where, j, am_last_error());
    if (!gv || !rv) {
      free(gv);
      free(rv);
      continue;
    }
    int64_t n = a->size;
    double num = 0, den = 0, tol = nmse_tol(a->m.dtype);
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
      double x = gv[i], y = rv[i];
      if (isnan(x) || isnan(y) || isinf(x) || isinf(y)) {
        if (!(x == y || (isnan(x) && isnan(y))) && bad < 0) bad = i;
        continue;
      }
      num += (x - y) * (x - y);
      den += y * y;
      if (tol == 0 && x != y && bad < 0) bad = i;
    }
    double e = den > 0 ? num / den : num;
    CHECK(bad < 0 && e <= (tol ? tol : 0),
          "%s: output %d (%lld elements) nmse %.3g (tol %.1g)%s%s", where, j,
          (long long)n, e, tol, bad >= 0 ? ", first mismatch at " : "",
          bad >= 0 ? "" : "");
    if (bad >= 0)
      fprintf(stderr, "    element %lld: gpu %.9g cpu %.9g\n", (long long)bad,
              gv[bad], rv[bad]);
    free(gv);
    free(rv);
  }
done:
  if (t_fail > fails) n_failed[op]++;
  free(in);
  free(din);
  am_scope_pop();
}

int main(void) {
  if (am_cuda_init()) {
    printf("skipped: %s\n", am_last_error());
    return 77;
  }
  int seeds = t_quick() ? 6 : 40;
  for (int op = 0; op < AM_OP_COUNT; op++) {
    if (!selected(am_prims[op]->name)) continue;
    for (int k = 0; k < seeds; k++)
      check_one(op, (uint64_t)k + 1);
  }
  int missing = 0, failing = 0;
  const am_backend *be = am_backend_get(AM_DEVICE_CUDA);
  for (int op = 0; op < AM_OP_COUNT; op++) {
    if (!selected(am_prims[op]->name)) continue;
    if (!be->eval[op]) {
      missing++;
      printf("  no GPU kernel: %s\n", am_prims[op]->name);
    } else if (n_failed[op]) {
      failing++;
      printf("  FAILED %s: %d of %d seeds\n", am_prims[op]->name, n_failed[op],
             n_checked[op]);
    }
  }
  CHECK(!missing, "%d primitives have no GPU kernel", missing);
  printf("%d primitives, %d without a GPU kernel, %d failing\n", AM_OP_COUNT,
         missing, failing);
  return t_summary();
}
