/* Samples for the linalg family: ranks 1..4 with broadcast batch dims,
 * transposed operands, every float dtype; conv1d with every param. */
#include "samples.h"

static am_dtype pick_float(uint64_t pseed, int salt) {
  static const am_dtype t[] = {AM_F32, AM_F32, AM_F16, AM_BF16, AM_F64};
  return t[s_pick(pseed, salt, 0, 4)];
}

/* a [batch..., M, K] and b [batch..., K, N] (1-d when their rank is 1),
 * batch dims either shared sizes or 1 (as pseed says), b sometimes built
 * transposed. */
static void mm_operands(t_rng *r, uint64_t pseed, am_array *a, am_array *b) {
  int na = (int)s_pick(pseed, 1, 1, 4), nb = (int)s_pick(pseed, 2, 1, 4);
  am_dtype dt = pick_float(pseed, 3);
  int64_t M = t_randint(r, 1, 6), K = t_randint(r, 0, 6),
          N = t_randint(r, 1, 6);
  int64_t batch[2] = {t_randint(r, 1, 3), t_randint(r, 1, 3)};
  int64_t sa[4], sb[4];
  for (int i = 0; i < na - 2; i++) /* right-aligned batch dims */
    sa[i] = s_pick(pseed, 10 + i, 0, 1) ? batch[2 - (na - 2) + i] : 1;
  for (int i = 0; i < nb - 2; i++)
    sb[i] = s_pick(pseed, 20 + i, 0, 1) ? batch[2 - (nb - 2) + i] : 1;
  if (na > 1) sa[na - 2] = M;
  sa[na - 1] = K;
  bool bt = nb > 1 && s_pick(pseed, 4, 0, 1);
  if (nb > 1) {
    sb[nb - 2] = bt ? N : K; /* built as [.., N, K] then transposed */
    sb[nb - 1] = bt ? K : N;
  } else {
    sb[0] = K;
  }
  *a = t_rand(r, sa, na, dt, -2, 2);
  *b = t_rand(r, sb, nb, dt, -2, 2);
  if (bt) *b = am_swapaxes(*b, -1, -2);
}

int sample_matmul(t_rng *r, uint64_t pseed, am_array *outs) {
  am_array a, b;
  mm_operands(r, pseed, &a, &b);
  outs[0] = am_matmul(a, b);
  return 1;
}

int sample_addmm(t_rng *r, uint64_t pseed, am_array *outs) {
  am_array a, b;
  mm_operands(r, pseed, &a, &b);
  /* c: a suffix of the product's shape, some dims 1 */
  am_array ab = am_matmul(a, b);
  int no = am_array_ndim(ab), nc = (int)s_pick(pseed, 5, 0, no);
  int64_t sc[AM_MAX_DIMS];
  for (int i = 0; i < nc; i++)
    sc[i] = s_pick(pseed, 30 + i, 0, 2) ? am_array_shape(ab)[no - nc + i] : 1;
  am_array c = t_rand(r, sc, nc, am_array_dtype(ab), -2, 2);
  outs[0] = am_addmm(c, a, b, (float)s_pick(pseed, 6, -2, 2) * 0.5f,
                     (float)s_pick(pseed, 7, 0, 2));
  return 1;
}

int sample_conv1d(t_rng *r, uint64_t pseed, am_array *outs) {
  int stride = (int)s_pick(pseed, 1, 1, 3), pad = (int)s_pick(pseed, 2, 0, 2);
  int dil = (int)s_pick(pseed, 3, 1, 2), K = (int)s_pick(pseed, 4, 1, 4);
  bool dw = s_pick(pseed, 5, 0, 2) == 0;
  int groups = dw ? (int)s_pick(pseed, 6, 1, 12) : (int)s_pick(pseed, 6, 1, 3);
  am_dtype dt = pick_float(pseed, 7);
  int64_t cig = dw ? 1 : t_randint(r, 1, 4), cog = dw ? 1 : t_randint(r, 1, 4);
  int64_t span = (int64_t)dil * (K - 1) + 1;
  int64_t L = t_randint(r, span > 2 * pad ? span - 2 * pad : 0, span + 8);
  int64_t sx[3] = {t_randint(r, 1, 3), L, groups * cig};
  int64_t sw[3] = {groups * cog, K, cig};
  am_array x = t_rand(r, sx, 3, dt, -2, 2), w = t_rand(r, sw, 3, dt, -2, 2);
  outs[0] = am_conv1d(x, w, stride, pad, dil, groups);
  return 1;
}
