/*
 * test.h — the small helpers every test uses: checks that count, random
 * inputs, value comparison against expected numbers, and the reader for
 * golden files written by scripts/golden_*.py. Header-only on purpose.
 */
#ifndef AM_TEST_H
#define AM_TEST_H

#include <amorph.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (cond) {                                                                \
      t_pass++;                                                                \
    } else {                                                                   \
      t_fail++;                                                                \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

/* Prints the closing line and returns the exit code. */
static inline int t_summary(void) {
  printf("%d passed, %d failed\n", t_pass, t_fail);
  return t_fail ? 1 : 0;
}

/* AM_TEST_QUICK=1 (set for the sanitizer run) asks for fewer iterations. */
static inline int t_quick(void) {
  const char *e = getenv("AM_TEST_QUICK");
  return e && *e && *e != '0';
}

/* ---- random numbers (splitmix64) ---- */

typedef struct {
  uint64_t s;
} t_rng;
static inline uint64_t t_next(t_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* uniform integer in [lo, hi] */
static inline int64_t t_randint(t_rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)(t_next(r) % (uint64_t)(hi - lo + 1));
}
static inline double t_uniform(t_rng *r) {
  return (double)(t_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Array of `dtype` from doubles (converted as am_astype would). */
static inline am_array t_arr(const double *v, const int64_t *shape, int ndim,
                             am_dtype dtype) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  am_array a = am_array_new_data(v, shape, ndim, AM_F64);
  if (dtype == AM_F64) return a;
  (void)n;
  return am_astype(a, dtype);
}

/* Random array: floats uniform in [lo, hi), integers in [lo, hi]. */
static inline am_array t_rand(t_rng *r, const int64_t *shape, int ndim,
                              am_dtype dtype, double lo, double hi) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  for (int64_t i = 0; i < n; i++) {
    if (dtype == AM_BOOL)
      v[i] = (double)(t_next(r) & 1);
    else if (dtype == AM_F16 || dtype == AM_BF16 || dtype == AM_F32 ||
             dtype == AM_F64)
      v[i] = lo + (hi - lo) * t_uniform(r);
    else
      v[i] = (double)t_randint(r, (int64_t)lo, (int64_t)hi);
  }
  am_array a = am_array_new_data(v, shape, ndim, AM_F64);
  free(v);
  return dtype == AM_F64 ? a : am_astype(a, dtype);
}

/* Evaluates x and compares with want[] (NaN matches NaN, infinities must
 * match exactly): |x - want| <= atol + rtol * |want|. */
static inline int t_expect(am_array x, const double *want, int64_t n,
                           double rtol, double atol, const char *what) {
  am_status s = am_eval(&x, 1);
  if (s != AM_OK) {
    CHECK(0, "%s: eval failed: %s", what, am_last_error());
    return 0;
  }
  if (am_array_size(x) != n) {
    CHECK(0, "%s: size %lld, want %lld", what, (long long)am_array_size(x),
          (long long)n);
    return 0;
  }
  double *got = malloc((size_t)(n ? n : 1) * sizeof *got);
  if (am_array_read(x, AM_F64, got, n) != AM_OK) {
    CHECK(0, "%s: read failed: %s", what, am_last_error());
    free(got);
    return 0;
  }
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; i++) {
    double g = got[i], w = want[i];
    int ok = (isnan(w) && isnan(g)) || (isinf(w) && g == w) ||
             (!isnan(w) && !isinf(w) && fabs(g - w) <= atol + rtol * fabs(w));
    if (!ok) {
      bad++;
      CHECK(0, "%s: element %lld = %.9g, want %.9g", what, (long long)i, g, w);
    }
  }
  if (!bad) t_pass++;
  free(got);
  return !bad;
}

static inline int t_expect_shape(am_array x, const int64_t *shape, int ndim,
                                 const char *what) {
  int ok = am_array_ndim(x) == ndim;
  for (int i = 0; ok && i < ndim; i++)
    ok = am_array_shape(x)[i] == shape[i];
  CHECK(ok, "%s: wrong shape (ndim %d)", what, am_array_ndim(x));
  return ok;
}

/* x must be an error array with status s and a message naming `op`. */
static inline void t_expect_error(am_array x, am_status s, const char *op,
                                  const char *what) {
  CHECK(am_array_status(x) == s, "%s: status %s, want %s (%s)", what,
        am_status_str(am_array_status(x)), am_status_str(s), am_array_error(x));
  CHECK(strstr(am_array_error(x), op) != NULL,
        "%s: message '%s' does not name '%s'", what, am_array_error(x), op);
}

/* ---- golden files ---- */

typedef struct {
  char key[64];
  am_dtype dtype;
  int ndim;
  int64_t shape[AM_MAX_DIMS];
  int64_t n;
  double *v;
} t_garr;

typedef struct {
  char name[128];
  int n;
  t_garr arr[16];
} t_gcase;

typedef struct {
  int n;
  t_gcase *cases;
} t_golden;

static inline am_dtype t_dtype_from_name(const char *s) {
  for (int t = 0; t < AM_DTYPE_COUNT; t++)
    if (!strcmp(am_dtype_name((am_dtype)t), s)) return (am_dtype)t;
  return AM_DTYPE_COUNT;
}

static inline double t_parse_num(const char *tok) {
  if (!strcmp(tok, "nan")) return NAN;
  if (!strcmp(tok, "inf")) return INFINITY;
  if (!strcmp(tok, "-inf")) return -INFINITY;
  return strtod(tok, NULL);
}

/* Loads path; returns NULL (and counts a failure) when missing/corrupt. */
static inline t_golden *t_golden_load(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    CHECK(0, "cannot open golden file %s", path);
    return NULL;
  }
  t_golden *g = calloc(1, sizeof *g);
  int cap = 0;
  char word[64];
  t_gcase *cur = NULL;
  while (fscanf(f, "%63s", word) == 1) {
    if (word[0] == '#') {
      int c;
      while ((c = fgetc(f)) != EOF && c != '\n') {
      }
    } else if (!strcmp(word, "case")) {
      if (g->n == cap) {
        cap = cap ? 2 * cap : 64;
        g->cases = realloc(g->cases, (size_t)cap * sizeof *g->cases);
      }
      cur = &g->cases[g->n++];
      memset(cur, 0, sizeof *cur);
      if (fscanf(f, "%127s", cur->name) != 1) break;
    } else if (!strcmp(word, "arr") && cur && cur->n < 16) {
      t_garr *a = &cur->arr[cur->n++];
      char dt[32];
      if (fscanf(f, "%63s %31s %d", a->key, dt, &a->ndim) != 3) break;
      a->dtype = t_dtype_from_name(dt);
      a->n = 1;
      for (int i = 0; i < a->ndim; i++) {
        long long d;
        if (fscanf(f, "%lld", &d) != 1) break;
        a->shape[i] = d;
        a->n *= d;
      }
      a->v = malloc((size_t)(a->n ? a->n : 1) * sizeof *a->v);
      for (int64_t i = 0; i < a->n; i++) {
        char tok[64];
        if (fscanf(f, "%63s", tok) != 1) break;
        a->v[i] = t_parse_num(tok);
      }
    }
  }
  fclose(f);
  return g;
}

static inline void t_golden_free(t_golden *g) {
  if (!g) return;
  for (int c = 0; c < g->n; c++)
    for (int i = 0; i < g->cases[c].n; i++)
      free(g->cases[c].arr[i].v);
  free(g->cases);
  free(g);
}

static inline const t_gcase *t_golden_case(const t_golden *g,
                                           const char *name) {
  for (int c = 0; g && c < g->n; c++)
    if (!strcmp(g->cases[c].name, name)) return &g->cases[c];
  CHECK(0, "golden case %s missing", name);
  return NULL;
}

static inline const t_garr *t_gcase_arr(const t_gcase *c, const char *key) {
  for (int i = 0; c && i < c->n; i++)
    if (!strcmp(c->arr[i].key, key)) return &c->arr[i];
  CHECK(0, "golden array %s missing in case %s", key, c ? c->name : "?");
  return NULL;
}

/* The golden array as an amorph array of its recorded dtype. */
static inline am_array t_garr_array(const t_garr *a) {
  return t_arr(a->v, a->shape, a->ndim, a->dtype);
}

/* Compares x (evaluated) with golden array `want`: shape and values. */
static inline int t_expect_garr(am_array x, const t_garr *want, double rtol,
                                double atol, const char *what) {
  if (!want) return 0;
  if (!t_expect_shape(x, want->shape, want->ndim, what)) return 0;
  CHECK(am_array_dtype(x) == want->dtype, "%s: dtype %s, want %s", what,
        am_dtype_name(am_array_dtype(x)), am_dtype_name(want->dtype));
  return t_expect(x, want->v, want->n, rtol, atol, what);
}

#endif
