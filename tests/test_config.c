/*
 * test_config.c — config.json parsing against fixtures written by
 * scripts/make_io_fixtures.py: real configs (values from the spec, section
 * 1 of qwen3next.md), the transformers v5 rewrite, mlx-community
 * quantization blocks, defaults, and broken files.
 */
#include "test.h"

#include <amorph_llm.h>

#define CFG "data/config/"

static bool has(const char *msg, const char *sub) {
  return strstr(msg, sub) != NULL;
}

static am_llm_config *load(const char *name) {
  char path[256];
  snprintf(path, sizeof path, CFG "%s", name);
  am_llm_config *c = NULL;
  am_status s = am_llm_config_load(path, &c);
  CHECK(s == AM_OK && c, "%s: %s", name, am_last_error());
  return c;
}

static int count_kind(const am_llm_config *c, am_llm_layer_kind k) {
  int n = 0;
  for (int64_t i = 0; i < c->num_hidden_layers; i++)
    n += c->layer_types[i] == k;
  return n;
}

/* Qwen3-Next-80B-A3B: 48 layers, attention at 3, 7, ..., 47. */
static void check_next_80b(const am_llm_config *c, const char *what) {
  CHECK(c->arch == AM_ARCH_QWEN3_NEXT, "%s arch", what);
  CHECK(!strcmp(c->weight_prefix, ""), "%s prefix", what);
  CHECK(c->hidden_size == 2048 && c->num_hidden_layers == 48 &&
            c->vocab_size == 151936,
        "%s dims", what);
  CHECK(c->intermediate_size == 5120 && c->moe_intermediate_size == 512 &&
            c->shared_expert_intermediate_size == 512,
        "%s mlp sizes", what);
  CHECK(c->num_experts == 512 && c->num_experts_per_tok == 10 &&
            c->norm_topk_prob && c->decoder_sparse_step == 1 &&
            c->n_mlp_only_layers == 0,
        "%s moe", what);
  CHECK(c->num_attention_heads == 16 && c->num_key_value_heads == 2 &&
            c->head_dim == 256,
        "%s attention", what);
  CHECK(c->linear_num_key_heads == 16 && c->linear_num_value_heads == 32 &&
            c->linear_key_head_dim == 128 && c->linear_value_head_dim == 128 &&
            c->linear_conv_kernel_dim == 4,
        "%s linear attention", what);
  CHECK(c->rms_norm_eps == 1e-6 && c->rope_theta == 1e7 &&
            c->partial_rotary_factor == 0.25 &&
            !strcmp(c->rope_type, "default") && c->rope_factor == 1,
        "%s norm/rope (theta %g prf %g)", what, c->rope_theta,
        c->partial_rotary_factor);
  CHECK(!c->tie_word_embeddings && !c->attention_bias &&
            c->max_position_embeddings == 262144,
        "%s misc", what);
  CHECK(c->bos_token_id == 151643 && c->n_eos_token_ids == 1 &&
            c->eos_token_ids[0] == 151645,
        "%s tokens", what);
  CHECK(count_kind(c, AM_LAYER_FULL_ATTENTION) == 12, "%s 12 attention", what);
  CHECK(c->layer_types[3] == AM_LAYER_FULL_ATTENTION &&
            c->layer_types[47] == AM_LAYER_FULL_ATTENTION &&
            c->layer_types[0] == AM_LAYER_LINEAR_ATTENTION &&
            c->layer_types[46] == AM_LAYER_LINEAR_ATTENTION,
        "%s layer kinds", what);
  int moe = 0;
  for (int i = 0; i < 48; i++)
    moe += c->layer_is_moe[i];
  CHECK(moe == 48, "%s every layer MoE", what);
}

static void test_qwen3_next(void) {
  am_llm_config *c = load("qwen3_next_80b.json");
  if (c) {
    check_next_80b(c, "hf");
    CHECK(c->full_attention_interval == 4, "interval");
    CHECK(!c->quantized && am_llm_config_quant_for(c, "lm_head") == NULL,
          "not quantized");
    am_llm_config_free(c);
  }
  c = load("qwen3_next_80b_v5.json");
  if (c) {
    check_next_80b(c, "v5");
    am_llm_config_free(c);
  }
  c = load("qwen3_next_80b_mlx4.json");
  if (c) {
    check_next_80b(c, "mlx4");
    CHECK(c->quantized && c->quant.bits == 4 && c->quant.group_size == 64 &&
              c->quant.mode == AM_QUANT_AFFINE,
          "default quant");
    CHECK(c->n_quant_overrides == 96, "overrides %lld",
          (long long)c->n_quant_overrides);
    const am_llm_quant *q =
        am_llm_config_quant_for(c, "model.layers.7.mlp.gate");
    CHECK(q && q->bits == 8 && q->group_size == 64, "gate 8-bit");
    q = am_llm_config_quant_for(c, "model.layers.47.mlp.shared_expert_gate");
    CHECK(q && q->bits == 8, "shared_expert_gate 8-bit");
    q = am_llm_config_quant_for(c, "model.layers.7.mlp.switch_mlp.up_proj");
    CHECK(q && q->bits == 4, "experts 4-bit");
    am_llm_config_free(c);
  }
}

static void test_qwen3_5(void) {
  am_llm_config *c = load("qwen3_5_moe_35b.json");
  if (c) {
    CHECK(c->arch == AM_ARCH_QWEN3_5_MOE, "arch");
    CHECK(!strcmp(c->weight_prefix, "language_model."), "prefix %s",
          c->weight_prefix);
    CHECK(c->hidden_size == 2048 && c->num_hidden_layers == 40 &&
              c->vocab_size == 248320,
          "dims");
    CHECK(c->num_experts == 256 && c->num_experts_per_tok == 8 &&
              c->moe_intermediate_size == 512 &&
              c->shared_expert_intermediate_size == 512 && c->norm_topk_prob,
          "moe");
    CHECK(c->num_attention_heads == 16 && c->num_key_value_heads == 2 &&
              c->head_dim == 256 && c->linear_num_value_heads == 32 &&
              c->linear_num_key_heads == 16,
          "heads");
    CHECK(c->rope_theta == 1e7 && c->partial_rotary_factor == 0.25,
          "rope from rope_parameters: %g %g", c->rope_theta,
          c->partial_rotary_factor);
    CHECK(c->n_mrope_section == 3 && c->mrope_section[0] == 11 &&
              c->mrope_section[2] == 10 && c->mrope_interleaved,
          "mrope");
    CHECK(count_kind(c, AM_LAYER_FULL_ATTENTION) == 10 &&
              c->layer_types[39] == AM_LAYER_FULL_ATTENTION,
          "layer kinds");
    CHECK(c->bos_token_id == -1 && c->n_eos_token_ids == 1 &&
              c->eos_token_ids[0] == 248046,
          "tokens");
    CHECK(c->layer_is_moe[0] && c->layer_is_moe[39], "all MoE");
    CHECK(!c->tie_word_embeddings && c->max_position_embeddings == 262144,
          "misc");
    am_llm_config_free(c);
  }
  c = load("qwen3_5_moe_35b_mlx4.json");
  if (c) {
    CHECK(c->quantized && c->quant.bits == 4, "quant");
    const am_llm_quant *q =
        am_llm_config_quant_for(c, "language_model.model.layers.3.mlp.gate");
    CHECK(q && q->bits == 8, "gate 8-bit");
    CHECK(am_llm_config_quant_for(
              c, "language_model.model.layers.0.mlp.shared_expert_gate") ==
              NULL,
          "override false: unquantized");
    q = am_llm_config_quant_for(c, "language_model.model.layers.1.mlp.gate");
    CHECK(q && q->mode == AM_QUANT_MXFP8 && q->bits == 8 && q->group_size == 32,
          "mxfp8 override with its defaults");
    am_llm_config_free(c);
  }
}

static void test_qwen3_moe(void) {
  am_llm_config *c = load("qwen3_30b_a3b.json");
  if (c) {
    CHECK(c->arch == AM_ARCH_QWEN3_MOE, "arch");
    CHECK(c->hidden_size == 2048 && c->num_hidden_layers == 48 &&
              c->vocab_size == 151936 && c->intermediate_size == 6144,
          "dims");
    CHECK(c->num_attention_heads == 32 && c->num_key_value_heads == 4 &&
              c->head_dim == 128,
          "heads");
    CHECK(c->num_experts == 128 && c->num_experts_per_tok == 8 &&
              c->moe_intermediate_size == 768 &&
              c->shared_expert_intermediate_size == 0 && c->norm_topk_prob,
          "moe");
    CHECK(c->rope_theta == 1e6 && c->partial_rotary_factor == 1.0 &&
              c->max_position_embeddings == 40960,
          "rope");
    CHECK(count_kind(c, AM_LAYER_FULL_ATTENTION) == 48, "all attention");
    am_llm_config_free(c);
  }
  /* Defaults of Qwen3MoeConfig: head_dim = hidden / heads, norm_topk false */
  c = load("qwen3_moe_minimal.json");
  if (c) {
    CHECK(c->head_dim == 32 && c->num_key_value_heads == 4 &&
              !c->norm_topk_prob && c->num_experts == 128 &&
              c->moe_intermediate_size == 768 && c->rope_theta == 10000 &&
              c->max_position_embeddings == 32768,
          "qwen3_moe defaults");
    am_llm_config_free(c);
  }
}

static void test_defaults_and_rare_fields(void) {
  /* Qwen3NextConfig defaults. */
  am_llm_config *c = load("qwen3_next_minimal.json");
  if (c) {
    CHECK(c->arch == AM_ARCH_QWEN3_NEXT, "arch from architectures");
    CHECK(c->num_key_value_heads == 2 && c->head_dim == 256 &&
              c->intermediate_size == 5632 && c->num_experts == 512 &&
              c->num_experts_per_tok == 10 && c->norm_topk_prob &&
              c->linear_conv_kernel_dim == 4 && c->rope_theta == 10000 &&
              c->partial_rotary_factor == 0.25 && c->rms_norm_eps == 1e-6 &&
              c->max_position_embeddings == 32768 && !c->tie_word_embeddings &&
              c->bos_token_id == -1 && c->n_eos_token_ids == 0,
          "qwen3_next defaults");
    CHECK(c->layer_types[3] == AM_LAYER_FULL_ATTENTION &&
              c->layer_types[7] == AM_LAYER_FULL_ATTENTION &&
              count_kind(c, AM_LAYER_FULL_ATTENTION) == 2,
          "default interval 4");
    am_llm_config_free(c);
  }
  c = load("small_custom.json");
  if (c) {
    /* Interval 3: layers 2 and 5 attention. */
    CHECK(c->layer_types[2] == AM_LAYER_FULL_ATTENTION &&
              c->layer_types[5] == AM_LAYER_FULL_ATTENTION &&
              count_kind(c, AM_LAYER_FULL_ATTENTION) == 2,
          "interval 3");
    /* decoder_sparse_step 2: layers 1, 3, 5 sparse; 3 is mlp_only. */
    static const bool want[6] = {false, true, false, false, false, true};
    int bad = 0;
    for (int i = 0; i < 6; i++)
      bad += c->layer_is_moe[i] != want[i];
    CHECK(!bad, "layer_is_moe");
    CHECK(c->n_mlp_only_layers == 1 && c->mlp_only_layers[0] == 3, "mlp_only");
    CHECK(c->tie_word_embeddings && !c->norm_topk_prob, "tie, topk");
    CHECK(c->linear_key_head_dim == 16 && c->linear_value_head_dim == 8 &&
              c->linear_conv_kernel_dim == 3 && c->head_dim == 32,
          "head dims");
    CHECK(!strcmp(c->rope_type, "yarn") && c->rope_factor == 4.0 &&
              c->rope_original_max_position_embeddings == 32768 &&
              c->rope_theta == 5e5 && c->partial_rotary_factor == 0.5,
          "yarn");
    CHECK(c->n_eos_token_ids == 2 && c->eos_token_ids[0] == 7 &&
              c->eos_token_ids[1] == 9,
          "eos list");
    CHECK(c->rms_norm_eps == 1e-5, "eps");
    am_llm_config_free(c);
  }
  /* A directory: its config.json is read (none here: a clear error). */
  am_llm_config *d = NULL;
  CHECK(am_llm_config_load("data/sharded", &d) == AM_ERR_IO &&
            has(am_last_error(), "data/sharded/config.json"),
        "dir without config: %s", am_last_error());
  CHECK(am_llm_config_load("data/config/none.json", &d) == AM_ERR_IO, "none");
  CHECK(am_llm_config_load(NULL, &d) == AM_ERR_INVALID_ARG, "NULL path");
  CHECK(am_llm_config_parse("{}", 2, "x", NULL) == AM_ERR_INVALID_ARG,
        "NULL out");
  CHECK(am_llm_arch_name(AM_ARCH_QWEN3_5_MOE)[0] == 'q', "arch name");
  am_llm_config_free(NULL);
}

typedef struct {
  const char *file;
  am_status status;
  const char *sub[2];
} bad_case;

static void test_broken(void) {
  static const bad_case cases[] = {
      {"bad_json.json", AM_ERR_IO, {"not valid JSON"}},
      {"bad_top.json", AM_ERR_IO, {"not an object"}},
      {"bad_type.json", AM_ERR_INVALID_ARG, {"'hidden_size'", "a string"}},
      {"bad_arch.json", AM_ERR_UNSUPPORTED, {"'llama'"}},
      {"bad_missing.json",
       AM_ERR_INVALID_ARG,
       {"'num_hidden_layers'", "missing"}},
      {"bad_layer_types.json", AM_ERR_INVALID_ARG, {"'layer_types'", "48"}},
      {"bad_layer_kind.json", AM_ERR_INVALID_ARG, {"layer_types[0]"}},
      {"bad_quant_bits.json",
       AM_ERR_INVALID_ARG,
       {"quantization.model.layers.0.mlp.gate.bits"}},
      {"bad_topk.json", AM_ERR_INVALID_ARG, {"num_experts_per_tok 600"}},
      {"bad_mlp_only.json", AM_ERR_INVALID_ARG, {"mlp_only_layers[0]"}},
      {"bad_heads.json", AM_ERR_INVALID_ARG, {"num_key_value_heads 3"}},
      {"bad_negative.json", AM_ERR_INVALID_ARG, {"'vocab_size' is -5"}},
      {"bad_text_config.json", AM_ERR_INVALID_ARG, {"'text_config'"}},
      {"bad_rope.json", AM_ERR_INVALID_ARG, {"'rope_theta'", "a string"}},
      {"bad_eps.json", AM_ERR_INVALID_ARG, {"'rms_norm_eps'", "a boolean"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case *b = &cases[i];
    char path[256];
    snprintf(path, sizeof path, CFG "%s", b->file);
    am_llm_config *c = (am_llm_config *)1;
    am_status s = am_llm_config_load(path, &c);
    CHECK(s == b->status, "%s: status %d want %d (%s)", b->file, s, b->status,
          am_last_error());
    CHECK(c == NULL, "%s: out not NULL", b->file);
    CHECK(has(am_last_error(), b->file), "%s: message lacks the file: %s",
          b->file, am_last_error());
    for (int k = 0; k < 2 && b->sub[k]; k++)
      CHECK(has(am_last_error(), b->sub[k]), "%s: '%s' lacks '%s'", b->file,
            am_last_error(), b->sub[k]);
    am_llm_config_free(c);
  }
  /* Parse from memory: text_config of the wrong type in a qwen3_next config
   * is ignored (only Qwen3.5 reads it); embedded NUL stops nothing. */
  const char *j = "{\"model_type\": \"qwen3_moe\", \"hidden_size\": 64, "
                  "\"num_hidden_layers\": 1, \"vocab_size\": 10, "
                  "\"num_attention_heads\": 2, \"num_key_value_heads\": 2, "
                  "\"layer_types\": [\"linear_attention\"]}";
  am_llm_config *c = NULL;
  CHECK(am_llm_config_parse(j, strlen(j), "mem", &c) == AM_ERR_INVALID_ARG &&
            has(am_last_error(), "qwen3_moe has no linear attention"),
        "qwen3_moe linear layer: %s", am_last_error());
  CHECK(am_llm_config_parse(j, 10, "mem", &c) == AM_ERR_IO, "cut JSON");
}

int main(void) {
  test_qwen3_next();
  test_qwen3_5();
  test_qwen3_moe();
  test_defaults_and_rare_fields();
  test_broken();
  return t_summary();
}
