/*
 * cuda_internal.h — helpers shared by the CUDA backend's sources
 * (runtime.c, qmm.cu). Not part of the API.
 */
#ifndef AM_CUDA_INTERNAL_H
#define AM_CUDA_INTERNAL_H

#include "cuda.h"

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Records an error (thread-local message, and amorph's am_last_error
 * when built with AM_CUDA_WITH_AMORPH) and returns `s`. */
am_status am_cuda_fail(am_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** AM_OK for cudaSuccess; otherwise clears CUDA's sticky-free error state
 * and fails with AM_ERR_DEVICE (AM_ERR_OOM for cudaErrorMemoryAllocation)
 * naming `what` and CUDA's message. */
am_status am_cuda_check(cudaError_t e, const char *what);

/** `stream` itself, or the thread's stream when NULL (NULL on error). */
cudaStream_t am_cuda_resolve_stream(void *stream);

/** Properties of the current device, cached (NULL on error). */
const am_cuda_device_info *am_cuda_current_info(void);

/** Frees qmm.cu's per-device buffers (am_cuda_shutdown). */
void am_cuda_qmm_release(void);

#ifdef __cplusplus
}
#endif

#define AM_CUDA_TRY(call)                                                      \
  do {                                                                         \
    am_status am_cuda_st_ = am_cuda_check((call), #call);                      \
    if (am_cuda_st_ != AM_OK) return am_cuda_st_;                              \
  } while (0)

#endif /* AM_CUDA_INTERNAL_H */
