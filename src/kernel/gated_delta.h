/*
 * gated_delta.h — the Qwen3-Next gated delta-rule step as a CPU custom
 * kernel (header-only: the kernel tests and the benchmark use it; it is
 * also the reference example of a shape-callback kernel).
 *
 * Inputs q, k [B,T,Hk,Dk], v [B,T,Hv,Dv], g, beta [B,T,Hv], state
 * [B,Hv,Dv,Dk], all float32; outputs y [B,T,Hv,Dv] and the new state.
 * Per value head h (key head h / (Hv/Hk)) and step t (qwen3next.md §3.7):
 *   S <- g S;  m = S k;  d = beta (v - m);  S <- S + d k^T;  y = S q.
 * One task is a block of state rows (b, h, dv..dv+RB): each row stays in
 * L1 for the whole T loop, the row update is one fused pass (decay folded
 * into the dot: m = g (S k), S = g S + d k), and rows are independent, so
 * the state is read once and written once — in place when the old state
 * is dead (a compiled step's donated state).
 */
#ifndef AM_GATED_DELTA_H
#define AM_GATED_DELTA_H

#include "../core/internal.h"

#define GD_ROWS 16 /* state rows per task */

static int gd_shapes(void *user, const am_kernel_meta *in, int n_in,
                     const am_kernel_args *args, am_kernel_meta *out,
                     int max_out) {
  (void)user, (void)args, (void)max_out;
  for (int i = 0; i < n_in; i++)
    if (in[i].dtype != AM_F32) {
      am_kernel_fail("input %d must be float32", i);
      return -1;
    }
  const am_kernel_meta *q = &in[0], *k = &in[1], *v = &in[2], *g = &in[3],
                       *b = &in[4], *s = &in[5];
  if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || g->ndim != 3 ||
      b->ndim != 3 || s->ndim != 4) {
    am_kernel_fail("ranks must be q,k,v 4, g,beta 3, state 4");
    return -1;
  }
  int64_t B = q->shape[0], T = q->shape[1], Hk = q->shape[2], Dk = q->shape[3],
          Hv = v->shape[2], Dv = v->shape[3];
  bool ok = !memcmp(q->shape, k->shape, 4 * sizeof(int64_t)) &&
            v->shape[0] == B && v->shape[1] == T && Hk > 0 && Hv % Hk == 0;
  for (int i = 3; i <= 4; i++)
    ok &= in[i].shape[0] == B && in[i].shape[1] == T && in[i].shape[2] == Hv;
  ok &= s->shape[0] == B && s->shape[1] == Hv && s->shape[2] == Dv &&
        s->shape[3] == Dk;
  if (!ok) {
    am_kernel_fail("want q,k [B,T,Hk,Dk], v [B,T,Hv,Dv], g,beta [B,T,Hv], "
                   "state [B,Hv,Dv,Dk] with Hv a multiple of Hk");
    return -1;
  }
  out[0] = *v; /* y [B,T,Hv,Dv] */
  out[1] = *s; /* new state */
  return 2;
}

static int64_t gd_tasks(void *user, const am_kernel_meta *in, int n_in,
                        const am_kernel_args *args) {
  (void)user, (void)n_in, (void)args;
  int64_t rows = in[5].shape[0] * in[5].shape[1] * in[5].shape[2];
  return rows ? (rows + GD_ROWS - 1) / GD_ROWS : 1;
}

/* One state row through T steps. */
#define GD_ROW_BODY                                                            \
  for (int64_t t = 0; t < T; t++) {                                            \
    const float *kt = k + t * sk, *qt = q + t * sk;                            \
    float gt = g[t * sg], bt = beta[t * sg];                                   \
    float m = 0;                                                               \
    for (int64_t i = 0; i < Dk; i++)                                           \
      m += row[i] * kt[i];                                                     \
    float d = bt * (v[t * sv] - gt * m), y = 0;                                \
    for (int64_t i = 0; i < Dk; i++) {                                         \
      row[i] = gt * row[i] + d * kt[i];                                        \
      y += row[i] * qt[i];                                                     \
    }                                                                          \
    yo[t * sv] = y;                                                            \
  }

/* Vectorized: 8-wide lanes with several accumulators (Dk % 32 == 0). */
typedef float gd_v8 __attribute__((vector_size(32), aligned(4)));
#define GD_VEC_BODY                                                            \
  for (int64_t t = 0; t < T; t++) {                                            \
    const float *kt = k + t * sk, *qt = q + t * sk;                            \
    float gt = g[t * sg], bt = beta[t * sg];                                   \
    gd_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                              \
    for (int64_t i = 0; i < Dk; i += 32) {                                     \
      a0 += *(gd_v8 *)(row + i) * *(const gd_v8 *)(kt + i);                    \
      a1 += *(gd_v8 *)(row + i + 8) * *(const gd_v8 *)(kt + i + 8);            \
      a2 += *(gd_v8 *)(row + i + 16) * *(const gd_v8 *)(kt + i + 16);          \
      a3 += *(gd_v8 *)(row + i + 24) * *(const gd_v8 *)(kt + i + 24);          \
    }                                                                          \
    gd_v8 a = (a0 + a1) + (a2 + a3);                                           \
    float m =                                                                  \
        ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));     \
    float d = bt * (v[t * sv] - gt * m);                                       \
    gd_v8 y0 = {0}, y1 = {0}, y2 = {0}, y3 = {0};                              \
    for (int64_t i = 0; i < Dk; i += 32) {                                     \
      gd_v8 *r = (gd_v8 *)(row + i);                                           \
      r[0] = gt * r[0] + d * *(const gd_v8 *)(kt + i);                         \
      r[1] = gt * r[1] + d * *(const gd_v8 *)(kt + i + 8);                     \
      r[2] = gt * r[2] + d * *(const gd_v8 *)(kt + i + 16);                    \
      r[3] = gt * r[3] + d * *(const gd_v8 *)(kt + i + 24);                    \
      y0 += r[0] * *(const gd_v8 *)(qt + i);                                   \
      y1 += r[1] * *(const gd_v8 *)(qt + i + 8);                               \
      y2 += r[2] * *(const gd_v8 *)(qt + i + 16);                              \
      y3 += r[3] * *(const gd_v8 *)(qt + i + 24);                              \
    }                                                                          \
    gd_v8 yy = (y0 + y1) + (y2 + y3);                                          \
    yo[t * sv] = ((yy[0] + yy[1]) + (yy[2] + yy[3])) +                         \
                 ((yy[4] + yy[5]) + (yy[6] + yy[7]));                          \
  }

#define GD_ROW_FN(NAME, ATTR, BODY)                                            \
  ATTR static void NAME(float *restrict row, const float *k, const float *q,   \
                        const float *g, const float *beta, const float *v,     \
                        float *yo, int64_t T, int64_t Dk, int64_t sk,          \
                        int64_t sg, int64_t sv) {                              \
    BODY                                                                       \
  }
GD_ROW_FN(gd_row_plain, , GD_ROW_BODY)
GD_ROW_FN(gd_row_avx2, __attribute__((target("avx2,fma"))), GD_VEC_BODY)
GD_ROW_FN(gd_row_vec, , GD_VEC_BODY)

static am_status gd_cpu(const am_kernel_call *c, int64_t begin, int64_t end) {
  const am_kernel_buf *Q = &c->in[0], *V = &c->in[2], *S = &c->in[5];
  int64_t T = Q->shape[1], Hk = Q->shape[2], Dk = Q->shape[3];
  int64_t Hv = V->shape[2], Dv = V->shape[3], B = S->shape[0];
  int64_t rows = B * Hv * Dv, rep = Hv / Hk;
  const float *q = c->in[0].data, *k = c->in[1].data, *v = V->data,
              *g = c->in[3].data, *beta = c->in[4].data, *s = S->data;
  float *y = c->out[0].data, *so = c->out[1].data;
  bool vec = Dk % 32 == 0, avx2 = vec && am_cpu_has_avx2();
  for (int64_t r0 = begin * GD_ROWS; r0 < end * GD_ROWS && r0 < rows; r0++) {
    int64_t b = r0 / (Hv * Dv), h = r0 / Dv % Hv, dv = r0 % Dv;
    float *row = so + r0 * Dk;
    if (row != s + r0 * Dk) /* else updated in place (the state donated) */
      memcpy(row, s + r0 * Dk, (size_t)Dk * sizeof *row);
    const float *kb = k + (b * T * Hk + h / rep) * Dk;
    const float *qb = q + (b * T * Hk + h / rep) * Dk;
    const float *gb = g + b * T * Hv + h, *bb = beta + b * T * Hv + h;
    const float *vb = v + (b * T * Hv + h) * Dv + dv;
    float *yb = y + (b * T * Hv + h) * Dv + dv;
    if (avx2)
      gd_row_avx2(row, kb, qb, gb, bb, vb, yb, T, Dk, Hk * Dk, Hv, Hv * Dv);
    else if (vec)
      gd_row_vec(row, kb, qb, gb, bb, vb, yb, T, Dk, Hk * Dk, Hv, Hv * Dv);
    else
      gd_row_plain(row, kb, qb, gb, bb, vb, yb, T, Dk, Hk * Dk, Hv, Hv * Dv);
  }
  return AM_OK;
}

/* ----- CUDA -----
 * One warp owns GD_CU_ROWS state rows of one (b, h): lane l holds the
 * elements l, l + 32, ... of each row in registers (GD_CU_NPL of them, so
 * Dk <= 32 * GD_CU_NPL; larger Dk takes a slower path through global
 * memory), reads its share of k_t and q_t once per step for all its rows,
 * and the two dot products are warp reductions. The state is read once
 * and written once (coalesced), in place when donated: each row is read
 * before it is written, by the warp that owns it. Blocks of GD_CU_WARPS
 * warps cover consecutive rows of one head: grid (row blocks, Hv, B). */
#define GD_CU_ROWS 4
#define GD_CU_NPL 8
#define GD_CU_WARPS 4

static const char gdc_header[] =
    "#define GD_R 4\n"
    "#define GD_NPL 8\n"
    "__device__ __forceinline__ float gd_wsum(float x) {\n"
    "  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, "
    "x, o);\n"
    "  return x;\n"
    "}\n";

static const char gdc_body[] =
    "  const long long T = q_shape[1], Hk = q_shape[2], Dk = q_shape[3];\n"
    "  const long long Hv = v_shape[2], Dv = v_shape[3];\n"
    "  const long long b = blockIdx.z, h = blockIdx.y;\n"
    "  const int lane = threadIdx.x & 31;\n"
    "  const long long row0 =\n"
    "      ((long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) *\n"
    "      GD_R;\n"
    "  if (row0 >= Dv || h >= Hv || Hk <= 0) return;\n"
    "  const long long hk = h / (Hv / Hk);\n"
    "  const float *s_in = state + (b * Hv + h) * Dv * Dk;\n"
    "  float *s_out = state_out + (b * Hv + h) * Dv * Dk;\n"
    "  if (Dk <= 32 * GD_NPL) {\n"
    "    float s[GD_R][GD_NPL];\n"
    "#pragma unroll\n"
    "    for (int r = 0; r < GD_R; r++)\n"
    "#pragma unroll\n"
    "      for (int j = 0; j < GD_NPL; j++) {\n"
    "        long long i = lane + 32 * j;\n"
    "        s[r][j] = row0 + r < Dv && i < Dk ? s_in[(row0 + r) * Dk + i] : "
    "0.0f;\n"
    "      }\n"
    "    for (long long t = 0; t < T; t++) {\n"
    "      const long long kb = ((b * T + t) * Hk + hk) * Dk;\n"
    "      const long long gi = (b * T + t) * Hv + h;\n"
    "      float kk[GD_NPL], qq[GD_NPL];\n"
    "#pragma unroll\n"
    "      for (int j = 0; j < GD_NPL; j++) {\n"
    "        long long i = lane + 32 * j;\n"
    "        kk[j] = i < Dk ? k[kb + i] : 0.0f;\n"
    "        qq[j] = i < Dk ? q[kb + i] : 0.0f;\n"
    "      }\n"
    "      const float gt = g[gi], bt = beta[gi];\n"
    "      float m[GD_R], yv[GD_R];\n"
    "#pragma unroll\n"
    "      for (int r = 0; r < GD_R; r++) {\n"
    "        float a = 0.0f;\n"
    "#pragma unroll\n"
    "        for (int j = 0; j < GD_NPL; j++) a += s[r][j] * kk[j];\n"
    "        m[r] = a;\n"
    "      }\n"
    "#pragma unroll\n"
    "      for (int r = 0; r < GD_R; r++) m[r] = gd_wsum(m[r]);\n"
    "#pragma unroll\n"
    "      for (int r = 0; r < GD_R; r++) {\n"
    "        const float vr = row0 + r < Dv ? v[gi * Dv + row0 + r] : 0.0f;\n"
    "        const float d = bt * (vr - gt * m[r]);\n"
    "        float a = 0.0f;\n"
    "#pragma unroll\n"
    "        for (int j = 0; j < GD_NPL; j++) {\n"
    "          s[r][j] = gt * s[r][j] + d * kk[j];\n"
    "          a += s[r][j] * qq[j];\n"
    "        }\n"
    "        yv[r] = a;\n"
    "      }\n"
    "#pragma unroll\n"
    "      for (int r = 0; r < GD_R; r++) yv[r] = gd_wsum(yv[r]);\n"
    "#pragma unroll\n"
    "      for (int r = 0; r < GD_R; r++)\n"
    "        if (lane == r && row0 + r < Dv) y_out[gi * Dv + row0 + r] = "
    "yv[r];\n"
    "    }\n"
    "#pragma unroll\n"
    "    for (int r = 0; r < GD_R; r++)\n"
    "#pragma unroll\n"
    "      for (int j = 0; j < GD_NPL; j++) {\n"
    "        long long i = lane + 32 * j;\n"
    "        if (row0 + r < Dv && i < Dk) s_out[(row0 + r) * Dk + i] = "
    "s[r][j];\n"
    "      }\n"
    "    return;\n"
    "  }\n"
    "  /* large Dk: each row updated in place in the output, lane-strided */\n"
    "  for (int r = 0; r < GD_R && row0 + r < Dv; r++) {\n"
    "    float *row = s_out + (row0 + r) * Dk;\n"
    "    const float *src = s_in + (row0 + r) * Dk;\n"
    "    if (row != src)\n"
    "      for (long long i = lane; i < Dk; i += 32) row[i] = src[i];\n"
    "    __syncwarp();\n"
    "    for (long long t = 0; t < T; t++) {\n"
    "      const long long kb = ((b * T + t) * Hk + hk) * Dk;\n"
    "      const long long gi = (b * T + t) * Hv + h;\n"
    "      const float gt = g[gi], bt = beta[gi];\n"
    "      float a = 0.0f;\n"
    "      for (long long i = lane; i < Dk; i += 32) a += row[i] * k[kb + i];\n"
    "      const float d = bt * (v[gi * Dv + row0 + r] - gt * gd_wsum(a));\n"
    "      a = 0.0f;\n"
    "      for (long long i = lane; i < Dk; i += 32) {\n"
    "        const float x = gt * row[i] + d * k[kb + i];\n"
    "        row[i] = x;\n"
    "        a += x * q[kb + i];\n"
    "      }\n"
    "      a = gd_wsum(a);\n"
    "      if (lane == 0) y_out[gi * Dv + row0 + r] = a;\n"
    "    }\n"
    "  }\n";

static am_status gdc_launch(void *user, const am_kernel_meta *in, int n_in,
                            const am_kernel_args *args, am_kernel_launch *out) {
  (void)user, (void)n_in, (void)args;
  int64_t B = in[5].shape[0], Hv = in[5].shape[1], Dv = in[5].shape[2];
  int64_t rows_per_block = (int64_t)GD_CU_ROWS * GD_CU_WARPS;
  int64_t xb = (Dv + rows_per_block - 1) / rows_per_block;
  /* sizes of 0 launch one idle block (every dimension must be >= 1) */
  out->grid[0] = (int)((xb > 0 ? xb : 1) * 32 * GD_CU_WARPS);
  out->grid[1] = (int)(Hv > 0 ? Hv : 1);
  out->grid[2] = (int)(B > 0 ? B : 1);
  out->threadgroup[0] = 32 * GD_CU_WARPS;
  out->threadgroup[1] = out->threadgroup[2] = 1;
  out->shared_memory = 0;
  if (xb * 32 * GD_CU_WARPS > 0x7fffffff || Hv > 65535 || B > 65535) {
    am_kernel_fail("state [%lld,%lld,%lld,*] too large for one CUDA launch",
                   (long long)B, (long long)Hv, (long long)Dv);
    return AM_ERR_UNSUPPORTED;
  }
  return AM_OK;
}

static const char *const gdc_in[] = {"q", "k", "v", "g", "beta", "state"};
static const char *const gdc_out[] = {"y_out", "state_out"};
static const am_kernel_cuda_desc gdc_desc = {.input_names = gdc_in,
                                             .output_names = gdc_out,
                                             .source = gdc_body,
                                             .header = gdc_header,
                                             .launch = gdc_launch};

/* The kernel, with its shape callback (shapes follow the inputs), on the
 * CPU and (with the CUDA backend) the GPU. */
static inline am_kernel gd_kernel_new(bool with_shapes) {
  am_kernel_desc d = {.name = "gated_delta",
                      .n_in = 6,
                      .n_out = 2,
                      .cpu = gd_cpu,
                      .cpu_tasks = gd_tasks,
                      .shapes = with_shapes ? gd_shapes : NULL,
                      .cuda = &gdc_desc,
                      .inplace = {0, 6}}; /* new state over the old one */
  return am_kernel_new(&d);
}

#endif
