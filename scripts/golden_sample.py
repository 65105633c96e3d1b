"""Golden data for the random family and the sampler (tests/test_random.c,
tests/test_sample.c).

Random: a NumPy reimplementation of MLX's Threefry-2x32 stream (the
RandomBits layout: counter pairs (j, h + odd + j)) gives the bits; the
script asserts that it equals MLX (mx.random.split exposes raw bits of even
sizes, mx.random.uniform every size) and records MLX's uniform values for
float32, float16 and bfloat16.

Sampler: a NumPy reference of the filters (in float64, on the float32
tempered logits) gives the probabilities of each case; the cases keep a
margin from the top-p and min-p boundaries so float32 rounding cannot flip
a token. Single-filter cases at temperature 1 are also checked against
mlx-lm's own apply_top_k / apply_top_p / apply_min_p and repetition penalty
when mlx_lm is installed. Draw cases record mx.random.categorical's tokens
for a key (and for mx.random.seed's key sequence).

Run from the repository root: python3 scripts/golden_sample.py
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from golden_common import GoldenWriter  # noqa: E402

import mlx.core as mx  # noqa: E402

try:
    from mlx_lm import sample_utils as su  # noqa: E402
except ImportError:  # the NumPy reference alone then
    su = None

rng = np.random.default_rng(20240607)
w = GoldenWriter("tests/golden/sample.txt", "scripts/golden_sample.py")
M32 = np.uint64(0xFFFFFFFF)

# ------------------------------------------------------------------ random


def rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & M32


def threefry(k0, k1, c0, c1):
    """Threefry-2x32, 20 rounds, vectorized over the counters (uint64
    arrays holding 32-bit values)."""
    ks = [np.uint64(k0), np.uint64(k1), np.uint64(k0 ^ k1 ^ 0x1BD11BDA)]
    x0 = (c0 + ks[0]) & M32
    x1 = (c1 + ks[1]) & M32
    rot = [(13, 15, 26, 6), (17, 29, 16, 24)]
    for i in range(5):
        for r in rot[i % 2]:
            x0 = (x0 + x1) & M32
            x1 = rotl(x1, r) ^ x0
        x0 = (x0 + ks[(i + 1) % 3]) & M32
        x1 = (x1 + ks[(i + 2) % 3] + np.uint64(i + 1)) & M32
    return x0, x1


def bits(key, n):
    """MLX's RandomBits layout for n uint32 words."""
    h, odd = n // 2, n % 2
    out = np.zeros(n, np.uint64)
    j = np.arange(h, dtype=np.uint64)
    a, b = threefry(key[0], key[1], j, j + np.uint64(h + odd))
    out[:h] = a
    out[h + odd:] = b
    if odd:
        out[h] = threefry(key[0], key[1], np.array([h], np.uint64),
                          np.array([0], np.uint64))[0][0]
    return out.astype(np.uint32)


def uniform_f32(b):
    u = b.astype(np.float32) * np.float32(2.0**-32)
    return np.minimum(u, np.nextafter(np.float32(1), np.float32(0)))


def mkey(k):
    return mx.array(list(k), dtype=mx.uint32)


KEYS = [(0, 0), (1, 2), (0xDEADBEEF, 0x12345678), (0xFFFFFFFF, 7)]
SHAPES = [(), (0,), (1,), (2,), (3,), (5,), (2, 3), (7,), (4, 5, 3), (1001,)]

for ki, key in enumerate(KEYS):
    for shape in SHAPES:
        if len(shape) == 1 and shape[0] > 100 and ki != 2:
            continue  # one long case keeps the file small
        n = int(np.prod(shape))
        b = bits(key, n)
        if n % 2 == 0 and n > 0:
            raw = np.array(mx.random.split(mkey(key), num=n // 2)).reshape(-1)
            assert (raw == b).all(), ("bits differ from MLX", key, shape)
        uf = np.array(mx.random.uniform(shape=shape, key=mkey(key)))
        assert (uf.reshape(-1) == uniform_f32(b)).all(), ("uniform", key)
        uh = np.array(mx.random.uniform(shape=shape, dtype=mx.float16,
                                        key=mkey(key)))
        ub = np.array(mx.random.uniform(shape=shape, dtype=mx.bfloat16,
                                        key=mkey(key)).astype(mx.float32))
        assert (ub < 1).all() and (uh < 1).all()
        name = "rand_k%d_%s" % (ki, "x".join(str(d) for d in shape) or "0d")
        w.case(name, dtype_override={"bf16": "bfloat16"},
               key=np.array(key, np.uint32), bits=b.reshape(shape),
               f32=uf, f16=uh, bf16=ub)

# ---------------------------------------------------------------- sampler

NEG = -np.inf


def softmax(x):
    x = np.asarray(x, np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def ref_filtered(logits, temp, top_k, top_p, min_p, pen, recent):
    """float64 logits after the filters (-inf removed), and whether every
    boundary is clear of rounding (a margin of 1e-4)."""
    x = logits.astype(np.float32).copy()
    ok = True
    if pen not in (0, 1) and recent is not None:
        rb = np.broadcast_to(recent, (x.shape[0], recent.shape[1]))
        for b in range(x.shape[0]):
            for t in set(int(v) for v in rb[b] if v >= 0):
                v = x[b, t]
                x[b, t] = v / np.float32(pen) if v > 0 else v * np.float32(pen)
    if temp == 0:
        return x.astype(np.float64), ok
    x = (x * np.float32(1.0 / temp)).astype(np.float64)
    V = x.shape[1]
    for b in range(x.shape[0]):
        row = x[b]
        if top_k > 0 and top_k < V:
            kth = np.sort(row)[::-1][top_k - 1]
            row[row < kth] = NEG
        if 0 < top_p < 1:
            p = softmax(row)
            order = np.argsort(-p, kind="stable")
            before = np.concatenate([[0], np.cumsum(p[order])[:-1]])
            keep = before < top_p
            live = p[order] > 0
            ok &= bool(np.all(np.abs(before[live] - top_p) > 1e-4))
            thr = row[order][keep].min()
            row[row < thr] = NEG
        if min_p > 0:
            p = softmax(row)
            ratio = p / p.max()
            live = p > 0
            ok &= bool(np.all(np.abs(ratio[live] - min_p) > 1e-4))
            row[ratio < min_p] = NEG
    return x, ok


def ref_probs(logits, temp, top_k, top_p, min_p, pen, recent):
    x, ok = ref_filtered(logits, temp, top_k, top_p, min_p, pen, recent)
    if temp == 0:
        p = np.zeros_like(x)
        p[np.arange(x.shape[0]), np.argmax(x, axis=-1)] = 1
        return p, ok
    return softmax(x), ok


def mlx_lm_probs(logits, top_k, top_p, min_p, pen, recent):
    """mlx-lm's filters on the logprobs (temperature 1): one filter, or the
    repetition penalty, at a time (their order then does not matter)."""
    lp = mx.array(logits.astype(np.float32))
    if pen not in (0, 1):
        proc = su.make_repetition_penalty(pen, recent.shape[1])
        toks = [int(t) for t in recent[0] if t >= 0]
        lp = proc(mx.array(toks), lp)
    lp = lp - mx.logsumexp(lp, axis=-1, keepdims=True)
    if top_k > 0:
        lp = su.apply_top_k(lp, top_k)
    if 0 < top_p < 1:
        lp = su.apply_top_p(lp, top_p)
    if min_p > 0:
        lp = su.apply_min_p(lp, min_p)
    return np.array(mx.softmax(lp, axis=-1))


def sample_case(name, logits, temp=1.0, top_k=0, top_p=0.0, min_p=0.0,
                pen=0.0, recent=None, lm_check=False, dt=np.float32,
                ov=None):
    for _ in range(100):
        lg = logits().astype(dt) if callable(logits) else logits.astype(dt)
        probs, ok = ref_probs(lg, temp, top_k, top_p, min_p, pen, recent)
        if ok:
            break
        assert callable(logits), name + ": boundary too close"
    else:
        raise AssertionError(name + ": no clear draw")
    if lm_check and su is not None:
        want = mlx_lm_probs(lg, top_k, top_p, min_p, pen, recent)
        assert np.allclose(want, probs, atol=1e-6), (name, "vs mlx-lm")
    params = np.array([temp, top_k, top_p, min_p, pen], np.float64)
    arrays = dict(logits=lg, params=params, probs=probs.astype(np.float32))
    if recent is not None:
        arrays["recent"] = recent.astype(np.int32)
    w.case("sample_" + name, dtype_override=ov, **arrays)


def normal(B, V, scale=2.0):
    return lambda: (rng.standard_normal((B, V)) * scale).astype(np.float32)


sample_case("temp", normal(3, 17), temp=0.7)
sample_case("temp_hot", normal(2, 9), temp=2.5)
sample_case("topk", normal(3, 20), top_k=5, lm_check=True)
sample_case("topk_all", normal(2, 6), top_k=9)
sample_case("topk_1", normal(2, 11), top_k=1, temp=0.9)
sample_case("topp", normal(3, 40), top_p=0.9, lm_check=True)
sample_case("topp_small", normal(2, 30, 3.0), top_p=0.3, lm_check=True)
sample_case("minp", normal(3, 25), min_p=0.1, lm_check=True)
sample_case("topk_topp", normal(2, 50), top_k=10, top_p=0.8)
sample_case("topk_topp_minp", normal(3, 64), temp=0.6, top_k=12, top_p=0.85,
            min_p=0.05)
sample_case("topp_minp_hot", normal(2, 33), temp=1.7, top_p=0.7, min_p=0.2)
# Top-k ties: both values equal to the k-th largest stay.
sample_case("topk_ties", np.array([[1, 3, 2, 3, 2, 0, 2]], np.float32),
            top_k=3)
rec = np.array([[3, 3, -1, 7, 0, -1, 7, 12]], np.int32)
sample_case("penalty", normal(1, 15), pen=1.3, recent=rec, lm_check=True)
rec2 = np.array([[1, -1, 4, 1], [-1, -1, -1, -1], [0, 9, 9, 2]], np.int32)
sample_case("penalty_batch", normal(3, 10), pen=1.8, recent=rec2, temp=0.8,
            top_k=6)
sample_case("penalty_bcast", normal(2, 8), pen=1.5,
            recent=np.array([[5, 2, -1]], np.int32))
sample_case("penalty_greedy",
            np.array([[0.5, 2.0, 1.9, -1.0], [3.0, -0.5, 2.8, 2.9]],
                     np.float32), temp=0.0, pen=1.2,
            recent=np.array([[1, -1], [0, 0]], np.int32))
sample_case("greedy_ties",
            np.array([[1, 5, 5, 2], [-1, -1, -1, -1], [0, 0, 7, 7]],
                     np.float32), temp=0.0)
sample_case("f16", normal(2, 12), temp=0.8, top_k=6, dt=np.float16)
# bfloat16 logits: float32 values that bfloat16 holds exactly.
bfl = np.round(rng.standard_normal((2, 12)) * 8) / 4
sample_case("bf16", bfl.astype(np.float32), top_p=0.75, ov={"logits":
                                                             "bfloat16"})

# Draws: mx.random.categorical(logits * (1 / temp), key) for a key, and for
# the key sequence of mx.random.seed(seed).
for i, (B, V, temp) in enumerate([(4, 10, 1.0), (3, 100, 0.7), (2, 1000, 1.3),
                                  (5, 7, 0.25)]):
    lg = (rng.standard_normal((B, V)) * 2).astype(np.float32)
    key = (int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)))
    tok = mx.random.categorical(mx.array(lg) * (1 / temp), key=mkey(key))
    w.case("draw_%d" % i, logits=lg, key=np.array(key, np.uint32),
           temp=np.array([temp]), tokens=np.array(tok).astype(np.int32))

seed = 1234567
lg = (rng.standard_normal((2, 50)) * 1.5).astype(np.float32)
mx.random.seed(seed)
toks = [np.array(mx.random.categorical(mx.array(lg))) for _ in range(4)]
w.case("draw_seeded", logits=lg, seed=np.array([seed], np.int64),
       tokens=np.stack(toks).astype(np.int32))
w.close()
