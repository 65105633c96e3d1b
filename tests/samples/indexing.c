/* Samples for the indexing family: index values come from the shape rng
 * (they are data) but always lie in range of the smallest axis drawn. */
#include "samples.h"

static const am_dtype idx_types[] = {AM_U8, AM_I8, AM_U32, AM_I32, AM_I64};

static am_dtype pick_idx_type(uint64_t pseed, int salt) {
  return idx_types[s_pick(pseed, salt, 0, 4)];
}

/* Indices in [-2, 1] (signed) or [0, 1]: valid for axes of size >= 2. */
static am_array rand_idx(t_rng *r, const int64_t *shape, int nd, am_dtype t) {
  bool sign = t == AM_I8 || t == AM_I32 || t == AM_I64;
  return t_rand(r, shape, nd, t, sign ? -2 : 0, 1);
}

static int pick_axis(uint64_t pseed, int salt, int nd) {
  return (int)s_pick(pseed, salt, -nd, nd - 1);
}

int sample_take(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3), ni = (int)s_pick(pseed, 2, 0, 2);
  am_array x = s_rand(r, nd, 2, 5, (am_dtype)s_pick(pseed, 3, 0, AM_F64), NULL);
  int64_t ish[2];
  for (int i = 0; i < ni; i++)
    ish[i] = t_randint(r, 1, 4);
  am_array idx = rand_idx(r, ish, ni, pick_idx_type(pseed, 4));
  outs[0] = am_take(x, idx, pick_axis(pseed, 5, nd));
  return 1;
}

int sample_take_along_axis(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3), axis = pick_axis(pseed, 2, nd);
  int ax = axis < 0 ? axis + nd : axis;
  int64_t xs[3], is[3];
  for (int d = 0; d < nd; d++) {
    xs[d] = t_randint(r, 2, 5);
    is[d] = t_randint(r, 1, 4);
    int mode = d == ax ? 3 : (int)s_pick(pseed, 10 + d, 0, 2);
    if (mode == 0)
      is[d] = xs[d];
    else if (mode == 1)
      is[d] = 1;
    else if (mode == 2)
      xs[d] = 1; /* x broadcasts against the indices */
  }
  am_array x = t_rand(r, xs, nd, (am_dtype)s_pick(pseed, 3, 0, AM_F64), -2, 2);
  am_array idx = rand_idx(r, is, nd, pick_idx_type(pseed, 4));
  outs[0] = am_take_along_axis(x, idx, axis);
  return 1;
}

int sample_put_along_axis(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3), axis = pick_axis(pseed, 2, nd);
  int ax = axis < 0 ? axis + nd : axis;
  int64_t xs[3], is[3], vs[3];
  for (int d = 0; d < nd; d++) {
    xs[d] = t_randint(r, 2, 5);
    is[d] = d == ax                       ? t_randint(r, 1, 4)
            : s_pick(pseed, 10 + d, 0, 1) ? 1
                                          : xs[d];
  }
  /* values: the walk shape, with some dims 1 and leading dims dropped */
  int vn = (int)s_pick(pseed, 5, 0, nd);
  for (int i = 0; i < vn; i++) {
    int d = nd - vn + i;
    vs[i] = s_pick(pseed, 20 + i, 0, 2) == 0 ? 1 : d == ax ? is[d] : xs[d];
  }
  am_array x = t_rand(r, xs, nd, (am_dtype)s_pick(pseed, 3, 0, AM_F64), -2, 2);
  am_array idx = rand_idx(r, is, nd, pick_idx_type(pseed, 4));
  am_array v = t_rand(r, vs, vn, (am_dtype)s_pick(pseed, 6, 0, AM_F64), -3, 3);
  outs[0] = am_put_along_axis(x, idx, v, axis);
  return 1;
}

/* Python slice length, to build an update of the slice's shape. */
static int64_t slice_len(int64_t a, int64_t b, int64_t st, int64_t n) {
  bool back = st < 0;
  if (a < 0)
    a = a + n < 0 ? (back ? -1 : 0) : a + n;
  else if (a >= n)
    a = back ? n - 1 : n;
  if (back && b == AM_END)
    b = -1;
  else if (b < 0)
    b = b + n < 0 ? (back ? -1 : 0) : b + n;
  else if (b >= n)
    b = back ? n - 1 : n;
  if (back) return b < a ? (a - b - 1) / -st + 1 : 0;
  return a < b ? (b - a - 1) / st + 1 : 0;
}

int sample_slice_update(t_rng *r, uint64_t pseed, am_array *outs) {
  static const int64_t bounds[][3] = {
      {0, AM_END, 1}, {1, -1, 1},     {-2, AM_END, 1}, {AM_END, AM_END, -1},
      {-1, 0, -2},    {0, AM_END, 2}, {-100, 2, 1},    {2, 1, 1},
  };
  int nd = (int)s_pick(pseed, 1, 1, 3), n = (int)s_pick(pseed, 2, 0, nd);
  int64_t xs[3], sh[3], a[3], b[3], st[3];
  bool use_step = s_pick(pseed, 7, 0, 1); /* NULL step: all 1 */
  for (int d = 0; d < nd; d++)
    xs[d] = t_randint(r, 3, 6);
  for (int d = 0; d < nd; d++) {
    sh[d] = xs[d];
    if (d >= n) continue;
    const int64_t *k = bounds[s_pick(pseed, 10 + d, 0, 7)];
    a[d] = k[0];
    b[d] = k[1];
    st[d] = use_step ? k[2] : 1;
    sh[d] = slice_len(a[d], b[d], st[d], xs[d]);
  }
  int mode = (int)s_pick(pseed, 3, 0, 2), un = mode == 0 ? 0 : nd;
  for (int d = 0; d < un; d++)
    if (mode == 2 && s_pick(pseed, 20 + d, 0, 1)) sh[d] = 1;
  am_dtype xt = (am_dtype)s_pick(pseed, 4, 0, AM_F64);
  am_dtype ut =
      s_pick(pseed, 5, 0, 1) ? xt : (am_dtype)s_pick(pseed, 6, 0, AM_F64);
  am_array x = t_rand(r, xs, nd, xt, -2, 2);
  am_array u = t_rand(r, sh, un, ut, -3, 3);
  outs[0] = am_slice_update(x, u, a, b, use_step ? st : NULL, n);
  return 1;
}

/* naxes distinct axes, each as given positive or negative. */
static int pick_axes(uint64_t pseed, int nd, int *axes) {
  int na = (int)s_pick(pseed, 30, 1, nd),
      first = (int)s_pick(pseed, 31, 0, nd - 1);
  for (int i = 0; i < na; i++) {
    int a = (first + i) % nd;
    axes[i] = s_pick(pseed, 32 + i, 0, 1) ? a - nd : a;
  }
  return na;
}

int sample_dynamic_slice(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3), axes[3];
  int na = pick_axes(pseed, nd, axes);
  int64_t sizes[3], ns = na;
  for (int i = 0; i < na; i++)
    sizes[i] = s_pick(pseed, 10 + i, 0, 3);
  am_array x = s_rand(r, nd, 3, 7, (am_dtype)s_pick(pseed, 2, 0, AM_F64), NULL);
  am_array start = t_rand(r, &ns, 1, pick_idx_type(pseed, 3), 0, 9);
  outs[0] = am_dynamic_slice(x, start, axes, na, sizes);
  return 1;
}

int sample_dynamic_slice_update(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 3), axes[3];
  int na = pick_axes(pseed, nd, axes);
  int64_t xs[3], us[3], ns = na;
  am_array x = s_rand(r, nd, 3, 7, (am_dtype)s_pick(pseed, 2, 0, AM_F64), xs);
  memcpy(us, xs, sizeof us);
  for (int i = 0; i < na; i++)
    us[(axes[i] + nd) % nd] = t_randint(r, 0, 3);
  am_array u = t_rand(r, us, nd, (am_dtype)s_pick(pseed, 4, 0, AM_F64), -3, 3);
  am_array start = t_rand(r, &ns, 1, pick_idx_type(pseed, 3), 0, 9);
  outs[0] = am_dynamic_slice_update(x, u, start, axes, na);
  return 1;
}
