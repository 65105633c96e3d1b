/* fuzz_safetensors.c — libFuzzer target for the safetensors header parser:
 * the input is written to a file and opened; every tensor is then read. */
#include <amorph.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_st_%d", (int)getpid());
  FILE *fp = fopen(path, "wb");
  if (!fp) return 0;
  fwrite(data, 1, size, fp);
  fclose(fp);
  am_safetensors *st = NULL;
  if (am_safetensors_open(path, &st) == AM_OK) {
    for (int64_t i = 0; i < am_safetensors_count(st); i++) {
      am_array a = am_safetensors_get(st, am_safetensors_name(st, i));
      if (am_array_status(a) == AM_OK && am_array_size(a) > 0 &&
          am_array_size(a) < (1 << 16)) {
        double *v = malloc((size_t)am_array_size(a) * sizeof *v);
        if (v && am_array_read(a, AM_F64, v, am_array_size(a))) abort();
        free(v);
      }
      am_array_free(a);
    }
    (void)am_safetensors_metadata(st, "format");
    am_safetensors_free(st);
  }
  unlink(path);
  return 0;
}
