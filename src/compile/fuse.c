/* fuse.c — elementwise fusion (see the design note in docs/compile.md). */
#include "compile_internal.h"

am_status am_compile_fuse(am_centry *e) {
  (void)e;
  return AM_OK;
}
