#!/usr/bin/env python3
"""Golden data for the elementwise ops: tests/golden/elementwise.txt.

Each case is named OP.VARIANT and holds the inputs (x; x, y; or c, x, y
for where) and the expected `out`, computed by NumPy (float16/32/64 and
integers) or by MLX (bfloat16 binary ops, and bool arithmetic, whose
semantics amorph takes from MLX). Unary bfloat16 references are NumPy's
float32 results rounded to bfloat16. Integer inputs stay exactly
representable in float64 (the C test builds inputs through float64). Where NumPy has no such op (sigmoid, erf) or raises
(integer power with a negative exponent), the reference is written out
here in float64 / exact Python integers.

Run from the repository root:  python3 scripts/golden_elementwise.py
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import GoldenWriter  # noqa: E402

try:
    import mlx.core as mx
except ImportError:  # bf16 and bool-arithmetic cases need MLX
    mx = None

RNG = np.random.default_rng(20240611)
F16, F32, F64 = np.float16, np.float32, np.float64
NAN, INF = float("nan"), float("inf")

# ---------------------------------------------------------------- references

UNARY_KEEP = ["neg", "abs", "sign", "square", "floor", "ceil", "round"]
UNARY_FLOAT = ["exp", "expm1", "log", "log1p", "sqrt", "rsqrt", "sin", "cos",
               "tanh", "sigmoid", "erf"]
BINARY_KEEP = ["add", "sub", "mul", "pow", "maximum", "minimum", "remainder"]
BINARY_BOOL = ["equal", "not_equal", "less", "less_equal", "greater",
               "greater_equal", "logical_and", "logical_or"]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_unary(op, x):
    """NumPy reference in x's dtype (float16 computes in float32 inside
    NumPy too; ops NumPy lacks go through float64 and round once)."""
    if op in ("sigmoid", "erf"):
        x64 = x.astype(F64)
        with np.errstate(over="ignore"):
            r = 1.0 / (1.0 + np.exp(-x64)) if op == "sigmoid" else _erf(x64)
        return r.astype(x.dtype)
    if op == "rsqrt":
        with np.errstate(divide="ignore", invalid="ignore"):
            return (x.dtype.type(1) / np.sqrt(x)).astype(x.dtype)
    if op == "logical_not":
        return np.logical_not(x)
    f = {"neg": np.negative, "square": np.square, "round": np.rint}.get(op)
    f = f or getattr(np, op)
    with np.errstate(all="ignore"):
        r = f(x)
    return r.astype(x.dtype)


def int_pow(b, e, dt):
    """Exact integer power wrapped to dt; negative exponents give 0 except
    for bases 1 and -1 (amorph's documented rule; NumPy raises)."""
    bits = np.iinfo(dt).bits
    out = []
    for bb, ee in zip(b.reshape(-1).tolist(), e.reshape(-1).tolist()):
        if ee < 0:
            v = 1 if bb == 1 else (-1 if ee % 2 else 1) if bb == -1 else 0
        else:
            v = pow(int(bb), int(ee), 1 << bits)
        v &= (1 << bits) - 1
        if np.iinfo(dt).min < 0 and v >= 1 << (bits - 1):
            v -= 1 << bits
        out.append(v)
    return np.array(out, dtype=dt).reshape(np.broadcast_shapes(b.shape, e.shape))


def np_binary(op, x, y):
    """NumPy reference; x and y already share the promoted dtype."""
    x, y = np.broadcast_arrays(x, y)
    if op == "pow" and x.dtype.kind in "iu":
        return int_pow(x, y, x.dtype)
    if op == "div":
        return np.true_divide(x, y).astype(x.dtype)
    f = {"add": np.add, "sub": np.subtract, "mul": np.multiply,
         "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
         "remainder": np.remainder}.get(op) or getattr(np, op)
    with np.errstate(all="ignore"):
        r = f(x, y)
    return r if op in BINARY_BOOL else r.astype(x.dtype)


MX_NAMES = {"neg": "negative", "sub": "subtract", "mul": "multiply",
            "div": "divide", "pow": "power"}


def mx_op(op, *args):
    return getattr(mx, MX_NAMES.get(op, op))(*args)


def to_bf16(a):
    """float32 values rounded to bfloat16 (as float32, and the MLX array)."""
    m = mx.array(np.asarray(a, dtype=F32)).astype(mx.bfloat16)
    return np.array(m.astype(mx.float32)), m


def from_mx(m):
    if m.dtype == mx.bfloat16:
        return np.array(m.astype(mx.float32))
    return np.array(m)

# -------------------------------------------------------------- input values

SPECIAL = [NAN, INF, -INF, 0.0, -0.0, 1e-40, -1e-40, 1e30, -1e30, 0.5, -0.5,
           1.5, 2.5, -2.5, 1.0, -1.0, 3.1415927, 1e-7, 100.0, -100.0]
DOMAIN = {
    "exp": [88.7, 89.0, -87.0, -100.0, -104.0, -110.0, 10.0, -10.0, 1e-3],
    "expm1": [1e-6, -1e-6, 1e-3, 20.0, -20.0, 88.0],
    "log": [1.0000001, 0.9999999, 2.0, 1e-38, 3e-45, 1e38, 7.0],
    "log1p": [1e-6, -0.5, -0.999, -1.0, -2.0, 1e10],
    "sqrt": [2.0, 1e-38, 4e-45, 1e38],
    "rsqrt": [2.0, 1e-38, 1e38, 0.25],
    "tanh": [1e-5, 0.1, 0.6, 0.624, 0.626, 0.7, 5.0, 9.5, 20.0, -0.3, -3.0],
    "sigmoid": [20.0, -20.0, 40.0, -40.0, 88.0, -88.0, 0.1],
    "erf": [3.0, -3.0, 0.01, 1e-5, 5.0],
    "floor": [0.49999997, 8388607.5, -8388607.5, 1e20],
    "ceil": [0.49999997, 8388607.5, -8388607.5, 1e20],
    "round": [3.5, -3.5, 0.49999997, 8388607.5, -8388608.5, 4.5],
}
TRIG_SAFE = [NAN, INF, -INF, 0.0, -0.0, 0.5, -0.5, 1.5, 3.1415927, -3.1415927,
             1.5707964, 10.0, -10.0, 100.0, 1e-7, 1e-40]


def float_values(op, n_random=16, scale=3.0):
    base = TRIG_SAFE if op in ("sin", "cos") else SPECIAL + DOMAIN.get(op, [])
    rnd = RNG.standard_normal(n_random) * scale
    if op in ("log", "sqrt", "rsqrt"):
        rnd = np.abs(rnd) * 10
    vals = np.array(base + rnd.tolist(), dtype=F64)
    pad = (-len(vals)) % 4
    return np.concatenate([vals, RNG.standard_normal(pad)]).reshape(-1, 4)


F16_SPECIAL = [NAN, INF, -INF, 0.0, -0.0, 6e-8, 65504.0, -1e4, 0.5, 1.5, 2.5,
               -2.5, 1.0, 3.14]


def f16_values(op):
    base = [v for v in F16_SPECIAL]
    if op in ("sin", "cos"):
        base = [v for v in base if abs(v) < 100 or not math.isfinite(v)]
    rnd = RNG.standard_normal(24 - len(base)) * 2
    return np.array(base + rnd.tolist(), dtype=F16).reshape(4, 6)


def int_limits(dt):
    """The extreme values used as edges: int64's max is replaced by 2**62
    because inputs travel through float64 in the test and 2**63 - 1 does
    not (the C test checks int64 wrap-around itself)."""
    info = np.iinfo(dt)
    return info.min, (2**62 if info.max == 2**63 - 1 else info.max)


def int_values(dt, lo=-50, hi=50, n=16):
    mn, mx_ = int_limits(dt)
    edges = [mn, mx_, mn + 1, mx_ - 1, 0, 1, -1, 2, -2]
    edges = [e for e in edges if mn <= e <= mx_ and float(e) == e]
    r = RNG.integers(max(lo, mn), min(hi, mx_) + 1, n)
    return np.array(edges + r.tolist(), dtype=dt)


def binary_pairs(op):
    """(x, y) float64 pairs: special pairs for op, then random ones."""
    special = {
        "add": [(INF, -INF), (INF, INF), (NAN, 1), (1, NAN), (-0.0, 0.0),
                (-0.0, -0.0), (1e38, 1e38), (1e-40, 1e-40)],
        "sub": [(INF, INF), (NAN, 1), (-0.0, 0.0), (0.0, 0.0), (-1e38, 1e38)],
        "mul": [(0.0, INF), (-0.0, 1), (NAN, 0), (1e30, 1e30), (1e-30, 1e-30),
                (-2, INF)],
        "div": [(1, 0.0), (-1, 0.0), (0.0, 0.0), (1, -0.0), (INF, INF),
                (1e-40, 1e30), (7, 2), (NAN, 1)],
        "pow": [(0, 0), (-8, 1 / 3), (2, -1), (-2, 3), (NAN, 0), (1, NAN),
                (INF, -1), (0.0, -1), (-0.0, -1), (2, 128), (2, -150),
                (-INF, 0.5), (0.5, INF)],
        "maximum": [(NAN, 1), (1, NAN), (-0.0, 0.0), (0.0, -0.0),
                    (INF, -INF), (NAN, NAN), (-INF, NAN)],
        "remainder": [(5, 3), (-5, 3), (5, -3), (-5, -3), (5.5, 2), (-0.0, 3),
                      (0.0, -3), (5, 0), (INF, 2), (-5, INF), (5, -INF),
                      (1e30, 3), (NAN, 2), (2, NAN)],
        "equal": [(NAN, NAN), (NAN, 1), (-0.0, 0.0), (INF, INF), (1, 2),
                  (2, 1), (1, 1), (-INF, INF)],
        "logical_and": [(0, NAN), (-0.0, 1), (NAN, NAN), (0, 0), (2, 0),
                        (INF, -INF)],
    }
    special["minimum"] = special["maximum"]
    for c in BINARY_BOOL[1:6]:
        special[c] = special["equal"]
    special["logical_or"] = special["logical_and"]
    sp = special.get(op, [])
    n = 30 - len(sp)
    if op == "pow":
        xr = np.abs(RNG.standard_normal(n)) * 3
        yr = RNG.standard_normal(n) * 3
    else:
        xr = RNG.standard_normal(n) * 4
        yr = RNG.standard_normal(n) * 4
        if op in BINARY_BOOL:
            yr[: n // 3] = xr[: n // 3]  # some equal pairs
    x = np.array([p[0] for p in sp] + xr.tolist(), dtype=F64).reshape(6, 5)
    y = np.array([p[1] for p in sp] + yr.tolist(), dtype=F64).reshape(6, 5)
    return x, y


def int_pairs(op, dt, shape=(4, 6)):
    mn, mx_ = int_limits(dt)
    n = int(np.prod(shape))
    x = RNG.integers(max(-20, mn), min(20, mx_) + 1, n)
    y = RNG.integers(max(-6, mn), min(6, mx_) + 1, n)
    edges = [(mx_, 1), (mn, -1), (mn, 1), (mx_, mx_), (7, 0), (-7, 0),
             (mn, mn), (0, 0), (-7, 3), (7, -3)]
    if op == "pow":
        x = RNG.integers(max(-3, mn), 4, n)
        y = RNG.integers(max(-2, mn), 12, n)
        edges = [(2, 31), (2, 33), (3, 40), (-1, -3), (-1, -2), (1, -5),
                 (2, -1), (0, 0), (0, -1), (-2, 63)]
    edges = [(a, b) for a, b in edges if mn <= a <= mx_ and mn <= b <= mx_
             and float(a) == a and float(b) == b]
    for i, (a, b) in enumerate(edges[:n]):
        x[i], y[i] = a, b
    return (np.array(x, dtype=dt).reshape(shape),
            np.array(y, dtype=dt).reshape(shape))

# -------------------------------------------------------------------- cases


def bf16_unary(w, op, vals):
    """bfloat16 inputs; the reference is NumPy's float32 result rounded to
    bfloat16 by MLX (MLX's own bf16 exp/erf are approximations that, e.g.,
    overflow exp(88.5) and flush erf(1e-7) to 0)."""
    if mx is None:
        return
    xf, _ = to_bf16(vals)
    ref, _ = to_bf16(np_unary(op, xf))
    w.case(f"{op}.bf16", {"x": "bfloat16", "out": "bfloat16"}, x=xf, out=ref)


def gen_unary(w):
    for op in UNARY_KEEP + UNARY_FLOAT:
        v = float_values(op)
        w.case(f"{op}.f32", x=v.astype(F32), out=np_unary(op, v.astype(F32)))
        w.case(f"{op}.f64", x=v, out=np_unary(op, v))
        h = f16_values(op)
        w.case(f"{op}.f16", x=h, out=np_unary(op, h))
        bv = v[:, :]
        if op == "sign":  # MLX gives sign(nan) = 0; amorph follows NumPy
            bv = np.where(np.isnan(bv), 1.0, bv)
        bf16_unary(w, op, bv.astype(F32))
        # 0-d and empty
        s = np.array(0.75, dtype=F32)
        w.case(f"{op}.f32_0d", x=s, out=np_unary(op, s))
        e = np.zeros((0, 3), dtype=F32)
        w.case(f"{op}.f32_empty", x=e, out=np_unary(op, e))
        # integers and bool
        for dt in (np.int32, np.int8, np.uint8, np.uint32, np.int64):
            xi = np.resize(int_values(dt), (5, 5))
            if op in UNARY_FLOAT:  # promoted to float32
                if dt not in (np.int32, np.uint8):
                    continue
                w.case(f"{op}.{np.dtype(dt).name}", x=xi,
                       out=np_unary(op, xi.astype(F32)))
            else:
                with np.errstate(all="ignore"):
                    out = np_unary(op, xi) if op != "round" else xi.copy()
                w.case(f"{op}.{np.dtype(dt).name}", x=xi, out=out.astype(dt))
        b = np.array([[True, False, True], [False, False, True]])
        if op in UNARY_FLOAT:
            w.case(f"{op}.bool", x=b, out=np_unary(op, b.astype(F32)))
        elif op != "neg":  # neg rejects bool (as MLX)
            w.case(f"{op}.bool", x=b, out=b)  # all identities on bool
    # logical_not
    v = float_values("logical_not").astype(F32)
    w.case("logical_not.f32", x=v, out=np.logical_not(v))
    h = f16_values("x")
    w.case("logical_not.f16", x=h, out=np.logical_not(h))
    xi = np.resize(int_values(np.int32), (4, 4))
    w.case("logical_not.int32", x=xi, out=np.logical_not(xi))
    b = np.array([True, False, False])
    w.case("logical_not.bool", x=b, out=np.logical_not(b))
    w.case("logical_not.f32_empty", x=np.zeros((2, 0), F32),
           out=np.zeros((2, 0), bool))


def gen_binary(w):
    for op in BINARY_KEEP + ["div"] + BINARY_BOOL:
        x, y = binary_pairs(op)
        for name, dt in (("f32", F32), ("f64", F64)):
            xs, ys = x.astype(dt), y.astype(dt)
            w.case(f"{op}.{name}", x=xs, y=ys, out=np_binary(op, xs, ys))
        # broadcasting, 0-d, empty (float32)
        a = (RNG.standard_normal((3, 1, 4)) * 3).astype(F32)
        b = (RNG.standard_normal((5, 1)) * 3).astype(F32)
        if op == "pow":
            a = np.abs(a)
        w.case(f"{op}.f32_bcast", x=a, y=b, out=np_binary(op, a, b))
        s = np.array(1.5, dtype=F32)
        c = (RNG.standard_normal(6) * 3).astype(F32)
        w.case(f"{op}.f32_0d_left", x=s, y=c, out=np_binary(op, s, c))
        w.case(f"{op}.f32_0d_right", x=c, y=s, out=np_binary(op, c, s))
        w.case(f"{op}.f32_0d_both", x=s, y=np.array(-2.0, F32),
               out=np_binary(op, s, np.array(-2.0, F32)))
        e = np.zeros((0, 3), F32)
        w.case(f"{op}.f32_empty", x=e, y=c[:3],
               out=np_binary(op, e, c[:3]))
        # float16 (NumPy computes half in float32 and rounds once)
        h1 = (RNG.standard_normal((2, 3)) * 3).astype(F16)
        h2 = (RNG.standard_normal((3,)) * 3).astype(F16)
        if op == "pow":
            h1 = np.abs(h1)
        w.case(f"{op}.f16", x=h1, y=h2, out=np_binary(op, h1, h2))
        hx, hy = x.astype(F16), y.astype(F16)
        w.case(f"{op}.f16_special", x=hx, y=hy, out=np_binary(op, hx, hy))
        # bfloat16 through MLX
        if mx is not None:
            bx, bxm = to_bf16(x)
            by, bym = to_bf16(y[0])
            r = mx_op(op, bxm, bym)
            ov = {"x": "bfloat16", "y": "bfloat16"}
            if op not in BINARY_BOOL:
                ov["out"] = "bfloat16"
            w.case(f"{op}.bf16", ov, x=bx, y=by, out=from_mx(r))
        # integers (div promotes them to float32)
        for dt in (np.int32, np.int8, np.uint8, np.uint32, np.int64):
            xi, yi = int_pairs(op, dt)
            if op == "div":
                out = np_binary(op, xi.astype(F32), yi.astype(F32))
            else:
                out = np_binary(op, xi, yi)
            w.case(f"{op}.{np.dtype(dt).name}", x=xi, y=yi, out=out)
        xi, yi = int_pairs(op, np.int32, (3, 4))
        w.case(f"{op}.int32_bcast", x=xi[:, :1], y=yi[0],
               out=np_binary(op, xi[:, :1], yi[0]) if op != "div" else
               np_binary(op, xi[:, :1].astype(F32), yi[0].astype(F32)))
        # mixed dtypes: the op sees both cast to the promoted dtype
        mixed = [(np.int8, np.uint8, np.int32), (np.uint32, np.int32, np.int64),
                 (np.int32, F16, F16), (np.bool_, F32, F32),
                 (np.bool_, np.int8, np.int8), (F32, F64, F64)]
        for ta, tb, tr in mixed:
            if ta == np.bool_:
                xa = np.array([[True, False, True, False]] * 3)
            elif np.dtype(ta).kind in "iu":
                xa, _ = int_pairs(op, ta, (3, 4))
                if op == "pow":
                    xa = np.abs(xa).astype(ta)
            else:
                xa = (RNG.standard_normal((3, 4)) * 3).astype(ta)
            if np.dtype(tb).kind in "iu":
                _, yb = int_pairs(op, tb, (4,))
            else:
                yb = (RNG.standard_normal(4) * 3).astype(tb)
            rt = F32 if op == "div" and np.dtype(tr).kind in "iu" else tr
            out = np_binary(op, xa.astype(rt), yb.astype(rt))
            w.case(f"{op}.mixed_{np.dtype(ta).name}_{np.dtype(tb).name}",
                   x=xa, y=yb, out=out)
        # bool with bool: comparisons from NumPy; arithmetic from MLX
        ba = np.array([True, True, False, False])
        bb = np.array([True, False, True, False])
        if op in BINARY_BOOL:
            w.case(f"{op}.bool", x=ba, y=bb, out=np_binary(op, ba, bb))
        elif op == "div":
            w.case(f"{op}.bool", x=ba, y=bb,
                   out=np_binary(op, ba.astype(F32), bb.astype(F32)))
        elif mx is not None and op != "remainder":
            r = np.array(mx_op(op, mx.array(ba), mx.array(bb)))
            w.case(f"{op}.bool", x=ba, y=bb, out=r)


def gen_where(w):
    c = RNG.standard_normal((3, 4)) > 0
    x = RNG.standard_normal((3, 4)).astype(F32)
    y = RNG.standard_normal(4).astype(F32)
    w.case("where.bool_f32_bcast", c=c, x=x, y=y, out=np.where(c, x, y))
    cf = np.array([[NAN, -0.0, 0.0], [1.0, -2.0, INF]], dtype=F32)
    xi = np.array([[1], [2]], dtype=np.int32)
    yi = np.array(-7, dtype=np.int32)
    w.case("where.f32cond_int32", c=cf, x=xi, y=yi, out=np.where(cf, xi, yi))
    ci = np.array([0, 3, -1, 0], dtype=np.int8)
    x8 = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.int8)
    yh = np.array([0.5], dtype=F16)
    w.case("where.int8cond_mixed", c=ci, x=x8, y=yh,
           out=np.where(ci, x8.astype(F16), yh))
    ch = np.array([NAN, -0.0, 0.0, 1.0, 6e-8], dtype=F16)
    xd = np.arange(5, dtype=F64)
    yd = -np.arange(5, dtype=F64)
    w.case("where.f16cond_f64", c=ch, x=xd, y=yd, out=np.where(ch, xd, yd))
    c3 = RNG.standard_normal((2, 1, 3)) > 0
    x3 = RNG.integers(0, 100, (4, 1)).astype(np.uint8)
    y3 = RNG.integers(0, 100, (1, 3)).astype(np.uint8)
    w.case("where.bcast3", c=c3, x=x3, y=y3, out=np.where(c3, x3, y3))
    cb = np.array([True, False])
    xb = np.array([[True, True], [False, False]])
    yb = np.array([False, True])
    w.case("where.bool_values", c=cb, x=xb, y=yb, out=np.where(cb, xb, yb))
    c0 = np.array(True)
    w.case("where.0d", c=c0, x=np.array(2.0, F32), y=np.array(3.0, F32),
           out=np.array(2.0, F32))
    ce = np.zeros((0, 2), bool)
    w.case("where.empty", c=ce, x=np.ones(2, F32), y=np.zeros(1, F32),
           out=np.zeros((0, 2), F32))
    c64 = np.array([1, 0, 5], dtype=np.int64)
    x64 = np.array([2**62, 3, -(2**40)], dtype=np.int64)
    y64 = np.array([-1, 9, 11], dtype=np.int64)
    w.case("where.int64", c=c64, x=x64, y=y64, out=np.where(c64, x64, y64))
    if mx is not None:
        cu = np.array([[1, 0, 2]], dtype=np.uint8)
        bx, bxm = to_bf16(RNG.standard_normal((2, 3)))
        by, bym = to_bf16(RNG.standard_normal(3))
        r = mx.where(mx.array(cu), bxm, bym)
        w.case("where.bf16", {"x": "bfloat16", "y": "bfloat16",
                              "out": "bfloat16"},
               c=cu, x=bx, y=by, out=from_mx(r))


ASTYPE_DTYPES = ["bool", "uint8", "int8", "uint32", "int32", "int64",
                 "float16", "bfloat16", "float32", "float64"]


def astype_values(src, dst):
    """Values of dtype src (as float64, or ints) that convert to dst the
    same way in NumPy/MLX and amorph: float to integer only in range (C
    leaves the rest undefined; amorph saturates, see am_store_f64)."""
    fl = ("float16", "bfloat16", "float32", "float64")
    if src == "bool":
        return np.array([[True, False, True], [False, False, True]])
    if src in fl:
        if dst in fl or dst == "bool":
            v = [0.0, -0.0, 1.5, -2.5, 2.5, 100.7, -100.7, 65504.0, 1e5,
                 NAN, INF, -INF, 1e-8, 0.1, 3.0e38, 1e-40]
        elif dst.startswith("u"):
            v = [0.0, 1.5, 2.5, 100.7, 7.99, 0.2, 127.0, 3.0]
        else:
            v = [0.0, -0.0, 1.5, -2.5, 2.5, 100.7, -100.7, 7.99, -0.2, 127.0]
        v = np.array(v + (RNG.standard_normal(8 - len(v) % 4) * 20).tolist())
        if dst.startswith("u"):
            v = np.abs(v)
        if dst not in fl and dst != "bool":
            v = np.clip(v, -120, 120)
        return v.reshape(-1, 4)
    info = np.iinfo(src)
    lo, hi = int_limits(np.dtype(src))
    v = int_values(np.dtype(src), lo=max(-300, info.min), hi=min(300, hi))
    return np.resize(v, (5, 5))


def gen_astype(w):
    for src in ASTYPE_DTYPES:
        for dst in ASTYPE_DTYPES:
            v = astype_values(src, dst)
            ov = {}
            if src == "bfloat16" or dst == "bfloat16":
                if mx is None:
                    continue
                xm = mx.array(np.asarray(v, F64).astype(F32))
                if src == "bfloat16":
                    xm = xm.astype(mx.bfloat16)
                    ov["x"] = "bfloat16"
                else:
                    xm = mx.array(np.asarray(v).astype(src))
                x = from_mx(xm)
                out = from_mx(xm.astype(getattr(mx, "bool_" if dst == "bool" else dst)))
                if dst == "bfloat16":
                    ov["out"] = "bfloat16"
            else:
                x = np.asarray(v).astype(src)
                out = x.astype(dst)
            w.case(f"astype.{src}_{dst}", ov, x=x, out=out)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "golden", "elementwise.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.seterr(all="ignore")  # nan/inf/overflow are what the cases test
    w = GoldenWriter(path, "scripts/golden_elementwise.py")
    gen_unary(w)
    gen_binary(w)
    gen_where(w)
    gen_astype(w)
    w.close()
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
