/* Placeholder until the sampler lands: greedy only. */
#include "sample.h"
am_array am_llm_sample(am_array logits, const am_llm_sampler *p, am_array key,
                       am_array recent) {
  (void)p, (void)key, (void)recent;
  return am_astype(am_argmax(logits, -1, false), AM_I32);
}
