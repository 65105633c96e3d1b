/*
 * convert.c — checkpoint conversion to MLX layout (amorph convert): the
 * model is loaded with the loader's sanitize rules (and quantized on load),
 * then every weight is written under its MLX name, in shards of at most
 * 5 GB as mlx-lm writes them, with config.json's quantization block and
 * the tokenizer files copied.
 */
#include "llm_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SHARD_BYTES ((int64_t)5 << 30)

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  if (!fseek(f, 0, SEEK_END)) {
    long n = ftell(f);
    if (n >= 0 && !fseek(f, 0, SEEK_SET) && (buf = malloc((size_t)n + 1))) {
      if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
      } else {
        buf[n] = 0;
        *len = (size_t)n;
      }
    }
  }
  fclose(f);
  return buf;
}

static am_status write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return am_set_error(AM_ERR_IO, "convert: cannot write %s: %s", path,
                        strerror(errno));
  bool ok = fwrite(data, 1, len, f) == len;
  ok &= fclose(f) == 0;
  return ok ? AM_OK
            : am_set_error(AM_ERR_IO, "convert: writing %s failed", path);
}

/* config.json with the quantization block that mlx-lm writes (mirrored
 * into quantization_config), router gates listed at 8 bits. */
static am_status write_config(const char *src, const char *dst,
                              const am_llm_model *m, const am_llm_quant *q) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", src);
  size_t len;
  char *text = read_file(path, &len);
  if (!text) return am_set_error(AM_ERR_IO, "convert: cannot read %s", path);
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!root) return am_set_error(AM_ERR_IO, "convert: %s is not JSON", path);
  cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization");
  cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
  if (q) {
    static const char *modes[] = {"affine", "mxfp4", "mxfp8", "nvfp4"};
    cJSON *qj = cJSON_CreateObject();
    cJSON_AddNumberToObject(qj, "group_size", q->group_size);
    cJSON_AddNumberToObject(qj, "bits", q->bits);
    cJSON_AddStringToObject(qj, "mode", modes[q->mode]);
    /* per-layer entries: every quantized linear whose bits differ */
    for (int64_t i = 0; i < m->n_named; i++) {
      const char *n = m->names[i];
      size_t l = strlen(n);
      if (l < 7 || strcmp(n + l - 7, ".scales")) continue;
      char p[600];
      snprintf(p, sizeof p, "%.*s", (int)(l - 7), n);
      am_llm_quant lq = m->named_q[i];
      if (lq.bits == q->bits && lq.group_size == q->group_size &&
          lq.mode == q->mode)
        continue;
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "group_size", lq.group_size);
      cJSON_AddNumberToObject(o, "bits", lq.bits);
      cJSON_AddStringToObject(o, "mode", modes[lq.mode]);
      cJSON_AddItemToObject(qj, p, o);
    }
    cJSON_AddItemToObject(root, "quantization_config", cJSON_Duplicate(qj, 1));
    cJSON_AddItemToObject(root, "quantization", qj);
  }
  char *out = cJSON_Print(root);
  cJSON_Delete(root);
  if (!out) return am_set_error(AM_ERR_OOM, "convert: out of memory");
  snprintf(path, sizeof path, "%s/config.json", dst);
  am_status s = write_file(path, out, strlen(out));
  free(out);
  return s;
}

static am_status copy_if_present(const char *src, const char *dst,
                                 const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", src, name);
  size_t len;
  char *text = read_file(path, &len);
  if (!text) return AM_OK;
  snprintf(path, sizeof path, "%s/%s", dst, name);
  am_status s = write_file(path, text, len);
  free(text);
  return s;
}

static int64_t nbytes(am_array x) {
  return am_array_size(x) * (int64_t)am_dtype_size(am_array_dtype(x));
}

/* Writes the weights in shards; the index when there are several. */
static am_status write_weights(const am_llm_model *m, const char *dst,
                               am_llm_progress_fn progress, void *user) {
  int64_t n = m->n_named, nshards = 1, acc = 0, total = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t b = nbytes(m->named[i]);
    if (acc && acc + b > SHARD_BYTES) {
      nshards++;
      acc = 0;
    }
    acc += b;
    total += b;
  }
  static const char *meta[] = {"format", "mlx", NULL};
  cJSON *index = cJSON_CreateObject(), *map = cJSON_CreateObject();
  cJSON *md = cJSON_AddObjectToObject(index, "metadata");
  cJSON_AddNumberToObject(md, "total_size", (double)total);
  cJSON_AddItemToObject(index, "weight_map", map);
  am_status s = AM_OK;
  int64_t i = 0;
  for (int64_t k = 0; k < nshards && !s; k++) {
    char file[64], path[4096];
    if (nshards == 1)
      snprintf(file, sizeof file, "model.safetensors");
    else
      snprintf(file, sizeof file, "model-%05lld-of-%05lld.safetensors",
               (long long)k + 1, (long long)nshards);
    int64_t i0 = i;
    acc = 0;
    for (; i < n; i++) {
      int64_t b = nbytes(m->named[i]);
      if (acc && acc + b > SHARD_BYTES) break;
      acc += b;
      cJSON_AddStringToObject(map, m->names[i], file);
      if (progress) progress(user, i, n, m->names[i]);
    }
    snprintf(path, sizeof path, "%s/%s", dst, file);
    s = am_safetensors_save(path, (const char *const *)m->names + i0,
                            m->named + i0, (int)(i - i0), meta);
  }
  if (!s && progress) progress(user, n, n, "");
  if (!s && nshards > 1) {
    char *text = cJSON_Print(index), path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dst);
    s = text ? write_file(path, text, strlen(text))
             : am_set_error(AM_ERR_OOM, "convert: out of memory");
    free(text);
  }
  cJSON_Delete(index);
  return s;
}

am_status am_llm_convert(const char *src, const char *dst,
                         const am_llm_quant *quant, am_llm_progress_fn progress,
                         void *user) {
  if (!src || !dst)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "am_llm_convert: src and dst are required");
  am_llm_quant q = {64, 4, AM_QUANT_AFFINE};
  if (quant) {
    q = *quant;
    if (q.mode < 0 || q.mode >= AM_QUANT_MODE_COUNT)
      return am_set_error(AM_ERR_INVALID_ARG, "am_llm_convert: bad mode %d",
                          (int)q.mode);
    static const int def_g[] = {64, 32, 32, 16}, def_b[] = {4, 4, 8, 4};
    if (!q.group_size) q.group_size = def_g[q.mode];
    if (!q.bits) q.bits = def_b[q.mode];
  }
  if (mkdir(dst, 0755) && errno != EEXIST)
    return am_set_error(AM_ERR_IO, "am_llm_convert: cannot create %s: %s", dst,
                        strerror(errno));
  am_llm_load_opts o = {.quantize = quant != NULL, .quant = q};
  am_llm_model *m;
  am_status s = am_llm_model_load(src, &o, &m);
  if (s) return s;
  if (m->cfg->quantized && quant) {
    am_llm_model_free(m);
    return am_set_error(AM_ERR_INVALID_ARG,
                        "am_llm_convert: %s is already quantized", src);
  }
  s = write_weights(m, dst, progress, user);
  if (!s)
    s = write_config(src, dst, m,
                     quant ? &q : (m->cfg->quantized ? &m->cfg->quant : NULL));
  static const char *extra[] = {
      "tokenizer.json", "tokenizer_config.json", "generation_config.json",
      "special_tokens_map.json", "chat_template.jinja"};
  for (size_t i = 0; !s && i < sizeof extra / sizeof *extra; i++)
    s = copy_if_present(src, dst, extra[i]);
  am_llm_model_free(m);
  return s;
}
