#include "samples.h"

/* Dtypes the samples draw from; promotion in the public functions makes
 * every pair valid (bool is left out where an op rejects it). */
static const am_dtype k_dtypes[] = {AM_F32, AM_F16, AM_BF16, AM_F64, AM_I32,
                                    AM_I64, AM_U8,  AM_I8,   AM_U32, AM_BOOL};
#define N_DTYPES ((int)(sizeof k_dtypes / sizeof *k_dtypes))

static am_dtype pick_dtype(uint64_t pseed, int salt, bool allow_bool) {
  return k_dtypes[s_pick(pseed, salt, 0, N_DTYPES - (allow_bool ? 1 : 2))];
}

/* An array of rank 0..4 (sizes from the rng, 0-size dims now and then). */
static am_array rand_input(t_rng *r, uint64_t pseed, int salt, am_dtype dt,
                           int64_t *shape, int *nd) {
  *nd = (int)s_pick(pseed, salt, 0, 4);
  int64_t lo = s_pick(pseed, salt + 1, 0, 9) == 0 ? 0 : 1;
  for (int i = 0; i < *nd; i++)
    shape[i] = t_randint(r, lo, 5);
  return t_rand(r, shape, *nd, dt, -2, 2);
}

/* A second operand broadcastable against shape: a suffix of its dims,
 * each kept or set to 1 (from pseed); sometimes a weak scalar. */
static am_array rand_partner(t_rng *r, uint64_t pseed, int salt,
                             const int64_t *shape, int nd, am_dtype dt) {
  int kind = (int)s_pick(pseed, salt, 0, 7);
  if (kind == 0) return am_float(0.75);
  if (kind == 1) return am_int(3);
  int nb = (int)s_pick(pseed, salt + 1, 0, nd);
  int64_t sb[AM_MAX_DIMS];
  for (int j = 0; j < nb; j++)
    sb[j] = s_pick(pseed, salt + 2 + j, 0, 2) ? shape[nd - nb + j] : 1;
  return t_rand(r, sb, nb, dt, -2, 2);
}

static int unary_sample(t_rng *r, uint64_t pseed, am_array *outs,
                        am_array (*fn)(am_array), bool allow_bool) {
  int64_t shape[4];
  int nd;
  am_array x =
      rand_input(r, pseed, 1, pick_dtype(pseed, 3, allow_bool), shape, &nd);
  outs[0] = fn(x);
  return 1;
}

static int binary_sample(t_rng *r, uint64_t pseed, am_array *outs,
                         am_array (*fn)(am_array, am_array)) {
  int64_t shape[4];
  int nd;
  am_array a = rand_input(r, pseed, 1, pick_dtype(pseed, 3, true), shape, &nd);
  am_dtype bt =
      s_pick(pseed, 4, 0, 1) ? am_array_dtype(a) : pick_dtype(pseed, 5, true);
  am_array b = rand_partner(r, pseed, 10, shape, nd, bt);
  outs[0] = s_pick(pseed, 6, 0, 1) ? fn(a, b) : fn(b, a);
  return 1;
}

#define UNARY_SAMPLE(NM, BOOL_OK)                                              \
  int sample_##NM(t_rng *r, uint64_t pseed, am_array *outs) {                  \
    return unary_sample(r, pseed, outs, am_##NM, BOOL_OK);                     \
  }
#define BINARY_SAMPLE(NM)                                                      \
  int sample_##NM(t_rng *r, uint64_t pseed, am_array *outs) {                  \
    return binary_sample(r, pseed, outs, am_##NM);                             \
  }

UNARY_SAMPLE(neg, false)
UNARY_SAMPLE(abs, true)
UNARY_SAMPLE(sign, true)
UNARY_SAMPLE(exp, true)
UNARY_SAMPLE(expm1, true)
UNARY_SAMPLE(log, true)
UNARY_SAMPLE(log1p, true)
UNARY_SAMPLE(sqrt, true)
UNARY_SAMPLE(rsqrt, true)
UNARY_SAMPLE(square, true)
UNARY_SAMPLE(sin, true)
UNARY_SAMPLE(cos, true)
UNARY_SAMPLE(tanh, true)
UNARY_SAMPLE(sigmoid, true)
UNARY_SAMPLE(erf, true)
UNARY_SAMPLE(floor, true)
UNARY_SAMPLE(ceil, true)
UNARY_SAMPLE(round, true)
UNARY_SAMPLE(logical_not, true)
BINARY_SAMPLE(add)
BINARY_SAMPLE(sub)
BINARY_SAMPLE(mul)
BINARY_SAMPLE(div)
BINARY_SAMPLE(pow)
BINARY_SAMPLE(maximum)
BINARY_SAMPLE(minimum)
BINARY_SAMPLE(remainder)
BINARY_SAMPLE(equal)
BINARY_SAMPLE(not_equal)
BINARY_SAMPLE(less)
BINARY_SAMPLE(less_equal)
BINARY_SAMPLE(greater)
BINARY_SAMPLE(greater_equal)
BINARY_SAMPLE(logical_and)
BINARY_SAMPLE(logical_or)

int sample_where(t_rng *r, uint64_t pseed, am_array *outs) {
  int64_t shape[4];
  int nd;
  static const am_dtype conds[] = {AM_BOOL, AM_F32, AM_I32, AM_F16};
  am_array c =
      rand_input(r, pseed, 1, conds[s_pick(pseed, 3, 0, 3)], shape, &nd);
  am_array x =
      rand_partner(r, pseed, 10, shape, nd, pick_dtype(pseed, 4, true));
  am_array y =
      rand_partner(r, pseed, 20, shape, nd, pick_dtype(pseed, 5, true));
  outs[0] = am_where(c, x, y);
  return 1;
}

int sample_astype(t_rng *r, uint64_t pseed, am_array *outs) {
  int64_t shape[4];
  int nd;
  am_array x = rand_input(r, pseed, 1, pick_dtype(pseed, 3, true), shape, &nd);
  outs[0] = am_astype(x, (am_dtype)s_pick(pseed, 2, 0, AM_F64));
  return 1;
}
