"""Golden data for the neural-network family (tests/test_nn.c).

References: MLX (mlx.core.fast rms_norm / layer_norm / rope /
scaled_dot_product_attention on the CPU, float32) where its semantics are
the point (rope layouts and offsets, causal alignment, masks), and float64
NumPy formulas elsewhere and for the reduced-precision cases (MLX's CPU
rope computes its angles in the input dtype, so bfloat16 references come
from float64 and are rounded once). Inputs are float32 values (bfloat16 /
float16 cases hold values exact in those types); each case stores the
inputs, the scalar params `p` and the expected outputs.
Run from the repository root: python3 scripts/golden_nn.py
"""
import math
import os
import sys

import mlx.core as mx
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from golden_common import GoldenWriter  # noqa: E402

mx.set_default_device(mx.cpu)
rng = np.random.default_rng(2024)
w = GoldenWriter("tests/golden/nn.txt", "scripts/golden_nn.py")


def bf16(a):
    """Values rounded to bfloat16, held as float32."""
    a = np.asarray(a, np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def f16(a):
    return np.asarray(a, np.float32).astype(np.float16)


def rand(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def np_mx(a):
    return np.array(a.astype(mx.float32))


# ------------------------------------------------------------------ norms

def rms_ref(x, wt, eps):
    x = x.astype(np.float64)
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y * wt if wt is not None else y


def ln_ref(x, wt, b, eps):
    x = x.astype(np.float64)
    m = x.mean(-1, keepdims=True)
    y = (x - m) / np.sqrt(((x - m) ** 2).mean(-1, keepdims=True) + eps)
    if wt is not None:
        y = y * wt
    if b is not None:
        y = y + b
    return y


def silu64(z):
    z = z.astype(np.float64)
    return z / (1 + np.exp(-z))


x = rand(3, 5, 16)
wt = rand(16, lo=0.5, hi=1.5)
y = np_mx(mx.fast.rms_norm(mx.array(x), mx.array(wt), 1e-5))
w.case("rms_w", x=x, w=wt, p=np.array([1e-5]), y=y)
x = rand(4, 7)
y = np_mx(mx.fast.rms_norm(mx.array(x), None, 1e-6))
w.case("rms_now", x=x, p=np.array([1e-6]), y=y)
x = bf16(rand(2, 3, 32))
wt = bf16(rand(32, lo=0.5, hi=1.5))
w.case("rms_bf16", dtype_override={"x": "bfloat16", "w": "bfloat16",
                                   "y": "bfloat16"},
       x=x, w=wt, p=np.array([1e-6]), y=bf16(rms_ref(x, wt, 1e-6)))

x = rand(2, 3, 8)
z = rand(2, 3, 8, lo=-4, hi=4)
wt = rand(8, lo=0.5, hi=1.5)
w.case("gated", x=x, z=z, w=wt, p=np.array([1e-6]),
       y=rms_ref(x, wt, 1e-6) * silu64(z))
w.case("gated_now", x=x, z=z, p=np.array([1e-5]),
       y=rms_ref(x, None, 1e-5) * silu64(z))

x = rand(3, 10, lo=-3, hi=5)
wt = rand(10)
b = rand(10)
y = np_mx(mx.fast.layer_norm(mx.array(x), mx.array(wt), mx.array(b), 1e-5))
w.case("ln_wb", x=x, w=wt, b=b, p=np.array([1e-5]), y=y)
y = np_mx(mx.fast.layer_norm(mx.array(x), None, mx.array(b), 1e-5))
w.case("ln_b", x=x, b=b, p=np.array([1e-5]), y=y)
y = np_mx(mx.fast.layer_norm(mx.array(x), mx.array(wt), None, 1e-5))
w.case("ln_w", x=x, w=wt, p=np.array([1e-5]), y=y)
xh = f16(rand(4, 12))
w.case("ln_f16", x=xh, p=np.array([1e-5]),
       y=ln_ref(xh, None, None, 1e-5).astype(np.float16))

# ------------------------------------------------------------------- rope


def rope_ref(x, dims, trad, base, scale, offs):
    """float64 RoPE of x [B, ..., L, D]; offs: one offset per batch."""
    x = x.astype(np.float64)
    out = x.copy()
    L = x.shape[-2]
    half = dims // 2
    inv = base ** (-2.0 * np.arange(half) / dims)
    for bi in range(x.shape[0]):
        pos = (offs[bi] + np.arange(L)) * scale
        th = pos[:, None] * inv[None, :]
        c, s = np.cos(th), np.sin(th)
        xb = x[bi]
        if trad:
            a, b2 = xb[..., 0:dims:2], xb[..., 1:dims:2]
            out[bi][..., 0:dims:2] = a * c - b2 * s
            out[bi][..., 1:dims:2] = a * s + b2 * c
        else:
            a, b2 = xb[..., :half], xb[..., half:dims]
            out[bi][..., :half] = a * c - b2 * s
            out[bi][..., half:dims] = a * s + b2 * c
    return out


def rope_case(name, shape, dims, trad, base, scale, off, vec=False):
    x = rand(*shape)
    o = mx.array(np.array(off, np.int32)) if vec else off
    y = np_mx(mx.fast.rope(mx.array(x), dims, traditional=trad, base=base,
                           scale=scale, offset=o))
    offs = off if vec else [off] * shape[0]
    ref = rope_ref(x, dims, trad, base, scale, offs)
    assert np.abs(ref - y).max() < 1e-4, name
    w.case(name, x=x, p=np.array([dims, int(trad), base, scale]),
           off=np.array(off, np.int32), y=y)


rope_case("rope_neox", (2, 3, 5, 8), 8, False, 10000.0, 1.0, 3)
rope_case("rope_neox_partial", (1, 4, 6, 16), 8, False, 10000.0, 1.0, 7)
rope_case("rope_trad", (2, 2, 3, 8), 8, True, 10000.0, 1.0, 2)
rope_case("rope_trad_partial", (1, 3, 4, 10), 6, True, 10000.0, 1.0, 0)
rope_case("rope_vec", (3, 2, 4, 8), 8, False, 10000.0, 1.0, [0, 5, 11],
          vec=True)
rope_case("rope_vec_trad", (2, 3, 2, 12), 4, True, 500.0, 1.0, [9, 1],
          vec=True)
rope_case("rope_scale", (1, 2, 5, 8), 8, False, 1e6, 0.25, 4)

# Qwen3-Next attention: head dim 256, 64 rotary dims, base 1e7, at a large
# position (float64 reference; MLX's float32 angles drift there).
x = rand(1, 1, 2, 256)
w.case("rope_qwen", x=x, p=np.array([64, 0, 1e7, 1.0]),
       off=np.array(70000, np.int32),
       y=rope_ref(x, 64, False, 1e7, 1.0, [70000]))
x = bf16(rand(2, 2, 3, 16))
w.case("rope_bf16", dtype_override={"x": "bfloat16", "y": "bfloat16"},
       x=x, p=np.array([8, 0, 10000.0, 1.0]), off=np.array(5, np.int32),
       y=bf16(rope_ref(x, 8, False, 10000.0, 1.0, [5, 5])))

# ------------------------------------------------------------------- sdpa


def sdpa_case(name, B, Hq, Hkv, Lq, Lkv, D, Dv, scale, mask=None,
              causal=False, qoff=None, mask_np=None):
    q, k, v = rand(B, Hq, Lq, D), rand(B, Hkv, Lkv, D), rand(B, Hkv, Lkv, Dv)
    m = mask
    if causal and qoff is not None:
        # explicit alignment: key j visible to query i when j <= qoff + i
        vis = np.arange(Lkv)[None, :] <= (qoff + np.arange(Lq))[:, None]
        m = vis if mask is None else None
        assert mask is None
    elif causal:
        m = "causal"
    y = np_mx(mx.fast.scaled_dot_product_attention(
        mx.array(q), mx.array(k), mx.array(v), scale=scale,
        mask=mx.array(m) if isinstance(m, np.ndarray) else m))
    arrs = dict(q=q, k=k, v=v, p=np.array([scale, int(causal),
                                           -1 if qoff is None else qoff]),
                y=y)
    if mask is not None:
        arrs["mask"] = mask
    w.case(name, **arrs)


sdpa_case("sdpa_mha", 1, 2, 2, 4, 6, 8, 8, 0.35)
sdpa_case("sdpa_gqa2_dv", 2, 4, 2, 3, 9, 8, 5, 0.5)
sdpa_case("sdpa_gqa8_decode", 1, 8, 1, 1, 20, 16, 16, 0.25)
sdpa_case("sdpa_causal", 1, 4, 2, 3, 7, 8, 8, 0.4, causal=True)
sdpa_case("sdpa_causal_square", 2, 2, 1, 5, 5, 4, 6, 0.5, causal=True)
sdpa_case("sdpa_causal_qoff", 1, 4, 2, 3, 7, 8, 8, 0.4, causal=True, qoff=2)
bm = rng.uniform(0, 1, (3, 10)) > 0.4
bm[1, :] = False  # a row with every key hidden: uniform average (MLX)
sdpa_case("sdpa_bool", 1, 4, 2, 3, 10, 8, 8, 0.3, mask=bm)
am = np.where(rng.uniform(0, 1, (2, 1, 4, 6)) > 0.3,
              rng.uniform(-1, 0, (2, 1, 4, 6)), -np.inf).astype(np.float32)
am[:, :, :, 0] = 0.5
sdpa_case("sdpa_additive", 2, 2, 1, 4, 6, 8, 3, 0.5, mask=am)
sdpa_case("sdpa_causal_short_kv", 1, 2, 1, 6, 4, 4, 4, 0.5, causal=True)

# -------------------------------------------------- softmax & activations


def softmax64(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax64(x, axis):
    x = x.astype(np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True)))


x = rand(3, 4, 5, lo=-6, hi=6)
for ax in (-1, 0, 1):
    w.case("softmax_ax%d" % (ax + 1), x=x, p=np.array([ax]),
           y=softmax64(x, ax), ly=log_softmax64(x, ax))
x = rand(2, 6, lo=-30, hi=30)
x[0, 2] = -np.inf
x[1, :3] = 88.0
w.case("softmax_extreme", x=x, p=np.array([-1]), y=softmax64(x, -1),
       ly=log_softmax64(x, -1))
x = rand(4, 5)
l2 = x / np.sqrt((x.astype(np.float64) ** 2).sum(1, keepdims=True) + 1e-6)
w.case("l2_ax1", x=x, p=np.array([1, 1e-6]), y=l2)
l2 = x / np.sqrt((x.astype(np.float64) ** 2).sum(0, keepdims=True) + 0.5)
w.case("l2_ax0", x=x, p=np.array([0, 0.5]), y=l2)

x = np.concatenate([rand(40, lo=-8, hi=8),
                    np.array([0, -0.0, 30, -30, 100, -100, 1e-3], np.float32)])
x64 = x.astype(np.float64)
erf = np.vectorize(math.erf)
w.case("act", x=x, silu=x64 / (1 + np.exp(-x64)),
       gelu=0.5 * x64 * (1 + erf(x64 / math.sqrt(2))),
       gelu_tanh=0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) *
                                          (x64 + 0.044715 * x64 ** 3))),
       softplus=np.logaddexp(x64, 0))
# MLX's own activations, to pin the formulas down
import mlx.nn as nn  # noqa: E402
assert np.allclose(np_mx(nn.gelu_approx(mx.array(x))), 0.5 * x64 * (
    1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3))),
    rtol=1e-5, atol=1e-5)
assert np.allclose(np_mx(nn.softplus(mx.array(x))), np.logaddexp(x64, 0),
                   rtol=1e-5, atol=1e-5)

w.close()
