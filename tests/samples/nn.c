/* Samples of the neural-network ops for the generic shape test. Shapes
 * come from the rng; ranks, axes, dtypes, optional inputs and flags from
 * pseed, so two calls with one pseed differ only in shapes. */
#include "samples.h"

static const am_dtype float_types[] = {AM_F32, AM_BF16, AM_F16, AM_F64};

static am_dtype pick_float(uint64_t pseed, int salt) {
  return float_types[s_pick(pseed, salt, 0, 3)];
}

/* x with nd dims from the rng (sizes lo..hi), of a float dtype. */
static am_array rand_x(t_rng *r, int nd, int64_t lo, int64_t hi, am_dtype dt,
                       int64_t *shape) {
  return s_rand(r, nd, lo, hi, dt, shape);
}

static int norm_sample(int kind, t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 4);
  am_dtype dt = pick_float(pseed, 2);
  int64_t shape[4];
  am_array x = rand_x(r, nd, 0, 6, dt, shape);
  int64_t d = shape[nd - 1];
  am_array w = s_pick(pseed, 3, 0, 2) ? t_rand(r, &d, 1, dt, 0.5, 1.5) : NULL;
  if (kind == 0) {
    outs[0] = am_rms_norm(x, w, 1e-5f);
  } else if (kind == 1) {
    am_array z = t_rand(r, shape, nd, dt, -3, 3);
    outs[0] = am_rms_norm_gated(x, w, z, 1e-6f);
  } else {
    am_array b = s_pick(pseed, 4, 0, 1) ? t_rand(r, &d, 1, dt, -1, 1) : NULL;
    outs[0] = am_layer_norm(x, w, b, 1e-5f);
  }
  return 1;
}

int sample_rms_norm(t_rng *r, uint64_t pseed, am_array *outs) {
  return norm_sample(0, r, pseed, outs);
}
int sample_rms_norm_gated(t_rng *r, uint64_t pseed, am_array *outs) {
  return norm_sample(1, r, pseed, outs);
}
int sample_layer_norm(t_rng *r, uint64_t pseed, am_array *outs) {
  return norm_sample(2, r, pseed, outs);
}

int sample_rope(t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 2, 4);
  int dims = 2 * (int)s_pick(pseed, 2, 1, 3);
  int64_t shape[4];
  for (int i = 0; i < nd; i++)
    shape[i] = t_randint(r, 1, 4);
  shape[nd - 1] = dims + t_randint(r, 0, 5); /* D >= dims */
  am_array x = t_rand(r, shape, nd, pick_float(pseed, 3), -2, 2);
  int kind = (int)s_pick(pseed, 4, 0, nd >= 3 ? 2 : 1);
  am_array off = NULL;
  if (kind == 1) {
    int32_t o = (int32_t)t_randint(r, 0, 50);
    off = am_array_new_data(&o, NULL, 0, AM_I32);
  } else if (kind == 2) { /* one offset per entry of axis 0 */
    int64_t o[4];
    for (int i = 0; i < shape[0]; i++)
      o[i] = t_randint(r, 0, 50);
    off = am_array_new_data(o, shape, 1, AM_I64);
  }
  outs[0] = am_rope(x, dims, s_pick(pseed, 5, 0, 1), 10000.0f,
                    s_pick(pseed, 6, 0, 1) ? 1.0f : 0.5f, off);
  return 1;
}

int sample_sdpa(t_rng *r, uint64_t pseed, am_array *outs) {
  am_dtype dt = pick_float(pseed, 1);
  int64_t g = s_pick(pseed, 2, 1, 3);
  int64_t b = t_randint(r, 1, 2), hkv = t_randint(r, 1, 2);
  int64_t lq = t_randint(r, 1, 5), lkv = t_randint(r, 0, 70);
  int64_t d = t_randint(r, 1, 20), dv = t_randint(r, 1, 20);
  int64_t qs[4] = {b, hkv * g, lq, d}, ks[4] = {b, hkv, lkv, d},
          vs[4] = {b, hkv, lkv, dv};
  am_array q = t_rand(r, qs, 4, dt, -1, 1);
  am_array k = t_rand(r, ks, 4, dt, -1, 1);
  am_array v = t_rand(r, vs, 4, dt, -1, 1);
  am_array mask = NULL;
  int mk = (int)s_pick(pseed, 3, 0, 2);
  if (mk == 1) {
    int64_t ms[2] = {lq, lkv};
    mask = am_greater(t_rand(r, ms, 2, AM_F32, 0, 1), am_float(0.2));
  } else if (mk == 2) {
    int64_t ms[4] = {b, 1, lq, lkv};
    mask = t_rand(r, ms, 4, AM_F32, -2, 0);
  }
  bool causal = s_pick(pseed, 4, 0, 1);
  am_array qoff = NULL;
  if (causal && s_pick(pseed, 5, 0, 1)) {
    int32_t o = (int32_t)t_randint(r, 0, 70);
    qoff = am_array_new_data(&o, NULL, 0, AM_I32);
  }
  outs[0] = am_sdpa(q, k, v, 0.3f, mask, causal, qoff);
  return 1;
}

static int axis_sample(int kind, t_rng *r, uint64_t pseed, am_array *outs) {
  int nd = (int)s_pick(pseed, 1, 1, 4);
  int axis = (int)s_pick(pseed, 2, -nd, nd - 1);
  am_array x = rand_x(r, nd, 0, 6, pick_float(pseed, 3), NULL);
  outs[0] = kind == 0   ? am_softmax(x, axis)
            : kind == 1 ? am_log_softmax(x, axis)
                        : am_l2_normalize(x, axis, 1e-6f);
  return 1;
}

int sample_softmax(t_rng *r, uint64_t pseed, am_array *outs) {
  return axis_sample(0, r, pseed, outs);
}
int sample_log_softmax(t_rng *r, uint64_t pseed, am_array *outs) {
  return axis_sample(1, r, pseed, outs);
}
int sample_l2_normalize(t_rng *r, uint64_t pseed, am_array *outs) {
  return axis_sample(2, r, pseed, outs);
}

static int act_sample(int kind, t_rng *r, uint64_t pseed, am_array *outs) {
  am_array x =
      rand_x(r, (int)s_pick(pseed, 1, 0, 4), 0, 6, pick_float(pseed, 2), NULL);
  outs[0] = kind == 0   ? am_silu(x)
            : kind == 1 ? am_gelu(x, s_pick(pseed, 3, 0, 1))
                        : am_softplus(x);
  return 1;
}

int sample_silu(t_rng *r, uint64_t pseed, am_array *outs) {
  return act_sample(0, r, pseed, outs);
}
int sample_gelu(t_rng *r, uint64_t pseed, am_array *outs) {
  return act_sample(1, r, pseed, outs);
}
int sample_softplus(t_rng *r, uint64_t pseed, am_array *outs) {
  return act_sample(2, r, pseed, outs);
}
