/*
 * elementwise.c — unary and binary elementwise ops, where, astype.
 */
#include "../core/internal.h"

/* -------------------------------------------------------------- astype */

typedef struct {
  am_dtype dtype;
} astype_params;

static am_status astype_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  out[0] = *in[0];
  out[0].dtype = ((const astype_params *)params)->dtype;
  return AM_OK;
}

static am_status astype_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  am_status s = am_out_alloc_donate(out[0], in, 1);
  if (!s) am_copy_to_contig(in[0], out[0]->buf->data, out[0]->m.dtype);
  return s;
}

const am_prim am_prim_astype = {
    .name = "astype",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_ELEMENTWISE,
    .params_size = sizeof(astype_params),
    .output_shapes = astype_shapes,
    .eval_cpu = astype_eval,
};

am_array am_astype(am_array x, am_dtype dtype) {
  if ((unsigned)dtype >= AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "astype: invalid dtype %d", (int)dtype);
  astype_params p = {dtype};
  return am_op_make(AM_OP_ASTYPE, &p, &x, 1);
}
