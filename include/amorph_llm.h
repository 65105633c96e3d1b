/*
 * amorph_llm.h — the model runtime on top of amorph: model configuration
 * (more to come: weights, tokenizer, generation).
 */
#ifndef AMORPH_LLM_H
#define AMORPH_LLM_H

#include "amorph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 *  Model configuration (config.json)
 * ====================================================================== */

typedef enum am_llm_arch {
  AM_ARCH_QWEN3_NEXT,  /* "qwen3_next": hybrid GDN + gated attention, MoE  */
  AM_ARCH_QWEN3_5_MOE, /* "qwen3_5_moe" (text part) / "qwen3_5_moe_text"   */
  AM_ARCH_QWEN3_MOE,   /* "qwen3_moe": attention only, MoE, no shared expert*/
} am_llm_arch;

typedef enum am_llm_layer_kind {
  AM_LAYER_LINEAR_ATTENTION, /* Gated DeltaNet */
  AM_LAYER_FULL_ATTENTION,
} am_llm_layer_kind;

/** How a linear layer is quantized (MLX "quantization" block). */
typedef struct am_llm_quant {
  int group_size;
  int bits;
  am_quant_mode mode;
} am_llm_quant;

/** A per-module override: `path` (e.g. "model.layers.0.mlp.gate") uses
 * `quant`, or stays unquantized when `quantized` is false. */
typedef struct am_llm_quant_override {
  char *path;
  bool quantized;
  am_llm_quant quant;
} am_llm_quant_override;

/** A parsed config. Defaults (field absent) are those of the transformers
 * config classes (Qwen3NextConfig, Qwen3_5MoeTextConfig, Qwen3MoeConfig);
 * each is noted below as next / 3.5 / moe where they differ. Required (no
 * default, since they fix every tensor shape): hidden_size,
 * num_hidden_layers, vocab_size, num_attention_heads. */
typedef struct am_llm_config {
  am_llm_arch arch;
  /** Prefix of the text model's weight keys in MLX layout: "language_model."
   * for qwen3_5_moe (vision-language wrapper), "" otherwise. */
  const char *weight_prefix;

  int64_t hidden_size, num_hidden_layers, vocab_size;
  int64_t intermediate_size; /* dense MLP: 5632 / 0 (none) / 6144           */
  int64_t moe_intermediate_size;           /* 512 / 512 / 768              */
  int64_t shared_expert_intermediate_size; /* 512 / 512 / 0 (no shared)    */
  int64_t num_experts;                     /* 512 / 256 / 128              */
  int64_t num_experts_per_tok;             /* 10 / 8 / 8                   */
  bool norm_topk_prob;                     /* true / true / false          */
  int64_t decoder_sparse_step;             /* 1 (3.5: every layer is MoE)  */
  int64_t n_mlp_only_layers;               /* [] */
  int64_t *mlp_only_layers;

  /** Per layer (num_hidden_layers entries): from "layer_types", else
   * linear except every full_attention_interval-th (default 4; qwen3_moe:
   * all full attention). */
  am_llm_layer_kind *layer_types;
  int64_t full_attention_interval; /* as given (0 when layer_types was) */
  /** Per layer: true for a sparse MoE block, false for a dense MLP of
   * intermediate_size (mlp_only_layers / decoder_sparse_step rule). */
  bool *layer_is_moe;

  int64_t num_attention_heads, num_key_value_heads; /* kv: 2 / 2 / 4       */
  int64_t head_dim; /* 256 / 256 / hidden_size / num_attention_heads      */
  int64_t linear_num_key_heads, linear_num_value_heads; /* 16, 32         */
  int64_t linear_key_head_dim, linear_value_head_dim;   /* 128, 128       */
  int64_t linear_conv_kernel_dim;                       /* 4              */

  double rms_norm_eps; /* 1e-6 */
  /** RoPE: top-level "rope_theta", else rope_parameters / rope_scaling
   * "rope_theta"; default 10000. partial_rotary_factor likewise (0.25 /
   * 0.25 / 1.0). rope_type "default" unless rope_scaling / rope_parameters
   * say otherwise (e.g. "yarn", with factor and
   * original_max_position_embeddings). */
  double rope_theta, partial_rotary_factor;
  char rope_type[24];
  double rope_factor;                            /* 1 when absent */
  int64_t rope_original_max_position_embeddings; /* 0 when absent */
  int64_t mrope_section[4]; /* qwen3_5: [11, 11, 10]; unused for text */
  int n_mrope_section;
  bool mrope_interleaved;
  bool tie_word_embeddings;        /* false */
  bool attention_bias;             /* false */
  int64_t max_position_embeddings; /* 32768 */
  int64_t bos_token_id;            /* -1 when absent */
  int64_t eos_token_ids[8];        /* "eos_token_id": an int or a list */
  int n_eos_token_ids;

  /** MLX "quantization" block; quantized is false without one. Older
   * conversions omit "mode" (affine). */
  bool quantized;
  am_llm_quant quant;
  int64_t n_quant_overrides;
  am_llm_quant_override *quant_overrides;
} am_llm_config;

/** Reads `path` (a config.json, or a directory holding one) into *out.
 * Errors name the file and the field: AM_ERR_IO (unreadable, malformed
 * JSON), AM_ERR_INVALID_ARG (a field missing, of the wrong type or out of
 * range), AM_ERR_UNSUPPORTED (an architecture amorph does not run). */
AM_API AM_NODISCARD am_status am_llm_config_load(const char *path,
                                                 am_llm_config **out);
/** The same from JSON text of `len` bytes; `name` labels messages. */
AM_API AM_NODISCARD am_status am_llm_config_parse(const char *json, size_t len,
                                                  const char *name,
                                                  am_llm_config **out);
AM_API void am_llm_config_free(am_llm_config *cfg);
/** How the linear layer at module `path` is quantized: its override, else
 * the default; NULL when it is not quantized (no quantization block, or an
 * override of false). Note mlx-lm also leaves a layer unquantized when its
 * checkpoint has no "<path>.scales": check the weights too. */
AM_API const am_llm_quant *am_llm_config_quant_for(const am_llm_config *cfg,
                                                   const char *path);
AM_API const char *am_llm_arch_name(am_llm_arch arch);

#ifdef __cplusplus
}
#endif
#endif
