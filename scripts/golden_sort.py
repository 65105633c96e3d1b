"""Golden data for the sort family (tests/test_sort.c).

Each case holds x, p = [axis, k] and the NumPy results: `sort` (ascending,
NaN last), `argsort` (stable), and `topk` (the k largest, descending, so
NaN first). argpartition is checked structurally by the test instead.
Run from the repository root: python3 scripts/golden_sort.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from golden_common import GoldenWriter  # noqa: E402

rng = np.random.default_rng(4321)
w = GoldenWriter("tests/golden/sort.txt", "scripts/golden_sort.py")


def bf16(a):
    """float32 values rounded to bfloat16 (stored as float32)."""
    a = np.asarray(a, np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def case(name, x, axis, k, ov=None):
    s = np.sort(x, axis=axis, kind="stable")
    a = np.argsort(x, axis=axis, kind="stable").astype(np.uint32)
    desc = np.flip(s, axis=axis)
    t = np.take(desc, np.arange(k), axis=axis)
    ov = dict(ov or {})
    if "x" in ov:
        ov.update(sort=ov["x"], topk=ov["x"])
    w.case(name, dtype_override=ov, x=x, p=np.array([axis, k], np.int64),
           sort=s, argsort=a, topk=t)


def rand(shape, dt, lo=-20, hi=20):
    dt = np.dtype(dt)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(dt)
    if dt.kind in "ui":
        return rng.integers(0 if dt.kind == "u" else lo, hi, shape).astype(dt)
    return (rng.standard_normal(shape) * 10).astype(dt)


case("f32_1d", rand((9,), np.float32), 0, 3)
case("f32_2d_ax1", rand((4, 7), np.float32), 1, 2)
case("f32_2d_ax0", rand((6, 3), np.float32), 0, 6)
case("f32_3d_axneg2", rand((2, 5, 3), np.float32), -2, 1)
case("f32_3d_axneg1", rand((3, 2, 40), np.float32), -1, 5)
case("f32_long", rand((300,), np.float32), 0, 17)
# ties: argsort must be stable; -0.0 and 0.0 are equal
case("ties_int", rng.integers(0, 3, (3, 25)).astype(np.int32), 1, 4)
case("ties_float", np.array([1, 0.0, -0.0, 1, 2, 0.0, -0.0, 1, 2, 2, 0.0],
                            np.float32), 0, 5)
case("ties_long", rng.integers(0, 4, (2, 200)).astype(np.int64), -1, 10)
# NaN sorts last (and is the largest for topk)
nan = np.nan
case("nan_f32", np.array([[3, nan, 1, -np.inf, nan, 0, np.inf, -2],
                          [nan, nan, nan, 1, 1, 0, -1, 5]], np.float32), 1, 3)
case("nan_f64", np.array([nan, 2.5, -1, nan, 7, 0], np.float64), 0, 4)
case("nan_f16", np.array([nan, 2.5, -1, np.inf, 7, 0, nan], np.float16), 0, 2)
xb = bf16(np.array([[1.5, nan, -3, 2, 0.25], [8, -1, -1, nan, 3]]))
case("nan_bf16", xb, 1, 3, {"x": "bfloat16"})
case("bf16_ax0", bf16(rand((5, 4), np.float32)), 0, 2, {"x": "bfloat16"})
for dt in [np.bool_, np.uint8, np.int8, np.uint32, np.int32, np.int64,
           np.float16, np.float32, np.float64]:
    name = np.dtype(dt).name
    case("dt_" + name, rand((3, 11), dt), 1, 4)
    case("dt_" + name + "_ax0", rand((12, 2), dt), 0, 3)
case("u32_big", np.array([4000000000, 3, 2147483648, 0, 4294967295, 7],
                         np.uint32), 0, 2)
case("i8_extremes", np.array([127, -128, 0, -1, 1, -128, 127], np.int8), 0, 3)
case("empty_axis", np.zeros((3, 0), np.float32), 1, 0)
case("empty_other", np.zeros((0, 4), np.float32), 1, 2)
case("len1", rand((4, 1), np.float32), 1, 1)

w.close()
