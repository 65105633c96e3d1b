/*
 * test_cuda_kernel — the Qwen3-Next gated delta-rule kernel
 * (src/kernel/gated_delta.h) on the GPU against its CPU implementation:
 * decode (T = 1) and prefill (T = 37) steps over several head layouts
 * (Hv a multiple of Hk, Dk != Dv, a Dk beyond the register path), and a
 * custom kernel without CUDA source, which must fail naming the kernel.
 * Exits 77 (skipped) without a GPU.
 */
#include "kernel/gated_delta.h"
#include "test.h"

static double nmse(am_array got, am_array ref, double *maxabs) {
  int64_t n = am_array_size(ref);
  double *a = malloc((size_t)(n ? n : 1) * sizeof *a),
         *b = malloc((size_t)(n ? n : 1) * sizeof *b);
  double num = 0, den = 0;
  *maxabs = 0;
  if (am_array_read(got, AM_F64, a, n) || am_array_read(ref, AM_F64, b, n)) {
    num = INFINITY;
  } else {
    for (int64_t i = 0; i < n; i++) {
      double d = a[i] - b[i];
      num += d * d;
      den += b[i] * b[i];
      if (fabs(d) > *maxabs || d != d) *maxabs = fabs(d);
    }
  }
  free(a);
  free(b);
  return den > 0 ? num / den : num;
}

static void check_gd(am_kernel kern, t_rng *r, int64_t B, int64_t T, int64_t Hk,
                     int64_t Hv, int64_t Dk, int64_t Dv) {
  am_scope_push();
  int64_t qs[4] = {B, T, Hk, Dk}, vs[4] = {B, T, Hv, Dv}, gs[3] = {B, T, Hv},
          ss[4] = {B, Hv, Dv, Dk};
  double ks = 1 / sqrt((double)Dk);
  am_array in[6] = {
      t_rand(r, qs, 4, AM_F32, -ks, ks), t_rand(r, qs, 4, AM_F32, -ks, ks),
      t_rand(r, vs, 4, AM_F32, -1, 1),   t_rand(r, gs, 3, AM_F32, 0.5, 1),
      t_rand(r, gs, 3, AM_F32, 0, 1),    t_rand(r, ss, 4, AM_F32, -1, 1)};
  am_array ref[2], got[2], din[6];
  am_status s = am_kernel_apply(kern, in, 6, NULL, ref);
  if (!s) s = am_eval(ref, 2);
  CHECK(!s, "CPU gated_delta: %s", am_last_error());
  for (int i = 0; i < 6; i++)
    din[i] = am_to_device(in[i], AM_DEVICE_CUDA);
  am_set_default_device(AM_DEVICE_CUDA);
  am_status g = am_kernel_apply(kern, din, 6, NULL, got);
  am_set_default_device(AM_DEVICE_CPU);
  if (!g) g = am_eval(got, 2);
  CHECK(!g, "GPU gated_delta B%lld T%lld Hk%lld Hv%lld Dk%lld Dv%lld: %s",
        (long long)B, (long long)T, (long long)Hk, (long long)Hv, (long long)Dk,
        (long long)Dv, am_last_error());
  if (!s && !g)
    for (int j = 0; j < 2; j++) {
      CHECK(am_array_device(got[j]) == AM_DEVICE_CUDA, "output %d on GPU", j);
      double m, e = nmse(got[j], ref[j], &m);
      CHECK(e < 1e-10,
            "gated_delta B%lld T%lld Hk%lld Hv%lld Dk%lld Dv%lld "
            "%s: nmse %.3g, max |diff| %.3g",
            (long long)B, (long long)T, (long long)Hk, (long long)Hv,
            (long long)Dk, (long long)Dv, j ? "state" : "y", e, m);
    }
  am_scope_pop();
}

static am_status cpu_only(const am_kernel_call *c, int64_t b, int64_t e) {
  (void)c, (void)b, (void)e;
  return AM_OK;
}

static int same_shape(void *user, const am_kernel_meta *in, int n_in,
                      const am_kernel_args *args, am_kernel_meta *out,
                      int max_out) {
  (void)user, (void)n_in, (void)args, (void)max_out;
  out[0] = in[0];
  return 1;
}

int main(void) {
  if (am_cuda_init()) {
    printf("skipped: %s\n", am_last_error());
    return 77;
  }
  am_kernel kern = gd_kernel_new(true);
  CHECK(kern != NULL, "gd_kernel_new: %s", am_last_error());
  t_rng r = {12345};
  /* B, Hk, Hv, Dk, Dv */
  static const int64_t cfg[][5] = {
      {1, 2, 4, 128, 128}, /* Qwen3-Next-like: Hv = 2 Hk */
      {2, 2, 4, 64, 96},   /* Dk != Dv */
      {3, 1, 3, 32, 40},   /* Dv not a multiple of a block's rows */
      {1, 4, 4, 256, 16},  /* register path at its largest Dk */
      {2, 1, 2, 300, 20},  /* Dk beyond the register path */
      {1, 2, 2, 20, 7},    /* Dk below a warp */
  };
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++)
    for (int t = 0; t < 3; t++) {
      int64_t T = t == 0 ? 1 : t == 1 ? 37 : 0;
      check_gd(kern, &r, cfg[c][0], T, cfg[c][1], cfg[c][2], cfg[c][3],
               cfg[c][4]);
    }
  am_kernel_free(kern);

  /* no CUDA source: a clear error naming the kernel */
  am_kernel k2 = am_kernel_new(&(am_kernel_desc){.name = "cpu_only_kernel",
                                                 .n_in = 1,
                                                 .n_out = 1,
                                                 .cpu = cpu_only,
                                                 .shapes = same_shape});
  am_scope_push();
  am_array x = am_to_device(t_rand(&r, (int64_t[]){4}, 1, AM_F32, -1, 1),
                            AM_DEVICE_CUDA);
  am_array y;
  am_status s = am_kernel_apply(k2, &x, 1, NULL, &y);
  if (!s) s = am_eval(&y, 1);
  CHECK(s != AM_OK && strstr(am_last_error(), "cpu_only_kernel"),
        "a CPU-only kernel on the GPU: status %d, '%s'", (int)s,
        am_last_error());
  am_scope_pop();
  am_kernel_free(k2);
  return t_summary();
}
