/*
 * reduce_cumsum.c — cumulative sum along one axis (forward or reverse,
 * inclusive or exclusive).
 *
 * The axis is scanned by "lines": the other dims are ordered by input
 * stride and merged as in reduce.c. When the scanned axis is the innermost
 * in memory each line is scanned on its own ("rows"); otherwise neighbouring
 * lines advance together step by step, one carry per line ("cols", so every
 * step reads a contiguous run). Work units are blocks of neighbouring
 * lines; with fewer units than threads (one long 1-d scan), the axis is cut
 * into pieces scanned in two passes: the totals of each piece, a prefix
 * over them, then each piece again from its carry. Reverse runs from the
 * end (negated strides); exclusive writes the carry before adding.
 * Integers accumulate modulo 2^64 and wrap on store; floats in double.
 */
#include "../core/internal.h"
#include "reduce_params.h"

#include <stdlib.h>

static am_status cumsum_shapes(const am_meta *const *in, int n_in,
                               const void *params, am_meta *out, int n_out) {
  const cumsum_params *p = params;
  if (am_norm_axis(p->axis, in[0]->ndim) < 0)
    return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d is out of range for %d dims",
                   (int)p->axis, in[0]->ndim);
  out[0] = *in[0];
  if (in[0]->dtype == AM_BOOL) out[0].dtype = AM_I32;
  return AM_OK;
}

/* ---- kernels ----
 * n lines (input/output line strides li/lo bytes) of L steps (strides ps/os
 * bytes); carry[i] holds line i's running sum, in and out; mode is CS_*. */
typedef void (*cs_scan_fn)(void *carry, const char *p, int64_t ps, char *o,
                           int64_t os, int64_t L, int64_t n, int64_t li,
                           int64_t lo, int mode);
typedef struct {
  size_t asz;
  cs_scan_fn rows, cols;
  /* carries[k*B + i] of split k become the sum of splits before k */
  void (*prefix)(void *carries, int64_t nsplit, int64_t nb, int64_t B);
} cs_fns;

#define LD_ID(x) (x)
#define LD_B(x) ((x) != 0)
#define LD_F16(x) am_f16_to_f32(x)
#define LD_BF16(x) am_bf16_to_f32(x)
#define ST_CAST(OT, v) ((OT)(v))
#define ST_F16(OT, v) am_f32_to_f16((float)(v))
#define ST_BF16(OT, v) am_f32_to_bf16((float)(v))

/* Kernel modes: totals only (first pass of a split scan), inclusive,
 * exclusive. Constant after inlining, so each gets its own loops. */
enum { CS_TOTAL, CS_INCL, CS_EXCL };

/* One step of a line: read x first, so that writing in place (a donated
 * input buffer) is safe. */
#define CS_STEP(c, x, wp, OT, ST, mode)                                        \
  do {                                                                         \
    if (mode == CS_EXCL) *(OT *)(wp) = ST(OT, c);                              \
    c += x;                                                                    \
    if (mode == CS_INCL) *(OT *)(wp) = ST(OT, c);                              \
  } while (0)

#define CS_VLANES 8
#define VN_ID(v) (v)
#define VN_B(v) (((v) != 0) & 1)

/* Kernels for storage T (load LD, vector form VN if VEC), accumulator A,
 * output OT (store ST). rows: 4 lines at a time, so that 4 independent
 * add chains overlap; cols: CS_VLANES lines per vector step when lines
 * are contiguous. */
#define DEF_CUMSUM(sfx, T, LD, A, OT, ST, VEC, VN)                             \
  typedef A cs_av_##sfx __attribute__((vector_size(CS_VLANES * sizeof(A))));   \
  typedef T cs_tv_##sfx __attribute__((vector_size(CS_VLANES * sizeof(T))));   \
  typedef OT cs_ov_##sfx __attribute__((vector_size(CS_VLANES * sizeof(OT)))); \
  static inline void cs_rows_m_##sfx(                                          \
      A *cr, const char *p, int64_t ps, char *o, int64_t os, int64_t L,        \
      int64_t n, int64_t li, int64_t lo, const int mode) {                     \
    int64_t i = 0;                                                             \
    for (; i + 4 <= n; i += 4) {                                               \
      A c[4] = {cr[i], cr[i + 1], cr[i + 2], cr[i + 3]};                       \
      for (int64_t k = 0; k < L; k++)                                          \
        for (int j = 0; j < 4; j++) {                                          \
          A x = (A)LD(*(const T *)(p + (i + j) * li + k * ps));                \
          CS_STEP(c[j], x, o + (i + j) * lo + k * os, OT, ST, mode);           \
        }                                                                      \
      for (int j = 0; j < 4; j++)                                              \
        cr[i + j] = c[j];                                                      \
    }                                                                          \
    for (; i < n; i++) {                                                       \
      A c = cr[i];                                                             \
      for (int64_t k = 0; k < L; k++) {                                        \
        A x = (A)LD(*(const T *)(p + i * li + k * ps));                        \
        CS_STEP(c, x, o + i * lo + k * os, OT, ST, mode);                      \
      }                                                                        \
      cr[i] = c;                                                               \
    }                                                                          \
  }                                                                            \
  static inline void cs_cols_m_##sfx(                                          \
      A *cr, const char *p, int64_t ps, char *o, int64_t os, int64_t L,        \
      int64_t n, int64_t li, int64_t lo, const int mode) {                     \
    bool vec = VEC && li == sizeof(T) && lo == sizeof(OT);                     \
    int64_t nv = vec ? n - n % CS_VLANES : 0;                                  \
    for (int64_t k = 0; k < L; k++) {                                          \
      const char *q = p + k * ps;                                              \
      char *w = o + k * os;                                                    \
      for (int64_t i = 0; i < nv; i += CS_VLANES) {                            \
        cs_tv_##sfx t;                                                         \
        cs_av_##sfx c, x;                                                      \
        cs_ov_##sfx y;                                                         \
        memcpy(&t, q + i * sizeof(T), sizeof t);                               \
        memcpy(&c, cr + i, sizeof c);                                          \
        x = __builtin_convertvector(VN(t), cs_av_##sfx);                       \
        if (mode == CS_EXCL) {                                                 \
          y = __builtin_convertvector(c, cs_ov_##sfx);                         \
          memcpy(w + i * sizeof(OT), &y, sizeof y);                            \
        }                                                                      \
        c += x;                                                                \
        if (mode == CS_INCL) {                                                 \
          y = __builtin_convertvector(c, cs_ov_##sfx);                         \
          memcpy(w + i * sizeof(OT), &y, sizeof y);                            \
        }                                                                      \
        memcpy(cr + i, &c, sizeof c);                                          \
      }                                                                        \
      for (int64_t i = nv; i < n; i++) {                                       \
        A x = (A)LD(*(const T *)(q + i * li));                                 \
        CS_STEP(cr[i], x, w + i * lo, OT, ST, mode);                           \
      }                                                                        \
    }                                                                          \
  }                                                                            \
  static void cs_rows_##sfx(void *carry, const char *p, int64_t ps, char *o,   \
                            int64_t os, int64_t L, int64_t n, int64_t li,      \
                            int64_t lo, int mode) {                            \
    if (mode == CS_TOTAL)                                                      \
      cs_rows_m_##sfx(carry, p, ps, o, os, L, n, li, lo, CS_TOTAL);            \
    else if (mode == CS_INCL)                                                  \
      cs_rows_m_##sfx(carry, p, ps, o, os, L, n, li, lo, CS_INCL);             \
    else                                                                       \
      cs_rows_m_##sfx(carry, p, ps, o, os, L, n, li, lo, CS_EXCL);             \
  }                                                                            \
  static void cs_cols_##sfx(void *carry, const char *p, int64_t ps, char *o,   \
                            int64_t os, int64_t L, int64_t n, int64_t li,      \
                            int64_t lo, int mode) {                            \
    if (mode == CS_TOTAL)                                                      \
      cs_cols_m_##sfx(carry, p, ps, o, os, L, n, li, lo, CS_TOTAL);            \
    else if (mode == CS_INCL)                                                  \
      cs_cols_m_##sfx(carry, p, ps, o, os, L, n, li, lo, CS_INCL);             \
    else                                                                       \
      cs_cols_m_##sfx(carry, p, ps, o, os, L, n, li, lo, CS_EXCL);             \
  }                                                                            \
  static void cs_prefix_##sfx(void *carries, int64_t nsplit, int64_t nb,       \
                              int64_t B) {                                     \
    A *t = carries;                                                            \
    for (int64_t i = 0; i < nb; i++) {                                         \
      A run = 0;                                                               \
      for (int64_t k = 0; k < nsplit; k++) {                                   \
        A v = t[k * B + i];                                                    \
        t[k * B + i] = run;                                                    \
        run += v;                                                              \
      }                                                                        \
    }                                                                          \
  }                                                                            \
  static const cs_fns cs_##sfx = {sizeof(A), cs_rows_##sfx, cs_cols_##sfx,     \
                                  cs_prefix_##sfx};

DEF_CUMSUM(b, uint8_t, LD_B, uint64_t, int32_t, ST_CAST, 1, VN_B)
DEF_CUMSUM(u8, uint8_t, LD_ID, uint64_t, uint8_t, ST_CAST, 1, VN_ID)
DEF_CUMSUM(i8, int8_t, LD_ID, uint64_t, int8_t, ST_CAST, 1, VN_ID)
DEF_CUMSUM(u32, uint32_t, LD_ID, uint64_t, uint32_t, ST_CAST, 1, VN_ID)
DEF_CUMSUM(i32, int32_t, LD_ID, uint64_t, int32_t, ST_CAST, 1, VN_ID)
DEF_CUMSUM(i64, int64_t, LD_ID, uint64_t, int64_t, ST_CAST, 1, VN_ID)
DEF_CUMSUM(f16, uint16_t, LD_F16, double, uint16_t, ST_F16, 0, VN_ID)
DEF_CUMSUM(bf16, uint16_t, LD_BF16, double, uint16_t, ST_BF16, 0, VN_ID)
DEF_CUMSUM(f32, float, LD_ID, double, float, ST_CAST, 1, VN_ID)
DEF_CUMSUM(f64, double, LD_ID, double, double, ST_CAST, 1, VN_ID)

static const cs_fns *const cs_table[AM_DTYPE_COUNT] = {
    [AM_BOOL] = &cs_b,  [AM_U8] = &cs_u8,     [AM_I8] = &cs_i8,
    [AM_U32] = &cs_u32, [AM_I32] = &cs_i32,   [AM_I64] = &cs_i64,
    [AM_F16] = &cs_f16, [AM_BF16] = &cs_bf16, [AM_F32] = &cs_f32,
    [AM_F64] = &cs_f64,
};

/* ---- the walk ---- */

#define CS_MAXB 1024         /* lines per block                  */
#define CS_SERIAL_WORK 65536 /* below: run inline                */
#define CS_TASK_WORK 32768   /* elements per task at least       */

typedef struct {
  const cs_fns *f;
  const char *in;
  char *out;
  int64_t L, ps, os; /* scanned axis: steps and byte strides */
  bool rows, excl;
  int nko; /* outer line dims */
  int64_t kn[AM_MAX_DIMS], kis[AM_MAX_DIMS], kos[AM_MAX_DIMS];
  int64_t C, cis, cos; /* block dim (innermost line dim, or 1) */
  int64_t B, nblk, nsplit;
  char *carries; /* nsplit > 1: [unit][split][B] */
  bool pass2;
} cs_plan;

static int64_t cs_unit(const cs_plan *P, int64_t u, const char **pin,
                       char **pout) {
  int64_t o = u / P->nblk, b = u % P->nblk;
  const char *in = P->in + b * P->B * P->cis;
  char *out = P->out + b * P->B * P->cos;
  for (int d = P->nko - 1; d >= 0; d--) {
    int64_t i = o % P->kn[d];
    o /= P->kn[d];
    in += i * P->kis[d];
    out += i * P->kos[d];
  }
  *pin = in;
  *pout = out;
  int64_t nb = P->C - b * P->B;
  return nb < P->B ? nb : P->B;
}

static void cs_task(void *ctx, int64_t t0, int64_t t1) {
  const cs_plan *P = ctx;
  _Alignas(64) unsigned char local[CS_MAXB * 8];
  for (int64_t t = t0; t < t1; t++) {
    int64_t u = t / P->nsplit, k = t % P->nsplit;
    int64_t k0 = P->L * k / P->nsplit, k1 = P->L * (k + 1) / P->nsplit;
    if (!P->pass2 && k == P->nsplit - 1) continue; /* its total is unused */
    const char *in;
    char *out;
    int64_t nb = cs_unit(P, u, &in, &out);
    void *carry = local;
    if (P->nsplit > 1)
      carry = P->carries + t * P->B * P->f->asz;
    else
      memset(local, 0, (size_t)nb * P->f->asz); /* 0 in both types */
    cs_scan_fn fn = P->rows ? P->f->rows : P->f->cols;
    fn(carry, in + k0 * P->ps, P->ps, out + k0 * P->os, P->os, k1 - k0, nb,
       P->cis, P->cos,
       !P->pass2 ? CS_TOTAL
       : P->excl ? CS_EXCL
                 : CS_INCL);
  }
}

static void cs_prefix(void *ctx, int64_t u0, int64_t u1) {
  const cs_plan *P = ctx;
  for (int64_t u = u0; u < u1; u++) {
    const char *in;
    char *out;
    int64_t nb = cs_unit(P, u, &in, &out);
    P->f->prefix(P->carries + u * P->nsplit * P->B * P->f->asz, P->nsplit, nb,
                 P->B);
  }
}

static am_status cumsum_eval(am_arr *const *in, int n_in, am_arr *const *out,
                             int n_out, const void *params) {
  const cumsum_params *p = params;
  const am_arr *x = in[0];
  am_arr *y = out[0];
  int ax = am_norm_axis(p->axis, x->m.ndim);
  if (ax < 0) return AM_FAIL(AM_ERR_INVALID_ARG, "axis %d", (int)p->axis);
  am_status s = am_out_alloc_donate(y, in, 1);
  if (s || !y->size) return s;

  cs_plan P;
  memset(&P, 0, sizeof P);
  P.f = cs_table[x->m.dtype];
  P.excl = !p->inclusive;
  P.in = am_arr_ptr(x);
  P.out = am_arr_ptr(y);
  int64_t es = (int64_t)am_dtype_size(x->m.dtype),
          oes = (int64_t)am_dtype_size(y->m.dtype);
  /* line dims: all but the axis, ordered by input stride, then merged */
  struct {
    int64_t n, is, os;
  } d[AM_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->m.ndim; i++) {
    int64_t is = x->strides[i] * es, os = y->strides[i] * oes;
    if (i == ax) {
      P.L = x->m.shape[i];
      P.ps = is;
      P.os = os;
      continue;
    }
    if (x->m.shape[i] == 1) continue;
    if (is < 0) { /* lines are independent: walk them forwards */
      P.in += (x->m.shape[i] - 1) * is;
      P.out += (x->m.shape[i] - 1) * os;
      is = -is;
      os = -os;
    }
    int j = nd++;
    for (; j > 0 && llabs(d[j - 1].is) < llabs(is); j--)
      d[j] = d[j - 1];
    d[j].n = x->m.shape[i];
    d[j].is = is;
    d[j].os = os;
  }
  int m = 0;
  for (int i = 0; i < nd; i++) {
    if (m && d[m - 1].is == d[i].is * d[i].n &&
        d[m - 1].os == d[i].os * d[i].n) {
      d[m - 1].n *= d[i].n;
      d[m - 1].is = d[i].is;
      d[m - 1].os = d[i].os;
    } else {
      d[m++] = d[i];
    }
  }
  if (p->reverse) {
    P.in += (P.L - 1) * P.ps;
    P.out += (P.L - 1) * P.os;
    P.ps = -P.ps;
    P.os = -P.os;
  }
  P.C = 1;
  if (m) {
    P.C = d[m - 1].n;
    P.cis = d[m - 1].is;
    P.cos = d[m - 1].os;
  }
  P.nko = m ? m - 1 : 0;
  for (int i = 0; i < P.nko; i++) {
    P.kn[i] = d[i].n;
    P.kis[i] = d[i].is;
    P.kos[i] = d[i].os;
  }
  P.rows = !m || llabs(P.ps) <= llabs(P.cis);

  int64_t lines = y->size / P.L, work = y->size;
  int T = am_get_num_threads();
  bool par = T > 1 && work >= CS_SERIAL_WORK;
  int64_t maxb = P.C < CS_MAXB ? P.C : CS_MAXB;
  if (P.rows && par) {
    int64_t b = lines / (4 * (int64_t)T);
    P.B = b < 1 ? 1 : b > maxb ? maxb : b;
  } else {
    P.B = maxb;
  }
  P.nblk = (P.C + P.B - 1) / P.B;
  P.B = (P.C + P.nblk - 1) / P.nblk;
  int64_t units = lines / P.C * P.nblk;
  P.nsplit = 1;
  am_buffer *carries = NULL;
  if (par && units < 2 * (int64_t)T) {
    int64_t want = (4 * (int64_t)T + units - 1) / units;
    int64_t most = work / units / CS_TASK_WORK;
    if (most > P.L) most = P.L;
    P.nsplit = want < most ? want : most;
    if (P.nsplit < 2) P.nsplit = 1;
  }
  if (P.nsplit > 1) {
    carries = am_buffer_new((size_t)(units * P.nsplit * P.B) * P.f->asz);
    if (carries) {
      P.carries = carries->data;
      memset(P.carries, 0, carries->bytes);
    } else {
      P.nsplit = 1;
    }
  }
  int64_t tasks = units * P.nsplit, grain = tasks;
  if (par) {
    grain = CS_TASK_WORK / (work / tasks ? work / tasks : 1);
    if (grain < 1) grain = 1;
  }
  if (P.nsplit > 1) { /* totals of each piece, then their prefix */
    am_parallel_for(tasks, grain, cs_task, &P);
    am_parallel_for(units, units, cs_prefix, &P);
  }
  P.pass2 = true;
  am_parallel_for(tasks, grain, cs_task, &P);
  am_buffer_release(carries);
  return AM_OK;
}

const am_prim am_prim_cumsum = {
    .name = "cumsum",
    .n_in = 1,
    .n_out = 1,
    .flags = 0,
    .params_size = sizeof(cumsum_params),
    .output_shapes = cumsum_shapes,
    .eval_cpu = cumsum_eval,
};

am_array am_cumsum(am_array x, int axis, bool reverse, bool inclusive) {
  cumsum_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  p.reverse = reverse;
  p.inclusive = inclusive;
  return am_op_make(AM_OP_CUMSUM, &p, &x, 1);
}
