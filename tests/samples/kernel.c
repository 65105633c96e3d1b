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

/* The same kernel in CUDA (MLX cuda_kernel style): one thread per row.
 * The generated kernel takes no scalar params, so the factor `a` is a
 * macro of the header: one kernel per value the sample uses. */
static const char *const ks_in[] = {"x", "y"}, *const ks_out[] = {"o", "r"};
static const char ks_body[] =
    "  long long rows = 1, n = x_ndim ? x_shape[x_ndim - 1] : 1;\n"
    "  for (int d = 0; d + 1 < x_ndim; d++) rows *= x_shape[d];\n"
    "  long long row = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
    "  if (row >= rows || n == 0) return;\n"
    "  float s = 0;\n"
    "  for (long long i = row * n; i < row * n + n; i++) {\n"
    "    o[i] = x[i] * (float)KS_A + y[i];\n"
    "    s += x[i];\n"
    "  }\n"
    "  r[row] = s;\n";

static am_status ks_launch(void *user, const am_kernel_meta *in, int n_in,
                           const am_kernel_args *args, am_kernel_launch *out) {
  int64_t rows = ks_tasks(user, in, n_in, args);
  out->grid[0] = (int)rows;
  out->grid[1] = out->grid[2] = 1;
  out->threadgroup[0] = 64;
  out->threadgroup[1] = out->threadgroup[2] = 1;
  return AM_OK;
}

int sample_custom_kernel(t_rng *r, uint64_t pseed, am_array *outs) {
  /* one kernel per factor, for the process (intentionally kept) */
  static am_kernel ks[7];
  static char headers[7][32];
  static am_kernel_cuda_desc cuda[7];
  int64_t fa = s_pick(pseed, 3, -3, 3);
  am_kernel *k = &ks[fa + 3];
  if (!*k) {
    snprintf(headers[fa + 3], sizeof headers[0], "#define KS_A %d", (int)fa);
    cuda[fa + 3] = (am_kernel_cuda_desc){.input_names = ks_in,
                                         .output_names = ks_out,
                                         .source = ks_body,
                                         .header = headers[fa + 3],
                                         .launch = ks_launch};
    *k = am_kernel_new(&(am_kernel_desc){.name = "sample_axpy",
                                         .n_in = 2,
                                         .n_out = 2,
                                         .cpu = ks_cpu_guard,
                                         .cpu_tasks = ks_tasks,
                                         .shapes = ks_shapes,
                                         .cuda = &cuda[fa + 3]});
  }
  int nd = (int)s_pick(pseed, 1, 1, 4);
  int64_t sh[4];
  am_array x = s_rand(r, nd, 1, 5, AM_F32, sh);
  am_array y = t_rand(r, sh, nd, AM_F32, -1, 1);
  if (s_pick(pseed, 2, 0, 1))
    y = am_transpose(am_transpose(y, NULL, 0), NULL, 0);
  am_kernel_args a = {.n_f = 1, .f = {(double)fa}};
  am_status s = am_kernel_apply(*k, (am_array[]){x, y}, 2, &a, outs);
  return s ? -1 : 2;
}
