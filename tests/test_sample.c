/*
 * test_sample — the in-graph sampler (src/llm/sample.c): the filtered
 * distributions against a NumPy reference (also checked against mlx-lm's
 * filters by scripts/golden_sample.py), draws equal to
 * mx.random.categorical for the same key and to mx.random.seed's key
 * sequence, draws that follow the distribution (fixed keys: deterministic
 * counts), greedy ties, the penalty's empty slots and duplicates, a
 * shapeless compile replaying for new B and V with no fallback, and errors.
 */
#include "llm/sample.h"
#include "test_internal.h"

static am_array key_of(uint32_t a, uint32_t b) {
  uint32_t k[2] = {a, b};
  return am_array_new_data(k, (int64_t[]){2}, 1, AM_U32);
}

static am_llm_sampler sampler_from(const t_garr *p) {
  am_llm_sampler s;
  memset(&s, 0, sizeof s);
  s.temperature = (float)p->v[0];
  s.top_k = (int)p->v[1];
  s.top_p = (float)p->v[2];
  s.min_p = (float)p->v[3];
  s.repetition_penalty = (float)p->v[4];
  return s;
}

static int32_t *read_tokens(am_array t, int64_t n) {
  int32_t *v = calloc((size_t)(n ? n : 1), sizeof *v);
  CHECK(am_array_dtype(t) == AM_I32, "tokens are %s",
        am_dtype_name(am_array_dtype(t)));
  if (am_array_read(t, AM_I32, v, n) != AM_OK)
    CHECK(0, "tokens: %s", am_last_error());
  return v;
}

/* ---------------------------------------------------------- goldens */

static void test_distributions(const t_golden *g) {
  int n_cases = 0;
  for (int c = 0; g && c < g->n; c++) {
    const t_gcase *gc = &g->cases[c];
    if (strncmp(gc->name, "sample_", 7)) continue;
    n_cases++;
    am_scope_push();
    const t_garr *lg = t_gcase_arr(gc, "logits"),
                 *want = t_gcase_arr(gc, "probs");
    am_llm_sampler sp = sampler_from(t_gcase_arr(gc, "params"));
    am_array logits = t_garr_array(lg), recent = NULL;
    for (int i = 0; i < gc->n; i++)
      if (!strcmp(gc->arr[i].key, "recent")) recent = t_garr_array(&gc->arr[i]);
    char what[160];
    snprintf(what, sizeof what, "%s probs", gc->name);
    t_expect_garr(am_llm_sample_probs(logits, &sp, recent), want, 1e-5, 2e-6,
                  what);
    /* Strided logits give the same distribution. */
    snprintf(what, sizeof what, "%s probs (spread logits)", gc->name);
    t_expect_garr(am_llm_sample_probs(t_spread(logits), &sp, recent), want,
                  1e-5, 2e-6, what);
    /* Draws land in the support; greedy is the argmax whatever the key. */
    int64_t B = lg->shape[0], V = lg->shape[1];
    for (uint32_t k = 0; k < 8; k++) {
      am_array t = am_llm_sample(logits, &sp, key_of(k, 1000 + k), recent);
      int32_t *tv = read_tokens(t, B);
      for (int64_t b = 0; b < B; b++) {
        bool ok = tv[b] >= 0 && tv[b] < V && want->v[b * V + tv[b]] > 0;
        if (sp.temperature == 0) ok = ok && want->v[b * V + tv[b]] == 1;
        CHECK(ok, "%s: key %u row %lld drew %d (p = %g)", gc->name, k,
              (long long)b, tv[b],
              tv[b] >= 0 && tv[b] < V ? want->v[b * V + tv[b]] : -1.0);
      }
      free(tv);
    }
    am_scope_pop();
  }
  CHECK(n_cases >= 18, "only %d sampler golden cases", n_cases);
}

/* Draws with no filter are mx.random.categorical(logits / T, key). */
static void test_mlx_draws(const t_golden *g) {
  for (int i = 0; i < 4; i++) {
    char name[32];
    snprintf(name, sizeof name, "draw_%d", i);
    const t_gcase *gc = t_golden_case(g, name);
    if (!gc) continue;
    am_scope_push();
    am_llm_sampler sp = {.temperature = (float)t_gcase_arr(gc, "temp")->v[0]};
    const t_garr *want = t_gcase_arr(gc, "tokens");
    am_array t = am_llm_sample(t_garr_array(t_gcase_arr(gc, "logits")), &sp,
                               t_garr_array(t_gcase_arr(gc, "key")), NULL);
    t_expect_garr(t, want, 0, 0, name);
    am_scope_pop();
  }
  /* mx.random.seed(seed) then one categorical per step: the keys of
   * am_llm_key_next from am_llm_key_from_seed. */
  const t_gcase *gc = t_golden_case(g, "draw_seeded");
  if (!gc) return;
  const t_garr *want = t_gcase_arr(gc, "tokens"); /* [steps, B] */
  uint32_t state[2], key[2];
  am_llm_key_from_seed((uint64_t)t_gcase_arr(gc, "seed")->v[0], state);
  am_llm_sampler sp = {.temperature = 1};
  int64_t B = want->shape[1];
  for (int64_t step = 0; step < want->shape[0]; step++) {
    am_scope_push();
    CHECK(am_llm_key_next(state, key) == AM_OK, "key_next");
    am_array t =
        am_llm_sample(t_garr_array(t_gcase_arr(gc, "logits")), &sp,
                      am_array_new_data(key, (int64_t[]){2}, 1, AM_U32), NULL);
    char what[64];
    snprintf(what, sizeof what, "seeded draw, step %lld", (long long)step);
    t_expect(t, want->v + step * B, B, 0, 0, what);
    am_scope_pop();
  }
}

/* -------------------------------------------------------- statistics */

/* n draws at once: the row broadcast to [n, V] takes n independent draws
 * of one key (each row its own uniforms). Returns the per-token counts
 * compared with `probs` by chi-square over the support (tokens with
 * probability 0 must never appear). The keys are fixed, so the result is
 * deterministic; the bound is p ~ 1e-4 for a correct sampler. */
static void check_counts(const double *logits, int V, am_llm_sampler *sp,
                         uint32_t seed, const char *what) {
  int64_t n = t_quick() ? 20000 : 60000;
  am_scope_push();
  am_array row = t_arr(logits, (int64_t[]){1, V}, 2, AM_F32);
  am_array x = am_broadcast_to(row, (int64_t[]){n, V}, 2);
  double probs[64];
  am_array p = am_llm_sample_probs(row, sp, NULL);
  CHECK(am_array_read(p, AM_F64, probs, V) == AM_OK, "%s: probs", what);
  int32_t *tv = read_tokens(am_llm_sample(x, sp, key_of(seed, 17), NULL), n);
  int64_t count[64] = {0};
  int outside = 0;
  for (int64_t i = 0; i < n; i++) {
    if (tv[i] < 0 || tv[i] >= V || probs[tv[i]] == 0)
      outside++;
    else
      count[tv[i]]++;
  }
  double chi2 = 0;
  int dof = -1;
  for (int v = 0; v < V; v++) {
    if (probs[v] == 0) continue;
    double e = probs[v] * (double)n;
    chi2 += (count[v] - e) * (count[v] - e) / e;
    dof++;
  }
  /* chi-square bound at p ~ 1e-4: dof + 4.5 sqrt(2 dof) + 6 is above it
   * for the small dof used here. */
  double bound = dof + 4.5 * sqrt(2.0 * (dof > 0 ? dof : 1)) + 6;
  CHECK(!outside, "%s: %d draws outside the support", what, outside);
  CHECK(chi2 < bound, "%s: chi2 %.2f over %d dof (bound %.1f)", what, chi2, dof,
        bound);
  free(tv);
  am_scope_pop();
}

static void test_statistics(void) {
  static const double l8[8] = {1.0, 0.5, -0.3, 2.0, 0.0, -1.0, 1.5, 0.2};
  am_llm_sampler sp = {.temperature = 1};
  check_counts(l8, 8, &sp, 1, "plain V=8");
  sp.temperature = 0.6f;
  check_counts(l8, 8, &sp, 2, "cold V=8");
  sp = (am_llm_sampler){.temperature = 1.3f, .top_k = 5};
  check_counts(l8, 8, &sp, 3, "top-k 5");
  sp = (am_llm_sampler){.temperature = 1, .top_p = 0.8f};
  check_counts(l8, 8, &sp, 4, "top-p 0.8");
  sp = (am_llm_sampler){.temperature = 0.9f, .min_p = 0.15f, .top_k = 6};
  check_counts(l8, 8, &sp, 5, "top-k 6, min-p 0.15");
  double l40[40];
  for (int i = 0; i < 40; i++)
    l40[i] = sin(i * 1.7) * 2.5;
  sp = (am_llm_sampler){.temperature = 1, .top_k = 20, .top_p = 0.9f};
  check_counts(l40, 40, &sp, 6, "V=40 top-k 20 top-p 0.9");
  /* Same key: same tokens; another key: other tokens. */
  am_scope_push();
  am_array x = am_broadcast_to(t_arr(l8, (int64_t[]){1, 8}, 2, AM_F32),
                               (int64_t[]){256, 8}, 2);
  sp = (am_llm_sampler){.temperature = 1};
  int32_t *a = read_tokens(am_llm_sample(x, &sp, key_of(1, 2), NULL), 256),
          *b = read_tokens(am_llm_sample(x, &sp, key_of(1, 2), NULL), 256),
          *c = read_tokens(am_llm_sample(x, &sp, key_of(1, 3), NULL), 256);
  CHECK(!memcmp(a, b, 256 * sizeof *a), "same key, other draws");
  CHECK(memcmp(a, c, 256 * sizeof *a), "other key, same draws");
  free(a);
  free(b);
  free(c);
  am_scope_pop();
}

/* ------------------------------------------------ hand-checked cases */

static void test_greedy_and_penalty(void) {
  am_scope_push();
  /* Greedy: first max on ties; no key needed; float16 logits. */
  double lv[8] = {0, 3, 1, 3, -2, -2, -5, -2};
  am_array l = t_arr(lv, (int64_t[]){2, 4}, 2, AM_F16);
  am_llm_sampler sp = {0};
  t_expect(am_llm_sample(l, &sp, NULL, NULL), (double[]){1, 0}, 2, 0, 0,
           "greedy ties");
  /* Penalty 2 on tokens 1 (listed twice) and 3 of row 0, empty slots
   * ignored: the 3s become 1.5, still above token 2 (1.0); penalty 4 makes
   * them 0.75 and token 2 wins. Row 1: tokens 0 and 3 (-2) become -4 and
   * -8, so token 1 (-2, unlisted) wins; negative slots other than -1 are
   * empty too. */
  int32_t rv[8] = {1, -1, 3, 1, 0, -7, 3, -1};
  am_array rec = am_array_new_data(rv, (int64_t[]){2, 4}, 2, AM_I32);
  sp.repetition_penalty = 2;
  t_expect(am_llm_sample(l, &sp, NULL, rec), (double[]){1, 1}, 2, 0, 0,
           "greedy after penalty 2");
  t_expect(am_llm_sample_probs(l, &sp, rec), (double[]){0, 1, 0, 0, 0, 1, 0, 0},
           8, 0, 0, "one-hot probs");
  sp.repetition_penalty = 4;
  t_expect(am_llm_sample(l, &sp, NULL, rec), (double[]){2, 1}, 2, 0, 0,
           "greedy after penalty 4");
  /* The penalty is off at 1 and 0, and without recent tokens. */
  sp.repetition_penalty = 1;
  t_expect(am_llm_sample(l, &sp, NULL, rec), (double[]){1, 0}, 2, 0, 0,
           "penalty 1");
  sp.repetition_penalty = 4;
  t_expect(am_llm_sample(l, &sp, NULL, NULL), (double[]){1, 0}, 2, 0, 0,
           "no recent");
  am_array r0 = am_zeros((int64_t[]){2, 0}, 2, AM_I32);
  t_expect(am_llm_sample(l, &sp, NULL, r0), (double[]){1, 0}, 2, 0, 0,
           "empty recent");
  /* One recent row for the whole batch, int64. */
  int64_t rb1[2] = {1, 3};
  am_array rbc = am_array_new_data(rb1, (int64_t[]){1, 2}, 2, AM_I64);
  t_expect(am_llm_sample(l, &sp, NULL, rbc), (double[]){2, 0}, 2, 0, 0,
           "broadcast int64 recent");
  /* top_k = 1 is the argmax; top_k >= V keeps every token. */
  double one[5] = {0.1, 0.7, 0.2, 0.65, 0.0};
  am_array l5 = t_arr(one, (int64_t[]){1, 5}, 2, AM_F32);
  am_llm_sampler k1 = {.temperature = 3, .top_k = 1};
  t_expect(am_llm_sample_probs(l5, &k1, NULL), (double[]){0, 1, 0, 0, 0}, 5, 0,
           0, "top-k 1");
  am_llm_sampler kall = {.temperature = 1, .top_k = 50};
  double e[5], s = 0;
  for (int i = 0; i < 5; i++)
    s += e[i] = exp(one[i]);
  for (int i = 0; i < 5; i++)
    e[i] /= s;
  t_expect(am_llm_sample_probs(l5, &kall, NULL), e, 5, 1e-6, 1e-7,
           "top-k above V");
  /* min_p = 1 keeps the maximum only. */
  am_llm_sampler m1 = {.temperature = 1, .min_p = 1};
  t_expect(am_llm_sample_probs(l5, &m1, NULL), (double[]){0, 1, 0, 0, 0}, 5, 0,
           0, "min-p 1");
  /* A token id >= V in recent fails at eval with an index error. */
  int32_t big[2] = {2, 9};
  am_array rb = am_array_new_data(big, (int64_t[]){1, 2}, 2, AM_I32);
  am_array t = am_llm_sample(l5, &sp, NULL, rb);
  CHECK(am_eval(&t, 1) == AM_ERR_INVALID_ARG, "token 9 of V 5: %s",
        am_last_error());
  /* Empty batch. */
  am_array l0 = am_zeros((int64_t[]){0, 7}, 2, AM_F32);
  am_llm_sampler hot = {.temperature = 1, .top_k = 3, .top_p = 0.5f};
  am_array t0 = am_llm_sample(l0, &hot, key_of(1, 1), NULL);
  CHECK(am_eval(&t0, 1) == AM_OK && am_array_size(t0) == 0, "B = 0: %s",
        am_last_error());
  am_scope_pop();
}

static void test_errors(void) {
  am_scope_push();
  am_array l = am_zeros((int64_t[]){2, 5}, 2, AM_F32), k = key_of(1, 2);
  am_llm_sampler ok = {.temperature = 1};
  t_expect_error(am_llm_sample(l, NULL, k, NULL), AM_ERR_INVALID_ARG,
                 "llm_sample", "NULL sampler");
  t_expect_error(am_llm_sample(NULL, &ok, k, NULL), AM_ERR_INVALID_ARG,
                 "llm_sample", "NULL logits");
  am_llm_sampler bad[] = {
      {.temperature = -1},
      {.temperature = NAN},
      {.temperature = INFINITY},
      {.temperature = 1, .top_k = -1},
      {.temperature = 1, .top_k = (1 << 20) + 1},
      {.temperature = 1, .top_p = 2},
      {.temperature = 1, .top_p = -0.5f},
      {.temperature = 1, .min_p = 1.5f},
      {.temperature = 1, .min_p = NAN},
      {.temperature = 1, .repetition_penalty = -1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    t_expect_error(am_llm_sample(l, &bad[i], k, NULL), AM_ERR_INVALID_ARG,
                   "llm_sample", "bad sampler");
    t_expect_error(am_llm_sample_probs(l, &bad[i], NULL), AM_ERR_INVALID_ARG,
                   "llm_sample", "bad sampler (probs)");
  }
  t_expect_error(
      am_llm_sample(am_zeros((int64_t[]){5}, 1, AM_F32), &ok, k, NULL),
      AM_ERR_SHAPE, "llm_sample", "1-d logits");
  t_expect_error(
      am_llm_sample(am_zeros((int64_t[]){2, 5}, 2, AM_I32), &ok, k, NULL),
      AM_ERR_DTYPE, "llm_sample", "int logits");
  t_expect_error(
      am_llm_sample(l, &ok, am_zeros((int64_t[]){2}, 1, AM_I32), NULL),
      AM_ERR_DTYPE, "llm_sample", "int32 key");
  t_expect_error(
      am_llm_sample(l, &ok, am_zeros((int64_t[]){3}, 1, AM_U32), NULL),
      AM_ERR_SHAPE, "llm_sample", "key of 3");
  t_expect_error(am_llm_sample(l, &ok, NULL, NULL), AM_ERR_INVALID_ARG,
                 "random", "NULL key");
  am_llm_sampler pen = {.temperature = 1, .repetition_penalty = 1.2f};
  t_expect_error(am_llm_sample(l, &pen, k, am_zeros((int64_t[]){4}, 1, AM_I32)),
                 AM_ERR_SHAPE, "llm_sample", "1-d recent");
  t_expect_error(
      am_llm_sample(l, &pen, k, am_zeros((int64_t[]){2, 4}, 2, AM_F32)),
      AM_ERR_SHAPE, "llm_sample", "float recent");
  /* Error inputs propagate. */
  am_array el = am_reshape(l, (int64_t[]){3}, 1);
  CHECK(am_array_status(am_llm_sample(el, &ok, k, NULL)) == AM_ERR_SHAPE,
        "error logits propagate");
  am_scope_pop();
}

/* ------------------------------------------------------------ compile */

static am_status f_sample(void *ctx, const am_array *in, int n_in,
                          am_array *out, int n_out) {
  const am_llm_sampler *sp = ctx;
  out[0] = am_llm_sample(in[0], sp, in[1], in[2]);
  out[1] = am_llm_sample_probs(in[0], sp, in[2]);
  return AM_OK;
}

static void test_compile(void) {
  static am_llm_sampler sps[4] = {
      {.temperature = 0.8f,
       .top_k = 10,
       .top_p = 0.9f,
       .min_p = 0.02f,
       .repetition_penalty = 1.3f},
      {.temperature = 1.1f, .top_p = 0.7f, .repetition_penalty = 1.1f},
      {.temperature = 0, .repetition_penalty = 1.5f},
      {.temperature = 1},
  };
  for (int c = 0; c < 4; c++) {
    am_compile_options o = {.shapeless = true};
    am_compiled f = am_compile(f_sample, &sps[c], 3, 2, &o);
    t_rng r = {100 + (uint64_t)c};
    int calls = t_quick() ? 8 : 16;
    for (int call = 0; call < calls; call++) {
      am_scope_push();
      /* V from 3 (below top_k) to 300, B from 1 to 4, R from 1 to 6. */
      int64_t B = t_randint(&r, 1, 4), V = t_randint(&r, 3, 300),
              R = t_randint(&r, 1, 6);
      if (call == 0) B = 2, V = 50, R = 4;
      int32_t *rv = malloc((size_t)(B * R) * sizeof *rv);
      for (int64_t i = 0; i < B * R; i++)
        rv[i] = (int32_t)t_randint(&r, -1, V - 1);
      am_array in[3] = {t_rand(&r, (int64_t[]){B, V}, 2, AM_F32, -4, 4),
                        key_of((uint32_t)call, 5),
                        am_array_new_data(rv, (int64_t[]){B, R}, 2, AM_I32)};
      free(rv);
      am_array out[2];
      am_status s = am_compiled_call(f, in, out);
      CHECK(s == AM_OK, "sampler %d call %d: %s", c, call, am_last_error());
      if (!s) {
        am_array tok = am_llm_sample(in[0], &sps[c], in[1], in[2]);
        am_array pr = am_llm_sample_probs(in[0], &sps[c], in[2]);
        int32_t *w = read_tokens(tok, B);
        double *wp = malloc((size_t)(B * V) * sizeof *wp);
        CHECK(am_array_read(pr, AM_F64, wp, B * V) == AM_OK, "eager probs");
        t_expect(out[0],
                 (double[]){w[0], B > 1 ? w[1] : 0, B > 2 ? w[2] : 0,
                            B > 3 ? w[3] : 0},
                 B, 0, 0, "compiled tokens == eager");
        t_expect(out[1], wp, B * V, 1e-6, 1e-7, "compiled probs == eager");
        free(w);
        free(wp);
      }
      am_scope_pop();
    }
    am_compile_stats st = am_compiled_stats(f);
    CHECK(st.traces == 1 && st.fallbacks == 0 && st.reinfers > 0,
          "sampler %d: traces %llu fallbacks %llu reinfers %llu (%s)", c,
          (unsigned long long)st.traces, (unsigned long long)st.fallbacks,
          (unsigned long long)st.reinfers, am_compiled_last_fallback(f));
    am_compiled_free(f);
  }
}

int main(void) {
  t_golden *g = t_golden_load("golden/sample.txt");
  test_distributions(g);
  test_mlx_draws(g);
  test_statistics();
  test_greedy_and_penalty();
  test_errors();
  test_compile();
  t_golden_free(g);
  return t_summary();
}
