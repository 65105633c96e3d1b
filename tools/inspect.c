/*
 * inspect.c — `amorph inspect`: what a model is and what it needs, from its
 * config and am_llm_model_get_info.
 */
#include "cli.h"

#include <string.h>

#define CMD "inspect"

static const char *dtype_names[] = {"f32", "bf16", "f16", NULL};
static const am_dtype dtype_values[] = {AM_F32, AM_BF16, AM_F16};

static const char usage[] =
    "--model DIR [--dtype f32|bf16|f16]\n\n"
    "Prints the architecture, layer kinds, dimensions, parameter counts,\n"
    "quantization and the memory the model needs.";

static void print_layers(const am_llm_config *c) {
  int64_t n_lin = 0, n_moe = 0;
  for (int64_t i = 0; i < c->num_hidden_layers; i++) {
    n_lin += c->layer_types[i] == AM_LAYER_LINEAR_ATTENTION;
    n_moe += c->layer_is_moe[i];
  }
  int64_t n = c->num_hidden_layers;
  printf("%-14s %lld: %lld Gated DeltaNet + %lld attention; %lld MoE + "
         "%lld dense MLP\n",
         "layers", (long long)n, (long long)n_lin, (long long)(n - n_lin),
         (long long)n_moe, (long long)(n - n_moe));
  printf("%-14s hidden %lld, vocab %lld, max context %lld%s\n", "dims",
         (long long)c->hidden_size, (long long)c->vocab_size,
         (long long)c->max_position_embeddings,
         c->tie_word_embeddings ? ", tied embeddings" : "");
  if (n_lin < n) {
    int64_t rot = (int64_t)(c->head_dim * c->partial_rotary_factor);
    printf("%-14s %lld query / %lld KV heads x %lld; RoPE %s theta %g, %lld "
           "rotary dims\n",
           "attention", (long long)c->num_attention_heads,
           (long long)c->num_key_value_heads, (long long)c->head_dim,
           c->rope_type, c->rope_theta, (long long)rot);
  }
  if (n_lin)
    printf("%-14s %lld key / %lld value heads, key dim %lld, value dim %lld, "
           "conv kernel %lld\n",
           "DeltaNet", (long long)c->linear_num_key_heads,
           (long long)c->linear_num_value_heads,
           (long long)c->linear_key_head_dim,
           (long long)c->linear_value_head_dim,
           (long long)c->linear_conv_kernel_dim);
  if (n_moe) {
    printf("%-14s %lld experts, top %lld%s, expert dim %lld", "MoE",
           (long long)c->num_experts, (long long)c->num_experts_per_tok,
           c->norm_topk_prob ? " (renormalized)" : "",
           (long long)c->moe_intermediate_size);
    if (c->shared_expert_intermediate_size)
      printf(", shared expert %lld",
             (long long)c->shared_expert_intermediate_size);
    printf("\n");
  }
  if (n_moe < n)
    printf("%-14s intermediate %lld\n", "dense MLP",
           (long long)c->intermediate_size);
}

static void print_tokens(const am_llm_config *c) {
  printf("%-14s bos %lld, eos", "special ids", (long long)c->bos_token_id);
  if (!c->n_eos_token_ids) printf(" none");
  for (int i = 0; i < c->n_eos_token_ids; i++)
    printf("%s %lld", i ? "," : "", (long long)c->eos_token_ids[i]);
  printf("\n");
}

static void print_sizes(const am_llm_model_info *in, const am_llm_config *c) {
  char a[32], b[32], d[32];
  printf("%-14s %s total, %s active per token\n", "parameters",
         cli_count((double)in->n_params, a, sizeof a),
         cli_count((double)in->n_active_params, b, sizeof b));
  printf("%-14s %s\n", "quantization", in->quant[0] ? in->quant : "none");
  printf("%-14s %s\n", "layout",
         in->hf_layout ? "Hugging Face (sanitized at load)" : "MLX");
  printf("%-14s %s stored, %s read per decoded token\n", "weights",
         cli_bytes((double)in->weight_bytes, a, sizeof a),
         cli_bytes((double)in->active_bytes, b, sizeof b));
  double kv1k = 1024.0 * (double)in->kv_bytes_per_token;
  printf("%-14s recurrent + conv state %s per sequence, KV cache %s per 1k "
         "tokens\n",
         "state", cli_bytes((double)in->state_bytes, a, sizeof a),
         cli_bytes(kv1k, b, sizeof b));
  double base = (double)(in->weight_bytes + in->state_bytes);
  double max_ctx = (double)c->max_position_embeddings;
  printf(
      "%-14s %s at 1k tokens of context, %s at %lld tokens\n", "memory needed",
      cli_bytes(base + kv1k, a, sizeof a),
      cli_bytes(base + max_ctx * (double)in->kv_bytes_per_token, d, sizeof d),
      (long long)c->max_position_embeddings);
}

int cli_inspect(int argc, char **argv) {
  const char *dir = NULL;
  int dtype = -1;
  cli_flag flags[] = {
      CLI_FLAG_STR("--model", &dir, "DIR", "model directory (required)"),
      CLI_FLAG_CHOICE("--dtype", &dtype, "f32|bf16|f16",
                      "cache dtype the state and KV sizes assume (default f32)",
                      dtype_names),
      CLI_FLAG_END,
  };
  int rc = cli_parse(CMD, usage, flags, argc, argv);
  if (rc != CLI_OK) return rc < 0 ? CLI_OK : rc;
  if (!dir) return cli_usage_error(CMD, "--model DIR is required");

  am_llm_load_opts o = {.dtype = dtype >= 0 ? dtype_values[dtype] : 0};
  am_llm_model *m = NULL;
  am_status s = am_llm_model_load(dir, &o, &m);
  if (s != AM_OK) return cli_lib_error(CMD, "loading the model", s);
  const am_llm_config *c = am_llm_model_config(m);
  am_llm_model_info info = am_llm_model_get_info(m);
  printf("%-14s %s\n", "model", dir);
  printf("%-14s %s\n", "architecture", am_llm_arch_name(c->arch));
  print_layers(c);
  print_tokens(c);
  print_sizes(&info, c);
  am_llm_model_free(m);
  return CLI_OK;
}
