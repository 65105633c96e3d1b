/*
 * test_safetensors.c — the safetensors reader and writer against fixtures
 * written by scripts/make_io_fixtures.py (values from NumPy, files from the
 * `safetensors` package or deliberately corrupt).
 */
#include "test.h"
#include "test_internal.h"

#include <inttypes.h>
#include <unistd.h>

#define DATA "data/"

static bool has(const char *msg, const char *sub) {
  return strstr(msg, sub) != NULL;
}

/* Opens a fixture file or directory (sharded / single are directories). */
static am_status open_any(const char *file, am_safetensors **st) {
  char path[256];
  snprintf(path, sizeof path, DATA "%s", file);
  if (strstr(file, ".safetensors")) return am_safetensors_open(path, st);
  return am_safetensors_open_dir(path, st);
}

/* Every tensor listed in st_expected.txt: dtype, shape and values. */
static void test_expected_values(void) {
  FILE *fp = fopen(DATA "st_expected.txt", "r");
  CHECK(fp, "cannot open st_expected.txt");
  if (!fp) return;
  char file[128], name[128], dt[16];
  int n_lines = 0;
  while (fscanf(fp, "%127s %127s %15s", file, name, dt) == 3) {
    int ndim;
    int64_t shape[AM_MAX_DIMS], count;
    if (fscanf(fp, "%d", &ndim) != 1 || ndim > AM_MAX_DIMS) break;
    for (int i = 0; i < ndim; i++)
      if (fscanf(fp, "%" SCNd64, &shape[i]) != 1) break;
    if (fscanf(fp, "%" SCNd64, &count) != 1) break;
    double *want = malloc((size_t)(count + 1) * sizeof *want);
    for (int64_t i = 0; i < count; i++)
      if (fscanf(fp, "%lf", &want[i]) != 1) break;
    n_lines++;

    am_safetensors *st = NULL;
    am_status s = open_any(file, &st);
    CHECK(s == AM_OK, "%s: %s", file, am_last_error());
    if (s) {
      free(want);
      continue;
    }
    am_safetensors_info info;
    CHECK(am_safetensors_info_get(st, name, &info) == AM_OK, "%s", name);
    CHECK(!strcmp(info.dtype_name, dt), "%s: dtype %s, want %s", name,
          info.dtype_name, dt);
    am_array a = am_safetensors_get(st, name);
    /* The array must outlive the checkpoint (it keeps the file mapped). */
    am_safetensors_free(st);
    CHECK(am_array_status(a) == AM_OK, "%s: %s", name, am_array_error(a));
    CHECK(am_array_ndim(a) == ndim, "%s: ndim %d want %d", name,
          am_array_ndim(a), ndim);
    for (int i = 0; i < ndim && am_array_ndim(a) == ndim; i++)
      CHECK(am_array_shape(a)[i] == shape[i], "%s: dim %d", name, i);
    CHECK(am_array_is_evaluated(a), "%s: not evaluated", name);
    double *got = malloc((size_t)(count + 1) * sizeof *got);
    if (am_array_size(a) == count &&
        am_array_read(a, AM_F64, got, count) == AM_OK) {
      int bad = 0;
      for (int64_t i = 0; i < count; i++)
        bad += got[i] != want[i];
      CHECK(!bad, "%s/%s: %d of %lld values differ", file, name, bad,
            (long long)count);
    } else {
      CHECK(0, "%s: size %lld want %lld", name, (long long)am_array_size(a),
            (long long)count);
    }
    free(got);
    free(want);
    am_array_free(a);
  }
  fclose(fp);
  CHECK(n_lines == 18, "read %d expected tensors", n_lines);
}

static void test_queries(void) {
  am_safetensors *st = NULL;
  CHECK(am_safetensors_open(DATA "all_dtypes.safetensors", &st) == AM_OK, "%s",
        am_last_error());
  if (!st) return;
  CHECK(am_safetensors_count(st) == 12, "count %lld",
        (long long)am_safetensors_count(st));
  for (int64_t i = 1; i < am_safetensors_count(st); i++)
    CHECK(strcmp(am_safetensors_name(st, i - 1), am_safetensors_name(st, i)) <
              0,
          "names not sorted at %lld", (long long)i);
  CHECK(!strcmp(am_safetensors_name(st, 0), "bool"), "first name %s",
        am_safetensors_name(st, 0));
  CHECK(am_safetensors_name(st, 12) == NULL, "name past the end");
  CHECK(am_safetensors_name(st, -1) == NULL, "negative index");
  CHECK(am_safetensors_has(st, "model.layers.0.mlp.gate.weight"), "has");
  CHECK(!am_safetensors_has(st, "model.layers.0"), "has a prefix");
  const char *fmt = am_safetensors_metadata(st, "format");
  CHECK(fmt && !strcmp(fmt, "mlx"), "metadata format %s", fmt ? fmt : "NULL");
  const char *note = am_safetensors_metadata(st, "note");
  CHECK(note && !strcmp(note, "amorph fixture"), "metadata note");
  CHECK(am_safetensors_metadata(st, "missing") == NULL, "missing metadata");

  am_safetensors_info info;
  CHECK(am_safetensors_info_get(st, "f32", &info) == AM_OK, "info");
  CHECK(info.dtype == AM_F32 && info.ndim == 2 && info.shape[0] == 3 &&
            info.shape[1] == 4 && info.nbytes == 48,
        "f32 info");
  CHECK(has(info.file, "all_dtypes.safetensors"), "info.file %s", info.file);
  CHECK(am_safetensors_info_get(st, "nope", &info) == AM_ERR_INVALID_ARG,
        "info of a missing tensor");

  /* Zero-copy: two gets of one tensor borrow the same bytes. */
  am_array a = am_safetensors_get(st, "f32");
  am_array b = am_safetensors_get(st, "f32");
  CHECK(am_array_data(a) && am_array_data(a) == am_array_data(b),
        "not zero-copy");
  am_array e = am_safetensors_get(st, "empty");
  CHECK(am_array_size(e) == 0 && am_array_status(e) == AM_OK, "empty tensor");
  am_array sc = am_safetensors_get(st, "scalar");
  CHECK(am_array_ndim(sc) == 0 && am_array_size(sc) == 1, "0-d tensor");

  /* Ops on borrowed tensors work, and never write into the mapping. */
  am_array twice = am_add(a, b);
  float w[12], v[12];
  CHECK(am_array_read(twice, AM_F32, w, 12) == AM_OK, "%s", am_last_error());
  CHECK(am_array_read(a, AM_F32, v, 12) == AM_OK, "read");
  int bad = 0;
  for (int i = 0; i < 12; i++)
    bad += w[i] != 2 * v[i];
  CHECK(!bad, "a + a");

  am_array m = am_safetensors_get(st, "missing.weight");
  CHECK(am_array_status(m) == AM_ERR_INVALID_ARG, "missing tensor status");
  CHECK(has(am_array_error(m), "missing.weight") &&
            has(am_array_error(m), "all_dtypes.safetensors"),
        "missing tensor message: %s", am_array_error(m));
  am_array nul = am_safetensors_get(NULL, "x");
  CHECK(am_array_status(nul) == AM_ERR_INVALID_ARG, "NULL checkpoint");
  am_array_free(nul);
  am_array_free(m);
  am_array_free(twice);
  am_array_free(sc);
  am_array_free(e);
  am_array_free(b);
  am_array_free(a);
  am_safetensors_free(st);
  am_safetensors_free(NULL);
}

static void test_unsupported_dtype(void) {
  am_safetensors *st = NULL;
  CHECK(am_safetensors_open(DATA "bf16.safetensors", &st) == AM_OK, "%s",
        am_last_error());
  if (!st) return;
  am_safetensors_info info;
  CHECK(am_safetensors_info_get(st, "f8", &info) == AM_OK, "info f8");
  CHECK(info.dtype == AM_DTYPE_COUNT && !strcmp(info.dtype_name, "F8_E4M3") &&
            info.nbytes == 4,
        "f8 info");
  am_array a = am_safetensors_get(st, "f8");
  CHECK(am_array_status(a) == AM_ERR_UNSUPPORTED, "f8 status %d",
        am_array_status(a));
  CHECK(has(am_array_error(a), "bf16.safetensors") &&
            has(am_array_error(a), "'f8'") && has(am_array_error(a), "F8_E4M3"),
        "f8 message: %s", am_array_error(a));
  am_array_free(a);
  am_safetensors_free(st);
}

typedef struct {
  const char *file;
  am_status status;
  const char *sub[3];
} bad_case;

static void test_corrupt(void) {
  static const bad_case cases[] = {
      {"truncated.safetensors", AM_ERR_IO, {"truncated", "out of range"}},
      {"tiny.safetensors", AM_ERR_IO, {"tiny", "too short"}},
      {"header_past_eof.safetensors",
       AM_ERR_IO,
       {"header_past_eof", "header length 1099511627776"}},
      {"bad_json.safetensors", AM_ERR_IO, {"bad_json", "not valid JSON"}},
      {"not_object.safetensors",
       AM_ERR_IO,
       {"not_object", "not a JSON object"}},
      {"overlap.safetensors", AM_ERR_IO, {"overlap.", "'a' [0, 16]", "'b'"}},
      {"out_of_range.safetensors",
       AM_ERR_IO,
       {"out_of_range", "'b'", "[16, 32] out of range"}},
      {"size_mismatch.safetensors",
       AM_ERR_IO,
       {"size_mismatch.safetensors: tensor 'model.embed_tokens.weight': "
        "data_offsets [0, 100] do not match shape [10, 4] bfloat16 (80 "
        "bytes)"}},
      {"unknown_dtype.safetensors", AM_ERR_IO, {"'q'", "unknown dtype 'Q4_K'"}},
      {"negative_dim.safetensors", AM_ERR_IO, {"'n'", "dim 0 is -1"}},
      {"bad_metadata.safetensors", AM_ERR_IO, {"__metadata__", "'format'"}},
      {"duplicate.safetensors", AM_ERR_IO, {"'a'", "twice"}},
      {"huge_dims.safetensors", AM_ERR_IO, {"'h'", "overflows"}},
      {"no_such_file.safetensors", AM_ERR_IO, {"no_such_file", "cannot open"}},
      {"sharded", AM_ERR_IO, {"sharded", "not a regular file"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case *c = &cases[i];
    char path[256];
    snprintf(path, sizeof path, DATA "%s", c->file);
    am_safetensors *st = (am_safetensors *)1;
    am_status s = am_safetensors_open(path, &st);
    CHECK(s == c->status, "%s: status %d want %d (%s)", c->file, s, c->status,
          am_last_error());
    CHECK(st == NULL, "%s: out not NULL on failure", c->file);
    for (int k = 0; k < 3 && c->sub[k]; k++)
      CHECK(has(am_last_error(), c->sub[k]), "%s: message '%s' lacks '%s'",
            c->file, am_last_error(), c->sub[k]);
    am_safetensors_free(st);
  }
  am_safetensors *st = NULL;
  CHECK(am_safetensors_open(NULL, &st) == AM_ERR_INVALID_ARG, "NULL path");
  CHECK(am_safetensors_open(DATA "tiny.safetensors", NULL) ==
            AM_ERR_INVALID_ARG,
        "NULL out");
}

static void test_sharded(void) {
  am_safetensors *st = NULL;
  CHECK(am_safetensors_open_dir(DATA "sharded", &st) == AM_OK, "%s",
        am_last_error());
  if (st) {
    CHECK(am_safetensors_count(st) == 3, "shard count %lld",
          (long long)am_safetensors_count(st));
    am_safetensors_info info;
    CHECK(am_safetensors_info_get(st, "lm_head.weight", &info) == AM_OK,
          "lm_head info");
    CHECK(has(info.file, "model-00002-of-00002.safetensors"), "shard %s",
          info.file);
    CHECK(am_safetensors_info_get(st, "model.norm.weight", &info) == AM_OK &&
              has(info.file, "model-00001-of-00002"),
          "norm shard");
    const char *fmt = am_safetensors_metadata(st, "format");
    CHECK(fmt && !strcmp(fmt, "mlx"), "shard metadata");
    am_safetensors_free(st);
  }
  CHECK(am_safetensors_open_dir(DATA "sharded_missing", &st) == AM_ERR_IO,
        "sharded_missing");
  CHECK(has(am_last_error(), "model.layers.0.input_layernorm.weight") &&
            has(am_last_error(), "model-00002-of-00002.safetensors"),
        "sharded_missing message: %s", am_last_error());
  CHECK(am_safetensors_open_dir(DATA "sharded_escape", &st) == AM_ERR_IO,
        "sharded_escape");
  CHECK(has(am_last_error(), "'x'"), "escape message: %s", am_last_error());
  CHECK(am_safetensors_open_dir(DATA "no_such_dir", &st) == AM_ERR_IO,
        "missing dir");
  CHECK(has(am_last_error(), "no_such_dir"), "missing dir: %s",
        am_last_error());
  CHECK(st == NULL, "out not NULL");
}

/* Writes arrays of every dtype (one non-contiguous, one 0-d, one empty),
 * reads them back. */
static void test_roundtrip(void) {
  char dir[] = "/tmp/am_st_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp");
    return;
  }
  char path[128];
  snprintf(path, sizeof path, "%s/out.safetensors", dir);
  t_rng r = {42};
  enum { N = AM_DTYPE_COUNT + 3 };
  am_array arrs[N];
  char names[N][32];
  const char *np[N];
  int64_t sh[] = {3, 5};
  /* Inputs are kept; their intermediates belong to the scope. */
  am_scope_push();
  for (int d = 0; d < AM_DTYPE_COUNT; d++) {
    arrs[d] = t_rand(&r, sh, 2, (am_dtype)d, -100, 100);
    snprintf(names[d], sizeof names[d], "t.%s", am_dtype_name((am_dtype)d));
  }
  arrs[AM_DTYPE_COUNT] = t_transposed(t_rand(&r, sh, 2, AM_F32, -1, 1));
  snprintf(names[AM_DTYPE_COUNT], 32, "transposed");
  arrs[AM_DTYPE_COUNT + 1] = am_scalar(7.25, AM_F64);
  snprintf(names[AM_DTYPE_COUNT + 1], 32, "scalar");
  arrs[AM_DTYPE_COUNT + 2] = am_zeros((int64_t[]){0, 4}, 2, AM_I8);
  snprintf(names[AM_DTYPE_COUNT + 2], 32, "empty");
  for (int i = 0; i < N; i++)
    arrs[i] = am_keep(arrs[i]);
  am_scope_pop();
  for (int i = 0; i < N; i++)
    np[i] = names[i];
  const char *meta[] = {"format", "mlx", "k", "v \"quoted\"", NULL};
  CHECK(am_safetensors_save(path, np, arrs, N, meta) == AM_OK, "save: %s",
        am_last_error());

  am_safetensors *st = NULL;
  CHECK(am_safetensors_open(path, &st) == AM_OK, "reopen: %s", am_last_error());
  if (st) {
    CHECK(am_safetensors_count(st) == N, "count");
    const char *k = am_safetensors_metadata(st, "k");
    CHECK(k && !strcmp(k, "v \"quoted\""), "metadata k");
    for (int i = 0; i < N; i++) {
      am_array b = am_safetensors_get(st, names[i]);
      am_array a = arrs[i];
      CHECK(am_array_status(b) == AM_OK, "%s: %s", names[i], am_array_error(b));
      CHECK(am_array_dtype(b) == am_array_dtype(a) &&
                am_array_ndim(b) == am_array_ndim(a),
            "%s dtype/ndim", names[i]);
      int64_t n = am_array_size(a);
      bool same_shape = am_array_size(b) == n;
      for (int d = 0; d < am_array_ndim(a) && same_shape; d++)
        same_shape = am_array_shape(a)[d] == am_array_shape(b)[d];
      CHECK(same_shape, "%s shape", names[i]);
      double *x = malloc((size_t)(n + 1) * sizeof *x);
      double *y = malloc((size_t)(n + 1) * sizeof *y);
      if (same_shape && am_array_read(a, AM_F64, x, n) == AM_OK &&
          am_array_read(b, AM_F64, y, n) == AM_OK) {
        int bad = 0;
        for (int64_t j = 0; j < n; j++)
          bad += x[j] != y[j];
        CHECK(!bad, "%s: %d values differ", names[i], bad);
      }
      /* Written aligned: every tensor is borrowed, none copied. */
      if (n && am_array_dtype(b) != AM_BOOL) {
        am_array b2 = am_safetensors_get(st, names[i]);
        CHECK(am_array_data(b) == am_array_data(b2), "%s copied", names[i]);
        am_array_free(b2);
      }
      free(x);
      free(y);
      am_array_free(b);
    }
    am_safetensors_free(st);
  }

  /* Errors: duplicate names, an error array, an unwritable path. */
  const char *dup[] = {"a", "a"};
  am_array two[] = {arrs[0], arrs[1]};
  CHECK(am_safetensors_save(path, dup, two, 2, NULL) == AM_ERR_INVALID_ARG,
        "duplicate names");
  CHECK(has(am_last_error(), "'a'"), "duplicate message %s", am_last_error());
  am_array bad = am_reshape(arrs[0], (int64_t[]){7}, 1);
  const char *nm[] = {"ok", "bad"};
  am_array withbad[] = {arrs[0], bad};
  CHECK(am_safetensors_save(path, nm, withbad, 2, NULL) == AM_ERR_SHAPE,
        "error array: %s", am_last_error());
  CHECK(has(am_last_error(), "'bad'"), "error array message %s",
        am_last_error());
  CHECK(am_safetensors_save("/nonexistent_dir/x.safetensors", nm, arrs, 1,
                            NULL) == AM_ERR_IO,
        "unwritable path");
  CHECK(am_safetensors_save(path, NULL, arrs, 1, NULL) == AM_ERR_INVALID_ARG,
        "NULL names");
  CHECK(am_safetensors_save(path, nm, arrs, 1,
                            (const char *const[]){"k", "v", NULL}) == AM_OK,
        "save with metadata");
  am_array_free(bad);
  /* The file written last is still the good one: failures left it alone. */
  CHECK(am_safetensors_open(path, &st) == AM_OK &&
            am_safetensors_count(st) == 1,
        "file after failed saves");
  am_safetensors_free(st);
  for (int i = 0; i < N; i++)
    am_array_free(arrs[i]);
  unlink(path);
  CHECK(rmdir(dir) == 0, "temporary files left in %s", dir);
}

int main(void) {
  test_expected_values();
  test_queries();
  test_unsupported_dtype();
  test_corrupt();
  test_sharded();
  test_roundtrip();
  return t_summary();
}
