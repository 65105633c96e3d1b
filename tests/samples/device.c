/* Sample for the device family: placement on the CPU (the device every
 * build has), of any dtype and rank; the CUDA suite also places on the
 * GPU. */
#include "samples.h"

int sample_to_device(t_rng *r, uint64_t pseed, am_array *outs) {
  am_dtype dt = (am_dtype)s_pick(pseed, 2, 0, AM_F64);
  am_array x = s_rand(r, (int)s_pick(pseed, 1, 0, 4), 0, 9, dt, NULL);
  outs[0] = am_to_device(x, AM_DEVICE_CPU);
  return 1;
}
