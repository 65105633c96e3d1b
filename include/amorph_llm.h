/*
 * amorph_llm.h — the model runtime on top of amorph: model configuration,
 * weights (MLX or Hugging Face checkpoints), sessions that run the compiled
 * decode step with sampling, and checkpoint conversion. The tokenizer is in
 * amorph_tokenizer.h.
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
  int64_t num_experts;         /* 512 / 256 / 128 (or "num_local_experts")   */
  int64_t num_experts_per_tok; /* 10 / 8 / 8                   */
  bool norm_topk_prob;         /* true / true / false          */
  int64_t decoder_sparse_step; /* 1 (3.5: every layer is MoE)  */
  int64_t n_mlp_only_layers;   /* [] */
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

/* ======================================================================
 *  Models
 *
 *  A model is a config plus its weights, validated against the shapes the
 *  config implies (a missing tensor or a wrong shape names the tensor and
 *  the file). Checkpoints in MLX layout (mlx-community, quantized or not)
 *  are used as stored (memory-mapped, zero-copy); raw Hugging Face ones get
 *  mlx-lm's sanitize rules at load (+1 on zero-centred norms, conv weight
 *  layout, experts stacked) and may be quantized on load.
 * ====================================================================== */

typedef struct am_llm_model am_llm_model;

typedef struct am_llm_load_opts {
  /** Dtype of activations and caches: 0 (AM_BOOL) picks float32, else
   * AM_F32, AM_BF16 or AM_F16. Weights stay in their stored dtype. */
  am_dtype dtype;
  /** Quantize float weights at load with the rules of am_llm_convert. */
  bool quantize;
  am_llm_quant quant; /* for quantize: bits/group/mode (0: 4-bit g64 affine) */
  /** Where the weights live and every step runs: AM_DEVICE_CPU (0), or
   * AM_DEVICE_CUDA after am_cuda_init. On the GPU each session's decode
   * step is captured as a CUDA graph and replayed. Random models draw
   * their weights on the device (different values from the CPU's). */
  am_device device;
} am_llm_load_opts;

/** Loads the model in directory `dir` (config.json, model.safetensors or
 * a sharded index). opts may be NULL (defaults). Errors name the file,
 * tensor or field: AM_ERR_IO, AM_ERR_INVALID_ARG, AM_ERR_SHAPE,
 * AM_ERR_UNSUPPORTED. */
AM_API AM_NODISCARD am_status am_llm_model_load(const char *dir,
                                                const am_llm_load_opts *opts,
                                                am_llm_model **out);
/** A model with random weights for `cfg` (copied), quantized as
 * cfg->quantization says: for tests and benchmarks. */
AM_API AM_NODISCARD am_status am_llm_model_random(const am_llm_config *cfg,
                                                  uint64_t seed,
                                                  const am_llm_load_opts *opts,
                                                  am_llm_model **out);
AM_API void am_llm_model_free(am_llm_model *m);
AM_API const am_llm_config *am_llm_model_config(const am_llm_model *m);

typedef struct am_llm_model_info {
  int64_t n_params;        /* every weight (quantized ones unpacked)       */
  int64_t n_active_params; /* used per token (top-k experts, no embedding) */
  int64_t weight_bytes;    /* as stored                                    */
  int64_t active_bytes;    /* weight bytes read per decoded token          */
  int64_t state_bytes;     /* recurrent + conv state per sequence          */
  int64_t kv_bytes_per_token;
  bool hf_layout; /* raw HF checkpoint, sanitized at load         */
  char quant[64]; /* e.g. "affine 4-bit g64 (8-bit: 24 layers)"  */
} am_llm_model_info;
AM_API am_llm_model_info am_llm_model_get_info(const am_llm_model *m);

/* ======================================================================
 *  Sessions: generation state and the compiled decode step
 *
 *  A session owns one sequence's caches (KV for attention layers, conv and
 *  recurrent state for DeltaNet layers) and one compiled function — every
 *  layer, final norm, lm_head and sampling — traced once (shapeless) and
 *  replayed for every token and prompt chunk length. Caches are explicit
 *  state in and out of it (donated buffers, updated in place).
 * ====================================================================== */

typedef struct am_llm_session am_llm_session;

/** Sampling, applied in this order: repetition penalty, temperature, top-k,
 * top-p, min-p, then a draw. temperature 0 is greedy (argmax). */
typedef struct am_llm_sampler {
  float temperature;        /* 0: greedy                                  */
  int top_k;                /* 0: off                                     */
  float top_p;              /* 0 or 1: off                                */
  float min_p;              /* 0: off                                     */
  float repetition_penalty; /* 0 or 1: off                                */
  int repetition_context;   /* tokens the penalty looks back on (0: 20)   */
  uint64_t seed;
} am_llm_sampler;

typedef struct am_llm_session_opts {
  am_llm_sampler sampler;
  int prefill_chunk;   /* tokens per prefill call (0: 512)              */
  int64_t max_context; /* 0: the config's max_position_embeddings       */
  bool all_logits;     /* am_llm_session_feed returns every position's  */
  bool no_compile;     /* run the step eagerly (for comparison)         */
} am_llm_session_opts;

AM_API AM_NODISCARD am_status am_llm_session_new(am_llm_model *m,
                                                 const am_llm_session_opts *o,
                                                 am_llm_session **out);
AM_API void am_llm_session_free(am_llm_session *s);
/** Feeds n >= 1 tokens (a prompt, or the last sampled token) at the
 * current position; *next receives the token sampled from the last
 * position's logits. logits (may be NULL) receives vocab_size floats of
 * that position — or n * vocab_size, one row per position, with
 * all_logits. */
AM_API AM_NODISCARD am_status am_llm_session_feed(am_llm_session *s,
                                                  const int32_t *tokens,
                                                  int64_t n, int32_t *next,
                                                  float *logits);
/** Back to position 0 (caches cleared); the compiled step is kept. */
AM_API void am_llm_session_reset(am_llm_session *s);
AM_API int64_t am_llm_session_position(const am_llm_session *s);
AM_API am_compile_stats am_llm_session_stats(const am_llm_session *s);

/* ======================================================================
 *  Conversion
 * ====================================================================== */

/** Progress: `done` of `total` tensors written, `name` the current one. */
typedef void (*am_llm_progress_fn)(void *user, int64_t done, int64_t total,
                                   const char *name);
/** Converts the checkpoint in `src` (HF or MLX layout) to MLX layout in
 * `dst` (created if needed): sanitized, quantized with `quant` unless it
 * is NULL (mlx-lm's convert rules: linear layers and the embedding whose
 * input dim divides the group size; router gates at 8 bits), with config.json
 * (quantization block added) and the tokenizer files copied. */
AM_API AM_NODISCARD am_status am_llm_convert(const char *src, const char *dst,
                                             const am_llm_quant *quant,
                                             am_llm_progress_fn progress,
                                             void *user);

#ifdef __cplusplus
}
#endif
#endif
