/* Samples for the shape ops: varied ranks, negative axes, -1 sizes,
 * end-relative slice bounds and strided (transposed) inputs, all chosen
 * from pseed; only the sizes come from the shape rng. */
#include "samples.h"

/* An input of `shape` whose dtype (and, sometimes, transposed layout)
 * come from pseed. */
static am_array s_input(t_rng *r, const int64_t *shape, int nd,
                        uint64_t pseed) {
  am_dtype dt = (am_dtype)s_pick(pseed, 90, 0, AM_F64);
  if (nd >= 2 && s_pick(pseed, 91, 0, 2) == 0) {
    int64_t rev[AM_MAX_DIMS];
    for (int i = 0; i < nd; i++)
      rev[i] = shape[nd - 1 - i];
    return am_transpose(t_rand(r, rev, nd, dt, 0, 9), NULL, 0);
  }
  return t_rand(r, shape, nd, dt, 0, 9);
}

/* ndim random sizes in [lo, hi]. */
static void s_shape(t_rng *r, int nd, int64_t lo, int64_t hi, int64_t *shape) {
  for (int i = 0; i < nd; i++)
    shape[i] = t_randint(r, lo, hi);
}

/* An axis of nd dims, negative half of the time. */
static int s_axis(uint64_t pseed, int salt, int nd) {
  int a = (int)s_pick(pseed, salt, 0, nd - 1);
  return s_pick(pseed, salt + 1, 0, 1) ? a - nd : a;
}

int sample_reshape(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3);
  int64_t k = s_pick(pseed, 2, 1, 3), shape[3] = {0};
  s_shape(r, nd, 0, 4, shape);
  shape[nd - 1] *= k; /* so [k, -1] and [-1, k] always fit */
  am_array x = s_input(r, shape, nd, pseed);
  int64_t t[3];
  int tn;
  switch (s_pick(pseed, 3, 0, 3)) {
  case 0:
    t[0] = -1, tn = 1;
    break;
  case 1:
    t[0] = k, t[1] = -1, tn = 2;
    break;
  case 2:
    t[0] = -1, t[1] = 1, t[2] = k, tn = 3;
    break;
  default: /* literal (shape-dependent): [last, rest] */
    t[0] = shape[nd - 1];
    t[1] = t[0] ? am_array_size(x) / t[0] : 0;
    tn = 2;
  }
  outs[0] = am_reshape(x, t, tn);
  return 1;
}

int sample_flatten(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 4);
  int64_t shape[4] = {0};
  s_shape(r, nd, 0, 4, shape);
  am_array x = s_input(r, shape, nd, pseed);
  int n = nd ? nd : 1;
  int s = (int)s_pick(pseed, 2, 0, n - 1);
  int e = (int)s_pick(pseed, 3, s, n - 1);
  if (s_pick(pseed, 4, 0, 1)) s -= n;
  if (s_pick(pseed, 5, 0, 1)) e -= n;
  outs[0] = am_flatten(x, s, e);
  return 1;
}

int sample_unflatten(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3);
  int ax = s_axis(pseed, 2, nd);
  int64_t k = s_pick(pseed, 4, 1, 3), shape[3] = {0};
  s_shape(r, nd, 1, 4, shape);
  shape[ax < 0 ? ax + nd : ax] *= k;
  am_array x = s_input(r, shape, nd, pseed);
  int64_t sizes[3];
  int n;
  switch (s_pick(pseed, 5, 0, 2)) {
  case 0:
    sizes[0] = k, sizes[1] = -1, n = 2;
    break;
  case 1:
    sizes[0] = 1, sizes[1] = -1, sizes[2] = k, n = 3;
    break;
  default:
    sizes[0] = -1, n = 1;
  }
  outs[0] = am_unflatten(x, ax, sizes, n);
  return 1;
}

int sample_transpose(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 4);
  int64_t shape[4] = {0};
  s_shape(r, nd, 1, 4, shape);
  am_array x = s_input(r, shape, nd, pseed);
  int mode = (int)s_pick(pseed, 2, 0, 2);
  if (mode == 0 || nd == 0) {
    outs[0] = am_transpose(x, NULL, 0);
  } else if (mode == 1) {
    outs[0] = am_swapaxes(x, s_axis(pseed, 3, nd), s_axis(pseed, 5, nd));
  } else { /* a random permutation, some entries negative */
    int perm[4];
    for (int i = 0; i < nd; i++)
      perm[i] = i;
    for (int i = nd - 1; i > 0; i--) {
      int j = (int)s_pick(pseed, 10 + i, 0, i), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    for (int i = 0; i < nd; i++)
      if (s_pick(pseed, 20 + i, 0, 1)) perm[i] -= nd;
    outs[0] = am_transpose(x, perm, nd);
  }
  return 1;
}

int sample_expand_dims(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 3);
  int n = (int)s_pick(pseed, 2, 1, 2), on = nd + n;
  int64_t shape[3] = {0};
  s_shape(r, nd, 0, 4, shape);
  am_array x = s_input(r, shape, nd, pseed);
  int axes[2];
  axes[0] = s_axis(pseed, 3, on);
  if (n == 2) { /* a second axis, distinct from the first */
    int a1 = ((axes[0] + on) % on + 1 + (int)s_pick(pseed, 5, 0, on - 2)) % on;
    axes[1] = s_pick(pseed, 6, 0, 1) ? a1 - on : a1;
  }
  outs[0] = am_expand_dims(x, axes, n);
  return 1;
}

int sample_squeeze(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 4);
  int64_t shape[4] = {0};
  s_shape(r, nd, 2, 4, shape);
  int ax = s_axis(pseed, 2, nd);
  shape[ax < 0 ? ax + nd : ax] = 1;
  am_array x = s_input(r, shape, nd, pseed);
  outs[0] =
      s_pick(pseed, 4, 0, 2) ? am_squeeze(x, &ax, 1) : am_squeeze(x, NULL, 0);
  return 1;
}

int sample_broadcast_to(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 3), extra = (int)s_pick(pseed, 2, 0, 2);
  int64_t to[5], shape[3] = {0};
  s_shape(r, nd + extra, 0, 4, to);
  for (int i = 0; i < nd; i++)
    shape[i] = s_pick(pseed, 3 + i, 0, 1) ? 1 : to[extra + i];
  am_array x = s_input(r, shape, nd, pseed);
  outs[0] = am_broadcast_to(x, to, nd + extra);
  return 1;
}

int sample_broadcast_like(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 3), extra = (int)s_pick(pseed, 2, 0, 2);
  int64_t to[5], shape[3] = {0};
  s_shape(r, nd + extra, 0, 4, to);
  for (int i = 0; i < nd; i++)
    shape[i] = s_pick(pseed, 3 + i, 0, 1) ? 1 : to[extra + i];
  am_array x = s_input(r, shape, nd, pseed);
  am_array y = am_zeros(to, nd + extra, AM_U8);
  outs[0] = am_broadcast_like(x, y);
  return 1;
}

int sample_concatenate(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3), n = (int)s_pick(pseed, 2, 1, 4);
  int ax = s_axis(pseed, 3, nd);
  int64_t shape[3] = {0};
  s_shape(r, nd, 1, 4, shape);
  am_array xs[4];
  for (int i = 0; i < n; i++) {
    shape[ax < 0 ? ax + nd : ax] = t_randint(r, 0, 3);
    xs[i] = s_input(r, shape, nd, pseed);
  }
  outs[0] = am_concatenate(xs, n, ax);
  return 1;
}

int sample_split(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3);
  int ax = s_axis(pseed, 2, nd);
  int64_t shape[3] = {0};
  s_shape(r, nd, 1, 4, shape);
  if (s_pick(pseed, 4, 0, 1)) {
    int sec = (int)s_pick(pseed, 5, 1, 4);
    shape[ax < 0 ? ax + nd : ax] = sec * t_randint(r, 0, 3);
    am_array x = s_input(r, shape, nd, pseed);
    (void)am_split(x, sec, ax, outs);
    return sec;
  }
  int n = (int)s_pick(pseed, 6, 0, 3);
  int64_t idx[3];
  for (int i = 0; i < n; i++)
    idx[i] = s_pick(pseed, 7 + i, -6, 6);
  shape[ax < 0 ? ax + nd : ax] = t_randint(r, 0, 8);
  am_array x = s_input(r, shape, nd, pseed);
  (void)am_split_at(x, idx, n, ax, outs);
  return n + 1;
}

/* A slice bound: small positive/negative or AM_END. */
static int64_t s_bound(uint64_t pseed, int salt) {
  int64_t v = s_pick(pseed, salt, -7, 8);
  return v == 8 ? AM_END : v;
}

int sample_slice(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 4);
  int64_t shape[4] = {0};
  s_shape(r, nd, 0, 6, shape);
  am_array x = s_input(r, shape, nd, pseed);
  int64_t start[4], stop[4], step[4];
  int n = (int)s_pick(pseed, 2, 0, nd);
  for (int i = 0; i < nd; i++) {
    start[i] = s_bound(pseed, 10 + i);
    stop[i] = s_bound(pseed, 20 + i);
    step[i] = s_pick(pseed, 30 + i, -3, 2);
    if (step[i] >= 0) step[i]++; /* never 0 */
  }
  if (s_pick(pseed, 3, 0, 2) == 0)
    outs[0] =
        am_slice_axis(x, s_axis(pseed, 4, nd), start[0], stop[0], step[0]);
  else
    outs[0] = am_slice(x, start, stop, s_pick(pseed, 6, 0, 3) ? step : NULL, n);
  return 1;
}

int sample_pad(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 3), n = (int)s_pick(pseed, 2, 0, nd);
  int64_t shape[3] = {0}, lo[3], hi[3];
  s_shape(r, nd, 0, 4, shape);
  am_array x = s_input(r, shape, nd, pseed);
  for (int i = 0; i < n; i++) {
    lo[i] = s_pick(pseed, 10 + i, 0, 2);
    hi[i] = s_pick(pseed, 20 + i, 0, 2);
  }
  outs[0] = am_pad(x, lo, hi, n, -1.5);
  return 1;
}

int sample_repeat(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3);
  int64_t shape[3] = {0};
  s_shape(r, nd, 0, 4, shape);
  am_array x = s_input(r, shape, nd, pseed);
  outs[0] = am_repeat(x, s_pick(pseed, 2, 0, 3), s_axis(pseed, 3, nd));
  return 1;
}

int sample_tile(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 0, 3), n = (int)s_pick(pseed, 2, 0, 4);
  int64_t shape[3] = {0}, reps[4];
  s_shape(r, nd, 0, 3, shape);
  am_array x = s_input(r, shape, nd, pseed);
  for (int i = 0; i < n; i++)
    reps[i] = s_pick(pseed, 10 + i, 0, 3);
  outs[0] = am_tile(x, reps, n);
  return 1;
}
