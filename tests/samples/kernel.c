#include "samples.h"

/* A generic custom kernel: out0 = x * a + y (broadcast-free, y like x),
 * out1 = row sums of x over the last axis (keeping the rank). */
static int ks_shapes(void *user, const am_kernel_meta *in, int n_in,
                     const am_kernel_args *args, am_kernel_meta *out,
                     int max_out) {
  (void)user, (void)n_in, (void)args, (void)max_out;
  out[0] = in[0];
  out[1] = in[0];
  if (out[1].ndim) out[1].shape[out[1].ndim - 1] = 1;
  return 2;
}

static am_status ks_cpu(const am_kernel_call *c, int64_t b, int64_t e) {
  const float *x = c->in[0].data, *y = c->in[1].data;
  float *o = c->out[0].data, *r = c->out[1].data;
  int64_t n = c->in[0].ndim ? c->in[0].shape[c->in[0].ndim - 1] : 1;
  for (int64_t row = b; row < e; row++) {
    float s = 0;
    for (int64_t i = row * n; i < row * n + n; i++) {
      o[i] = x[i] * (float)c->args->f[0] + y[i];
      s += x[i];
    }
    r[row] = s;
  }
  return AM_OK;
}

static int64_t ks_tasks(void *user, const am_kernel_meta *in, int n_in,
                        const am_kernel_args *args) {
  int64_t rows = 1;
  for (int d = 0; d + 1 < in[0].ndim; d++)
    rows *= in[0].shape[d];
  return rows ? rows : 1;
}

static am_status ks_cpu_guard(const am_kernel_call *c, int64_t b, int64_t e) {
  return c->in[0].size ? ks_cpu(c, b, e) : AM_OK;
}

int sample_custom_kernel(t_rng *r, uint64_t pseed, am_array *outs) {
  static am_kernel k; /* one kernel for the process (intentionally kept) */
  if (!k)
    k = am_kernel_new(&(am_kernel_desc){.name = "sample_axpy",
                                        .n_in = 2,
                                        .n_out = 2,
                                        .cpu = ks_cpu_guard,
                                        .cpu_tasks = ks_tasks,
                                        .shapes = ks_shapes});
  int nd = (int)s_pick(pseed, 1, 1, 4);
  int64_t sh[4];
  am_array x = s_rand(r, nd, 1, 5, AM_F32, sh);
  am_array y = t_rand(r, sh, nd, AM_F32, -1, 1);
  if (s_pick(pseed, 2, 0, 1))
    y = am_transpose(am_transpose(y, NULL, 0), NULL, 0);
  am_kernel_args a = {.n_f = 1, .f = {(double)s_pick(pseed, 3, -3, 3)}};
  am_status s = am_kernel_apply(k, (am_array[]){x, y}, 2, &a, outs);
  return s ? -1 : 2;
}
