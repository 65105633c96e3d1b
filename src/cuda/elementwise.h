/* elementwise.h — launchers of elementwise.cu (elementwise ops, where,
 * activations), C-callable: plain pointers, sizes and am_dtype only. */
#ifndef AM_CUDA_ELEMENTWISE_H
#define AM_CUDA_ELEMENTWISE_H
#include "amorph.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Kernel op codes (the glue maps AM_OP_* onto them). The order groups
 * ops by kind; elementwise.cu relies on the group bounds. */
enum am_cu_ew_op {
  /* unary, keep the dtype, any dtype */
  AM_CU_NEG,
  AM_CU_ABS,
  AM_CU_SIGN,
  AM_CU_SQUARE,
  AM_CU_FLOOR,
  AM_CU_CEIL,
  AM_CU_ROUND,
  /* unary, float dtypes only */
  AM_CU_EXP,
  AM_CU_EXPM1,
  AM_CU_LOG,
  AM_CU_LOG1P,
  AM_CU_SQRT,
  AM_CU_RSQRT,
  AM_CU_SIN,
  AM_CU_COS,
  AM_CU_TANH,
  AM_CU_SIGMOID,
  AM_CU_ERF,
  AM_CU_SILU,
  AM_CU_GELU,
  AM_CU_GELU_TANH,
  AM_CU_SOFTPLUS,
  /* unary, bool result */
  AM_CU_LOGICAL_NOT,
  /* binary, keep the dtype, any dtype */
  AM_CU_ADD,
  AM_CU_SUB,
  AM_CU_MUL,
  AM_CU_POW,
  AM_CU_MAXIMUM,
  AM_CU_MINIMUM,
  AM_CU_REMAINDER,
  /* binary, float dtypes only */
  AM_CU_DIV,
  /* binary, bool result */
  AM_CU_EQUAL,
  AM_CU_NOT_EQUAL,
  AM_CU_LESS,
  AM_CU_LESS_EQUAL,
  AM_CU_GREATER,
  AM_CU_GREATER_EQUAL,
  AM_CU_LOGICAL_AND,
  AM_CU_LOGICAL_OR,
  AM_CU_EW_COUNT
};

/** Up to three operands broadcast over one row-major output of `ndim`
 * dims (collapsed); strides in elements, 0 on broadcast dims. */
#define AM_CU_EW_DIMS 8
typedef struct am_cu_ew_shape {
  int ndim;
  int64_t shape[AM_CU_EW_DIMS];
  int64_t strides[3][AM_CU_EW_DIMS];
} am_cu_ew_shape;

/** out[i] = op(a[i], b[i]) over contiguous operands of dtype dt (f32,
 * bf16 or f16; op keeps the dtype): step 1 reads element i, step 0 the
 * single value at [0]. b and sb are ignored for unary ops. */
am_status am_cu_ew_contig(int op, const void *a, int sa, const void *b, int sb,
                          void *out, am_dtype dt, int64_t n);

/** The general path: operands of dtype in_dt at strided positions (s),
 * out row-major in out_dt (bool for comparisons and logical ops). */
am_status am_cu_ew_strided(int op, const am_cu_ew_shape *s, const void *a,
                           const void *b, am_dtype in_dt, void *out,
                           am_dtype out_dt, int64_t n);

/** out[i] = cond[i] != 0 ? x[i] : y[i]: strides of cond, x, y in s;
 * x, y and out have elements of es bytes (1, 2, 4 or 8). */
am_status am_cu_where(const am_cu_ew_shape *s, const void *cond,
                      am_dtype cond_dt, const void *x, const void *y, size_t es,
                      void *out, int64_t n);

/** Contiguous conversion between f32, bf16 and f16 (vectorized). */
am_status am_cu_convert_float(const void *src, am_dtype st, void *dst,
                              am_dtype dt, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
