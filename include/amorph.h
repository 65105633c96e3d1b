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
/** Slice bound sentinel, Python's None: see am_slice. */
#define AM_END INT64_MAX

/* ======================================================================
 *  Status codes and errors
 * ====================================================================== */

/** Status codes. Append-only. */
typedef enum am_status {
  AM_OK = 0,
  AM_ERR_INVALID_ARG,  /* a bad argument: axis out of range, NULL, ...   */
  AM_ERR_SHAPE,        /* shapes that do not fit the op                   */
  AM_ERR_DTYPE,        /* a dtype the op does not accept                  */
  AM_ERR_OOM,          /* out of memory                                   */
  AM_ERR_DEVICE,       /* an accelerator error                            */
  AM_ERR_UNSUPPORTED,  /* valid but not implemented here                  */
  AM_ERR_CANNOT_INFER, /* shapes depend on data or on traced sizes        */
  AM_ERR_IO,           /* file missing, unreadable or corrupt             */
  AM_ERR_INTERNAL,     /* a bug in amorph                                 */
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
/** Pointer to x's data after am_eval, or NULL when x is not evaluated,
 * not row-contiguous or not in host memory (read it with am_array_read
 * then). */
AM_API const void *am_array_data(am_array x);
/** Prints x (evaluating it) in a NumPy-like layout. */
AM_API am_status am_array_print(am_array x, FILE *f);

/** CPU worker threads. The default is the number of cores, or the
 * AM_NUM_THREADS environment variable. */
AM_API void am_set_num_threads(int n);
AM_API int am_get_num_threads(void);

/** Per-primitive timing of evaluation (eager and compiled), off by
 * default; AM_PROFILE=1 in the environment turns it on and prints the
 * table to stderr at exit. print: primitive, calls, total time, share,
 * time per call, slowest first. */
AM_API void am_profile_enable(bool on);
AM_API void am_profile_reset(void);
AM_API void am_profile_print(FILE *f);

/* ======================================================================
 *  Devices
 *
 * Every array lives on one device: the CPU, or an accelerator whose
 * backend library is registered (CUDA: link libamorph_cuda and call
 * am_cuda_init once). A node runs where its inputs live: any input on
 * the GPU puts it on the GPU, and host inputs (scalars, constants) are
 * then read through a device copy made once and cached with them. Nodes
 * without inputs (am_zeros, am_arange, ...) run on the calling thread's
 * default device. Data moves only through am_to_device (an op like any
 * other, so compiled functions record it) and when reading results
 * (am_array_read, am_array_print). A primitive with no kernel on the
 * device is an error naming it; it never falls back silently.
 * ====================================================================== */

typedef enum am_device {
  AM_DEVICE_CPU = 0,
  AM_DEVICE_CUDA = 1,
  AM_DEVICE_COUNT
} am_device;

/** Registers the CUDA backend. Defined in libamorph_cuda (built when the
 * CUDA toolkit is found; link it to call this). AM_ERR_DEVICE when no GPU
 * or driver is usable; calling it again is harmless. */
AM_API AM_NODISCARD am_status am_cuda_init(void);
/** Whether arrays can be placed on d (the CPU always; CUDA after
 * am_cuda_init succeeded). */
AM_API bool am_device_available(am_device d);
/** "cpu" / "cuda". */
AM_API const char *am_device_name(am_device d);
/** The device x is (or will be) computed on. */
AM_API am_device am_array_device(am_array x);
/** x placed on device d (a copy unless it is there already). */
AM_API am_array am_to_device(am_array x, am_device d);
/** The calling thread's device for nodes without inputs (default CPU). */
AM_API void am_set_default_device(am_device d);
AM_API am_device am_default_device(void);
/** Waits until the device has finished the work queued by this thread. */
AM_API am_status am_synchronize(am_device d);

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
/** Restarts peak_bytes from the current active_bytes. */
AM_API void am_memory_reset_peak(void);

/* ======================================================================
 *  Elementwise ops (broadcasting as NumPy)
 *
 * Promotion: the operands (both of a binary op; x and y of am_where)
 * are cast to one dtype first: am_result_type for arrays; a weak scalar
 * (am_float, am_int) takes the other operand's dtype unless it is of a
 * higher kind (float scalar with an integer/bool array: float32; int
 * scalar with a bool array: its own int32/int64) or is an int that does
 * not fit the integer dtype (u8 + 300: int32; values are never wrapped
 * silently on the way in). float16/bfloat16 compute in float32 and round
 * once on store; float64 computes in double.
 *
 * Integers: exact, wrapping on overflow (two's complement, as NumPy):
 * neg/abs of the minimum value give it back, neg of unsigned wraps.
 * Division by zero never traps: integer remainder(x, 0) is 0 (NumPy's
 * result), pow with a negative exponent is 0 except for bases 1 and -1
 * (NumPy raises), and am_div of integers is float32 true division.
 * bool: arithmetic computes as integers and stores != 0, as MLX does
 * (add: or, sub: xor, mul/min: and, max: or; remainder(x, false) is
 * false); am_neg rejects bool (use am_logical_not).
 * Floats: NaN in maximum/minimum propagates, and otherwise each returns
 * (a > b) ? a : b (minimum: a < b), as NumPy, so max(-0., 0.) is 0.;
 * sign(nan) is nan and sign(-0.) is 0.; remainder has the divisor's sign
 * (a zero result too). Comparisons are false with NaN, except not_equal;
 * logical ops and am_where's cond test != 0 (NaN is true, -0. false).
 * ====================================================================== */

/* Float unary ops (exp ... erf) give a float result: integer and bool
 * inputs become float32. The others keep the dtype (floor/ceil/round are
 * identities on integers); logical_not gives bool. */
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
/** cond ? a : b, broadcasting all three; cond may have any dtype. */
AM_API am_array am_where(am_array cond, am_array a, am_array b);
/** Conversion: floats round to nearest even into narrower floats,
 * integers wrap into narrower integers, floats truncate toward zero into
 * integers and saturate outside their range (NaN gives 0), anything to
 * bool is != 0. */
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
AM_API am_array am_mean(am_array x, const int *axes, int naxes, bool keepdims);
AM_API am_array am_prod(am_array x, const int *axes, int naxes, bool keepdims);
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
 *  Shape ops. Views (no copy) where the strides allow: transpose,
 *  expand_dims, squeeze, broadcast_*, slice, split always; reshape,
 *  flatten, unflatten when the input's strides allow (else a contiguous
 *  copy). concatenate, pad, repeat, tile copy. Every dtype is accepted.
 *  Axes may be negative. Params are kept as given (negative axes, -1,
 *  AM_END) and re-resolved against the input shapes at every replay.
 * ====================================================================== */

/** One entry may be -1 (inferred from the size; an error when it does not
 * divide, or when the other entries multiply to 0). A shape without -1 is
 * literal and makes a shapeless compile fall back to tracing per input
 * shape. A reshape to the same shape is still recorded. */
AM_API am_array am_reshape(am_array x, const int64_t *shape, int ndim);
/** Merges axes start..end (inclusive) into one. A 0-d x gives [1]. */
AM_API am_array am_flatten(am_array x, int start_axis, int end_axis);
/** Splits axis into `sizes` (n >= 1; one may be -1; without -1 the sizes
 * are literal, shape-dependent). */
AM_API am_array am_unflatten(am_array x, int axis, const int64_t *sizes, int n);
/** perm == NULL reverses the axes (at any rank; n is ignored). */
AM_API am_array am_transpose(am_array x, const int *perm, int n);
AM_API am_array am_swapaxes(am_array x, int a, int b);
/** Inserts size-1 axes; axes index the *output* (ndim + n dims). */
AM_API am_array am_expand_dims(am_array x, const int *axes, int n);
/** axes == NULL removes every size-1 axis (shape-dependent); a listed
 * axis must have size 1. */
AM_API am_array am_squeeze(am_array x, const int *axes, int n);
/** Literal target shape (shape-dependent in a shapeless compile). One-way
 * NumPy rule: x's dims, right-aligned, are 1 or equal to the target's. */
AM_API am_array am_broadcast_to(am_array x, const int64_t *shape, int ndim);
/** x broadcast (one-way, as broadcast_to) to y's shape, taken from y at
 * every replay. y's data is not read. The result has x's dtype. */
AM_API am_array am_broadcast_like(am_array x, am_array y);
/** Same dtype and shape except on axis (>= 1 dims). n >= 1. */
AM_API am_array am_concatenate(const am_array *xs, int n, int axis);
/** Same dtype and shape; a new axis at `axis` (of ndim + 1). Composed as
 * expand_dims + concatenate. */
AM_API am_array am_stack(const am_array *xs, int n, int axis);
/** Splits into n_sections equal parts (views) along axis, written to
 * outs[n_sections]; an error when the axis size is not divisible. On
 * error the outs are error arrays (unless n_sections < 1 or outs NULL). */
AM_API am_status am_split(am_array x, int n_sections, int axis, am_array *outs);
/** Splits at the given indices (n indices, at most 64 -> n+1 parts,
 * outs[n+1]) along axis, as NumPy: part k is x[i(k-1):i(k)] with Python
 * slice bounds (negative counts from the end, clamped; a part is empty
 * when its indices decrease). */
AM_API am_status am_split_at(am_array x, const int64_t *indices, int n,
                             int axis, am_array *outs);
/** Python slicing x[start:stop:step] on the first n axes (a view). Bounds
 * may be negative (from the end) and are clamped; AM_END stands for
 * Python's None: as start, the walk's first element (0, or the last one
 * when step < 0); as stop, past the end in the step's direction (the
 * end, or before element 0 when step < 0). So x[::-1] is start = stop =
 * AM_END, step -1. step != 0; step NULL: all 1. A slice covering the
 * whole input is still recorded. */
AM_API am_array am_slice(am_array x, const int64_t *start, const int64_t *stop,
                         const int64_t *step, int n);
/** x[..., start:stop:step, ...] on one axis (negative ok). */
AM_API am_array am_slice_axis(am_array x, int axis, int64_t start, int64_t stop,
                              int64_t step);
/** Constant padding: low[i]/high[i] >= 0 elements before/after axis i < n
 * (n <= ndim). value is cast to x's dtype as am_astype would. */
AM_API am_array am_pad(am_array x, const int64_t *low, const int64_t *high,
                       int n, double value);
/** Repeats each element `repeats` (>= 0) times along axis (NumPy repeat). */
AM_API am_array am_repeat(am_array x, int64_t repeats, int axis);
/** NumPy tile: reps (>= 0) may be shorter (leading 1s) or longer (x gets
 * leading size-1 dims) than x's rank. */
AM_API am_array am_tile(am_array x, const int64_t *reps, int n);

/* ======================================================================
 *  Indexing
 *
 *  Indices are arrays of any integer dtype (bool or float indices give
 *  AM_ERR_DTYPE); negative ones count from the end of the axis. Index
 *  values are data: one out of range is found by am_eval, which returns
 *  AM_ERR_INVALID_ARG with a message naming the index and the axis size
 *  (nothing is read or written out of bounds).
 *  The update ops (put_along_axis, slice_update, dynamic_slice_update)
 *  return a new array of x's shape and dtype; the values written are cast
 *  to x's dtype as MLX does (float to integer truncates toward zero and
 *  saturates). When x is dead at eval (no handle and no other consumer
 *  holds it) they reuse x's buffer and copy only the updated region: drop
 *  the old array before am_eval to update a KV cache in place.
 * ====================================================================== */

/** Elements of x along axis at integer `indices` (any shape; negative
 * indices count from the end): out shape = x[:axis] + idx + x[axis+1:].
 * x needs at least one dim; a 0-d index removes the axis. */
AM_API am_array am_take(am_array x, am_array indices, int axis);
/** NumPy take_along_axis: indices have x's ndim and broadcast against x on
 * every axis but `axis`; out[.., i, ..] = x[.., indices[.., i, ..], ..]. */
AM_API am_array am_take_along_axis(am_array x, am_array indices, int axis);
/** Copy of x with values written at indices along axis. indices have x's
 * ndim and, on the other axes, size 1 or x's (they broadcast *to* x);
 * values broadcast to x's shape with indices' length on axis. A target
 * written twice keeps the last value (in order along axis). */
AM_API am_array am_put_along_axis(am_array x, am_array indices, am_array values,
                                  int axis);
/** Copy of x with x[start:stop:step] (first n axes) replaced by update
 * (broadcast to the slice's shape, at most x's ndim). Bounds follow
 * am_slice (Python semantics, negative, AM_END, negative steps) and stay
 * unnormalized in the graph. step NULL: all 1. */
AM_API am_array am_slice_update(am_array x, am_array update,
                                const int64_t *start, const int64_t *stop,
                                const int64_t *step, int n);
/** x sliced on `axes` from offsets held in the integer array `start`
 * (shape [naxes]) with static `sizes`. The offsets are data: new values
 * never change the graph. As XLA/JAX dynamic_slice, each offset is clamped
 * to [0, dim - size] so the window fits (a negative start gives 0, it
 * does not count from the end). A size larger than its axis is
 * AM_ERR_SHAPE; sizes stay fixed when a graph is replayed with other
 * shapes. The result is a view of x. */
AM_API am_array am_dynamic_slice(am_array x, am_array start, const int *axes,
                                 int naxes, const int64_t *sizes);
/** Copy of x with the window at `start` (on `axes`) replaced by update:
 * update has x's ndim, x's size on the axes not listed and at most x's on
 * the listed ones; offsets are clamped as in am_dynamic_slice. */
AM_API am_array am_dynamic_slice_update(am_array x, am_array update,
                                        am_array start, const int *axes,
                                        int naxes);

/* ======================================================================
 *  Sorting
 *
 *  Along one axis (x needs at least one dim). Ascending, NaN last (NaNs
 *  equal among themselves); integers compare exactly in their own type,
 *  float16/bfloat16 as float32. Index results are uint32, so their axis
 *  may hold at most 2^32 elements (AM_ERR_SHAPE otherwise; also for sort
 *  and topk of float16/bfloat16).
 * ====================================================================== */

/** Sorted copy; argsort is stable (equal keys keep their order). */
AM_API am_array am_sort(am_array x, int axis);
AM_API am_array am_argsort(am_array x, int axis);
/** Indices (uint32) such that element kth is in sorted position, smaller
 * or equal ones before it and larger or equal ones after (unordered).
 * kth may be negative (from the end): -n <= kth < n. */
AM_API am_array am_argpartition(am_array x, int kth, int axis);
/** The k largest values along axis (0 <= k <= n), in descending order
 * (MLX leaves them unordered; sorting them makes results deterministic).
 * NaN counts as the largest value, so NaNs come first. */
AM_API am_array am_topk(am_array x, int k, int axis);

/* ======================================================================
 *  Random numbers
 *
 *  Counter-based and stateless: a key is a uint32 array of shape [2] (data,
 *  so new key values never change a graph or a compiled trace) and every
 *  output element is a pure function of the key, its index and the output
 *  size: the same on any thread count, and keys are split by the caller
 *  (derive one per use). The generator is Threefry-2x32 with 20 rounds
 *  laid out as MLX's, so the streams equal MLX's bit for bit:
 *  am_random_bits(key, shape) == mx.random.bits(shape, key=key) and
 *  am_random_uniform(key, shape, t) == mx.random.uniform(shape=shape,
 *  dtype=t, key=key) for key = mx.array([k0, k1], dtype=mx.uint32)
 *  (mx.random.key(seed) is [seed >> 32, seed & 0xffffffff]).
 *  A key of another dtype is AM_ERR_DTYPE, of another shape AM_ERR_SHAPE.
 *  Outputs hold at most 2^32 - 1 elements (32-bit counters, as MLX).
 * ====================================================================== */

/** Random uint32 words of the given shape. The sizes are literal: a
 * shapeless compile guards them as it does am_full's. */
AM_API am_array am_random_bits(am_array key, const int64_t *shape, int ndim);
/** Uniform floats in [0, 1) of dtype float32, float16 or bfloat16: as MLX,
 * bits * 2^-32 in float32 clamped to the largest value below 1 of dtype,
 * then rounded to dtype, so 1.0 never appears. Literal sizes, as
 * am_random_bits. */
AM_API am_array am_random_uniform(am_array key, const int64_t *shape, int ndim,
                                  am_dtype dtype);
/** am_random_uniform with the shape of `like` (its data is not read),
 * taken anew at every replay: shape-relative, so a shapeless compile
 * replays it for any shape without a guard. */
AM_API am_array am_random_uniform_like(am_array key, am_array like,
                                       am_dtype dtype);

/* ======================================================================
 *  Linear algebra (matmul, addmm) and convolution
 * ====================================================================== */

/* (section: linalg) */

/* Operands must be float (float16, bfloat16, float32, float64; integer or
 * bool operands give AM_ERR_DTYPE); two different float dtypes are cast to
 * their common one first (f16 with bf16 gives float32), which is also the
 * result's dtype. float16/bfloat16 multiply in float32 and round once on
 * store. Any strides are accepted: row-major and transposed views (such
 * as am_transpose of a weight) are read in place, other layouts copied. */

/** NumPy matmul: a [..., M, K] @ b [..., K, N] -> [..., M, N], the batch
 * dims (all but the last two) broadcast. A 1-d a is a row [1, K] and a 1-d
 * b a column [K, 1], that dim being dropped from the result (1-d @ 1-d is
 * a 0-d dot product). 0-d operands and differing inner dims are
 * AM_ERR_SHAPE. K == 0 gives zeros. */
AM_API am_array am_matmul(am_array a, am_array b);
/** beta * c + alpha * (a @ b) (MLX addmm): a and b as am_matmul; c
 * broadcasts (one way) to the product's shape and shares its dtype (a weak
 * scalar c takes it). As in BLAS, beta == 0 ignores c altogether (NaN in
 * c does not propagate). A c of the result's shape that is dead at eval
 * (no handle, no other consumer) lends its buffer to the result. */
AM_API am_array am_addmm(am_array c, am_array a, am_array b, float alpha,
                         float beta);
/** 1-d convolution in MLX's layout: x [N, L, C_in], w [C_out, K,
 * C_in/groups] -> [N, L_out, C_out] with L_out = (L + 2*padding -
 * dilation*(K-1) - 1) / stride + 1, zero padding on both ends, and
 * groups dividing C_in and C_out (groups == C_in == C_out is depthwise).
 * This is cross-correlation, as MLX and PyTorch compute it (the kernel is
 * not flipped): out[n, t, o] = sum_{k, i} x[n, t*stride + k*dilation -
 * padding, g*C_in/groups + i] * w[o, k, i] with g the group of o.
 * A kernel longer than the padded input is AM_ERR_SHAPE; stride,
 * dilation, groups < 1 or padding < 0 are AM_ERR_INVALID_ARG. */
AM_API am_array am_conv1d(am_array x, am_array w, int stride, int padding,
                          int dilation, int groups);

/* ======================================================================
 *  Neural-network ops: norms, RoPE, attention, activations
 * ====================================================================== */

/* (section: nn) */

/* float16/bfloat16/float32 compute in float32 (float32 accumulation) and
 * round once on store; float64 computes in double. The public functions
 * first cast their float operands (x, weights, z; q, k, v) to one dtype:
 * am_result_type of theirs, float32 for integer or bool inputs. Axes may
 * be negative and are kept as given (shapeless replays re-resolve them).
 * Weights and biases are 1-d of the size of x's last axis. */

/** x * rsqrt(mean(x^2) + eps) * w over the last axis (w [D] or NULL), as
 * mx.fast.rms_norm. Checkpoints with zero-centred norm weights (Hugging
 * Face Qwen3-Next/3.5: x * (1 + w)) need w + 1 once, at load. */
AM_API am_array am_rms_norm(am_array x, am_array w, float eps);
/** rms_norm(x, w) * silu(z) in one pass (Qwen3-Next's gated RMSNorm after
 * the DeltaNet; w used as is, not zero-centred). z has x's shape. */
AM_API am_array am_rms_norm_gated(am_array x, am_array w, am_array z,
                                  float eps);
/** (x - mean) * rsqrt(var + eps) * w + b over the last axis (biased
 * variance, two-pass); w and b may each be NULL. */
AM_API am_array am_layer_norm(am_array x, am_array w, am_array b, float eps);

/** Rotary positional encoding of x [..., L, D], as mx.fast.rope: row l of
 * axis -2 sits at position offset + l; pair i < dims/2 turns by
 * scale * position * base^(-2i/dims). traditional = false is the NeoX
 * rotate-half layout (pairs i, i + dims/2: Qwen, Llama); true pairs
 * 2i, 2i + 1. Elements from dims on are copied (partial rotary: Qwen3-Next
 * uses dims 64 of D 256, base 1e7). dims: even, 0 < dims <= D.
 * offset: NULL (0), a 0-d integer array, or a 1-d one with one offset per
 * entry of axis 0 (x of >= 3 dims). Offsets are data: new values (same
 * shape) never change the graph. Angles are computed in double. */
AM_API am_array am_rope(am_array x, int dims, bool traditional, float base,
                        float scale, am_array offset);

/** Scaled dot-product attention, as mx.fast.scaled_dot_product_attention:
 * softmax(scale * q k^T + mask) v with q [B, Hq, Lq, D], k [B, Hkv, Lkv,
 * D], v [B, Hkv, Lkv, Dv] -> [B, Hq, Lq, Dv] in q's dtype. Grouped-query
 * heads: Hq must be a multiple of Hkv; query head h reads KV head
 * h / (Hq / Hkv). Any strides (e.g. k, v as swapaxes views of
 * [B, Lkv, Hkv, D] caches).
 * mask: NULL, bool (true = keep) or additive float, broadcastable to
 * [B, Hq, Lq, Lkv] (<= 4 dims). causal: query i sees keys j <= q_offset +
 * i, where q_offset is a 0-d integer array (data: it never changes the
 * graph) or NULL for Lkv - Lq (the last query aligned with the last key,
 * MLX's "causal"); q_offset without causal is an error. Mask and causal
 * may be combined.
 * Hidden keys (bool mask false, causal) score the lowest finite float, as
 * in MLX: a row with every key hidden averages v uniformly, while a row
 * whose scores are all -inf (additive mask) is NaN. Lkv == 0 gives zeros.
 * The softmax runs in float32 (online, stable) and every sum accumulates
 * in float32; as in MLX, q * scale is rounded to q's dtype first, and for
 * bfloat16 inputs the probabilities are rounded to bfloat16 before they
 * weight V (their sum is taken from the rounded values). Decode (few query
 * rows per KV head) splits the keys across threads and reads K and V
 * once. */
AM_API am_array am_sdpa(am_array q, am_array k, am_array v, float scale,
                        am_array mask, bool causal, am_array q_offset);

/** exp(x - max) / sum along axis, in float32 ("precise"). A row of -inf
 * gives NaN (as MLX / NumPy). */
AM_API am_array am_softmax(am_array x, int axis);
/** x - logsumexp(x) along axis. */
AM_API am_array am_log_softmax(am_array x, int axis);
/** x * sigmoid(x). */
AM_API am_array am_silu(am_array x);
/** x/2 * (1 + erf(x / sqrt 2)); approximate: the tanh form
 * x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (MLX gelu_approx). */
AM_API am_array am_gelu(am_array x, bool approximate);
/** log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)). */
AM_API am_array am_softplus(am_array x);
/** x * rsqrt(sum(x^2) + eps) along axis: the l2norm of Qwen3-Next's
 * Gated DeltaNet q/k (HF / FLA, eps 1e-6). Not torch.F.normalize's
 * x / max(||x||, eps): the two agree when ||x||^2 >> eps. */
AM_API am_array am_l2_normalize(am_array x, int axis, float eps);

/** Rows of a float table [V, D] at integer `ids` (any shape): out shape
 * ids.shape + [D]. A take along axis 0; ids out of range fail at eval. */
AM_API am_array am_embedding(am_array table, am_array ids);

/* ======================================================================
 *  Quantization and MoE matmuls
 * ====================================================================== */

/* (section: quant) */

/** Quantization modes: MLX's formats, bit-exact with MLX 0.32.
 *
 *  mode    group sizes    bits            scales        biases
 *  affine  32, 64*, 128   2,3,4*,5,6,8    w's dtype     yes (w's dtype)
 *  mxfp4   32*            4*              uint8 E8M0    no
 *  mxfp8   32*            8*              uint8 E8M0    no
 *  nvfp4   16*            4*              uint8 E4M3    no
 *  (* the default, asked for with 0.)
 *
 * A row (last axis) of K elements packs into K*bits/32 uint32 words: code
 * i takes stream bits [i*bits, (i+1)*bits) of the row, little-endian (so
 * at 4 bits element 0 is the low nibble of word 0, and 3/5/6-bit codes
 * straddle bytes). Each group of group_size elements has one scale (and
 * bias). affine: w = scale*q + bias, q unsigned; quantizing picks as MLX
 * does the bias at the group's extreme of larger magnitude and makes 0
 * exact (the scale may be negative). mxfp4/nvfp4: E2M1 codes (magnitudes
 * 0, .5, 1, 1.5, 2, 3, 4, 6; bit 3 the sign; quantizing takes the nearest,
 * ties towards the smaller magnitude), mxfp8: E4M3 bytes; the scale is
 * 2^(s-127) (E8M0: quantizing picks the smallest power of two >=
 * amax/6 or amax/448, as MLX 0.32.4 does) or an E4M3 value (nvfp4: amax/6
 * rounded), times global_scale/2688 for nvfp4 with a float32 global
 * scale. E4M3 saturates at 448 and has no NaN (0x7f decodes to 480), as in
 * MLX.
 *
 * Non-finite inputs (no UB, never a crash): affine ignores NaN for the
 * group's min/max and quantizes a NaN element as 0; a group holding an
 * infinity gets a NaN or infinite scale/bias as the arithmetic gives (as
 * MLX). mxfp4/mxfp8: a group holding NaN or an infinity gets scale byte
 * 0xff and codes 0, so it dequantizes to NaN (MLX gives such a group an
 * arbitrary scale); the exponent is clamped to E8M0's [-127, 127] (MLX
 * wraps it for groups of magnitude below ~2^-124). nvfp4 follows MLX's
 * arithmetic: the scale saturates to 448 and NaN/inf elements give code 0.
 */
typedef enum am_quant_mode {
  AM_QUANT_AFFINE = 0,
  AM_QUANT_MXFP4,
  AM_QUANT_MXFP8,
  AM_QUANT_NVFP4,
  AM_QUANT_MODE_COUNT
} am_quant_mode;

/** Quantizes w (float16/bfloat16/float32, >= 2 dims, last dim divisible by
 * the group size) into outs[0] = wq (uint32 [..., K*bits/32]), outs[1] =
 * scales ([..., K/group_size]: w's dtype for affine, uint8 otherwise) and,
 * for affine, outs[2] = biases (like scales). outs must have room for 3;
 * outs[2] is set to NULL for the other modes. group_size/bits 0 pick the
 * mode's defaults. global_scale (a float32 array of one element, nvfp4
 * only) may be NULL. One primitive with 2 or 3 outputs. On error every
 * output is an error array and the status is returned. */
AM_API am_status am_quantize(am_array w, int group_size, int bits,
                             am_quant_mode mode, am_array global_scale,
                             am_array *outs);
/** Unpacks wq (uint32 [..., Kp]) with scales (and biases, affine only;
 * NULL otherwise) into [..., Kp*32/bits] of dtype `dtype` (float16,
 * bfloat16 or float32), or with AM_DTYPE_COUNT the default: the
 * scales/biases promotion for affine, bfloat16 for the fp modes. Values
 * match MLX's exactly: affine rounds scale*q to the scales' dtype and adds
 * the bias in the scales/biases promotion. global_scale: nvfp4 only (MLX
 * then returns float32 whatever dtype is asked; amorph honours dtype). */
AM_API am_array am_dequantize(am_array wq, am_array scales, am_array biases,
                              int group_size, int bits, am_quant_mode mode,
                              am_array global_scale, am_dtype dtype);
/** x @ dequantize(w).T (transpose) or x @ dequantize(w), reading the packed
 * weights directly. w: [..., N, K*bits/32] (transpose) or [..., K,
 * N*bits/32]; x: [..., K] (>= 1 dim). Output x.shape[:-1] + [N]; when x
 * and w both have more than 2 dims their batch dims broadcast (output
 * batch + [M, N]). When x has at most 2 dims w's batch dims must all be 1
 * (MLX would silently use w's first matrix). dtype: affine gives the
 * promotion of x, scales and biases (an integer x is cast to it first);
 * the fp modes give x's dtype (float16/bfloat16/float32). Accumulates in
 * float32. */
AM_API am_array am_quantized_matmul(am_array x, am_array wq, am_array scales,
                                    am_array biases, bool transpose,
                                    int group_size, int bits,
                                    am_quant_mode mode);
/** Kernels for float32 x against affine 4-bit weights. By default, on
 * CPUs with AVX512-VNNI, x is split per quantization group into two
 * 16-bit integer terms (x = s (hi + lo / 65536), so x is kept to ~2^-32
 * of the group's largest |x|, finer than float32 rounding) and multiplied
 * with the codes in exact integer dot products: about 1.4x the speed of
 * float32 products, which are arithmetic-bound on few cores, and at least
 * as accurate. on = true (or AM_QMM_FLOAT=1 in the environment) uses the
 * float32 kernels instead (for comparison). */
AM_API void am_set_qmm_float_kernels(bool on);
/** Quantized matmul with matrix-level gather (MoE experts): x [..bx.., M,
 * K], w [..bw.., N, Kp] (transpose) with scales/biases of w's batch dims.
 * lhs_indices / rhs_indices (integer arrays, either may be NULL) hold flat
 * indices into x's and w's batch dims; they broadcast together to the
 * output batch shape B, and out[i..] = x[lhs[i..]] @ deq(w[rhs[i..]])(.T):
 * output B + [M, N], dtype as am_quantized_matmul. A missing index array
 * stands for arange(prod(batch)) over that operand's batch shape (as
 * MLX); with both missing this is am_quantized_matmul. An index outside
 * [0, batch size) (negative ones too) fails at eval with
 * AM_ERR_INVALID_ARG. Pairs are grouped by weight matrix inside the
 * kernel, so each selected expert's weights are read once per call;
 * sorted_indices promises sorted indices (equal ones adjacent), which
 * only skips that grouping pass. The node's inputs are x, w, scales,
 * [biases], [lhs], [rhs] (biases for affine only, indices when given). */
AM_API am_array am_gather_qmm(am_array x, am_array wq, am_array scales,
                              am_array biases, am_array lhs_indices,
                              am_array rhs_indices, bool transpose,
                              int group_size, int bits, am_quant_mode mode,
                              bool sorted_indices);
/** Matmul with matrix-level gather on float operands: a [..., M, K], b
 * [..., K, N] (a 1-d a or b gets a unit dim that is removed from the
 * result, as matmul), indices as in am_gather_qmm; output B + [M, N] of
 * dtype am_result_type(a, b), which must be float16, bfloat16 or float32
 * (operands are cast to it). Without indices it is a batched matmul with
 * NumPy broadcasting of the batch dims. */
AM_API am_array am_gather_mm(am_array a, am_array b, am_array lhs_indices,
                             am_array rhs_indices, bool sorted_indices);
/** Embedding lookup in a quantized table: rows `indices` (any integer
 * dtype and shape; negative ones count from the end) of the 2-d table
 * (wq [V, Kp], scales, biases as am_dequantize), dequantized: output
 * indices.shape + [K], dtype as am_dequantize (AM_DTYPE_COUNT: default).
 * Only the selected rows are decoded. */
AM_API am_array am_quantized_embedding(am_array wq, am_array scales,
                                       am_array biases, am_array indices,
                                       int group_size, int bits,
                                       am_quant_mode mode, am_dtype dtype);

/* ======================================================================
 *  Custom kernels: output shapes and launch grid that follow the inputs
 * ======================================================================
 *
 * Define a kernel once (am_kernel_new), apply it to arrays anywhere in a
 * graph, eager or compiled (am_kernel_apply). Unlike MLX's custom kernels
 * the output shapes (and the CUDA grid) can be computed by a callback from
 * the input shapes and scalar params, run again at every shapeless replay,
 * so a compiled function holding a custom kernel replays for any shapes.
 *
 *   - CPU: `cpu` runs tasks [begin, end) of n_tasks (fixed, or from
 *     `cpu_tasks`) on the thread pool. Inputs are made row-contiguous
 *     first unless `allow_strided`; outputs are fresh row-contiguous
 *     buffers, filled with init_value when args->has_init.
 *   - Shapes: from `shapes` (callback), or fixed per application in
 *     args->out (MLX's model). A fixed-shape application records its input
 *     shapes: a compiled replay with other input shapes cannot reuse it and
 *     re-traces (a counted fallback; under `strict` an error naming the
 *     kernel), so a stale shape is never used.
 *   - CSE: two applications of one kernel to the same inputs with equal
 *     args (scalars, fixed shapes, grid, init) are merged by compile.
 *   - CUDA: `cuda` holds MLX cuda_kernel-style source; amorph generates the
 *     full kernel and compiles it to PTX with NVRTC (am_kernel_cuda_*).
 *     Launching comes with the CUDA backend.
 * Errors (a callback failing or returning a wrong count or invalid shape,
 * a kernel returning an error) name the kernel: "kernel 'name': ...".
 */

#define AM_KERNEL_MAX_IO 16     /* inputs, and outputs, per kernel        */
#define AM_KERNEL_MAX_SCALARS 8 /* int64 and double params per apply      */

typedef struct am_kernel_s *am_kernel;

/** Dtype and shape of one input or output (no data). */
typedef struct am_kernel_meta {
  am_dtype dtype;
  int ndim;
  int64_t shape[AM_MAX_DIMS];
} am_kernel_meta;

/** Per-application arguments. Zero-initialize, then fill. Scalars are
 * compared and hashed by value for CSE (only the first n_i / n_f count). */
typedef struct am_kernel_args {
  int n_i, n_f;
  int64_t i[AM_KERNEL_MAX_SCALARS];
  double f[AM_KERNEL_MAX_SCALARS];
  /* Fixed output shapes (n_fixed == the kernel's n_out), or 0 to use the
   * kernel's shape callback. */
  int n_fixed;
  am_kernel_meta out[AM_KERNEL_MAX_IO];
  /* Fill outputs with init_value before the kernel runs. */
  bool has_init;
  double init_value;
  /* CUDA launch, in threads as MLX (used when the kernel has no `launch`
   * callback): blocks = ceil(grid / min(threadgroup, grid)). */
  int grid[3], threadgroup[3];
} am_kernel_args;

/** One buffer as a CPU kernel sees it: strides in elements. */
typedef struct am_kernel_buf {
  void *data;
  am_dtype dtype;
  int ndim;
  const int64_t *shape;
  const int64_t *strides;
  int64_t size; /* element count */
} am_kernel_buf;

/** What a CPU kernel gets. `task_begin/end` is its share of [0, n_tasks). */
typedef struct am_kernel_call {
  const am_kernel_buf *in;
  int n_in;
  const am_kernel_buf *out;
  int n_out;
  const am_kernel_args *args;
  int64_t n_tasks;
  void *user; /* desc.user */
} am_kernel_call;

/** Runs tasks [begin, end); may be called concurrently on other ranges.
 * Returns AM_OK or an error (optionally after am_kernel_fail's message). */
typedef am_status (*am_kernel_cpu_fn)(const am_kernel_call *c, int64_t begin,
                                      int64_t end);
/** Output metas from input metas: writes out[0..], returns how many it
 * wrote (must be the kernel's n_out), or -1 on failure (optionally after
 * am_kernel_fail). Must be pure: it runs again at every replay. */
typedef int (*am_kernel_shape_fn)(void *user, const am_kernel_meta *in,
                                  int n_in, const am_kernel_args *args,
                                  am_kernel_meta *out, int max_out);
/** Number of CPU tasks for these inputs (>= 1; 0 or less fails). */
typedef int64_t (*am_kernel_tasks_fn)(void *user, const am_kernel_meta *in,
                                      int n_in, const am_kernel_args *args);

/** A CUDA launch configuration (grid and threadgroup in threads). */
typedef struct am_kernel_launch {
  int grid[3], threadgroup[3];
  int shared_memory; /* dynamic shared memory, bytes */
} am_kernel_launch;
/** Launch for these inputs; AM_OK or an error. */
typedef am_status (*am_kernel_launch_fn)(void *user, const am_kernel_meta *in,
                                         int n_in, const am_kernel_args *args,
                                         am_kernel_launch *out);

/** MLX cuda_kernel semantics: only the body is given. */
typedef struct am_kernel_cuda_desc {
  const char *const *input_names;  /* n_in names  */
  const char *const *output_names; /* n_out names */
  const char *source;              /* the kernel body                      */
  const char *header;              /* put before the kernel (may be NULL)  */
  int shared_memory;               /* dynamic shared memory, bytes         */
  am_kernel_launch_fn launch;      /* or NULL: args->grid / threadgroup     */
} am_kernel_cuda_desc;

typedef struct am_kernel_desc {
  const char *name; /* [A-Za-z_][A-Za-z0-9_]* (it names the CUDA entry)   */
  int n_in, n_out;  /* 1..AM_KERNEL_MAX_IO each                            */
  am_kernel_cpu_fn cpu;            /* NULL: no CPU implementation            */
  int64_t n_tasks;                 /* CPU tasks when cpu_tasks is NULL (0: 1) */
  am_kernel_tasks_fn cpu_tasks;    /* or tasks from the input shapes          */
  am_kernel_shape_fn shapes;       /* NULL: every apply gives fixed shapes    */
  bool allow_strided;              /* inputs as they are (any strides)        */
  const am_kernel_cuda_desc *cuda; /* NULL: no CUDA source                  */
  void *user;                      /* passed to every callback; must outlive
                                      the kernel and the graphs using it      */
  /* In place: output j may take over the buffer of input inplace[j] - 1
   * (0: never) when that input is dead at eval (no other holder: a
   * consumed compile state, say) and has the output's size and element
   * size; the CPU function then sees the same data pointer for both and
   * must allow it (a state updated in place reads each element before it
   * writes it). Saves an output allocation and its memory traffic. */
  int inplace[AM_KERNEL_MAX_IO];
} am_kernel_desc;

/** A new kernel (the desc's strings are copied), or NULL with
 * am_last_error() set on bad arguments. Free with am_kernel_free; graph
 * nodes keep it alive as long as they need it. */
AM_API am_kernel am_kernel_new(const am_kernel_desc *d);
AM_API void am_kernel_free(am_kernel k);
AM_API const char *am_kernel_name(am_kernel k);

/** Applies k to in[0..n_in) and writes its n_out outputs to out[] (owned
 * as any op result). args may be NULL (no scalars, callback shapes). On
 * error every output is an error array and the status is returned. */
AM_API am_status am_kernel_apply(am_kernel k, const am_array *in, int n_in,
                                 const am_kernel_args *args, am_array *out);

/** For CPU kernels and callbacks: sets the failure message (first one
 * wins per call); the error then reads "kernel 'name': <message>". */
AM_API void am_kernel_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/** The launch for these input metas (the callback's, or args' fixed one),
 * validated (every dimension >= 1). */
AM_API am_status am_kernel_cuda_launch_for(am_kernel k,
                                           const am_kernel_meta *in, int n_in,
                                           const am_kernel_args *args,
                                           am_kernel_launch *out);

/** A CUDA template argument: `constexpr int NAME = v;`, `constexpr bool`,
 * or `using NAME = <C type of dtype>;` at the top of the body. */
typedef enum { AM_TARG_INT, AM_TARG_BOOL, AM_TARG_DTYPE } am_targ_kind;
typedef struct am_kernel_targ {
  const char *name;
  am_targ_kind kind;
  int64_t value;  /* INT, BOOL */
  am_dtype dtype; /* DTYPE */
} am_kernel_targ;

/** The full CUDA source for these input metas and output dtypes (typed
 * pointers; `<name>_shape`, `_strides`, `_ndim` arguments for the inputs
 * whose names the body uses that way), with entry point `*entry` =
 * "custom_<name>_<hash>" (both malloc'd; free() them). */
AM_API am_status am_kernel_cuda_source(am_kernel k, const am_dtype *in_dtypes,
                                       const am_dtype *out_dtypes,
                                       const am_kernel_targ *targs, int n_targs,
                                       char **source, char **entry);
/** Compiles that source with NVRTC for `arch` ("compute_90", "sm_90"; NULL:
 * compute_90) to PTX (malloc'd, NUL-terminated; free() it). Cached by
 * source hash in memory and on disk (AM_KERNEL_CACHE_DIR, else
 * $XDG_CACHE_HOME/amorph/ptx, else /tmp/amorph-ptx). A compile error is
 * AM_ERR_INVALID_ARG with NVRTC's log in the message; without NVRTC at
 * build time AM_ERR_UNSUPPORTED. */
AM_API am_status am_kernel_cuda_compile(am_kernel k, const am_dtype *in_dtypes,
                                        const am_dtype *out_dtypes,
                                        const am_kernel_targ *targs,
                                        int n_targs, const char *arch,
                                        char **ptx, char **entry);
/** NVRTC compiles done by this process (cache misses), for tests. */
AM_API uint64_t am_kernel_nvrtc_compiles(void);

/* ======================================================================
 *  Safetensors: memory-mapped, zero-copy checkpoints
 * ====================================================================== */

/** An open safetensors checkpoint: one file, or the shards of a directory.
 * Every header is validated when opened (header length within the file,
 * well-formed JSON, known dtypes, non-negative dims without overflow,
 * data_offsets inside the data section and matching shape x dtype size, no
 * two tensors overlapping); a bad file gives AM_ERR_IO naming the file and
 * the tensor or field. Tensors are sorted by name. Data is little-endian
 * (as the format defines); amorph assumes a little-endian host. */
typedef struct am_safetensors am_safetensors;

/** One tensor's header entry. */
typedef struct am_safetensors_info {
  const char *name;       /* valid while the checkpoint is open            */
  const char *dtype_name; /* as in the header: "BF16", "F8_E4M3", ...     */
  am_dtype dtype;         /* AM_DTYPE_COUNT when amorph has no such dtype */
  int ndim;
  int64_t shape[AM_MAX_DIMS];
  uint64_t nbytes;
  const char *file; /* the path of the file holding it                    */
} am_safetensors_info;

/** Opens (mmaps, read-only) one .safetensors file into *out (NULL on
 * failure: see am_last_error). */
AM_API AM_NODISCARD am_status am_safetensors_open(const char *path,
                                                  am_safetensors **out);
/** Opens a model directory: the shards listed by model.safetensors.index.json
 * (each opened once; every weight_map entry must exist in its shard), else
 * model.safetensors, else every *.safetensors file in it (as mlx-lm). A
 * tensor present in two files is an error. */
AM_API AM_NODISCARD am_status am_safetensors_open_dir(const char *dir,
                                                      am_safetensors **out);
/** Closes the checkpoint. Arrays returned by am_safetensors_get stay valid:
 * each keeps its file mapped until it is freed. NULL is a no-op. */
AM_API void am_safetensors_free(am_safetensors *st);
AM_API int64_t am_safetensors_count(const am_safetensors *st);
/** The i-th name in sorted order (NULL when i is out of range). */
AM_API const char *am_safetensors_name(const am_safetensors *st, int64_t i);
AM_API bool am_safetensors_has(const am_safetensors *st, const char *name);
/** Header entry of `name`: AM_OK, or AM_ERR_INVALID_ARG if absent. */
AM_API am_status am_safetensors_info_get(const am_safetensors *st,
                                         const char *name,
                                         am_safetensors_info *out);
/** The tensor as an evaluated array borrowing the mapping (zero-copy; it is
 * copied only when its data is not aligned to its dtype, or for BOOL,
 * whose bytes are normalized to 0/1). A missing name gives an error array
 * (AM_ERR_INVALID_ARG), a dtype amorph lacks (F8_E4M3, U16, ...) one with
 * AM_ERR_UNSUPPORTED; both name the file and tensor. */
AM_API am_array am_safetensors_get(const am_safetensors *st, const char *name);
/** A `__metadata__` value (the first file that has the key), or NULL. */
AM_API const char *am_safetensors_metadata(const am_safetensors *st,
                                           const char *key);
/** Writes n arrays (evaluating them) as a safetensors file, atomically
 * (temporary file in the same directory, then rename). Names must be
 * unique. `metadata` is NULL or a NULL-terminated list of alternating keys
 * and values: {"format", "mlx", NULL}. Tensors are laid out by decreasing
 * element size, then name, so that every tensor is aligned. */
AM_API AM_NODISCARD am_status am_safetensors_save(const char *path,
                                                  const char *const *names,
                                                  const am_array *arrays, int n,
                                                  const char *const *metadata);

/* ======================================================================
 *  Compile: trace once, replay with new shapes
 * ====================================================================== */

/** The function to compile. It gets n_in input arrays and writes n_out
 * results to out[] (new references, any ownership: the compiler keeps what
 * it needs). It must be pure: arrays it captures from outside (weights)
 * are constants by identity; values that change per call (a position, a
 * length) must be inputs (0-d arrays). Return AM_OK, or an error status.
 * It runs inside a scope of its own while traced. */
typedef am_status (*am_compile_fn)(void *ctx, const am_array *in, int n_in,
                                   am_array *out, int n_out);

typedef struct am_compile_options {
  bool shapeless;   /* replay across input shapes (same ranks and dtypes)  */
  bool strict;      /* a needed re-trace becomes an error naming the op     */
  bool verify;      /* also run fn uncompiled each call and compare outputs
                       (or set AM_COMPILE_VERIFY=1)                         */
  bool no_simplify; /* keep every traced node (no CSE / constant merge)    */
  bool no_fuse;     /* keep elementwise chains as separate nodes           */
  int max_entries;  /* cached traces per function; 0 = 16; LRU eviction   */
  int n_state;      /* the last n_state inputs are state the call consumes
                       (their buffers may be updated in place) and the last
                       n_state outputs are the new state                   */
  bool constant_literals; /* every literal size fn passes to an op (reshape,
                       unflatten, broadcast_to, ...) is a constant of fn,
                       never a captured input size: no guards are placed,
                       so a literal that happens to equal an input size
                       costs no re-trace when that input changes (a model
                       whose head counts and dims are its config's)       */
} am_compile_options;

/** Counters of one compiled function. */
typedef struct am_compile_stats {
  uint64_t calls;        /* calls served                                      */
  uint64_t traces;       /* times fn was traced                               */
  uint64_t replays;      /* calls that reused a cached trace                  */
  uint64_t reinfers;     /* replays whose input shapes differed from the last
                            call of that entry: shapes re-inferred per node   */
  uint64_t fallbacks;    /* re-traces forced by a node that cannot replay the
                            new shapes (see am_compiled_last_fallback)        */
  uint64_t evictions;    /* cache entries dropped (LRU)                       */
  uint64_t entries;      /* cache entries now                                 */
  uint64_t nodes;        /* nodes of the most recent entry (after passes)     */
  uint64_t traced_nodes; /* nodes of that entry as traced                   */
  uint64_t fused_groups; /* fused elementwise groups in that entry          */
  uint64_t cse_merged;   /* nodes merged by simplification in that entry    */
  double trace_seconds;  /* total time tracing + passes (simplify, fuse)  */
  double reinfer_seconds; /* total time re-inferring shapes on replays      */
  /* Device graphs (CUDA): a call on the GPU with shapes seen before is
   * captured once and then replayed with one launch (AM_GRAPHS=0: off). */
  uint64_t graph_captures; /* graphs captured and instantiated             */
  uint64_t graph_updates;  /* captures that updated an existing executable
                              graph in place (cudaGraphExecUpdate)         */
  uint64_t graph_launches; /* calls served by launching a captured graph   */
  uint64_t graph_refused;  /* calls whose graph existed or was due but ran
                              the tape: a buffer it writes was still held  */
} am_compile_stats;

typedef struct am_compiled_s *am_compiled;

/** Compiles fn (nothing runs until the first call). opts may be NULL.
 * Returns NULL only on bad arguments or out of memory (see am_last_error).*/
AM_API am_compiled am_compile(am_compile_fn fn, void *ctx, int n_in, int n_out,
                              const am_compile_options *opts);
/** Calls the compiled function: evaluates the inputs if needed, then runs
 * the cached graph (tracing it on a cache miss) and writes n_out evaluated
 * results to out[] (owned as any op result). State inputs (see n_state)
 * are consumed: the call takes over the caller's reference to each.
 * Thread-safe: several threads may call one compiled function. */
AM_API AM_NODISCARD am_status am_compiled_call(am_compiled f,
                                               const am_array *in,
                                               am_array *out);
AM_API void am_compiled_free(am_compiled f);
AM_API am_compile_stats am_compiled_stats(am_compiled f);
/** Why the most recent fallback re-trace happened ("" if none). */
AM_API const char *am_compiled_last_fallback(am_compiled f);
/** Prints the most recently used entry's graph as text, or as Graphviz DOT
 * when dot is true. */
AM_API am_status am_compiled_print(am_compiled f, FILE *out, bool dot);

#ifdef __cplusplus
}
#endif
#endif /* AMORPH_H */
