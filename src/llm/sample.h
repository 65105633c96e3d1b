/* Placeholder until the sampler lands: greedy only. */
#ifndef AM_LLM_SAMPLE_H
#define AM_LLM_SAMPLE_H
#include "amorph_llm.h"
am_array am_llm_sample(am_array logits, const am_llm_sampler *p, am_array key,
                       am_array recent);
#endif
