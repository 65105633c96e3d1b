/* fused.h — the fused elementwise primitive: a small program of float32
 * elementwise ops run tile by tile over the broadcast of its inputs. */
#ifndef AM_FUSED_H
#define AM_FUSED_H
#include "../core/internal.h"

#define AM_FUSED_MAX_IN (AM_ITER_MAX_ARGS - 1)
#define AM_FUSED_MAX_OPS 64

typedef struct am_fins {
  int op;         /* an elementwise AM_OP_*, or AM_OP_ASTYPE (rounding) */
  int a, b;       /* registers read (b = -1 for unary ops)             */
  am_dtype round; /* AM_OP_ASTYPE: round the value to this dtype       */
} am_fins;

/* Registers 0..n_in-1 hold the inputs; instruction i writes n_in + i;
 * the last instruction is the output. */
typedef struct am_fprog {
  atomic_int refs;
  int n_in, n_ops;
  am_dtype in_dtype[AM_FUSED_MAX_IN];
  am_dtype out_dtype;
  am_fins ins[AM_FUSED_MAX_OPS];
} am_fprog;

typedef struct {
  am_fprog *prog; /* shared, refcounted (params_copy / params_free) */
} am_fused_params;

/* Whether `op` with these dtypes can sit in a fused group. */
bool am_fusable_op(int op, am_dtype in, am_dtype out);
/* A new program (refs = 1); NULL on OOM. */
am_fprog *am_fprog_new(void);
void am_fprog_release(am_fprog *p);
#endif
