/*
 * 03-custom-kernel.c — a CPU custom kernel whose output shape follows its
 * input, used inside a shapeless-compiled function: one trace serves every
 * input length. The kernel computes a running (prefix) sum along the last
 * axis scaled by a scalar param: out[..., i] = a * sum_{j <= i} x[..., j].
 */
#include <amorph.h>
#include <stdio.h>

/* Output shape and dtype from the input's: re-run at every replay. */
static int scan_shapes(void *user, const am_kernel_meta *in, int n_in,
                       const am_kernel_args *args, am_kernel_meta *out,
                       int max_out) {
  (void)user, (void)n_in, (void)args, (void)max_out;
  if (in[0].dtype != AM_F32 || in[0].ndim < 1) {
    am_kernel_fail("want a float32 array of >= 1 dim");
    return -1;
  }
  out[0] = in[0];
  return 1;
}

/* One task per row: how many rows these inputs have. */
static int64_t scan_tasks(void *user, const am_kernel_meta *in, int n_in,
                          const am_kernel_args *args) {
  (void)user, (void)n_in, (void)args;
  int64_t rows = 1;
  for (int d = 0; d + 1 < in[0].ndim; d++)
    rows *= in[0].shape[d];
  return rows > 0 ? rows : 1;
}

/* Runs rows [begin, end); the pool calls it from several threads. Inputs
 * arrive row-contiguous (ensure_row_contiguous is the default). */
static am_status scan_cpu(const am_kernel_call *c, int64_t begin, int64_t end) {
  const am_kernel_buf *x = &c->in[0];
  if (!x->size) return AM_OK;
  int64_t n = x->shape[x->ndim - 1];
  float a = (float)c->args->f[0];
  const float *src = x->data;
  float *dst = c->out[0].data;
  for (int64_t r = begin; r < end; r++) {
    float s = 0;
    for (int64_t i = r * n; i < (r + 1) * n; i++)
      dst[i] = a * (s += src[i]);
  }
  return AM_OK;
}

static am_status step(void *ctx, const am_array *in, int n_in, am_array *out,
                      int n_out) {
  (void)n_in, (void)n_out;
  am_kernel k = ctx;
  am_kernel_args args = {.n_f = 1, .f = {0.5}};
  am_array y;
  am_status s = am_kernel_apply(k, in, 1, &args, &y);
  out[0] = am_exp(am_neg(y)); /* the kernel mixes with ordinary ops */
  return s;
}

int main(void) {
  am_kernel k = am_kernel_new(&(am_kernel_desc){.name = "scaled_cumsum",
                                                .n_in = 1,
                                                .n_out = 1,
                                                .cpu = scan_cpu,
                                                .cpu_tasks = scan_tasks,
                                                .shapes = scan_shapes});
  if (!k) {
    fprintf(stderr, "%s\n", am_last_error());
    return 1;
  }
  am_compiled f =
      am_compile(step, k, 1, 1, &(am_compile_options){.shapeless = true});
  for (int64_t len = 1; len <= 4; len++) {
    float xs[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    am_array x = am_array_new_data(xs, (int64_t[]){2, len}, 2, AM_F32), y;
    if (am_compiled_call(f, &x, &y) != AM_OK) {
      fprintf(stderr, "%s\n", am_last_error());
      return 1;
    }
    printf("len %lld: ", (long long)len);
    am_status s = am_array_print(y, stdout);
    am_array_free(x);
    am_array_free(y);
    if (s) return 1;
  }
  am_compile_stats st = am_compiled_stats(f);
  printf("%llu calls, %llu trace(s)\n", (unsigned long long)st.calls,
         (unsigned long long)st.traces);
  am_compiled_free(f);
  am_kernel_free(k);
  return st.traces == 1 ? 0 : 1;
}
