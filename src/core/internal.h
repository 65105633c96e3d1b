/*
 * internal.h — what every part of libamorph shares: the array and node
 * structs, the primitive descriptor, errors, buffers and CPU helpers.
 * Not installed; the public API is include/amorph.h.
 */
#ifndef AM_INTERNAL_H
#define AM_INTERNAL_H

#include "amorph.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

/* ======================================================================
 *  Shapes
 * ====================================================================== */

/** What shape inference works on: dtype and dims, no data. */
typedef struct am_meta {
  am_dtype dtype;
  int ndim;
  int64_t shape[AM_MAX_DIMS];
} am_meta;

int64_t am_meta_size(const am_meta *m);
/** "[2,3] f32" into buf; returns buf. */
char *am_meta_str(const am_meta *m, char *buf, size_t n);
/** Normalizes a possibly negative axis into [0, ndim); -1 when out of range. */
int am_norm_axis(int axis, int ndim);
/** NumPy broadcast of a and b into out; AM_ERR_SHAPE when incompatible. */
am_status am_broadcast_shapes(const int64_t *a, int na, const int64_t *b,
                              int nb, int64_t *out, int *nout);

/* ======================================================================
 *  Errors
 * ====================================================================== */

/** Sets the thread's message and runs the callback; returns s. */
am_status am_set_error(am_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
am_status am_set_errorv(am_status s, const char *fmt, va_list ap);
/** Shorthand used by shape inference: `return AM_FAIL(AM_ERR_SHAPE, ...)`. */
#define AM_FAIL(status, ...) am_set_error((status), __VA_ARGS__)

/* ======================================================================
 *  Buffers (refcounted, pooled)
 * ====================================================================== */

typedef struct am_buffer {
  atomic_int refs;
  void *data;
  size_t bytes;         /* requested size */
  size_t cap;           /* allocated size (pool size class) */
  void (*dtor)(void *); /* borrowed data: called on release */
  void *dtor_ctx;
  bool borrowed;               /* user memory: never written, never pooled */
  int device;                  /* am_device: where `data` lives           */
  atomic_int graph_refs;       /* of refs, those held by captured graphs  */
  struct am_buffer *mirror;    /* a host buffer's copy on the accelerator,
                                  made when a device kernel first reads it */
  struct am_buffer *next_free; /* pool free-list link */
} am_buffer;

/** Host memory, or memory of the device the calling thread is evaluating
 * on (am_eval_device) when that is not the CPU. NULL on OOM (error set). */
am_buffer *am_buffer_new(size_t bytes);
/** Memory on the given device (its backend's allocator). */
am_buffer *am_buffer_new_on(size_t bytes, int device);
/** b's copy on `device` (made and cached on first use); b itself when it
 * already lives there. Borrowed reference; NULL on error. */
am_buffer *am_buffer_on(am_buffer *b, int device);
am_buffer *am_buffer_borrow(void *data, size_t bytes, void (*dtor)(void *),
                            void *ctx);
void am_buffer_retain(am_buffer *b);
void am_buffer_release(am_buffer *b);
void am_memory_note_donation(void);

/* ======================================================================
 *  Arrays and nodes
 * ====================================================================== */

struct am_node;

struct am_array_s {
  atomic_int refs;
  am_meta m;                    /* dtype, ndim, shape                  */
  int64_t strides[AM_MAX_DIMS]; /* in elements; valid once buf is set  */
  int64_t offset;               /* in elements, into buf               */
  int64_t size;                 /* element count                       */
  am_buffer *buf;               /* NULL until evaluated                */
  struct am_node *node;         /* producer; NULL once evaluated       */
  int out_idx;                  /* which output of node                */
  bool weak;                    /* weak scalar for type promotion      */
  bool tracer;                  /* compile placeholder: no data ever   */
  int8_t device;                /* where it is (or will be) computed   */
  am_status err;                /* error arrays: status != AM_OK       */
  char *err_msg;
};
typedef struct am_array_s am_arr; /* shorthand inside the library */

typedef struct am_node {
  atomic_int refs; /* outputs pointing here + eval tapes  */
  int op;          /* enum am_op                          */
  const struct am_prim *prim;
  void *params; /* copy, params_size bytes             */
  size_t params_size;
  int n_in, n_out;
  am_arr **in;   /* strong references                   */
  am_arr **out;  /* weak: cleared when an output dies   */
  uint64_t mark; /* eval visit stamp                    */
  int device;    /* am_device it runs on                */
} am_node;

/* ======================================================================
 *  Primitive descriptors
 * ====================================================================== */

enum {
  AM_OPF_ELEMENTWISE = 1u << 0, /* out[i] = f(in[i]...) with broadcast    */
  AM_OPF_COMMUTATIVE = 1u << 1,
  AM_OPF_VIEW = 1u << 2, /* output may alias input 0's buffer      */
  AM_OPF_REDUCTION = 1u << 3,
  AM_OPF_SHAPE_DEPENDENT = 1u << 4, /* params hold traced sizes: a shapeless
                                       compile keys on the input shapes   */
  AM_OPF_CREATION = 1u << 5,        /* no array inputs needed for the data    */
  AM_OPF_PLACEMENT = 1u << 6, /* runs on the device its params name (an int,
                                 the params' first field) and takes its
                                 inputs wherever they are: to_device */
};

typedef am_status (*am_infer_fn)(const am_meta *const *in, int n_in,
                                 const void *params, am_meta *out, int n_out);
typedef am_status (*am_eval_fn)(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params);

/** One primitive, defined in one place (its family file under src/ops).
 * `output_shapes` is mandatory and pure: shapes/dtypes of the inputs and
 * the params in, one am_meta per output out; it also validates, so a
 * replay with new shapes re-checks everything the first call checked. */
typedef struct am_prim {
  const char *name;
  int n_in;  /* -1: variadic (>= 1)                        */
  int n_out; /* -1: set per node from params               */
  unsigned flags;
  size_t params_size; /* bytes of the params struct (0: none)       */
  am_infer_fn output_shapes;
  am_eval_fn eval_cpu;
  /* Optional: per-node "params hold traced sizes" (e.g. literal reshape). */
  bool (*shape_dependent)(const void *params);
  /* Optional: params text for graph dumps. */
  void (*params_str)(const void *params, char *buf, size_t n);
  /* Optional: NULL means bytewise compare / hash (params must be zeroed
   * before filling so padding compares equal). */
  bool (*is_equivalent)(const void *a, const void *b);
  uint64_t (*params_hash)(const void *p);
  /* Optional: the literal sizes held in params (reshape targets, slice
   * bounds, ...), written to out[] (at most max), count returned. Compile
   * guards each one that equals a size of the traced inputs, so a replay
   * where that size changed re-traces instead of reusing a captured size.*/
  int (*literal_sizes)(const void *params, int64_t *out, int max);
  /* Optional, for params that own heap memory (fused programs): deep-copy
   * in place after a bytewise copy, and free what they own. */
  void (*params_copy)(void *params);
  void (*params_free)(void *params);
} am_prim;

/** For literal_sizes callbacks: copies the non-negative entries of v
 * (skipping -1, AM_END and other relative forms) to out; returns the count
 * written plus `have`. */
static inline int am_literals_add(const int64_t *v, int n, int64_t *out,
                                  int have, int max) {
  for (int i = 0; i < n && have < max; i++)
    if (v[i] >= 0 && v[i] != AM_END) out[have++] = v[i];
  return have;
}

enum am_op {
#define AM_OP(E, n) AM_OP_##E,
#include "../ops/ops.def"
#undef AM_OP
  AM_OP_COUNT
};

extern const am_prim *const am_prims[AM_OP_COUNT];

/* ======================================================================
 *  Backends (device memory and kernels; CPU is built in)
 * ====================================================================== */

/** What an accelerator library registers (am_backend_register): its
 * memory, copies, and one kernel per primitive, with the same signature
 * and contract as am_prim.eval_cpu, on arrays whose buffers live on the
 * device (am_arr_ptr gives device pointers). Kernels run asynchronously
 * on the calling thread's stream and never synchronize. A NULL kernel
 * means the primitive has none there: evaluating it is an error naming
 * the op, never a silent trip through host memory. */
typedef struct am_backend {
  const char *name;
  void *(*alloc)(size_t bytes); /* NULL with the error set */
  void (*free)(void *ptr);
  /* Asynchronous on the thread's stream; host memory may be reused as
   * soon as the call returns (pageable copies stage it). */
  am_status (*upload)(void *dst, const void *src, size_t bytes);
  am_status (*copy)(void *dst, const void *src, size_t bytes);
  /* A strided view on the device into contiguous dst (same dtype). */
  am_status (*copy_view)(const am_arr *src, void *dst);
  /* Synchronous: the data is in dst when it returns. */
  am_status (*download)(void *dst, const void *src, size_t bytes);
  am_status (*synchronize)(void);
  am_eval_fn eval[AM_OP_COUNT];
  /* Stream capture of a compiled replay (optional): begin, then end
   * giving an executable graph (NULL on failure, error set); launch
   * replays it; free releases it. Allocations made while capturing are
   * kept for the graph (pool_begin/pool_end). */
  am_status (*capture_begin)(void);
  /* prev (may be NULL): an earlier graph whose executable may be updated
   * in place (*updated then true; prev is left empty but still freed). */
  am_status (*capture_end)(void *prev, void **graph, bool *updated);
  am_status (*graph_launch)(void *graph);
  void (*graph_free)(void *graph);
} am_backend;

/** to_device's kernel for an accelerator target (its backends register
 * it through a one-line wrapper): a view of data already there, else the
 * bytes the host view spans go up (strides and offset kept). */
am_status am_to_device_upload(am_arr *const *in, am_arr *const *out,
                              int device);
/** Registers the backend of `device` (called by am_cuda_init). */
void am_backend_register(int device, const am_backend *b);
/** The backend of `device`, NULL when none is registered (CPU: NULL). */
const am_backend *am_backend_get(int device);
/** The device the calling thread is evaluating a kernel on. */
int am_eval_device(void);
/** Runs one primitive on the device its inputs live on (any input on an
 * accelerator puts the node there; host inputs are then read through their
 * cached device copies), `zero_in_device` for a node without inputs.
 * Used by am_eval and by compiled replays. */
am_status am_prim_run(int op, am_arr *const *in, int n_in, am_arr *const *out,
                      int n_out, const void *params, int zero_in_device);

uint64_t am_params_hash(const am_node *n);
bool am_params_equal(const am_node *a, const am_node *b);

/* ----- building nodes ----- */

/** Records a single-output node; validates through output_shapes. Returns
 * an error array on failure (message names the op and input shapes) and
 * propagates error inputs. The result is owned as documented in amorph.h. */
am_array am_op_make(int op, const void *params, am_arr *const *in, int n_in);
/** Same, for n_out outputs written to outs[]. */
am_status am_op_make_n(int op, const void *params, am_arr *const *in, int n_in,
                       int n_out, am_array *outs);

/** A new error array (status, message); also sets am_last_error. */
am_array am_error_array(am_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** First error among inputs, or NULL. */
am_arr *am_first_error(am_arr *const *in, int n);

/** Bare array struct (refs = 1, not owned by a scope). */
am_arr *am_arr_alloc(const am_meta *m);
void am_arr_release(am_arr *a);
void am_arr_retain(am_arr *a);
/** Gives a fresh reference to the current scope (or the caller). */
am_array am_scope_own(am_arr *a);
/** Evaluated leaf from existing buffer (takes the buffer reference). */
am_arr *am_arr_from_buffer(const am_meta *m, am_buffer *b);

/* ----- eval helpers for kernels ----- */

/** Row-major strides for shape. */
void am_contig_strides(const int64_t *shape, int ndim, int64_t *strides);
bool am_arr_is_contiguous(const am_arr *a);
/** Allocates out's buffer (row-contiguous). */
am_status am_out_alloc(am_arr *out);
/** Allocates out, reusing (donating) the buffer of one of `cands` when it is
 * safe: nobody else holds that array or buffer, it is contiguous, owned,
 * and has out's element size and count. Only for kernels that read each
 * input element before writing the same output element. */
am_status am_out_alloc_donate(am_arr *out, am_arr *const *cands, int n);
/** out takes b (its reference), a byte copy of like's buffer on another
 * device: like's offset and strides then hold for out. */
void am_out_place(am_arr *out, const am_arr *like, am_buffer *b);
/** out becomes a view of in's buffer with the given strides/offset. */
void am_out_view(am_arr *out, const am_arr *in, const int64_t *strides,
                 int64_t offset);
/** Strides (shape, strides: nd dims) broadcast to `to` (nto dims). */
void am_broadcast_strides_of(const int64_t *shape, const int64_t *strides,
                             int nd, const int64_t *to, int nto, int64_t *out);
/** Strides of `a` broadcast to shape (right-aligned; 0 on broadcast dims). */
void am_broadcast_strides(const am_arr *a, const int64_t *shape, int ndim,
                          int64_t *strides);
static inline char *am_arr_ptr(const am_arr *a) {
  return (char *)a->buf->data + a->offset * (int64_t)am_dtype_size(a->m.dtype);
}

/* ======================================================================
 *  A growable string (strbuf.c), for generated source code
 * ====================================================================== */

typedef struct am_sbuf {
  char *s; /* NUL-terminated; free() it */
  size_t n, cap;
  bool oom; /* an allocation failed: the text is incomplete */
} am_sbuf;
/** Appends printf-style text. */
void am_sb_add(am_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ======================================================================
 *  CPU helpers (src/cpu)
 * ====================================================================== */

/** Runs fn(ctx, begin, end) over [0, n) on the thread pool, in chunks of at
 * least `grain`. Runs inline when small, nested, or single-threaded. */
typedef void (*am_range_fn)(void *ctx, int64_t begin, int64_t end);
void am_parallel_for(int64_t n, int64_t grain, am_range_fn fn, void *ctx);

bool am_cpu_has_avx2(void);

/* Per-primitive timing (profile.c): am_prof_on is read before each node. */
extern bool am_prof_on;
void am_prof_init(void);
double am_prof_now(void);
void am_prof_add(const char *name, double seconds);
bool am_cpu_has_avx512(void);
bool am_cpu_has_f16c(void);
bool am_cpu_has_avx512bf16(void);
bool am_cpu_has_avx512vnni(void);

/** N-ary strided walk. Collapses dims where every operand is contiguous
 * along them; the callback gets one innermost row: count, per-operand
 * pointers and per-operand strides in bytes. */
#define AM_ITER_MAX_ARGS 8
typedef struct am_iter {
  int ndim; /* after collapsing, >= 1 */
  int narg;
  int64_t shape[AM_MAX_DIMS];
  int64_t strides[AM_ITER_MAX_ARGS][AM_MAX_DIMS]; /* bytes */
  char *base[AM_ITER_MAX_ARGS];
} am_iter;
typedef void (*am_row_fn)(void *ctx, int64_t n, char **ptrs,
                          const int64_t *strides);
/** strides[k] in elements of element size esize[k]. */
void am_iter_init(am_iter *it, const int64_t *shape, int ndim, int narg,
                  char *const *base, const int64_t *const *strides,
                  const size_t *esize);
int64_t am_iter_rows(const am_iter *it); /* product of all but last dim */
void am_iter_run(const am_iter *it, int64_t row_begin, int64_t row_end,
                 am_row_fn fn, void *ctx);
/** Runs the whole walk on the thread pool; `cost` ~ work per element. */
void am_iter_run_parallel(const am_iter *it, am_row_fn fn, void *ctx,
                          int64_t min_elems_per_task);

/* ----- dtype conversion ----- */

static inline float am_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do {
        man <<= 1;
        e++;
      } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t am_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf or nan */
    return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
  if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
    return (uint16_t)(sign | 0x7c00);
  if (ax < 0x38800000u) { /* subnormal half (or zero) */
    if (ax < 0x33000000u) return (uint16_t)sign;
    uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; /* 14 + (113 - e) ... in [14, 24] */
    uint32_t half = m >> shift, rem = m & ((1u << shift) - 1),
             mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t r = ax + 0xc8000000u; /* rebias exponent 127 -> 15 */
  uint32_t half = r >> 13, rem = r & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return (uint16_t)(sign | half);
}

static inline float am_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t am_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1); /* round to nearest even */
  return (uint16_t)(x >> 16);
}

/** Converts n contiguous elements. */
void am_convert(const void *src, am_dtype st, void *dst, am_dtype dt,
                int64_t n);
/** Copies/converts a strided array into a row-major buffer. */
am_status am_copy_to_contig(const am_arr *a, void *dst, am_dtype dt);
/** Element i (row-major over the strided layout) as double / int64. */
double am_load_f64(const void *p, am_dtype t);
/** One element as int64 (exact for integers; floats truncate, saturating). */
int64_t am_load_i64(const void *p, am_dtype t);
void am_store_f64(void *p, am_dtype t, double v);

#endif /* AM_INTERNAL_H */
