/*
 * array.c — array handles: creation from data, refcounts and iterative
 * teardown, scopes, error arrays, and recording op nodes (am_op_make).
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* ======================================================================
 *  Shape helpers
 * ====================================================================== */

int64_t am_meta_size(const am_meta *m) {
  int64_t n = 1;
  for (int i = 0; i < m->ndim; i++)
    n *= m->shape[i];
  return n;
}

char *am_meta_str(const am_meta *m, char *buf, size_t n) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < m->ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld",
                          (long long)m->shape[i]);
  if (k < n) snprintf(buf + k, n - k, "] %s", am_dtype_name(m->dtype));
  return buf;
}

int am_norm_axis(int axis, int ndim) {
  if (axis < 0) axis += ndim;
  return (axis < 0 || axis >= ndim) ? -1 : axis;
}

am_status am_broadcast_shapes(const int64_t *a, int na, const int64_t *b,
                              int nb, int64_t *out, int *nout) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int64_t da = i < n - na ? 1 : a[i - (n - na)];
    int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
    if (da != db && da != 1 && db != 1) return AM_ERR_SHAPE;
    out[i] = da == 1 ? db : da;
  }
  *nout = n;
  return AM_OK;
}

void am_contig_strides(const int64_t *shape, int ndim, int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
}

bool am_arr_is_contiguous(const am_arr *a) {
  int64_t s = 1;
  for (int i = a->m.ndim - 1; i >= 0; i--) {
    if (a->m.shape[i] != 1 && a->strides[i] != s) return false;
    s *= a->m.shape[i];
  }
  return true;
}

void am_broadcast_strides_of(const int64_t *shape, const int64_t *strides,
                             int nd, const int64_t *to, int nto, int64_t *out) {
  for (int i = 0; i < nto; i++) {
    int j = i - (nto - nd);
    out[i] = (j < 0 || shape[j] != to[i]) ? 0 : strides[j];
  }
}

void am_broadcast_strides(const am_arr *a, const int64_t *shape, int ndim,
                          int64_t *strides) {
  am_broadcast_strides_of(a->m.shape, a->strides, a->m.ndim, shape, ndim,
                          strides);
}

/* ======================================================================
 *  Allocation and teardown
 * ====================================================================== */

/* The array handed out when even an error array cannot be allocated. */
static am_arr g_oom = {
    .refs = INT_MAX / 2, .err = AM_ERR_OOM, .err_msg = "out of memory"};

am_arr *am_arr_alloc(const am_meta *m) {
  am_arr *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  atomic_init(&a->refs, 1);
  a->m = *m;
  a->size = am_meta_size(m);
  return a;
}

void am_arr_retain(am_arr *a) {
  atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

static bool drop(atomic_int *r) {
  return atomic_fetch_sub_explicit(r, 1, memory_order_acq_rel) == 1;
}

/* Iterative so that freeing the end of a long chain cannot overflow the
 * stack: arrays whose count hits zero go on a worklist, and so do the
 * inputs of nodes that die with them. */
void am_arr_release(am_arr *a) {
  if (!a || a == &g_oom) return;
  if (!drop(&a->refs)) return;
  size_t cap = 16, n = 0;
  am_arr *local[16], **stack = local;
  stack[n++] = a;
  while (n) {
    am_arr *x = stack[--n];
    am_node *node = x->node;
    am_buffer_release(x->buf);
    if (x->err_msg) free(x->err_msg);
    free(x);
    if (!node) continue;
    for (int i = 0; i < node->n_out; i++)
      if (node->out[i] == x) node->out[i] = NULL;
    if (!drop(&node->refs)) continue;
    for (int i = 0; i < node->n_in; i++) {
      am_arr *in = node->in[i];
      if (in == &g_oom || !drop(&in->refs)) continue;
      if (n == cap) {
        am_arr **s2 = malloc(2 * cap * sizeof *s2);
        if (!s2) continue; /* leak rather than crash on OOM */
        memcpy(s2, stack, n * sizeof *s2);
        if (stack != local) free(stack);
        stack = s2;
        cap *= 2;
      }
      stack[n++] = in;
    }
    free(node->in);
    free(node->out);
    if (node->params && node->prim->params_free)
      node->prim->params_free(node->params);
    free(node->params);
    free(node);
  }
  if (stack != local) free(stack);
}

am_arr *am_arr_from_buffer(const am_meta *m, am_buffer *b) {
  am_arr *a = am_arr_alloc(m);
  if (!a) {
    am_buffer_release(b);
    return NULL;
  }
  a->buf = b;
  a->device = (int8_t)b->device;
  am_contig_strides(a->m.shape, a->m.ndim, a->strides);
  return a;
}

/* ======================================================================
 *  Scopes
 * ====================================================================== */

typedef struct {
  am_arr **items;
  size_t n, cap;
  size_t *frames; /* start index of each open scope */
  int depth, fcap;
} scope_stack;

static _Thread_local scope_stack tl_scope;

void am_scope_push(void) {
  scope_stack *s = &tl_scope;
  if (s->depth == s->fcap) {
    int nc = s->fcap ? 2 * s->fcap : 8;
    size_t *f = realloc(s->frames, (size_t)nc * sizeof *f);
    if (!f) {
      am_set_error(AM_ERR_OOM, "am_scope_push: out of memory");
      return;
    }
    s->frames = f;
    s->fcap = nc;
  }
  s->frames[s->depth++] = s->n;
}

void am_scope_pop(void) {
  scope_stack *s = &tl_scope;
  if (!s->depth) return;
  size_t start = s->frames[--s->depth];
  for (size_t i = s->n; i > start; i--)
    am_arr_release(s->items[i - 1]);
  s->n = start;
  if (!s->depth) {
    free(s->items);
    free(s->frames);
    memset(s, 0, sizeof *s);
  }
}

am_array am_scope_own(am_arr *a) {
  scope_stack *s = &tl_scope;
  if (!s->depth) return a;
  if (s->n == s->cap) {
    size_t nc = s->cap ? 2 * s->cap : 64;
    am_arr **it = realloc(s->items, nc * sizeof *it);
    if (!it) return a; /* caller-owned: leaks only under OOM */
    s->items = it;
    s->cap = nc;
  }
  s->items[s->n++] = a;
  return a;
}

void am_array_free(am_array x) {
  am_arr_release(x);
}

am_array am_keep(am_array x) {
  if (x) am_arr_retain(x);
  return x;
}

/* ======================================================================
 *  Errors as arrays
 * ====================================================================== */

static am_array error_arrayv(am_status s, const char *fmt, va_list ap) {
  am_set_errorv(s, fmt, ap);
  am_meta m = {.dtype = AM_F32, .ndim = 0};
  am_arr *a = am_arr_alloc(&m);
  if (!a) return &g_oom;
  a->err = s;
  a->err_msg = strdup(am_last_error());
  return am_scope_own(a);
}

am_array am_error_array(am_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  am_array a = error_arrayv(s, fmt, ap);
  va_end(ap);
  return a;
}

am_arr *am_first_error(am_arr *const *in, int n) {
  for (int i = 0; i < n; i++)
    if (in[i] && in[i]->err) return in[i];
  return NULL;
}

static am_array propagate(am_arr *e) {
  am_set_error(e->err, "%s", e->err_msg ? e->err_msg : "");
  if (e == &g_oom) return e;
  am_arr_retain(e);
  return am_scope_own(e);
}

/* ======================================================================
 *  Creation from data
 * ====================================================================== */

static am_status check_shape(const char *fn, const int64_t *shape, int ndim,
                             am_dtype dtype, am_meta *m) {
  if ((unsigned)dtype >= AM_DTYPE_COUNT)
    return AM_FAIL(AM_ERR_DTYPE, "%s: invalid dtype %d", fn, (int)dtype);
  if (ndim < 0 || ndim > AM_MAX_DIMS)
    return AM_FAIL(AM_ERR_SHAPE, "%s: ndim %d outside [0, %d]", fn, ndim,
                   AM_MAX_DIMS);
  if (ndim && !shape)
    return AM_FAIL(AM_ERR_INVALID_ARG, "%s: shape is NULL", fn);
  m->dtype = dtype;
  m->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return AM_FAIL(AM_ERR_SHAPE, "%s: negative size %lld on axis %d", fn,
                     (long long)shape[i], i);
    m->shape[i] = shape[i];
  }
  return AM_OK;
}

am_array am_array_new_data(const void *data, const int64_t *shape, int ndim,
                           am_dtype dtype) {
  am_meta m;
  am_status s = check_shape("am_array_new_data", shape, ndim, dtype, &m);
  if (s) return am_error_array(s, "%s", am_last_error());
  int64_t n = am_meta_size(&m);
  if (n && !data)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "am_array_new_data: data is NULL");
  size_t bytes = (size_t)n * am_dtype_size(dtype);
  am_buffer *b = am_buffer_new(bytes);
  if (!b) return am_error_array(AM_ERR_OOM, "%s", am_last_error());
  if (bytes) memcpy(b->data, data, bytes);
  am_arr *a = am_arr_from_buffer(&m, b);
  return a ? am_scope_own(a) : &g_oom;
}

am_array am_array_new_data_managed(void *data, const int64_t *shape, int ndim,
                                   am_dtype dtype, void (*dtor)(void *),
                                   void *ctx) {
  am_meta m;
  am_status s =
      check_shape("am_array_new_data_managed", shape, ndim, dtype, &m);
  if (!s && am_meta_size(&m) && !data)
    s = AM_FAIL(AM_ERR_INVALID_ARG, "am_array_new_data_managed: data is NULL");
  if (s) {
    /* Ownership passed to us: honour it even on failure. */
    if (dtor) dtor(ctx);
    return am_error_array(s, "%s", am_last_error());
  }
  am_buffer *b = am_buffer_borrow(
      data, (size_t)am_meta_size(&m) * am_dtype_size(dtype), dtor, ctx);
  if (!b) {
    if (dtor) dtor(ctx);
    return am_error_array(AM_ERR_OOM, "%s", am_last_error());
  }
  am_arr *a = am_arr_from_buffer(&m, b);
  return a ? am_scope_own(a) : &g_oom;
}

am_array am_scalar(double value, am_dtype dtype) {
  if ((unsigned)dtype >= AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_DTYPE, "am_scalar: invalid dtype %d",
                          (int)dtype);
  char v[8];
  am_store_f64(v, dtype, value);
  return am_array_new_data(v, NULL, 0, dtype);
}

am_array am_float(double value) {
  am_array a = am_scalar(value, AM_F32);
  if (!a->err) a->weak = true;
  return a;
}

am_array am_int(int64_t value) {
  int32_t v = (int32_t)value;
  am_array a = (value == v) ? am_array_new_data(&v, NULL, 0, AM_I32)
                            : am_array_new_data(&value, NULL, 0, AM_I64);
  if (!a->err) a->weak = true;
  return a;
}

/* ======================================================================
 *  Accessors
 * ====================================================================== */

int am_array_ndim(am_array x) {
  return x ? x->m.ndim : 0;
}
const int64_t *am_array_shape(am_array x) {
  return x ? x->m.shape : NULL;
}
int64_t am_array_dim(am_array x, int axis) {
  int ax = x ? am_norm_axis(axis, x->m.ndim) : -1;
  return ax < 0 ? -1 : x->m.shape[ax];
}
int64_t am_array_size(am_array x) {
  return x ? x->size : 0;
}
am_dtype am_array_dtype(am_array x) {
  return x ? x->m.dtype : AM_F32;
}
am_status am_array_status(am_array x) {
  return x ? x->err : AM_ERR_INVALID_ARG;
}
const char *am_array_error(am_array x) {
  return x && x->err_msg ? x->err_msg : "";
}
bool am_array_is_evaluated(am_array x) {
  return x && x->buf;
}

static _Thread_local am_device t_default_device;

void am_set_default_device(am_device d) {
  if ((unsigned)d < AM_DEVICE_COUNT) t_default_device = d;
}
am_device am_default_device(void) {
  return t_default_device;
}

am_device am_array_device(am_array x) {
  return x ? (am_device)x->device : AM_DEVICE_CPU;
}

const void *am_array_data(am_array x) {
  if (!x || !x->buf || !am_arr_is_contiguous(x) ||
      x->buf->device != AM_DEVICE_CPU)
    return NULL;
  return am_arr_ptr(x);
}

/* ======================================================================
 *  Recording nodes
 * ====================================================================== */

static am_status validate_meta(const am_meta *m) {
  if ((unsigned)m->dtype >= AM_DTYPE_COUNT || m->ndim < 0 ||
      m->ndim > AM_MAX_DIMS)
    return AM_ERR_INTERNAL;
  for (int i = 0; i < m->ndim; i++)
    if (m->shape[i] < 0) return AM_ERR_SHAPE;
  return AM_OK;
}

/* "op: message (inputs [2,3] float32, [3] float32)" */
static void op_error(const am_prim *p, am_arr *const *in, int n_in, am_status s,
                     char *buf, size_t n) {
  size_t k =
      (size_t)snprintf(buf, n, "%s: %s (inputs", p->name,
                       am_last_error()[0] ? am_last_error() : am_status_str(s));
  for (int i = 0; i < n_in && k < n; i++) {
    char sh[256];
    k += (size_t)snprintf(buf + k, n - k, "%s %s", i ? "," : "",
                          am_meta_str(&in[i]->m, sh, sizeof sh));
  }
  if (k < n) snprintf(buf + k, n - k, "%s)", n_in ? "" : " none");
}

am_status am_op_make_n(int op, const void *params, am_arr *const *in, int n_in,
                       int n_out, am_array *outs) {
  const am_prim *p = am_prims[op];
  am_status s = AM_OK;
  char msg[1024];
  for (int i = 0; i < n_in; i++)
    if (!in[i]) {
      s = AM_FAIL(AM_ERR_INVALID_ARG, "%s: input %d is NULL", p->name, i);
      for (int j = 0; j < n_out; j++)
        outs[j] = am_error_array(s, "%s", am_last_error());
      return s;
    }
  am_arr *e = am_first_error(in, n_in);
  if (e) {
    for (int j = 0; j < n_out; j++)
      outs[j] = propagate(e);
    return e->err;
  }
  const am_meta *metas_local[8];
  const am_meta **metas =
      n_in <= 8 ? metas_local : malloc((size_t)n_in * sizeof *metas);
  am_meta om_local[4];
  am_meta *om = n_out <= 4 ? om_local : calloc((size_t)n_out, sizeof *om);
  am_node *node = calloc(1, sizeof *node);
  if (!metas || !om || !node) {
    s = AM_FAIL(AM_ERR_OOM, "%s: out of memory", p->name);
    goto fail;
  }
  for (int i = 0; i < n_in; i++)
    metas[i] = &in[i]->m;
  am_clear_error();
  s = p->output_shapes(metas, n_in, params, om, n_out);
  for (int j = 0; !s && j < n_out; j++)
    if (validate_meta(&om[j]))
      s = AM_FAIL(AM_ERR_INTERNAL, "inferred an invalid shape for output %d",
                  j);
  if (s) goto fail;
  node->op = op;
  node->prim = p;
  /* Where it will run: with its inputs (the highest device among them),
   * on the named device for a placement, else the thread's default. */
  node->device = n_in ? AM_DEVICE_CPU : am_default_device();
  bool placement = p->flags & AM_OPF_PLACEMENT;
  if (placement) node->device = *(const int *)params;
  for (int i = 0; i < n_in && !placement; i++)
    if (in[i]->device > node->device) node->device = in[i]->device;
  node->n_in = n_in;
  node->n_out = n_out;
  node->params_size = p->params_size;
  node->in = malloc((size_t)(n_in ? n_in : 1) * sizeof *node->in);
  node->out = calloc((size_t)n_out, sizeof *node->out);
  node->params = p->params_size ? malloc(p->params_size) : NULL;
  if (!node->in || !node->out || (p->params_size && !node->params)) {
    s = AM_FAIL(AM_ERR_OOM, "%s: out of memory", p->name);
    goto fail;
  }
  if (p->params_size) {
    memcpy(node->params, params, p->params_size);
    if (p->params_copy) p->params_copy(node->params);
  }
  for (int j = 0; j < n_out; j++) {
    am_arr *a = am_arr_alloc(&om[j]);
    if (!a) { /* nothing refers to these yet: plain frees */
      for (int k = 0; k < j; k++)
        free(node->out[k]);
      s = AM_FAIL(AM_ERR_OOM, "%s: out of memory", p->name);
      goto fail;
    }
    a->node = node;
    a->device = (int8_t)node->device;
    a->out_idx = j;
    node->out[j] = a;
  }
  atomic_init(&node->refs, n_out);
  for (int i = 0; i < n_in; i++) {
    node->in[i] = in[i];
    if (in[i] != &g_oom) am_arr_retain(in[i]);
  }
  for (int j = 0; j < n_out; j++)
    outs[j] = am_scope_own(node->out[j]);
  if (metas != metas_local) free(metas);
  if (om != om_local) free(om);
  return AM_OK;

fail:
  if (node) {
    free(node->in);
    free(node->out);
    free(node->params);
    free(node);
  }
  op_error(p, in, n_in, s, msg, sizeof msg);
  for (int j = 0; j < n_out; j++)
    outs[j] = am_error_array(s, "%s", msg);
  if (metas != metas_local) free(metas);
  if (om != om_local) free(om);
  return s;
}

am_array am_op_make(int op, const void *params, am_arr *const *in, int n_in) {
  am_array out;
  (void)am_op_make_n(op, params, in, n_in, 1, &out);
  return out;
}
