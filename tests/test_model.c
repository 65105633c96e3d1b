/*
 * test_model.c — the model runtime: random-weight models of each
 * architecture (float and 4-bit) checked for self-consistency (chunked
 * prefill = token by token, compiled = eager, one trace and no fallback
 * across prompt lengths and a long generation), save/load round trips,
 * bad checkpoints, and conformance against committed reference logits
 * from transformers and mlx-lm (tests/data/models, scripts/).
 */
#include "llm/llm_internal.h"
#include "model_ref.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* Three small configs with the features the loader must honour. */
static const char *CFG_NEXT =
    "{\"model_type\":\"qwen3_next\",\"hidden_size\":64,\"num_hidden_layers\":"
    "5,\"vocab_size\":300,\"num_attention_heads\":4,\"num_key_value_heads\":"
    "2,\"head_dim\":32,\"linear_num_key_heads\":2,\"linear_num_value_heads\":"
    "4,\"linear_key_head_dim\":32,\"linear_value_head_dim\":64,"
    "\"linear_conv_kernel_dim\":4,\"num_experts\":8,\"num_experts_per_tok\":"
    "3,\"moe_intermediate_size\":64,\"shared_expert_intermediate_size\":64,"
    "\"intermediate_size\":128,\"mlp_only_layers\":[1],"
    "\"full_attention_interval\":2,\"rms_norm_eps\":1e-6,\"rope_parameters\":"
    "{\"rope_type\":\"default\",\"rope_theta\":10000,"
    "\"partial_rotary_factor\":0.5},\"max_position_embeddings\":2048%s}";
static const char *CFG_35 =
    "{\"model_type\":\"qwen3_5_moe\",\"text_config\":{\"model_type\":"
    "\"qwen3_5_moe_text\",\"hidden_size\":64,\"num_hidden_layers\":4,"
    "\"vocab_size\":256,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"head_dim\":32,\"linear_num_key_heads\":2,\"linear_num_value_heads\":4,"
    "\"linear_key_head_dim\":32,\"linear_value_head_dim\":32,"
    "\"linear_conv_kernel_dim\":4,\"num_experts\":8,\"num_experts_per_tok\":"
    "2,\"moe_intermediate_size\":64,\"shared_expert_intermediate_size\":64,"
    "\"full_attention_interval\":4,\"rms_norm_eps\":1e-6,\"rope_theta\":1e6,"
    "\"partial_rotary_factor\":0.25,\"max_position_embeddings\":2048}%s}";
static const char *CFG_MOE =
    "{\"model_type\":\"qwen3_moe\",\"hidden_size\":64,\"num_hidden_layers\":"
    "3,\"vocab_size\":256,\"num_attention_heads\":4,\"num_key_value_heads\":"
    "2,\"head_dim\":24,\"num_experts\":8,\"num_experts_per_tok\":2,"
    "\"moe_intermediate_size\":64,\"intermediate_size\":128,"
    "\"decoder_sparse_step\":2,\"norm_topk_prob\":false,"
    "\"tie_word_embeddings\":true,\"attention_bias\":true,"
    "\"rms_norm_eps\":1e-6,\"rope_theta\":1e6,"
    "\"max_position_embeddings\":2048%s}";
static const char *Q4 =
    ",\"quantization\":{\"group_size\":32,\"bits\":4,\"mode\":\"affine\"}";

static am_llm_config *parse(const char *fmt, bool q) {
  char js[4096];
  snprintf(js, sizeof js, fmt, q ? Q4 : "");
  am_llm_config *c = NULL;
  am_status s = am_llm_config_parse(js, strlen(js), "test", &c);
  CHECK(!s, "config: %s", am_last_error());
  return c;
}

static void tokens(int32_t *t, int n, int V, uint64_t seed) {
  t_rng r = {seed};
  for (int i = 0; i < n; i++)
    t[i] = (int32_t)t_randint(&r, 0, V - 1);
}

/* Logits of every position of `toks` with the given session options. */
static bool run_all(am_llm_model *m, const int32_t *toks, int n, int chunk,
                    bool no_compile, float *out, am_compile_stats *st) {
  am_llm_session_opts o = {
      .all_logits = true, .prefill_chunk = chunk, .no_compile = no_compile};
  am_llm_session *s;
  if (am_llm_session_new(m, &o, &s)) return false;
  int32_t next;
  am_status r = am_llm_session_feed(s, toks, n, &next, out);
  CHECK(!r, "feed: %s", am_last_error());
  if (st) *st = am_llm_session_stats(s);
  am_llm_session_free(s);
  return !r;
}

/* Token by token, last-position logits each time. */
static bool run_steps(am_llm_model *m, const int32_t *toks, int n, float *out,
                      am_compile_stats *st) {
  am_llm_session *s;
  if (am_llm_session_new(m, NULL, &s)) return false;
  int64_t V = m->cfg->vocab_size;
  int32_t next;
  am_status r = AM_OK;
  for (int i = 0; i < n && !r; i++)
    r = am_llm_session_feed(s, toks + i, 1, &next, out + i * V);
  CHECK(!r, "feed: %s", am_last_error());
  if (st) *st = am_llm_session_stats(s);
  am_llm_session_free(s);
  return !r;
}

static void test_consistency(const char *name, const char *fmt, bool q) {
  am_llm_config *c = parse(fmt, q);
  if (!c) return;
  am_llm_model *m;
  am_status s = am_llm_model_random(c, 7, NULL, &m);
  CHECK(!s, "%s: random model: %s", name, am_last_error());
  if (s) {
    am_llm_config_free(c);
    return;
  }
  int n = 40;
  int64_t V = c->vocab_size;
  int32_t toks[40];
  tokens(toks, n, (int)V, 3);
  float *a = malloc(sizeof *a * n * V), *b = malloc(sizeof *b * n * V),
        *e = malloc(sizeof *e * n * V);
  am_compile_stats sa, sb;
  double scale;
  if (run_all(m, toks, n, 7, false, a, &sa) && run_steps(m, toks, n, b, &sb) &&
      run_all(m, toks, n, 64, true, e, NULL)) {
    double d = max_diff(a, b, n * V, &scale);
    CHECK(d <= 2e-5 * (1 + scale), "%s%s: chunked vs token by token: %g", name,
          q ? " q4" : "", d);
    d = max_diff(a, e, n * V, &scale);
    CHECK(d <= 2e-5 * (1 + scale), "%s%s: compiled vs eager: %g", name,
          q ? " q4" : "", d);
    CHECK(scale > 0.05, "%s: logits are not trivial (max %g)", name, scale);
    /* chunks of 7, 7, ..., 5: one trace; single tokens: one trace */
    CHECK(sa.traces == 1 && sa.fallbacks == 0 && sa.replays == 5,
          "%s: chunked stats traces %llu fallbacks %llu replays %llu", name,
          (unsigned long long)sa.traces, (unsigned long long)sa.fallbacks,
          (unsigned long long)sa.replays);
    CHECK(sb.traces == 1 && sb.fallbacks == 0 && sb.replays == 39,
          "%s: step stats traces %llu fallbacks %llu", name,
          (unsigned long long)sb.traces, (unsigned long long)sb.fallbacks);
  }
  free(a);
  free(b);
  free(e);
  am_llm_model_free(m);
  am_llm_config_free(c);
}

/* Prompts of several lengths, then a long greedy generation, in one
 * session: the decode step is traced once and never falls back, though
 * T, the position and the KV capacity (grown past 256 and 512) change. */
static void test_long_generation(void) {
  am_llm_config *c = parse(CFG_NEXT, true);
  am_llm_model *m;
  if (!c || am_llm_model_random(c, 11, NULL, &m)) {
    CHECK(0, "model: %s", am_last_error());
    am_llm_config_free(c);
    return;
  }
  am_llm_session_opts o = {.prefill_chunk = 128};
  am_llm_session *s;
  CHECK(!am_llm_session_new(m, &o, &s), "%s", am_last_error());
  int lens[3] = {5, 37, 300}, gen = t_quick() ? 300 : 1000;
  int32_t p[300], next = 0;
  uint64_t calls = 0;
  for (int k = 0; k < 3; k++) {
    am_llm_session_reset(s);
    tokens(p, lens[k], (int)c->vocab_size, 100 + k);
    CHECK(!am_llm_session_feed(s, p, lens[k], &next, NULL), "%s",
          am_last_error());
    calls += (uint64_t)(lens[k] + 127) / 128;
    int g = k == 2 ? gen : 20;
    for (int i = 0; i < g; i++)
      if (am_llm_session_feed(s, &next, 1, &next, NULL)) {
        CHECK(0, "decode %d: %s", i, am_last_error());
        break;
      }
    calls += (uint64_t)g;
    CHECK(am_llm_session_position(s) == lens[k] + g, "position %lld",
          (long long)am_llm_session_position(s));
  }
  am_compile_stats st = am_llm_session_stats(s);
  CHECK(st.traces == 1 && st.fallbacks == 0 && st.calls == calls,
        "long generation: traces %llu fallbacks %llu calls %llu (want %llu)",
        (unsigned long long)st.traces, (unsigned long long)st.fallbacks,
        (unsigned long long)st.calls, (unsigned long long)calls);
  /* errors: a token outside the vocabulary, a full context */
  int32_t bad = (int32_t)c->vocab_size;
  CHECK(am_llm_session_feed(s, &bad, 1, &next, NULL) == AM_ERR_INVALID_ARG &&
            strstr(am_last_error(), "vocabulary"),
        "bad token: %s", am_last_error());
  am_llm_session_free(s);
  am_llm_session_opts small = {.max_context = 16};
  CHECK(!am_llm_session_new(m, &small, &s), "%s", am_last_error());
  int32_t many[20] = {0};
  CHECK(am_llm_session_feed(s, many, 20, &next, NULL) == AM_ERR_INVALID_ARG &&
            strstr(am_last_error(), "context"),
        "context overflow: %s", am_last_error());
  CHECK(!am_llm_session_feed(s, many, 16, &next, NULL), "full context: %s",
        am_last_error());
  am_llm_session_free(s);
  am_llm_model_free(m);
  am_llm_config_free(c);
}

/* n generated tokens after a fixed prompt with sampler p. */
static bool generate(am_llm_model *m, const am_llm_sampler *p, int32_t *out,
                     int n) {
  am_llm_session_opts o = {.sampler = *p};
  am_llm_session *s;
  if (am_llm_session_new(m, &o, &s)) return false;
  int32_t prompt[6] = {1, 2, 3, 4, 5, 6}, next;
  am_status r = am_llm_session_feed(s, prompt, 6, &next, NULL);
  for (int i = 0; i < n && !r; i++) {
    out[i] = next;
    r = am_llm_session_feed(s, &next, 1, &next, NULL);
  }
  am_compile_stats st = am_llm_session_stats(s);
  CHECK(!r && st.traces == 1 && st.fallbacks == 0, "generate: %s",
        r ? am_last_error() : "re-traced");
  am_llm_session_free(s);
  return !r;
}

/* The sampler inside the compiled step: seeded draws repeat, other seeds
 * differ, top-k 1 is greedy, the repetition penalty changes the text. */
static void test_sampling(void) {
  am_llm_config *c = parse(CFG_MOE, false);
  am_llm_model *m;
  if (!c || am_llm_model_random(c, 2, NULL, &m)) {
    CHECK(0, "model: %s", am_last_error());
    am_llm_config_free(c);
    return;
  }
  enum { N = 24 };
  int32_t a[N], b[N], g[N], k1[N], pen[N];
  am_llm_sampler hot = {.temperature = 1.5f, .seed = 42};
  am_llm_sampler other = hot, greedy = {0},
                 topk1 = {.temperature = 1.0f, .top_k = 1, .seed = 3};
  other.seed = 43;
  am_llm_sampler rep = {.repetition_penalty = 5.0f, .repetition_context = 8};
  if (generate(m, &hot, a, N) && generate(m, &hot, b, N))
    CHECK(!memcmp(a, b, sizeof a), "same seed, different tokens");
  if (generate(m, &other, b, N))
    CHECK(memcmp(a, b, sizeof a), "seeds 42 and 43 drew the same %d tokens", N);
  if (generate(m, &greedy, g, N) && generate(m, &topk1, k1, N))
    CHECK(!memcmp(g, k1, sizeof g), "top-k 1 differs from greedy");
  if (generate(m, &rep, pen, N)) {
    CHECK(memcmp(g, pen, sizeof g), "the penalty changed nothing");
    /* repeats within a window of 8: fewer than greedy's */
    int rp = 0, rg = 0;
    for (int i = 0; i < N; i++)
      for (int j = i - 7 > 0 ? i - 7 : 0; j < i; j++) {
        rp += pen[i] == pen[j];
        rg += g[i] == g[j];
      }
    CHECK(rp < rg,
          "penalized text repeats %d times within 8 tokens, greedy "
          "%d",
          rp, rg);
  }
  am_llm_model_free(m);
  am_llm_config_free(c);
}

/* ------------------------------------------------------ files on disk */

static char tmpdir[256];

static void write_text(const char *dir, const char *name, const char *text) {
  char path[1100];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Writes m's weights (MLX names) to dir, skipping `skip` and giving
 * `reshape` a wrong shape. */
static void save_model(const am_llm_model *m, const char *cfg_json,
                       const char *dir, const char *skip, const char *reshape) {
  mkdir(dir, 0755);
  write_text(dir, "config.json", cfg_json);
  const char **names = malloc(sizeof *names * (size_t)m->n_named);
  am_array *arrs = malloc(sizeof *arrs * (size_t)m->n_named);
  int n = 0;
  am_array flat = NULL;
  for (int64_t i = 0; i < m->n_named; i++) {
    if (skip && !strcmp(m->names[i], skip)) continue;
    names[n] = m->names[i];
    arrs[n] = m->named[i];
    if (reshape && !strcmp(m->names[i], reshape))
      arrs[n] = flat = am_flatten(m->named[i], 0, -1);
    n++;
  }
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  CHECK(!am_safetensors_save(path, names, arrs, n, NULL), "save: %s",
        am_last_error());
  am_array_free(flat);
  free(names);
  free(arrs);
}

static void test_files(void) {
  char js[4096];
  snprintf(js, sizeof js, CFG_NEXT, Q4);
  am_llm_config *c = parse(CFG_NEXT, true);
  am_llm_model *m, *l;
  if (!c || am_llm_model_random(c, 5, NULL, &m)) {
    CHECK(0, "model: %s", am_last_error());
    am_llm_config_free(c);
    return;
  }
  char dir[512];
  snprintf(dir, sizeof dir, "%s/ok", tmpdir);
  save_model(m, js, dir, NULL, NULL);
  CHECK(!am_llm_model_load(dir, NULL, &l), "load: %s", am_last_error());
  if (l) {
    int n = 9;
    int64_t V = c->vocab_size;
    int32_t toks[9];
    tokens(toks, n, (int)V, 9);
    float *a = malloc(sizeof *a * n * V), *b = malloc(sizeof *b * n * V);
    if (run_all(m, toks, n, 16, false, a, NULL) &&
        run_all(l, toks, n, 16, false, b, NULL))
      CHECK(max_diff(a, b, n * V, NULL) == 0, "saved model differs");
    am_llm_model_info I = am_llm_model_get_info(l),
                      J = am_llm_model_get_info(m);
    CHECK(I.n_params == J.n_params && I.weight_bytes == J.weight_bytes &&
              !I.hf_layout && I.active_bytes < I.weight_bytes,
          "info: %lld/%lld params, %lld/%lld bytes", (long long)I.n_params,
          (long long)J.n_params, (long long)I.weight_bytes,
          (long long)J.weight_bytes);
    free(a);
    free(b);
    am_llm_model_free(l);
  }
  /* a missing tensor, a wrong shape: errors naming the tensor */
  const char *victim = "model.layers.0.linear_attn.in_proj_qkvz.scales";
  snprintf(dir, sizeof dir, "%s/missing", tmpdir);
  save_model(m, js, dir, victim, NULL);
  CHECK(am_llm_model_load(dir, NULL, &l) && !l &&
            strstr(am_last_error(), "in_proj_qkvz"),
        "missing tensor: %s", am_last_error());
  snprintf(dir, sizeof dir, "%s/shape", tmpdir);
  victim = "model.layers.1.self_attn.q_norm.weight";
  save_model(m, js, dir, NULL, "model.layers.1.self_attn.k_proj.weight");
  am_status s = am_llm_model_load(dir, NULL, &l);
  CHECK(s == AM_ERR_SHAPE && strstr(am_last_error(), "k_proj.weight"),
        "wrong shape: %d %s", s, am_last_error());
  /* an unknown architecture, a truncated file */
  snprintf(dir, sizeof dir, "%s/arch", tmpdir);
  save_model(m, "{\"model_type\":\"llama\",\"hidden_size\":64}", dir, NULL,
             NULL);
  s = am_llm_model_load(dir, NULL, &l);
  CHECK(s == AM_ERR_UNSUPPORTED && strstr(am_last_error(), "llama"),
        "unknown arch: %d %s", s, am_last_error());
  snprintf(dir, sizeof dir, "%s/ok/model.safetensors", tmpdir);
  CHECK(!truncate(dir, 4000), "truncate");
  snprintf(dir, sizeof dir, "%s/ok", tmpdir);
  s = am_llm_model_load(dir, NULL, &l);
  CHECK(s == AM_ERR_IO && strstr(am_last_error(), "model.safetensors"),
        "truncated: %d %s", s, am_last_error());
  am_llm_model_free(m);
  am_llm_config_free(c);
}

/* A float copy of the quantized checkpoint in `q` (each quantized weight
 * dequantized in float32) written to `out` with the float config. */
static void dequantize_dir(const char *q, const char *out, const char *js) {
  am_safetensors *st;
  am_llm_config *qc;
  char path[1024];
  if (am_llm_config_load(q, &qc)) {
    CHECK(0, "%s", am_last_error());
    return;
  }
  snprintf(path, sizeof path, "%s/model.safetensors", q);
  if (am_safetensors_open(path, &st)) {
    CHECK(0, "%s", am_last_error());
    return;
  }
  mkdir(out, 0755);
  write_text(out, "config.json", js);
  int64_t n = am_safetensors_count(st);
  const char **names = malloc(sizeof *names * (size_t)n);
  am_array *arrs = malloc(sizeof *arrs * (size_t)n);
  int k = 0;
  am_scope_push();
  for (int64_t i = 0; i < n; i++) {
    const char *nm = am_safetensors_name(st, i);
    size_t l = strlen(nm);
    if ((l > 7 && !strcmp(nm + l - 7, ".scales")) ||
        (l > 7 && !strcmp(nm + l - 7, ".biases")))
      continue;
    am_array x = am_safetensors_get(st, nm);
    if (l > 7 && !strcmp(nm + l - 7, ".weight")) {
      char sn[600], bn[600];
      snprintf(sn, sizeof sn, "%.*s.scales", (int)(l - 7), nm);
      snprintf(bn, sizeof bn, "%.*s.biases", (int)(l - 7), nm);
      char mod[600];
      snprintf(mod, sizeof mod, "%.*s", (int)(l - 7), nm);
      const am_llm_quant *wq = am_llm_config_quant_for(qc, mod);
      if (am_safetensors_has(st, sn) && wq) {
        am_llm_quant w = *wq;
        am_array sc = am_safetensors_get(st, sn);
        if (w.mode == AM_QUANT_AFFINE) sc = am_astype(sc, AM_F32);
        am_array bi = am_safetensors_has(st, bn)
                          ? am_astype(am_safetensors_get(st, bn), AM_F32)
                          : NULL;
        x = am_dequantize(x, sc, bi, w.group_size, w.bits, w.mode, NULL,
                          AM_F32);
      }
    }
    names[k] = nm;
    arrs[k++] = x;
  }
  snprintf(path, sizeof path, "%s/model.safetensors", out);
  CHECK(!am_safetensors_save(path, names, arrs, k, NULL), "save: %s",
        am_last_error());
  am_scope_pop();
  free(names);
  free(arrs);
  am_safetensors_free(st);
  am_llm_config_free(qc);
}

/* Every quantization mode, through quantize-on-load and through
 * am_llm_convert + load (the same logits), and against the float model
 * made of the dequantized weights (the quantized kernels' own error). */
static void test_quant_modes(void) {
  char js[4096], src[512], dst[512], deq[512];
  snprintf(js, sizeof js, CFG_35, "");
  am_llm_config *c = parse(CFG_35, false);
  am_llm_model *f;
  if (!c || am_llm_model_random(c, 21, NULL, &f)) {
    CHECK(0, "model: %s", am_last_error());
    am_llm_config_free(c);
    return;
  }
  snprintf(src, sizeof src, "%s/float35", tmpdir);
  save_model(f, js, src, NULL, NULL);
  int n = 6;
  int64_t V = c->vocab_size;
  int32_t toks[6];
  tokens(toks, n, (int)V, 5);
  float *ref = malloc(sizeof *ref * n * V), *a = malloc(sizeof *a * n * V),
        *b = malloc(sizeof *b * n * V);
  static const am_quant_mode modes[] = {AM_QUANT_AFFINE, AM_QUANT_MXFP4,
                                        AM_QUANT_MXFP8, AM_QUANT_NVFP4};
  static const int bits[] = {8, 4, 8, 4}, groups[] = {32, 32, 32, 16};
  for (int i = 0; i < 4; i++) {
    am_llm_quant q = {groups[i], bits[i], modes[i]};
    am_llm_load_opts o = {.quantize = true, .quant = q};
    am_llm_model *ql = NULL, *qc = NULL, *fd = NULL;
    snprintf(dst, sizeof dst, "%s/q%d", tmpdir, i);
    snprintf(deq, sizeof deq, "%s/dq%d", tmpdir, i);
    CHECK(!am_llm_model_load(src, &o, &ql), "mode %d load: %s", i,
          am_last_error());
    CHECK(!am_llm_convert(src, dst, &q, NULL, NULL), "mode %d convert: %s", i,
          am_last_error());
    CHECK(!am_llm_model_load(dst, NULL, &qc), "mode %d converted: %s", i,
          am_last_error());
    dequantize_dir(dst, deq, js);
    CHECK(!am_llm_model_load(deq, NULL, &fd), "mode %d dequantized: %s", i,
          am_last_error());
    if (ql && qc && fd && run_all(ql, toks, n, 8, false, a, NULL) &&
        run_all(qc, toks, n, 8, false, b, NULL) &&
        run_all(fd, toks, n, 8, false, ref, NULL)) {
      double scale, d = max_diff(a, b, n * V, NULL);
      CHECK(d == 0, "mode %d: quantized on load vs converted differ by %g", i,
            d);
      CHECK(am_llm_model_get_info(qc).weight_bytes <
                am_llm_model_get_info(fd).weight_bytes / 3,
            "mode %d: not smaller", i);
      d = max_diff(a, ref, n * V, &scale);
      CHECK(d <= 1e-4 * scale,
            "mode %d: %g from its dequantized weights "
            "(max %g)",
            i, d, scale);
    }
    am_llm_model_free(ql);
    am_llm_model_free(qc);
    am_llm_model_free(fd);
  }
  free(ref);
  free(a);
  free(b);
  am_llm_model_free(f);
  am_llm_config_free(c);
}

/* --------------------------------------------- reference conformance */

/* Every ref_*.safetensors (transformers) and mlx_*.safetensors (mlx-lm) in
 * tests/data/models/<name>/ against the model in that directory (or in
 * `weights` when the refs sit apart from it). */
static int test_refs(const char *dir, const char *weights, double tol) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  am_llm_model *m;
  am_status s = am_llm_model_load(weights ? weights : dir, NULL, &m);
  CHECK(!s, "%s: %s", dir, am_last_error());
  int n = 0;
  struct dirent *e;
  while (!s && (e = readdir(d))) {
    bool ref = !strncmp(e->d_name, "ref_", 4) || !strncmp(e->d_name, "mlx_", 4);
    if (!ref || !strstr(e->d_name, ".safetensors")) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    /* the default kernels, then for 4-bit models also the float32 ones
     * (am_set_qmm_float_kernels) */
    check_ref(m, dir + strlen("data/models/"), path, tol);
    if (m->cfg->quantized) {
      am_set_qmm_float_kernels(true);
      check_ref(m, dir + strlen("data/models/"), path, tol);
      am_set_qmm_float_kernels(false);
    }
    n++;
  }
  closedir(d);
  if (!s) am_llm_model_free(m);
  return n;
}

/* bfloat16 and float16 activations: the demo's prompt logits stay near
 * the float32 reference. */
static void test_half_activations(void) {
  am_safetensors *st;
  if (am_safetensors_open("data/models/demo-q4/ref_short.safetensors", &st))
    return; /* no references checked out */
  am_array pr = am_safetensors_get(st, "prompt");
  am_array pl = am_safetensors_get(st, "prompt_logits");
  int64_t T = am_array_size(pr), V = am_array_dim(pl, -1);
  int32_t *p = malloc(sizeof *p * (size_t)T);
  float *ref = malloc(sizeof *ref * (size_t)(T * V)),
        *got = malloc(sizeof *got * (size_t)(T * V));
  if (!am_array_read(pr, AM_I32, p, T) &&
      !am_array_read(pl, AM_F32, ref, T * V)) {
    static const am_dtype dts[] = {AM_BF16, AM_F16};
    for (int i = 0; i < 2; i++) {
      am_llm_load_opts o = {.dtype = dts[i]};
      am_llm_model *m;
      if (am_llm_model_load("../models/demo", &o, &m)) {
        CHECK(0, "%s", am_last_error());
        continue;
      }
      double scale;
      if (run_all(m, p, (int)T, 64, false, got, NULL)) {
        double d = max_diff(got, ref, T * V, &scale);
        printf("  demo-q4 %-8s activations: max abs %.3g of %.3g\n",
               am_dtype_name(dts[i]), d, scale);
        /* float16 keeps 11 bits; bfloat16 8, and a near-tie of two
         * experts may then route differently */
        CHECK(d <= (dts[i] == AM_F16 ? 0.01 : 0.06) * scale,
              "%s activations: %g (max %g)", am_dtype_name(dts[i]), d, scale);
      }
      am_llm_model_free(m);
    }
  }
  free(p);
  free(ref);
  free(got);
  am_array_free(pr);
  am_array_free(pl);
  am_safetensors_free(st);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/amorph_test_model_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  const char *names[3] = {"qwen3_next", "qwen3_5_moe", "qwen3_moe"};
  const char *cfgs[3] = {CFG_NEXT, CFG_35, CFG_MOE};
  for (int i = 0; i < 3; i++)
    for (int q = 0; q < 2; q++)
      test_consistency(names[i], cfgs[i], q);
  test_long_generation();
  test_sampling();
  test_files();
  test_quant_modes();
  test_half_activations();

  int refs = 0;
  DIR *d = opendir("data/models");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char dir[512];
    snprintf(dir, sizeof dir, "data/models/%s", e->d_name);
    /* the 4-bit demo's references sit beside the committed demo model */
    bool demo_q = !strcmp(e->d_name, "demo-q4");
    refs +=
        test_refs(dir, demo_q ? "../models/demo" : NULL, demo_q ? 2e-3 : 1e-3);
  }
  if (d) closedir(d);
  printf("reference files checked: %d\n", refs);

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
  return t_summary();
}
