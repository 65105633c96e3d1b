"""Golden data for the linalg family (tests/test_linalg.c).

matmul cases hold a, b, the product `out` (NumPy matmul in float64 of the
inputs as stored, so half-precision inputs are exact) and `bound` =
|a| @ |b|, against which the test scales its tolerance. addmm cases add c
and p = [alpha, beta]. conv1d cases hold x, w, p = [stride, padding,
dilation, groups], `out` from explicit NumPy loops (checked here against
MLX's mx.conv1d in float32 for the layout and the semantics) and `bound`
from the same loops on |x|, |w|. bfloat16 inputs are float32 values
rounded to bfloat16 (stored as float32 with dtype bfloat16). Larger
shapes (thread chunks, BLAS paths) are checked in the test against a
naive product instead, to keep this file small.
Run from the repository root: python3 scripts/golden_linalg.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from golden_common import GoldenWriter  # noqa: E402

rng = np.random.default_rng(20240605)
w = GoldenWriter("tests/golden/linalg.txt", "scripts/golden_linalg.py")


def bf16(a):
    """float32 values rounded to bfloat16 (stored as float32)."""
    a = np.asarray(a, np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def rand(shape, dt, den=64):
    """Multiples of 1/64 in [-1, 1]: exact in every float dtype (bfloat16
    included) and short in the file; sums of their products need more
    bits than float16 has, so a product accumulated in half precision
    would show."""
    v = rng.integers(-den, den + 1, shape) / float(den)
    if dt == "bfloat16":
        return bf16(v)
    return v.astype(dt)


def case_with_label(name, dt, labels, **arrays):
    ov = {k: (dt if isinstance(dt, str) else np.dtype(dt).name)
          for k in labels}
    w.case(name, dtype_override=ov, **arrays)


def mm(name, sa, sb, dt=np.float32):
    a, b = rand(sa, dt), rand(sb, dt)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = np.matmul(a64, b64)
    bound = np.matmul(np.abs(a64), np.abs(b64))
    case_with_label(name, dt, ["a", "b", "out"], a=a64, b=b64,
                    out=np.asarray(out, np.float64),
                    bound=np.asarray(bound, np.float64))


def addmm(name, sc, sa, sb, alpha, beta, dt=np.float32):
    a, b, c = rand(sa, dt), rand(sb, dt), rand(sc, dt)
    a64, b64, c64 = (x.astype(np.float64) for x in (a, b, c))
    ab = np.matmul(a64, b64)
    out = beta * c64 + alpha * ab
    bound = abs(beta) * np.abs(c64) + abs(alpha) * np.matmul(np.abs(a64),
                                                             np.abs(b64))
    case_with_label(name, dt, ["a", "b", "c", "out"], a=a64, b=b64, c=c64,
                    out=np.asarray(out, np.float64),
                    bound=np.asarray(bound + 0 * out, np.float64),
                    p=np.array([alpha, beta], np.float64))


def conv_ref(x, wt, stride, padding, dilation, groups):
    """Explicit loops: out[n, t, o] = sum_{k,i} x[n, t*s + k*d - p,
    g*cig + i] * w[o, k, i]."""
    N, L, cin = x.shape
    cout, K, cig = wt.shape
    cog = cout // groups
    lo = (L + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    out = np.zeros((N, lo, cout))
    for n in range(N):
        for t in range(lo):
            for o in range(cout):
                g = o // cog
                s = 0.0
                for k in range(K):
                    pos = t * stride + k * dilation - padding
                    if 0 <= pos < L:
                        s += np.dot(x[n, pos, g * cig:(g + 1) * cig],
                                    wt[o, k, :])
                out[n, t, o] = s
    return out


def conv(name, sx, sw, stride=1, padding=0, dilation=1, groups=1,
         dt=np.float32, den=64):
    x, wt = rand(sx, dt, den), rand(sw, dt, den)
    x64, w64 = x.astype(np.float64), wt.astype(np.float64)
    out = conv_ref(x64, w64, stride, padding, dilation, groups)
    bound = conv_ref(np.abs(x64), np.abs(w64), stride, padding, dilation,
                     groups)
    if dt == np.float32:  # the layout and semantics agree with MLX
        import mlx.core as mx
        m = np.array(mx.conv1d(mx.array(x), mx.array(wt), stride=stride,
                               padding=padding, dilation=dilation,
                               groups=groups))
        assert m.shape == out.shape, (name, m.shape, out.shape)
        assert np.all(np.abs(m - out) <= 1e-5 * bound + 1e-6), name
    case_with_label(name, dt, ["x", "w", "out"], x=x64, w=w64,
                    out=out, bound=bound,
                    p=np.array([stride, padding, dilation, groups], np.int64))


# ---- matmul ----
mm("mm_2d", (3, 4), (4, 5))
mm("mm_square", (16, 16), (16, 16))
mm("mm_odd", (13, 21), (21, 11))
mm("mm_batch", (4, 3, 5), (4, 5, 2))
mm("mm_batch_bcast", (2, 1, 3, 4), (3, 4, 2))
mm("mm_batch_bcast_b", (5, 6), (2, 3, 6, 4))
mm("mm_1d_2d", (4,), (4, 3))
mm("mm_2d_1d", (3, 4), (4,))
mm("mm_1d_1d", (7,), (7,))
mm("mm_1d_batch", (4,), (2, 4, 3))
mm("mm_batch_1d", (2, 3, 4), (4,))
mm("mm_row", (1, 64), (64, 40))
mm("mm_col", (40, 64), (64, 1))
mm("mm_row_batch", (3, 1, 24), (3, 24, 17))
mm("mm_k1", (6, 1), (1, 5))
for dt in (np.float16, "bfloat16", np.float64):
    tag = dt if isinstance(dt, str) else np.dtype(dt).name
    mm("mm_2d_" + tag, (9, 12), (12, 7), dt)
    mm("mm_batch_" + tag, (2, 1, 5, 6), (3, 6, 4), dt)
    mm("mm_row_" + tag, (1, 40), (40, 24), dt)
    mm("mm_col_" + tag, (24, 40), (40,), dt)

# ---- addmm ----
addmm("addmm_bias", (5,), (3, 4), (4, 5), 2.0, 0.5)
addmm("addmm_full", (3, 5), (3, 4), (4, 5), 1.0, 1.0)
addmm("addmm_col", (3, 1), (3, 4), (4, 5), -1.5, 2.0)
addmm("addmm_batch", (2, 1, 1), (2, 3, 4), (4, 5), 0.5, -1.0)
addmm("addmm_scalar_c", (), (3, 4), (4, 5), 1.0, 3.0)
addmm("addmm_row", (9,), (1, 20), (20, 9), 1.0, 1.0)
addmm("addmm_1d", (5,), (4,), (4, 5), 1.0, 1.0)
addmm("addmm_f16", (6,), (4, 8), (8, 6), 0.5, 2.0, np.float16)
addmm("addmm_bf16", (4, 6), (4, 8), (8, 6), 1.0, 0.25, "bfloat16")
addmm("addmm_f64", (6,), (4, 8), (8, 6), 3.0, -0.5, np.float64)

# ---- conv1d ----
conv("conv_basic", (2, 10, 3), (4, 3, 3))
conv("conv_stride_pad", (2, 11, 3), (5, 3, 3), stride=2, padding=1)
conv("conv_dilation", (1, 12, 2), (3, 3, 2), padding=2, dilation=2)
conv("conv_all", (2, 13, 4), (6, 4, 2), stride=3, padding=2, dilation=2,
     groups=2)
conv("conv_groups", (2, 9, 6), (6, 3, 2), groups=3)
conv("conv_pointwise", (2, 7, 5), (3, 1, 5))
conv("conv_depthwise", (2, 7, 8), (8, 4, 1), groups=8)
conv("conv_depthwise_pad", (2, 5, 8), (8, 4, 1), padding=3, groups=8)
conv("conv_depthwise_decode", (1, 4, 16), (16, 4, 1), groups=16)
conv("conv_depthwise_wide", (1, 4, 1030), (1030, 4, 1), groups=1030, den=4)
conv("conv_depthwise_stride", (2, 9, 5), (5, 3, 1), stride=2, dilation=2,
     padding=1, groups=5)
conv("conv_multiplier", (2, 6, 3), (6, 2, 1), groups=3)
conv("conv_k_equals_l", (3, 4, 2), (2, 4, 2))
for dt in (np.float16, "bfloat16", np.float64):
    tag = dt if isinstance(dt, str) else np.dtype(dt).name
    conv("conv_" + tag, (2, 8, 4), (6, 3, 2), stride=2, padding=1, groups=2,
         dt=dt)
    conv("conv_dw_" + tag, (1, 5, 24), (24, 4, 1), groups=24, dt=dt)

w.close()
