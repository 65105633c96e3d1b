/*
 * generate.c — `amorph generate`: load a model, feed the prompt, stream the
 * sampled tokens' text to stdout, then report speeds on stderr.
 */
#include "amorph_tokenizer.h"
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define CMD "generate"
#define MAX_EOS 32

typedef struct gen_args {
  const char *model, *prompt, *prompt_tokens, *prompt_file, *system, *dump;
  bool chat, stats, quantize, no_compile, quiet;
  int max_tokens, top_k, rep_context, threads, dtype, device;
  float temperature, top_p, min_p, rep_penalty;
  uint64_t seed;
} gen_args;

/* Everything a run holds, freed in one place. */
typedef struct gen_ctx {
  gen_args a;
  char *file_text;   /* --prompt-file contents          */
  char *rendered;    /* ChatML text (--chat)             */
  int32_t *ids;      /* prompt ids                       */
  size_t n_ids;      /* count                            */
  bool ids_from_tok; /* ids owned by the tokenizer       */
  am_llm_model *model;
  am_tokenizer *tok;
  am_detok *detok;
  am_llm_session *sess;
  float *row; /* one row of logits (--dump-logits)         */
  cli_npy npy;
  int32_t eos[MAX_EOS];
  int n_eos;
  int64_t vocab;
  int64_t n_unprintable; /* generated ids the tokenizer lacks */
} gen_ctx;

static const char *dtype_names[] = {"f32", "bf16", "f16", NULL};
static const char *device_names[] = {"cpu", "cuda", NULL};
static const am_dtype dtype_values[] = {AM_F32, AM_BF16, AM_F16};

static const char usage[] =
    "--model DIR (--prompt TEXT | --prompt-tokens IDS | --prompt-file F) "
    "[flags]\n\n"
    "Streams the generated text to stdout; speeds and memory go to stderr.\n"
    "Stops after --max-tokens or at an end-of-sequence id (config.json,\n"
    "generation_config.json, and the tokenizer's <|im_end|> and\n"
    "<|endoftext|>). Without a tokenizer.json, prints the generated ids.";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_args(gen_args *a, int argc, char **argv) {
  *a = (gen_args){.max_tokens = 256, .dtype = -1, .device = 0};
  cli_flag flags[] = {
      CLI_FLAG_STR("--model", &a->model, "DIR", "model directory (required)"),
      CLI_FLAG_STR("--prompt", &a->prompt, "TEXT", "prompt text"),
      CLI_FLAG_STR("--prompt-tokens", &a->prompt_tokens, "IDS",
                   "prompt as token ids: 1,2,3 (no tokenizer needed)"),
      CLI_FLAG_STR("--prompt-file", &a->prompt_file, "F",
                   "prompt text from a file ('-': stdin)"),
      CLI_FLAG_SWITCH("--chat", &a->chat,
                      "render the prompt as a ChatML user turn"),
      CLI_FLAG_STR("--system", &a->system, "TEXT",
                   "system message (implies --chat)"),
      CLI_FLAG_INT("--max-tokens", &a->max_tokens, "N",
                   "tokens to generate at most (default 256)", 0, 1 << 30),
      CLI_FLAG_FLOAT("--temperature", &a->temperature, "T",
                     "sampling temperature (default 0: greedy)", 0, 100),
      CLI_FLAG_INT("--top-k", &a->top_k, "K", "keep the K likeliest (0: off)",
                   0, 1 << 30),
      CLI_FLAG_FLOAT("--top-p", &a->top_p, "P",
                     "nucleus sampling (0 or 1: off)", 0, 1),
      CLI_FLAG_FLOAT("--min-p", &a->min_p, "P",
                     "drop tokens below P x the top probability (0: off)", 0,
                     1),
      CLI_FLAG_FLOAT("--repetition-penalty", &a->rep_penalty, "R",
                     "penalize recent tokens (0 or 1: off)", 0, 100),
      CLI_FLAG_INT("--repetition-context", &a->rep_context, "N",
                   "tokens the penalty looks back on (default 20)", 0, 1 << 30),
      CLI_FLAG_U64("--seed", &a->seed, "S", "sampling seed (default 0)"),
      CLI_FLAG_SWITCH("--stats", &a->stats,
                      "also print the compiled step's statistics"),
      CLI_FLAG_STR(
          "--dump-logits", &a->dump, "F.npy",
          "write the logits of each generated token ([n, vocab] float32)"),
      CLI_FLAG_CHOICE("--dtype", &a->dtype, "f32|bf16|f16",
                      "activation and cache dtype (default f32)", dtype_names),
      CLI_FLAG_CHOICE("--device", &a->device, "cpu|cuda",
                      "where the model runs (default cpu)", device_names),
      CLI_FLAG_SWITCH("--quantize", &a->quantize,
                      "quantize float weights at load (4-bit g64 affine)"),
      CLI_FLAG_SWITCH("--no-compile", &a->no_compile,
                      "run the step eagerly, not compiled"),
      CLI_FLAG_INT("--threads", &a->threads, "N",
                   "CPU threads (default: all cores)", 1, 1024),
      CLI_FLAG_SWITCH("--quiet", &a->quiet, "nothing on stderr but errors"),
      CLI_FLAG_END,
  };
  int rc = cli_parse(CMD, usage, flags, argc, argv);
  if (rc != CLI_OK) return rc;
  if (!a->model) return cli_usage_error(CMD, "--model DIR is required");
  int n_src = !!a->prompt + !!a->prompt_tokens + !!a->prompt_file;
  if (n_src != 1)
    return cli_usage_error(CMD, "give exactly one of --prompt, "
                                "--prompt-tokens and --prompt-file");
  if (a->system) a->chat = true;
  if (a->chat && a->prompt_tokens)
    return cli_usage_error(CMD, "--chat needs a text prompt, not token ids");
  return CLI_OK;
}

/* ---- the prompt ---------------------------------------------------------- */

static int parse_token_list(gen_ctx *g, const char *s) {
  size_t cap = 16;
  g->ids = malloc(cap * sizeof *g->ids);
  if (!g->ids) return cli_usage_error(CMD, "out of memory");
  for (const char *p = s;;) {
    while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n')
      p++;
    if (!*p) break;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno == ERANGE || v < 0 || v > INT32_MAX ||
        (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\n'))
      return cli_usage_error(CMD, "--prompt-tokens: bad token id at '%.20s'",
                             p);
    if (g->n_ids == cap) {
      int32_t *bigger = realloc(g->ids, 2 * cap * sizeof *g->ids);
      if (!bigger) return cli_usage_error(CMD, "out of memory");
      g->ids = bigger;
      cap *= 2;
    }
    g->ids[g->n_ids++] = (int32_t)v;
    p = end;
  }
  if (!g->n_ids) return cli_usage_error(CMD, "--prompt-tokens: no ids");
  return CLI_OK;
}

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1) break;
    char *bigger = realloc(buf, cap * 2);
    if (!bigger) free(buf);
    buf = bigger;
    cap *= 2;
  }
  if (buf && ferror(f)) {
    free(buf);
    return NULL;
  }
  if (buf) buf[n] = 0;
  *len = n;
  return buf;
}

static int read_prompt_file(gen_ctx *g) {
  const char *path = g->a.prompt_file;
  bool use_stdin = !strcmp(path, "-");
  FILE *f = use_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "amorph %s: cannot open %s: %s\n", CMD, path,
            strerror(errno));
    return CLI_ERR_LIB;
  }
  size_t len;
  g->file_text = read_all(f, &len);
  if (!use_stdin) fclose(f);
  if (!g->file_text) {
    fprintf(stderr, "amorph %s: cannot read %s\n", CMD, path);
    return CLI_ERR_LIB;
  }
  if (strlen(g->file_text) != len)
    return cli_usage_error(CMD, "%s: the prompt contains a NUL byte", path);
  g->a.prompt = g->file_text;
  return CLI_OK;
}

/* Text prompt (optionally ChatML-rendered) -> ids with the tokenizer. */
static int encode_prompt(gen_ctx *g) {
  if (!g->tok) {
    fprintf(stderr,
            "amorph %s: %s has no tokenizer.json: give --prompt-tokens\n", CMD,
            g->a.model);
    return CLI_ERR_LIB;
  }
  const char *text = g->a.prompt;
  am_status s;
  if (g->a.chat) {
    am_chat_msg msgs[2];
    int n = 0;
    if (g->a.system) msgs[n++] = (am_chat_msg){"system", g->a.system};
    msgs[n++] = (am_chat_msg){"user", g->a.prompt};
    s = am_chatml_render(msgs, n, true, &g->rendered, NULL);
    if (s != AM_OK) return cli_lib_error(CMD, "chat template", s);
    text = g->rendered;
  }
  s = am_tokenizer_encode(g->tok, text, strlen(text), &g->ids, &g->n_ids);
  if (s != AM_OK) return cli_lib_error(CMD, "encoding the prompt", s);
  g->ids_from_tok = true;
  if (!g->n_ids) return cli_usage_error(CMD, "the prompt encodes to no tokens");
  return CLI_OK;
}

static int check_ids(const gen_ctx *g) {
  for (size_t i = 0; i < g->n_ids; i++)
    if (g->ids[i] >= g->vocab)
      return cli_usage_error(CMD,
                             "prompt token %d (position %zu) is not below "
                             "the vocabulary size %lld",
                             g->ids[i], i, (long long)g->vocab);
  return CLI_OK;
}

/* ---- end-of-sequence ids ------------------------------------------------- */

static void add_eos(gen_ctx *g, int64_t id) {
  if (id < 0 || id > INT32_MAX) return;
  for (int i = 0; i < g->n_eos; i++)
    if (g->eos[i] == id) return;
  if (g->n_eos < MAX_EOS) g->eos[g->n_eos++] = (int32_t)id;
}

static bool is_eos(const gen_ctx *g, int32_t id) {
  for (int i = 0; i < g->n_eos; i++)
    if (g->eos[i] == id) return true;
  return false;
}

/* generation_config.json's "eos_token_id" (an int or a list), if any. A
 * file that is there but unreadable only earns a warning. */
static void eos_from_generation_config(gen_ctx *g) {
  char path[4096];
  snprintf(path, sizeof path, "%s/generation_config.json", g->a.model);
  FILE *f = fopen(path, "rb");
  if (!f) return;
  size_t len;
  char *text = read_all(f, &len);
  fclose(f);
  cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
  free(text);
  if (!root) {
    if (!g->a.quiet)
      fprintf(stderr, "amorph %s: warning: %s is not valid JSON (ignored)\n",
              CMD, path);
    return;
  }
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
  if (cJSON_IsNumber(e)) add_eos(g, (int64_t)e->valuedouble);
  const cJSON *it;
  if (cJSON_IsArray(e)) cJSON_ArrayForEach(it, e) {
      if (cJSON_IsNumber(it)) add_eos(g, (int64_t)it->valuedouble);
    }
  cJSON_Delete(root);
}

static void collect_eos(gen_ctx *g) {
  const am_llm_config *c = am_llm_model_config(g->model);
  for (int i = 0; i < c->n_eos_token_ids; i++)
    add_eos(g, c->eos_token_ids[i]);
  eos_from_generation_config(g);
  if (g->tok) {
    add_eos(g, am_tokenizer_token_id(g->tok, "<|im_end|>"));
    add_eos(g, am_tokenizer_token_id(g->tok, "<|endoftext|>"));
  }
}

/* ---- loading --------------------------------------------------------------
 */

static int load_tokenizer(gen_ctx *g) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer.json", g->a.model);
  if (!cli_is_file(path)) return CLI_OK; /* ids in, ids out */
  am_status s = am_tokenizer_load(path, &g->tok);
  if (s != AM_OK) return cli_lib_error(CMD, "loading the tokenizer", s);
  g->detok = am_detok_new(g->tok, true);
  if (!g->detok) return cli_lib_error(CMD, "detokenizer", AM_ERR_OOM);
  return CLI_OK;
}

static int load_model(gen_ctx *g) {
  am_llm_load_opts o = {.quantize = g->a.quantize};
  if (g->a.dtype >= 0) o.dtype = dtype_values[g->a.dtype];
  if (g->a.device == 1) {
#ifdef AM_HAVE_CUDA
    am_status cs = am_cuda_init();
    if (cs != AM_OK) return cli_lib_error(CMD, "starting CUDA", cs);
    o.device = AM_DEVICE_CUDA;
#else
    fprintf(stderr,
            "amorph %s: --device cuda: this build has no CUDA backend "
            "(build with the CUDA toolkit installed)\n",
            CMD);
    return CLI_ERR_LIB;
#endif
  }
  am_status s = am_llm_model_load(g->a.model, &o, &g->model);
  if (s != AM_OK) return cli_lib_error(CMD, "loading the model", s);
  g->vocab = am_llm_model_config(g->model)->vocab_size;
  return CLI_OK;
}

static int new_session(gen_ctx *g) {
  am_llm_session_opts o = {
      .sampler = {.temperature = g->a.temperature,
                  .top_k = g->a.top_k,
                  .top_p = g->a.top_p,
                  .min_p = g->a.min_p,
                  .repetition_penalty = g->a.rep_penalty,
                  .repetition_context = g->a.rep_context,
                  .seed = g->a.seed},
      .no_compile = g->a.no_compile,
  };
  am_status s = am_llm_session_new(g->model, &o, &g->sess);
  if (s != AM_OK) return cli_lib_error(CMD, "creating the session", s);
  if (!g->a.dump) return CLI_OK;
  g->row = malloc((size_t)g->vocab * sizeof(float));
  if (!g->row) return cli_lib_error(CMD, "logits buffer", AM_ERR_OOM);
  if (!cli_npy_open(&g->npy, g->a.dump, g->vocab)) {
    fprintf(stderr, "amorph %s: cannot create %s: %s\n", CMD, g->a.dump,
            strerror(errno));
    return CLI_ERR_LIB;
  }
  return CLI_OK;
}

/* ---- generation ---------------------------------------------------------- */

/* Writes the text of one generated id (or the id itself without a
 * tokenizer) to stdout, flushed. */
static int emit(gen_ctx *g, int32_t id) {
  if (!g->tok) {
    printf("%d ", id);
    fflush(stdout);
    return CLI_OK;
  }
  if (!am_tokenizer_token_str(g->tok, id)) { /* padded vocabulary rows */
    g->n_unprintable++;
    return CLI_OK;
  }
  const char *piece;
  size_t len;
  am_status s = am_detok_push(g->detok, id, &piece, &len);
  if (s != AM_OK) return cli_lib_error(CMD, "detokenizing", s);
  fwrite(piece, 1, len, stdout);
  fflush(stdout);
  return CLI_OK;
}

static int finish_text(gen_ctx *g) {
  if (g->tok) {
    const char *piece;
    size_t len;
    am_status s = am_detok_flush(g->detok, &piece, &len);
    if (s != AM_OK) return cli_lib_error(CMD, "detokenizing", s);
    fwrite(piece, 1, len, stdout);
  }
  putchar('\n');
  fflush(stdout);
  return CLI_OK;
}

typedef struct gen_times {
  double load, prefill, decode;
  int64_t generated, steps;
  bool context_full; /* stopped at the model's max context */
} gen_times;

static int dump_row(gen_ctx *g) {
  if (!g->a.dump || cli_npy_append(&g->npy, g->row)) return CLI_OK;
  fprintf(stderr, "amorph %s: writing %s: %s\n", CMD, g->a.dump,
          strerror(errno));
  return CLI_ERR_LIB;
}

static int generate(gen_ctx *g, gen_times *t) {
  int32_t next;
  double t0 = now();
  am_status s =
      am_llm_session_feed(g->sess, g->ids, (int64_t)g->n_ids, &next, g->row);
  t->prefill = now() - t0;
  if (s != AM_OK) return cli_lib_error(CMD, "prompt", s);
  int64_t ctx = am_llm_model_config(g->model)->max_position_embeddings;
  while (t->generated < g->a.max_tokens && !is_eos(g, next)) {
    int rc = dump_row(g);
    if (rc == CLI_OK) rc = emit(g, next);
    if (rc != CLI_OK) return rc;
    if (++t->generated == g->a.max_tokens) break;
    if (am_llm_session_position(g->sess) >= ctx) {
      t->context_full = true;
      break;
    }
    int32_t tok = next;
    t0 = now();
    s = am_llm_session_feed(g->sess, &tok, 1, &next, g->row);
    t->decode += now() - t0;
    t->steps++;
    if (s != AM_OK) return cli_lib_error(CMD, "decoding", s);
  }
  return finish_text(g);
}

static void print_report(const gen_ctx *g, const gen_times *t) {
  char b[32];
  fprintf(stderr, "load:       %.2f s\n", t->load);
  fprintf(stderr, "prompt:     %zu tokens, %.2f tok/s (%.3f s)\n", g->n_ids,
          t->prefill > 0 ? (double)g->n_ids / t->prefill : 0.0, t->prefill);
  fprintf(stderr, "generation: %lld tokens, ", (long long)t->generated);
  if (t->steps)
    fprintf(stderr, "%.2f tok/s (%lld steps in %.3f s)\n",
            (double)t->steps / t->decode, (long long)t->steps, t->decode);
  else
    fprintf(stderr, "no decode steps\n");
  struct rusage ru;
  double rss = getrusage(RUSAGE_SELF, &ru) == 0 ? 1024.0 * ru.ru_maxrss : 0;
  char r[32];
  fprintf(stderr,
          "peak memory: %s in arrays, %s resident (with mapped "
          "weights)\n",
          cli_bytes((double)am_memory_get_stats().peak_bytes, b, sizeof b),
          cli_bytes(rss, r, sizeof r));
  if (t->context_full)
    fprintf(stderr, "note: stopped at the model's context length (%lld)\n",
            (long long)am_llm_model_config(g->model)->max_position_embeddings);
  if (g->n_unprintable)
    fprintf(stderr,
            "note: %lld generated ids have no token in tokenizer.json\n",
            (long long)g->n_unprintable);
  if (!g->a.stats) return;
  am_compile_stats c = am_llm_session_stats(g->sess);
  fprintf(stderr,
          "compile:    %llu calls, %llu traces, %llu replays, %llu reinfers, "
          "%llu fallbacks\n",
          (unsigned long long)c.calls, (unsigned long long)c.traces,
          (unsigned long long)c.replays, (unsigned long long)c.reinfers,
          (unsigned long long)c.fallbacks);
  fprintf(stderr,
          "graph:      %llu nodes (%llu traced), %llu fused groups, %llu "
          "merged\n",
          (unsigned long long)c.nodes, (unsigned long long)c.traced_nodes,
          (unsigned long long)c.fused_groups, (unsigned long long)c.cse_merged);
  fprintf(stderr, "time:       trace %.4f s, reinfer %.4f s\n", c.trace_seconds,
          c.reinfer_seconds);
  if (c.graph_captures + c.graph_updates + c.graph_launches)
    fprintf(stderr,
            "cuda graph: %llu captures, %llu updates, %llu launches, %llu "
            "refused\n",
            (unsigned long long)c.graph_captures,
            (unsigned long long)c.graph_updates,
            (unsigned long long)c.graph_launches,
            (unsigned long long)c.graph_refused);
}

static void gen_free(gen_ctx *g) {
  if (g->npy.f) cli_npy_close(&g->npy);
  free(g->row);
  if (g->sess) am_llm_session_free(g->sess);
  am_detok_free(g->detok);
  am_tokenizer_free(g->tok);
  if (g->model) am_llm_model_free(g->model);
  if (g->ids_from_tok)
    am_tokenizer_buf_free(g->ids);
  else
    free(g->ids);
  if (g->rendered) am_tokenizer_buf_free(g->rendered);
  free(g->file_text);
}

static int gen_run(gen_ctx *g) {
  gen_args *a = &g->a;
  int rc = CLI_OK;
  if (a->prompt_tokens) rc = parse_token_list(g, a->prompt_tokens);
  if (rc == CLI_OK && a->prompt_file) rc = read_prompt_file(g);
  if (rc != CLI_OK) return rc;
  if (a->threads) am_set_num_threads(a->threads);

  gen_times t = {0};
  double t0 = now();
  rc = load_tokenizer(g);
  if (rc == CLI_OK) rc = load_model(g);
  if (rc == CLI_OK && !g->ids) rc = encode_prompt(g);
  if (rc == CLI_OK) rc = check_ids(g);
  if (rc == CLI_OK) rc = new_session(g);
  if (rc != CLI_OK) return rc;
  collect_eos(g);
  t.load = now() - t0;

  rc = generate(g, &t);
  if (rc == CLI_OK && a->dump && !cli_npy_close(&g->npy)) {
    fprintf(stderr, "amorph %s: writing %s: %s\n", CMD, a->dump,
            strerror(errno));
    rc = CLI_ERR_LIB;
  }
  if (rc == CLI_OK && !a->quiet) print_report(g, &t);
  return rc;
}

int cli_generate(int argc, char **argv) {
  gen_ctx g = {0};
  int rc = parse_args(&g.a, argc, argv);
  if (rc < 0) return CLI_OK; /* --help */
  if (rc == CLI_OK) rc = gen_run(&g);
  gen_free(&g);
  return rc;
}
