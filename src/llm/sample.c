/*
 * sample.c — the sampler as a graph of public amorph ops (see sample.h for
 * the semantics). Every op is shape-relative: paddings and end-relative
 * slices instead of sizes, reductions with keepdims, the random draw shaped
 * like the logits; so the decode step traced once replays for any [B, V].
 */
#include "sample.h"

#include "core/internal.h" /* am_error_array, am_scope_own */

#include <math.h>

static const int last_axis[1] = {-1};

/* top-k pads each row with k columns (see filtered): k is bounded so that
 * a huge k cannot ask for a huge buffer; 2^20 is above any vocabulary. */
#define AM_LLM_TOP_K_MAX (1 << 20)

/* x with `n` columns of `value` appended on its last axis (x is [B, V]):
 * a padding, whose width is not a size of x, so it replays for any V. */
static am_array pad_cols(am_array x, int64_t n, double value) {
  return am_pad(x, (const int64_t[]){0, 0}, (const int64_t[]){0, n}, 2, value);
}

static am_array neg_inf_where(am_array remove, am_array x) {
  return am_where(remove, am_float(-INFINITY), x);
}

/* Repetition penalty on x [B, V] for the tokens in recent [B, R]. Negative
 * slots are sent to an extra column V, cut off afterwards; a token listed
 * twice is written twice with the same value, so it counts once. */
static am_array penalize(am_array x, float penalty, am_array recent) {
  am_array xp = pad_cols(x, 1, 0.0); /* [B, V+1] */
  am_array idx = am_where(am_less(recent, am_int(0)), am_int(-1), recent);
  am_array sel = am_take_along_axis(xp, idx, -1); /* [B, R] */
  am_array pen =
      am_where(am_greater(sel, am_float(0)), am_div(sel, am_float(penalty)),
               am_mul(sel, am_float(penalty)));
  xp = am_put_along_axis(xp, idx, pen, -1);
  return am_slice_axis(xp, -1, 0, -1, 1); /* [B, V] */
}

/* Keeps the x >= the smallest of `sorted` whose exclusive cumulative
 * probability (mass of the values before it in the walk) is < top_p.
 * sorted: the candidates along the last axis, descending (or ascending
 * with `ascending`, walked from the end). lse: logsumexp of x [B, 1]. */
static am_array top_p_filter(am_array x, am_array sorted, bool ascending,
                             am_array lse, float top_p) {
  am_array probs = am_exp(am_sub(sorted, lse));
  am_array before = am_cumsum(probs, -1, ascending, false);
  am_array kept =
      am_where(am_less(before, am_float(top_p)), sorted, am_float(INFINITY));
  am_array thr = am_min(kept, last_axis, 1, true); /* [B, 1] */
  return neg_inf_where(am_less(x, thr), x);
}

/* Filtered float32 logits [B, V] (removed tokens -inf); the greedy case
 * stops after the penalty. */
static am_array filtered(am_array logits, const am_llm_sampler *p,
                         am_array recent) {
  am_array x =
      am_array_dtype(logits) == AM_F32 ? logits : am_astype(logits, AM_F32);
  float pen = p->repetition_penalty;
  if (pen != 0 && pen != 1 && recent) x = penalize(x, pen, recent);
  if (p->temperature == 0) return x;
  x = am_mul(x, am_float(1.0 / p->temperature));
  am_array top = NULL; /* top-k values, descending [B, k] */
  if (p->top_k > 0) {
    /* -inf columns make k <= the row length for any V (k >= V keeps all). */
    top = am_topk(pad_cols(x, p->top_k, -INFINITY), p->top_k, -1);
    x = neg_inf_where(am_less(x, am_min(top, last_axis, 1, true)), x);
  }
  if (p->top_p > 0 && p->top_p < 1) {
    am_array lse = am_logsumexp(x, last_axis, 1, true);
    x = top ? top_p_filter(x, top, false, lse, p->top_p)
            : top_p_filter(x, am_sort(x, -1), true, lse, p->top_p);
  }
  if (p->min_p > 0) {
    am_array mx = am_max(x, last_axis, 1, true);
    x = neg_inf_where(am_less(x, am_add(mx, am_float(log(p->min_p)))), x);
  }
  return x;
}

static bool bad_float(float v, float lo, float hi) {
  return !(v >= lo && v <= hi); /* NaN too */
}

/* Argument checks; an error array, or NULL when all is well. */
static am_array check_args(am_array logits, const am_llm_sampler *p,
                           am_array recent) {
  if (!p) return am_error_array(AM_ERR_INVALID_ARG, "llm_sample: NULL sampler");
  if (!logits)
    return am_error_array(AM_ERR_INVALID_ARG, "llm_sample: NULL logits");
  if (bad_float(p->temperature, 0, INFINITY) || isinf(p->temperature))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "llm_sample: temperature %g is not finite and >= 0",
                          p->temperature);
  if (p->top_k < 0 || p->top_k > AM_LLM_TOP_K_MAX)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "llm_sample: top_k %d is not in [0, 2^20]", p->top_k);
  if (bad_float(p->top_p, 0, 1) || bad_float(p->min_p, 0, 1))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "llm_sample: top_p %g and min_p %g must be in [0, 1]",
                          p->top_p, p->min_p);
  if (bad_float(p->repetition_penalty, 0, INFINITY) ||
      isinf(p->repetition_penalty))
    return am_error_array(AM_ERR_INVALID_ARG,
                          "llm_sample: repetition_penalty %g is not finite "
                          "and >= 0",
                          p->repetition_penalty);
  if (am_array_status(logits)) return NULL; /* propagates through the ops */
  if (am_array_ndim(logits) != 2 || !am_dtype_is_float(am_array_dtype(logits)))
    return am_error_array(
        am_array_ndim(logits) != 2 ? AM_ERR_SHAPE : AM_ERR_DTYPE,
        "llm_sample: logits must be float [B, V] (got %d "
        "dims, %s)",
        am_array_ndim(logits), am_dtype_name(am_array_dtype(logits)));
  bool pen = p->repetition_penalty != 0 && p->repetition_penalty != 1;
  if (pen && recent && !am_array_status(recent) &&
      (am_array_ndim(recent) != 2 || !am_dtype_is_int(am_array_dtype(recent))))
    return am_error_array(AM_ERR_SHAPE,
                          "llm_sample: recent must be integer [B, R] (got %d "
                          "dims, %s)",
                          am_array_ndim(recent),
                          am_dtype_name(am_array_dtype(recent)));
  return NULL;
}

am_array am_llm_sample(am_array logits, const am_llm_sampler *p, am_array key,
                       am_array recent) {
  am_array err = check_args(logits, p, recent);
  if (err) return err;
  bool greedy = p->temperature == 0;
  if (!greedy && key && !am_array_status(key) &&
      (am_array_dtype(key) != AM_U32 || am_array_ndim(key) != 1 ||
       am_array_dim(key, 0) != 2))
    return am_error_array(am_array_dtype(key) != AM_U32 ? AM_ERR_DTYPE
                                                        : AM_ERR_SHAPE,
                          "llm_sample: the key must be uint32 [2]");
  /* Intermediates belong to a scope of our own; the graph keeps what it
   * needs and the result's reference moves to the caller's scope. */
  am_scope_push();
  am_array x = filtered(logits, p, recent);
  if (!greedy) {
    am_array u = am_random_uniform_like(key, x, AM_F32);
    am_array g = am_neg(am_log(am_neg(am_log(u)))); /* Gumbel(0, 1) */
    x = am_add(x, g);
  }
  am_array r = am_keep(am_astype(am_argmax(x, -1, false), AM_I32));
  am_scope_pop();
  return am_scope_own(r);
}

am_array am_llm_sample_probs(am_array logits, const am_llm_sampler *p,
                             am_array recent) {
  am_array err = check_args(logits, p, recent);
  if (err) return err;
  am_scope_push();
  am_array x = filtered(logits, p, recent), r;
  if (p->temperature == 0) {              /* one-hot at the argmax */
    am_array at = am_argmax(x, -1, true); /* [B, 1] */
    r = am_put_along_axis(am_zeros_like(x, AM_F32), at, am_float(1), -1);
  } else {
    r = am_softmax(x, -1);
  }
  r = am_keep(r);
  am_scope_pop();
  return am_scope_own(r);
}

void am_llm_key_from_seed(uint64_t seed, uint32_t key[2]) {
  key[0] = (uint32_t)(seed >> 32);
  key[1] = (uint32_t)seed;
}

am_status am_llm_key_next(uint32_t state[2], uint32_t key[2]) {
  uint32_t w[4];
  am_scope_push();
  am_array k = am_array_new_data(state, (const int64_t[]){2}, 1, AM_U32);
  am_array b = am_random_bits(k, (const int64_t[]){2, 2}, 2);
  am_status s = am_array_read(b, AM_U32, w, 4);
  am_scope_pop();
  if (s) return s;
  state[0] = w[0];
  state[1] = w[1];
  key[0] = w[2];
  key[1] = w[3];
  return AM_OK;
}
