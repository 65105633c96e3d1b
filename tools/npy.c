/*
 * npy.c — a streaming writer of 2-D float32 .npy files (format v1.0).
 *
 * The header is written first with 0 rows and a fixed size (128 bytes with
 * the magic, space-padded as the format allows), rows are appended as they
 * come, and close rewrites the header in place with the final row count.
 */
#include "cli.h"

#include <string.h>

#define NPY_PREAMBLE 128 /* magic + version + length + dict, 64-aligned */

static bool host_little_endian(void) {
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 1;
}

static bool write_header(cli_npy *w) {
  char h[NPY_PREAMBLE];
  memset(h, ' ', sizeof h);
  memcpy(h, "\x93NUMPY\x01\x00", 8);
  uint16_t len = NPY_PREAMBLE - 10; /* little-endian on disk */
  h[8] = (char)(len & 0xff);
  h[9] = (char)(len >> 8);
  int n = snprintf(h + 10, sizeof h - 10,
                   "{'descr': '%sf4', 'fortran_order': False, "
                   "'shape': (%lld, %lld), }",
                   host_little_endian() ? "<" : ">", (long long)w->rows,
                   (long long)w->cols);
  if (n < 0 || n >= NPY_PREAMBLE - 11) return false;
  h[10 + n] = ' '; /* snprintf's NUL back to padding */
  h[NPY_PREAMBLE - 1] = '\n';
  return fseek(w->f, 0, SEEK_SET) == 0 &&
         fwrite(h, 1, sizeof h, w->f) == sizeof h;
}

bool cli_npy_open(cli_npy *w, const char *path, int64_t cols) {
  w->rows = 0;
  w->cols = cols;
  w->f = fopen(path, "wb");
  if (!w->f) return false;
  if (write_header(w)) return true;
  fclose(w->f);
  w->f = NULL;
  return false;
}

bool cli_npy_append(cli_npy *w, const float *row) {
  if (fwrite(row, sizeof(float), (size_t)w->cols, w->f) != (size_t)w->cols)
    return false;
  w->rows++;
  return true;
}

bool cli_npy_close(cli_npy *w) {
  if (!w->f) return false;
  bool ok = write_header(w);
  ok = (fclose(w->f) == 0) && ok;
  w->f = NULL;
  return ok;
}
