/*
 * amorph.h — array computation on lazy graphs, with shapeless compilation.
 *
 * ======================================================================
 *  Tutorial
 * ======================================================================
 *
 * Every operation records a node in a lazy graph and returns a handle at
 * once; nothing is computed until am_eval() is asked for a result:
 *
 *     am_scope_push();                         // intermediates owned here
 *     int64_t shape[] = {2, 3};
 *     float xs[] = {1, 2, 3, 4, 5, 6};
 *     am_array x = am_array_new_data(xs, shape, 2, AM_F32);
 *     am_array y = am_exp(am_mul(x, am_float(0.5)));     // exp(x / 2)
 *     am_array s = am_keep(am_sum(y, (int[]){1}, 1, false));
 *     am_scope_pop();                          // frees x, y and the scalar
 *     if (am_eval(&s, 1) != AM_OK) fprintf(stderr, "%s\n", am_last_error());
 *     float out[2];
 *     am_array_read(s, AM_F32, out, 2);
 *     am_array_free(s);                        // one free per keep
 *
 * Ownership rules (mlx-c style, "one free per new"):
 *  - A function returning an am_array hands out one reference. When a scope
 *    is open (am_scope_push), that reference belongs to the innermost scope
 *    and is dropped by am_scope_pop(); otherwise it belongs to the caller,
 *    who drops it with am_array_free().
 *  - am_keep(x) takes one more reference that belongs to the caller even
 *    inside a scope: pair it with one am_array_free().
 *  - am_array_free(NULL) is a no-op. Graph nodes hold their own references,
 *    so freeing a handle never invalidates arrays computed from it.
 *  - End the scope (keeping the results) before am_eval(): intermediates
 *    that nobody holds are freed as soon as their consumers ran, and their
 *    buffers can be reused (donated) for outputs.
 *
 * Errors: ops never return NULL and never exit. An op given bad arguments
 * returns an *error array* carrying a status and a message naming the op
 * and the shapes; any op fed an error array returns an error array too, so
 * a chain of calls is checked once, by am_eval() (or am_array_status()).
 * am_last_error() holds the thread's most recent message.
 *
 * Shapes are row-major (NumPy order: the last axis is contiguous). Axes may
 * be negative (counted from the end). Slice bounds may be negative or
 * AM_END, and stay unnormalized in the graph so that a compiled graph
 * replayed with other input shapes stays correct.
 */
#ifndef AMORPH_H
#define AMORPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(AM_SHARED)
#define AM_API __declspec(dllexport)
#elif defined(__GNUC__)
#define AM_API __attribute__((visibility("default")))
#else
#define AM_API
#endif

#if defined(__GNUC__)
#define AM_NODISCARD __attribute__((warn_unused_result))
#else
#define AM_NODISCARD
#endif

#define AM_VERSION "0.1.0"
#define AM_VERSION_NUMBER 1000 /* major*1000000 + minor*1000 + patch */

/** Most dimensions an array may have. */
#define AM_MAX_DIMS 16
/** Slice sentinel: "up to the end of the axis" (or its start, stepping back). */
#define AM_END INT64_MAX

/* ======================================================================
 *  Status codes and errors
 * ====================================================================== */

/** Status codes. Append-only. */
typedef enum am_status {
  AM_OK = 0,
  AM_ERR_INVALID_ARG,   /* a bad argument: axis out of range, NULL, ...   */
  AM_ERR_SHAPE,         /* shapes that do not fit the op                   */
  AM_ERR_DTYPE,         /* a dtype the op does not accept                  */
  AM_ERR_OOM,           /* out of memory                                   */
  AM_ERR_DEVICE,        /* an accelerator error                            */
  AM_ERR_UNSUPPORTED,   /* valid but not implemented here                  */
  AM_ERR_CANNOT_INFER,  /* shapes depend on data or on traced sizes        */
  AM_ERR_IO,            /* file missing, unreadable or corrupt             */
  AM_ERR_INTERNAL,      /* a bug in amorph                                 */
  AM_STATUS_COUNT
} am_status;

/** Static text for a status code. */
AM_API const char *am_status_str(am_status s);
/** The calling thread's most recent error message ("" if none). */
AM_API const char *am_last_error(void);
/** Clears the calling thread's error message. */
AM_API void am_clear_error(void);
/** Called (on the failing thread) for every error; NULL restores the default,
 * which does nothing. Never called to end the process. */
AM_API void am_set_error_callback(void (*fn)(am_status, const char *msg,
                                             void *user),
                                  void *user);

AM_API const char *am_version(void);
AM_API int am_version_number(void);

/* ======================================================================
 *  Dtypes
 * ====================================================================== */

/** Element types. Append-only.
 *
 * Promotion (am_result_type) follows NumPy/MLX: bool < unsigned/signed
 * integers < floating types; two integer types widen to one that holds
 * both (u8+i8 -> i32 as there is no i16, u32+i32 -> i64); any integer with
 * a float gives that float; f16+bf16 -> f32. A *weak* scalar (am_float,
 * am_int) takes the dtype of the array it meets, except that a float
 * scalar with an integer array gives f32. float16/bfloat16 compute in
 * float32 and round on store. */
typedef enum am_dtype {
  AM_BOOL = 0,
  AM_U8,
  AM_I8,
  AM_U32,
  AM_I32,
  AM_I64,
  AM_F16,
  AM_BF16,
  AM_F32,
  AM_F64,
  AM_DTYPE_COUNT
} am_dtype;

AM_API size_t am_dtype_size(am_dtype t);
AM_API const char *am_dtype_name(am_dtype t);
AM_API bool am_dtype_is_float(am_dtype t);
AM_API bool am_dtype_is_int(am_dtype t); /* integer, not bool */
/** The dtype two operands promote to (both strong). */
AM_API am_dtype am_result_type(am_dtype a, am_dtype b);

/* ======================================================================
 *  Arrays, scopes, eval
 * ====================================================================== */

/** Opaque, refcounted array handle. Never NULL when returned by amorph. */
typedef struct am_array_s *am_array;

/** New array holding a copy of `data` (row-major, `ndim` dims of `shape`). */
AM_API am_array am_array_new_data(const void *data, const int64_t *shape,
                                  int ndim, am_dtype dtype);
/** New array that borrows `data`; `dtor(ctx)` runs when the last reference
 * to the buffer goes (dtor may be NULL). The data must stay valid and
 * unchanged until then; amorph never writes to borrowed buffers. */
AM_API am_array am_array_new_data_managed(void *data, const int64_t *shape,
                                          int ndim, am_dtype dtype,
                                          void (*dtor)(void *ctx), void *ctx);
/** 0-d arrays. am_float and am_int are *weak* (see am_dtype). */
AM_API am_array am_scalar(double value, am_dtype dtype);
AM_API am_array am_float(double value);
AM_API am_array am_int(int64_t value);

AM_API am_array am_zeros(const int64_t *shape, int ndim, am_dtype dtype);
AM_API am_array am_ones(const int64_t *shape, int ndim, am_dtype dtype);
AM_API am_array am_full(const int64_t *shape, int ndim, double value,
                        am_dtype dtype);
/** [start, stop) by step, as NumPy's arange. */
AM_API am_array am_arange(double start, double stop, double step,
                          am_dtype dtype);
/** Same shape as x (taken from x at every replay), given dtype; pass
 * AM_DTYPE_COUNT to keep x's dtype. */
AM_API am_array am_zeros_like(am_array x, am_dtype dtype);
AM_API am_array am_ones_like(am_array x, am_dtype dtype);
AM_API am_array am_full_like(am_array x, double value, am_dtype dtype);

/** Drops one reference (see ownership rules). NULL is a no-op. */
AM_API void am_array_free(am_array x);
/** Takes one more reference, owned by the caller even inside a scope. */
AM_API am_array am_keep(am_array x);

/** Opens a scope: arrays returned from now on belong to it. Scopes nest. */
AM_API void am_scope_push(void);
/** Closes the innermost scope and drops every reference it owns. */
AM_API void am_scope_pop(void);

AM_API int am_array_ndim(am_array x);
/** Pointer to ndim sizes, valid while x lives. */
AM_API const int64_t *am_array_shape(am_array x);
AM_API int64_t am_array_dim(am_array x, int axis); /* negative axis ok */
AM_API int64_t am_array_size(am_array x);          /* element count */
AM_API am_dtype am_array_dtype(am_array x);
/** AM_OK, or the error an error array carries. */
AM_API am_status am_array_status(am_array x);
/** The message of an error array ("" for a valid one). */
AM_API const char *am_array_error(am_array x);
AM_API bool am_array_is_evaluated(am_array x);

/** Evaluates the arrays (and what they depend on) in dependency order.
 * Returns the first error met; am_last_error() names the op and shapes. */
AM_API AM_NODISCARD am_status am_eval(am_array *xs, int n);
/** Evaluates x if needed, then copies its `n` elements in row-major order
 * into dst, converted to `dtype`. n must equal am_array_size(x). */
AM_API AM_NODISCARD am_status am_array_read(am_array x, am_dtype dtype,
                                            void *dst, int64_t n);
/** Pointer to x's data after am_eval, or NULL when x is not evaluated or
 * not row-contiguous (read it with am_array_read then). */
AM_API const void *am_array_data(am_array x);
/** Prints x (evaluating it) in a NumPy-like layout. */
AM_API am_status am_array_print(am_array x, FILE *f);

/** CPU worker threads. The default is the number of cores, or the
 * AM_NUM_THREADS environment variable. */
AM_API void am_set_num_threads(int n);
AM_API int am_get_num_threads(void);

/** Buffer pool statistics: bytes currently allocated by arrays, bytes held
 * idle in the pool, and the count of fresh allocations since start. */
typedef struct am_memory_stats {
  size_t active_bytes;
  size_t pooled_bytes;
  size_t peak_bytes;
  uint64_t n_allocs;  /* buffers taken from the system */
  uint64_t n_reuses;  /* buffers served from the pool  */
  uint64_t n_donated; /* outputs that reused an input's buffer */
} am_memory_stats;
AM_API am_memory_stats am_memory_get_stats(void);
/** Returns the pool's idle buffers to the system. */
AM_API void am_memory_clear_cache(void);

/* ======================================================================
 *  Elementwise ops (broadcasting as NumPy)
 * ====================================================================== */

/* Float unary ops give a float result (integer input -> float32). */
AM_API am_array am_neg(am_array x);
AM_API am_array am_abs(am_array x);
AM_API am_array am_sign(am_array x);
AM_API am_array am_exp(am_array x);
AM_API am_array am_expm1(am_array x);
AM_API am_array am_log(am_array x);
AM_API am_array am_log1p(am_array x);
AM_API am_array am_sqrt(am_array x);
AM_API am_array am_rsqrt(am_array x);
AM_API am_array am_square(am_array x);
AM_API am_array am_sin(am_array x);
AM_API am_array am_cos(am_array x);
AM_API am_array am_tanh(am_array x);
AM_API am_array am_sigmoid(am_array x);
AM_API am_array am_erf(am_array x);
AM_API am_array am_floor(am_array x);
AM_API am_array am_ceil(am_array x);
AM_API am_array am_round(am_array x); /* half to even, as NumPy */
AM_API am_array am_logical_not(am_array x);

AM_API am_array am_add(am_array a, am_array b);
AM_API am_array am_sub(am_array a, am_array b);
AM_API am_array am_mul(am_array a, am_array b);
/** True division: integer operands give float32. */
AM_API am_array am_div(am_array a, am_array b);
AM_API am_array am_pow(am_array a, am_array b);
AM_API am_array am_maximum(am_array a, am_array b);
AM_API am_array am_minimum(am_array a, am_array b);
/** Python-style remainder: the result has the sign of b. */
AM_API am_array am_remainder(am_array a, am_array b);
AM_API am_array am_equal(am_array a, am_array b);
AM_API am_array am_not_equal(am_array a, am_array b);
AM_API am_array am_less(am_array a, am_array b);
AM_API am_array am_less_equal(am_array a, am_array b);
AM_API am_array am_greater(am_array a, am_array b);
AM_API am_array am_greater_equal(am_array a, am_array b);
AM_API am_array am_logical_and(am_array a, am_array b);
AM_API am_array am_logical_or(am_array a, am_array b);
/** cond ? a : b, broadcasting all three. */
AM_API am_array am_where(am_array cond, am_array a, am_array b);
AM_API am_array am_astype(am_array x, am_dtype dtype);

/* ======================================================================
 *  Reductions
 *
 *  axes == NULL reduces over every axis (whatever the rank at a shapeless
 *  replay); otherwise over `naxes` distinct axes, negative ones counted
 *  from the end. An axis out of range or given twice fails with
 *  AM_ERR_INVALID_ARG (a 0-d array has no axis); axes != NULL with
 *  naxes == 0 reduces nothing (only the dtype rule applies). keepdims
 *  keeps each reduced axis as size 1. Size-1 axes are reduced like any.
 *
 *  Result dtypes: sum/prod: bool -> int32, other types kept; integer sums
 *  and products are computed exactly modulo 2^64 and wrap to the type
 *  (NumPy would widen to int64, MLX small integers to 32 bits: amorph
 *  keeps the input type). mean, logsumexp: integers and bool -> float32,
 *  floats kept. max/min: kept. all/any: bool. argmax/argmin: uint32.
 *  float16/bfloat16 accumulate in float32 or double; float32 sums in
 *  float32 vector lanes flushed into double every few thousand elements
 *  (a 16M-element sum is within ~1e-7 of the exact one); float64 in
 *  double.
 *
 *  Empty reductions: sum 0, prod 1, mean NaN, all true, any false,
 *  logsumexp -inf. max/min/argmax/argmin over an empty axis fail with
 *  AM_ERR_SHAPE ("cannot reduce an empty axis"). NaN: max/min return NaN
 *  if any; argmax/argmin report the first NaN (as NumPy and MLX);
 *  all/any count NaN as true. logsumexp subtracts the max (stable): all
 *  -inf gives -inf, any +inf gives +inf, any NaN gives NaN.
 * ====================================================================== */

AM_API am_array am_sum(am_array x, const int *axes, int naxes, bool keepdims);
AM_API am_array am_mean(am_array x, const int *axes, int naxes,
                        bool keepdims);
AM_API am_array am_prod(am_array x, const int *axes, int naxes,
                        bool keepdims);
AM_API am_array am_max(am_array x, const int *axes, int naxes, bool keepdims);
AM_API am_array am_min(am_array x, const int *axes, int naxes, bool keepdims);
/** log(sum(exp(x))) over the axes. */
AM_API am_array am_logsumexp(am_array x, const int *axes, int naxes,
                             bool keepdims);
AM_API am_array am_all(am_array x, const int *axes, int naxes, bool keepdims);
AM_API am_array am_any(am_array x, const int *axes, int naxes, bool keepdims);
/** Index (uint32) of the first max/min along axis (negative counts from
 * the end); keepdims keeps the axis as size 1. */
AM_API am_array am_argmax(am_array x, int axis, bool keepdims);
AM_API am_array am_argmin(am_array x, int axis, bool keepdims);
/** Cumulative sum along axis, same shape as x: out[i] = x[0] + ... + x[i].
 * reverse runs from the end (out[i] = x[i] + ... + x[n-1]); exclusive
 * (!inclusive) leaves out x[i] itself, so the first output is 0. Dtypes:
 * bool -> int32, others kept (integers wrap). */
AM_API am_array am_cumsum(am_array x, int axis, bool reverse, bool inclusive);

/* ======================================================================
 *  Shape ops. Views (no copy) where the strides allow.
 * ====================================================================== */

/** One entry may be -1 (inferred). A shape without -1 is literal and
 * makes a shapeless compile fall back to tracing per input shape. */
AM_API am_array am_reshape(am_array x, const int64_t *shape, int ndim);
/** Merges axes start..end (inclusive) into one. */
AM_API am_array am_flatten(am_array x, int start_axis, int end_axis);
/** Splits axis into `sizes` (one may be -1). */
AM_API am_array am_unflatten(am_array x, int axis, const int64_t *sizes,
                             int n);
/** perm == NULL reverses the axes. */
AM_API am_array am_transpose(am_array x, const int *perm, int n);
AM_API am_array am_swapaxes(am_array x, int a, int b);
AM_API am_array am_expand_dims(am_array x, const int *axes, int n);
/** axes == NULL removes every size-1 axis (shape-dependent). */
AM_API am_array am_squeeze(am_array x, const int *axes, int n);
/** Literal target shape (shape-dependent in a shapeless compile). */
AM_API am_array am_broadcast_to(am_array x, const int64_t *shape, int ndim);
/** Broadcasts x against y's shape (taken from y at every replay). */
AM_API am_array am_broadcast_like(am_array x, am_array y);
AM_API am_array am_concatenate(const am_array *xs, int n, int axis);
AM_API am_array am_stack(const am_array *xs, int n, int axis);
/** Splits into n_sections equal parts along axis, written to outs[]. */
AM_API am_status am_split(am_array x, int n_sections, int axis,
                          am_array *outs);
/** Splits at the given indices (n indices -> n+1 parts) along axis. */
AM_API am_status am_split_at(am_array x, const int64_t *indices, int n,
                             int axis, am_array *outs);
/** Python slicing on the first n axes: start/stop may be negative or
 * AM_END; step != 0 (negative steps walk backwards). step NULL: all 1. */
AM_API am_array am_slice(am_array x, const int64_t *start,
                         const int64_t *stop, const int64_t *step, int n);
/** x[..., start:stop:step, ...] on one axis. */
AM_API am_array am_slice_axis(am_array x, int axis, int64_t start,
                              int64_t stop, int64_t step);
/** Constant padding: low[i]/high[i] elements before/after axis i < n. */
AM_API am_array am_pad(am_array x, const int64_t *low, const int64_t *high,
                       int n, double value);
/** Repeats each element `repeats` times along axis (NumPy repeat). */
AM_API am_array am_repeat(am_array x, int64_t repeats, int axis);
AM_API am_array am_tile(am_array x, const int64_t *reps, int n);

/* ======================================================================
 *  Indexing
 * ====================================================================== */

/** Elements of x along axis at integer `indices` (any shape; negative
 * indices count from the end): out shape = x[:axis] + idx + x[axis+1:]. */
AM_API am_array am_take(am_array x, am_array indices, int axis);
AM_API am_array am_take_along_axis(am_array x, am_array indices, int axis);
/** Copy of x with values written at indices along axis. */
AM_API am_array am_put_along_axis(am_array x, am_array indices,
                                  am_array values, int axis);
/** Copy of x with x[start:stop:step] (first n axes) replaced by update
 * (broadcast to the slice's shape). */
AM_API am_array am_slice_update(am_array x, am_array update,
                                const int64_t *start, const int64_t *stop,
                                const int64_t *step, int n);
/** x sliced on `axes` from offsets held in the integer array `start`
 * (shape [naxes]) with static `sizes`; offsets are clamped so the window
 * fits. The offsets are data: new values never change the graph. */
AM_API am_array am_dynamic_slice(am_array x, am_array start, const int *axes,
                                 int naxes, const int64_t *sizes);
/** Copy of x with the window at `start` (on `axes`) replaced by update. */
AM_API am_array am_dynamic_slice_update(am_array x, am_array update,
                                        am_array start, const int *axes,
                                        int naxes);

/* ======================================================================
 *  Sorting
 * ====================================================================== */

/** Ascending along axis; NaN sorts last. argsort is stable (uint32). */
AM_API am_array am_sort(am_array x, int axis);
AM_API am_array am_argsort(am_array x, int axis);
/** Indices (uint32) such that element kth is in sorted position, smaller
 * ones before it and larger ones after (unordered). */
AM_API am_array am_argpartition(am_array x, int kth, int axis);
/** The k largest values along axis, in descending order. */
AM_API am_array am_topk(am_array x, int k, int axis);

#ifdef __cplusplus
}
#endif
#endif /* AMORPH_H */
