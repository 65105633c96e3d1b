/*
 * model_ref.h — checking a model against a reference file (prompt, its
 * logits, a greedy continuation and the logits each of its tokens was
 * chosen from), shared by test_model (CPU) and test_cuda_model (GPU).
 */
#ifndef AM_TEST_MODEL_REF_H
#define AM_TEST_MODEL_REF_H
#include "llm/llm_internal.h"
#include "test.h"

static inline double max_diff(const float *a, const float *b, int64_t n,
                              double *scale) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]);
    if (!(e <= d)) d = e; /* NaN counts */
    if (fabs(b[i]) > m) m = fabs(b[i]);
  }
  if (scale) *scale = m;
  return d;
}

/* A reference file: prompt, its logits, a greedy continuation and the
 * logits each of its tokens was chosen from. */
static inline void check_ref(am_llm_model *m, const char *label,
                             const char *path, double tol) {
  am_safetensors *st;
  if (am_safetensors_open(path, &st)) {
    CHECK(0, "%s: %s", path, am_last_error());
    return;
  }
  am_array pr = am_safetensors_get(st, "prompt");
  am_array pl = am_safetensors_get(st, "prompt_logits");
  am_array gt = am_safetensors_get(st, "greedy_tokens");
  am_array gl = am_safetensors_get(st, "greedy_logits");
  const char *src = am_safetensors_metadata(st, "source");
  int64_t T = am_array_size(pr), G = am_array_size(gt);
  int64_t V = m->cfg->vocab_size;
  bool ok = !am_array_status(pl) && !am_array_status(gl) &&
            am_array_dim(pl, -1) == V && am_array_dim(gl, -1) == V;
  CHECK(ok, "%s: reference shapes (vocab %lld)", path, (long long)V);
  int32_t *p = malloc(sizeof *p * (size_t)(T + G)), *g = p + T;
  float *rl = malloc(sizeof *rl * (size_t)((T + G) * V));
  float *ol = malloc(sizeof *ol * (size_t)((T + G) * V));
  if (ok && !am_array_read(pr, AM_I32, p, T) &&
      !am_array_read(gt, AM_I32, g, G) &&
      !am_array_read(pl, AM_F32, rl, T * V) &&
      !am_array_read(gl, AM_F32, rl + T * V, G * V)) {
    /* prompt logits in chunks of 64, then the greedy continuation fed
     * back token by token (teacher forcing on the reference's tokens) */
    am_llm_session_opts o = {.all_logits = true, .prefill_chunk = 64};
    am_llm_session *s;
    CHECK(!am_llm_session_new(m, &o, &s), "%s", am_last_error());
    int32_t next = -1;
    int agree = 0, first_diff = -1;
    if (s && !am_llm_session_feed(s, p, T, &next, ol)) {
      for (int64_t i = 0; i < G; i++) {
        if (i == 0) {
          memcpy(ol + T * V, ol + (T - 1) * V, sizeof *ol * (size_t)V);
        } else if (am_llm_session_feed(s, &g[i - 1], 1, &next,
                                       ol + (T + i) * V)) {
          CHECK(0, "%s", am_last_error());
          break;
        }
        /* our greedy choice from our logits */
        int64_t am = 0;
        for (int64_t v = 1; v < V; v++)
          if (ol[(T + i) * V + v] > ol[(T + i) * V + am]) am = v;
        if (am == g[i] && first_diff < 0)
          agree++;
        else if (first_diff < 0)
          first_diff = (int)i;
      }
      double scale, d = max_diff(ol, rl, (T + G) * V, &scale);
      printf("  %-28s vs %-28s T=%lld G=%lld: max abs %.3g, rel %.3g; "
             "greedy agrees on %d/%lld\n",
             label, src ? src : "?", (long long)T, (long long)G, d,
             d / (scale > 0 ? scale : 1), agree, (long long)G);
      CHECK(d <= tol * scale, "%s: logits differ by %g (max %g, tol %g)", path,
            d, scale, tol);
      CHECK(agree == G, "%s: greedy diverges at token %d", path, first_diff);
    }
    am_llm_session_free(s);
  }
  free(p);
  free(rl);
  free(ol);
  am_array_free(pr);
  am_array_free(pl);
  am_array_free(gt);
  am_array_free(gl);
  am_safetensors_free(st);
}

#endif
