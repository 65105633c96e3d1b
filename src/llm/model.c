/*
 * model.c — weights: loading a checkpoint into the structures the forward
 * pass uses (always MLX layout), checking every tensor against the shape
 * the config implies, and random models for tests and benchmarks.
 *
 * Checkpoints come in two layouts (qwen3next.md §10–11):
 *  - MLX (mlx-community): tensors are used as stored, memory-mapped; a
 *    linear layer is quantized iff "<path>.scales" exists (mlx-lm's rule),
 *    with the bits and group size config.json gives for that path.
 *  - raw Hugging Face: mlx-lm's sanitize rules are applied here: experts
 *    stacked into one [E, out, in] tensor (or the fused gate_up_proj
 *    split), conv1d weights [C, 1, K] -> [C, K, 1], +1 on the zero-centred
 *    RMSNorm weights of qwen3_next / qwen3_5 (not the DeltaNet's gated
 *    norm), "model.language_model." keys of Qwen3.5 mapped. Detected from
 *    the keys, never from the file name.
 * Norm weights, A_log and dt_bias are kept in float32: transformers
 * computes (1 + w) and the gates in float32, and they are tiny.
 */
#include "llm_internal.h"

#include "kernel/gated_delta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A load in progress: where tensors come from, and the first error. */
typedef struct loader {
  am_llm_model *m;
  const am_llm_config *cfg;
  const am_llm_load_opts *opts;
  am_safetensors *st; /* NULL: random weights */
  uint64_t seed;
  bool hf;           /* raw HF layout: sanitize */
  bool hf_lm_prefix; /* HF keys under "model.language_model." */
  const char *where; /* directory, for messages */
  am_status s;
} loader;

static bool failed(loader *L) {
  return L->s != AM_OK;
}
static void reg(loader *L, const char *name, am_array x);

#define LD_FAIL(L, st, ...)                                                    \
  do {                                                                         \
    if (!failed(L)) (L)->s = am_set_error(st, __VA_ARGS__);                    \
  } while (0)

/* ---------------------------------------------------------------- names */

/* buf = a + b (truncated; names longer than the buffers do not occur). */
static void cat(char *buf, size_t n, const char *a, const char *b) {
  size_t la = strnlen(a, n - 1), lb = strnlen(b, n - 1 - la);
  memmove(buf, a, la);
  memcpy(buf + la, b, lb);
  buf[la + lb] = 0;
}

/* The checkpoint's name for the MLX-layout key `mlx` (written to buf). HF
 * keys lack the Qwen3.5 "language_model." wrapper prefix; its text model
 * sits under "model.language_model." instead of "model.". */
static const char *src_name(loader *L, const char *mlx, char *buf, size_t n) {
  if (!L->hf) return mlx;
  const char *pre = L->cfg->weight_prefix;
  size_t pl = strlen(pre);
  if (pl && !strncmp(mlx, pre, pl)) mlx += pl;
  if (L->hf_lm_prefix && !strncmp(mlx, "model.", 6))
    snprintf(buf, n, "model.language_model.%s", mlx + 6);
  else
    snprintf(buf, n, "%s", mlx);
  return buf;
}

static bool has(loader *L, const char *mlx) {
  if (!L->st) return false;
  char buf[512];
  return am_safetensors_has(L->st, src_name(L, mlx, buf, sizeof buf));
}

static int64_t numel(const int64_t *shape, int ndim) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  return n;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, n - o, "[");
  for (int i = 0; i < ndim && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "",
                          (long long)shape[i]);
  if (o < n) snprintf(buf + o, n - o, "]");
}

/* Fails unless x has `shape`. */
static bool check_shape(loader *L, const char *name, am_array x,
                        const int64_t *shape, int ndim) {
  if (failed(L)) return false;
  if (am_array_status(x)) {
    LD_FAIL(L, am_array_status(x), "%s", am_array_error(x));
    return false;
  }
  bool ok = am_array_ndim(x) == ndim;
  for (int i = 0; ok && i < ndim; i++)
    ok = am_array_shape(x)[i] == shape[i];
  if (!ok) {
    char want[128], got[128];
    shape_str(shape, ndim, want, sizeof want);
    shape_str(am_array_shape(x), am_array_ndim(x), got, sizeof got);
    LD_FAIL(L, AM_ERR_SHAPE,
            "%s: tensor '%s' has shape %s, the config implies %s", L->where,
            name, got, want);
  }
  return ok;
}

/* ---------------------------------------------------------------- random */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t name_seed(loader *L, const char *name) {
  uint64_t h = 1469598103934665603ull ^ L->seed;
  for (const char *p = name; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return h;
}

/* Weights go to the model's device where they enter the loader, so that
 * what is derived from them (sanitize steps, quantize on load) is
 * computed there too. */
static am_array placed(loader *L, am_array x) {
  am_device d = L->opts->device;
  return d == AM_DEVICE_CPU ? x : am_to_device(x, d);
}

/* On an accelerator, random weights are drawn there (mx.random's Threefry
 * from the tensor's name seed): a 45 GB benchmark model then costs no
 * host generation or upload. They differ from the host's draws. */
static am_array device_key(loader *L, const char *name) {
  uint64_t h = name_seed(L, name);
  uint32_t k[2] = {(uint32_t)(h >> 32), (uint32_t)h};
  return am_to_device(am_array_new_data(k, (int64_t[]){2}, 1, AM_U32),
                      L->opts->device);
}

/* Uniform values in [lo, hi) as float32. */
static am_array random_f32(loader *L, const char *name, const int64_t *shape,
                           int ndim, float lo, float hi) {
  if (L->opts->device != AM_DEVICE_CPU)
    return am_add(
        am_mul(am_random_uniform(device_key(L, name), shape, ndim, AM_F32),
               am_float(hi - lo)),
        am_float(lo));
  int64_t n = numel(shape, ndim);
  float *d = malloc((size_t)(n ? n : 1) * sizeof *d);
  if (!d) return am_zeros(shape, ndim, AM_F32); /* OOM shows at eval */
  uint64_t s = name_seed(L, name);
  for (int64_t i = 0; i < n; i++)
    d[i] = lo + (hi - lo) * (float)(splitmix(&s) >> 40) * 0x1p-24f;
  am_array a = am_array_new_data(d, shape, ndim, AM_F32);
  free(d);
  return a;
}

static am_array random_words(loader *L, const char *name, const int64_t *shape,
                             int ndim) {
  if (L->opts->device != AM_DEVICE_CPU)
    return am_random_bits(device_key(L, name), shape, ndim);
  int64_t n = numel(shape, ndim);
  uint64_t *d = malloc((size_t)(n / 2 + 1) * sizeof *d);
  if (!d) return am_zeros(shape, ndim, AM_U32);
  uint64_t s = name_seed(L, name);
  for (int64_t i = 0; i < n / 2 + 1; i++)
    d[i] = splitmix(&s);
  am_array a = am_array_new_data(d, shape, ndim, AM_U32);
  free(d);
  return a;
}

/* -------------------------------------------------------------- tensors */

/* A stored tensor (or a random one), checked against `shape`. */
static am_array get(loader *L, const char *mlx, const int64_t *shape, int ndim,
                    float lo, float hi) {
  if (failed(L)) return NULL;
  am_array x;
  if (!L->st) {
    x = random_f32(L, mlx, shape, ndim, lo, hi);
  } else {
    char buf[512];
    const char *name = src_name(L, mlx, buf, sizeof buf);
    if (!am_safetensors_has(L->st, name)) {
      LD_FAIL(L, AM_ERR_INVALID_ARG, "%s: tensor '%s' is missing", L->where,
              name);
      return NULL;
    }
    x = placed(L, am_safetensors_get(L->st, name));
  }
  return check_shape(L, mlx, x, shape, ndim) ? x : NULL;
}

/* A float vector kept in float32 (norms, gates); +1 for zero-centred norm
 * weights of a raw HF checkpoint. */
static am_array get_vec(loader *L, const char *mlx, int64_t n, bool centred,
                        float lo, float hi) {
  am_array x = get(L, mlx, &n, 1, lo, hi);
  if (!x) return NULL;
  am_array y = am_astype(x, AM_F32);
  if (L->hf && centred) y = am_add(y, am_float(1.0));
  reg(L, mlx, y);
  return y;
}

static am_array get_norm(loader *L, const char *mlx, int64_t n) {
  /* zero-centred in HF for the hybrid models; plain for qwen3_moe */
  bool centred = L->cfg->arch != AM_ARCH_QWEN3_MOE;
  return get_vec(L, mlx, n, centred, 1.0f, 1.0f);
}

/* The float weight [E?, out, in] of a linear at `path` in a raw HF
 * checkpoint whose experts are separate (experts.{e}.X_proj) or fused
 * (experts.gate_up_proj [E, 2I, D], experts.down_proj [E, D, I]). */
static am_array hf_experts(loader *L, const char *path, int64_t E, int64_t out,
                           int64_t in) {
  const char *sw = strstr(path, "switch_mlp.");
  if (!sw) return NULL;
  char base[512], proj[32], name[600];
  snprintf(base, sizeof base, "%.*s", (int)(sw - path), path);
  snprintf(proj, sizeof proj, "%s", sw + strlen("switch_mlp."));
  snprintf(name, sizeof name, "%sexperts.0.%s.weight", base, proj);
  if (has(L, name)) {
    am_array *xs = calloc((size_t)E, sizeof *xs);
    if (!xs) {
      LD_FAIL(L, AM_ERR_OOM, "out of memory");
      return NULL;
    }
    int64_t shape[2] = {out, in};
    for (int64_t e = 0; e < E && !failed(L); e++) {
      snprintf(name, sizeof name, "%sexperts.%lld.%s.weight", base,
               (long long)e, proj);
      xs[e] = get(L, name, shape, 2, 0, 0);
    }
    am_array x = failed(L) ? NULL : am_stack(xs, (int)E, 0);
    free(xs);
    return x;
  }
  bool down = !strcmp(proj, "down_proj");
  snprintf(name, sizeof name, "%sexperts.%s", base,
           down ? "down_proj" : "gate_up_proj");
  if (down) {
    int64_t shape[3] = {E, out, in};
    return get(L, name, shape, 3, 0, 0);
  }
  int64_t shape[3] = {E, 2 * out, in};
  am_array gu = get(L, name, shape, 3, 0, 0);
  if (!gu) return NULL;
  bool gate = !strcmp(proj, "gate_proj");
  return am_slice_axis(gu, 1, gate ? 0 : out, gate ? out : 2 * out, 1);
}

/* Quantization of the linear at `path` when quantizing (on load or for a
 * random model), or NULL to keep it float: mlx-lm's rules (input dim a
 * multiple of the group; router gates at 8 bits). */
static const am_llm_quant *quantize_for(loader *L, const char *path, int64_t in,
                                        am_llm_quant *tmp) {
  const am_llm_quant *q = NULL;
  if (L->opts->quantize) {
    *tmp = L->opts->quant;
    if (!tmp->bits) *tmp = (am_llm_quant){64, 4, AM_QUANT_AFFINE};
    size_t n = strlen(path);
    bool gate = (n >= 9 && !strcmp(path + n - 9, ".mlp.gate")) ||
                (n >= 18 && !strcmp(path + n - 18, "shared_expert_gate"));
    if (gate && L->cfg->arch != AM_ARCH_QWEN3_MOE && tmp->bits < 8)
      *tmp = (am_llm_quant){64, 8, AM_QUANT_AFFINE};
    q = tmp;
  } else if (!L->st) {
    q = am_llm_config_quant_for(L->cfg, path);
  }
  if (q && (in % q->group_size || (in * q->bits) % 32)) q = NULL;
  return q;
}

/* Records a weight under its MLX-layout name (for am_llm_convert). */
static void reg(loader *L, const char *name, am_array x) {
  am_llm_model *m = L->m;
  if (!x || failed(L)) return;
  if (m->n_named == m->cap_named) {
    int64_t c = m->cap_named ? 2 * m->cap_named : 256;
    char **nn = realloc(m->names, (size_t)c * sizeof *nn);
    if (nn) m->names = nn;
    am_array *na = realloc(m->named, (size_t)c * sizeof *na);
    if (na) m->named = na;
    am_llm_quant *nq = realloc(m->named_q, (size_t)c * sizeof *nq);
    if (nq) m->named_q = nq;
    if (!nn || !na || !nq) {
      LD_FAIL(L, AM_ERR_OOM, "out of memory");
      return;
    }
    m->cap_named = c;
  }
  m->names[m->n_named] = strdup(name);
  if (!m->names[m->n_named]) {
    LD_FAIL(L, AM_ERR_OOM, "out of memory");
    return;
  }
  m->named_q[m->n_named] = (am_llm_quant){0};
  m->named[m->n_named++] = x;
}

/* Bytes a linear's weight, scales and biases take as stored. */
static int64_t linear_bytes(const am_llm_linear *l) {
  int64_t bytes = 0;
  am_array parts[3] = {l->w, l->scales, l->biases};
  for (int i = 0; i < 3; i++)
    if (parts[i])
      bytes += am_array_size(parts[i]) *
               (int64_t)am_dtype_size(am_array_dtype(parts[i]));
  return bytes;
}

static void account(loader *L, const char *path, am_llm_linear *l, int64_t E) {
  char name[600];
  snprintf(name, sizeof name, "%s.weight", path);
  reg(L, name, l->w);
  snprintf(name, sizeof name, "%s.scales", path);
  reg(L, name, l->scales);
  if (l->quantized && !failed(L)) L->m->named_q[L->m->n_named - 1] = l->q;
  snprintf(name, sizeof name, "%s.biases", path);
  reg(L, name, l->biases);
  am_llm_model_info *I = &L->m->info;
  int64_t params = l->out * l->in * (E ? E : 1);
  int64_t bytes = linear_bytes(l);
  I->n_params += params;
  I->weight_bytes += bytes;
  int64_t k = E ? L->cfg->num_experts_per_tok : 1;
  I->n_active_params += params / (E ? E : 1) * k;
  I->active_bytes += bytes / (E ? E : 1) * k;
}

/* A linear layer y = x W^T at module `path`: W [E?, out, in]. */
static am_llm_linear get_linear(loader *L, const char *path, int64_t E,
                                int64_t out, int64_t in) {
  am_llm_linear l = {.in = in, .out = out};
  if (failed(L)) return l;
  char name[600];
  int nd = E ? 3 : 2;
  cat(name, sizeof name, path, ".scales");
  if (has(L, name)) { /* stored quantized (MLX layout) */
    const am_llm_quant *q = am_llm_config_quant_for(L->cfg, path);
    if (!q) {
      LD_FAIL(L, AM_ERR_INVALID_ARG,
              "%s: '%s' is quantized but config.json has no quantization "
              "for it",
              L->where, name);
      return l;
    }
    if ((in * q->bits) % 32 || in % q->group_size) {
      LD_FAIL(L, AM_ERR_SHAPE,
              "%s: '%s': input size %lld does not pack at %d bits, group %d",
              L->where, path, (long long)in, q->bits, q->group_size);
      return l;
    }
    l.quantized = true;
    l.q = *q;
    int64_t shape[3] = {E, out, in * q->bits / 32};
    int64_t *sh = E ? shape : shape + 1;
    cat(name, sizeof name, path, ".weight");
    l.w = get(L, name, sh, nd, 0, 0);
    shape[2] = in / q->group_size;
    cat(name, sizeof name, path, ".scales");
    l.scales = get(L, name, sh, nd, 0, 0);
    if (q->mode == AM_QUANT_AFFINE) {
      cat(name, sizeof name, path, ".biases");
      l.biases = get(L, name, sh, nd, 0, 0);
    }
    if (!failed(L)) account(L, path, &l, E);
    return l;
  }

  am_llm_quant tmp;
  const am_llm_quant *q = quantize_for(L, path, in, &tmp);
  int64_t shape[3] = {E, out, in};
  int64_t *sh = E ? shape : shape + 1;
  float a = 1.0f / sqrtf((float)in); /* random: unit-variance outputs-ish */
  if (!L->st && q && q->mode == AM_QUANT_AFFINE) {
    /* random codes: w = s q + b uniform in [-a, a) */
    l.quantized = true;
    l.q = *q;
    shape[2] = in * q->bits / 32;
    cat(name, sizeof name, path, ".weight");
    l.w = random_words(L, name, sh, nd);
    shape[2] = in / q->group_size;
    am_array s = am_full(sh, nd, 2.0 * a / ((1 << q->bits) - 1), AM_BF16);
    am_array b = am_full(sh, nd, -a, AM_BF16);
    l.scales = s;
    l.biases = b;
    account(L, path, &l, E);
    return l;
  }

  am_array w;
  cat(name, sizeof name, path, ".weight");
  if (L->hf && E)
    w = hf_experts(L, path, E, out, in);
  else if (L->st)
    w = get(L, name, sh, nd, 0, 0);
  else
    w = am_astype(random_f32(L, name, sh, nd, -a, a), AM_BF16);
  if (failed(L) || !w) return l;
  if (q) {
    am_array outs[3];
    if (am_quantize(w, q->group_size, q->bits, q->mode, NULL, outs)) {
      LD_FAIL(L, AM_ERR_INVALID_ARG, "%s: quantizing '%s': %s", L->where, path,
              am_last_error());
      return l;
    }
    l.quantized = true;
    l.q = *q;
    l.w = outs[0];
    l.scales = outs[1];
    l.biases = outs[2];
  } else {
    l.w = w;
  }
  account(L, path, &l, E);
  return l;
}

/* ---------------------------------------------------------------- dims */

am_llm_dims am_llm_dims_of(const am_llm_config *c) {
  am_llm_dims d = {
      .D = c->hidden_size,
      .V = c->vocab_size,
      .Hq = c->num_attention_heads,
      .Hkv = c->num_key_value_heads,
      .hd = c->head_dim,
      .Hk = c->linear_num_key_heads,
      .Hv = c->linear_num_value_heads,
      .Dk = c->linear_key_head_dim,
      .Dv = c->linear_value_head_dim,
      .K = c->linear_conv_kernel_dim,
      .E = c->num_experts,
      .topk = c->num_experts_per_tok,
  };
  d.rot = (int64_t)(d.hd * c->partial_rotary_factor);
  d.rot -= d.rot % 2;
  d.C = 2 * d.Hk * d.Dk + d.Hv * d.Dv;
  return d;
}

int am_llm_n_state(const am_llm_model *m) {
  return 2 * (int)m->cfg->num_hidden_layers;
}

/* ---------------------------------------------------------------- layers */

static void load_gdn(loader *L, am_llm_gdn *g, const char *p,
                     const am_llm_dims *d) {
  char n[512];
  int64_t key = d->Hk * d->Dk, val = d->Hv * d->Dv;
  if (L->cfg->arch == AM_ARCH_QWEN3_NEXT) {
    cat(n, sizeof n, p, ".in_proj_qkvz");
    g->qkvz = get_linear(L, n, 0, 2 * key + 2 * val, d->D);
    cat(n, sizeof n, p, ".in_proj_ba");
    g->ba = get_linear(L, n, 0, 2 * d->Hv, d->D);
  } else {
    cat(n, sizeof n, p, ".in_proj_qkv");
    g->qkv = get_linear(L, n, 0, 2 * key + val, d->D);
    cat(n, sizeof n, p, ".in_proj_z");
    g->z = get_linear(L, n, 0, val, d->D);
    cat(n, sizeof n, p, ".in_proj_b");
    g->b = get_linear(L, n, 0, d->Hv, d->D);
    cat(n, sizeof n, p, ".in_proj_a");
    g->a = get_linear(L, n, 0, d->Hv, d->D);
  }
  cat(n, sizeof n, p, ".conv1d.weight");
  int64_t cs[3] = {d->C, d->K, 1}, hs[3] = {d->C, 1, d->K};
  am_array w = get(L, n, L->hf ? hs : cs, 3, -0.5f, 0.5f);
  if (w) {
    /* [C, 1, K] and [C, K, 1] hold the same bytes: a reshape */
    g->conv_w = am_reshape(w, cs, 3);
    reg(L, n, g->conv_w);
    L->m->info.n_params += d->C * d->K;
    L->m->info.weight_bytes +=
        d->C * d->K * (int64_t)am_dtype_size(am_array_dtype(g->conv_w));
  }
  cat(n, sizeof n, p, ".A_log");
  g->A_log = get_vec(L, n, d->Hv, false, 0.0f, 2.7f);
  cat(n, sizeof n, p, ".dt_bias");
  g->dt_bias = get_vec(L, n, d->Hv, false, -0.5f, 0.5f);
  cat(n, sizeof n, p, ".norm.weight");
  g->norm_w = get_vec(L, n, d->Dv, false, 0.8f, 1.2f);
  cat(n, sizeof n, p, ".out_proj");
  g->out = get_linear(L, n, 0, d->D, val);
}

static void load_attn(loader *L, am_llm_attn *a, const char *p,
                      const am_llm_dims *d) {
  char n[512];
  bool gated = L->cfg->arch != AM_ARCH_QWEN3_MOE;
  cat(n, sizeof n, p, ".q_proj");
  a->q = get_linear(L, n, 0, d->Hq * d->hd * (gated ? 2 : 1), d->D);
  cat(n, sizeof n, p, ".k_proj");
  a->k = get_linear(L, n, 0, d->Hkv * d->hd, d->D);
  cat(n, sizeof n, p, ".v_proj");
  a->v = get_linear(L, n, 0, d->Hkv * d->hd, d->D);
  cat(n, sizeof n, p, ".o_proj");
  a->o = get_linear(L, n, 0, d->D, d->Hq * d->hd);
  if (L->cfg->attention_bias) { /* q, k, v, o biases (Qwen attention_bias) */
    am_llm_linear *ls[4] = {&a->q, &a->k, &a->v, &a->o};
    static const char *nm[4] = {".q_proj.bias", ".k_proj.bias", ".v_proj.bias",
                                ".o_proj.bias"};
    for (int i = 0; i < 4; i++) {
      cat(n, sizeof n, p, nm[i]);
      ls[i]->bias = get_vec(L, n, ls[i]->out, false, -0.1f, 0.1f);
      L->m->info.n_params += ls[i]->out;
    }
  }
  cat(n, sizeof n, p, ".q_norm.weight");
  a->q_norm = get_norm(L, n, d->hd);
  cat(n, sizeof n, p, ".k_norm.weight");
  a->k_norm = get_norm(L, n, d->hd);
}

static void load_mlp(loader *L, am_llm_mlp *m, const char *p, int64_t D,
                     int64_t I) {
  char n[512];
  cat(n, sizeof n, p, ".gate_proj");
  m->gate = get_linear(L, n, 0, I, D);
  cat(n, sizeof n, p, ".up_proj");
  m->up = get_linear(L, n, 0, I, D);
  cat(n, sizeof n, p, ".down_proj");
  m->down = get_linear(L, n, 0, D, I);
}

static void load_moe(loader *L, am_llm_moe *e, const char *p,
                     const am_llm_dims *d) {
  char n[512];
  const am_llm_config *c = L->cfg;
  int64_t I = c->moe_intermediate_size;
  cat(n, sizeof n, p, ".gate");
  e->router = get_linear(L, n, 0, d->E, d->D);
  cat(n, sizeof n, p, ".switch_mlp.gate_proj");
  e->gate = get_linear(L, n, d->E, I, d->D);
  cat(n, sizeof n, p, ".switch_mlp.up_proj");
  e->up = get_linear(L, n, d->E, I, d->D);
  cat(n, sizeof n, p, ".switch_mlp.down_proj");
  e->down = get_linear(L, n, d->E, d->D, I);
  e->has_shared = c->shared_expert_intermediate_size > 0;
  if (e->has_shared) {
    cat(n, sizeof n, p, ".shared_expert");
    load_mlp(L, &e->shared, n, d->D, c->shared_expert_intermediate_size);
    cat(n, sizeof n, p, ".shared_expert_gate");
    e->shared_gate = get_linear(L, n, 0, 1, d->D);
  }
}

static void load_layers(loader *L) {
  am_llm_model *m = L->m;
  const am_llm_config *c = L->cfg;
  am_llm_dims d = am_llm_dims_of(c);
  char p[256], n[512];
  for (int64_t i = 0; i < c->num_hidden_layers && !failed(L); i++) {
    am_llm_layer *y = &m->layers[i];
    y->kind = c->layer_types[i];
    y->is_moe = c->layer_is_moe[i];
    snprintf(p, sizeof p, "%smodel.layers.%lld", c->weight_prefix,
             (long long)i);
    if (y->kind == AM_LAYER_LINEAR_ATTENTION) {
      cat(n, sizeof n, p, ".linear_attn");
      load_gdn(L, &y->gdn, n, &d);
    } else {
      cat(n, sizeof n, p, ".self_attn");
      load_attn(L, &y->attn, n, &d);
    }
    cat(n, sizeof n, p, ".input_layernorm.weight");
    y->in_norm = get_norm(L, n, d.D);
    cat(n, sizeof n, p, ".post_attention_layernorm.weight");
    y->post_norm = get_norm(L, n, d.D);
    cat(n, sizeof n, p, ".mlp");
    if (y->is_moe)
      load_moe(L, &y->moe, n, &d);
    else
      load_mlp(L, &y->mlp, n, d.D, c->intermediate_size);
  }
}

/* Calls fn on every weight array of m (the tied lm_head once). */
static void each_array(am_llm_model *m, void (*fn)(am_array *, void *),
                       void *u) {
  for (int64_t i = 0; m->layers && i < m->cfg->num_hidden_layers; i++) {
    am_llm_layer *y = &m->layers[i];
    am_llm_linear *lins[] = {
        &y->gdn.qkvz,        &y->gdn.ba,        &y->gdn.qkv,
        &y->gdn.z,           &y->gdn.b,         &y->gdn.a,
        &y->gdn.out,         &y->attn.q,        &y->attn.k,
        &y->attn.v,          &y->attn.o,        &y->moe.router,
        &y->moe.gate,        &y->moe.up,        &y->moe.down,
        &y->moe.shared.gate, &y->moe.shared.up, &y->moe.shared.down,
        &y->moe.shared_gate, &y->mlp.gate,      &y->mlp.up,
        &y->mlp.down};
    for (size_t j = 0; j < sizeof lins / sizeof *lins; j++) {
      fn(&lins[j]->w, u);
      fn(&lins[j]->scales, u);
      fn(&lins[j]->biases, u);
      fn(&lins[j]->bias, u);
    }
    am_array *arrs[] = {&y->gdn.conv_w, &y->gdn.A_log,   &y->gdn.dt_bias,
                        &y->gdn.norm_w, &y->attn.q_norm, &y->attn.k_norm,
                        &y->in_norm,    &y->post_norm};
    for (size_t j = 0; j < sizeof arrs / sizeof *arrs; j++)
      fn(arrs[j], u);
  }
  am_llm_linear *top[] = {&m->embed, &m->lm_head};
  /* decided before fn changes the handles */
  int ntop = m->lm_head.w == m->embed.w ? 1 : 2;
  bool own_s = m->embed_scales != m->embed.scales,
       own_b = m->embed_biases != m->embed.biases;
  for (int j = 0; j < ntop; j++) {
    fn(&top[j]->w, u);
    fn(&top[j]->scales, u);
    fn(&top[j]->biases, u);
  }
  fn(&m->final_norm, u);
  if (own_s) fn(&m->embed_scales, u);
  if (own_b) fn(&m->embed_biases, u);
}

static void free_one(am_array *x, void *u) {
  (void)u;
  am_array_free(*x);
  *x = NULL;
}
static void keep_one(am_array *x, void *u) {
  (void)u;
  if (*x) *x = am_keep(*x);
}

/* Evaluation in batches: every weight once (sanitize steps, quantize on
 * load, random data), so no step of the forward pass re-does it. */
typedef struct eval_batch {
  am_array buf[64];
  int n;
  am_status s;
} eval_batch;
static void eval_one(am_array *x, void *u) {
  eval_batch *b = u;
  if (!*x || b->s || am_array_is_evaluated(*x)) return;
  b->buf[b->n++] = *x;
  if (b->n == 64) {
    b->s = am_eval(b->buf, b->n);
    b->n = 0;
  }
}
static am_status materialize(am_llm_model *m) {
  eval_batch b = {.n = 0};
  each_array(m, eval_one, &b);
  if (!b.s && b.n) b.s = am_eval(b.buf, b.n);
  return b.s;
}

void am_llm_model_free(am_llm_model *m) {
  if (!m) return;
  if (m->owns_arrays) each_array(m, free_one, NULL);
  for (int64_t i = 0; i < m->n_named; i++)
    free(m->names[i]);
  free(m->names);
  free(m->named);
  free(m->named_q);
  free(m->layers);
  am_kernel_free(m->gated_delta);
  am_llm_config_free(m->cfg);
  free(m);
}

const am_llm_config *am_llm_model_config(const am_llm_model *m) {
  return m ? m->cfg : NULL;
}

am_llm_model_info am_llm_model_get_info(const am_llm_model *m) {
  am_llm_model_info z = {0};
  return m ? m->info : z;
}

/* Scans the keys for the raw HF layout (§11: "detect the layout, do not
 * guess from the file name"). */
static void detect_layout(loader *L) {
  int64_t n = am_safetensors_count(L->st);
  for (int64_t i = 0; i < n; i++) {
    const char *k = am_safetensors_name(L->st, i);
    if (!strncmp(k, "model.language_model.", 21))
      L->hf = L->hf_lm_prefix = true;
    if (strstr(k, ".mlp.experts.")) L->hf = true;
    const char *c = strstr(k, "linear_attn.conv1d.weight");
    if (c && !c[25]) {
      am_safetensors_info info;
      if (!am_safetensors_info_get(L->st, k, &info) && info.ndim == 3 &&
          info.shape[1] == 1 && info.shape[2] > 1)
        L->hf = true;
    }
  }
}

static am_status build(am_llm_config *cfg, am_safetensors *st, uint64_t seed,
                       const am_llm_load_opts *opts, const char *where,
                       am_llm_model **out) {
  am_llm_load_opts defaults = {0};
  if (!opts) opts = &defaults;
  am_dtype dt = opts->dtype == AM_BOOL ? AM_F32 : opts->dtype;
  if (dt != AM_F32 && dt != AM_BF16 && dt != AM_F16) {
    am_llm_config_free(cfg);
    am_safetensors_free(st);
    return am_set_error(AM_ERR_INVALID_ARG,
                        "model: activation dtype must be float32, bfloat16 or "
                        "float16 (got %s)",
                        am_dtype_name(dt));
  }
  if (strcmp(cfg->rope_type, "default") && cfg->rope_type[0]) {
    am_status s = am_set_error(AM_ERR_UNSUPPORTED,
                               "%s: rope_type '%s' is not supported (only the "
                               "default rotary embedding)",
                               where, cfg->rope_type);
    am_llm_config_free(cfg);
    am_safetensors_free(st);
    return s;
  }
  if (opts->device != AM_DEVICE_CPU && !am_device_available(opts->device)) {
    am_llm_config_free(cfg);
    am_safetensors_free(st);
    return am_set_error(AM_ERR_UNSUPPORTED,
                        "model: device %s is not available (am_cuda_init, in "
                        "a build with CUDA, on a machine with a GPU)",
                        am_device_name(opts->device));
  }
  am_llm_model *m = calloc(1, sizeof *m);
  if (m) m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
  if (!m || !m->layers) {
    free(m);
    am_llm_config_free(cfg);
    am_safetensors_free(st);
    return am_set_error(AM_ERR_OOM, "model: out of memory");
  }
  m->cfg = cfg;
  m->dtype = dt;
  m->device = opts->device;
  loader L = {
      .m = m, .cfg = cfg, .opts = opts, .st = st, .seed = seed, .where = where};
  if (st) detect_layout(&L);
  m->info.hf_layout = L.hf;

  am_scope_push();
  am_llm_dims d = am_llm_dims_of(cfg);
  char n[256];
  load_layers(&L);
  /* The embedding: quantized like a linear [V, D]; only one row per token
   * is read, so it counts in neither active params nor bytes. */
  am_llm_model_info before = m->info;
  snprintf(n, sizeof n, "%smodel.embed_tokens", cfg->weight_prefix);
  m->embed = get_linear(&L, n, 0, d.V, d.D);
  m->info.n_active_params = before.n_active_params;
  m->info.active_bytes = before.active_bytes;
  m->embed_scales = m->embed.scales;
  m->embed_biases = m->embed.biases;
  if (!failed(&L) && m->embed.quantized && m->embed.q.mode == AM_QUANT_AFFINE &&
      am_array_dtype(m->embed.scales) != AM_F32) {
    m->embed_scales = am_astype(m->embed.scales, AM_F32);
    m->embed_biases = am_astype(m->embed.biases, AM_F32);
  }
  snprintf(n, sizeof n, "%smodel.norm.weight", cfg->weight_prefix);
  m->final_norm = get_norm(&L, n, d.D);
  snprintf(n, sizeof n, "%slm_head", cfg->weight_prefix);
  if (cfg->tie_word_embeddings) {
    m->lm_head = m->embed;
    if (!failed(&L)) { /* read whole per token */
      m->info.n_active_params += d.V * d.D;
      m->info.active_bytes += linear_bytes(&m->embed);
    }
  } else {
    m->lm_head = get_linear(&L, n, 0, d.V, d.D);
  }
  /* The scope owns every op result: keep the weights beyond it. */
  am_status s = L.s;
  if (!s) {
    each_array(m, keep_one, NULL);
    m->owns_arrays = true;
  }
  am_scope_pop();
  am_safetensors_free(st); /* arrays keep their mappings */
  if (!s) s = materialize(m);
  if (!s) {
    m->gated_delta = gd_kernel_new(true);
    if (!m->gated_delta) s = AM_ERR_OOM;
  }
  if (s) {
    am_llm_model_free(m);
    return s;
  }
  /* per-sequence sizes */
  size_t ds = am_dtype_size(dt);
  for (int64_t i = 0; i < cfg->num_hidden_layers; i++) {
    if (m->layers[i].kind == AM_LAYER_LINEAR_ATTENTION)
      m->info.state_bytes +=
          d.Hv * d.Dv * d.Dk * 4 + (d.K - 1) * d.C * (int64_t)ds;
    else
      m->info.kv_bytes_per_token += 2 * d.Hkv * d.hd * (int64_t)ds;
  }
  if (cfg->quantized || opts->quantize) {
    const am_llm_quant *q = opts->quantize ? &opts->quant : &cfg->quant;
    static const char *modes[] = {"affine", "mxfp4", "mxfp8", "nvfp4"};
    int bits = q->bits ? q->bits : 4, g = q->group_size ? q->group_size : 64;
    snprintf(m->info.quant, sizeof m->info.quant, "%s %d-bit g%d%s",
             modes[q->mode], bits, g,
             cfg->n_quant_overrides ? " (with per-layer overrides)" : "");
  } else {
    snprintf(m->info.quant, sizeof m->info.quant, "none");
  }
  *out = m;
  return AM_OK;
}

am_status am_llm_model_load(const char *dir, const am_llm_load_opts *opts,
                            am_llm_model **out) {
  if (!out)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_model_load: out is NULL");
  *out = NULL;
  if (!dir)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_model_load: dir is NULL");
  am_llm_config *cfg;
  am_status s = am_llm_config_load(dir, &cfg);
  if (s) return s;
  am_safetensors *st;
  s = am_safetensors_open_dir(dir, &st);
  if (s) {
    am_llm_config_free(cfg);
    return s;
  }
  return build(cfg, st, 0, opts, dir, out);
}

am_status am_llm_model_random(const am_llm_config *cfg, uint64_t seed,
                              const am_llm_load_opts *opts,
                              am_llm_model **out) {
  if (!out)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_model_random: out is NULL");
  *out = NULL;
  if (!cfg)
    return am_set_error(AM_ERR_INVALID_ARG, "am_llm_model_random: cfg is NULL");
  am_llm_config *c = am_llm_config_clone(cfg);
  if (!c) return am_set_error(AM_ERR_OOM, "am_llm_model_random: out of memory");
  return build(c, NULL, seed, opts, "(random model)", out);
}
