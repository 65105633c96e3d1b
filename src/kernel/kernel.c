/*
 * kernel.c — the custom_kernel primitive and the public kernel API.
 *
 * A kernel is defined once (am_kernel_new) and applied as a node whose
 * params hold the kernel (refcounted: the node keeps it alive) and the
 * per-application args. Output shapes come from the kernel's callback —
 * re-run at every shapeless replay, so they follow the inputs — or are
 * fixed per application; a fixed application remembers the input metas it
 * was given for and refuses others in output_shapes, which makes a
 * compiled replay with new shapes re-trace (never reuse a stale shape).
 */
#include "kernel_internal.h"

#include <stdio.h>
#include <stdlib.h>

_Static_assert(sizeof(am_kernel_meta) == sizeof(am_meta) &&
                   offsetof(am_kernel_meta, shape) == offsetof(am_meta, shape),
               "am_kernel_meta mirrors am_meta");

/* ----- failure messages from callbacks and CPU kernels ----- */

static _Thread_local am_kernel_err *tl_err;

am_kernel_err *am_kernel_err_swap(am_kernel_err *e) {
  am_kernel_err *old = tl_err;
  tl_err = e;
  return old;
}

void am_kernel_fail(const char *fmt, ...) {
  am_kernel_err *e = tl_err;
  if (!e || atomic_flag_test_and_set(&e->set)) return; /* first one wins */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

static const char *err_text(const am_kernel_err *e) {
  return e->msg[0] ? e->msg : "no message";
}

/* ----- the kernel object ----- */

static char *dup_str(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void kernel_release(struct am_kernel_s *k) {
  if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
  for (int i = 0; i < AM_KERNEL_MAX_IO; i++) {
    free(k->in_names[i]);
    free(k->out_names[i]);
  }
  free(k->source);
  free(k->header);
  free(k->name);
  free(k);
}

void am_kernel_free(am_kernel k) {
  kernel_release(k);
}

const char *am_kernel_name(am_kernel k) {
  return k ? k->name : "";
}

static bool ident_ok(const char *s) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return false;
  for (; *s; s++)
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9')))
      return false;
  return true;
}

static am_status check_desc(const am_kernel_desc *d) {
  if (!d) return AM_FAIL(AM_ERR_INVALID_ARG, "am_kernel_new: desc is NULL");
  if (!ident_ok(d->name))
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "am_kernel_new: name '%s' is not an identifier",
                   d->name ? d->name : "(null)");
  if (d->n_in < 1 || d->n_in > AM_KERNEL_MAX_IO || d->n_out < 1 ||
      d->n_out > AM_KERNEL_MAX_IO)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "am_kernel_new: kernel '%s': %d inputs, %d outputs (1..%d "
                   "each)",
                   d->name, d->n_in, d->n_out, AM_KERNEL_MAX_IO);
  for (int j = 0; j < AM_KERNEL_MAX_IO; j++)
    if (d->inplace[j] < 0 || d->inplace[j] > d->n_in ||
        (d->inplace[j] && j >= d->n_out))
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "am_kernel_new: kernel '%s': inplace[%d] = %d (0, or an "
                     "input 1..%d for an output)",
                     d->name, j, d->inplace[j], d->n_in);
  if (!d->cpu && !d->cuda)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "am_kernel_new: kernel '%s' has neither a CPU function nor "
                   "CUDA source",
                   d->name);
  if (d->n_tasks < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "am_kernel_new: kernel '%s': n_tasks < 0", d->name);
  const am_kernel_cuda_desc *c = d->cuda;
  if (c) {
    if (!c->source || !c->input_names || !c->output_names)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "am_kernel_new: kernel '%s': CUDA source and input/output "
                     "names are required",
                     d->name);
    for (int i = 0; i < d->n_in + d->n_out; i++) {
      const char *nm =
          i < d->n_in ? c->input_names[i] : c->output_names[i - d->n_in];
      if (!ident_ok(nm))
        return AM_FAIL(AM_ERR_INVALID_ARG,
                       "am_kernel_new: kernel '%s': %s name %d is not an "
                       "identifier",
                       d->name, i < d->n_in ? "input" : "output",
                       i < d->n_in ? i : i - d->n_in);
    }
    if (c->shared_memory < 0)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "am_kernel_new: kernel '%s': shared_memory < 0", d->name);
  }
  return AM_OK;
}

am_kernel am_kernel_new(const am_kernel_desc *d) {
  if (check_desc(d)) return NULL;
  struct am_kernel_s *k = calloc(1, sizeof *k);
  if (!k) {
    AM_FAIL(AM_ERR_OOM, "am_kernel_new: out of memory");
    return NULL;
  }
  atomic_init(&k->refs, 1);
  k->name = dup_str(d->name);
  k->n_in = d->n_in;
  k->n_out = d->n_out;
  k->cpu = d->cpu;
  k->n_tasks = d->n_tasks ? d->n_tasks : 1;
  k->cpu_tasks = d->cpu_tasks;
  k->shapes = d->shapes;
  k->allow_strided = d->allow_strided;
  memcpy(k->inplace, d->inplace, sizeof k->inplace);
  k->user = d->user;
  bool oom = !k->name;
  if (d->cuda) {
    const am_kernel_cuda_desc *c = d->cuda;
    k->has_cuda = true;
    for (int i = 0; i < d->n_in; i++)
      oom |= !(k->in_names[i] = dup_str(c->input_names[i]));
    for (int i = 0; i < d->n_out; i++)
      oom |= !(k->out_names[i] = dup_str(c->output_names[i]));
    oom |= !(k->source = dup_str(c->source));
    if (c->header) oom |= !(k->header = dup_str(c->header));
    k->shared_memory = c->shared_memory;
    k->launch = c->launch;
  }
  if (oom) {
    kernel_release(k);
    AM_FAIL(AM_ERR_OOM, "am_kernel_new: out of memory");
    return NULL;
  }
  return k;
}

/* ----- the primitive ----- */

static void kp_copy(void *p) {
  atomic_fetch_add(&((am_kernel_params *)p)->k->refs, 1);
}

static void kp_free(void *p) {
  kernel_release(((am_kernel_params *)p)->k);
}

static void kp_str(const void *p, char *buf, size_t n) {
  const am_kernel_params *kp = p;
  snprintf(buf, n, "%s%s", kp->k->name, kp->a.n_fixed ? " fixed" : "");
}

static bool meta_bad(const am_meta *m) {
  if (m->ndim < 0 || m->ndim > AM_MAX_DIMS ||
      (unsigned)m->dtype >= AM_DTYPE_COUNT)
    return true;
  for (int d = 0; d < m->ndim; d++)
    if (m->shape[d] < 0) return true;
  return false;
}

static bool meta_eq(const am_meta *a, const am_meta *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return true;
}

/* Metas of the inputs as one contiguous array (callbacks take that). */
static void gather_metas(const am_meta *const *in, int n, am_kernel_meta *m) {
  for (int i = 0; i < n; i++)
    memcpy(&m[i], in[i], sizeof *m);
}

static am_status launch_for(const struct am_kernel_s *k,
                            const am_kernel_meta *in, int n_in,
                            const am_kernel_args *a, am_kernel_launch *L) {
  memset(L, 0, sizeof *L);
  L->shared_memory = k->shared_memory;
  if (k->launch) {
    am_kernel_err e = {.set = ATOMIC_FLAG_INIT};
    am_kernel_err *old = am_kernel_err_swap(&e);
    am_status s = k->launch(k->user, in, n_in, a, L);
    am_kernel_err_swap(old);
    if (s)
      return AM_FAIL(s, "kernel '%s': launch callback failed: %s", k->name,
                     err_text(&e));
  } else {
    memcpy(L->grid, a->grid, sizeof L->grid);
    memcpy(L->threadgroup, a->threadgroup, sizeof L->threadgroup);
  }
  for (int d = 0; d < 3; d++)
    if (L->grid[d] < 1 || L->threadgroup[d] < 1)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "kernel '%s': launch grid (%d,%d,%d) / threadgroup "
                     "(%d,%d,%d) must be >= 1 in every dimension",
                     k->name, L->grid[0], L->grid[1], L->grid[2],
                     L->threadgroup[0], L->threadgroup[1], L->threadgroup[2]);
  if (L->shared_memory < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "kernel '%s': shared memory < 0",
                   k->name);
  return AM_OK;
}

static am_status ck_shapes(const am_meta *const *in, int n_in,
                           const void *params, am_meta *out, int n_out) {
  const am_kernel_params *p = params;
  const struct am_kernel_s *k = p->k;
  if (n_in != k->n_in || n_out != k->n_out)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "kernel '%s' takes %d inputs and gives %d outputs, got %d "
                   "and %d",
                   k->name, k->n_in, k->n_out, n_in, n_out);
  am_kernel_meta im[AM_KERNEL_MAX_IO];
  gather_metas(in, n_in, im);
  if (p->a.n_fixed) {
    /* Fixed shapes hold only for the inputs they were given for. */
    for (int i = 0; i < n_in; i++)
      if (!meta_eq(in[i], &p->fixed_in[i])) {
        char x[256], y[256];
        return AM_FAIL(AM_ERR_CANNOT_INFER,
                       "kernel '%s' has fixed output shapes, given for input "
                       "%d of %s; it is now %s (give the kernel a shape "
                       "callback to follow the inputs)",
                       k->name, i, am_meta_str(&p->fixed_in[i], x, sizeof x),
                       am_meta_str(in[i], y, sizeof y));
      }
    for (int j = 0; j < n_out; j++)
      memcpy(&out[j], &p->a.out[j], sizeof *out);
  } else {
    am_kernel_meta om[AM_KERNEL_MAX_IO];
    memset(om, 0, sizeof om);
    am_kernel_err e = {.set = ATOMIC_FLAG_INIT};
    am_kernel_err *old = am_kernel_err_swap(&e);
    int r = k->shapes(k->user, im, n_in, &p->a, om, AM_KERNEL_MAX_IO);
    am_kernel_err_swap(old);
    if (r < 0)
      return AM_FAIL(AM_ERR_SHAPE, "kernel '%s': shape callback failed: %s",
                     k->name, err_text(&e));
    if (r != n_out)
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "kernel '%s': shape callback returned %d outputs, the "
                     "kernel has %d",
                     k->name, r, n_out);
    for (int j = 0; j < n_out; j++) {
      memcpy(&out[j], &om[j], sizeof *out);
      if (meta_bad(&out[j]))
        return AM_FAIL(AM_ERR_INVALID_ARG,
                       "kernel '%s': shape callback gave an invalid dtype or "
                       "shape for output %d",
                       k->name, j);
    }
  }
  /* The CUDA launch follows the inputs too: checked at every replay. */
  am_kernel_launch L;
  if (k->has_cuda && k->launch) return launch_for(k, im, n_in, &p->a, &L);
  return AM_OK;
}

typedef struct {
  const struct am_kernel_s *k;
  am_kernel_call call;
  atomic_int status;
  am_kernel_err err;
} run_ctx;

static void run_range(void *c, int64_t begin, int64_t end) {
  run_ctx *x = c;
  if (atomic_load(&x->status)) return; /* a task failed: skip the rest */
  am_kernel_err *old = am_kernel_err_swap(&x->err);
  am_status s = x->k->cpu(&x->call, begin, end);
  am_kernel_err_swap(old);
  if (s) {
    int z = 0;
    atomic_compare_exchange_strong(&x->status, &z, (int)s);
  }
}

static void fill_init(am_arr *o, double v) {
  char *p = am_arr_ptr(o);
  size_t es = am_dtype_size(o->m.dtype);
  if (o->size) am_store_f64(p, o->m.dtype, v);
  for (int64_t i = 1; i < o->size; i++)
    memcpy(p + (size_t)i * es, p, es);
}

static am_status ck_eval(am_arr *const *in, int n_in, am_arr *const *out,
                         int n_out, const void *params) {
  const am_kernel_params *p = params;
  const struct am_kernel_s *k = p->k;
  if (!k->cpu)
    return AM_FAIL(AM_ERR_UNSUPPORTED,
                   "kernel '%s' has no CPU implementation (CUDA only)",
                   k->name);
  am_kernel_buf ib[AM_KERNEL_MAX_IO], ob[AM_KERNEL_MAX_IO];
  int64_t cst[2 * AM_KERNEL_MAX_IO][AM_MAX_DIMS];
  void *tmp[AM_KERNEL_MAX_IO] = {0};
  am_status s = AM_OK;
  for (int i = 0; i < n_in && !s; i++) {
    const am_arr *a = in[i];
    ib[i] = (am_kernel_buf){.data = a->size ? am_arr_ptr(a) : NULL,
                            .dtype = a->m.dtype,
                            .ndim = a->m.ndim,
                            .shape = a->m.shape,
                            .strides = a->strides,
                            .size = a->size};
    if (!k->allow_strided && !am_arr_is_contiguous(a)) {
      tmp[i] = malloc((size_t)a->size * am_dtype_size(a->m.dtype) + 1);
      if (!tmp[i]) {
        s = AM_FAIL(AM_ERR_OOM, "kernel '%s': out of memory", k->name);
        break;
      }
      am_copy_to_contig(a, tmp[i], a->m.dtype);
      am_contig_strides(a->m.shape, a->m.ndim, cst[i]);
      ib[i].data = tmp[i];
      ib[i].strides = cst[i];
    }
  }
  for (int j = 0; j < n_out && !s; j++) {
    am_arr *o = out[j];
    int from = k->inplace[j] - 1; /* an input copied above cannot serve */
    if (from >= 0 && from < n_in && !tmp[from] && !p->a.has_init)
      s = am_out_alloc_donate(o, &in[from], 1);
    else
      s = am_out_alloc(o);
    if (s) break;
    if (p->a.has_init) fill_init(o, p->a.init_value);
    ob[j] = (am_kernel_buf){.data = o->size ? am_arr_ptr(o) : NULL,
                            .dtype = o->m.dtype,
                            .ndim = o->m.ndim,
                            .shape = o->m.shape,
                            .strides = o->strides,
                            .size = o->size};
  }
  int64_t n_tasks = k->n_tasks;
  if (!s && k->cpu_tasks) {
    am_kernel_meta im[AM_KERNEL_MAX_IO];
    for (int i = 0; i < n_in; i++)
      memcpy(&im[i], &in[i]->m, sizeof im[i]);
    n_tasks = k->cpu_tasks(k->user, im, n_in, &p->a);
    if (n_tasks < 1)
      s = AM_FAIL(AM_ERR_INVALID_ARG,
                  "kernel '%s': task callback returned %lld tasks (>= 1 "
                  "needed)",
                  k->name, (long long)n_tasks);
  }
  if (!s) {
    run_ctx x = {.k = k,
                 .call = {.in = ib,
                          .n_in = n_in,
                          .out = ob,
                          .n_out = n_out,
                          .args = &p->a,
                          .n_tasks = n_tasks,
                          .user = k->user},
                 .err = {.set = ATOMIC_FLAG_INIT}};
    atomic_init(&x.status, 0);
    /* Little data (a small model's state): waking the pool costs more
     * than the work, so the tasks run here, in order. */
    int64_t bytes = 0;
    for (int i = 0; i < n_in; i++)
      bytes += ib[i].size * (int64_t)am_dtype_size(ib[i].dtype);
    for (int j = 0; j < n_out; j++)
      bytes += ob[j].size * (int64_t)am_dtype_size(ob[j].dtype);
    am_parallel_for(n_tasks, bytes < (64 << 10) ? n_tasks : 1, run_range, &x);
    int st = atomic_load(&x.status);
    if (st)
      s = AM_FAIL((am_status)st, "kernel '%s' failed: %s", k->name,
                  err_text(&x.err));
  }
  for (int i = 0; i < n_in; i++)
    free(tmp[i]);
  return s;
}

const am_prim am_prim_custom_kernel = {
    .name = "custom_kernel",
    .n_in = -1,
    .n_out = -1,
    .params_size = sizeof(am_kernel_params),
    .output_shapes = ck_shapes,
    .eval_cpu = ck_eval,
    .params_str = kp_str,
    .params_copy = kp_copy,
    .params_free = kp_free,
};

/* ----- apply ----- */

static am_status fail_all(am_status s, am_array *out, int n) {
  for (int j = 0; j < n; j++)
    out[j] = am_error_array(s, "%s", am_last_error());
  return s;
}

am_status am_kernel_apply(am_kernel k, const am_array *in, int n_in,
                          const am_kernel_args *args, am_array *out) {
  if (!out) return AM_FAIL(AM_ERR_INVALID_ARG, "am_kernel_apply: out is NULL");
  if (!k) {
    am_status s =
        AM_FAIL(AM_ERR_INVALID_ARG, "am_kernel_apply: kernel is NULL");
    out[0] = am_error_array(s, "%s", am_last_error());
    return s;
  }
  if (n_in != k->n_in || (n_in && !in))
    return fail_all(AM_FAIL(AM_ERR_INVALID_ARG,
                            "am_kernel_apply: kernel '%s' takes %d inputs, "
                            "got %d",
                            k->name, k->n_in, n_in),
                    out, k->n_out);
  am_kernel_params p;
  memset(&p, 0, sizeof p);
  p.k = k;
  if (args) {
    const am_kernel_args *a = args;
    if (a->n_i < 0 || a->n_i > AM_KERNEL_MAX_SCALARS || a->n_f < 0 ||
        a->n_f > AM_KERNEL_MAX_SCALARS)
      return fail_all(AM_FAIL(AM_ERR_INVALID_ARG,
                              "am_kernel_apply: kernel '%s': n_i %d, n_f %d "
                              "(0..%d)",
                              k->name, a->n_i, a->n_f, AM_KERNEL_MAX_SCALARS),
                      out, k->n_out);
    if (a->n_fixed && a->n_fixed != k->n_out)
      return fail_all(AM_FAIL(AM_ERR_INVALID_ARG,
                              "am_kernel_apply: kernel '%s': %d fixed output "
                              "shapes for %d outputs",
                              k->name, a->n_fixed, k->n_out),
                      out, k->n_out);
    /* Copy only what counts, so equal args compare equal bytewise. */
    p.a.n_i = a->n_i;
    p.a.n_f = a->n_f;
    memcpy(p.a.i, a->i, (size_t)a->n_i * sizeof *a->i);
    memcpy(p.a.f, a->f, (size_t)a->n_f * sizeof *a->f);
    p.a.n_fixed = a->n_fixed;
    for (int j = 0; j < a->n_fixed; j++) {
      am_meta m = {.dtype = a->out[j].dtype, .ndim = a->out[j].ndim};
      if (m.ndim < 0 || m.ndim > AM_MAX_DIMS ||
          (unsigned)m.dtype >= AM_DTYPE_COUNT)
        return fail_all(AM_FAIL(AM_ERR_INVALID_ARG,
                                "am_kernel_apply: kernel '%s': invalid fixed "
                                "output %d",
                                k->name, j),
                        out, k->n_out);
      memcpy(m.shape, a->out[j].shape, (size_t)m.ndim * sizeof *m.shape);
      if (meta_bad(&m))
        return fail_all(AM_FAIL(AM_ERR_INVALID_ARG,
                                "am_kernel_apply: kernel '%s': invalid fixed "
                                "output %d",
                                k->name, j),
                        out, k->n_out);
      memcpy(&p.a.out[j], &m, sizeof m);
    }
    p.a.has_init = a->has_init;
    p.a.init_value = a->has_init ? a->init_value : 0;
    memcpy(p.a.grid, a->grid, sizeof p.a.grid);
    memcpy(p.a.threadgroup, a->threadgroup, sizeof p.a.threadgroup);
  }
  if (!p.a.n_fixed && !k->shapes)
    return fail_all(AM_FAIL(AM_ERR_INVALID_ARG,
                            "am_kernel_apply: kernel '%s' has no shape "
                            "callback: give fixed output shapes",
                            k->name),
                    out, k->n_out);
  for (int i = 0; i < n_in; i++)
    if (!in[i])
      return fail_all(AM_FAIL(AM_ERR_INVALID_ARG,
                              "am_kernel_apply: kernel '%s': input %d is NULL",
                              k->name, i),
                      out, k->n_out);
  if (p.a.n_fixed) /* error inputs are propagated by am_op_make_n */
    for (int i = 0; i < n_in; i++)
      if (!in[i]->err) {
        memcpy(p.fixed_in[i].shape, in[i]->m.shape,
               (size_t)in[i]->m.ndim * sizeof(int64_t));
        p.fixed_in[i].dtype = in[i]->m.dtype;
        p.fixed_in[i].ndim = in[i]->m.ndim;
      }
  return am_op_make_n(AM_OP_CUSTOM_KERNEL, &p, (am_arr *const *)in, n_in,
                      k->n_out, out);
}

am_status am_kernel_cuda_launch_for(am_kernel k, const am_kernel_meta *in,
                                    int n_in, const am_kernel_args *args,
                                    am_kernel_launch *out) {
  if (!k || !out || (n_in && !in))
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_kernel_cuda_launch_for: NULL");
  if (!k->has_cuda)
    return AM_FAIL(AM_ERR_INVALID_ARG, "kernel '%s' has no CUDA source",
                   k->name);
  am_kernel_args zero;
  memset(&zero, 0, sizeof zero);
  return launch_for(k, in, n_in, args ? args : &zero, out);
}
