/*
 * shape.c — the shape ops that are views of their input where the strides
 * allow: reshape, flatten, unflatten, transpose, expand_dims, squeeze,
 * broadcast_to, broadcast_like, slice, split. (Copying ones live in
 * shape_copy.c.)
 *
 * Shapeless replay: params keep what the user wrote (negative axes, -1
 * sizes, slice bounds with AM_END) and are normalized against the input
 * shapes each time output_shapes or a kernel runs, so a graph replayed
 * with other shapes stays correct. Params that can only hold traced sizes
 * (a reshape target without -1, squeeze of "every size-1 axis", a literal
 * broadcast target) mark their node shape-dependent.
 */
#include "shape_internal.h"

#include <stdio.h>

/* Most indices am_split_at takes (so params stay a fixed-size struct). */
#define SPLIT_MAX_INDICES 64

static int64_t sat_mul(int64_t a, int64_t b) {
  return (a && b > INT64_MAX / a) ? INT64_MAX : a * b;
}

static bool has_minus_one(const int64_t *d, int n) {
  for (int i = 0; i < n; i++)
    if (d[i] == -1) return true;
  return false;
}

/* Sizes `want` (at most one -1, inferred) for `size` elements -> out. */
static am_status resolve_sizes(const int64_t *want, int n, int64_t size,
                               int64_t *out) {
  int neg = -1;
  int64_t known = 1;
  char b[256];
  for (int i = 0; i < n; i++) {
    if (want[i] == -1) {
      if (neg >= 0)
        return AM_FAIL(AM_ERR_INVALID_ARG, "-1 given twice in %s",
                       am_sh_dims_str(want, n, b, sizeof b));
      neg = i;
    } else if (want[i] < 0) {
      return AM_FAIL(AM_ERR_INVALID_ARG, "negative size in %s",
                     am_sh_dims_str(want, n, b, sizeof b));
    } else {
      known = sat_mul(known, want[i]);
    }
    out[i] = want[i];
  }
  if (neg >= 0 ? (known == 0 || size % known) : known != size)
    return AM_FAIL(AM_ERR_SHAPE, "%lld elements do not fit %s", (long long)size,
                   am_sh_dims_str(want, n, b, sizeof b));
  if (neg >= 0) out[neg] = size / known;
  return AM_OK;
}

/* ======================================================================
 *  reshape, flatten, unflatten: one kernel (the output shape says all)
 * ====================================================================== */

/* NumPy's no-copy reshape. Old dims (size 1 dropped) and new dims are cut
 * into groups of equal product; a group is a view iff its old dims nest
 * (stride[k] == shape[k+1] * stride[k+1]), and its new strides then follow
 * from the innermost old stride. Needs a non-empty array. */
bool am_reshape_view_strides(const am_arr *x, const am_meta *to, int64_t *nst) {
  int64_t od[AM_MAX_DIMS], os[AM_MAX_DIMS];
  int on = 0;
  for (int i = 0; i < x->m.ndim; i++)
    if (x->m.shape[i] != 1) {
      od[on] = x->m.shape[i];
      os[on++] = x->strides[i];
    }
  const int64_t *nd = to->shape;
  int nn = to->ndim, oi = 0, oj = 1, ni = 0, nj = 1;
  while (ni < nn && oi < on) {
    int64_t np = nd[ni], op = od[oi];
    while (np != op) {
      if (np < op) {
        if (nj >= nn) return false;
        np *= nd[nj++];
      } else {
        if (oj >= on) return false;
        op *= od[oj++];
      }
    }
    for (int k = oi; k < oj - 1; k++)
      if (os[k] != od[k + 1] * os[k + 1]) return false;
    nst[nj - 1] = os[oj - 1];
    for (int k = nj - 1; k > ni; k--)
      nst[k - 1] = nst[k] * nd[k];
    ni = nj++;
    oi = oj++;
  }
  int64_t last = ni >= 1 ? nst[ni - 1] : 1;
  for (int k = ni; k < nn; k++)
    nst[k] = last;
  return true;
}

static am_status reshape_eval(am_arr *const *in, int n_in, am_arr *const *out,
                              int n_out, const void *params) {
  const am_arr *x = in[0];
  am_arr *o = out[0];
  int64_t st[AM_MAX_DIMS];
  if (o->size == 0) {
    am_contig_strides(o->m.shape, o->m.ndim, st);
  } else if (!am_reshape_view_strides(x, &o->m, st)) {
    return am_sh_copy_contig(x, o); /* e.g. flattening a transpose */
  }
  am_out_view(o, x, st, x->offset);
  return AM_OK;
}

/* ----------------------------------------------------------- reshape */

typedef struct {
  int ndim;
  int64_t shape[AM_MAX_DIMS]; /* as given: one entry may be -1 */
} reshape_params;

static am_status reshape_shapes(const am_meta *const *in, int n_in,
                                const void *params, am_meta *out, int n_out) {
  const reshape_params *p = params;
  out[0].dtype = in[0]->dtype;
  out[0].ndim = p->ndim;
  am_status s =
      resolve_sizes(p->shape, p->ndim, am_meta_size(in[0]), out[0].shape);
  return s ? s : am_sh_check_size(&out[0]);
}

/* Without -1 the target is a literal traced shape. */
static bool reshape_shape_dependent(const void *params) {
  const reshape_params *p = params;
  return !has_minus_one(p->shape, p->ndim);
}

/* Literal sizes, guarded by compile against captured input sizes. */
static int reshape_literals(const void *params, int64_t *out, int max) {
  const reshape_params *p = params;
  return am_literals_add(p->shape, p->ndim, out, 0, max);
}

const am_prim am_prim_reshape = {
    .name = "reshape",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(reshape_params),
    .output_shapes = reshape_shapes,
    .eval_cpu = reshape_eval,
    .shape_dependent = reshape_shape_dependent,
    .literal_sizes = reshape_literals,
};

am_array am_reshape(am_array x, const int64_t *shape, int ndim) {
  if (ndim < 0 || ndim > AM_MAX_DIMS || (ndim && !shape))
    return am_error_array(AM_ERR_INVALID_ARG, "reshape: bad shape (ndim %d)",
                          ndim);
  reshape_params p;
  memset(&p, 0, sizeof p);
  p.ndim = ndim;
  if (ndim) memcpy(p.shape, shape, (size_t)ndim * sizeof *shape);
  return am_op_make(AM_OP_RESHAPE, &p, &x, 1);
}

/* ----------------------------------------------------------- flatten */

typedef struct {
  int start, end; /* inclusive, as given */
} flatten_params;

static am_status flatten_shapes(const am_meta *const *in, int n_in,
                                const void *params, am_meta *out, int n_out) {
  const flatten_params *p = params;
  const am_meta *x = in[0];
  int nd = x->ndim;
  /* A 0-d array flattens to [1]; its only axes are 0 and -1. */
  int s = am_norm_axis(p->start, nd ? nd : 1),
      e = am_norm_axis(p->end, nd ? nd : 1);
  if (s < 0 || e < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axes %d..%d out of range for %d dims",
                   p->start, p->end, nd);
  if (s > e)
    return AM_FAIL(AM_ERR_INVALID_ARG, "start axis %d is after end axis %d",
                   p->start, p->end);
  out[0].dtype = x->dtype;
  if (!nd) {
    out[0].ndim = 1;
    out[0].shape[0] = 1;
    return AM_OK;
  }
  int k = 0;
  for (int i = 0; i < s; i++)
    out[0].shape[k++] = x->shape[i];
  int64_t m = 1;
  for (int i = s; i <= e; i++)
    m *= x->shape[i];
  out[0].shape[k++] = m;
  for (int i = e + 1; i < nd; i++)
    out[0].shape[k++] = x->shape[i];
  out[0].ndim = k;
  return AM_OK;
}

const am_prim am_prim_flatten = {
    .name = "flatten",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(flatten_params),
    .output_shapes = flatten_shapes,
    .eval_cpu = reshape_eval,
};

am_array am_flatten(am_array x, int start_axis, int end_axis) {
  flatten_params p;
  memset(&p, 0, sizeof p);
  p.start = start_axis;
  p.end = end_axis;
  return am_op_make(AM_OP_FLATTEN, &p, &x, 1);
}

/* --------------------------------------------------------- unflatten */

typedef struct {
  int axis, n;
  int64_t sizes[AM_MAX_DIMS]; /* as given: one entry may be -1 */
} unflatten_params;

static am_status unflatten_shapes(const am_meta *const *in, int n_in,
                                  const void *params, am_meta *out, int n_out) {
  const unflatten_params *p = params;
  const am_meta *x = in[0];
  int ax = am_norm_axis(p->axis, x->ndim);
  if (ax < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                   p->axis, x->ndim);
  if (x->ndim - 1 + p->n > AM_MAX_DIMS)
    return AM_FAIL(AM_ERR_SHAPE, "result would have more than %d dims",
                   AM_MAX_DIMS);
  int64_t sz[AM_MAX_DIMS];
  am_status s = resolve_sizes(p->sizes, p->n, x->shape[ax], sz);
  if (s) return s;
  out[0].dtype = x->dtype;
  out[0].ndim = x->ndim - 1 + p->n;
  int k = 0;
  for (int i = 0; i < x->ndim; i++) {
    if (i != ax) {
      out[0].shape[k++] = x->shape[i];
      continue;
    }
    for (int j = 0; j < p->n; j++)
      out[0].shape[k++] = sz[j];
  }
  return am_sh_check_size(&out[0]);
}

static bool unflatten_shape_dependent(const void *params) {
  const unflatten_params *p = params;
  return !has_minus_one(p->sizes, p->n);
}

static int unflatten_literals(const void *params, int64_t *out, int max) {
  const unflatten_params *p = params;
  return am_literals_add(p->sizes, p->n, out, 0, max);
}

const am_prim am_prim_unflatten = {
    .name = "unflatten",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(unflatten_params),
    .output_shapes = unflatten_shapes,
    .eval_cpu = reshape_eval,
    .shape_dependent = unflatten_shape_dependent,
    .literal_sizes = unflatten_literals,
};

am_array am_unflatten(am_array x, int axis, const int64_t *sizes, int n) {
  if (n < 1 || n > AM_MAX_DIMS || !sizes)
    return am_error_array(AM_ERR_INVALID_ARG, "unflatten: bad sizes (n %d)", n);
  unflatten_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  p.n = n;
  memcpy(p.sizes, sizes, (size_t)n * sizeof *sizes);
  return am_op_make(AM_OP_UNFLATTEN, &p, &x, 1);
}

/* ======================================================================
 *  transpose (and swapaxes)
 * ====================================================================== */

enum { TR_PERM, TR_REVERSE, TR_SWAP };

typedef struct {
  int mode;              /* TR_*: reverse and swap need no rank */
  int n;                 /* TR_PERM: length of perm */
  int perm[AM_MAX_DIMS]; /* TR_PERM: axes; TR_SWAP: the two axes */
} transpose_params;

/* The normalized permutation for x. */
static am_status transpose_perm(const am_meta *x, const transpose_params *p,
                                int *perm) {
  int nd = x->ndim;
  for (int i = 0; i < nd; i++)
    perm[i] = p->mode == TR_REVERSE ? nd - 1 - i : i;
  if (p->mode == TR_REVERSE) return AM_OK;
  if (p->mode == TR_SWAP) {
    int a = am_norm_axis(p->perm[0], nd), b = am_norm_axis(p->perm[1], nd);
    if (a < 0 || b < 0)
      return AM_FAIL(AM_ERR_INVALID_ARG, "axes %d, %d out of range for %d dims",
                     p->perm[0], p->perm[1], nd);
    perm[a] = b;
    perm[b] = a;
    return AM_OK;
  }
  if (p->n != nd)
    return AM_FAIL(AM_ERR_INVALID_ARG, "perm has %d axes, input has %d", p->n,
                   nd);
  bool seen[AM_MAX_DIMS] = {0};
  for (int i = 0; i < nd; i++) {
    int a = am_norm_axis(p->perm[i], nd);
    if (a < 0 || seen[a])
      return AM_FAIL(AM_ERR_INVALID_ARG, "perm entry %d (axis %d) %s", i,
                     p->perm[i], a < 0 ? "out of range" : "repeated");
    seen[a] = true;
    perm[i] = a;
  }
  return AM_OK;
}

static am_status transpose_shapes(const am_meta *const *in, int n_in,
                                  const void *params, am_meta *out, int n_out) {
  int perm[AM_MAX_DIMS];
  am_status s = transpose_perm(in[0], params, perm);
  if (s) return s;
  out[0] = *in[0];
  for (int i = 0; i < in[0]->ndim; i++)
    out[0].shape[i] = in[0]->shape[perm[i]];
  return AM_OK;
}

static am_status transpose_eval(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  const am_arr *x = in[0];
  int perm[AM_MAX_DIMS];
  int64_t st[AM_MAX_DIMS];
  am_status s = transpose_perm(&x->m, params, perm);
  if (s) return s;
  for (int i = 0; i < x->m.ndim; i++)
    st[i] = x->strides[perm[i]];
  am_out_view(out[0], x, st, x->offset);
  return AM_OK;
}

const am_prim am_prim_transpose = {
    .name = "transpose",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(transpose_params),
    .output_shapes = transpose_shapes,
    .eval_cpu = transpose_eval,
};

am_array am_transpose(am_array x, const int *perm, int n) {
  transpose_params p;
  memset(&p, 0, sizeof p);
  if (!perm) {
    p.mode = TR_REVERSE;
  } else {
    if (n < 0 || n > AM_MAX_DIMS)
      return am_error_array(AM_ERR_INVALID_ARG, "transpose: %d axes in perm",
                            n);
    p.mode = TR_PERM;
    p.n = n;
    memcpy(p.perm, perm, (size_t)n * sizeof *perm);
  }
  return am_op_make(AM_OP_TRANSPOSE, &p, &x, 1);
}

am_array am_swapaxes(am_array x, int a, int b) {
  transpose_params p;
  memset(&p, 0, sizeof p);
  p.mode = TR_SWAP;
  p.n = 2;
  p.perm[0] = a;
  p.perm[1] = b;
  return am_op_make(AM_OP_TRANSPOSE, &p, &x, 1);
}

/* ======================================================================
 *  expand_dims, squeeze
 * ====================================================================== */

typedef struct {
  int n;
  int axes[AM_MAX_DIMS]; /* positions in the output, as given */
} expand_params;

/* Marks the inserted axes of the output; returns its rank in *ond. */
static am_status expand_mask(const am_meta *x, const expand_params *p,
                             bool *ins, int *ond) {
  int on = x->ndim + p->n;
  if (on > AM_MAX_DIMS)
    return AM_FAIL(AM_ERR_SHAPE, "result would have %d dims (max %d)", on,
                   AM_MAX_DIMS);
  memset(ins, 0, (size_t)on * sizeof *ins);
  for (int i = 0; i < p->n; i++) {
    int a = am_norm_axis(p->axes[i], on);
    if (a < 0 || ins[a])
      return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d %s for %d output dims",
                     p->axes[i], a < 0 ? "out of range" : "repeated", on);
    ins[a] = true;
  }
  *ond = on;
  return AM_OK;
}

static am_status expand_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  bool ins[AM_MAX_DIMS];
  int on;
  am_status s = expand_mask(in[0], params, ins, &on);
  if (s) return s;
  out[0].dtype = in[0]->dtype;
  out[0].ndim = on;
  for (int i = 0, j = 0; i < on; i++)
    out[0].shape[i] = ins[i] ? 1 : in[0]->shape[j++];
  return AM_OK;
}

static am_status expand_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  const am_arr *x = in[0];
  bool ins[AM_MAX_DIMS];
  int on;
  am_status s = expand_mask(&x->m, params, ins, &on);
  if (s) return s;
  int64_t st[AM_MAX_DIMS];
  /* A new axis takes the stride a contiguous layout would give it. */
  for (int i = on - 1, j = x->m.ndim - 1; i >= 0; i--)
    st[i] = !ins[i]      ? x->strides[j--]
            : i + 1 < on ? st[i + 1] * out[0]->m.shape[i + 1]
                         : 1;
  am_out_view(out[0], x, st, x->offset);
  return AM_OK;
}

const am_prim am_prim_expand_dims = {
    .name = "expand_dims",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(expand_params),
    .output_shapes = expand_shapes,
    .eval_cpu = expand_eval,
};

am_array am_expand_dims(am_array x, const int *axes, int n) {
  if (n < 0 || n > AM_MAX_DIMS || (n && !axes))
    return am_error_array(AM_ERR_INVALID_ARG, "expand_dims: bad axes (n %d)",
                          n);
  expand_params p;
  memset(&p, 0, sizeof p);
  p.n = n;
  if (n) memcpy(p.axes, axes, (size_t)n * sizeof *axes);
  return am_op_make(AM_OP_EXPAND_DIMS, &p, &x, 1);
}

typedef struct {
  bool all; /* every size-1 axis: depends on the traced shape */
  int n;
  int axes[AM_MAX_DIMS]; /* as given */
} squeeze_params;

static am_status squeeze_mask(const am_meta *x, const squeeze_params *p,
                              bool *drop) {
  for (int i = 0; i < x->ndim; i++)
    drop[i] = p->all && x->shape[i] == 1;
  for (int i = 0; !p->all && i < p->n; i++) {
    int a = am_norm_axis(p->axes[i], x->ndim);
    if (a < 0 || drop[a])
      return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d %s for %d dims", p->axes[i],
                     a < 0 ? "out of range" : "repeated", x->ndim);
    if (x->shape[a] != 1)
      return AM_FAIL(AM_ERR_SHAPE, "axis %d has size %lld, not 1", p->axes[i],
                     (long long)x->shape[a]);
    drop[a] = true;
  }
  return AM_OK;
}

static am_status squeeze_shapes(const am_meta *const *in, int n_in,
                                const void *params, am_meta *out, int n_out) {
  bool drop[AM_MAX_DIMS];
  am_status s = squeeze_mask(in[0], params, drop);
  if (s) return s;
  out[0].dtype = in[0]->dtype;
  out[0].ndim = 0;
  for (int i = 0; i < in[0]->ndim; i++)
    if (!drop[i]) out[0].shape[out[0].ndim++] = in[0]->shape[i];
  return AM_OK;
}

static am_status squeeze_eval(am_arr *const *in, int n_in, am_arr *const *out,
                              int n_out, const void *params) {
  const am_arr *x = in[0];
  bool drop[AM_MAX_DIMS];
  am_status s = squeeze_mask(&x->m, params, drop);
  if (s) return s;
  int64_t st[AM_MAX_DIMS];
  for (int i = 0, k = 0; i < x->m.ndim; i++)
    if (!drop[i]) st[k++] = x->strides[i];
  am_out_view(out[0], x, st, x->offset);
  return AM_OK;
}

static bool squeeze_shape_dependent(const void *params) {
  return ((const squeeze_params *)params)->all;
}

const am_prim am_prim_squeeze = {
    .name = "squeeze",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(squeeze_params),
    .output_shapes = squeeze_shapes,
    .eval_cpu = squeeze_eval,
    .shape_dependent = squeeze_shape_dependent,
};

am_array am_squeeze(am_array x, const int *axes, int n) {
  squeeze_params p;
  memset(&p, 0, sizeof p);
  if (!axes) {
    p.all = true;
  } else {
    if (n < 0 || n > AM_MAX_DIMS)
      return am_error_array(AM_ERR_INVALID_ARG, "squeeze: bad axes (n %d)", n);
    p.n = n;
    memcpy(p.axes, axes, (size_t)n * sizeof *axes);
  }
  return am_op_make(AM_OP_SQUEEZE, &p, &x, 1);
}

/* ======================================================================
 *  broadcast_to, broadcast_like
 * ====================================================================== */

/* One-way NumPy broadcast of x to `to` (x's dims right-aligned, each 1 or
 * equal). */
static am_status broadcast_check(const am_meta *x, const int64_t *to, int nt,
                                 am_meta *out) {
  char b[256];
  bool ok = x->ndim <= nt;
  for (int i = 0; i < nt; i++)
    if (to[i] < 0)
      return AM_FAIL(AM_ERR_INVALID_ARG, "negative size in target %s",
                     am_sh_dims_str(to, nt, b, sizeof b));
  for (int j = 0; ok && j < x->ndim; j++) {
    int64_t d = x->shape[j], t = to[j + nt - x->ndim];
    ok = d == 1 || d == t;
  }
  if (!ok)
    return AM_FAIL(AM_ERR_SHAPE, "cannot broadcast to %s",
                   am_sh_dims_str(to, nt, b, sizeof b));
  out->dtype = x->dtype;
  out->ndim = nt;
  memcpy(out->shape, to, (size_t)nt * sizeof *to);
  return am_sh_check_size(out);
}

static am_status broadcast_eval(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  int64_t st[AM_MAX_DIMS];
  am_broadcast_strides(in[0], out[0]->m.shape, out[0]->m.ndim, st);
  am_out_view(out[0], in[0], st, in[0]->offset);
  return AM_OK;
}

typedef struct {
  int ndim;
  int64_t shape[AM_MAX_DIMS]; /* literal target */
} broadcast_to_params;

static am_status broadcast_to_shapes(const am_meta *const *in, int n_in,
                                     const void *params, am_meta *out,
                                     int n_out) {
  const broadcast_to_params *p = params;
  return broadcast_check(in[0], p->shape, p->ndim, out);
}

static int broadcast_to_literals(const void *params, int64_t *out, int max) {
  const broadcast_to_params *p = params;
  return am_literals_add(p->shape, p->ndim, out, 0, max);
}

const am_prim am_prim_broadcast_to = {
    .name = "broadcast_to",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW | AM_OPF_SHAPE_DEPENDENT,
    .params_size = sizeof(broadcast_to_params),
    .output_shapes = broadcast_to_shapes,
    .eval_cpu = broadcast_eval,
    .literal_sizes = broadcast_to_literals,
};

am_array am_broadcast_to(am_array x, const int64_t *shape, int ndim) {
  if (ndim < 0 || ndim > AM_MAX_DIMS || (ndim && !shape))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "broadcast_to: bad shape (ndim %d)", ndim);
  broadcast_to_params p;
  memset(&p, 0, sizeof p);
  p.ndim = ndim;
  if (ndim) memcpy(p.shape, shape, (size_t)ndim * sizeof *shape);
  return am_op_make(AM_OP_BROADCAST_TO, &p, &x, 1);
}

static am_status broadcast_like_shapes(const am_meta *const *in, int n_in,
                                       const void *params, am_meta *out,
                                       int n_out) {
  return broadcast_check(in[0], in[1]->shape, in[1]->ndim, out);
}

const am_prim am_prim_broadcast_like = {
    .name = "broadcast_like",
    .n_in = 2,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = 0,
    .output_shapes = broadcast_like_shapes,
    .eval_cpu = broadcast_eval,
};

am_array am_broadcast_like(am_array x, am_array y) {
  am_arr *in[2] = {x, y};
  return am_op_make(AM_OP_BROADCAST_LIKE, NULL, in, 2);
}

/* ======================================================================
 *  slice
 * ====================================================================== */

typedef struct {
  int n;    /* slices the first n axes ... */
  int axis; /* ... or only this one (as given), when one_axis */
  bool one_axis;
  int64_t start[AM_MAX_DIMS], stop[AM_MAX_DIMS], step[AM_MAX_DIMS];
} slice_params;

/* One bound: AM_END gives none_val; a negative one counts from the end;
 * then clamped to [lo, hi]. */
static int64_t slice_bound(int64_t v, int64_t L, int64_t none_val, int64_t lo,
                           int64_t hi) {
  if (v == AM_END) return none_val;
  if (v < 0) v += L;
  return v < lo ? lo : v > hi ? hi : v;
}

/* Python's slice.indices on an axis of length L, AM_END standing for
 * None: as start, where the walk begins (0, or L-1 when stepping back);
 * as stop, past the end in the step's direction (L, or before index 0).
 * Gives the first index and the element count. step != 0. */
static void slice_range(int64_t L, int64_t start, int64_t stop, int64_t step,
                        int64_t *first, int64_t *len) {
  /* Past either end clamps to [lo, hi]; lo = -1 means "before 0". */
  int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? L : L - 1;
  int64_t b = slice_bound(start, L, step > 0 ? 0 : L - 1, lo, hi);
  int64_t e = slice_bound(stop, L, step > 0 ? L : -1, lo, hi);
  uint64_t gap = step > 0 ? (e > b ? (uint64_t)(e - b) : 0)
                          : (b > e ? (uint64_t)(b - e) : 0);
  /* |step| as unsigned: safe for INT64_MIN. */
  uint64_t mag = step > 0 ? (uint64_t)step : (uint64_t)(-(step + 1)) + 1;
  *first = b;
  *len = gap ? (int64_t)((gap - 1) / mag + 1) : 0;
}

/* Validates p against x; *axis0 is the axis of bounds entry 0 (entry k
 * applies to axis *axis0 + k). */
static am_status slice_check(const am_meta *x, const slice_params *p,
                             int *axis0) {
  *axis0 = 0;
  if (p->one_axis) {
    *axis0 = am_norm_axis(p->axis, x->ndim);
    if (*axis0 < 0)
      return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                     p->axis, x->ndim);
  } else if (p->n > x->ndim) {
    return AM_FAIL(AM_ERR_INVALID_ARG, "%d axes sliced, input has %d", p->n,
                   x->ndim);
  }
  int cnt = p->one_axis ? 1 : p->n;
  for (int k = 0; k < cnt; k++)
    if (p->step[k] == 0)
      return AM_FAIL(AM_ERR_INVALID_ARG, "step 0 on axis %d", *axis0 + k);
  return AM_OK;
}

static am_status slice_shapes(const am_meta *const *in, int n_in,
                              const void *params, am_meta *out, int n_out) {
  const slice_params *p = params;
  int a0;
  am_status s = slice_check(in[0], p, &a0);
  if (s) return s;
  out[0] = *in[0];
  for (int k = 0; k < (p->one_axis ? 1 : p->n); k++) {
    int64_t first, len;
    slice_range(in[0]->shape[a0 + k], p->start[k], p->stop[k], p->step[k],
                &first, &len);
    out[0].shape[a0 + k] = len;
  }
  return AM_OK;
}

static am_status slice_eval(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  const slice_params *p = params;
  const am_arr *x = in[0];
  int a0;
  am_status s = slice_check(&x->m, p, &a0);
  if (s) return s;
  int64_t st[AM_MAX_DIMS], off = x->offset;
  memcpy(st, x->strides, (size_t)x->m.ndim * sizeof *st);
  for (int k = 0; k < (p->one_axis ? 1 : p->n); k++) {
    int a = a0 + k;
    int64_t first, len;
    slice_range(x->m.shape[a], p->start[k], p->stop[k], p->step[k], &first,
                &len);
    if (len > 0) off += first * x->strides[a];
    /* |step| < L when len > 1, so the product stays inside the buffer. */
    if (len > 1) st[a] = x->strides[a] * p->step[k];
  }
  am_out_view(out[0], x, st, out[0]->size ? off : x->offset);
  return AM_OK;
}

/* Non-negative bounds may be captured sizes (x[:n] with n read at trace
 * time); negative ones and AM_END are relative already. */
static int slice_literals(const void *params, int64_t *out, int max) {
  const slice_params *p = params;
  int n = p->one_axis ? 1 : p->n;
  int k = am_literals_add(p->start, n, out, 0, max);
  return am_literals_add(p->stop, n, out, k, max);
}

const am_prim am_prim_slice = {
    .name = "slice",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(slice_params),
    .output_shapes = slice_shapes,
    .eval_cpu = slice_eval,
    .literal_sizes = slice_literals,
};

am_array am_slice(am_array x, const int64_t *start, const int64_t *stop,
                  const int64_t *step, int n) {
  if (n < 0 || n > AM_MAX_DIMS || (n && (!start || !stop)))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "slice: bad bounds (n %d, start %p, stop %p)", n,
                          (const void *)start, (const void *)stop);
  slice_params p;
  memset(&p, 0, sizeof p);
  p.n = n;
  for (int i = 0; i < n; i++) {
    p.start[i] = start[i];
    p.stop[i] = stop[i];
    p.step[i] = step ? step[i] : 1;
  }
  return am_op_make(AM_OP_SLICE, &p, &x, 1);
}

am_array am_slice_axis(am_array x, int axis, int64_t start, int64_t stop,
                       int64_t step) {
  slice_params p;
  memset(&p, 0, sizeof p);
  p.one_axis = true;
  p.axis = axis;
  p.start[0] = start;
  p.stop[0] = stop;
  p.step[0] = step;
  return am_op_make(AM_OP_SLICE, &p, &x, 1);
}

/* ======================================================================
 *  split: every part is a view
 * ====================================================================== */

typedef struct {
  int axis;                       /* as given */
  int n_sections;                 /* > 0: equal parts; 0: cut at idx */
  int n;                          /* number of indices (n + 1 parts) */
  int64_t idx[SPLIT_MAX_INDICES]; /* as given: negative, beyond the end */
} split_params;

static int split_count(const split_params *p) {
  return p->n_sections ? p->n_sections : p->n + 1;
}

/* Python slice bound for step 1: negative counts from the end, clamped. */
static int64_t clamp_index(int64_t i, int64_t L) {
  if (i < 0) return i + L < 0 ? 0 : i + L;
  return i > L ? L : i;
}

/* Part k is x[.., start:start+len, ..] on the axis of length L. */
static void split_part(const split_params *p, int64_t L, int k, int64_t *start,
                       int64_t *len) {
  if (p->n_sections) {
    *len = L / p->n_sections;
    *start = k * *len;
    return;
  }
  int64_t b = k == 0 ? 0 : clamp_index(p->idx[k - 1], L);
  int64_t e = k == p->n ? L : clamp_index(p->idx[k], L);
  *start = b;
  *len = e > b ? e - b : 0;
}

static am_status split_check(const am_meta *x, const split_params *p, int n_out,
                             int *ax) {
  if (n_out != split_count(p))
    return AM_FAIL(AM_ERR_INTERNAL, "%d outputs for %d parts", n_out,
                   split_count(p));
  *ax = am_norm_axis(p->axis, x->ndim);
  if (*ax < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d out of range for %d dims",
                   p->axis, x->ndim);
  if (p->n_sections && x->shape[*ax] % p->n_sections)
    return AM_FAIL(AM_ERR_SHAPE,
                   "axis %d of size %lld does not split into %d equal parts",
                   p->axis, (long long)x->shape[*ax], p->n_sections);
  return AM_OK;
}

static am_status split_shapes(const am_meta *const *in, int n_in,
                              const void *params, am_meta *out, int n_out) {
  const split_params *p = params;
  int ax;
  am_status s = split_check(in[0], p, n_out, &ax);
  for (int k = 0; !s && k < n_out; k++) {
    int64_t start, len;
    split_part(p, in[0]->shape[ax], k, &start, &len);
    out[k] = *in[0];
    out[k].shape[ax] = len;
  }
  return s;
}

static am_status split_eval(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  const split_params *p = params;
  const am_arr *x = in[0];
  int ax;
  am_status s = split_check(&x->m, p, n_out, &ax);
  for (int k = 0; !s && k < n_out; k++) {
    int64_t start, len;
    split_part(p, x->m.shape[ax], k, &start, &len);
    int64_t off = out[k]->size ? x->offset + start * x->strides[ax] : x->offset;
    am_out_view(out[k], x, x->strides, off);
  }
  return s;
}

const am_prim am_prim_split = {
    .name = "split",
    .n_in = 1,
    .n_out = -1,
    .flags = AM_OPF_VIEW,
    .params_size = sizeof(split_params),
    .output_shapes = split_shapes,
    .eval_cpu = split_eval,
};

am_status am_split(am_array x, int n_sections, int axis, am_array *outs) {
  if (!outs) return am_set_error(AM_ERR_INVALID_ARG, "split: outs is NULL");
  if (n_sections < 1)
    return am_set_error(AM_ERR_INVALID_ARG, "split: %d sections", n_sections);
  split_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  p.n_sections = n_sections;
  return am_op_make_n(AM_OP_SPLIT, &p, &x, 1, n_sections, outs);
}

am_status am_split_at(am_array x, const int64_t *indices, int n, int axis,
                      am_array *outs) {
  if (!outs) return am_set_error(AM_ERR_INVALID_ARG, "split: outs is NULL");
  if (n < 0 || n > SPLIT_MAX_INDICES)
    return am_set_error(AM_ERR_INVALID_ARG, "split: %d indices (at most %d)", n,
                        SPLIT_MAX_INDICES);
  if (n && !indices) {
    for (int i = 0; i <= n; i++)
      outs[i] = am_error_array(AM_ERR_INVALID_ARG, "split: indices is NULL");
    return AM_ERR_INVALID_ARG;
  }
  split_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  p.n = n;
  if (n) memcpy(p.idx, indices, (size_t)n * sizeof *indices);
  return am_op_make_n(AM_OP_SPLIT, &p, &x, 1, n + 1, outs);
}
