/*
 * nn_common.h — what the neural-network family (norm.c, rope.c,
 * attention.c, activation.c) shares: float row loads and stores with
 * conversion, the lane walk that reduction-along-an-axis ops run on, and
 * the float32 SIMD helpers of nn_simd.c.
 *
 * Compute types: float16/bfloat16/float32 compute in float32, float64 in
 * double. Kernels get rows ("lanes") of the compute type: contiguous
 * float32 data is used in place, anything else is converted into a
 * per-task scratch row first and converted back on store.
 */
#ifndef AM_NN_COMMON_H
#define AM_NN_COMMON_H

#include "../core/internal.h"

/* ======================================================================
 *  Rows with conversion
 * ====================================================================== */

/** n elements of float dtype t at p (byte stride st) into float/double. */
void am_nn_load_f32(const char *p, int64_t st, am_dtype t, int64_t n,
                    float *dst);
void am_nn_load_f64(const char *p, int64_t st, am_dtype t, int64_t n,
                    double *dst);
/** n float/double values to dtype t at p (byte stride st), rounding once. */
void am_nn_store_f32(const float *src, char *p, int64_t st, am_dtype t,
                     int64_t n);
void am_nn_store_f64(const double *src, char *p, int64_t st, am_dtype t,
                     int64_t n);
/** An integer element of any integer dtype (positions, offsets). */

/* ======================================================================
 *  Recording
 * ====================================================================== */

/** Records op on in[0..n) (NULL entries are errors), first casting
 * in[0..nfloat) to one float dtype: am_result_type of theirs, or float32
 * when that is not a float type (integers, bool, float16 with bfloat16).
 * The casts live in a private scope, so the caller gets exactly one
 * reference, as from any op. */
am_array am_nn_make(int op, const void *params, am_arr **in, int n, int nfloat);
/** A weight vector (1-d, any strides and float dtype) as contiguous
 * float32 (or float64 when f64): points into w when it already is, else
 * into *tmp, which the caller frees. NULL w gives NULL. Returns false on
 * out of memory. */
bool am_nn_vector(const am_arr *w, bool f64, const void **out, void **tmp);

/* ======================================================================
 *  Lane walks
 *
 *  A lane is the 1-d run of elements along `axis` at one index of the
 *  other axes. The walk hands each lane of the output (and of up to three
 *  inputs of the output's shape, any strides) to a lane function, as
 *  compute-type rows of `len` elements. Inputs may share their buffer
 *  with the output (donation): a lane function must read a position
 *  before writing it and never write ahead of its reads.
 * ====================================================================== */

typedef void (*am_nn_lane_f32)(const void *ctx, int64_t len,
                               const float *const *in, float *out);
typedef void (*am_nn_lane_f64)(const void *ctx, int64_t len,
                               const double *const *in, double *out);

typedef struct am_nn_lanes {
  am_arr *out;   /* allocated already                         */
  am_arr *in[3]; /* of out's shape                            */
  int nin;
  int axis;            /* normalized                                */
  am_nn_lane_f32 fn32; /* float16/bfloat16/float32                  */
  am_nn_lane_f64 fn64; /* float64                                   */
  const void *ctx;
  int64_t cost; /* rough work per element, 1 = a few flops   */
} am_nn_lanes;

void am_nn_lanes_run(const am_nn_lanes *l);

/* ======================================================================
 *  Float32 SIMD helpers (AVX-512, AVX2, or portable: am_nn_vec picks)
 * ====================================================================== */

/* K/V element types the attention kernels read directly. */
enum { AM_NN_KV_BF16, AM_NN_KV_F16, AM_NN_KV_F32, AM_NN_KV_COUNT };

typedef struct am_nn_vec {
  float (*sum)(const float *x, int64_t n);
  float (*sumsq)(const float *x, int64_t n);
  /* sum of (x - c)^2 */
  float (*sumsq_dev)(const float *x, float c, int64_t n);
  float (*max)(const float *x, int64_t n);
  /* o = (x + c) * s, times w and g where not NULL, plus b if not NULL */
  void (*affine)(float *o, const float *x, float c, float s, const float *w,
                 const float *g, const float *b, int64_t n);
  /* Attention scores of rt (1..8) query rows against nk keys:
   * s[r * ss + j] = dot(q[r * qs ...], k[j * ks ...]) over d. */
  void (*scores[AM_NN_KV_COUNT])(int rt, const float *q, int64_t qs,
                                 const void *k, int64_t ks, int64_t nk,
                                 int64_t d, float *s, int64_t ss);
  /* acc[r * as + c] = acc[r * as + c] * corr[r]
   *                   + sum_j p[r * ps + j] * v[j * vs + c], c < dv. */
  void (*pv[AM_NN_KV_COUNT])(int rt, const float *p, int64_t ps, const void *v,
                             int64_t vs, int64_t nk, int64_t dv, float *acc,
                             int64_t as, const float *corr);
  /* Scores of bfloat16 q rows (q * scale rounded to bfloat16) against
   * bfloat16 keys, with bfloat16 dot-product instructions; NULL where the
   * CPU has none (the float32 kernels then get the same rounded q). */
  void (*scores_bf16dp)(int rt, const uint16_t *q, int64_t qs, const void *k,
                        int64_t ks, int64_t nk, int64_t d, float *s,
                        int64_t ss);
  /* pv for bfloat16 V and probabilities already rounded to bfloat16, with
   * bfloat16 dot-product instructions; NULL where the CPU has none. */
  void (*pv_bf16dp)(int rt, const float *p, int64_t ps, const void *v,
                    int64_t vs, int64_t nk, int64_t dv, float *acc, int64_t as,
                    const float *corr);
} am_nn_vec;

/** The fastest helpers this CPU runs. */
const am_nn_vec *am_nn_vec_get(void);
/** Tests: 0 portable only, 1 up to AVX2, 2 up to AVX-512, 3 (default) and
 * the AVX512-BF16 kernels where they are faster, 4 those wherever the
 * CPU has them. */
void am_nn_simd_limit(int level);

/** Contiguous float32 elementwise kernel of an elementwise op (exp,
 * sigmoid, tanh, erf, log1p, ...), from the elementwise family. */
typedef void (*am_nn_map)(int64_t n, const void *const *in, const int64_t *step,
                          void *out);
am_nn_map am_nn_map_f32(int op);
/** out[i] = f(in[i]) for a unary elementwise op, float32, in place ok. */
void am_nn_map1(am_nn_map k, const float *in, float *out, int64_t n);

#endif /* AM_NN_COMMON_H */
