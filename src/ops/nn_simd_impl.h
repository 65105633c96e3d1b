/*
 * nn_simd_impl.h — the float32 SIMD helpers of the neural-network family,
 * written once against a small vector vocabulary (V, VLOAD, VFMA, ...)
 * and compiled per instruction set by nn_simd.c, which defines the
 * vocabulary, KFN (target attribute) and KNAME before including this.
 *
 * Attention kernels keep rt (1, 2, 4 or 8) query rows in registers: each
 * key or value row is loaded (and converted from bfloat16/float16) once
 * and used by every query row, which is what lets grouped-query decode
 * read the KV cache at memory speed. rt is a compile-time constant in
 * each instantiation, so the per-row accumulators stay in registers; with
 * fewer rows, several column chunks run side by side instead so that
 * there are always about eight independent FMA chains.
 */

#define KINL KFN static inline __attribute__((always_inline))

/* ---------------------------------------------------------- row helpers */

KFN static float KNAME(sum)(const float *x, int64_t n) {
  V a0 = VZERO(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = VADD(a0, VLOAD(x + i));
    a1 = VADD(a1, VLOAD(x + i + W));
    a2 = VADD(a2, VLOAD(x + i + 2 * W));
    a3 = VADD(a3, VLOAD(x + i + 3 * W));
  }
  for (; i + W <= n; i += W)
    a0 = VADD(a0, VLOAD(x + i));
  float s = VHSUM(VADD(VADD(a0, a1), VADD(a2, a3)));
  for (; i < n; i++)
    s += x[i];
  return s;
}

KFN static float KNAME(sumsq_dev)(const float *x, float c, int64_t n) {
  V a0 = VZERO(), a1 = a0, a2 = a0, a3 = a0, vc = VSET1(c);
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    V x0 = VSUB(VLOAD(x + i), vc), x1 = VSUB(VLOAD(x + i + W), vc);
    V x2 = VSUB(VLOAD(x + i + 2 * W), vc), x3 = VSUB(VLOAD(x + i + 3 * W), vc);
    a0 = VFMA(x0, x0, a0);
    a1 = VFMA(x1, x1, a1);
    a2 = VFMA(x2, x2, a2);
    a3 = VFMA(x3, x3, a3);
  }
  for (; i + W <= n; i += W) {
    V x0 = VSUB(VLOAD(x + i), vc);
    a0 = VFMA(x0, x0, a0);
  }
  float s = VHSUM(VADD(VADD(a0, a1), VADD(a2, a3)));
  for (; i < n; i++)
    s += (x[i] - c) * (x[i] - c);
  return s;
}

KFN static float KNAME(sumsq)(const float *x, int64_t n) {
  return KNAME(sumsq_dev)(x, 0.0f, n);
}

/* A NaN may or may not win: callers only need any NaN to reach their
 * result, which it does through their own arithmetic. */
KFN static float KNAME(max)(const float *x, int64_t n) {
  V m0 = VSET1(-INFINITY), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    m0 = VMAX(m0, VLOAD(x + i));
    m1 = VMAX(m1, VLOAD(x + i + W));
  }
  for (; i + W <= n; i += W)
    m0 = VMAX(m0, VLOAD(x + i));
  float m = VHMAX(VMAX(m0, m1));
  for (; i < n; i++)
    if (x[i] > m) m = x[i];
  return m;
}

KFN static void KNAME(affine)(float *o, const float *x, float c, float s,
                              const float *w, const float *g, const float *b,
                              int64_t n) {
  V vc = VSET1(c), vs = VSET1(s);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    V y = VMUL(VADD(VLOAD(x + i), vc), vs);
    if (w) y = VMUL(y, VLOAD(w + i));
    if (g) y = VMUL(y, VLOAD(g + i));
    if (b) y = VADD(y, VLOAD(b + i));
    VSTORE(o + i, y);
  }
  for (; i < n; i++) {
    float y = (x[i] + c) * s;
    if (w) y *= w[i];
    if (g) y *= g[i];
    if (b) y += b[i];
    o[i] = y;
  }
}

/* ------------------------------------------------------ attention */

/* W elements (vector) or one element (scalar tail) of a K/V row of type
 * kt at element index i; kt is a constant after inlining. */
KINL V KNAME(ldk)(const int kt, const void *p, int64_t i) {
  if (kt == AM_NN_KV_BF16) return VLD_BF16((const uint16_t *)p + i);
  if (kt == AM_NN_KV_F16) return VLD_F16((const uint16_t *)p + i);
  return VLOAD((const float *)p + i);
}
KINL float KNAME(ldk1)(const int kt, const void *p, int64_t i) {
  if (kt == AM_NN_KV_BF16) return am_bf16_to_f32(((const uint16_t *)p)[i]);
  if (kt == AM_NN_KV_F16) return am_f16_to_f32(((const uint16_t *)p)[i]);
  return ((const float *)p)[i];
}

/* Software prefetch of n elements of row `row` (element index from p):
 * to L2 (far) for rows a fixed distance ahead of the computation, spread
 * over it so the core never stalls on a burst of prefetches; to L1 (near)
 * for the rest of the current V row, which pv reads a cache line of every
 * key at a time, a stride the hardware prefetchers follow badly.
 * Addresses are formed as integers: past the array's end they are
 * harmless for a prefetch. */
#define PF_KEYS 128
KINL void KNAME(prefetch_row)(const int kt, const void *p, int64_t row,
                              int64_t n, const int near) {
  int64_t es = kt == AM_NN_KV_F32 ? 4 : 2;
  uintptr_t a = (uintptr_t)p + (uintptr_t)(row * es);
  for (int64_t o = 0; o < n * es; o += 64)
    if (near)
      __builtin_prefetch((const void *)(a + (uintptr_t)o), 0, 3);
    else
      __builtin_prefetch((const void *)(a + (uintptr_t)o), 0, 1);
}

/* Scores of RT query rows against NK keys at a time (RT, NK constants):
 * each q chunk loaded serves NK keys and each key chunk RT rows; CB = 8 /
 * RT column chunks per row run side by side, so there are 8 * NK
 * independent FMA chains (NK = 2 where there are 32 registers). */
KINL void KNAME(scores_nk)(const int kt, const int RT, const int NK,
                           const float *q, int64_t qs, const void *k,
                           int64_t ks, int64_t j, int64_t d, float *s,
                           int64_t ss) {
  const int CB = 8 / RT;
  const int64_t dbig = d - d % (CB * W), dvec = d - d % W;
#pragma GCC unroll 2
  for (int u = 0; u < NK; u++)
    KNAME(prefetch_row)(kt, k, (j + u + PF_KEYS) * ks, d, 0);
  V acc[16]; /* key u, chain a: acc[u * 8 + a] */
#pragma GCC unroll 2
  for (int u = 0; u < NK; u++)
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++)
      acc[u * 8 + a] = VZERO();
  for (int64_t c = 0; c < dbig; c += CB * W) {
#pragma GCC unroll 8
    for (int b = 0; b < CB; b++) {
      V kv[2];
#pragma GCC unroll 2
      for (int u = 0; u < NK; u++)
        kv[u] = KNAME(ldk)(kt, k, (j + u) * ks + c + b * W);
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++) {
        V qv = VLOAD(q + r * qs + c + b * W);
#pragma GCC unroll 2
        for (int u = 0; u < NK; u++)
          acc[u * 8 + r * CB + b] = VFMA(qv, kv[u], acc[u * 8 + r * CB + b]);
      }
    }
  }
  for (int64_t c = dbig; c < dvec; c += W) {
#pragma GCC unroll 2
    for (int u = 0; u < NK; u++) {
      V kv = KNAME(ldk)(kt, k, (j + u) * ks + c);
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++)
        acc[u * 8 + r * CB] =
            VFMA(VLOAD(q + r * qs + c), kv, acc[u * 8 + r * CB]);
    }
  }
  float tt[16];
#ifdef VHSUM16
  if (RT == 8 && NK == 2) VHSUM16(acc, tt);
#endif
#pragma GCC unroll 2
  for (int u = 0; u < NK; u++) {
    float *t = tt + u * 8;
    if (RT == 8 && NK == 2) {
      /* reduced above */
    } else if (RT == 8) {
      VHSUM8(acc + u * 8, t);
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++) {
        V a = acc[u * 8 + r * CB];
#pragma GCC unroll 8
        for (int b = 1; b < CB; b++)
          a = VADD(a, acc[u * 8 + r * CB + b]);
        t[r] = VHSUM(a);
      }
    }
    for (int64_t c = dvec; c < d; c++) {
      float kx = KNAME(ldk1)(kt, k, (j + u) * ks + c);
      for (int r = 0; r < RT; r++)
        t[r] += q[r * qs + c] * kx;
    }
    for (int r = 0; r < RT; r++)
      s[r * ss + j + u] = t[r];
  }
}

KINL void KNAME(scores_rt)(const int kt, const int RT, const float *q,
                           int64_t qs, const void *k, int64_t ks, int64_t nk,
                           int64_t d, float *s, int64_t ss) {
  int64_t j = 0;
  if (KEY_PAIRS)
    for (; j + 2 <= nk; j += 2)
      KNAME(scores_nk)(kt, RT, 2, q, qs, k, ks, j, d, s, ss);
  for (; j < nk; j++)
    KNAME(scores_nk)(kt, RT, 1, q, qs, k, ks, j, d, s, ss);
}

/* acc = acc * corr + P @ V for RT rows (RT constant). CB = PV_CHAINS / RT
 * column chunks per pass over the keys, so every probability broadcast
 * serves CB chunks and each pass reads whole cache lines of V; each V
 * chunk is converted once for all rows. */
KINL void KNAME(pv_rt)(const int kt, const int RT, const float *p, int64_t ps,
                       const void *v, int64_t vs, int64_t nk, int64_t dv,
                       float *acc, int64_t as, const float *corr) {
  const int CB = PV_CHAINS / RT;
  const int64_t dbig = dv - dv % (CB * W), dvec = dv - dv % W;
  for (int64_t c = 0; c < dbig; c += CB * W) {
    V a[PV_CHAINS];
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++) {
      V cr = VSET1(corr[r]);
#pragma GCC unroll 16
      for (int b = 0; b < CB; b++)
        a[r * CB + b] = VMUL(VLOAD(acc + r * as + c + b * W), cr);
    }
    for (int64_t j = 0; j < nk; j++) {
      if (c == 0) {
        KNAME(prefetch_row)(kt, v, (j + PF_KEYS) * vs, dv, 0);
        KNAME(prefetch_row)(kt, v, j * vs + CB * W, dv - CB * W, 1);
      }
      V x[PV_CHAINS];
#pragma GCC unroll 16
      for (int b = 0; b < CB; b++)
        x[b] = KNAME(ldk)(kt, v, j * vs + c + b * W);
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++) {
        V pr = VSET1(p[r * ps + j]);
#pragma GCC unroll 16
        for (int b = 0; b < CB; b++)
          a[r * CB + b] = VFMA(pr, x[b], a[r * CB + b]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++)
#pragma GCC unroll 16
      for (int b = 0; b < CB; b++)
        VSTORE(acc + r * as + c + b * W, a[r * CB + b]);
  }
  for (int64_t c = dbig; c < dvec; c += W) {
    V a[8];
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++)
      a[r] = VMUL(VLOAD(acc + r * as + c), VSET1(corr[r]));
    for (int64_t j = 0; j < nk; j++) {
      V x = KNAME(ldk)(kt, v, j * vs + c);
#pragma GCC unroll 8
      for (int r = 0; r < RT; r++)
        a[r] = VFMA(VSET1(p[r * ps + j]), x, a[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < RT; r++)
      VSTORE(acc + r * as + c, a[r]);
  }
  for (int64_t c = dvec; c < dv; c++)
    for (int r = 0; r < RT; r++) {
      float x = acc[r * as + c] * corr[r];
      for (int64_t j = 0; j < nk; j++)
        x += p[r * ps + j] * KNAME(ldk1)(kt, v, j * vs + c);
      acc[r * as + c] = x;
    }
}

/* Entry points per K/V type: rows go in groups of 8, 4, 2, 1. */
#define ATT_ENTRY(SUF, KT)                                                     \
  KFN static void KNAME(sc_##SUF)(int rt, const float *q, int64_t qs,          \
                                  const void *k, int64_t ks, int64_t nk,       \
                                  int64_t d, float *s, int64_t ss) {           \
    for (int step; rt > 0; rt -= step, q += step * qs, s += step * ss) {       \
      step = rt >= 8 ? 8 : rt >= 4 ? 4 : rt >= 2 ? 2 : 1;                      \
      if (step == 8)                                                           \
        KNAME(scores_rt)(KT, 8, q, qs, k, ks, nk, d, s, ss);                   \
      else if (step == 4)                                                      \
        KNAME(scores_rt)(KT, 4, q, qs, k, ks, nk, d, s, ss);                   \
      else if (step == 2)                                                      \
        KNAME(scores_rt)(KT, 2, q, qs, k, ks, nk, d, s, ss);                   \
      else                                                                     \
        KNAME(scores_rt)(KT, 1, q, qs, k, ks, nk, d, s, ss);                   \
    }                                                                          \
  }                                                                            \
  KFN static void KNAME(pv_##SUF)(                                             \
      int rt, const float *p, int64_t ps, const void *v, int64_t vs,           \
      int64_t nk, int64_t dv, float *acc, int64_t as, const float *corr) {     \
    for (int step; rt > 0;                                                     \
         rt -= step, p += step * ps, acc += step * as, corr += step) {         \
      step = rt >= 8 ? 8 : rt >= 4 ? 4 : rt >= 2 ? 2 : 1;                      \
      if (step == 8)                                                           \
        KNAME(pv_rt)(KT, 8, p, ps, v, vs, nk, dv, acc, as, corr);              \
      else if (step == 4)                                                      \
        KNAME(pv_rt)(KT, 4, p, ps, v, vs, nk, dv, acc, as, corr);              \
      else if (step == 2)                                                      \
        KNAME(pv_rt)(KT, 2, p, ps, v, vs, nk, dv, acc, as, corr);              \
      else                                                                     \
        KNAME(pv_rt)(KT, 1, p, ps, v, vs, nk, dv, acc, as, corr);              \
    }                                                                          \
  }

ATT_ENTRY(bf16, AM_NN_KV_BF16)
ATT_ENTRY(f16, AM_NN_KV_F16)
ATT_ENTRY(f32, AM_NN_KV_F32)
#undef ATT_ENTRY

#ifndef NN_VEC_INIT
/* The helper table of the instruction set KNAME names at expansion. */
#define NN_VEC_INIT(DP, DPV)                                                   \
  {                                                                            \
    .sum = KNAME(sum), .sumsq = KNAME(sumsq), .sumsq_dev = KNAME(sumsq_dev),   \
    .max = KNAME(max), .affine = KNAME(affine),                                \
    .scores = {KNAME(sc_bf16), KNAME(sc_f16), KNAME(sc_f32)},                  \
    .pv = {KNAME(pv_bf16), KNAME(pv_f16), KNAME(pv_f32)}, .scores_bf16dp = DP, \
    .pv_bf16dp = DPV,                                                          \
  }
#endif

static const am_nn_vec KNAME(g_vec) = NN_VEC_INIT(NULL, NULL);

#undef KINL
