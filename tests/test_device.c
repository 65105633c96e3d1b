/*
 * test_device — the device machinery of the core, without a GPU: the
 * stand-in accelerator of stand_in_device.h (host memory, CPU kernels),
 * so everything around the kernels is exercised here and under the
 * sanitizers (the real CUDA backend is tested on a GPU by tests/cuda/):
 *  - placement (to_device both ways, views, device tags), dispatch by
 *    input placement, host scalars read through cached device copies;
 *  - reading results back, am_array_data on device arrays;
 *  - a primitive without a kernel on the device: an error naming it;
 *  - compiled calls on device inputs equal to the CPU;
 *  - the model runtime on the device: the demo model's logits equal the
 *    CPU's bit for bit (same kernels), and nothing leaks (ASan).
 */
#include "core/internal.h"
#include "llm/llm_internal.h"
#include "stand_in_device.h"
#include "test.h"

#include <stdlib.h>

static am_backend *be;

static am_array dev(am_array x) {
  return am_to_device(x, AM_DEVICE_CUDA);
}

static void test_placement(void) {
  am_scope_push();
  float v[6] = {1, -2, 3, -4, 5, -6};
  am_array x = am_array_new_data(v, (int64_t[]){2, 3}, 2, AM_F32);
  am_array xd = dev(x);
  CHECK(am_array_device(xd) == AM_DEVICE_CUDA, "to_device tag");
  CHECK(!am_eval(&xd, 1), "%s", am_last_error());
  CHECK(am_array_data(xd) == NULL, "device data has no host pointer");
  /* a device node with a host scalar: read through its device copy */
  am_array y = am_add(am_mul(xd, am_float(2.0)), am_float(0.5));
  CHECK(am_array_device(y) == AM_DEVICE_CUDA, "dispatch by inputs");
  float out[6];
  CHECK(!am_array_read(y, AM_F32, out, 6), "%s", am_last_error());
  for (int i = 0; i < 6; i++)
    CHECK(out[i] == v[i] * 2 + 0.5f, "y[%d] = %g", i, out[i]);
  /* a transposed view on the device, then back to the host */
  am_array t = am_to_device(am_transpose(xd, (int[]){1, 0}, 2), AM_DEVICE_CPU);
  CHECK(am_array_device(t) == AM_DEVICE_CPU, "back on the host");
  CHECK(!am_array_read(t, AM_F32, out, 6), "%s", am_last_error());
  float want[6] = {1, -4, -2, 5, 3, -6};
  CHECK(!memcmp(out, want, sizeof out), "transpose through the device");
  /* a second read of the same constants makes no new copy of them */
  am_array c = am_float(3.0);
  CHECK(!am_eval(&c, 1), "eval");
  am_array z1 = am_mul(xd, c), z2 = am_add(xd, c);
  int up = sd_uploads;
  CHECK(!am_eval((am_array[]){z1, z2}, 2), "%s", am_last_error());
  CHECK(sd_uploads == up + 1, "one upload of the shared scalar (%d)",
        sd_uploads - up);
  am_scope_pop();
}

static void test_missing_kernel(void) {
  am_scope_push();
  am_eval_fn saved = be->eval[AM_OP_SORT];
  be->eval[AM_OP_SORT] = NULL;
  am_array x = dev(am_arange(0, 8, 1, AM_F32));
  am_array s = am_sort(x, 0);
  am_status st = am_eval(&s, 1);
  CHECK(st == AM_ERR_UNSUPPORTED && strstr(am_last_error(), "sort"),
        "missing kernel: %d %s", (int)st, am_last_error());
  be->eval[AM_OP_SORT] = saved;
  am_scope_pop();
}

static am_status step(void *ctx, const am_array *in, int n_in, am_array *out,
                      int n_out) {
  (void)ctx, (void)n_in, (void)n_out;
  out[0] = am_softmax(am_add(am_matmul(in[0], in[1]), am_float(1.0)), -1);
  return AM_OK;
}

static void test_compiled(void) {
  am_scope_push();
  am_compile_options o = {.shapeless = true};
  am_compiled f = am_compile(step, NULL, 2, 1, &o);
  t_rng r = {7};
  for (int64_t n = 2; n < 6; n++) {
    am_array a = t_rand(&r, (int64_t[]){n, 4}, 2, AM_F32, -1, 1);
    am_array b = t_rand(&r, (int64_t[]){4, 3}, 2, AM_F32, -1, 1);
    am_array oc, od;
    CHECK(!am_compiled_call(f, (am_array[]){a, b}, &oc), "%s", am_last_error());
    CHECK(!am_compiled_call(f, (am_array[]){dev(a), dev(b)}, &od), "%s",
          am_last_error());
    CHECK(am_array_device(od) == AM_DEVICE_CUDA, "compiled on the device");
    float x[18], y[18];
    CHECK(!am_array_read(oc, AM_F32, x, n * 3) &&
              !am_array_read(od, AM_F32, y, n * 3),
          "%s", am_last_error());
    CHECK(!memcmp(x, y, sizeof(float) * (size_t)(n * 3)), "n=%lld",
          (long long)n);
  }
  am_compile_stats s = am_compiled_stats(f);
  CHECK(s.traces == 1, "one trace for both devices (%llu)",
        (unsigned long long)s.traces);
  CHECK(s.graph_captures == 0, "no capture without backend support");
  am_compiled_free(f);
  am_scope_pop();
}

static void test_model(void) {
  am_llm_model *mc = NULL, *md = NULL;
  am_llm_load_opts od = {.device = AM_DEVICE_CUDA};
  CHECK(!am_llm_model_load("../models/demo", NULL, &mc), "%s", am_last_error());
  CHECK(!am_llm_model_load("../models/demo", &od, &md), "%s", am_last_error());
  if (!mc || !md) goto out;
  CHECK(am_array_device(md->lm_head.w) == AM_DEVICE_CUDA, "weights placed");
  int64_t V = mc->cfg->vocab_size;
  float *lc = malloc(sizeof *lc * (size_t)V),
        *ld = malloc(sizeof *ld * (size_t)V);
  am_llm_session *sc = NULL, *sd = NULL;
  am_llm_session_opts so = {.prefill_chunk = 4};
  CHECK(!am_llm_session_new(mc, &so, &sc) && !am_llm_session_new(md, &so, &sd),
        "%s", am_last_error());
  int32_t prompt[7] = {1, 5, 9, 2, 6, 5, 3}, nc = 0, nd = 0;
  bool same = sc && sd && !am_llm_session_feed(sc, prompt, 7, &nc, lc) &&
              !am_llm_session_feed(sd, prompt, 7, &nd, ld);
  for (int i = 0; same && i < 16; i++) {
    same = nc == nd && !memcmp(lc, ld, sizeof *lc * (size_t)V);
    if (same)
      same = !am_llm_session_feed(sc, &nc, 1, &nc, lc) &&
             !am_llm_session_feed(sd, &nd, 1, &nd, ld);
  }
  CHECK(same, "device logits equal the CPU's: %s", am_last_error());
  am_llm_session_free(sc);
  am_llm_session_free(sd);
  free(lc);
  free(ld);
out:
  am_llm_model_free(mc);
  am_llm_model_free(md);
}

/* Before any backend is registered: clear errors, nothing placed. */
static void test_absent(void) {
  am_scope_push();
  CHECK(!am_device_available(AM_DEVICE_CUDA), "no backend yet");
  am_array x = am_to_device(am_float(1.0), AM_DEVICE_CUDA);
  CHECK(am_array_status(x) == AM_ERR_UNSUPPORTED &&
            strstr(am_array_error(x), "am_cuda_init"),
        "to_device without a backend: %s", am_array_error(x));
  am_array y = am_to_device(am_float(1.0), (am_device)7);
  CHECK(am_array_status(y) == AM_ERR_INVALID_ARG &&
            strstr(am_array_error(y), "unknown device"),
        "unknown device: %s", am_array_error(y));
  am_llm_model *m = NULL;
  am_llm_load_opts od = {.device = AM_DEVICE_CUDA};
  am_status st = am_llm_model_load("../models/demo", &od, &m);
  CHECK(st == AM_ERR_UNSUPPORTED && !m &&
            strstr(am_last_error(), "not available"),
        "model on an absent device: %d %s", (int)st, am_last_error());
  am_scope_pop();
}

int main(void) {
  test_absent();
  be = sd_register(false);
  test_placement();
  test_missing_kernel();
  test_compiled();
  test_model();
  am_memory_clear_cache();
  CHECK(sd_allocs == sd_frees, "device allocations %d, frees %d", sd_allocs,
        sd_frees);
  printf("device allocations %d, uploads %d, downloads %d\n", sd_allocs,
         sd_uploads, sd_downloads);
  return t_summary();
}
