#!/usr/bin/env python3
"""Golden data for the reduction family (tests/test_reduce.c).

Writes tests/golden/reduce.txt. Each case is named OP.N and holds:
    x  the input (bfloat16 inputs are stored as float32 values that bf16
       represents exactly, with the dtype overridden)
    p  int64 params: sum..any: [all, keepdims, axes...];
       argmax/argmin: [axis, keepdims]; cumsum: [axis, reverse, inclusive]
    y  the expected output, with amorph's dtype rules:
       sum/prod: bool -> int32, integers keep their dtype and wrap (NumPy
       would widen to int64; MLX widens small integers: amorph keeps them);
       mean/logsumexp: integers -> float32; all/any -> bool;
       argmax/argmin -> uint32 (first NaN wins, as NumPy and MLX).
References are computed in float64 (or exact int64/uint64 arithmetic
that wraps) from NumPy, then cast to the output dtype.

Usage: python3 scripts/golden_reduce.py   (from the repository root)
"""
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import GoldenWriter  # noqa: E402

try:  # MLX, when installed, cross-checks the float32 references
    import mlx.core as mx
except ImportError:  # pragma: no cover
    mx = None

DTYPES = ["bool", "uint8", "int8", "uint32", "int32", "int64",
          "float16", "bfloat16", "float32", "float64"]
NP = {"bool": np.bool_, "uint8": np.uint8, "int8": np.int8,
      "uint32": np.uint32, "int32": np.int32, "int64": np.int64,
      "float16": np.float16, "bfloat16": np.float32,
      "float32": np.float32, "float64": np.float64}
FLOATS = {"float16", "bfloat16", "float32", "float64"}
rng = np.random.default_rng(1234)


def bf16_round(a):
    """float64/32 values -> nearest bfloat16 (ties to even), as float32."""
    a = np.asarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    nan = np.isnan(a)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    out = u.astype(np.uint32).view(np.float32)
    return np.where(nan, np.float32(np.nan), out)


def to_dtype(a, dt):
    """float64 or int results -> values of amorph dtype dt (numpy array)."""
    if dt == "bfloat16":
        return bf16_round(np.asarray(a, dtype=np.float64))
    return np.asarray(a).astype(NP[dt])


def make_input(shape, dt, op, special=False):
    n = int(np.prod(shape))
    if dt == "bool":
        x = rng.integers(0, 2, n).astype(bool)
        if op == "all":  # mostly true, so that all() is not always false
            x = rng.random(n) < 0.85
    elif dt in FLOATS:
        lo, hi = (0.5, 1.6) if op == "prod" else (-4, 4)
        x = np.round(rng.uniform(lo, hi, n) * 16) / 16
        if special and n >= 4:
            idx = rng.choice(n, size=min(n, 3), replace=False)
            x[idx] = rng.choice([np.nan, np.inf, -np.inf], size=len(idx))
        x = to_dtype(x, dt)
    else:
        info = np.iinfo(NP[dt])
        if op == "prod":
            lo, hi = (0, 4) if info.min == 0 else (-3, 3)
        else:
            lo, hi = max(info.min, -1000), min(info.max, 1000)
            if dt in ("int8", "uint8"):  # sums wrap
                lo, hi = info.min, info.max
        x = rng.integers(lo, hi, n, endpoint=True).astype(NP[dt])
    return x.reshape(shape)


def acc_dtype(dt):
    if dt in FLOATS:
        return np.float64
    return np.uint64 if dt in ("uint8", "uint32") else np.int64


def norm_axes(axes, nd):
    if axes is None:
        return tuple(range(nd))
    return tuple(a % nd for a in axes)


def reduce_ref(op, x, dt, axes, keep):
    ax = norm_axes(axes, x.ndim)
    xa = x.astype(acc_dtype(dt)) if dt != "bool" else x.astype(np.int64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if op == "sum":
            return to_dtype(np.sum(xa, axis=ax, keepdims=keep),
                            "int32" if dt == "bool" else dt)
        if op == "prod":
            return to_dtype(np.prod(xa, axis=ax, keepdims=keep),
                            "int32" if dt == "bool" else dt)
        if op == "mean":
            r = np.mean(x.astype(np.float64), axis=ax, keepdims=keep)
            return to_dtype(r, dt if dt in FLOATS else "float32")
        if op in ("max", "min"):
            f = np.max if op == "max" else np.min
            return to_dtype(f(x.astype(np.float64) if dt in FLOATS else x,
                              axis=ax, keepdims=keep), dt)
        if op == "all":
            return np.all(x, axis=ax, keepdims=keep)
        if op == "any":
            return np.any(x, axis=ax, keepdims=keep)
        if op == "logsumexp":
            xf = x.astype(np.float64)
            if xf.size == 0:
                shp = [1 if (i in ax) else s for i, s in enumerate(x.shape)]
                if not keep:
                    shp = [s for i, s in enumerate(x.shape) if i not in ax]
                r = np.full(shp, -np.inf)
            else:
                m = np.max(xf, axis=ax, keepdims=True)
                mf = np.where(np.isfinite(m), m, 0)
                r = mf + np.log(np.sum(np.exp(xf - mf), axis=ax, keepdims=True))
                r = np.where(np.isfinite(m), r, m)
                if not keep:
                    r = np.squeeze(r, axis=ax)
            return to_dtype(r, dt if dt in FLOATS else "float32")
    raise ValueError(op)


def arg_ref(op, x, axis, keep):
    f = np.argmax if op == "argmax" else np.argmin
    r = f(x.astype(np.float64) if x.dtype.kind == "f" else x, axis=axis,
          keepdims=keep)
    return np.asarray(r).astype(np.uint32)


def cumsum_ref(x, dt, axis, reverse, inclusive):
    xa = x.astype(acc_dtype(dt)) if dt != "bool" else x.astype(np.int64)
    if reverse:
        xa = np.flip(xa, axis)
    c = np.cumsum(xa, axis=axis)
    if not inclusive:
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)),
                            np.take(c, range(c.shape[axis] - 1), axis=axis)],
                           axis=axis)
    if reverse:
        c = np.flip(c, axis)
    return to_dtype(c, "int32" if dt == "bool" else dt)


def mlx_check(op, x, p, y):
    """Asserts that MLX agrees with the NumPy-made reference (float32 in:
    same dtype rules; NaN, inf and first-index semantics)."""
    if mx is None or x.size == 0:
        return
    a = mx.array(x)
    if op in ("argmax", "argmin"):
        r = getattr(mx, op)(a, axis=int(p[0]), keepdims=bool(p[1]))
    elif op == "cumsum":
        r = mx.cumsum(a, axis=int(p[0]), reverse=bool(p[1]),
                      inclusive=bool(p[2]))
    else:
        axes = None if p[0] else [int(v) for v in p[2:]]
        if axes == []:
            return
        r = getattr(mx, op)(a, axis=axes, keepdims=bool(p[1]))
    r = np.array(r)
    assert r.shape == y.shape and r.dtype == y.dtype, (op, r.dtype, y.dtype)
    ok = np.allclose(r.astype(np.float64), y.astype(np.float64), rtol=1e-5,
                     atol=1e-6, equal_nan=True)
    assert ok, (op, x, p, r, y)


# (shape, axes or None, keepdims); shapes kept small, one wide for lanes
RED_VARIANTS = [
    ((7,), None, False),
    ((7,), [-1], True),
    ((3, 4, 5), [1], False),
    ((3, 4, 5), [0, 2], True),
    ((3, 4, 5), [-1], False),
    ((3, 4, 5), [-3, -2], False),
    ((2, 3, 2, 4), [3, 0], False),
    ((2, 3, 2, 4), None, True),
    ((5, 40), [0], False),
    ((5, 40), [1], False),
    ((), None, False),
    ((3, 4, 5), [], False),
    ((1, 3, 1), [0, 2], False),
]
EMPTY_VARIANTS = [((0,), None, False), ((3, 0), [1], False),
                  ((0, 4), [0], True), ((2, 0, 3), [0, 2], False)]
ARG_VARIANTS = [((9,), 0, False), ((3, 4, 5), 1, False),
                ((3, 4, 5), -1, True), ((3, 4, 5), 0, False),
                ((5, 40), 0, False), ((5, 40), -1, False)]
CUM_VARIANTS = [((9,), 0, False, True), ((9,), 0, True, False),
                ((3, 4, 5), 1, False, False), ((3, 4, 5), -1, True, True),
                ((3, 4, 5), 0, False, True), ((2, 3, 4), -3, True, False),
                ((5, 40), 0, False, True), ((0, 3), 0, False, True)]
RED_OPS = ["sum", "mean", "prod", "max", "min", "logsumexp", "all", "any"]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "golden", "reduce.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = GoldenWriter(path, "scripts/golden_reduce.py")
    count = {}

    def emit(op, dt, x, p, y):
        if dt == "float32":
            mlx_check(op, x, p, y)
        k = count.get(op, 0)
        count[op] = k + 1
        ov = {"x": "bfloat16"} if dt == "bfloat16" else {}
        if y.dtype == np.float32 and dt == "bfloat16":
            ov["y"] = "bfloat16"
        w.case("%s.%d" % (op, k), dtype_override=ov, x=x,
               p=np.array(p, dtype=np.int64), y=y)

    for op in RED_OPS:
        for di, dt in enumerate(DTYPES):
            # every dtype sees a rotating third of the variants; float32 all
            vs = RED_VARIANTS if dt == "float32" else \
                RED_VARIANTS[di % 3::3]
            for shape, axes, keep in vs:
                x = make_input(shape, dt, op)
                y = reduce_ref(op, x, dt, axes, keep)
                p = [axes is None, keep] + (axes or [])
                emit(op, dt, x, p, y)
            if dt in ("float32", "float64", "float16"):  # NaN and inf
                for shape, axes, keep in [((5, 6), [1], False),
                                          ((5, 6), [0], False),
                                          ((40,), None, False)]:
                    x = make_input(shape, dt, op, special=True)
                    y = reduce_ref(op, x, dt, axes, keep)
                    emit(op, dt, x, [axes is None, keep] + (axes or []), y)
        if op not in ("max", "min"):
            for dt in ("float32", "int32", "bool"):
                for shape, axes, keep in EMPTY_VARIANTS:
                    x = make_input(shape, dt, op)
                    y = reduce_ref(op, x, dt, axes, keep)
                    emit(op, dt, x, [axes is None, keep] + (axes or []), y)
    # logsumexp extremes: all -inf, +inf with -inf
    for row in ([-np.inf, -np.inf], [np.inf, -np.inf], [np.inf, 1.0]):
        x = np.array([row, [1.0, 2.0]], dtype=np.float32)
        emit("logsumexp", "float32", x, [0, 0, 1],
             reduce_ref("logsumexp", x, "float32", [1], False))

    for op in ("argmax", "argmin"):
        for di, dt in enumerate(DTYPES):
            vs = ARG_VARIANTS if dt == "float32" else ARG_VARIANTS[di % 2::2]
            for shape, axis, keep in vs:
                x = make_input(shape, dt, op)
                if dt not in FLOATS and dt != "bool":  # ties: first wins
                    x = (x % 5).astype(x.dtype)
                emit(op, dt, x, [axis, keep], arg_ref(op, x, axis, keep))
            if dt in ("float32", "float16", "float64"):
                for shape, axis in [((5, 6), 1), ((6, 5), 0)]:
                    x = make_input(shape, dt, op, special=True)
                    emit(op, dt, x, [axis, 0], arg_ref(op, x, axis, False))

    for di, dt in enumerate(DTYPES):
        vs = CUM_VARIANTS if dt == "float32" else CUM_VARIANTS[di % 2::2]
        for shape, axis, rev, inc in vs:
            x = make_input(shape, dt, "cumsum")
            emit("cumsum", dt, x, [axis, rev, inc],
                 cumsum_ref(x, dt, axis, rev, inc))
    w.close()
    print("wrote %s (%d cases, %d bytes)" % (path, sum(count.values()),
                                             os.path.getsize(path)))


if __name__ == "__main__":
    main()
