/*
 * session.c — one sequence's generation state and the compiled step.
 *
 * The step (embedding, every layer, final norm, lm_head, sampling) is one
 * function compiled shapeless with constant literals: it is traced at the
 * first call and replayed for every later one, whatever the chunk length
 * T, the cache capacity or the position. Its inputs:
 *   tokens [1, T] int32, offset 0-d int32, key uint32 [2] (sampling noise),
 *   recent [1, R] int32 (repetition window, -1 = empty),
 *   then the state: per layer K, V [1, Hkv, cap, hd] (attention) or conv
 *   [1, K-1, C], ssm [1, Hv, Dv, Dk] (DeltaNet),
 * and its outputs: next token [1] int32, logits, then the new state. The
 * state is donated: KV rows are written in place, and the caches only
 * change shape when the session grows their capacity (in steps of 256
 * positions, by padding), which costs a replay with new shapes, not a
 * trace.
 */
#include "llm_internal.h"
#include "sample.h"

#include <stdlib.h>
#include <string.h>

#define CAP_STEP 256
#define N_IN_FIXED 4 /* tokens, offset, key, recent */

struct am_llm_session {
  am_llm_model *m;
  am_llm_session_opts o;
  am_compiled step;
  int n_state;
  am_array *state; /* owned */
  int64_t pos, cap, max_ctx;
  uint32_t key_state[2]; /* sampling keys: see run_chunk */
  int R;                 /* repetition window */
  int32_t *recent;       /* ring of the last R tokens */
  int32_t *rec;          /* the window in order, as the step's input */
  am_array *io;          /* a call's inputs, then its outputs (scratch) */
  int64_t n_seen;
};

static am_status step_fn(void *ctx, const am_array *in, int n_in, am_array *out,
                         int n_out) {
  am_llm_session *s = ctx;
  (void)n_in, (void)n_out;
  bool all = s->o.all_logits;
  am_array logits =
      am_llm_forward(s->m, in[0], in[1], in + N_IN_FIXED, out + 2, all);
  am_array last =
      all ? am_squeeze(am_slice_axis(logits, 1, -1, AM_END, 1), (int[]){1}, 1)
          : logits; /* [B, V] */
  out[0] = am_llm_sample(last, &s->o.sampler, in[2], in[3]);
  out[1] = logits;
  for (int i = 0; i < 2 + s->n_state; i++)
    if (am_array_status(out[i])) {
      am_status st = am_array_status(out[i]);
      am_set_error(st, "%s", am_array_error(out[i]));
      return st;
    }
  return AM_OK;
}

/* Each of the three below runs with the model's device as the thread's
 * default (the state's zeros, the step's nodes without inputs); the
 * *_here versions do the work. */

/* Fresh state at capacity cap. */
static am_status state_init_here(am_llm_session *s, int64_t cap) {
  const am_llm_model *m = s->m;
  am_llm_dims d = am_llm_dims_of(m->cfg);
  for (int i = 0; i < s->n_state; i++) {
    am_array_free(s->state[i]);
    s->state[i] = NULL;
  }
  for (int64_t l = 0; l < m->cfg->num_hidden_layers; l++) {
    am_array *st = s->state + 2 * l;
    if (m->layers[l].kind == AM_LAYER_FULL_ATTENTION) {
      int64_t kv[4] = {1, d.Hkv, cap, d.hd};
      st[0] = am_zeros(kv, 4, m->dtype);
      st[1] = am_zeros(kv, 4, m->dtype);
    } else {
      st[0] = am_zeros((int64_t[]){1, d.K - 1, d.C}, 3, m->dtype);
      st[1] = am_zeros((int64_t[]){1, d.Hv, d.Dv, d.Dk}, 4, AM_F32);
    }
  }
  s->cap = cap;
  return am_eval(s->state, s->n_state);
}

static am_status state_init(am_llm_session *s, int64_t cap) {
  am_device prev = am_default_device();
  am_set_default_device(s->m->device);
  am_status st = state_init_here(s, cap);
  am_set_default_device(prev);
  return st;
}

/* Grows the KV caches (zero-padded) to hold `need` positions. */
static am_status ensure_capacity_here(am_llm_session *s, int64_t need) {
  if (need <= s->cap) return AM_OK;
  int64_t cap = (need + CAP_STEP - 1) / CAP_STEP * CAP_STEP;
  if (cap > s->max_ctx) cap = s->max_ctx;
  for (int64_t l = 0; l < s->m->cfg->num_hidden_layers; l++) {
    if (s->m->layers[l].kind != AM_LAYER_FULL_ATTENTION) continue;
    for (int j = 0; j < 2; j++) {
      am_array *x = &s->state[2 * l + j];
      am_array y = am_pad(*x, (int64_t[]){0, 0, 0, 0},
                          (int64_t[]){0, 0, cap - s->cap, 0}, 4, 0.0);
      am_array_free(*x);
      *x = y;
    }
  }
  s->cap = cap;
  return am_eval(s->state, s->n_state);
}

static am_status ensure_capacity(am_llm_session *s, int64_t need) {
  am_device prev = am_default_device();
  am_set_default_device(s->m->device);
  am_status st = ensure_capacity_here(s, need);
  am_set_default_device(prev);
  return st;
}

am_status am_llm_session_new(am_llm_model *m, const am_llm_session_opts *o,
                             am_llm_session **out) {
  if (!out)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_session_new: out is NULL");
  *out = NULL;
  if (!m)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "am_llm_session_new: model is NULL");
  am_llm_session *s = calloc(1, sizeof *s);
  if (!s) return am_set_error(AM_ERR_OOM, "am_llm_session_new: out of memory");
  s->m = m;
  if (o) s->o = *o;
  if (s->o.prefill_chunk <= 0) s->o.prefill_chunk = 512;
  const am_llm_sampler *p = &s->o.sampler;
  if (p->temperature < 0 || p->top_p < 0 || p->top_p > 1 || p->min_p < 0 ||
      p->min_p > 1 || p->top_k < 0 || p->repetition_penalty < 0 ||
      p->repetition_context < 0) {
    free(s);
    return am_set_error(AM_ERR_INVALID_ARG,
                        "am_llm_session_new: sampler out of range (temperature "
                        ">= 0, 0 <= top_p, min_p <= 1, top_k >= 0, penalty >= "
                        "0)");
  }
  s->max_ctx =
      s->o.max_context > 0 ? s->o.max_context : m->cfg->max_position_embeddings;
  if (s->max_ctx <= 0) s->max_ctx = 32768;
  am_llm_key_from_seed(s->o.sampler.seed, s->key_state);
  s->R = s->o.sampler.repetition_context > 0 ? s->o.sampler.repetition_context
                                             : 20;
  s->n_state = am_llm_n_state(m);
  s->state = calloc((size_t)s->n_state, sizeof *s->state);
  s->recent = malloc((size_t)s->R * sizeof *s->recent);
  s->rec = malloc((size_t)s->R * sizeof *s->rec);
  s->io = malloc((size_t)(N_IN_FIXED + 2 * s->n_state + 2) * sizeof *s->io);
  am_compile_options co = {
      .shapeless = true, .n_state = s->n_state, .constant_literals = true};
  bool ok = s->state && s->recent && s->rec && s->io;
  if (ok && !s->o.no_compile)
    s->step =
        am_compile(step_fn, s, N_IN_FIXED + s->n_state, 2 + s->n_state, &co);
  am_status st = AM_OK;
  if (!ok || (!s->o.no_compile && !s->step))
    st = am_set_error(AM_ERR_OOM, "am_llm_session_new: out of memory");
  if (!st) st = state_init(s, s->max_ctx < CAP_STEP ? s->max_ctx : CAP_STEP);
  if (st) {
    am_llm_session_free(s);
    return st;
  }
  *out = s;
  return AM_OK;
}

void am_llm_session_free(am_llm_session *s) {
  if (!s) return;
  for (int i = 0; s->state && i < s->n_state; i++)
    am_array_free(s->state[i]);
  free(s->state);
  free(s->recent);
  free(s->rec);
  free(s->io);
  am_compiled_free(s->step);
  free(s);
}

void am_llm_session_reset(am_llm_session *s) {
  if (!s) return;
  s->pos = 0;
  s->n_seen = 0;
  am_llm_key_from_seed(s->o.sampler.seed, s->key_state);
  if (state_init(s, s->cap)) { /* keeps the error message; the next feed */
    for (int i = 0; i < s->n_state; i++) { /* re-creates the state */
      am_array_free(s->state[i]);
      s->state[i] = NULL;
    }
  }
}

int64_t am_llm_session_position(const am_llm_session *s) {
  return s ? s->pos : 0;
}

am_compile_stats am_llm_session_stats(const am_llm_session *s) {
  am_compile_stats z = {0};
  return s && s->step ? am_compiled_stats(s->step) : z;
}

/* Runs one chunk of T tokens at s->pos. */
static am_status run_chunk_here(am_llm_session *s, const int32_t *tokens,
                                int64_t T, am_array *next, am_array *logits) {
  int n_in = N_IN_FIXED + s->n_state;
  am_array *inp = s->io, *out = s->io + n_in; /* scratch of the session */
  /* sampling key: MLX's sequence after mx.random.seed(seed), one split
   * per call (mlx-lm draws once per step the same way) */
  uint32_t key[2];
  am_status st = am_llm_key_next(s->key_state, key);
  if (st) return st;
  for (int i = 0; i < s->R; i++) /* oldest first; -1 = empty */
    s->rec[i] =
        i < s->R - s->n_seen ? -1 : s->recent[(s->n_seen - s->R + i) % s->R];
  inp[0] = am_array_new_data(tokens, (int64_t[]){1, T}, 2, AM_I32);
  inp[1] = am_scalar((double)s->pos, AM_I32);
  inp[2] = am_array_new_data(key, (int64_t[]){2}, 1, AM_U32);
  inp[3] = am_array_new_data(s->rec, (int64_t[]){1, s->R}, 2, AM_I32);
  memcpy(inp + N_IN_FIXED, s->state, (size_t)s->n_state * sizeof *inp);
  if (s->step) {
    st = am_compiled_call(s->step, inp, out); /* takes the state refs */
  } else {
    am_scope_push();
    st = step_fn(s, inp, n_in, out, 2 + s->n_state);
    for (int i = 0; i < 2 + s->n_state; i++)
      out[i] = am_keep(out[i]);
    am_scope_pop();
    if (!st) st = am_eval(out, 2 + s->n_state);
    if (st)
      for (int i = 0; i < 2 + s->n_state; i++)
        am_array_free(out[i]);
    for (int i = 0; i < s->n_state; i++)
      am_array_free(inp[N_IN_FIXED + i]);
  }
  for (int i = 0; i < N_IN_FIXED; i++)
    am_array_free(inp[i]);
  if (st) { /* the state was consumed: start over on the next feed */
    for (int i = 0; i < s->n_state; i++)
      s->state[i] = NULL;
    return st;
  }
  memcpy(s->state, out + 2, (size_t)s->n_state * sizeof *out);
  *next = out[0];
  *logits = out[1];
  return AM_OK;
}

static am_status run_chunk(am_llm_session *s, const int32_t *tokens, int64_t T,
                           am_array *next, am_array *logits) {
  am_device prev = am_default_device();
  am_set_default_device(s->m->device);
  am_status st = run_chunk_here(s, tokens, T, next, logits);
  am_set_default_device(prev);
  return st;
}

am_status am_llm_session_feed(am_llm_session *s, const int32_t *tokens,
                              int64_t n, int32_t *next, float *logits) {
  if (!s || !tokens || !next || n < 1)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "am_llm_session_feed: session, tokens and next are "
                        "required and n >= 1 (got n = %lld)",
                        (long long)n);
  const am_llm_config *c = s->m->cfg;
  for (int64_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
      return am_set_error(AM_ERR_INVALID_ARG,
                          "am_llm_session_feed: token %lld is %d, outside the "
                          "vocabulary [0, %lld)",
                          (long long)i, tokens[i], (long long)c->vocab_size);
  if (s->pos + n > s->max_ctx)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "am_llm_session_feed: %lld tokens at position %lld "
                        "exceed the context of %lld",
                        (long long)n, (long long)s->pos, (long long)s->max_ctx);
  am_status st = AM_OK;
  if (!s->state[0]) st = state_init(s, s->cap); /* after a failed call */
  int64_t V = c->vocab_size;
  for (int64_t i = 0; i < n && !st; i += s->o.prefill_chunk) {
    int64_t T = n - i < s->o.prefill_chunk ? n - i : s->o.prefill_chunk;
    st = ensure_capacity(s, s->pos + T);
    if (st) break;
    am_array nx = NULL, lg = NULL;
    st = run_chunk(s, tokens + i, T, &nx, &lg);
    if (st) break;
    s->pos += T;
    for (int64_t j = 0; j < T; j++)
      s->recent[s->n_seen++ % s->R] = tokens[i + j];
    bool last = i + T >= n;
    if (last) st = am_array_read(nx, AM_I32, next, 1);
    if (!st && logits && s->o.all_logits)
      st = am_array_read(lg, AM_F32, logits + i * V, T * V);
    else if (!st && logits && last)
      st = am_array_read(lg, AM_F32, logits, V);
    am_array_free(nx);
    am_array_free(lg);
  }
  return st;
}
