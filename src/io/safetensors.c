/*
 * safetensors.c — memory-mapped, zero-copy safetensors checkpoints.
 *
 * File layout: u64 little-endian N, N bytes of JSON header (possibly
 * space-padded), then the data section. The header maps a tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
 * data section) plus an optional "__metadata__" string map.
 *
 * Everything in the header is untrusted: it is validated completely at open
 * time, so that am_safetensors_get never reads outside the mapping. Arrays
 * borrow the mapping through a refcount, so the file stays mapped while
 * any tensor lives, even after am_safetensors_free.
 */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is refused before parsing (as the reference
 * Rust implementation does): it bounds the memory a hostile file can make
 * the JSON parser allocate. */
#define ST_MAX_HEADER (100u << 20)
/* Offsets and dims are JSON numbers (doubles): beyond 2^53 they are not
 * exact, so larger values are refused. */
#define ST_MAX_INT ((uint64_t)1 << 53)

/* ======================================================================
 *  Dtypes: every dtype the format defines, with its size in bits
 * ====================================================================== */

typedef struct st_dtype {
  const char *name;
  int bits;
  am_dtype dtype; /* AM_DTYPE_COUNT: known to the format, not to amorph */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"BOOL", 8, AM_BOOL},
    {"U8", 8, AM_U8},
    {"I8", 8, AM_I8},
    {"U32", 32, AM_U32},
    {"I32", 32, AM_I32},
    {"I64", 64, AM_I64},
    {"F16", 16, AM_F16},
    {"BF16", 16, AM_BF16},
    {"F32", 32, AM_F32},
    {"F64", 64, AM_F64},
    {"U16", 16, AM_DTYPE_COUNT},
    {"I16", 16, AM_DTYPE_COUNT},
    {"U64", 64, AM_DTYPE_COUNT},
    {"C64", 64, AM_DTYPE_COUNT},
    {"F8_E4M3", 8, AM_DTYPE_COUNT},
    {"F8_E5M2", 8, AM_DTYPE_COUNT},
    {"F8_E8M0", 8, AM_DTYPE_COUNT},
    {"F6_E2M3", 6, AM_DTYPE_COUNT},
    {"F6_E3M2", 6, AM_DTYPE_COUNT},
    {"F4", 4, AM_DTYPE_COUNT},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static int st_dtype_find(const char *name) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (!strcmp(st_dtypes[i].name, name)) return i;
  return -1;
}

static const char *st_dtype_of(am_dtype t) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (st_dtypes[i].dtype == t) return st_dtypes[i].name;
  return NULL;
}

/* ======================================================================
 *  Structures
 * ====================================================================== */

/* One mapped file; shared by the checkpoint and every array borrowing it. */
typedef struct st_map {
  atomic_long refs;
  void *base;
  size_t len;
} st_map;

typedef struct st_file {
  char *path;
  st_map *map;
  size_t data_start; /* 8 + header length */
  int n_meta;
  char **meta; /* 2 * n_meta strings: key, value, ... */
} st_file;

typedef struct st_tensor {
  char *name;
  int dt; /* index into st_dtypes */
  int ndim;
  int64_t shape[AM_MAX_DIMS];
  uint64_t begin, end; /* within the data section */
  int file;
} st_tensor;

struct am_safetensors {
  st_file *files;
  int n_files;
  st_tensor *t; /* sorted by name */
  int64_t n, cap;
};

static void st_map_release(void *ctx) {
  st_map *m = ctx;
  if (atomic_fetch_sub(&m->refs, 1) != 1) return;
  munmap(m->base, m->len);
  free(m);
}

void am_safetensors_free(am_safetensors *st) {
  if (!st) return;
  for (int i = 0; i < st->n_files; i++) {
    st_file *f = &st->files[i];
    if (f->map) st_map_release(f->map);
    for (int k = 0; k < 2 * f->n_meta; k++)
      free(f->meta[k]);
    free(f->meta);
    free(f->path);
  }
  for (int64_t i = 0; i < st->n; i++)
    free(st->t[i].name);
  free(st->files);
  free(st->t);
  free(st);
}

static char *st_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* "[10, 4]" into buf. */
static const char *st_shape_str(const int64_t *shape, int ndim, char *buf,
                                size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "",
                          (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

/* ======================================================================
 *  Header parsing
 * ====================================================================== */

/* An exact non-negative integer JSON number, at most 2^53. */
static bool st_json_uint(const cJSON *j, uint64_t *out) {
  if (!cJSON_IsNumber(j)) return false;
  double v = j->valuedouble;
  if (!(v >= 0 && v <= (double)ST_MAX_INT) || v != (double)(uint64_t)v)
    return false;
  *out = (uint64_t)v;
  return true;
}

static const char *st_json_kind(const cJSON *j) {
  if (!j) return "missing";
  if (cJSON_IsNumber(j)) return "a number";
  if (cJSON_IsString(j)) return "a string";
  if (cJSON_IsArray(j)) return "an array";
  if (cJSON_IsObject(j)) return "an object";
  if (cJSON_IsBool(j)) return "a boolean";
  return "null";
}

static am_status st_grow(am_safetensors *st) {
  if (st->n < st->cap) return AM_OK;
  int64_t cap = st->cap ? 2 * st->cap : 64;
  st_tensor *t = realloc(st->t, (size_t)cap * sizeof *t);
  if (!t) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  st->t = t;
  st->cap = cap;
  return AM_OK;
}

/* Parses one tensor entry `e` named `name` of file `fi` into st->t. */
static am_status st_parse_tensor(am_safetensors *st, int fi, const char *name,
                                 const cJSON *e, uint64_t data_len) {
  const char *path = st->files[fi].path;
  if (!cJSON_IsObject(e))
    return AM_FAIL(AM_ERR_IO, "%s: tensor '%s': entry is %s, not an object",
                   path, name, st_json_kind(e));
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(jd))
    return AM_FAIL(AM_ERR_IO, "%s: tensor '%s': 'dtype' is %s, not a string",
                   path, name, st_json_kind(jd));
  int dt = st_dtype_find(jd->valuestring);
  if (dt < 0)
    return AM_FAIL(AM_ERR_IO, "%s: tensor '%s': unknown dtype '%.32s'", path,
                   name, jd->valuestring);
  if (!cJSON_IsArray(js))
    return AM_FAIL(AM_ERR_IO, "%s: tensor '%s': 'shape' is %s, not an array",
                   path, name, st_json_kind(js));
  int ndim = cJSON_GetArraySize(js);
  if (ndim > AM_MAX_DIMS)
    return AM_FAIL(AM_ERR_UNSUPPORTED,
                   "%s: tensor '%s': %d dims (amorph supports at most %d)",
                   path, name, ndim, AM_MAX_DIMS);
  st_tensor t = {.dt = dt, .ndim = ndim, .file = fi};
  uint64_t numel = 1;
  bool overflow = false;
  int d = 0;
  for (const cJSON *x = js->child; x; x = x->next, d++) {
    uint64_t v;
    if (!st_json_uint(x, &v)) {
      if (cJSON_IsNumber(x))
        return AM_FAIL(AM_ERR_IO,
                       "%s: tensor '%s': shape dim %d is %g (must be a "
                       "non-negative integer)",
                       path, name, d, x->valuedouble);
      return AM_FAIL(AM_ERR_IO,
                     "%s: tensor '%s': shape dim %d is %s, not an integer",
                     path, name, d, st_json_kind(x));
    }
    t.shape[d] = (int64_t)v;
    overflow |= __builtin_mul_overflow(numel, v, &numel);
  }
  if (overflow || numel > ST_MAX_INT)
    return AM_FAIL(AM_ERR_IO, "%s: tensor '%s': element count overflows", path,
                   name);
  if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
    return AM_FAIL(AM_ERR_IO,
                   "%s: tensor '%s': 'data_offsets' is %s, not [begin, end]",
                   path, name, st_json_kind(jo));
  if (!st_json_uint(jo->child, &t.begin) ||
      !st_json_uint(jo->child->next, &t.end))
    return AM_FAIL(AM_ERR_IO,
                   "%s: tensor '%s': data_offsets must be non-negative "
                   "integers",
                   path, name);
  if (t.begin > t.end || t.end > data_len)
    return AM_FAIL(AM_ERR_IO,
                   "%s: tensor '%s': data_offsets [%llu, %llu] out of range "
                   "(data section is %llu bytes)",
                   path, name, (unsigned long long)t.begin,
                   (unsigned long long)t.end, (unsigned long long)data_len);
  /* numel <= 2^53 and bits <= 64: the product fits in 64 bits. */
  uint64_t bits = numel * (uint64_t)st_dtypes[dt].bits;
  char sh[256];
  if (bits % 8)
    return AM_FAIL(AM_ERR_IO,
                   "%s: tensor '%s': shape %s of %s is not a whole number of "
                   "bytes",
                   path, name, st_shape_str(t.shape, ndim, sh, sizeof sh),
                   st_dtypes[dt].name);
  if (t.end - t.begin != bits / 8) {
    am_dtype adt = st_dtypes[dt].dtype;
    return AM_FAIL(
        AM_ERR_IO,
        "%s: tensor '%s': data_offsets [%llu, %llu] do not match "
        "shape %s %s (%llu bytes)",
        path, name, (unsigned long long)t.begin, (unsigned long long)t.end,
        st_shape_str(t.shape, ndim, sh, sizeof sh),
        adt < AM_DTYPE_COUNT ? am_dtype_name(adt) : st_dtypes[dt].name,
        (unsigned long long)(bits / 8));
  }
  if (st_grow(st)) return AM_ERR_OOM;
  t.name = st_strdup(name);
  if (!t.name) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  st->t[st->n++] = t;
  return AM_OK;
}

static am_status st_parse_meta(st_file *f, const cJSON *m) {
  if (!cJSON_IsObject(m))
    return AM_FAIL(AM_ERR_IO, "%s: '__metadata__' is %s, not an object",
                   f->path, st_json_kind(m));
  int n = cJSON_GetArraySize(m);
  f->meta = calloc((size_t)(2 * n + 1), sizeof *f->meta);
  if (!f->meta) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  for (const cJSON *e = m->child; e; e = e->next) {
    if (!cJSON_IsString(e))
      return AM_FAIL(AM_ERR_IO,
                     "%s: '__metadata__' entry '%s' is %s, not a string",
                     f->path, e->string, st_json_kind(e));
    char *k = st_strdup(e->string), *v = st_strdup(e->valuestring);
    f->meta[2 * f->n_meta] = k;
    f->meta[2 * f->n_meta + 1] = v;
    f->n_meta++;
    if (!k || !v) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  }
  return AM_OK;
}

/* Validates and parses the header of the mapped file `fi`; tensors are
 * appended to st->t. */
static am_status st_parse_header(am_safetensors *st, int fi) {
  st_file *f = &st->files[fi];
  const unsigned char *p = f->map->base;
  size_t len = f->map->len;
  if (len < 8)
    return AM_FAIL(AM_ERR_IO,
                   "%s: file is %zu bytes, too short for a safetensors header",
                   f->path, len);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | p[i];
  if (n > len - 8)
    return AM_FAIL(AM_ERR_IO,
                   "%s: header length %llu runs past the end of the file "
                   "(%zu bytes): truncated or not a safetensors file",
                   f->path, (unsigned long long)n, len);
  if (n > ST_MAX_HEADER)
    return AM_FAIL(AM_ERR_IO, "%s: header length %llu exceeds the %u MiB limit",
                   f->path, (unsigned long long)n, ST_MAX_HEADER >> 20);
  const char *h = (const char *)p + 8;
  /* A NUL would silently cut names short in the parser. */
  if (memchr(h, 0, n))
    return AM_FAIL(AM_ERR_IO, "%s: header contains a NUL byte", f->path);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(h, n, &end, false);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= h && at <= h + n ? (size_t)(at - h) : 0;
    return AM_FAIL(AM_ERR_IO, "%s: header is not valid JSON (at byte %zu)",
                   f->path, off);
  }
  am_status s = AM_OK;
  for (const char *q = end; q && q < h + n; q++)
    if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
      s = AM_FAIL(AM_ERR_IO, "%s: trailing bytes after the JSON header",
                  f->path);
      break;
    }
  if (!s && !cJSON_IsObject(root))
    s = AM_FAIL(AM_ERR_IO, "%s: header is %s, not a JSON object", f->path,
                st_json_kind(root));
  f->data_start = 8 + (size_t)n;
  uint64_t data_len = len - f->data_start;
  for (const cJSON *e = s ? NULL : root->child; e && !s; e = e->next) {
    if (!strcmp(e->string, "__metadata__"))
      s = st_parse_meta(f, e);
    else
      s = st_parse_tensor(st, fi, e->string, e, data_len);
  }
  cJSON_Delete(root);
  return s;
}

/* ======================================================================
 *  Cross-tensor checks and lookup
 * ====================================================================== */

static int st_cmp_name(const void *a, const void *b) {
  return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int st_cmp_offset(const void *a, const void *b) {
  const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
  if (x->file != y->file) return x->file < y->file ? -1 : 1;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return (x->end > y->end) - (x->end < y->end);
}

/* No two non-empty tensors of one file may share a byte. */
static am_status st_check_overlap(am_safetensors *st) {
  if (st->n < 2) return AM_OK;
  st_tensor **ord = malloc((size_t)st->n * sizeof *ord);
  if (!ord) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  for (int64_t i = 0; i < st->n; i++)
    ord[i] = &st->t[i];
  qsort(ord, (size_t)st->n, sizeof *ord, st_cmp_offset);
  am_status s = AM_OK;
  const st_tensor *prev = NULL; /* the non-empty tensor ending last */
  for (int64_t i = 0; i < st->n && !s; i++) {
    const st_tensor *t = ord[i];
    if (prev && prev->file != t->file) prev = NULL;
    if (t->begin == t->end) continue;
    if (prev && t->begin < prev->end)
      s = AM_FAIL(AM_ERR_IO,
                  "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] "
                  "overlap",
                  st->files[t->file].path, prev->name,
                  (unsigned long long)prev->begin,
                  (unsigned long long)prev->end, t->name,
                  (unsigned long long)t->begin, (unsigned long long)t->end);
    if (!prev || t->end > prev->end) prev = t;
  }
  free(ord);
  return s;
}

/* Sorts by name and refuses duplicates (JSON objects may repeat keys; a
 * sharded checkpoint may list a tensor in two shards). */
static am_status st_finish(am_safetensors *st) {
  am_status s = st_check_overlap(st);
  if (s) return s;
  qsort(st->t, (size_t)st->n, sizeof *st->t, st_cmp_name);
  for (int64_t i = 1; i < st->n; i++)
    if (!strcmp(st->t[i - 1].name, st->t[i].name)) {
      const st_tensor *a = &st->t[i - 1], *b = &st->t[i];
      if (a->file == b->file)
        return AM_FAIL(AM_ERR_IO, "%s: tensor '%s' is listed twice",
                       st->files[a->file].path, a->name);
      return AM_FAIL(AM_ERR_IO, "tensor '%s' is in both %s and %s", a->name,
                     st->files[a->file].path, st->files[b->file].path);
    }
  return AM_OK;
}

static const st_tensor *st_find(const am_safetensors *st, const char *name) {
  if (!st || !name) return NULL;
  st_tensor key = {.name = (char *)name};
  return bsearch(&key, st->t, (size_t)st->n, sizeof *st->t, st_cmp_name);
}

/* ======================================================================
 *  Opening
 * ====================================================================== */

/* Maps `path` as file number st->n_files and parses its header. */
static am_status st_add_file(am_safetensors *st, const char *path) {
  st_file *files =
      realloc(st->files, (size_t)(st->n_files + 1) * sizeof *files);
  if (!files) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  st->files = files;
  st_file *f = &files[st->n_files];
  memset(f, 0, sizeof *f);
  f->path = st_strdup(path);
  st->n_files++;
  if (!f->path) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return AM_FAIL(AM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  am_status s = AM_OK;
  if (fstat(fd, &sb) != 0)
    s = AM_FAIL(AM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    s = AM_FAIL(AM_ERR_IO, "%s: not a regular file", path);
  else if (sb.st_size < 8)
    s = AM_FAIL(AM_ERR_IO,
                "%s: file is %lld bytes, too short for a safetensors header",
                path, (long long)sb.st_size);
  void *base = MAP_FAILED;
  if (!s) {
    base = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED)
      s = AM_FAIL(AM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
#ifdef MADV_HUGEPAGE
    /* weights are read in MiB runs all over the file: where the kernel
     * can back a read-only file with huge pages, fewer page walks (a hint;
     * ignored elsewhere) */
    else if (sb.st_size >= ((off_t)8 << 20))
      (void)madvise(base, (size_t)sb.st_size, MADV_HUGEPAGE);
#endif
  }
  close(fd);
  if (s) return s;
  f->map = malloc(sizeof *f->map);
  if (!f->map) {
    munmap(base, (size_t)sb.st_size);
    return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  }
  atomic_init(&f->map->refs, 1);
  f->map->base = base;
  f->map->len = (size_t)sb.st_size;
  return st_parse_header(st, st->n_files - 1);
}

static am_status st_done(am_safetensors *st, am_status s,
                         am_safetensors **out) {
  if (!s) s = st_finish(st);
  if (s) {
    am_safetensors_free(st);
    return s;
  }
  *out = st;
  return AM_OK;
}

am_status am_safetensors_open(const char *path, am_safetensors **out) {
  if (!out)
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_safetensors_open: out is NULL");
  *out = NULL;
  if (!path)
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_safetensors_open: path is NULL");
  am_safetensors *st = calloc(1, sizeof *st);
  if (!st) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  return st_done(st, st_add_file(st, path), out);
}

static char *st_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

static char *st_read_text(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? 2 * cap : 8192;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(fp);
        return NULL;
      }
      buf = nb;
    }
    size_t k = fread(buf + n, 1, 4096, fp);
    n += k;
    if (k < 4096) break;
  }
  bool err = ferror(fp);
  fclose(fp);
  if (err) {
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

/* A shard name from the index must stay inside the model directory. */
static bool st_safe_shard_name(const char *s) {
  return *s && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") &&
         strcmp(s, "..");
}

static int st_find_file(const am_safetensors *st, const char *path) {
  for (int i = 0; i < st->n_files; i++)
    if (!strcmp(st->files[i].path, path)) return i;
  return -1;
}

static am_status st_open_index(am_safetensors *st, const char *dir,
                               const char *ipath) {
  size_t len = 0;
  char *text = st_read_text(ipath, &len);
  if (!text)
    return AM_FAIL(AM_ERR_IO, "%s: cannot read: %s", ipath, strerror(errno));
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!root) return AM_FAIL(AM_ERR_IO, "%s: not valid JSON", ipath);
  am_status s = AM_OK;
  const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(wm))
    s = AM_FAIL(AM_ERR_IO, "%s: 'weight_map' is %s, not an object", ipath,
                st_json_kind(wm));
  /* Open each shard once, in order of first mention. */
  for (const cJSON *e = s ? NULL : wm->child; e && !s; e = e->next) {
    if (!cJSON_IsString(e) || !st_safe_shard_name(e->valuestring)) {
      s = AM_FAIL(AM_ERR_IO,
                  "%s: weight_map entry '%s' is not a file name in the "
                  "model directory",
                  ipath, e->string);
      break;
    }
    char *sp = st_join(dir, e->valuestring);
    if (!sp) {
      s = AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
      break;
    }
    if (st_find_file(st, sp) < 0) s = st_add_file(st, sp);
    free(sp);
  }
  if (!s) s = st_finish(st);
  /* Every listed tensor must be in the shard the index names. */
  for (const cJSON *e = s ? NULL : wm->child; e && !s; e = e->next) {
    const st_tensor *t = st_find(st, e->string);
    char *sp = st_join(dir, e->valuestring);
    if (!sp) {
      s = AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
      break;
    }
    if (!t)
      s = AM_FAIL(AM_ERR_IO, "%s: tensor '%s' is not in %s", ipath, e->string,
                  sp);
    else if (strcmp(st->files[t->file].path, sp))
      s = AM_FAIL(AM_ERR_IO, "%s: tensor '%s' is in %s, not in %s", ipath,
                  e->string, st->files[t->file].path, sp);
    free(sp);
  }
  cJSON_Delete(root);
  return s;
}

static int st_cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* No index and no model.safetensors: every *.safetensors, sorted. */
static am_status st_open_glob(am_safetensors *st, const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return AM_FAIL(AM_ERR_IO, "%s: cannot open directory: %s", dir,
                   strerror(errno));
  char **names = NULL;
  int n = 0;
  am_status s = AM_OK;
  for (struct dirent *e; !s && (e = readdir(d));) {
    size_t l = strlen(e->d_name);
    if (l <= 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
    char **nn = realloc(names, (size_t)(n + 1) * sizeof *nn);
    char *p = nn ? st_join(dir, e->d_name) : NULL;
    if (nn) names = nn;
    if (!p)
      s = AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
    else
      names[n++] = p;
  }
  closedir(d);
  if (!s && !n)
    s = AM_FAIL(AM_ERR_IO,
                "%s: no model.safetensors.index.json, "
                "model.safetensors or *.safetensors file",
                dir);
  if (!s) qsort(names, (size_t)n, sizeof *names, st_cmp_str);
  for (int i = 0; i < n; i++) {
    if (!s) s = st_add_file(st, names[i]);
    free(names[i]);
  }
  free(names);
  return s;
}

am_status am_safetensors_open_dir(const char *dir, am_safetensors **out) {
  if (!out)
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_safetensors_open_dir: out is NULL");
  *out = NULL;
  if (!dir)
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_safetensors_open_dir: dir is NULL");
  am_safetensors *st = calloc(1, sizeof *st);
  char *ipath = st_join(dir, "model.safetensors.index.json");
  char *spath = st_join(dir, "model.safetensors");
  am_status s = AM_OK;
  if (!st || !ipath || !spath)
    s = AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  else if (access(ipath, F_OK) == 0)
    s = st_open_index(st, dir, ipath);
  else if (access(spath, F_OK) == 0)
    s = st_add_file(st, spath);
  else
    s = st_open_glob(st, dir);
  free(ipath);
  free(spath);
  if (!st) return s;
  return st_done(st, s, out);
}

/* ======================================================================
 *  Queries
 * ====================================================================== */

int64_t am_safetensors_count(const am_safetensors *st) {
  return st ? st->n : 0;
}

const char *am_safetensors_name(const am_safetensors *st, int64_t i) {
  return st && i >= 0 && i < st->n ? st->t[i].name : NULL;
}

bool am_safetensors_has(const am_safetensors *st, const char *name) {
  return st_find(st, name) != NULL;
}

am_status am_safetensors_info_get(const am_safetensors *st, const char *name,
                                  am_safetensors_info *out) {
  const st_tensor *t = st_find(st, name);
  if (!out)
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_safetensors_info_get: out is NULL");
  if (!t)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "am_safetensors_info_get: no tensor '%s'",
                   name ? name : "(null)");
  memset(out, 0, sizeof *out);
  out->name = t->name;
  out->dtype_name = st_dtypes[t->dt].name;
  out->dtype = st_dtypes[t->dt].dtype;
  out->ndim = t->ndim;
  memcpy(out->shape, t->shape, sizeof t->shape);
  out->nbytes = t->end - t->begin;
  out->file = st->files[t->file].path;
  return AM_OK;
}

const char *am_safetensors_metadata(const am_safetensors *st, const char *key) {
  if (!st || !key) return NULL;
  for (int i = 0; i < st->n_files; i++)
    for (int k = 0; k < st->files[i].n_meta; k++)
      if (!strcmp(st->files[i].meta[2 * k], key))
        return st->files[i].meta[2 * k + 1];
  return NULL;
}

am_array am_safetensors_get(const am_safetensors *st, const char *name) {
  if (!st || !name)
    return am_error_array(AM_ERR_INVALID_ARG,
                          "am_safetensors_get: NULL checkpoint or name");
  const st_tensor *t = st_find(st, name);
  if (!t) {
    const char *where = st->n_files == 1 ? st->files[0].path : "checkpoint";
    return am_error_array(AM_ERR_INVALID_ARG, "%s: no tensor '%s'", where,
                          name);
  }
  const st_file *f = &st->files[t->file];
  am_dtype dt = st_dtypes[t->dt].dtype;
  if (dt == AM_DTYPE_COUNT)
    return am_error_array(AM_ERR_UNSUPPORTED,
                          "%s: tensor '%s': dtype %s is not supported by "
                          "amorph",
                          f->path, t->name, st_dtypes[t->dt].name);
  unsigned char *p =
      (unsigned char *)f->map->base + f->data_start + (size_t)t->begin;
  size_t nbytes = (size_t)(t->end - t->begin);
  if (dt == AM_BOOL) {
    /* Any byte other than 0/1 is not a valid C bool: normalize a copy. */
    unsigned char *c = malloc(nbytes ? nbytes : 1);
    if (!c) return am_error_array(AM_ERR_OOM, "safetensors: out of memory");
    for (size_t i = 0; i < nbytes; i++)
      c[i] = p[i] != 0;
    am_array a = am_array_new_data(c, t->shape, t->ndim, dt);
    free(c);
    return a;
  }
  /* The header length is arbitrary, so data may be misaligned for its
   * dtype: kernels load elements directly, hence copy that (rare) case. */
  if ((uintptr_t)p % am_dtype_size(dt))
    return am_array_new_data(p, t->shape, t->ndim, dt);
  atomic_fetch_add(&f->map->refs, 1);
  return am_array_new_data_managed(p, t->shape, t->ndim, dt, st_map_release,
                                   f->map);
}

/* ======================================================================
 *  Writer
 * ====================================================================== */

typedef struct st_out {
  const char *name;
  am_array a;
  size_t elsize, nbytes;
} st_out;

static int st_cmp_out(const void *a, const void *b) {
  const st_out *x = a, *y = b;
  if (x->elsize != y->elsize) return x->elsize > y->elsize ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int st_cmp_out_name(const void *a, const void *b) {
  return strcmp(((const st_out *)a)->name, ((const st_out *)b)->name);
}

/* Builds the JSON header, padded with spaces so that the data section
 * starts 8-byte aligned. */
static char *st_build_header(st_out *o, int n, const char *const *metadata,
                             size_t *hlen) {
  cJSON *root = cJSON_CreateObject();
  bool ok = root != NULL;
  if (ok && metadata && metadata[0]) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    ok = m != NULL;
    for (int i = 0; ok && metadata[i]; i += 2)
      ok = cJSON_AddStringToObject(
               m, metadata[i], metadata[i + 1] ? metadata[i + 1] : "") != NULL;
  }
  uint64_t off = 0;
  for (int i = 0; ok && i < n; i++) {
    cJSON *e = cJSON_AddObjectToObject(root, o[i].name);
    ok = e && cJSON_AddStringToObject(
                  e, "dtype", st_dtype_of(am_array_dtype(o[i].a))) != NULL;
    cJSON *sh = ok ? cJSON_AddArrayToObject(e, "shape") : NULL;
    ok = sh != NULL;
    const int64_t *shape = am_array_shape(o[i].a);
    for (int d = 0; ok && d < am_array_ndim(o[i].a); d++)
      ok = cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[d]));
    cJSON *of = ok ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
    ok = of && cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    off += o[i].nbytes;
    ok = ok && cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
  }
  char *js = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!js) return NULL;
  size_t l = strlen(js), padded = (l + 7) & ~(size_t)7;
  char *h = realloc(js, padded + 1);
  if (!h) {
    free(js);
    return NULL;
  }
  memset(h + l, ' ', padded - l);
  h[padded] = 0;
  *hlen = padded;
  return h;
}

static am_status st_write_tensor(FILE *fp, const st_out *o) {
  if (!o->nbytes) return AM_OK;
  const void *src = am_array_data(o->a);
  void *tmp = NULL;
  if (!src) {
    tmp = malloc(o->nbytes);
    if (!tmp) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
    am_status s =
        am_array_read(o->a, am_array_dtype(o->a), tmp, am_array_size(o->a));
    if (s) {
      free(tmp);
      return s;
    }
    src = tmp;
  }
  size_t w = fwrite(src, 1, o->nbytes, fp);
  free(tmp);
  return w == o->nbytes ? AM_OK : AM_ERR_IO;
}

am_status am_safetensors_save(const char *path, const char *const *names,
                              const am_array *arrays, int n,
                              const char *const *metadata) {
  if (!path || n < 0 || (n > 0 && (!names || !arrays)))
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "am_safetensors_save: NULL path, names or arrays");
  for (int i = 0; metadata && metadata[i]; i += 2)
    if (!metadata[i + 1])
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "am_safetensors_save: metadata key '%s' has no value",
                     metadata[i]);
  st_out *o = calloc((size_t)n + 1, sizeof *o);
  if (!o) return AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  am_status s = AM_OK;
  for (int i = 0; i < n && !s; i++) {
    if (!names[i] || !arrays[i] || !strcmp(names[i], "__metadata__"))
      s = AM_FAIL(AM_ERR_INVALID_ARG,
                  "am_safetensors_save: %s: entry %d has a NULL or reserved "
                  "name or a NULL array",
                  path, i);
    else if (am_array_status(arrays[i]))
      s = AM_FAIL(am_array_status(arrays[i]),
                  "am_safetensors_save: %s: tensor '%s': %s", path, names[i],
                  am_array_error(arrays[i]));
    else {
      o[i] = (st_out){names[i], arrays[i],
                      am_dtype_size(am_array_dtype(arrays[i])), 0};
      o[i].nbytes = (size_t)am_array_size(arrays[i]) * o[i].elsize;
    }
  }
  if (!s && n) {
    am_array *ev = malloc((size_t)n * sizeof *ev);
    if (!ev)
      s = AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
    else {
      memcpy(ev, arrays, (size_t)n * sizeof *ev);
      s = am_eval(ev, n);
      free(ev);
    }
  }
  if (!s) {
    qsort(o, (size_t)n, sizeof *o, st_cmp_out_name);
    for (int i = 1; i < n && !s; i++)
      if (!strcmp(o[i].name, o[i - 1].name))
        s = AM_FAIL(AM_ERR_INVALID_ARG,
                    "am_safetensors_save: %s: tensor '%s' is given twice", path,
                    o[i].name);
    qsort(o, (size_t)n, sizeof *o, st_cmp_out);
  }
  size_t hlen = 0;
  char *header = s ? NULL : st_build_header(o, n, metadata, &hlen);
  if (!s && !header) s = AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
  char *tmp = NULL;
  if (!s) {
    size_t l = strlen(path);
    tmp = malloc(l + 16);
    if (!tmp)
      s = AM_FAIL(AM_ERR_OOM, "safetensors: out of memory");
    else
      snprintf(tmp, l + 16, "%s.tmp.XXXXXX", path);
  }
  int fd = -1;
  if (!s && (fd = mkstemp(tmp)) < 0)
    s = AM_FAIL(AM_ERR_IO, "%s: cannot create %s: %s", path, tmp,
                strerror(errno));
  if (!s) { /* mkstemp makes 0600: give the file the usual mode */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
  }
  FILE *fp = NULL;
  if (!s && !(fp = fdopen(fd, "wb"))) {
    close(fd);
    s = AM_FAIL(AM_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
  }
  if (!s) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
      len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    bool ok =
        fwrite(len8, 1, 8, fp) == 8 && fwrite(header, 1, hlen, fp) == hlen;
    for (int i = 0; ok && i < n; i++) {
      am_status ws = st_write_tensor(fp, &o[i]);
      if (ws == AM_ERR_IO)
        ok = false;
      else if (ws)
        s = ws;
    }
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    if (fclose(fp) != 0) ok = false;
    if (!s && !ok)
      s = AM_FAIL(AM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (!s && rename(tmp, path) != 0)
      s = AM_FAIL(AM_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp,
                  strerror(errno));
    if (s) unlink(tmp);
  }
  free(tmp);
  free(header);
  free(o);
  return s;
}
