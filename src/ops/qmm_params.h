/* qmm_params.h — params of quantized_matmul, gather_qmm, gather_mm (shared with
 * the CUDA glue). */
#ifndef AM_QMM_PARAMS_H
#define AM_QMM_PARAMS_H
#include "../core/internal.h"

typedef struct {
  am_quant_mode mode;
  int group_size, bits;
  bool transpose;
  bool has_lhs, has_rhs;          /* gather_qmm: index inputs given */
  bool left_sorted, right_sorted; /* gather_qmm                     */
} qmm_params;
#endif
