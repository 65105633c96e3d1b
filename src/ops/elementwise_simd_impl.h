/*
 * elementwise_simd_impl.h — float32 SIMD kernels, written once against a
 * small vector vocabulary (V, VADD, VSEL, ...) and compiled once per
 * instruction set by elementwise_simd.c, which defines that vocabulary
 * (AVX2+FMA, AVX-512) and KNAME/KFN before including this file.
 *
 * The transcendental functions are Cephes-style range reductions with
 * minimax polynomials (about 1 ulp for exp and log, <= 2 ulp for tanh),
 * so exp/sigmoid/tanh/log run at memory speed instead of calling libm
 * per element. Special values (inf, nan, -0, subnormal results) follow
 * C99 Annex F, as the portable kernels do.
 */

/* ------------------------------------------------------- math helpers */

KFN static inline V KNAME(v_neg)(V x) {
  return VXOR(x, VSET1(-0.0f));
}
KFN static inline V KNAME(v_abs)(V x) {
  return VANDNOT(VSET1(-0.0f), x);
}
KFN static inline V KNAME(v_square)(V x) {
  return VMUL(x, x);
}
KFN static inline V KNAME(v_sqrt)(V x) {
  return VSQRT(x);
}
/* Exactly 1/sqrt(x) rounded twice, as the portable kernel computes it. */
KFN static inline V KNAME(v_rsqrt)(V x) {
  return VDIV(VSET1(1.0f), VSQRT(x));
}
KFN static inline V KNAME(v_floor)(V x) {
  return VFLOOR(x);
}
KFN static inline V KNAME(v_ceil)(V x) {
  return VCEIL(x);
}
KFN static inline V KNAME(v_round)(V x) {
  return VRINT(x);
}

/* sign: -1, 0 (also for -0), 1; nan stays nan. */
KFN static inline V KNAME(v_sign)(V x) {
  V zero = VSET1(0.0f);
  V r = VSEL(VLT(zero, x), zero, VSET1(1.0f));
  r = VSEL(VLT(x, zero), r, VSET1(-1.0f));
  return VSEL(VUNORD(x, x), r, x);
}

/* exp: x = n ln2 + r, |r| <= ln2/2; e^r by a degree-6 polynomial; the
 * 2^n scale is applied in two halves so that results down to the
 * smallest subnormal (n = -150) and up to overflow (n = 128) round once. */
KFN static inline V KNAME(v_exp)(V x) {
  V c = VMIN(VMAX(x, VSET1(-104.0f)), VSET1(89.0f));
  V n = VRINT(VMUL(c, VSET1(1.44269504088896341f)));
  V r = VFNMA(n, VSET1(0.693359375f), c);
  r = VFNMA(n, VSET1(-2.12194440e-4f), r);
  V p = VSET1(1.9875691500e-4f);
  p = VFMA(p, r, VSET1(1.3981999507e-3f));
  p = VFMA(p, r, VSET1(8.3334519073e-3f));
  p = VFMA(p, r, VSET1(4.1665795894e-2f));
  p = VFMA(p, r, VSET1(1.6666665459e-1f));
  p = VFMA(p, r, VSET1(5.0000001201e-1f));
  p = VADD(VFMA(p, VMUL(r, r), r), VSET1(1.0f));
  VI ni = VCVTI(n);
  VI n1 = VISRAI(ni, 1), n2 = VISUB(ni, n1);
  V s1 = VCASTF(VISLLI(VIADD(n1, VISET1(127)), 23));
  V s2 = VCASTF(VISLLI(VIADD(n2, VISET1(127)), 23));
  V y = VMUL(VMUL(p, s1), s2);
  return VSEL(VUNORD(x, x), y, x); /* the clamp turned nan into a number */
}

/* log: x = m 2^e with m in [sqrt(1/2), sqrt(2)); log(m) by a degree-9
 * polynomial in m - 1; e ln2 added in two parts. Subnormals are scaled
 * by 2^23 first. */
KFN static inline V KNAME(v_log)(V x) {
  VM tiny = VLT(x, VSET1(1.17549435e-38f));
  V xs = VSEL(tiny, x, VMUL(x, VSET1(8388608.0f)));
  V eadj = VSEL(tiny, VSET1(0.0f), VSET1(-23.0f));
  VI bits = VCASTI(xs);
  V e = VADD(VCVTF(VISUB(VISRLI(bits, 23), VISET1(126))), eadj);
  V m = VCASTF(VIOR(VIAND(bits, VISET1(0x007fffff)), VISET1(0x3f000000)));
  /* m in [0.5, 1): below sqrt(1/2) use 2m - 1 and e - 1, else m - 1 */
  VM lo = VLT(m, VSET1(0.707106781186547524f));
  e = VSEL(lo, e, VSUB(e, VSET1(1.0f)));
  m = VSUB(VSEL(lo, m, VADD(m, m)), VSET1(1.0f));
  V z = VMUL(m, m);
  V p = VSET1(7.0376836292e-2f);
  p = VFMA(p, m, VSET1(-1.1514610310e-1f));
  p = VFMA(p, m, VSET1(1.1676998740e-1f));
  p = VFMA(p, m, VSET1(-1.2420140846e-1f));
  p = VFMA(p, m, VSET1(1.4249322787e-1f));
  p = VFMA(p, m, VSET1(-1.6668057665e-1f));
  p = VFMA(p, m, VSET1(2.0000714765e-1f));
  p = VFMA(p, m, VSET1(-2.4999993993e-1f));
  p = VFMA(p, m, VSET1(3.3333331174e-1f));
  V y = VMUL(VMUL(p, m), z);
  y = VFMA(e, VSET1(-2.12194440e-4f), y);
  y = VFNMA(z, VSET1(0.5f), y);
  V r = VADD(m, y);
  r = VFMA(e, VSET1(0.693359375f), r);
  /* x < 0 -> nan, x == +-0 -> -inf, +inf -> +inf, nan -> nan */
  r = VSEL(VLT(x, VSET1(0.0f)), r, VSET1(NAN));
  r = VSEL(VEQ(x, VSET1(0.0f)), r, VSET1(-INFINITY));
  r = VSEL(VEQ(x, VSET1(INFINITY)), r, x);
  return VSEL(VUNORD(x, x), r, x);
}

KFN static inline V KNAME(v_sigmoid)(V x) {
  V one = VSET1(1.0f);
  return VDIV(one, VADD(one, KNAME(v_exp)(KNAME(v_neg)(x))));
}

/* tanh: an odd polynomial for |x| < 0.625, where 1 - 2/(e^2|x| + 1)
 * would cancel; that formula, with x's sign, above. */
KFN static inline V KNAME(v_tanh)(V x) {
  V ax = KNAME(v_abs)(x);
  V z = VMUL(x, x);
  V p = VSET1(-5.70498872745e-3f);
  p = VFMA(p, z, VSET1(2.06390887954e-2f));
  p = VFMA(p, z, VSET1(-5.37397155531e-2f));
  p = VFMA(p, z, VSET1(1.33314422036e-1f));
  p = VFMA(p, z, VSET1(-3.33332819422e-1f));
  V small = VFMA(VMUL(x, z), p, x);
  V e = KNAME(v_exp)(VADD(ax, ax));
  V big = VSUB(VSET1(1.0f), VDIV(VSET1(2.0f), VADD(e, VSET1(1.0f))));
  big = VOR(big, VAND(x, VSET1(-0.0f))); /* copysign(big, x) */
  return VSEL(VLT(ax, VSET1(0.625f)), big, small);
}

KFN static inline V KNAME(v_add)(V a, V b) {
  return VADD(a, b);
}
KFN static inline V KNAME(v_sub)(V a, V b) {
  return VSUB(a, b);
}
KFN static inline V KNAME(v_mul)(V a, V b) {
  return VMUL(a, b);
}
KFN static inline V KNAME(v_div)(V a, V b) {
  return VDIV(a, b);
}
/* (a > b || isnan(a)) ? a : b — NumPy's NaN-propagating maximum. The
 * instruction returns b unless a > b; a's nan is put back. */
KFN static inline V KNAME(v_maximum)(V a, V b) {
  return VSEL(VUNORD(a, a), VMAX(a, b), a);
}
KFN static inline V KNAME(v_minimum)(V a, V b) {
  return VSEL(VUNORD(a, a), VMIN(a, b), a);
}

/* ---------------------------------------------------------- row loops */

/* The last n % W elements go through a W-wide stack copy, so every
 * element is computed by the same instructions (no scalar tail).
 *
 * Each op gets two loops: k_OP with ordinary stores, and nt_OP with
 * non-temporal (streaming) stores for outputs too large to stay in cache:
 * they skip the read-for-ownership of the output lines, which is a third
 * of the memory traffic of a unary op. nt_OP needs an output aligned to
 * the vector width (the fast path's chunks are) and falls back to k_OP
 * otherwise; it fences its stores before returning. */
#define EW_ALIGNED_k_(p) 1
#define EW_ALIGNED_kv_(p) 1
#define EW_ALIGNED_nt_(p) (((uintptr_t)(p) & (W * sizeof(float) - 1)) == 0)
#define EW_FINISH_k_()
#define EW_FINISH_kv_()
#define EW_FINISH_nt_() VFENCE()

#define EW_UNARY_LOOP(OP, PFX, STORE)                                          \
  KFN static void KNAME(PFX##OP)(int64_t n, const void *const *in,             \
                                 const int64_t *st, void *out) {               \
    const float *a = in[0];                                                    \
    float *o = out;                                                            \
    if (!EW_ALIGNED_##PFX(o) || !st[0]) {                                      \
      KNAME(k_##OP)(n, in, st, out);                                           \
      return;                                                                  \
    }                                                                          \
    int64_t i = 0;                                                             \
    for (; i + W <= n; i += W)                                                 \
      STORE(o + i, KNAME(v_##OP)(VLOAD(a + i)));                               \
    EW_FINISH_##PFX();                                                         \
    if (i < n) {                                                               \
      float t[W] = {0};                                                        \
      memcpy(t, a + i, (size_t)(n - i) * sizeof *t);                           \
      VSTORE(t, KNAME(v_##OP)(VLOAD(t)));                                      \
      memcpy(o + i, t, (size_t)(n - i) * sizeof *t);                           \
    }                                                                          \
  }

/* k_OP itself: the one-value case (a fill), else the loop above (kv_OP). */
#define EW_UNARY(OP)                                                           \
  KFN static void KNAME(k_##OP)(int64_t n, const void *const *in,              \
                                const int64_t *st, void *out);                 \
  EW_UNARY_LOOP(OP, kv_, VSTORE)                                               \
  KFN static void KNAME(k_##OP)(int64_t n, const void *const *in,              \
                                const int64_t *st, void *out) {                \
    if (st[0]) {                                                               \
      KNAME(kv_##OP)(n, in, st, out);                                          \
      return;                                                                  \
    }                                                                          \
    float v[W], *o = out;                                                      \
    VSTORE(v, KNAME(v_##OP)(VSET1(*(const float *)in[0])));                    \
    for (int64_t i = 0; i < n; i++)                                            \
      o[i] = v[0];                                                             \
  }                                                                            \
  EW_UNARY_LOOP(OP, nt_, VSTREAM)

#define EW_BINARY_LOOP(OP, PFX, STORE)                                         \
  KFN static void KNAME(PFX##OP)(int64_t n, const void *const *in,             \
                                 const int64_t *st, void *out) {               \
    const float *a = in[0], *b = in[1];                                        \
    float *o = out;                                                            \
    if (!EW_ALIGNED_##PFX(o)) {                                                \
      KNAME(k_##OP)(n, in, st, out);                                           \
      return;                                                                  \
    }                                                                          \
    int64_t i = 0;                                                             \
    if (st[0] && st[1]) {                                                      \
      for (; i + W <= n; i += W)                                               \
        STORE(o + i, KNAME(v_##OP)(VLOAD(a + i), VLOAD(b + i)));               \
    } else if (st[0]) {                                                        \
      V vb = VSET1(b[0]);                                                      \
      for (; i + W <= n; i += W)                                               \
        STORE(o + i, KNAME(v_##OP)(VLOAD(a + i), vb));                         \
    } else if (st[1]) {                                                        \
      V va = VSET1(a[0]);                                                      \
      for (; i + W <= n; i += W)                                               \
        STORE(o + i, KNAME(v_##OP)(va, VLOAD(b + i)));                         \
    }                                                                          \
    EW_FINISH_##PFX();                                                         \
    if (i < n) { /* tail, or both operands broadcast (i == 0) */               \
      int64_t m = n - i < W ? n - i : W;                                       \
      float ta[W] = {0}, tb[W] = {0};                                          \
      for (int64_t j = 0; j < m; j++) {                                        \
        ta[j] = a[st[0] ? i + j : 0];                                          \
        tb[j] = b[st[1] ? i + j : 0];                                          \
      }                                                                        \
      VSTORE(ta, KNAME(v_##OP)(VLOAD(ta), VLOAD(tb)));                         \
      if (st[0] || st[1]) {                                                    \
        memcpy(o + i, ta, (size_t)m * sizeof *ta);                             \
      } else {                                                                 \
        for (int64_t j = 0; j < n; j++)                                        \
          o[j] = ta[0];                                                        \
      }                                                                        \
    }                                                                          \
  }

#define EW_BINARY(OP)                                                          \
  EW_BINARY_LOOP(OP, k_, VSTORE)                                               \
  EW_BINARY_LOOP(OP, nt_, VSTREAM)

EW_UNARY(neg)
EW_UNARY(abs)
EW_UNARY(sign)
EW_UNARY(square)
EW_UNARY(sqrt)
EW_UNARY(rsqrt)
EW_UNARY(floor)
EW_UNARY(ceil)
EW_UNARY(round)
EW_UNARY(exp)
EW_UNARY(log)
EW_UNARY(sigmoid)
EW_UNARY(tanh)
EW_BINARY(add)
EW_BINARY(sub)
EW_BINARY(mul)
EW_BINARY(div)
EW_BINARY(maximum)
EW_BINARY(minimum)

#undef EW_UNARY_LOOP
#undef EW_UNARY
#undef EW_BINARY_LOOP
#undef EW_BINARY
#undef EW_ALIGNED_k_
#undef EW_ALIGNED_kv_
#undef EW_ALIGNED_nt_
#undef EW_FINISH_k_
#undef EW_FINISH_kv_
#undef EW_FINISH_nt_

// clang-format off
static const am_ew_kernel KNAME(g_kernels)[AM_OP_COUNT] = {
    [AM_OP_NEG] = KNAME(k_neg),         [AM_OP_ABS] = KNAME(k_abs),
    [AM_OP_SIGN] = KNAME(k_sign),       [AM_OP_SQUARE] = KNAME(k_square),
    [AM_OP_SQRT] = KNAME(k_sqrt),       [AM_OP_RSQRT] = KNAME(k_rsqrt),
    [AM_OP_FLOOR] = KNAME(k_floor),     [AM_OP_CEIL] = KNAME(k_ceil),
    [AM_OP_ROUND] = KNAME(k_round),     [AM_OP_EXP] = KNAME(k_exp),
    [AM_OP_LOG] = KNAME(k_log),         [AM_OP_SIGMOID] = KNAME(k_sigmoid),
    [AM_OP_TANH] = KNAME(k_tanh),       [AM_OP_ADD] = KNAME(k_add),
    [AM_OP_SUB] = KNAME(k_sub),         [AM_OP_MUL] = KNAME(k_mul),
    [AM_OP_DIV] = KNAME(k_div),         [AM_OP_MAXIMUM] = KNAME(k_maximum),
    [AM_OP_MINIMUM] = KNAME(k_minimum),
};

static const am_ew_kernel KNAME(g_kernels_nt)[AM_OP_COUNT] = {
    [AM_OP_NEG] = KNAME(nt_neg),         [AM_OP_ABS] = KNAME(nt_abs),
    [AM_OP_SIGN] = KNAME(nt_sign),       [AM_OP_SQUARE] = KNAME(nt_square),
    [AM_OP_SQRT] = KNAME(nt_sqrt),       [AM_OP_RSQRT] = KNAME(nt_rsqrt),
    [AM_OP_FLOOR] = KNAME(nt_floor),     [AM_OP_CEIL] = KNAME(nt_ceil),
    [AM_OP_ROUND] = KNAME(nt_round),     [AM_OP_EXP] = KNAME(nt_exp),
    [AM_OP_LOG] = KNAME(nt_log),         [AM_OP_SIGMOID] = KNAME(nt_sigmoid),
    [AM_OP_TANH] = KNAME(nt_tanh),       [AM_OP_ADD] = KNAME(nt_add),
    [AM_OP_SUB] = KNAME(nt_sub),         [AM_OP_MUL] = KNAME(nt_mul),
    [AM_OP_DIV] = KNAME(nt_div),         [AM_OP_MAXIMUM] = KNAME(nt_maximum),
    [AM_OP_MINIMUM] = KNAME(nt_minimum),
};
// clang-format on
