/* 00-readme — the API tour from README.md, compiled and run by CI. */
#include <amorph.h>

int main(void) {
  am_scope_push(); /* owns every array made below */
  float xs[] = {1, 2, 3, 4, 5, 6};
  am_array x = am_array_new_data(xs, (int64_t[]){2, 3}, 2, AM_F32);
  am_array y = am_exp(am_mul(x, am_float(0.5)));          /* lazy        */
  am_array s = am_keep(am_sum(y, (int[]){-1}, 1, false)); /* survives pop */
  am_array bad = am_add(x, am_ones((int64_t[]){4}, 1, AM_F32));
  printf("%s\n", am_array_error(bad)); /* add: cannot broadcast ...   */
  am_scope_pop();                      /* frees x, y, bad, the scalar */

  if (am_eval(&s, 1) != AM_OK) /* the first error, if any     */
    fprintf(stderr, "%s\n", am_last_error());
  float out[2];
  if (am_array_read(s, AM_F32, out, 2) == AM_OK)
    printf("%g %g\n", out[0], out[1]);
  am_array_free(s); /* one free per keep           */
  return 0;
}
