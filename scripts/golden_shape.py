#!/usr/bin/env python3
"""Golden data for the shape ops (tests/test_shape.c), computed by NumPy.

Each case stores its input(s) x / x0.. , the op's parameters as int64
arrays (p, shape, perm, ...) and the expected output(s) out / out0...
A slice bound of END (99999) stands for AM_END (Python's None).
Run from the repository root: python3 scripts/golden_shape.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import GoldenWriter  # noqa: E402

END = 99999
DTYPES = ["bool", "uint8", "int8", "uint32", "int32", "int64", "float16",
          "bfloat16", "float32", "float64"]
rng = np.random.default_rng(1234)
w = GoldenWriter(os.path.join(os.path.dirname(__file__), "..", "tests",
                              "golden", "shape.txt"),
                 "scripts/golden_shape.py")
_dtype_i = [0]


def next_dtype():
    d = DTYPES[_dtype_i[0] % len(DTYPES)]
    _dtype_i[0] += 1
    return d


def rand(shape, dt):
    """Values exact in dt; bfloat16 is carried as float32 small integers."""
    if dt == "bool":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dt in ("uint8", "uint32"):
        return rng.integers(0, 200, shape).astype(dt)
    if dt == "int8":
        return rng.integers(-100, 100, shape).astype(np.int8)
    if dt in ("int32", "int64"):
        hi = 2**40 if dt == "int64" else 2**30
        return rng.integers(-hi, hi, shape).astype(dt)
    if dt == "bfloat16":
        return rng.integers(-64, 64, shape).astype(np.float32)
    v = rng.standard_normal(shape).astype(dt)
    if v.size > 3:
        v.flat[1] = np.nan
        v.flat[2] = -np.inf
    return v


def i64(v):
    return np.asarray(v, dtype=np.int64).reshape(-1)


def case(name, dt, **arrays):
    ov = {}
    if dt == "bfloat16":
        for k, a in arrays.items():
            if np.asarray(a).dtype == np.float32:
                ov[k] = "bfloat16"
    w.case(name, dtype_override=ov, **arrays)


def rshape(nd, lo=1, hi=4):
    return tuple(int(v) for v in rng.integers(lo, hi + 1, nd))


def pyslice(a, b, s):
    return slice(None if a == END else a, None if b == END else b, s)


# ---- reshape / flatten / unflatten ----------------------------------------
for i, (shape, tgt) in enumerate([
        ((2, 3, 4), (4, -1)), ((2, 3, 4), (-1,)), ((6, 4), (3, 2, -1, 2)),
        ((2, 3, 4), (24,)), ((4, 6), (2, 2, 3, 2)), ((3, 0, 2), (-1, 3)),
        ((), (1, 1)), ((5,), (5, 1, 1)), ((1, 12), (-1, 4, 1)),
        ((2, 2, 2, 2), (4, 4)), ((3, 4), (2, -1))]):
    dt = next_dtype()
    x = rand(shape, dt)
    case("reshape_%d" % i, dt, x=x, shape=i64(tgt), out=x.reshape(tgt))

for i, (shape, s, e) in enumerate([
        ((2, 3, 4), 0, -1), ((2, 3, 4), 1, 2), ((2, 3, 4), -2, -1),
        ((2, 3, 4, 5), 1, 1), ((2, 3, 4, 5), 0, 2), ((), 0, -1),
        ((3, 0, 2), 0, 1), ((4,), -1, -1)]):
    dt = next_dtype()
    x = rand(shape, dt)
    if x.ndim == 0:
        out = x.reshape(1)
    else:
        n = x.ndim
        s2, e2 = s % n, e % n
        out = x.reshape(x.shape[:s2] + (-1,) + x.shape[e2 + 1:])
    case("flatten_%d" % i, dt, x=x, p=i64([s, e]), out=out)

for i, (shape, ax, sizes) in enumerate([
        ((6, 4), 0, (2, 3)), ((6, 4), -1, (2, -1)), ((3, 12), 1, (-1, 2, 3)),
        ((5,), 0, (5, 1)), ((2, 0), 1, (3, -1)), ((2, 8, 3), -2, (2, 2, 2))]):
    dt = next_dtype()
    x = rand(shape, dt)
    a = ax % x.ndim
    sz = list(sizes)
    if -1 in sz:
        known = int(np.prod([v for v in sz if v != -1]))
        sz[sz.index(-1)] = x.shape[a] // known
    out = x.reshape(x.shape[:a] + tuple(sz) + x.shape[a + 1:])
    case("unflatten_%d" % i, dt, x=x, p=i64([ax]), sizes=i64(sizes), out=out)

# ---- transpose / swapaxes -------------------------------------------------
for i, (shape, perm) in enumerate([
        ((2, 3), None), ((2, 3, 4), None), ((2, 3, 4), (1, 0, 2)),
        ((2, 3, 4), (-1, 0, -2)), ((2, 1, 3, 2), (3, 1, 0, 2)), ((), None),
        ((0, 3), (1, 0)), ((5,), (0,))]):
    dt = next_dtype()
    x = rand(shape, dt)
    arrays = dict(x=x)
    if perm is not None:
        arrays["perm"] = i64(perm)
    arrays["out"] = np.transpose(x, perm)
    case("transpose_%d" % i, dt, **arrays)

for i, (shape, a, b) in enumerate([((2, 3, 4), 0, 2), ((2, 3, 4), -1, 1),
                                    ((3, 2), 1, 1), ((2, 3, 4, 2), -3, -1)]):
    dt = next_dtype()
    x = rand(shape, dt)
    case("swapaxes_%d" % i, dt, x=x, p=i64([a, b]), out=np.swapaxes(x, a, b))

# ---- expand_dims / squeeze ------------------------------------------------
for i, (shape, axes) in enumerate([
        ((2, 3), (0,)), ((2, 3), (-1,)), ((2, 3), (1, -1)), ((), (0,)),
        ((2, 3), (0, 3)), ((4,), (-2, 0)), ((0, 2), (1,))]):
    dt = next_dtype()
    x = rand(shape, dt)
    case("expand_dims_%d" % i, dt, x=x, axes=i64(axes),
         out=np.expand_dims(x, axes))

for i, (shape, axes) in enumerate([
        ((1, 3, 1), None), ((1, 3, 1), (0,)), ((1, 3, 1), (-1,)),
        ((2, 1, 1, 3), (1, -2)), ((1,), None), ((1, 1), (-1, 0)),
        ((2, 3), None), ((1, 0, 1), None)]):
    dt = next_dtype()
    x = rand(shape, dt)
    arrays = dict(x=x)
    if axes is not None:
        arrays["axes"] = i64(axes)
    arrays["out"] = np.squeeze(x, axes)
    case("squeeze_%d" % i, dt, **arrays)

# ---- broadcast -------------------------------------------------------------
for i, (shape, tgt) in enumerate([
        ((3,), (2, 3)), ((2, 1), (2, 4)), ((1, 3, 1), (2, 2, 3, 5)),
        ((), (2, 3)), ((1,), (0,)), ((2, 3), (2, 3)), ((1, 2), (3, 0, 2))]):
    dt = next_dtype()
    x = rand(shape, dt)
    case("broadcast_to_%d" % i, dt, x=x, shape=i64(tgt),
         out=np.broadcast_to(x, tgt))

# ---- concatenate / stack ---------------------------------------------------
for i, (shapes, ax) in enumerate([
        (((2, 3), (4, 3)), 0), (((2, 3), (2, 1), (2, 2)), -1),
        (((2, 3, 4), (2, 1, 4)), 1), (((3,),), 0), (((2, 0), (2, 3)), 1),
        (((1, 2, 2), (3, 2, 2), (1, 2, 2), (2, 2, 2)), -3)]):
    dt = next_dtype()
    xs = [rand(s, dt) for s in shapes]
    arrays = {"x%d" % k: xv for k, xv in enumerate(xs)}
    case("concatenate_%d" % i, dt, p=i64([ax]),
         out=np.concatenate(xs, axis=ax), **arrays)

for i, (shape, n, ax) in enumerate([((2, 3), 3, 0), ((2, 3), 2, -1),
                                    ((2, 3), 2, 1), ((), 4, 0),
                                    ((4,), 2, -2)]):
    dt = next_dtype()
    xs = [rand(shape, dt) for _ in range(n)]
    arrays = {"x%d" % k: xv for k, xv in enumerate(xs)}
    case("stack_%d" % i, dt, p=i64([ax]), out=np.stack(xs, axis=ax),
         **arrays)

# ---- split -----------------------------------------------------------------
for i, (shape, n, ax) in enumerate([((6, 2), 3, 0), ((2, 6), 2, -1),
                                    ((2, 3, 4), 4, 2), ((0, 3), 2, 0),
                                    ((5,), 1, 0)]):
    dt = next_dtype()
    x = rand(shape, dt)
    parts = np.split(x, n, axis=ax)
    outs = {"out%d" % k: pv for k, pv in enumerate(parts)}
    case("split_%d" % i, dt, x=x, p=i64([n, ax]), **outs)

for i, (shape, idx, ax) in enumerate([
        ((7, 2), (2, 5), 0), ((2, 7), (-3,), -1), ((7,), (5, 2), 0),
        ((7,), (-10, 10), 0), ((3, 4), (), 1), ((6, 2), (0, 6, 3), 0),
        ((0, 2), (1,), 0)]):
    dt = next_dtype()
    x = rand(shape, dt)
    parts = np.split(x, list(idx), axis=ax)
    outs = {"out%d" % k: pv for k, pv in enumerate(parts)}
    case("split_at_%d" % i, dt, x=x, idx=i64(idx), p=i64([ax]), **outs)

# ---- slice -----------------------------------------------------------------
SLICES = [
    ((8,), [(1, 6, 1)]), ((8,), [(-3, END, 1)]), ((8,), [(END, END, -1)]),
    ((8,), [(END, END, -2)]), ((8,), [(6, 1, -2)]), ((8,), [(-1, -9, -1)]),
    ((8,), [(2, 2, 1)]), ((8,), [(5, 2, 1)]), ((8,), [(-100, 100, 3)]),
    ((8,), [(100, -100, -3)]), ((8,), [(0, END, 1)]), ((8,), [(END, 0, -1)]),
    ((8,), [(-2, END, -1)]), ((8,), [(END, 3, 2)]), ((0,), [(END, END, -1)]),
    ((4, 5), [(1, 3, 1), (END, END, -1)]), ((4, 5), [(-1, END, -2)]),
    ((3, 4, 5), [(0, END, 2), (-2, 0, -1), (1, -1, 1)]),
    ((3, 4, 5), [(3, END, 1), (0, END, 1)]), ((3, 4), []),
]
for i, (shape, sl) in enumerate(SLICES):
    dt = next_dtype()
    x = rand(shape, dt)
    out = x[tuple(pyslice(*s) for s in sl)]
    case("slice_%d" % i, dt, x=x, start=i64([s[0] for s in sl]),
         stop=i64([s[1] for s in sl]), step=i64([s[2] for s in sl]), out=out)

for i, (shape, ax, s) in enumerate([
        ((3, 6), -1, (END, END, -2)), ((3, 6), 0, (1, END, 1)),
        ((2, 3, 4), 1, (-1, -4, -1)), ((2, 3, 4), -3, (5, END, 1))]):
    dt = next_dtype()
    x = rand(shape, dt)
    idx = [slice(None)] * x.ndim
    idx[ax] = pyslice(*s)
    case("slice_axis_%d" % i, dt, x=x, p=i64([ax, s[0], s[1], s[2]]),
         out=x[tuple(idx)])

# ---- pad / repeat / tile ---------------------------------------------------
for i, (shape, lo, hi, v) in enumerate([
        ((2, 3), (1, 0), (0, 2), 7.0), ((3,), (2,), (1,), 2.5),
        ((2, 3, 2), (1,), (1,), 0.0), ((2, 2), (0, 0), (0, 0), 3.0),
        ((), (), (), 5.0), ((0, 2), (1, 1), (2, 0), 1.0),
        ((2, 1, 2), (0, 2, 1), (1, 0, 1), 2.0)]):
    dt = next_dtype()
    x = rand(shape, dt)
    widths = [(a, b) for a, b in zip(lo, hi)] + [(0, 0)] * (x.ndim - len(lo))
    out = (np.pad(x, widths, constant_values=np.array(v).astype(x.dtype))
           if x.ndim else x.copy())
    case("pad_%d" % i, dt, x=x, low=i64(lo), high=i64(hi),
         value=np.array([v]), out=out)

for i, (shape, r, ax) in enumerate([
        ((2, 3), 2, 0), ((2, 3), 3, -1), ((2, 3, 2), 2, 1), ((3,), 0, 0),
        ((2, 0), 2, 1), ((4,), 1, -1), ((1, 2, 3), 4, 0)]):
    dt = next_dtype()
    x = rand(shape, dt)
    case("repeat_%d" % i, dt, x=x, p=i64([r, ax]),
         out=np.repeat(x, r, axis=ax))

for i, (shape, reps) in enumerate([
        ((2, 3), (2,)), ((2, 3), (2, 1)), ((2, 3), (2, 1, 3)), ((3,), (2, 2)),
        ((), (3,)), ((2, 2), ()), ((2, 3), (0, 2)), ((1, 2, 1), (2, 3, 2)),
        ((2, 1, 2, 1), (1, 2, 1, 2))]):
    dt = next_dtype()
    x = rand(shape, dt)
    case("tile_%d" % i, dt, x=x, reps=i64(reps), out=np.tile(x, reps))

# ---- chains of views -------------------------------------------------------
x = rand((4, 6), "float32")
case("chain_0", "float32", x=x, out=x.T[1:, ::-2].reshape(-1))
x = rand((3, 4, 5), "int32")
case("chain_1", "int32", x=x,
     out=np.swapaxes(x, 0, 2)[::-1, 1:3].reshape(5, -1)[:, ::2])
x = rand((2, 3), "int64")
case("chain_2", "int64", x=x,
     out=np.concatenate([np.broadcast_to(x[:, None, :], (2, 4, 3)),
                         np.tile(x.T, (1, 1))[None].reshape(2, 1, 3)],
                        axis=1)[..., ::-1])
x = rand((4, 4), "float64")
case("chain_3", "float64", x=x,
     out=np.pad(x[::2, ::-1], [(1, 0), (0, 1)]).reshape(-1)[3:])
w.close()
