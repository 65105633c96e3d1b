/*
 * fused.c — the `fused` primitive that compile's fusion pass builds.
 *
 * A fused node computes a chain of elementwise ops in one pass: the output
 * is walked row by row (am_iter, inputs broadcast by stride 0) and each
 * row in tiles of FT elements; a tile of every input is read once (f16 and
 * bf16 widened to float32, strided data gathered), the program runs on
 * float32 tiles that stay in L1 with the same SIMD kernels the standalone
 * ops use, and the result is written once. Intermediate values are never
 * rounded to a narrower dtype except where the program says so (astype),
 * as in MLX's fused kernels.
 */
#include "fused.h"

#include "../ops/elementwise_simd.h"

#include <stdlib.h>

#define FT 512 /* elements per tile */

static bool ftype(am_dtype t) {
  return t == AM_F32 || t == AM_F16 || t == AM_BF16;
}

bool am_fusable_op(int op, am_dtype in, am_dtype out) {
  if (!ftype(in) || !ftype(out)) return false;
  if (op == AM_OP_ASTYPE) return true;
  return in == out && am_ew_f32_kernel(op) != NULL;
}

am_fprog *am_fprog_new(void) {
  am_fprog *p = calloc(1, sizeof *p);
  if (p) atomic_init(&p->refs, 1);
  return p;
}

void am_fprog_release(am_fprog *p) {
  if (p && atomic_fetch_sub(&p->refs, 1) == 1) free(p);
}

static void fused_params_copy(void *params) {
  atomic_fetch_add(&((am_fused_params *)params)->prog->refs, 1);
}

static void fused_params_free(void *params) {
  am_fprog_release(((am_fused_params *)params)->prog);
}

/* Programs compare by content (not by pointer), so CSE can merge two equal
 * fused groups over the same inputs. */
static size_t prog_bytes(const am_fprog *p) {
  return offsetof(am_fprog, ins) + (size_t)p->n_ops * sizeof(am_fins);
}

static bool fused_equal(const void *a, const void *b) {
  const am_fprog *x = ((const am_fused_params *)a)->prog,
                 *y = ((const am_fused_params *)b)->prog;
  size_t skip = offsetof(am_fprog, n_in);
  return x->n_ops == y->n_ops &&
         !memcmp((const char *)x + skip, (const char *)y + skip,
                 prog_bytes(x) - skip);
}

static uint64_t fused_hash(const void *params) {
  const am_fprog *p = ((const am_fused_params *)params)->prog;
  const unsigned char *c = (const unsigned char *)p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = offsetof(am_fprog, n_in); i < prog_bytes(p); i++)
    h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

static void fused_str(const void *params, char *buf, size_t n) {
  const am_fprog *p = ((const am_fused_params *)params)->prog;
  size_t k = 0;
  for (int i = 0; i < p->n_ops && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? " " : "",
                          am_prims[p->ins[i].op]->name);
}

static am_status fused_shapes(const am_meta *const *in, int n_in,
                              const void *params, am_meta *out, int n_out) {
  const am_fprog *p = ((const am_fused_params *)params)->prog;
  if (n_in != p->n_in)
    return AM_FAIL(AM_ERR_INVALID_ARG, "program takes %d inputs, got %d",
                   p->n_in, n_in);
  int64_t sh[2][AM_MAX_DIMS];
  int nd = 0, cur = 0;
  for (int i = 0; i < n_in; i++) {
    if (in[i]->dtype != p->in_dtype[i])
      return AM_FAIL(AM_ERR_DTYPE, "input %d is %s, the program reads %s", i,
                     am_dtype_name(in[i]->dtype),
                     am_dtype_name(p->in_dtype[i]));
    if (am_broadcast_shapes(sh[cur], nd, in[i]->shape, in[i]->ndim, sh[!cur],
                            &nd))
      return AM_FAIL(AM_ERR_SHAPE, "shapes cannot be broadcast together");
    cur = !cur;
  }
  out[0].dtype = p->out_dtype;
  out[0].ndim = nd;
  memcpy(out[0].shape, sh[cur], (size_t)nd * sizeof(int64_t));
  return AM_OK;
}

typedef struct {
  const am_fprog *p;
  am_ew_kernel k[AM_FUSED_MAX_OPS];
} fused_ctx;

/* n elements of dtype t (byte stride s) as float32 into dst. */
static void load_f32(am_dtype t, const char *src, int64_t s, int64_t n,
                     float *dst) {
  if (t == AM_F32)
    for (int64_t i = 0; i < n; i++)
      dst[i] = *(const float *)(src + i * s);
  else if (t == AM_F16)
    for (int64_t i = 0; i < n; i++)
      dst[i] = am_f16_to_f32(*(const uint16_t *)(src + i * s));
  else
    for (int64_t i = 0; i < n; i++)
      dst[i] = am_bf16_to_f32(*(const uint16_t *)(src + i * s));
}

static void store_f32(am_dtype t, const float *v, char *dst, int64_t s,
                      int64_t n) {
  if (t == AM_F32)
    for (int64_t i = 0; i < n; i++)
      *(float *)(dst + i * s) = v[i];
  else if (t == AM_F16)
    for (int64_t i = 0; i < n; i++)
      *(uint16_t *)(dst + i * s) = am_f32_to_f16(v[i]);
  else
    for (int64_t i = 0; i < n; i++)
      *(uint16_t *)(dst + i * s) = am_f32_to_bf16(v[i]);
}

static void round_to(am_dtype t, float *v, int64_t n) {
  if (t == AM_F16)
    for (int64_t i = 0; i < n; i++)
      v[i] = am_f16_to_f32(am_f32_to_f16(v[i]));
  else if (t == AM_BF16)
    for (int64_t i = 0; i < n; i++)
      v[i] = am_bf16_to_f32(am_f32_to_bf16(v[i]));
}

/* One row: ptrs[0] is the output, ptrs[1 + k] input k. */
static void fused_row(void *c, int64_t n, char **ptrs, const int64_t *st) {
  const fused_ctx *x = c;
  const am_fprog *p = x->p;
  float buf[AM_FUSED_MAX_IN + AM_FUSED_MAX_OPS][FT]
      __attribute__((aligned(64)));
  const float *reg[AM_FUSED_MAX_IN + AM_FUSED_MAX_OPS];
  int64_t step[AM_FUSED_MAX_IN + AM_FUSED_MAX_OPS];
  for (int64_t i0 = 0; i0 < n; i0 += FT) {
    int64_t m = n - i0 < FT ? n - i0 : FT;
    for (int k = 0; k < p->n_in; k++) {
      const char *src = ptrs[1 + k] + i0 * st[1 + k];
      step[k] = 1;
      if (st[1 + k] == 0 && p->in_dtype[k] == AM_F32) {
        reg[k] = (const float *)src; /* broadcast value */
        step[k] = 0;
      } else if (st[1 + k] == 4 && p->in_dtype[k] == AM_F32) {
        reg[k] = (const float *)src; /* contiguous: read in place */
      } else {
        load_f32(p->in_dtype[k], src, st[1 + k], st[1 + k] ? m : 1, buf[k]);
        reg[k] = buf[k];
        step[k] = st[1 + k] ? 1 : 0;
      }
    }
    bool direct_out = p->out_dtype == AM_F32 && st[0] == 4;
    for (int i = 0; i < p->n_ops; i++) {
      const am_fins *in = &p->ins[i];
      int r = p->n_in + i;
      float *dst = (i == p->n_ops - 1 && direct_out)
                       ? (float *)(ptrs[0] + i0 * 4)
                       : buf[r];
      if (in->op == AM_OP_ASTYPE) {
        const float *a = reg[in->a];
        for (int64_t q = 0; q < m; q++)
          dst[q] = a[step[in->a] ? q : 0];
        round_to(in->round, dst, m);
      } else {
        const void *src[2] = {reg[in->a], in->b >= 0 ? reg[in->b] : NULL};
        int64_t ss[2] = {step[in->a], in->b >= 0 ? step[in->b] : 0};
        x->k[i](m, src, ss, dst);
      }
      reg[r] = dst;
      step[r] = 1;
    }
    if (!direct_out)
      store_f32(p->out_dtype, reg[p->n_in + p->n_ops - 1], ptrs[0] + i0 * st[0],
                st[0], m);
  }
}

static am_status fused_eval(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  const am_fprog *p = ((const am_fused_params *)params)->prog;
  am_arr *o = out[0];
  am_status s = am_out_alloc_donate(o, in, n_in);
  if (s || !o->size) return s;
  fused_ctx c = {.p = p};
  for (int i = 0; i < p->n_ops; i++)
    if (p->ins[i].op != AM_OP_ASTYPE &&
        !(c.k[i] = am_ew_f32_kernel(p->ins[i].op)))
      return AM_FAIL(AM_ERR_INTERNAL, "no float32 kernel for %s",
                     am_prims[p->ins[i].op]->name);
  char *base[AM_ITER_MAX_ARGS];
  int64_t strides[AM_ITER_MAX_ARGS][AM_MAX_DIMS];
  const int64_t *sp[AM_ITER_MAX_ARGS];
  size_t es[AM_ITER_MAX_ARGS];
  base[0] = am_arr_ptr(o);
  sp[0] = o->strides;
  es[0] = am_dtype_size(o->m.dtype);
  for (int k = 0; k < n_in; k++) {
    am_broadcast_strides(in[k], o->m.shape, o->m.ndim, strides[k]);
    base[1 + k] = am_arr_ptr(in[k]);
    sp[1 + k] = strides[k];
    es[1 + k] = am_dtype_size(in[k]->m.dtype);
  }
  am_iter it;
  am_iter_init(&it, o->m.shape, o->m.ndim, 1 + n_in, base, sp, es);
  am_iter_run_parallel(&it, fused_row, &c, 1 << 14);
  return AM_OK;
}

const am_prim am_prim_fused = {
    .name = "fused",
    .n_in = -1,
    .n_out = 1,
    .flags = AM_OPF_ELEMENTWISE,
    .params_size = sizeof(am_fused_params),
    .output_shapes = fused_shapes,
    .eval_cpu = fused_eval,
    .params_str = fused_str,
    .is_equivalent = fused_equal,
    .params_hash = fused_hash,
    .params_copy = fused_params_copy,
    .params_free = fused_params_free,
};
