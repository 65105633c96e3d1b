/* quant_params.h — params of quantize, dequantize, quantized_embedding (shared
 * with the CUDA glue). */
#ifndef AM_QUANT_PARAMS_H
#define AM_QUANT_PARAMS_H
#include "../core/internal.h"

typedef struct {
  am_quant_mode mode;
  int group_size, bits;
  bool has_global;
} quantize_params;

typedef struct {
  am_quant_mode mode;
  int group_size, bits;
  bool has_global;
  am_dtype dtype; /* AM_DTYPE_COUNT: the mode's default */
} dequantize_params;

typedef struct {
  am_quant_mode mode;
  int group_size, bits;
  am_dtype dtype; /* AM_DTYPE_COUNT: as dequantize */
} qembed_params;
#endif
