/*
 * config.c — config.json of Qwen3-Next, Qwen3.5/3.6-MoE and Qwen3-MoE
 * checkpoints, as publishers ship them (HF, mlx-community) and as current
 * transformers writes them (rope_parameters instead of rope_theta).
 *
 * Every field is checked for type and range; the first problem is reported
 * with the file and the field's path (text_config.x for Qwen3.5 fields).
 */
#include "amorph_llm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libamorph's error setter (src/core/error.c). */
am_status am_set_error(am_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Upper bounds that no real model approaches; they keep a hostile config
 * from asking for absurd allocations. */
#define CFG_MAX_DIM ((int64_t)1 << 31)
#define CFG_MAX_LAYERS 4096

typedef struct cfg_ctx {
  const char *file;
  const cJSON *root;
  const cJSON *text; /* text_config, or root */
  am_status s;       /* first error */
} cfg_ctx;

static const char *kind(const cJSON *j) {
  if (cJSON_IsNumber(j)) return "a number";
  if (cJSON_IsString(j)) return "a string";
  if (cJSON_IsArray(j)) return "an array";
  if (cJSON_IsObject(j)) return "an object";
  if (cJSON_IsBool(j)) return "a boolean";
  return "null";
}

/* The field in text_config first (Qwen3.5 keeps the text model there),
 * else at the top level; *where names it for messages. Null counts as
 * absent (transformers writes null for unset optional fields). */
static const cJSON *field(const cJSON *obj, const char *key) {
  const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  return cJSON_IsNull(j) ? NULL : j;
}
static const cJSON *lookup(cfg_ctx *c, const char *key, const char **where) {
  const cJSON *j = field(c->text, key);
  *where = c->text != c->root ? "text_config." : "";
  if (!j && c->text != c->root) {
    j = field(c->root, key);
    *where = "";
  }
  return j;
}

static bool fail(cfg_ctx *c, am_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(cfg_ctx *c, am_status s, const char *fmt, ...) {
  if (c->s) return false;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->s = am_set_error(s, "%s: %s", c->file, msg);
  return false;
}

static bool as_int(const cJSON *j, int64_t *v) {
  if (!cJSON_IsNumber(j)) return false;
  double d = j->valuedouble;
  if (!(fabs(d) <= 9007199254740992.0) || d != floor(d)) return false;
  *v = (int64_t)d;
  return true;
}

/* An integer field in [lo, hi]; `def` when absent unless required. */
static int64_t get_int(cfg_ctx *c, const char *key, int64_t def, bool required,
                       int64_t lo, int64_t hi) {
  const char *w;
  const cJSON *j = lookup(c, key, &w);
  if (!j) {
    if (required)
      fail(c, AM_ERR_INVALID_ARG, "required field '%s' is missing", key);
    return def;
  }
  int64_t v;
  if (!as_int(j, &v)) {
    fail(c, AM_ERR_INVALID_ARG, "field '%s%s' must be an integer, not %s", w,
         key, kind(j));
    return def;
  }
  if (v < lo || v > hi) {
    fail(c, AM_ERR_INVALID_ARG, "field '%s%s' is %lld, outside [%lld, %lld]", w,
         key, (long long)v, (long long)lo, (long long)hi);
    return def;
  }
  return v;
}

static double num_in(cfg_ctx *c, const cJSON *j, const char *w, const char *key,
                     double def, double lo, double hi) {
  if (!j) return def;
  if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) {
    fail(c, AM_ERR_INVALID_ARG, "field '%s%s' must be a number, not %s", w, key,
         kind(j));
    return def;
  }
  if (!(j->valuedouble >= lo && j->valuedouble <= hi)) {
    fail(c, AM_ERR_INVALID_ARG, "field '%s%s' is %g, outside [%g, %g]", w, key,
         j->valuedouble, lo, hi);
    return def;
  }
  return j->valuedouble;
}

static double get_num(cfg_ctx *c, const char *key, double def, double lo,
                      double hi) {
  const char *w;
  const cJSON *j = lookup(c, key, &w);
  return num_in(c, j, w, key, def, lo, hi);
}

static bool get_bool(cfg_ctx *c, const char *key, bool def) {
  const char *w;
  const cJSON *j = lookup(c, key, &w);
  if (!j) return def;
  if (!cJSON_IsBool(j)) {
    fail(c, AM_ERR_INVALID_ARG, "field '%s%s' must be true or false, not %s", w,
         key, kind(j));
    return def;
  }
  return cJSON_IsTrue(j);
}

/* ======================================================================
 *  Architecture
 * ====================================================================== */

static const struct {
  const char *model_type, *architecture;
  am_llm_arch arch;
  const char *prefix;
} arch_table[] = {
    {"qwen3_next", "Qwen3NextForCausalLM", AM_ARCH_QWEN3_NEXT, ""},
    {"qwen3_5_moe", "Qwen3_5MoeForConditionalGeneration", AM_ARCH_QWEN3_5_MOE,
     "language_model."},
    {"qwen3_5_moe_text", "Qwen3_5MoeForCausalLM", AM_ARCH_QWEN3_5_MOE, ""},
    {"qwen3_moe", "Qwen3MoeForCausalLM", AM_ARCH_QWEN3_MOE, ""},
};
#define N_ARCH ((int)(sizeof arch_table / sizeof arch_table[0]))

const char *am_llm_arch_name(am_llm_arch a) {
  switch (a) {
  case AM_ARCH_QWEN3_NEXT:
    return "qwen3_next";
  case AM_ARCH_QWEN3_5_MOE:
    return "qwen3_5_moe";
  case AM_ARCH_QWEN3_MOE:
    return "qwen3_moe";
  }
  return "unknown";
}

/* From "model_type", else the first of "architectures". */
static int find_arch(cfg_ctx *c) {
  const cJSON *mt = field(c->root, "model_type");
  const cJSON *ar = field(c->root, "architectures");
  if (mt && !cJSON_IsString(mt)) {
    fail(c, AM_ERR_INVALID_ARG, "field 'model_type' must be a string, not %s",
         kind(mt));
    return -1;
  }
  if (mt) {
    for (int i = 0; i < N_ARCH; i++)
      if (!strcmp(mt->valuestring, arch_table[i].model_type)) return i;
    fail(c, AM_ERR_UNSUPPORTED,
         "model_type '%.64s' is not supported (qwen3_next, qwen3_5_moe, "
         "qwen3_moe)",
         mt->valuestring);
    return -1;
  }
  if (!ar) {
    fail(c, AM_ERR_INVALID_ARG,
         "required field 'model_type' (or 'architectures') is missing");
    return -1;
  }
  if (!cJSON_IsArray(ar) || !cJSON_IsString(cJSON_GetArrayItem(ar, 0))) {
    fail(c, AM_ERR_INVALID_ARG,
         "field 'architectures' must be a list of strings");
    return -1;
  }
  const char *a0 = cJSON_GetArrayItem(ar, 0)->valuestring;
  for (int i = 0; i < N_ARCH; i++)
    if (!strcmp(a0, arch_table[i].architecture)) return i;
  fail(c, AM_ERR_UNSUPPORTED, "architecture '%.64s' is not supported", a0);
  return -1;
}

/* ======================================================================
 *  Sections
 * ====================================================================== */

static void parse_layers(cfg_ctx *c, am_llm_config *g) {
  int64_t L = g->num_hidden_layers;
  g->layer_types = calloc((size_t)L + 1, sizeof *g->layer_types);
  g->layer_is_moe = calloc((size_t)L + 1, sizeof *g->layer_is_moe);
  if (!g->layer_types || !g->layer_is_moe) {
    fail(c, AM_ERR_OOM, "out of memory");
    return;
  }
  const char *w;
  const cJSON *lt = lookup(c, "layer_types", &w);
  if (lt) {
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != L) {
      fail(c, AM_ERR_INVALID_ARG,
           "field '%slayer_types' must be a list of %lld strings", w,
           (long long)L);
      return;
    }
    int64_t i = 0;
    for (const cJSON *e = lt->child; e; e = e->next, i++) {
      const char *v = cJSON_IsString(e) ? e->valuestring : "";
      if (!strcmp(v, "linear_attention"))
        g->layer_types[i] = AM_LAYER_LINEAR_ATTENTION;
      else if (!strcmp(v, "full_attention"))
        g->layer_types[i] = AM_LAYER_FULL_ATTENTION;
      else {
        fail(c, AM_ERR_INVALID_ARG,
             "field '%slayer_types[%lld]' must be \"linear_attention\" or "
             "\"full_attention\"",
             w, (long long)i);
        return;
      }
      if (g->arch == AM_ARCH_QWEN3_MOE &&
          g->layer_types[i] == AM_LAYER_LINEAR_ATTENTION) {
        fail(c, AM_ERR_INVALID_ARG,
             "field 'layer_types[%lld]': qwen3_moe has no linear attention",
             (long long)i);
        return;
      }
    }
  } else if (g->arch == AM_ARCH_QWEN3_MOE) {
    for (int64_t i = 0; i < L; i++)
      g->layer_types[i] = AM_LAYER_FULL_ATTENTION;
  } else {
    g->full_attention_interval =
        get_int(c, "full_attention_interval", 4, false, 1, CFG_MAX_LAYERS);
    for (int64_t i = 0; i < L; i++)
      g->layer_types[i] = (i + 1) % g->full_attention_interval
                              ? AM_LAYER_LINEAR_ATTENTION
                              : AM_LAYER_FULL_ATTENTION;
  }

  /* Dense-MLP layers: HF Qwen3Next/Qwen3Moe DecoderLayer use a sparse
   * block iff layer not in mlp_only_layers and num_experts > 0 and
   * (layer + 1) % decoder_sparse_step == 0. Qwen3.5: always sparse. */
  const cJSON *mo = lookup(c, "mlp_only_layers", &w);
  if (mo && g->arch != AM_ARCH_QWEN3_5_MOE) {
    if (!cJSON_IsArray(mo)) {
      fail(c, AM_ERR_INVALID_ARG, "field '%smlp_only_layers' must be a list",
           w);
      return;
    }
    int64_t n = cJSON_GetArraySize(mo), i = 0;
    g->mlp_only_layers = calloc((size_t)n + 1, sizeof *g->mlp_only_layers);
    if (!g->mlp_only_layers) {
      fail(c, AM_ERR_OOM, "out of memory");
      return;
    }
    for (const cJSON *e = mo->child; e; e = e->next, i++) {
      int64_t v;
      if (!as_int(e, &v) || v < 0 || v >= L) {
        fail(c, AM_ERR_INVALID_ARG,
             "field '%smlp_only_layers[%lld]' must be a layer index in [0, "
             "%lld)",
             w, (long long)i, (long long)L);
        return;
      }
      g->mlp_only_layers[g->n_mlp_only_layers++] = v;
    }
  }
  for (int64_t i = 0; i < L; i++)
    g->layer_is_moe[i] =
        g->num_experts > 0 && (i + 1) % g->decoder_sparse_step == 0;
  for (int64_t k = 0; k < g->n_mlp_only_layers; k++)
    g->layer_is_moe[g->mlp_only_layers[k]] = false;
  bool any_dense = false;
  for (int64_t i = 0; i < L; i++)
    any_dense |= !g->layer_is_moe[i];
  if (any_dense && g->intermediate_size <= 0)
    fail(c, AM_ERR_INVALID_ARG,
         "field 'intermediate_size' is needed: some layers are dense MLPs");
}

/* rope_theta and partial_rotary_factor from rope_parameters (current
 * transformers; possibly one dict per layer type), else at the top level
 * (as publishers ship them), else in rope_scaling. */
static void parse_rope(cfg_ctx *c, am_llm_config *g) {
  const char *w;
  const cJSON *rp = lookup(c, "rope_parameters", &w);
  const char *rw = "rope_parameters";
  if (!rp) {
    rp = lookup(c, "rope_scaling", &w);
    rw = "rope_scaling";
  }
  if (rp && !cJSON_IsObject(rp)) {
    fail(c, AM_ERR_INVALID_ARG, "field '%s%s' must be an object, not %s", w, rw,
         kind(rp));
    return;
  }
  const cJSON *fa = field(rp, "full_attention");
  if (cJSON_IsObject(fa) && !field(rp, "rope_type")) rp = fa;
  char path[64];
  snprintf(path, sizeof path, "%s%s.", w, rw);

  /* Where both are given, rope_parameters wins (transformers reads it
   * and may leave a stale top-level copy). */
  bool in_rp = rp && !strcmp(rw, "rope_parameters");
  const char *tw;
  const cJSON *theta = in_rp ? field(rp, "rope_theta") : NULL;
  tw = path;
  if (!theta) theta = lookup(c, "rope_theta", &tw);
  if (!theta && rp) {
    theta = field(rp, "rope_theta");
    tw = path;
  }
  g->rope_theta = num_in(c, theta, tw, "rope_theta", 10000, 1e-9, 1e30);
  double prf_def = g->arch == AM_ARCH_QWEN3_MOE ? 1.0 : 0.25;
  const cJSON *prf = in_rp ? field(rp, "partial_rotary_factor") : NULL;
  tw = path;
  if (!prf) prf = lookup(c, "partial_rotary_factor", &tw);
  if (!prf && rp) {
    prf = field(rp, "partial_rotary_factor");
    tw = path;
  }
  g->partial_rotary_factor =
      num_in(c, prf, tw, "partial_rotary_factor", prf_def, 1e-9, 1);

  snprintf(g->rope_type, sizeof g->rope_type, "default");
  const cJSON *rt = field(rp, "rope_type");
  if (!rt) rt = field(rp, "type");
  if (rt &&
      (!cJSON_IsString(rt) || strlen(rt->valuestring) >= sizeof g->rope_type)) {
    fail(c, AM_ERR_INVALID_ARG, "field '%srope_type' must be a short string",
         path);
    return;
  }
  if (rt) snprintf(g->rope_type, sizeof g->rope_type, "%s", rt->valuestring);
  g->rope_factor = num_in(c, field(rp, "factor"), path, "factor", 1, 1e-9, 1e9);
  int64_t v = 0;
  const cJSON *om = field(rp, "original_max_position_embeddings");
  if (om && (!as_int(om, &v) || v < 1)) {
    fail(c, AM_ERR_INVALID_ARG,
         "field '%soriginal_max_position_embeddings' must be a positive "
         "integer",
         path);
    return;
  }
  g->rope_original_max_position_embeddings = v;
  const cJSON *ms = field(rp, "mrope_section");
  if (ms) {
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) > 4) {
      fail(c, AM_ERR_INVALID_ARG,
           "field '%smrope_section' must be a list of at most 4 integers",
           path);
      return;
    }
    for (const cJSON *e = ms->child; e; e = e->next) {
      if (!as_int(e, &v) || v < 0 || v > CFG_MAX_DIM) {
        fail(c, AM_ERR_INVALID_ARG,
             "field '%smrope_section' must hold non-negative integers", path);
        return;
      }
      g->mrope_section[g->n_mrope_section++] = v;
    }
  }
  const cJSON *mi = field(rp, "mrope_interleaved");
  if (mi && !cJSON_IsBool(mi)) {
    fail(c, AM_ERR_INVALID_ARG,
         "field '%smrope_interleaved' must be true or false", path);
    return;
  }
  g->mrope_interleaved = cJSON_IsTrue(mi);
  int64_t rot = (int64_t)(g->head_dim * g->partial_rotary_factor);
  if (!c->s && (rot < 2 || rot % 2))
    fail(c, AM_ERR_INVALID_ARG,
         "head_dim %lld x partial_rotary_factor %g gives %lld rotary dims "
         "(must be even and >= 2)",
         (long long)g->head_dim, g->partial_rotary_factor, (long long)rot);
}

static void parse_tokens(cfg_ctx *c, am_llm_config *g) {
  g->bos_token_id = get_int(c, "bos_token_id", -1, false, 0, CFG_MAX_DIM);
  const char *w;
  const cJSON *eos = lookup(c, "eos_token_id", &w);
  int64_t v;
  if (!eos) return;
  if (as_int(eos, &v) && v >= 0) {
    g->eos_token_ids[g->n_eos_token_ids++] = v;
    return;
  }
  if (!cJSON_IsArray(eos) || cJSON_GetArraySize(eos) > 8) {
    fail(c, AM_ERR_INVALID_ARG,
         "field '%seos_token_id' must be a token id or a list of at most 8", w);
    return;
  }
  for (const cJSON *e = eos->child; e; e = e->next) {
    if (!as_int(e, &v) || v < 0) {
      fail(c, AM_ERR_INVALID_ARG,
           "field '%seos_token_id' must hold non-negative integers", w);
      return;
    }
    g->eos_token_ids[g->n_eos_token_ids++] = v;
  }
}

static const char *const quant_modes[AM_QUANT_MODE_COUNT] = {
    [AM_QUANT_AFFINE] = "affine",
    [AM_QUANT_MXFP4] = "mxfp4",
    [AM_QUANT_MXFP8] = "mxfp8",
    [AM_QUANT_NVFP4] = "nvfp4",
};

/* One {"group_size", "bits", "mode"} dict; `def` fills absent fields. */
static bool parse_quant_dict(cfg_ctx *c, const cJSON *q, const char *path,
                             const am_llm_quant *def, am_llm_quant *out) {
  *out = *def;
  const cJSON *m = field(q, "mode");
  if (m) {
    int k = -1;
    for (int i = 0; cJSON_IsString(m) && i < AM_QUANT_MODE_COUNT; i++)
      if (!strcmp(m->valuestring, quant_modes[i])) k = i;
    if (k < 0)
      return fail(c, AM_ERR_INVALID_ARG,
                  "field '%s.mode' must be affine, mxfp4, mxfp8 or nvfp4",
                  path);
    out->mode = (am_quant_mode)k;
    if (out->mode != def->mode) {
      /* Each mode has its own defaults (as mx.quantize). */
      static const int gs[] = {64, 32, 32, 16}, bits[] = {4, 4, 8, 4};
      out->group_size = gs[k];
      out->bits = bits[k];
    }
  }
  const cJSON *gs = field(q, "group_size"), *b = field(q, "bits");
  int64_t v;
  if (gs) {
    if (!as_int(gs, &v) || (v != 16 && v != 32 && v != 64 && v != 128))
      return fail(c, AM_ERR_INVALID_ARG,
                  "field '%s.group_size' must be 16, 32, 64 or 128", path);
    out->group_size = (int)v;
  }
  if (b) {
    if (!as_int(b, &v) || v < 2 || v > 8 || v == 7)
      return fail(c, AM_ERR_INVALID_ARG,
                  "field '%s.bits' must be 2, 3, 4, 5, 6 or 8", path);
    out->bits = (int)v;
  }
  return true;
}

/* MLX "quantization": defaults plus per-module overrides keyed by path
 * (a dict, or false for a module left unquantized). */
static void parse_quant(cfg_ctx *c, am_llm_config *g) {
  const cJSON *q = field(c->root, "quantization");
  if (!q) return;
  if (!cJSON_IsObject(q)) {
    fail(c, AM_ERR_INVALID_ARG, "field 'quantization' must be an object");
    return;
  }
  am_llm_quant def = {64, 4, AM_QUANT_AFFINE};
  if (!parse_quant_dict(c, q, "quantization", &def, &g->quant)) return;
  g->quantized = true;
  int64_t n = 0;
  for (const cJSON *e = q->child; e; e = e->next)
    n += cJSON_IsObject(e) || cJSON_IsBool(e);
  g->quant_overrides = calloc((size_t)n + 1, sizeof *g->quant_overrides);
  if (!g->quant_overrides) {
    fail(c, AM_ERR_OOM, "out of memory");
    return;
  }
  for (const cJSON *e = q->child; e; e = e->next) {
    if (!cJSON_IsObject(e) && !cJSON_IsBool(e)) {
      if (strcmp(e->string, "group_size") && strcmp(e->string, "bits") &&
          strcmp(e->string, "mode"))
        fail(c, AM_ERR_INVALID_ARG,
             "field 'quantization.%.128s' must be an object or a boolean",
             e->string);
      continue;
    }
    am_llm_quant_override *o = &g->quant_overrides[g->n_quant_overrides];
    size_t l = strlen(e->string) + 1;
    o->path = malloc(l);
    if (!o->path) {
      fail(c, AM_ERR_OOM, "out of memory");
      return;
    }
    memcpy(o->path, e->string, l);
    g->n_quant_overrides++;
    o->quantized = !cJSON_IsFalse(e);
    o->quant = g->quant;
    char path[160];
    snprintf(path, sizeof path, "quantization.%.128s", e->string);
    if (cJSON_IsObject(e) &&
        !parse_quant_dict(c, e, path, &g->quant, &o->quant))
      return;
  }
}

/* ======================================================================
 *  Entry points
 * ====================================================================== */

void am_llm_config_free(am_llm_config *g) {
  if (!g) return;
  free(g->layer_types);
  free(g->layer_is_moe);
  free(g->mlp_only_layers);
  for (int64_t i = 0; i < g->n_quant_overrides; i++)
    free(g->quant_overrides[i].path);
  free(g->quant_overrides);
  free(g);
}

/* A deep copy (models keep their own); NULL on OOM. */
am_llm_config *am_llm_config_clone(const am_llm_config *g) {
  am_llm_config *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  *c = *g;
  c->layer_types = NULL;
  c->layer_is_moe = NULL;
  c->mlp_only_layers = NULL;
  c->quant_overrides = NULL;
  c->n_quant_overrides = 0;
  size_t L = (size_t)g->num_hidden_layers + 1;
  c->layer_types = calloc(L, sizeof *c->layer_types);
  c->layer_is_moe = calloc(L, sizeof *c->layer_is_moe);
  c->mlp_only_layers =
      calloc((size_t)g->n_mlp_only_layers + 1, sizeof *c->mlp_only_layers);
  c->quant_overrides =
      calloc((size_t)g->n_quant_overrides + 1, sizeof *c->quant_overrides);
  if (!c->layer_types || !c->layer_is_moe || !c->mlp_only_layers ||
      !c->quant_overrides)
    goto oom;
  memcpy(c->layer_types, g->layer_types, (L - 1) * sizeof *c->layer_types);
  memcpy(c->layer_is_moe, g->layer_is_moe, (L - 1) * sizeof *c->layer_is_moe);
  if (g->n_mlp_only_layers)
    memcpy(c->mlp_only_layers, g->mlp_only_layers,
           (size_t)g->n_mlp_only_layers * sizeof *c->mlp_only_layers);
  for (int64_t i = 0; i < g->n_quant_overrides; i++) {
    c->quant_overrides[i] = g->quant_overrides[i];
    c->quant_overrides[i].path = strdup(g->quant_overrides[i].path);
    if (!c->quant_overrides[i].path) goto oom;
    c->n_quant_overrides = i + 1;
  }
  return c;
oom:
  am_llm_config_free(c);
  return NULL;
}

static void parse_all(cfg_ctx *c, am_llm_config *g) {
  int a = find_arch(c);
  if (a < 0) return;
  g->arch = arch_table[a].arch;
  g->weight_prefix = arch_table[a].prefix;
  const cJSON *tc = field(c->root, "text_config");
  if (tc && !cJSON_IsObject(tc)) {
    fail(c, AM_ERR_INVALID_ARG, "field 'text_config' must be an object");
    return;
  }
  if (tc && g->arch == AM_ARCH_QWEN3_5_MOE) c->text = tc;

  bool next = g->arch == AM_ARCH_QWEN3_NEXT,
       q35 = g->arch == AM_ARCH_QWEN3_5_MOE;
  bool moe3 = g->arch == AM_ARCH_QWEN3_MOE;
  g->hidden_size = get_int(c, "hidden_size", 0, true, 1, CFG_MAX_DIM);
  g->num_hidden_layers =
      get_int(c, "num_hidden_layers", 0, true, 1, CFG_MAX_LAYERS);
  g->vocab_size = get_int(c, "vocab_size", 0, true, 1, CFG_MAX_DIM);
  g->num_attention_heads =
      get_int(c, "num_attention_heads", 0, true, 1, CFG_MAX_DIM);
  g->num_key_value_heads =
      get_int(c, "num_key_value_heads", moe3 ? 4 : 2, false, 1, CFG_MAX_DIM);
  int64_t hd_def =
      moe3 ? g->hidden_size /
                 (g->num_attention_heads ? g->num_attention_heads : 1)
           : 256;
  g->head_dim = get_int(c, "head_dim", hd_def, false, 1, CFG_MAX_DIM);
  g->intermediate_size = get_int(c, "intermediate_size",
                                 next   ? 5632
                                 : moe3 ? 6144
                                        : 0,
                                 false, 0, CFG_MAX_DIM);
  g->moe_intermediate_size = get_int(c, "moe_intermediate_size",
                                     moe3 ? 768 : 512, false, 1, CFG_MAX_DIM);
  g->shared_expert_intermediate_size =
      moe3 ? 0
           : get_int(c, "shared_expert_intermediate_size", 512, false, 1,
                     CFG_MAX_DIM);
  /* transformers 5 writes qwen3_moe's expert count as num_local_experts */
  const char *ew;
  const char *ekey =
      !lookup(c, "num_experts", &ew) && lookup(c, "num_local_experts", &ew)
          ? "num_local_experts"
          : "num_experts";
  g->num_experts = get_int(c, ekey,
                           next  ? 512
                           : q35 ? 256
                                 : 128,
                           false, q35 ? 1 : 0, CFG_MAX_DIM);
  g->num_experts_per_tok =
      get_int(c, "num_experts_per_tok", next ? 10 : 8, false, 1, CFG_MAX_DIM);
  g->norm_topk_prob = get_bool(c, "norm_topk_prob", !moe3);
  g->decoder_sparse_step =
      q35 ? 1 : get_int(c, "decoder_sparse_step", 1, false, 1, CFG_MAX_LAYERS);
  if (!moe3) {
    g->linear_num_key_heads =
        get_int(c, "linear_num_key_heads", 16, false, 1, CFG_MAX_DIM);
    g->linear_num_value_heads =
        get_int(c, "linear_num_value_heads", 32, false, 1, CFG_MAX_DIM);
    g->linear_key_head_dim =
        get_int(c, "linear_key_head_dim", 128, false, 1, CFG_MAX_DIM);
    g->linear_value_head_dim =
        get_int(c, "linear_value_head_dim", 128, false, 1, CFG_MAX_DIM);
    g->linear_conv_kernel_dim =
        get_int(c, "linear_conv_kernel_dim", 4, false, 1, 1024);
  }
  g->rms_norm_eps = get_num(c, "rms_norm_eps", 1e-6, 1e-30, 1);
  g->tie_word_embeddings = get_bool(c, "tie_word_embeddings", false);
  g->attention_bias = get_bool(c, "attention_bias", false);
  g->max_position_embeddings =
      get_int(c, "max_position_embeddings", 32768, false, 1, INT64_MAX / 2);
  if (c->s) return;

  /* Consistency the model code relies on. */
  if (g->num_attention_heads % g->num_key_value_heads) {
    fail(c, AM_ERR_INVALID_ARG,
         "num_attention_heads %lld is not a multiple of num_key_value_heads "
         "%lld",
         (long long)g->num_attention_heads, (long long)g->num_key_value_heads);
    return;
  }
  if (!moe3 && g->linear_num_value_heads % g->linear_num_key_heads) {
    fail(c, AM_ERR_INVALID_ARG,
         "linear_num_value_heads %lld is not a multiple of "
         "linear_num_key_heads %lld",
         (long long)g->linear_num_value_heads,
         (long long)g->linear_num_key_heads);
    return;
  }
  if (g->num_experts && g->num_experts_per_tok > g->num_experts) {
    fail(c, AM_ERR_INVALID_ARG,
         "num_experts_per_tok %lld exceeds num_experts %lld",
         (long long)g->num_experts_per_tok, (long long)g->num_experts);
    return;
  }
  parse_layers(c, g);
  if (!c->s) parse_rope(c, g);
  if (!c->s) parse_tokens(c, g);
  if (!c->s) parse_quant(c, g);
}

am_status am_llm_config_parse(const char *json, size_t len, const char *name,
                              am_llm_config **out) {
  if (!out)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_config_parse: out is NULL");
  *out = NULL;
  if (!name) name = "config.json";
  if (!json) return am_set_error(AM_ERR_INVALID_ARG, "%s: no JSON text", name);
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
    return am_set_error(AM_ERR_IO, "%s: not valid JSON (at byte %zu)", name,
                        off);
  }
  cfg_ctx c = {.file = name, .root = root, .text = root};
  am_llm_config *g = calloc(1, sizeof *g);
  if (!g)
    fail(&c, AM_ERR_OOM, "out of memory");
  else if (!cJSON_IsObject(root))
    fail(&c, AM_ERR_IO, "top level is %s, not an object", kind(root));
  else
    parse_all(&c, g);
  cJSON_Delete(root);
  if (c.s) {
    am_llm_config_free(g);
    return c.s;
  }
  *out = g;
  return AM_OK;
}

am_status am_llm_config_load(const char *path, am_llm_config **out) {
  if (!out)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_config_load: out is NULL");
  *out = NULL;
  if (!path)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_config_load: NULL path");
  char buf[4096];
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    snprintf(buf, sizeof buf, "%s/config.json", path);
    path = buf;
  }
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return am_set_error(AM_ERR_IO, "%s: cannot open: %s", path,
                        strerror(errno));
  char *text = NULL;
  size_t n = 0, cap = 0;
  bool ok = true;
  for (;;) {
    if (n + 4096 > cap) {
      cap = cap ? 2 * cap : 16384;
      char *t = cap <= (64u << 20) ? realloc(text, cap) : NULL;
      if (!t) {
        ok = false;
        break;
      }
      text = t;
    }
    size_t k = fread(text + n, 1, 4096, fp);
    n += k;
    if (k < 4096) break;
  }
  ok = ok && !ferror(fp);
  fclose(fp);
  if (!ok) {
    free(text);
    return am_set_error(AM_ERR_IO, "%s: cannot read (or larger than 64 MiB)",
                        path);
  }
  am_status s = am_llm_config_parse(text, n, path, out);
  free(text);
  return s;
}

const am_llm_quant *am_llm_config_quant_for(const am_llm_config *g,
                                            const char *path) {
  if (!g || !g->quantized) return NULL;
  for (int64_t i = 0; path && i < g->n_quant_overrides; i++)
    if (!strcmp(g->quant_overrides[i].path, path))
      return g->quant_overrides[i].quantized ? &g->quant_overrides[i].quant
                                             : NULL;
  return &g->quant;
}
