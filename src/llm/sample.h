/*
 * sample.h — the in-graph sampler of the runtime (internal to amorph_llm).
 *
 * Built from public amorph ops only, so it traces into the compiled decode
 * step and replays for any batch and vocabulary size (shapeless, no
 * guard). The filters follow the order of am_llm_sampler's doc comment:
 * repetition penalty, temperature, top-k, top-p, min-p, then the draw.
 * Each filter is mlx-lm's (sample_utils.py):
 *  - repetition penalty: logit / penalty if logit > 0 else logit * penalty,
 *    once for each token present in `recent` (duplicates count once;
 *    negative entries are empty slots);
 *  - temperature: logits * (1 / temperature); 0 is greedy (argmax, first
 *    max on ties, no randomness, no filters);
 *  - top-k: keeps the tokens >= the k-th largest logit (ties with it are
 *    kept); k >= V keeps all; k may be at most 2^20;
 *  - top-p: keeps the smallest set of most probable tokens whose mass
 *    reaches top_p (the token crossing it kept, and ties with it), the
 *    probabilities being those after top-k (renormalized);
 *  - min-p: keeps the tokens with probability >= min_p * the largest;
 *  - draw: Gumbel-max, argmax(x + g) with g = -log(-log(u)) and u =
 *    am_random_uniform_like(key, x) (MLX's mx.random.categorical), an
 *    exact draw from softmax(x).
 * Unlike mlx-lm, which filters the untempered log-probabilities in the
 * order top-p, min-p, top-k and applies the temperature in the draw, the
 * temperature comes first here (as in Hugging Face and llama.cpp). With
 * no filters the draw equals mx.random.categorical(logits / temperature,
 * key=key) up to float rounding.
 * Cost: O(V) per row plus a top-k selection; only top-p without top-k
 * sorts the vocabulary (top-p with top-k works on the k values).
 */
#ifndef AM_LLM_SAMPLE_H
#define AM_LLM_SAMPLE_H

#include "amorph_llm.h"

/* logits [B, V] (any float dtype; computed in float32). key: uint32 [2]
 * (data; unused and may be NULL when greedy). recent: integer [B, R] (or
 * [1, R], broadcast) of the last R tokens, negative = empty slot, or NULL;
 * only used when the penalty is on (a token >= V fails at eval). The
 * caller keeps its R = repetition_context (0: 20) last tokens: the
 * sampler penalizes every token it is given. Returns token ids int32 [B]. Bad
 * sampler values give an error array (AM_ERR_INVALID_ARG) naming
 * llm_sample. */
am_array am_llm_sample(am_array logits, const am_llm_sampler *p, am_array key,
                       am_array recent);
/* The distribution the draw uses: float32 [B, V] probabilities after the
 * penalty, temperature and filters (for tests; greedy gives one-hot). */
am_array am_llm_sample_probs(am_array logits, const am_llm_sampler *p,
                             am_array recent);

/* mx.random.key(seed): {seed >> 32, seed & 0xffffffff}. */
void am_llm_key_from_seed(uint64_t seed, uint32_t key[2]);
/* One step of MLX's global key sequence: split `state` as
 * mx.random.split does, state <- first half, key <- second. Started from
 * am_llm_key_from_seed(seed), the keys are those successive
 * mx.random.categorical calls use after mx.random.seed(seed) (as in
 * mlx-lm's generation), so with no filter the draws match. */
am_status am_llm_key_next(uint32_t state[2], uint32_t key[2]);

#endif
