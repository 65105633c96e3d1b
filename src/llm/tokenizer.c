/*
 * tokenizer.c — byte-level BPE from Hugging Face tokenizer.json files.
 *
 * Encoding follows the HF `tokenizers` pipeline exactly (the tests compare
 * ids with it):
 *   1. split out added tokens matched on the raw text (normalized: false),
 *      leftmost then longest;
 *   2. NFC-normalize each remaining segment (utf8proc), then split out the
 *      added tokens that are matched on normalized text;
 *   3. pre-tokenize: each Split regex stage (PCRE2, UTF + UCP, JIT) cuts the
 *      pieces further, keeping the gaps between matches as pieces too;
 *   4. BPE each piece on its bytes: the initial symbols are the vocabulary
 *      ids of the GPT-2 `bytes_to_unicode` characters, merged lowest rank
 *      first (leftmost on ties) with a heap over a linked list of symbols,
 *      then cached per piece.
 * Decoding maps every id to bytes once at load (the ByteLevel decoder's rule:
 * a token whose characters are all in the byte map becomes those bytes,
 * otherwise its UTF-8 text) and turns invalid UTF-8 into U+FFFD like Rust's
 * from_utf8_lossy, which the streaming detokenizer reproduces incrementally.
 */
#include "amorph_tokenizer.h"
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum {
  TK_MAX_ID = 1 << 21,    /* ids above this are rejected (memory bound) */
  TK_MAX_STAGES = 4,      /* regex pre-tokenizer stages */
  TK_CACHE_CAP = 1 << 15, /* hash slots; the cache is cleared at half */
  TK_CACHE_MAX_PIECE = 256,
};

/* The GPT-2 pre-tokenizer regex (ByteLevel with use_regex: true). */
static const char tk_gpt2_re[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

/* ======================================================================
 *  Small containers
 * ====================================================================== */

static uint64_t tk_hash(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

/* Chunked arena: strings never move once stored. */
typedef struct tk_chunk {
  struct tk_chunk *next;
  size_t used, cap;
  char data[];
} tk_chunk;

static char *tk_arena_put(tk_chunk **head, const char *s, size_t n) {
  tk_chunk *c = *head;
  if (!c || c->cap - c->used < n + 1) {
    size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
    c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->next = *head;
    c->used = 0;
    c->cap = cap;
    *head = c;
  }
  char *p = c->data + c->used;
  memcpy(p, s, n);
  p[n] = 0;
  c->used += n + 1;
  return p;
}

static void tk_arena_free(tk_chunk *c) {
  while (c) {
    tk_chunk *n = c->next;
    free(c);
    c = n;
  }
}

/* String -> int32 map, open addressing; keys point into an arena. */
typedef struct {
  uint64_t h;
  const char *s; /* NULL: empty slot */
  uint32_t len;
  int32_t val;
} tk_sent;
typedef struct {
  tk_sent *slots;
  size_t cap, n;
} tk_smap;

static int tk_smap_init(tk_smap *m, size_t n) {
  m->cap = 16;
  while (m->cap < 2 * n + 16)
    m->cap *= 2;
  m->n = 0;
  m->slots = calloc(m->cap, sizeof *m->slots);
  return m->slots != NULL;
}

static tk_sent *tk_smap_slot(const tk_smap *m, const char *s, size_t n,
                             uint64_t h) {
  size_t i = h & (m->cap - 1);
  for (;; i = (i + 1) & (m->cap - 1)) {
    tk_sent *e = &m->slots[i];
    if (!e->s || (e->h == h && e->len == n && !memcmp(e->s, s, n))) return e;
  }
}

static int32_t tk_smap_get(const tk_smap *m, const char *s, size_t n) {
  if (!m->slots) return -1;
  tk_sent *e = tk_smap_slot(m, s, n, tk_hash(s, n));
  return e->s ? e->val : -1;
}

/* Inserts (the map was sized for all keys); returns 0 if s is already in. */
static int tk_smap_put(tk_smap *m, const char *s, size_t n, int32_t val) {
  uint64_t h = tk_hash(s, n);
  tk_sent *e = tk_smap_slot(m, s, n, h);
  if (e->s) return 0;
  *e = (tk_sent){h, s, (uint32_t)n, val};
  m->n++;
  return 1;
}

/* (left id, right id) -> (rank, merged id). */
typedef struct {
  uint64_t key; /* (a << 32 | b) + 1; 0: empty */
  int32_t rank, id;
} tk_pent;

static uint64_t tk_mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  return x ^ (x >> 33);
}

static tk_pent *tk_pair_slot(tk_pent *t, size_t cap, int32_t a, int32_t b) {
  uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  for (size_t i = tk_mix(key) & (cap - 1);; i = (i + 1) & (cap - 1))
    if (t[i].key == key || !t[i].key) return &t[i];
}

/* Growable int32 vector. */
typedef struct {
  int32_t *v;
  size_t n, cap;
} tk_ivec;

static int tk_ivec_push(tk_ivec *x, int32_t id) {
  if (x->n == x->cap) {
    size_t cap = x->cap ? 2 * x->cap : 64;
    int32_t *v = realloc(x->v, cap * sizeof *v);
    if (!v) return 0;
    x->v = v;
    x->cap = cap;
  }
  x->v[x->n++] = id;
  return 1;
}

/* Growable byte buffer (kept NUL-terminated when non-empty). */
typedef struct {
  char *p;
  size_t n, cap;
} tk_buf;

static int tk_buf_put(tk_buf *b, const void *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 1;
}

/* ======================================================================
 *  UTF-8
 * ====================================================================== */

/* Length of the valid UTF-8 character at s[0..n), 0 if invalid, or -k if
 * s[0..n) is a valid but incomplete prefix (n < length). *bad gets the
 * length of the maximal invalid subpart when invalid (Unicode's "maximal
 * subpart" rule, as Rust's from_utf8_lossy uses). */
static int tk_utf8_char(const unsigned char *s, size_t n, int *bad) {
  unsigned c = s[0];
  *bad = 1;
  if (c < 0x80) return 1;
  int len;
  unsigned lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f; /* no surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f; /* <= U+10FFFF */
  } else
    return 0;
  for (int k = 1; k < len; k++) {
    if ((size_t)k >= n) return -k;
    unsigned b = s[k];
    if (b < lo || b > hi) {
      *bad = k;
      return 0;
    }
    lo = 0x80, hi = 0xbf;
  }
  return len;
}

/* Appends s[0..n) to out with invalid sequences replaced by U+FFFD. When
 * !final an incomplete character at the end is left out; returns the number
 * of bytes consumed, or (size_t)-1 on OOM. */
static size_t tk_utf8_lossy(tk_buf *out, const char *s, size_t n, bool final) {
  if (!n) return 0;
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0; /* s[run..i) is valid, not yet copied */
  while (i < n) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int bad, len = tk_utf8_char(u + i, n - i, &bad);
    if (len > 0) {
      i += (size_t)len;
      continue;
    }
    if (!tk_buf_put(out, s + run, i - run)) return (size_t)-1;
    if (len < 0 && !final) return i; /* hold the incomplete tail */
    if (!tk_buf_put(out, "\xef\xbf\xbd", 3)) return (size_t)-1;
    i += len < 0 ? (size_t)-len : (size_t)bad;
    run = i;
  }
  if (!tk_buf_put(out, s + run, i - run)) return (size_t)-1;
  return n;
}

/* Offset of the first invalid byte of s[0..n), or n when s is valid. */
static size_t tk_utf8_check(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int bad, len = tk_utf8_char(u + i, n - i, &bad);
    if (len <= 0) return i;
    i += (size_t)len;
  }
  return n;
}

static int tk_utf8_put(char *out, uint32_t c) {
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xc0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3f));
    return 2;
  }
  out[0] = (char)(0xe0 | (c >> 12)); /* only BMP code points are needed */
  out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
  out[2] = (char)(0x80 | (c & 0x3f));
  return 3;
}

/* ======================================================================
 *  The tokenizer
 * ====================================================================== */

typedef struct {
  const char *s; /* content, in the arena */
  uint32_t len;
  int32_t id;
} tk_added;

typedef struct {
  tk_added *v; /* sorted by decreasing length */
  int n;
  uint8_t first[256]; /* first[b]: some token starts with byte b */
} tk_addset;

typedef struct {
  uint64_t h;
  char *key; /* one allocation: the piece bytes, then the ids */
  uint32_t klen, n;
  int32_t *ids;
} tk_centry;

struct am_tokenizer {
  tk_chunk *arena;
  tk_smap vocab;  /* byte-level string -> id */
  tk_smap added;  /* added token content -> id */
  tk_pent *pairs; /* merges */
  size_t pair_cap;
  int32_t n_ids;         /* largest id + 1 */
  const char **id_str;   /* [n_ids] vocabulary / added string or NULL */
  const char **id_bytes; /* [n_ids] decoded bytes (arena) */
  uint32_t *id_nbytes;   /* [n_ids] */
  uint8_t *id_special;   /* [n_ids] */
  int32_t byte_id[256];  /* id of each byte's character, -1 if none */
  char byte_chr[256][3]; /* bytes_to_unicode, UTF-8 */
  uint8_t byte_chr_len[256];
  bool nfc, ignore_merges, fuse_unk;
  int32_t unk_id;
  tk_addset raw_added, norm_added;
  int n_stages;
  pcre2_code *stages[TK_MAX_STAGES];
  pthread_mutex_t cache_lock;
  tk_centry *cache;
  size_t cache_n;
};

/* Load errors name the file and the field. */
#define TK_LOAD_FAIL(ld, ...) tk_load_fail((ld), __VA_ARGS__)

typedef struct {
  const char *name;
  am_tokenizer *tok;
} tk_loader;

static am_status tk_load_fail(tk_loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static am_status tk_load_fail(tk_loader *ld, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return am_set_error(AM_ERR_IO, "tokenizer '%s': %s", ld->name, msg);
}

static am_status tk_unsupported(tk_loader *ld, const char *what) {
  return am_set_error(AM_ERR_UNSUPPORTED, "tokenizer '%s': unsupported %s",
                      ld->name, what);
}

static am_status tk_oom(void) {
  return am_set_error(AM_ERR_OOM, "tokenizer: out of memory");
}

/* An integer id in [0, TK_MAX_ID). */
static int tk_json_id(const cJSON *v, int32_t *id) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0 && d < TK_MAX_ID) || d != floor(d)) return 0;
  *id = (int32_t)d;
  return 1;
}

/* Optional boolean field; *out keeps its default when absent or null. */
static int tk_json_bool(const cJSON *obj, const char *key, bool *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return 1;
  if (!cJSON_IsBool(v)) return 0;
  *out = cJSON_IsTrue(v);
  return 1;
}

static const char *tk_json_type(const cJSON *obj) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
  return cJSON_IsString(t) ? t->valuestring : NULL;
}

static void tk_bytes_to_unicode(am_tokenizer *t) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    bool keep = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
                (b >= 0xae && b <= 0xff);
    uint32_t c = keep ? (uint32_t)b : 256u + (uint32_t)n++;
    t->byte_chr_len[b] = (uint8_t)tk_utf8_put(t->byte_chr[b], c);
  }
}

static am_status tk_load_vocab(tk_loader *ld, const cJSON *model) {
  am_tokenizer *t = ld->tok;
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  if (!cJSON_IsObject(vocab))
    return TK_LOAD_FAIL(ld, "model.vocab: missing or not an object");
  int n = cJSON_GetArraySize(vocab);
  if (!tk_smap_init(&t->vocab, (size_t)n)) return tk_oom();
  for (const cJSON *e = vocab->child; e; e = e->next) {
    int32_t id;
    if (!tk_json_id(e, &id))
      return TK_LOAD_FAIL(ld,
                          "model.vocab['%s']: id is not an integer in "
                          "[0, %d)",
                          e->string, TK_MAX_ID);
    size_t len = strlen(e->string);
    if (!len) return TK_LOAD_FAIL(ld, "model.vocab: empty token");
    const char *s = tk_arena_put(&t->arena, e->string, len);
    if (!s) return tk_oom();
    if (!tk_smap_put(&t->vocab, s, len, id))
      return TK_LOAD_FAIL(ld, "model.vocab['%s']: duplicate token", s);
    if (id >= t->n_ids) t->n_ids = id + 1;
  }
  return AM_OK;
}

/* One merge "a b" or ["a", "b"] -> the pair's entry. */
static am_status tk_load_merge(tk_loader *ld, const cJSON *m, int idx,
                               int32_t rank) {
  am_tokenizer *t = ld->tok;
  char buf[1024];
  const char *a, *b;
  size_t na, nb;
  if (cJSON_IsString(m)) {
    const char *s = m->valuestring, *sp = strchr(s, ' ');
    if (!sp || strchr(sp + 1, ' '))
      return TK_LOAD_FAIL(ld, "model.merges[%d]: '%s' is not \"a b\"", idx, s);
    a = s, na = (size_t)(sp - s), b = sp + 1, nb = strlen(b);
  } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
             cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
    a = m->child->valuestring, na = strlen(a);
    b = m->child->next->valuestring, nb = strlen(b);
  } else {
    return TK_LOAD_FAIL(ld,
                        "model.merges[%d]: not a string or a pair of "
                        "strings",
                        idx);
  }
  if (!na || !nb || na + nb >= sizeof buf)
    return TK_LOAD_FAIL(ld, "model.merges[%d]: empty or too long", idx);
  int32_t ia = tk_smap_get(&t->vocab, a, na),
          ib = tk_smap_get(&t->vocab, b, nb);
  memcpy(buf, a, na);
  memcpy(buf + na, b, nb);
  int32_t im = tk_smap_get(&t->vocab, buf, na + nb);
  if (ia < 0 || ib < 0 || im < 0)
    return TK_LOAD_FAIL(ld,
                        "model.merges[%d]: '%.*s' + '%.*s' uses a token "
                        "missing from model.vocab",
                        idx, (int)na, a, (int)nb, b);
  /* A repeated pair keeps the later rank, as HF's map does. */
  tk_pent *p = tk_pair_slot(t->pairs, t->pair_cap, ia, ib);
  p->key = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
  p->rank = rank;
  p->id = im;
  return AM_OK;
}

static am_status tk_load_merges(tk_loader *ld, const cJSON *model) {
  am_tokenizer *t = ld->tok;
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!merges || cJSON_IsNull(merges))
    merges = NULL;
  else if (!cJSON_IsArray(merges))
    return TK_LOAD_FAIL(ld, "model.merges: not an array");
  int n = merges ? cJSON_GetArraySize(merges) : 0;
  t->pair_cap = 16;
  while (t->pair_cap < 2 * (size_t)n + 16)
    t->pair_cap *= 2;
  t->pairs = calloc(t->pair_cap, sizeof *t->pairs);
  if (!t->pairs) return tk_oom();
  int idx = 0;
  int32_t rank = 0;
  for (const cJSON *m = merges ? merges->child : NULL; m; m = m->next, idx++) {
    if (cJSON_IsString(m) && !strncmp(m->valuestring, "#version", 8))
      continue; /* merges.txt header, skipped by HF too */
    am_status s = tk_load_merge(ld, m, idx, rank++);
    if (s) return s;
  }
  return AM_OK;
}

static am_status tk_load_model(tk_loader *ld, const cJSON *root) {
  am_tokenizer *t = ld->tok;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (!cJSON_IsObject(model))
    return TK_LOAD_FAIL(ld, "model: missing or not an object");
  const char *type = tk_json_type(model);
  if (type && strcmp(type, "BPE")) return tk_unsupported(ld, "model.type");
  am_status s = tk_load_vocab(ld, model);
  if (s) return s;
  s = tk_load_merges(ld, model);
  if (s) return s;
  bool byte_fallback = false;
  if (!tk_json_bool(model, "ignore_merges", &t->ignore_merges) ||
      !tk_json_bool(model, "fuse_unk", &t->fuse_unk) ||
      !tk_json_bool(model, "byte_fallback", &byte_fallback))
    return TK_LOAD_FAIL(ld, "model: ignore_merges, fuse_unk or byte_fallback "
                            "is not a boolean");
  if (byte_fallback) return tk_unsupported(ld, "model.byte_fallback");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (d && !cJSON_IsNull(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0))
    return tk_unsupported(ld, "model.dropout");
  const char *affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affix[i]);
    if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && !*a->valuestring))
      return tk_unsupported(ld, affix[i]);
  }
  t->unk_id = -1;
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  if (unk && !cJSON_IsNull(unk)) {
    if (!cJSON_IsString(unk) ||
        (t->unk_id = tk_smap_get(&t->vocab, unk->valuestring,
                                 strlen(unk->valuestring))) < 0)
      return TK_LOAD_FAIL(ld, "model.unk_token: not a token of model.vocab");
  }
  return AM_OK;
}

static int tk_added_cmp(const void *a, const void *b) {
  const tk_added *x = a, *y = b;
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  return x->id - y->id;
}

static am_status tk_addset_push(tk_addset *set, tk_added a) {
  tk_added *v = realloc(set->v, (size_t)(set->n + 1) * sizeof *v);
  if (!v) return tk_oom();
  set->v = v;
  set->v[set->n++] = a;
  set->first[(unsigned char)a.s[0]] = 1;
  return AM_OK;
}

static am_status tk_load_added(tk_loader *ld, const cJSON *root) {
  am_tokenizer *t = ld->tok;
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  if (list && !cJSON_IsNull(list) && !cJSON_IsArray(list))
    return TK_LOAD_FAIL(ld, "added_tokens: not an array");
  int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
  if (!tk_smap_init(&t->added, (size_t)n)) return tk_oom();
  int i = 0;
  for (const cJSON *e = n ? list->child : NULL; e; e = e->next, i++) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
    int32_t id;
    if (!cJSON_IsObject(e) || !cJSON_IsString(c) || !*c->valuestring)
      return TK_LOAD_FAIL(ld, "added_tokens[%d]: no content string", i);
    if (!tk_json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id))
      return TK_LOAD_FAIL(ld,
                          "added_tokens[%d].id: not an integer in "
                          "[0, %d)",
                          i, TK_MAX_ID);
    bool special = false, normalized, lstrip = false, rstrip = false,
         single = false;
    if (!tk_json_bool(e, "special", &special))
      return TK_LOAD_FAIL(ld, "added_tokens[%d].special: not a boolean", i);
    normalized = !special; /* HF's default */
    if (!tk_json_bool(e, "normalized", &normalized) ||
        !tk_json_bool(e, "lstrip", &lstrip) ||
        !tk_json_bool(e, "rstrip", &rstrip) ||
        !tk_json_bool(e, "single_word", &single))
      return TK_LOAD_FAIL(ld, "added_tokens[%d]: a flag is not a boolean", i);
    if (lstrip || rstrip || single)
      return tk_unsupported(ld, "added token with lstrip, rstrip or "
                                "single_word");
    /* Tokens matched on normalized text are normalized themselves. */
    utf8proc_uint8_t *nfc = NULL;
    const char *content = c->valuestring;
    size_t len = strlen(content);
    if (normalized && t->nfc) {
      utf8proc_ssize_t r =
          utf8proc_map((const utf8proc_uint8_t *)content, (utf8proc_ssize_t)len,
                       &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
      if (r < 0)
        return TK_LOAD_FAIL(ld, "added_tokens[%d].content: %s", i,
                            utf8proc_errmsg(r));
      content = (const char *)nfc, len = (size_t)r;
    }
    const char *s = tk_arena_put(&t->arena, content, len);
    free(nfc);
    if (!s) return tk_oom();
    if (!tk_smap_put(&t->added, s, len, id))
      return TK_LOAD_FAIL(ld, "added_tokens[%d]: duplicate content '%s'", i, s);
    tk_added a = {s, (uint32_t)len, special ? -1 - id : id};
    am_status st =
        tk_addset_push(normalized ? &t->norm_added : &t->raw_added, a);
    if (st) return st;
    if (id >= t->n_ids) t->n_ids = id + 1;
  }
  return AM_OK;
}

static am_status tk_load_normalizer(tk_loader *ld, const cJSON *root) {
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  if (!n || cJSON_IsNull(n)) return AM_OK;
  const char *type = tk_json_type(n);
  if (!type) return TK_LOAD_FAIL(ld, "normalizer: no type");
  if (!strcmp(type, "NFC")) {
    ld->tok->nfc = true;
    return AM_OK;
  }
  if (!strcmp(type, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    if (!cJSON_IsArray(list))
      return TK_LOAD_FAIL(ld, "normalizer.normalizers: not an array");
    for (const cJSON *e = list->child; e; e = e->next) {
      const char *et = tk_json_type(e);
      if (!et || strcmp(et, "NFC"))
        return tk_unsupported(ld, "normalizer (only NFC)");
      ld->tok->nfc = true;
    }
    return AM_OK;
  }
  return tk_unsupported(ld, "normalizer (only NFC)");
}

static am_status tk_add_stage(tk_loader *ld, const char *pat, size_t len,
                              bool literal) {
  am_tokenizer *t = ld->tok;
  if (t->n_stages == TK_MAX_STAGES)
    return tk_unsupported(ld, "pre_tokenizer (too many Split stages)");
  int err;
  PCRE2_SIZE off;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, &err, &off, NULL);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return TK_LOAD_FAIL(ld,
                        "pre_tokenizer: Split pattern does not compile "
                        "at offset %zu: %s",
                        (size_t)off, (const char *)msg);
  }
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter otherwise */
  t->stages[t->n_stages++] = re;
  return AM_OK;
}

static am_status tk_load_pretok1(tk_loader *ld, const cJSON *p) {
  const char *type = tk_json_type(p);
  if (!type) return TK_LOAD_FAIL(ld, "pre_tokenizer: no type");
  if (!strcmp(type, "ByteLevel")) {
    bool prefix = false, use_regex = true;
    if (!tk_json_bool(p, "add_prefix_space", &prefix) ||
        !tk_json_bool(p, "use_regex", &use_regex))
      return TK_LOAD_FAIL(ld, "pre_tokenizer ByteLevel: a flag is not a "
                              "boolean");
    if (prefix) return tk_unsupported(ld, "ByteLevel add_prefix_space");
    return use_regex ? tk_add_stage(ld, tk_gpt2_re, sizeof tk_gpt2_re - 1, 0)
                     : AM_OK;
  }
  if (strcmp(type, "Split")) return tk_unsupported(ld, "pre_tokenizer type");
  const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
  const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
  const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
  const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
  bool invert = false;
  if (!cJSON_IsString(re) && !cJSON_IsString(str))
    return TK_LOAD_FAIL(ld, "pre_tokenizer Split: pattern has no Regex or "
                            "String");
  if (!cJSON_IsString(beh) || !tk_json_bool(p, "invert", &invert))
    return TK_LOAD_FAIL(ld, "pre_tokenizer Split: behavior or invert "
                            "missing or mistyped");
  if (strcmp(beh->valuestring, "Isolated") || invert)
    return tk_unsupported(ld, "Split behavior (only Isolated, not inverted)");
  const char *s = cJSON_IsString(re) ? re->valuestring : str->valuestring;
  if (!*s) return TK_LOAD_FAIL(ld, "pre_tokenizer Split: empty pattern");
  return tk_add_stage(ld, s, strlen(s), !cJSON_IsString(re));
}

static am_status tk_load_pretok(tk_loader *ld, const cJSON *root) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
  if (!p || cJSON_IsNull(p)) return AM_OK;
  const char *type = tk_json_type(p);
  if (type && !strcmp(type, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!cJSON_IsArray(list))
      return TK_LOAD_FAIL(ld, "pre_tokenizer.pretokenizers: not an array");
    for (const cJSON *e = list->child; e; e = e->next) {
      am_status s = tk_load_pretok1(ld, e);
      if (s) return s;
    }
    return AM_OK;
  }
  return tk_load_pretok1(ld, p);
}

static am_status tk_load_decoder(tk_loader *ld, const cJSON *root) {
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "decoder");
  if (!d || cJSON_IsNull(d)) return AM_OK; /* byte-level all the same */
  const char *type = tk_json_type(d);
  if (!type || strcmp(type, "ByteLevel"))
    return tk_unsupported(ld, "decoder (only ByteLevel)");
  return AM_OK;
}

/* The ByteLevel decoder's bytes for a token string: its characters mapped
 * back through bytes_to_unicode, or its own UTF-8 when one has no byte. */
static am_status tk_token_bytes(am_tokenizer *t, const int16_t *chr2byte,
                                int32_t id, const char *s) {
  size_t n = strlen(s);
  char stackbuf[256], *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
  if (!buf) return tk_oom();
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    utf8proc_int32_t c;
    utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                          (utf8proc_ssize_t)(n - i), &c);
    if (l <= 0 || c >= 324 || chr2byte[c] < 0) {
      k = SIZE_MAX;
      break;
    }
    buf[k++] = (char)chr2byte[c];
    i += (size_t)l;
  }
  const char *src = k == SIZE_MAX ? s : buf;
  size_t len = k == SIZE_MAX ? n : k;
  t->id_bytes[id] = tk_arena_put(&t->arena, src, len);
  t->id_nbytes[id] = (uint32_t)len;
  if (buf != stackbuf) free(buf);
  return t->id_bytes[id] ? AM_OK : tk_oom();
}

static am_status tk_build_tables(tk_loader *ld) {
  am_tokenizer *t = ld->tok;
  size_t n = (size_t)t->n_ids;
  t->id_str = calloc(n ? n : 1, sizeof *t->id_str);
  t->id_bytes = calloc(n ? n : 1, sizeof *t->id_bytes);
  t->id_nbytes = calloc(n ? n : 1, sizeof *t->id_nbytes);
  t->id_special = calloc(n ? n : 1, 1);
  if (!t->id_str || !t->id_bytes || !t->id_nbytes || !t->id_special)
    return tk_oom();
  for (size_t i = 0; i < t->vocab.cap; i++) {
    const tk_sent *e = &t->vocab.slots[i];
    if (!e->s) continue;
    if (t->id_str[e->val])
      return TK_LOAD_FAIL(ld, "model.vocab: id %d is used by '%s' and '%s'",
                          e->val, t->id_str[e->val], e->s);
    t->id_str[e->val] = e->s;
  }
  /* An added token's content wins over a vocabulary entry of the same id,
   * as in HF's id_to_token. */
  tk_addset *sets[2] = {&t->raw_added, &t->norm_added};
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < sets[k]->n; i++) {
      tk_added *a = &sets[k]->v[i];
      bool special = a->id < 0;
      a->id = special ? -1 - a->id : a->id;
      t->id_str[a->id] = a->s;
      t->id_special[a->id] = special;
    }
  for (int k = 0; k < 2; k++)
    if (sets[k]->n)
      qsort(sets[k]->v, (size_t)sets[k]->n, sizeof *sets[k]->v, tk_added_cmp);
  int16_t chr2byte[324];
  memset(chr2byte, 0xff, sizeof chr2byte);
  for (int b = 0; b < 256; b++) {
    utf8proc_int32_t c;
    utf8proc_iterate((const utf8proc_uint8_t *)t->byte_chr[b],
                     t->byte_chr_len[b], &c);
    chr2byte[c] = (int16_t)b;
    t->byte_id[b] = tk_smap_get(&t->vocab, t->byte_chr[b], t->byte_chr_len[b]);
  }
  for (size_t i = 0; i < n; i++) {
    if (!t->id_str[i]) continue;
    am_status s = tk_token_bytes(t, chr2byte, (int32_t)i, t->id_str[i]);
    if (s) return s;
  }
  return AM_OK;
}

am_status am_tokenizer_load_json(const char *json, size_t len, const char *name,
                                 am_tokenizer **out) {
  if (!out) return AM_FAIL(AM_ERR_INVALID_ARG, "am_tokenizer_load: out NULL");
  *out = NULL;
  if (!json) return AM_FAIL(AM_ERR_INVALID_ARG, "am_tokenizer_load: NULL json");
  tk_loader ld = {name ? name : "<memory>", NULL};
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
  if (!root) {
    size_t at = end && end >= json ? (size_t)(end - json) : 0;
    return TK_LOAD_FAIL(&ld, "not valid JSON (near byte %zu)", at);
  }
  am_status s = AM_OK;
  am_tokenizer *t = calloc(1, sizeof *t);
  if (!t) {
    cJSON_Delete(root);
    return tk_oom();
  }
  ld.tok = t;
  pthread_mutex_init(&t->cache_lock, NULL);
  tk_bytes_to_unicode(t);
  if (!cJSON_IsObject(root))
    s = TK_LOAD_FAIL(&ld, "the top level is not an object");
  if (!s) s = tk_load_model(&ld, root);
  if (!s) s = tk_load_normalizer(&ld, root);
  if (!s) s = tk_load_added(&ld, root);
  if (!s) s = tk_load_pretok(&ld, root);
  if (!s) s = tk_load_decoder(&ld, root);
  if (!s) s = tk_build_tables(&ld);
  if (!s && !(t->cache = calloc(TK_CACHE_CAP, sizeof *t->cache))) s = tk_oom();
  cJSON_Delete(root);
  if (s) {
    am_tokenizer_free(t);
    return s;
  }
  *out = t;
  return AM_OK;
}

am_status am_tokenizer_load(const char *path, am_tokenizer **out) {
  if (!out) return AM_FAIL(AM_ERR_INVALID_ARG, "am_tokenizer_load: out NULL");
  *out = NULL;
  if (!path) return AM_FAIL(AM_ERR_INVALID_ARG, "am_tokenizer_load: NULL path");
  FILE *f = fopen(path, "rb");
  if (!f)
    return AM_FAIL(AM_ERR_IO, "tokenizer '%s': cannot open: %s", path,
                   strerror(errno));
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (cap - n < 65536) {
      cap = cap ? 2 * cap : 1 << 20;
      char *p = realloc(buf, cap);
      if (!p) {
        free(buf);
        fclose(f);
        return tk_oom();
      }
      buf = p;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    free(buf);
    return AM_FAIL(AM_ERR_IO, "tokenizer '%s': read error", path);
  }
  am_status s = am_tokenizer_load_json(buf, n, path, out);
  free(buf);
  return s;
}

static void tk_cache_clear(am_tokenizer *t) {
  for (size_t i = 0; i < TK_CACHE_CAP; i++)
    free(t->cache[i].ids); /* the block starts with the ids */
  memset(t->cache, 0, TK_CACHE_CAP * sizeof *t->cache);
  t->cache_n = 0;
}

void am_tokenizer_free(am_tokenizer *t) {
  if (!t) return;
  if (t->cache) tk_cache_clear(t);
  free(t->cache);
  pthread_mutex_destroy(&t->cache_lock);
  for (int i = 0; i < t->n_stages; i++)
    pcre2_code_free(t->stages[i]);
  free(t->raw_added.v);
  free(t->norm_added.v);
  free(t->vocab.slots);
  free(t->added.slots);
  free(t->pairs);
  free(t->id_str);
  free(t->id_bytes);
  free(t->id_nbytes);
  free(t->id_special);
  tk_arena_free(t->arena);
  free(t);
}

void am_tokenizer_buf_free(void *p) {
  free(p);
}

int32_t am_tokenizer_vocab_size(const am_tokenizer *t) {
  return t ? t->n_ids : 0;
}

int32_t am_tokenizer_token_id(const am_tokenizer *t, const char *token) {
  if (!t || !token) return -1;
  size_t n = strlen(token);
  int32_t id = tk_smap_get(&t->added, token, n);
  return id >= 0 ? id : tk_smap_get(&t->vocab, token, n);
}

const char *am_tokenizer_token_str(const am_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_ids ? t->id_str[id] : NULL;
}

bool am_tokenizer_is_special(const am_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_ids && t->id_special[id];
}

/* ======================================================================
 *  BPE
 * ====================================================================== */

typedef struct {
  int32_t id, prev, next, alive;
} tk_sym;

typedef struct {
  int32_t rank, pos, id;
} tk_cand;

static bool tk_cand_less(tk_cand a, tk_cand b) {
  return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void tk_heap_push(tk_cand *h, int *n, tk_cand c) {
  int i = (*n)++;
  while (i > 0 && tk_cand_less(c, h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = c;
}

static tk_cand tk_heap_pop(tk_cand *h, int *n) {
  tk_cand top = h[0], last = h[--*n];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && tk_cand_less(h[c + 1], h[c])) c++;
    if (!tk_cand_less(h[c], last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = last;
  return top;
}

static const tk_pent *tk_pair_get(const am_tokenizer *t, int32_t a, int32_t b) {
  uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  for (size_t i = tk_mix(key) & (t->pair_cap - 1);;
       i = (i + 1) & (t->pair_cap - 1)) {
    if (t->pairs[i].key == key) return &t->pairs[i];
    if (!t->pairs[i].key) return NULL;
  }
}

static void tk_try_pair(const am_tokenizer *t, const tk_sym *sym, int32_t pos,
                        tk_cand *heap, int *nh) {
  int32_t nx = sym[pos].next;
  if (nx < 0) return;
  const tk_pent *p = tk_pair_get(t, sym[pos].id, sym[nx].id);
  if (p) tk_heap_push(heap, nh, (tk_cand){p->rank, pos, p->id});
}

/* BPE of one piece's bytes, appended to out. */
static am_status tk_bpe(const am_tokenizer *t, const unsigned char *p, size_t n,
                        tk_ivec *out) {
  if (!n) return AM_OK;
  if (t->ignore_merges) { /* a piece in the vocabulary is one token */
    char stackbuf[2 * TK_CACHE_MAX_PIECE];
    stackbuf[0] = 0; /* n > 0 fills it; this quiets GCC 12 */
    char *buf = n <= TK_CACHE_MAX_PIECE ? stackbuf : malloc(2 * n);
    if (!buf) return tk_oom();
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      for (int j = 0; j < t->byte_chr_len[p[i]]; j++)
        buf[k++] = t->byte_chr[p[i]][j];
    int32_t id = tk_smap_get(&t->vocab, buf, k);
    if (buf != stackbuf) free(buf);
    if (id >= 0) return tk_ivec_push(out, id) ? AM_OK : tk_oom();
  }
  /* The heap holds at most 2n candidates: n - 1 at first, and each merge
   * pops one and pushes at most two. */
  tk_sym stack_sym[64];
  tk_cand stack_heap[128];
  tk_sym *sym = n <= 64 ? stack_sym : malloc(n * sizeof *sym);
  tk_cand *heap = n <= 64 ? stack_heap : malloc(2 * n * sizeof *heap);
  if (!sym || !heap) {
    if (sym != stack_sym) free(sym);
    if (heap != stack_heap) free(heap);
    return tk_oom();
  }
  /* Symbols: one per byte known to the vocabulary (unknown bytes become
   * unk, fused if asked, or are dropped, as in HF). */
  int32_t m = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = t->byte_id[p[i]];
    if (id < 0) {
      if (t->unk_id < 0) continue;
      if (t->fuse_unk && m && sym[m - 1].id == t->unk_id) continue;
      id = t->unk_id;
    }
    sym[m] = (tk_sym){id, m - 1, -1, 1};
    if (m) sym[m - 1].next = m;
    m++;
  }
  int nh = 0;
  for (int32_t i = 0; i + 1 < m; i++)
    tk_try_pair(t, sym, i, heap, &nh);
  while (nh) {
    tk_cand c = tk_heap_pop(heap, &nh);
    tk_sym *a = &sym[c.pos];
    if (!a->alive || a->next < 0) continue;
    tk_sym *b = &sym[a->next];
    const tk_pent *pe = tk_pair_get(t, a->id, b->id);
    if (!pe || pe->id != c.id) continue; /* stale candidate */
    a->id = c.id;
    b->alive = 0;
    a->next = b->next;
    if (b->next >= 0) sym[b->next].prev = c.pos;
    if (a->prev >= 0) tk_try_pair(t, sym, a->prev, heap, &nh);
    tk_try_pair(t, sym, c.pos, heap, &nh);
  }
  am_status s = AM_OK;
  for (int32_t i = m ? 0 : -1; i >= 0 && !s; i = sym[i].next)
    if (!tk_ivec_push(out, sym[i].id)) s = tk_oom();
  if (sym != stack_sym) free(sym);
  if (heap != stack_heap) free(heap);
  return s;
}

/* BPE through the per-piece cache (pieces of at most TK_CACHE_MAX_PIECE
 * bytes; the table is emptied when half full, which keeps it simple and
 * bounded). */
static am_status tk_bpe_cached(am_tokenizer *t, const char *p, size_t n,
                               tk_ivec *out) {
  if (n > TK_CACHE_MAX_PIECE)
    return tk_bpe(t, (const unsigned char *)p, n, out);
  uint64_t h = tk_hash(p, n);
  pthread_mutex_lock(&t->cache_lock);
  size_t i = h & (TK_CACHE_CAP - 1);
  for (; t->cache[i].key; i = (i + 1) & (TK_CACHE_CAP - 1)) {
    tk_centry *e = &t->cache[i];
    if (e->h == h && e->klen == n && !memcmp(e->key, p, n)) {
      int ok = 1;
      for (uint32_t k = 0; k < e->n && ok; k++)
        ok = tk_ivec_push(out, e->ids[k]);
      pthread_mutex_unlock(&t->cache_lock);
      return ok ? AM_OK : tk_oom();
    }
  }
  pthread_mutex_unlock(&t->cache_lock);
  size_t start = out->n;
  am_status s = tk_bpe(t, (const unsigned char *)p, n, out);
  if (s) return s;
  size_t cnt = out->n - start;
  /* Ids first (aligned), then the key bytes. */
  char *blk = malloc(cnt * sizeof(int32_t) + n + 1);
  if (!blk) return AM_OK; /* caching is optional */
  if (cnt) memcpy(blk, out->v + start, cnt * sizeof(int32_t));
  memcpy(blk + cnt * sizeof(int32_t), p, n);
  pthread_mutex_lock(&t->cache_lock);
  if (t->cache_n >= TK_CACHE_CAP / 2) tk_cache_clear(t);
  i = h & (TK_CACHE_CAP - 1);
  for (; t->cache[i].key; i = (i + 1) & (TK_CACHE_CAP - 1)) {
    tk_centry *e = &t->cache[i];
    if (e->h == h && e->klen == n && !memcmp(e->key, p, n)) break;
  }
  if (t->cache[i].key) {
    free(blk); /* another thread was faster */
  } else {
    t->cache[i] =
        (tk_centry){h, blk, (uint32_t)n, (uint32_t)cnt, (int32_t *)blk};
    t->cache[i].key = blk + cnt * sizeof(int32_t);
    t->cache_n++;
  }
  pthread_mutex_unlock(&t->cache_lock);
  return AM_OK;
}

/* ======================================================================
 *  Encode
 * ====================================================================== */

typedef struct {
  am_tokenizer *tok;
  tk_ivec out;
  pcre2_match_data *md[TK_MAX_STAGES];
} tk_enc;

/* Regex stage `stage` over s[0..n): matches and the gaps between them are
 * pieces for the next stage (behavior Isolated). */
static am_status tk_pretok(tk_enc *e, int stage, const char *s, size_t n) {
  if (!n) return AM_OK;
  if (stage == e->tok->n_stages) return tk_bpe_cached(e->tok, s, n, &e->out);
  pcre2_code *re = e->tok->stages[stage];
  pcre2_match_data *md = e->md[stage];
  size_t pos = 0, done = 0;
  while (pos < n) {
    int rc =
        pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return AM_FAIL(AM_ERR_INTERNAL, "am_tokenizer_encode: regex: %s",
                     (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t a = ov[0], b = ov[1];
    if (b == a) { /* an empty match: step over one character */
      pos = b + 1;
      while (pos < n && ((unsigned char)s[pos] & 0xc0) == 0x80)
        pos++;
      continue;
    }
    am_status st = tk_pretok(e, stage + 1, s + done, a - done);
    if (!st) st = tk_pretok(e, stage + 1, s + a, b - a);
    if (st) return st;
    done = pos = b;
  }
  return tk_pretok(e, stage + 1, s + done, n - done);
}

typedef am_status (*tk_segment_fn)(tk_enc *e, const char *s, size_t n);

/* Splits s on the added tokens of `set` (leftmost, then longest): tokens go
 * to the output, the text between them to fn. */
static am_status tk_split_added(tk_enc *e, const tk_addset *set, const char *s,
                                size_t n, tk_segment_fn fn) {
  size_t done = 0;
  for (size_t i = 0; set->n && i < n; i++) {
    if (!set->first[(unsigned char)s[i]]) continue;
    for (int k = 0; k < set->n; k++) {
      const tk_added *a = &set->v[k];
      if (a->len > n - i || memcmp(s + i, a->s, a->len)) continue;
      am_status st = fn(e, s + done, i - done);
      if (st) return st;
      if (!tk_ivec_push(&e->out, a->id)) return tk_oom();
      done = i + a->len;
      i = done - 1;
      break;
    }
  }
  return fn(e, s + done, n - done);
}

static am_status tk_seg_pretok(tk_enc *e, const char *s, size_t n) {
  return tk_pretok(e, 0, s, n);
}

/* A segment between raw-matched added tokens: NFC, then the added tokens
 * matched on normalized text, then pre-tokenization. */
static am_status tk_seg_normalize(tk_enc *e, const char *s, size_t n) {
  if (!n) return AM_OK;
  bool ascii = true;
  for (size_t i = 0; i < n && ascii; i++)
    ascii = (unsigned char)s[i] < 0x80;
  utf8proc_uint8_t *nfc = NULL;
  if (e->tok->nfc && !ascii) {
    utf8proc_ssize_t r =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfc,
                     UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0)
      return AM_FAIL(r == UTF8PROC_ERROR_NOMEM ? AM_ERR_OOM
                                               : AM_ERR_INVALID_ARG,
                     "am_tokenizer_encode: NFC: %s", utf8proc_errmsg(r));
    s = (const char *)nfc, n = (size_t)r;
  }
  am_status st = tk_split_added(e, &e->tok->norm_added, s, n, tk_seg_pretok);
  free(nfc);
  return st;
}

am_status am_tokenizer_encode(const am_tokenizer *tok, const char *text,
                              size_t len, int32_t **ids, size_t *n) {
  if (ids) *ids = NULL;
  if (n) *n = 0;
  if (!tok || !ids || !n || (!text && len))
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_tokenizer_encode: NULL argument");
  size_t bad = tk_utf8_check(text, len);
  if (bad < len)
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "am_tokenizer_encode: invalid UTF-8 at byte %zu", bad);
  /* The cache is the only mutable state (behind its mutex). */
  tk_enc e = {(am_tokenizer *)tok, {0}, {0}};
  am_status s = AM_OK;
  for (int i = 0; i < tok->n_stages && !s; i++)
    if (!(e.md[i] = pcre2_match_data_create_from_pattern(tok->stages[i], NULL)))
      s = tk_oom();
  if (!s)
    s = tk_split_added(&e, &tok->raw_added, text ? text : "", len,
                       tk_seg_normalize);
  for (int i = 0; i < tok->n_stages; i++)
    pcre2_match_data_free(e.md[i]);
  if (!s && !e.out.v && !(e.out.v = malloc(sizeof(int32_t)))) s = tk_oom();
  if (s) {
    free(e.out.v);
    return s;
  }
  *ids = e.out.v;
  *n = e.out.n;
  return AM_OK;
}

/* ======================================================================
 *  Decode
 * ====================================================================== */

static am_status tk_id_check(const am_tokenizer *t, int32_t id,
                             const char *fn) {
  if (id < 0 || id >= t->n_ids || !t->id_bytes[id])
    return AM_FAIL(AM_ERR_INVALID_ARG,
                   "%s: no token has id %d (vocabulary "
                   "size %d)",
                   fn, id, t->n_ids);
  return AM_OK;
}

am_status am_tokenizer_decode(const am_tokenizer *tok, const int32_t *ids,
                              size_t n, bool skip_special, char **text,
                              size_t *len) {
  if (text) *text = NULL;
  if (len) *len = 0;
  if (!tok || !text || (!ids && n))
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_tokenizer_decode: NULL argument");
  tk_buf raw = {0}, out = {0};
  am_status s = AM_OK;
  for (size_t i = 0; i < n && !s; i++) {
    s = tk_id_check(tok, ids[i], "am_tokenizer_decode");
    if (!s && !(skip_special && tok->id_special[ids[i]]) &&
        !tk_buf_put(&raw, tok->id_bytes[ids[i]], tok->id_nbytes[ids[i]]))
      s = tk_oom();
  }
  if (!s && (tk_utf8_lossy(&out, raw.p, raw.n, true) == (size_t)-1 ||
             !tk_buf_put(&out, "", 0)))
    s = tk_oom();
  free(raw.p);
  if (s) {
    free(out.p);
    return s;
  }
  *text = out.p;
  if (len) *len = out.n;
  return AM_OK;
}

struct am_detok {
  const am_tokenizer *tok;
  bool skip_special;
  tk_buf pending; /* bytes of an incomplete character */
  tk_buf out;
};

am_detok *am_detok_new(const am_tokenizer *tok, bool skip_special) {
  if (!tok) {
    AM_FAIL(AM_ERR_INVALID_ARG, "am_detok_new: NULL tokenizer");
    return NULL;
  }
  am_detok *d = calloc(1, sizeof *d);
  if (!d) {
    tk_oom();
    return NULL;
  }
  d->tok = tok;
  d->skip_special = skip_special;
  return d;
}

void am_detok_free(am_detok *d) {
  if (!d) return;
  free(d->pending.p);
  free(d->out.p);
  free(d);
}

/* Emits the complete characters of pending (all of it when final). */
static am_status tk_detok_emit(am_detok *d, bool final, const char **piece,
                               size_t *len) {
  d->out.n = 0;
  if (!tk_buf_put(&d->out, "", 0)) return tk_oom();
  size_t used = tk_utf8_lossy(&d->out, d->pending.p, d->pending.n, final);
  if (used == (size_t)-1) return tk_oom();
  if (used) {
    memmove(d->pending.p, d->pending.p + used, d->pending.n - used);
    d->pending.n -= used;
  }
  *piece = d->out.p;
  *len = d->out.n;
  return AM_OK;
}

am_status am_detok_push(am_detok *d, int32_t id, const char **piece,
                        size_t *len) {
  if (!d || !piece || !len)
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_detok_push: NULL argument");
  *piece = "";
  *len = 0;
  am_status s = tk_id_check(d->tok, id, "am_detok_push");
  if (s) return s;
  if (!(d->skip_special && d->tok->id_special[id]) &&
      !tk_buf_put(&d->pending, d->tok->id_bytes[id], d->tok->id_nbytes[id]))
    return tk_oom();
  return tk_detok_emit(d, false, piece, len);
}

am_status am_detok_flush(am_detok *d, const char **piece, size_t *len) {
  if (!d || !piece || !len)
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_detok_flush: NULL argument");
  *piece = "";
  *len = 0;
  return tk_detok_emit(d, true, piece, len);
}

/* ======================================================================
 *  ChatML
 * ====================================================================== */

am_status am_chatml_render(const am_chat_msg *msgs, int n,
                           bool add_generation_prompt, char **out,
                           size_t *len) {
  if (out) *out = NULL;
  if (len) *len = 0;
  if (!out || n < 0 || (!msgs && n))
    return AM_FAIL(AM_ERR_INVALID_ARG, "am_chatml_render: bad arguments");
  tk_buf b = {0};
  int ok = tk_buf_put(&b, "", 0);
  for (int i = 0; i < n && ok; i++) {
    if (!msgs[i].role || !msgs[i].content) {
      free(b.p);
      return AM_FAIL(AM_ERR_INVALID_ARG,
                     "am_chatml_render: message %d has a NULL role or "
                     "content",
                     i);
    }
    ok = tk_buf_put(&b, "<|im_start|>", 12) &&
         tk_buf_put(&b, msgs[i].role, strlen(msgs[i].role)) &&
         tk_buf_put(&b, "\n", 1) &&
         tk_buf_put(&b, msgs[i].content, strlen(msgs[i].content)) &&
         tk_buf_put(&b, "<|im_end|>\n", 11);
  }
  if (ok && add_generation_prompt)
    ok = tk_buf_put(&b, "<|im_start|>assistant\n", 22);
  if (!ok) {
    free(b.p);
    return tk_oom();
  }
  *out = b.p;
  if (len) *len = b.n;
  return AM_OK;
}
