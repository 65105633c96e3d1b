/* 04-gpu — the same code on the GPU: place the inputs there and every
 * op that reads them runs there; a compiled function called on GPU inputs
 * is captured as a CUDA graph on its second call with given shapes and
 * then replayed with one launch.
 *
 * Built with CUDA, this links libamorph_cuda; without a GPU (or built
 * without CUDA) it runs on the CPU and says so. */
#include <amorph.h>

static am_status mlp(void *ctx, const am_array *in, int n_in, am_array *out,
                     int n_out) {
  (void)ctx, (void)n_in, (void)n_out;
  am_array h = am_silu(am_matmul(in[0], in[1])); /* [n, 64] */
  out[0] = am_softmax(am_matmul(h, in[2]), -1);  /* [n, 8]  */
  return AM_OK;
}

int main(void) {
  am_device dev = AM_DEVICE_CPU;
#ifdef AM_HAVE_CUDA
  if (am_cuda_init() == AM_OK)
    dev = AM_DEVICE_CUDA;
  else
    printf("no GPU (%s): running on the CPU\n", am_last_error());
#else
  printf("built without CUDA: running on the CPU\n");
#endif
  /* weights placed once; am_keep: they outlive this scope's temporaries */
  am_scope_push();
  am_array key =
      am_array_new_data((uint32_t[]){1, 2}, (int64_t[]){2}, 1, AM_U32);
  am_array w1 = am_keep(am_to_device(
      am_random_uniform(key, (int64_t[]){32, 64}, 2, AM_F32), dev));
  am_array w2 = am_keep(
      am_to_device(am_random_uniform(key, (int64_t[]){64, 8}, 2, AM_F32), dev));
  am_scope_pop();
  am_compiled f =
      am_compile(mlp, NULL, 3, 1, &(am_compile_options){.shapeless = true});
  for (int step = 0; step < 6; step++) {
    am_scope_push();
    int64_t n = step < 3 ? 4 : 2; /* two shapes, three calls each */
    am_array x = am_to_device(am_ones((int64_t[]){n, 32}, 2, AM_F32), dev);
    am_array y;
    if (am_compiled_call(f, (am_array[]){x, w1, w2}, &y) != AM_OK) {
      fprintf(stderr, "error: %s\n", am_last_error());
      am_scope_pop();
      break;
    }
    float row[8];
    am_array first = am_slice_axis(y, 0, 0, 1, 1);
    if (am_array_read(first, AM_F32, row, 8) == AM_OK)
      printf("n=%lld on %s: y[0] = %.4f %.4f ... %.4f\n", (long long)n,
             am_device_name(am_array_device(y)), row[0], row[1], row[7]);
    am_scope_pop();
  }
  am_compile_stats st = am_compiled_stats(f);
  printf("traces %llu, replays %llu, graph captures %llu, graph launches "
         "%llu\n",
         (unsigned long long)st.traces, (unsigned long long)st.replays,
         (unsigned long long)st.graph_captures,
         (unsigned long long)st.graph_launches);
  am_compiled_free(f);
  am_array_free(w1);
  am_array_free(w2);
  return 0;
}
