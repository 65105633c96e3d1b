/* 01-lazy-eval — build a small graph lazily, evaluate it once, print it. */
#include <amorph.h>

int main(void) {
  am_scope_push();
  int64_t shape[] = {2, 3};
  am_array z = am_keep(am_zeros(shape, 2, AM_F32));
  am_array r = am_keep(am_arange(0, 6, 1, AM_F32));
  am_scope_pop();
  am_array outs[] = {z, r};
  if (am_eval(outs, 2) != AM_OK) {
    fprintf(stderr, "error: %s\n", am_last_error());
    return 1;
  }
  am_array_print(r, stdout);
  am_array_print(z, stdout);
  am_array_free(r);
  am_array_free(z);
  return 0;
}
