/*
 * forward.c — the model as a graph: qwen3next.md §2–5 written with amorph
 * ops. Every size below is the config's or comes from an input's shape at
 * run time, so one trace replays for any batch, chunk length and cache
 * capacity (the session compiles this with constant_literals).
 *
 * Shapes: B batch, T tokens in this call, D hidden; the residual stream x
 * is [B, T, D] in the model's activation dtype.
 */
#include "llm_internal.h"

#include <math.h>
#include <string.h>

am_array am_llm_linear_apply(const am_llm_linear *l, am_array x) {
  am_array y = l->quantized
                   ? am_quantized_matmul(x, l->w, l->scales, l->biases, true,
                                         l->q.group_size, l->q.bits, l->q.mode)
                   : am_matmul(x, am_swapaxes(l->w, -1, -2));
  return l->bias ? am_add(y, l->bias) : y;
}
#define LINEAR(l, x) am_llm_linear_apply(&(l), (x))

static am_array cast(am_array x, am_dtype t) {
  return am_array_dtype(x) == t ? x : am_astype(x, t);
}

/* Experts for a batch of rows: x [.., D] with rhs expert indices
 * inds [.., k] -> [.., k, N]: gathered (quantized) matmuls; the kernels
 * group rows by expert, so each selected expert is read once. */
static am_array experts(const am_llm_linear *l, am_array x, am_array inds) {
  /* x [.., 1, 1, D]: batch [.., 1] broadcasts against inds [.., k] */
  am_array y;
  if (l->quantized)
    y = am_gather_qmm(x, l->w, l->scales, l->biases, NULL, inds, true,
                      l->q.group_size, l->q.bits, l->q.mode, false);
  else
    y = am_gather_mm(x, am_swapaxes(l->w, -1, -2), NULL, inds, false);
  return y; /* [.., k, 1, N] */
}

static am_array swiglu(am_array gate, am_array up) {
  return am_mul(am_silu(gate), up);
}

static am_array mlp(const am_llm_mlp *m, am_array x) {
  return LINEAR(m->down, swiglu(LINEAR(m->gate, x), LINEAR(m->up, x)));
}

/* §5: softmax router (float32), top-k, optional renormalisation,
 * SwitchGLU over the chosen experts, weighted sum, shared expert. */
static am_array moe(const am_llm_model *m, const am_llm_moe *e, am_array x) {
  const am_llm_config *c = m->cfg;
  int k = (int)c->num_experts_per_tok;
  am_array p = am_softmax(cast(LINEAR(e->router, x), AM_F32), -1); /* [B,T,E] */
  am_array inds = am_slice_axis(am_argpartition(p, -k, -1), -1, -k, AM_END, 1);
  am_array scores = am_take_along_axis(p, inds, -1); /* [B, T, k] */
  if (c->norm_topk_prob)
    scores = am_div(scores, am_sum(scores, (int[]){-1}, 1, true));
  am_array xe = am_expand_dims(x, (int[]){-2, -3}, 2); /* [B, T, 1, 1, D] */
  am_array h = swiglu(experts(&e->gate, xe, inds), experts(&e->up, xe, inds));
  am_array y = experts(&e->down, h, inds); /* [B, T, k, 1, D] */
  y = am_squeeze(y, (int[]){-2}, 1);       /* [B, T, k, D]    */
  scores = am_expand_dims(cast(scores, am_array_dtype(y)), (int[]){-1}, 1);
  y = am_sum(am_mul(y, scores), (int[]){-2}, 1, false); /* [B, T, D] */
  if (e->has_shared) {
    am_array g = am_sigmoid(LINEAR(e->shared_gate, x)); /* [B, T, 1] */
    y = am_add(y, am_mul(g, mlp(&e->shared, x)));
  }
  return cast(y, m->dtype);
}

/* §3: Gated DeltaNet. conv [B, K-1, C] and ssm [B, Hv, Dv, Dk] are this
 * layer's state; their successors are written to new_conv / new_ssm. */
static am_array gdn(const am_llm_model *m, const am_llm_gdn *g, am_array x,
                    am_array conv, am_array ssm, am_array *new_conv,
                    am_array *new_ssm) {
  const am_llm_config *c = m->cfg;
  am_llm_dims d = am_llm_dims_of(c);
  int64_t r = d.Hv / d.Hk; /* value heads per key head */
  am_array q, k, v, z, b, a;
  if (c->arch == AM_ARCH_QWEN3_NEXT) {
    /* grouped by key head: [q Dk | k Dk | v r*Dv | z r*Dv] per head */
    am_array qkvz = am_unflatten(LINEAR(g->qkvz, x), -1, (int64_t[]){d.Hk, -1},
                                 2); /* [B,T,Hk,.] */
    am_array p[4];
    (void)am_split_at(qkvz, (int64_t[]){d.Dk, 2 * d.Dk, 2 * d.Dk + r * d.Dv}, 3,
                      -1, p);
    q = am_flatten(p[0], -2, -1); /* [B, T, Hk*Dk] */
    k = am_flatten(p[1], -2, -1);
    v = am_flatten(p[2], -2, -1); /* [B, T, Hv*Dv] (head 2g+i) */
    z = am_unflatten(am_flatten(p[3], -2, -1), -1, (int64_t[]){d.Hv, d.Dv}, 2);
    am_array ba =
        am_unflatten(LINEAR(g->ba, x), -1, (int64_t[]){d.Hk, 2 * r}, 2);
    am_array bp[2];
    (void)am_split(ba, 2, -1, bp);
    b = am_flatten(bp[0], -2, -1); /* [B, T, Hv] */
    a = am_flatten(bp[1], -2, -1);
  } else {
    am_array qkv = LINEAR(g->qkv, x); /* already [q | k | v] */
    am_array p[3];
    (void)am_split_at(qkv, (int64_t[]){d.Hk * d.Dk, 2 * d.Hk * d.Dk}, 2, -1, p);
    q = p[0], k = p[1], v = p[2];
    z = am_unflatten(LINEAR(g->z, x), -1, (int64_t[]){d.Hv, d.Dv}, 2);
    b = LINEAR(g->b, x);
    a = LINEAR(g->a, x);
  }

  /* Causal depthwise conv over [state; u]; the new state is the last
   * K-1 rows of that window. */
  am_array u = am_concatenate((am_array[]){q, k, v}, 3, -1); /* [B, T, C] */
  am_array win = am_concatenate((am_array[]){cast(conv, am_array_dtype(u)), u},
                                2, 1); /* [B, K-1+T, C] */
  /* written into the old state's buffer (donated in a compiled step), so
   * that the state keeps one address from step to step: a captured CUDA
   * graph then replays on it without copying it in */
  *new_conv = am_slice_update(
      conv, cast(am_slice_axis(win, 1, -(d.K - 1), AM_END, 1), m->dtype),
      (int64_t[]){0, 0, 0}, (int64_t[]){AM_END, AM_END, AM_END},
      (int64_t[]){1, 1, 1}, 3);
  am_array cv = am_silu(am_conv1d(win, g->conv_w, 1, 0, 1, (int)d.C));
  am_array p[3];
  (void)am_split_at(cv, (int64_t[]){d.Hk * d.Dk, 2 * d.Hk * d.Dk}, 2, -1, p);
  q = am_unflatten(cast(p[0], AM_F32), -1, (int64_t[]){d.Hk, d.Dk}, 2);
  k = am_unflatten(cast(p[1], AM_F32), -1, (int64_t[]){d.Hk, d.Dk}, 2);
  v = am_unflatten(cast(p[2], AM_F32), -1, (int64_t[]){d.Hv, d.Dv}, 2);

  /* q, k: l2-normalised (HF's form, eps inside the root), q scaled by
   * Dk^-1/2; gates per value head in float32. */
  q = am_mul(am_l2_normalize(q, -1, 1e-6f), am_float(1.0 / sqrt((double)d.Dk)));
  k = am_l2_normalize(k, -1, 1e-6f);
  am_array beta = am_sigmoid(cast(b, AM_F32)); /* [B, T, Hv] */
  am_array sp = am_softplus(am_add(cast(a, AM_F32), g->dt_bias));
  am_array decay = am_exp(am_neg(am_mul(am_exp(g->A_log), sp)));

  am_array io[6] = {q, k, v, decay, beta, ssm}, out[2];
  (void)am_kernel_apply(m->gated_delta, io, 6, NULL, out);
  *new_ssm = out[1];
  am_array y = am_rms_norm_gated(out[0], g->norm_w, cast(z, AM_F32),
                                 (float)c->rms_norm_eps); /* [B,T,Hv,Dv] */
  return LINEAR(g->out, cast(am_flatten(y, -2, -1), m->dtype));
}

/* §4: attention over the cache. kc, vc [B, Hkv, cap, hd] hold positions
 * [0, offset); this call's keys go to [offset, offset + T) in place. */
static am_array attention(const am_llm_model *m, const am_llm_attn *at,
                          am_array x, am_array offset, am_array kc, am_array vc,
                          am_array *new_k, am_array *new_v) {
  const am_llm_config *c = m->cfg;
  am_llm_dims d = am_llm_dims_of(c);
  bool gated = c->arch != AM_ARCH_QWEN3_MOE;
  am_array q = am_unflatten(LINEAR(at->q, x), -1,
                            (int64_t[]){d.Hq, gated ? 2 * d.hd : d.hd}, 2);
  am_array gate = NULL;
  if (gated) { /* per head: [query hd | gate hd] */
    am_array p[2];
    (void)am_split(q, 2, -1, p);
    q = p[0];
    gate = am_flatten(p[1], -2, -1); /* [B, T, Hq*hd] */
  }
  am_array k = am_unflatten(LINEAR(at->k, x), -1, (int64_t[]){d.Hkv, d.hd}, 2);
  am_array v = am_unflatten(LINEAR(at->v, x), -1, (int64_t[]){d.Hkv, d.hd}, 2);
  float eps = (float)c->rms_norm_eps;
  q = am_swapaxes(am_rms_norm(q, at->q_norm, eps), 1, 2); /* [B,Hq,T,hd] */
  k = am_swapaxes(am_rms_norm(k, at->k_norm, eps), 1, 2);
  v = am_swapaxes(v, 1, 2);
  float base = (float)c->rope_theta;
  q = cast(am_rope(q, (int)d.rot, false, base, 1.0f, offset), m->dtype);
  k = cast(am_rope(k, (int)d.rot, false, base, 1.0f, offset), m->dtype);

  am_array start = am_reshape(offset, (int64_t[]){1}, 1);
  *new_k = am_dynamic_slice_update(kc, k, start, (int[]){2}, 1);
  *new_v = am_dynamic_slice_update(vc, cast(v, m->dtype), start, (int[]){2}, 1);
  /* causal with q_offset: slots past offset + T are never read */
  am_array o = am_sdpa(q, *new_k, *new_v, (float)(1.0 / sqrt((double)d.hd)),
                       NULL, true, offset);     /* [B, Hq, T, hd] */
  o = am_flatten(am_swapaxes(o, 1, 2), -2, -1); /* [B, T, Hq*hd] */
  if (gate) o = am_mul(o, am_sigmoid(gate));
  return LINEAR(at->o, cast(o, m->dtype));
}

am_array am_llm_forward(const am_llm_model *m, am_array tokens, am_array offset,
                        const am_array *state, am_array *new_state,
                        bool all_logits) {
  const am_llm_config *c = m->cfg;
  float eps = (float)c->rms_norm_eps;
  const am_llm_linear *e = &m->embed;
  am_array x = e->quantized
                   ? am_quantized_embedding(
                         e->w, m->embed_scales, m->embed_biases, tokens,
                         e->q.group_size, e->q.bits, e->q.mode, m->dtype)
                   : cast(am_embedding(e->w, tokens), m->dtype); /* [B,T,D] */
  for (int64_t i = 0; i < c->num_hidden_layers; i++) {
    const am_llm_layer *y = &m->layers[i];
    const am_array *s = state + 2 * i;
    am_array *ns = new_state + 2 * i;
    am_array h = am_rms_norm(x, y->in_norm, eps);
    if (y->kind == AM_LAYER_LINEAR_ATTENTION)
      h = gdn(m, &y->gdn, h, s[0], s[1], &ns[0], &ns[1]);
    else
      h = attention(m, &y->attn, h, offset, s[0], s[1], &ns[0], &ns[1]);
    x = am_add(x, cast(h, m->dtype));
    h = am_rms_norm(x, y->post_norm, eps);
    h = y->is_moe ? moe(m, &y->moe, h) : mlp(&y->mlp, h);
    x = am_add(x, cast(h, m->dtype));
  }
  if (!all_logits) x = am_slice_axis(x, 1, -1, AM_END, 1); /* [B, 1, D] */
  x = am_rms_norm(x, m->final_norm, eps);
  am_array logits = cast(LINEAR(m->lm_head, x), AM_F32);
  return all_logits ? logits : am_squeeze(logits, (int[]){1}, 1);
}
