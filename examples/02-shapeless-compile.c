/* 02-shapeless-compile — trace a function once, call it with many shapes.
 *
 * The function normalizes each row of x (softmax written out) and drops
 * the first row; every size in it is shape-relative, so a shapeless
 * compile replays one trace for every input shape. */
#include <amorph.h>

static am_status rows(void *ctx, const am_array *in, int n_in, am_array *out,
                      int n_out) {
  am_array x = am_slice_axis(in[0], 0, 1, AM_END, 1); /* x[1:]          */
  am_array e = am_exp(am_sub(x, am_max(x, (int[]){-1}, 1, true)));
  out[0] = am_div(e, am_sum(e, (int[]){-1}, 1, true));
  return AM_OK;
}

int main(void) {
  am_compiled f =
      am_compile(rows, NULL, 1, 1, &(am_compile_options){.shapeless = true});
  for (int64_t n = 2; n <= 6; n++) {
    am_scope_push();
    am_array x = am_reshape(am_arange(0, (double)(n * n), 1, AM_F32),
                            (int64_t[]){n, -1}, 2),
             out[1];
    if (am_compiled_call(f, &x, out) != AM_OK) {
      fprintf(stderr, "error: %s\n", am_last_error());
      am_scope_pop();
      break;
    }
    printf("input %lldx%lld -> ", (long long)n, (long long)n);
    (void)am_array_print(out[0], stdout);
    am_scope_pop();
  }
  am_compile_stats st = am_compiled_stats(f);
  printf("traces %llu, replays %llu, fused groups %llu\n",
         (unsigned long long)st.traces, (unsigned long long)st.replays,
         (unsigned long long)st.fused_groups);
  am_compiled_print(f, stdout, false);
  am_compiled_free(f);
  return 0;
}
