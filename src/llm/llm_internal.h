/*
 * llm_internal.h — the model runtime's internal structures: weights as the
 * forward pass sees them (always MLX layout, whatever the checkpoint), the
 * forward graph and the in-graph sampler.
 */
#ifndef AM_LLM_INTERNAL_H
#define AM_LLM_INTERNAL_H

#include "amorph_llm.h"

/* libamorph's error setter (src/core/error.c). */
am_status am_set_error(am_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A linear map y = x W^T (W [.., out, in]), float or quantized (packed
 * [.., out, in * bits / 32] with scales/biases [.., out, in / group]).
 * Stacked experts carry a leading expert axis. */
typedef struct am_llm_linear {
  am_array w, scales, biases; /* biases: affine only */
  am_array bias;              /* [out] float32 (attention_bias), or NULL */
  bool quantized;
  am_llm_quant q;
  int64_t in, out; /* logical sizes */
} am_llm_linear;

/* Gated DeltaNet (qwen3next.md §3). Qwen3-Next packs q, k, v, z by key
 * head (qkvz) and b, a likewise (ba); Qwen3.5 keeps them flat (qkv, z, b,
 * a). */
typedef struct am_llm_gdn {
  am_llm_linear qkvz, ba;     /* qwen3_next   */
  am_llm_linear qkv, z, b, a; /* qwen3_5_moe  */
  am_array conv_w;            /* [C, K, 1] depthwise                  */
  am_array A_log, dt_bias;    /* [Hv] float32                         */
  am_array norm_w;            /* [Dv] gated RMSNorm (not zero-centred) */
  am_llm_linear out;
} am_llm_gdn;

/* Full attention (§4): q_proj also yields the output gate for the hybrid
 * models (not for qwen3_moe). */
typedef struct am_llm_attn {
  am_llm_linear q, k, v, o;
  am_array q_norm, k_norm; /* [head_dim] */
} am_llm_attn;

typedef struct am_llm_mlp {
  am_llm_linear gate, up, down;
} am_llm_mlp;

/* Sparse MoE (§5): router, stacked experts (SwitchGLU), optional shared
 * expert scaled by a sigmoid gate. */
typedef struct am_llm_moe {
  am_llm_linear router;
  am_llm_linear gate, up, down; /* [E, out, in] */
  bool has_shared;
  am_llm_mlp shared;
  am_llm_linear shared_gate; /* [1, D] */
} am_llm_moe;

typedef struct am_llm_layer {
  am_llm_layer_kind kind;
  am_llm_gdn gdn;
  am_llm_attn attn;
  am_array in_norm, post_norm; /* [D] float32, +1 already applied */
  bool is_moe;
  am_llm_moe moe;
  am_llm_mlp mlp;
} am_llm_layer;

struct am_llm_model {
  am_llm_config *cfg;
  am_dtype dtype;   /* activations and caches */
  am_device device; /* where its weights, state and steps live */
  am_llm_layer *layers;
  am_llm_linear embed; /* [V, D] (w or packed) */
  /* The embedding's scales/biases as its lookup uses them: float32 copies
   * (dequantize would round s*q to their bfloat16 dtype, as MLX's
   * dequantize does, then again to the activation dtype; the matmuls
   * compute s*q + b in float32, and so does the lookup, rounding once). */
  am_array embed_scales, embed_biases;
  am_array final_norm;
  am_llm_linear lm_head; /* the embedding when tied */
  am_kernel gated_delta;
  bool owns_arrays; /* the weights are references of the model's own */
  /* every weight under its MLX-layout name (handles borrowed from above) */
  int64_t n_named, cap_named;
  char **names;
  am_array *named;
  am_llm_quant *named_q; /* for "<path>.scales": the linear's quantization */
  am_llm_model_info info;
};

/* A deep copy of a config (src/llm/config.c); NULL on OOM. */
am_llm_config *am_llm_config_clone(const am_llm_config *g);

/* Sizes the forward pass uses, from the config. */
typedef struct am_llm_dims {
  int64_t D, V, Hq, Hkv, hd, rot; /* attention                  */
  int64_t Hk, Hv, Dk, Dv, K, C;   /* DeltaNet: C = conv channels */
  int64_t E, topk;
} am_llm_dims;
am_llm_dims am_llm_dims_of(const am_llm_config *c);

/* Per-sequence state arrays in the order the compiled step takes them:
 * for each layer, attention: K [B, Hkv, cap, hd], V [B, Hkv, cap, hd];
 * DeltaNet: conv [B, K-1, C], ssm [B, Hv, Dv, Dk] float32. */
int am_llm_n_state(const am_llm_model *m);

/* The forward pass as a graph. tokens [B, T] int32; offset 0-d int32 (the
 * position of tokens[:, 0]); state: am_llm_n_state arrays (read);
 * new_state receives as many. Returns logits [B, V] of the last position
 * (float32), or [B, T, V] with all_logits. */
am_array am_llm_forward(const am_llm_model *m, am_array tokens, am_array offset,
                        const am_array *state, am_array *new_state,
                        bool all_logits);

/* y = x W^T for a (quantized or float) linear. */
am_array am_llm_linear_apply(const am_llm_linear *l, am_array x);

#endif
