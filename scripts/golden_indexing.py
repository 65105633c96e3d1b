"""Golden data for the indexing family (tests/test_indexing.c).

Every case holds its inputs, an int64 array `p` with the op's parameters
and the expected output `out`, computed with NumPy. In `p`, END (any value
>= 1e18) stands for AM_END. Run from the repository root:
    python3 scripts/golden_indexing.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from golden_common import GoldenWriter  # noqa: E402

END = 10**18
rng = np.random.default_rng(1234)
w = GoldenWriter("tests/golden/indexing.txt", "scripts/golden_indexing.py")

DTYPES = [np.bool_, np.uint8, np.int8, np.uint32, np.int32, np.int64,
          np.float16, np.float32, np.float64]
IDX_TYPES = [np.uint8, np.int8, np.uint32, np.int32, np.int64]


def rand(shape, dt=np.float32):
    dt = np.dtype(dt)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(dt)
    if dt.kind in "ui":
        lo = 0 if dt.kind == "u" else -50
        return rng.integers(lo, 100, shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def rand_idx(shape, n, dt=np.int64):
    """Valid indices for an axis of size n; negative ones for signed types."""
    dt = np.dtype(dt)
    lo = 0 if dt.kind == "u" else -n
    return rng.integers(lo, n, shape).astype(dt)


def bf16(a):
    """float32 values rounded to bfloat16 (stored as float32)."""
    a = np.asarray(a, np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


# ---------------------------------------------------------------- take
def take(name, x, idx, axis, ov=None):
    w.case("take_" + name, dtype_override=ov, x=x, idx=idx,
           p=np.array([axis], np.int64), out=np.take(x, idx, axis=axis))


take("1d_neg", np.arange(5, dtype=np.float32), np.array([-1, 0, 3, -5]), 0)
take("2d_ax1_idx2d", rand((3, 4)), np.array([[0, -1], [2, -4]]), 1)
take("2d_axneg1", rand((3, 4)), np.array([3, -2, 1]), -1)
take("3d_ax0", rand((4, 2, 3), np.int32), rand_idx((2, 3), 4, np.int8), 0)
take("3d_ax1", rand((2, 5, 3)), rand_idx((4,), 5), 1)
take("3d_axneg2", rand((2, 5, 3)), rand_idx((2, 1, 2), 5), -2)
take("0d_idx", rand((3, 4)), np.array(-2), 1)
take("dup", rand((6,)), np.array([1, 1, 1, 5, 5]), 0)
take("empty_idx", rand((3, 4)), np.zeros((0,), np.int64), 0)
take("empty_x", rand((0, 4)), np.array([1, 2]), 1)
for dt in DTYPES:
    take("dt_" + np.dtype(dt).name, rand((4, 3), dt), rand_idx((5,), 4), 0)
for it in IDX_TYPES:
    take("it_" + np.dtype(it).name, rand((3, 6)), rand_idx((2, 2), 6, it), 1)
xb = bf16(rand((4, 3)))
take("dt_bfloat16", xb, np.array([3, -1, 0]), 0,
     {"x": "bfloat16", "out": "bfloat16"})


# ------------------------------------------------------ take_along_axis
def tala(name, x, idx, axis, ov=None):
    w.case("tala_" + name, dtype_override=ov, x=x, idx=idx,
           p=np.array([axis], np.int64),
           out=np.take_along_axis(x, idx, axis=axis))


x = rand((3, 5))
tala("argsort", x, np.argsort(x, axis=1), 1)
tala("neg", rand((3, 5)), rand_idx((3, 2), 5), -1)
tala("ax0", rand((4, 3), np.int64), rand_idx((6, 3), 4, np.int32), 0)
tala("bcast_idx", rand((3, 4, 5)), rand_idx((1, 4, 2), 5), 2)
tala("bcast_x", rand((3, 1, 5)), rand_idx((3, 4, 2), 5, np.int8), 2)
tala("bcast_both", rand((1, 4, 5)), rand_idx((3, 6, 1), 4), 1)
tala("empty", rand((3, 4)), np.zeros((3, 0), np.int64), 1)
for dt in DTYPES:
    tala("dt_" + np.dtype(dt).name, rand((2, 5), dt), rand_idx((2, 3), 5), 1)
for it in IDX_TYPES:
    tala("it_" + np.dtype(it).name, rand((4, 3)), rand_idx((5, 3), 4, it), 0)


# ------------------------------------------------------- put_along_axis
def pala(name, x, idx, v, axis, ov=None):
    y = x.copy()
    np.put_along_axis(y, idx, v, axis=axis)
    w.case("pala_" + name, dtype_override=ov, x=x, idx=idx, v=np.asarray(v),
           p=np.array([axis], np.int64), out=y)


pala("basic", rand((3, 5)), rand_idx((3, 2), 5), rand((3, 2)), 1)
pala("ax0_neg", rand((4, 3)), np.array([[-1, 0, 2]]), rand((1, 3)), 0)
pala("scalar_v", rand((3, 4)), rand_idx((3, 2), 4), np.float32(7.5), -1)
pala("bcast_idx", rand((3, 4, 5)), rand_idx((1, 4, 3), 3), rand((3, 4, 3)), 2)
pala("bcast_v", rand((3, 4)), rand_idx((3, 5), 4), rand((5,)), 1)
# duplicates along the axis: the last write wins
pala("dup", np.zeros((2, 4), np.float32),
     np.array([[1, 1, 1, 3], [0, 2, 0, 0]]),
     np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32), 1)
pala("dup_ax0", np.zeros((3, 2), np.int32), np.array([[0, 2], [0, 2], [1, 2]]),
     np.array([[1, 2], [3, 4], [5, 6]], np.int32), 0)
pala("cast_v", rand((2, 4), np.int32), np.array([[0, 3], [1, 2]]),
     np.array([[1.5, -2.5], [3.25, 9.0]]), 1)
pala("empty", rand((3, 4)), np.zeros((3, 0), np.int64),
     np.zeros((3, 0), np.float32), 1)
for dt in DTYPES:
    pala("dt_" + np.dtype(dt).name, rand((2, 5), dt), rand_idx((2, 2), 5),
         rand((2, 2), dt), 1)
for it in IDX_TYPES:
    pala("it_" + np.dtype(it).name, rand((4, 3)), rand_idx((2, 3), 4, it),
         rand((2, 3)), 0)


# --------------------------------------------------------- slice_update
def sl(a, b, s):
    return slice(a, None if b >= END else b, s)


def slu(name, x, u, bounds, ov=None):
    """bounds: (start, stop, step) per leading axis; END = AM_END."""
    y = x.copy()
    y[tuple(sl(*b) for b in bounds)] = u
    n = len(bounds)
    p = [n] + [b[0] for b in bounds] + [b[1] for b in bounds] + \
        [b[2] for b in bounds]
    w.case("slu_" + name, dtype_override=ov, x=x, u=np.asarray(u),
           p=np.array(p, np.int64), out=y)


def slice_shape(shape, bounds):
    return tuple(len(range(*slice(b[0], None if b[1] >= END else b[1],
                                  b[2]).indices(d)))
                 for d, b in zip(shape, bounds)) + tuple(shape[len(bounds):])


def slu_auto(name, x, bounds, ushape=None, udt=None):
    shape = slice_shape(x.shape, bounds) if ushape is None else ushape
    slu(name, x, rand(shape, udt or x.dtype), bounds)


slu_auto("basic", rand((5, 4)), [(1, 3, 1)])
slu_auto("two_axes", rand((5, 6)), [(1, -1, 1), (0, END, 2)])
slu_auto("neg_bounds", rand((6, 5)), [(-4, -1, 1), (-3, END, 1)])
slu_auto("neg_step", rand((7,)), [(-1, 1, -2)])
slu_auto("rev_all", rand((4, 3)), [(END, END, -1)])
slu_auto("neg_step_end", rand((6, 3)), [(4, END, -3), (2, 0, -1)])
slu_auto("clamped", rand((5,)), [(-100, 100, 1)])
slu_auto("empty", rand((5, 3)), [(3, 1, 1)])
slu_auto("none", rand((3, 4)), [])
slu_auto("bcast_row", rand((5, 4)), [(0, 4, 2)], ushape=(1, 4))
slu_auto("bcast_col", rand((5, 4, 3)), [(1, 4, 1), (1, 3, 1)],
         ushape=(3, 2, 1))
slu_auto("bcast_scalar", rand((4, 4)), [(1, 3, 1), (END, 0, -1)], ushape=())
slu_auto("cast_f_to_i", rand((4, 3), np.int32), [(1, 3, 1)], udt=np.float64)
slu_auto("cast_i_to_f", rand((4, 3)), [(0, END, 3)], udt=np.int64)
for dt in DTYPES:
    slu_auto("dt_" + np.dtype(dt).name, rand((5, 3), dt), [(-3, END, 1)])


# ----------------------------------------------------------- dynamic_slice
def clamp_starts(x_shape, start, axes, sizes):
    return [int(min(max(int(s), 0), x_shape[a] - z))
            for s, a, z in zip(start, axes, sizes)]


def dsl(name, x, start, axes, sizes):
    ax = [a % x.ndim for a in axes]
    off = clamp_starts(x.shape, start, ax, sizes)
    idx = [slice(None)] * x.ndim
    for a, o, z in zip(ax, off, sizes):
        idx[a] = slice(o, o + z)
    p = [len(axes)] + list(axes) + list(sizes)
    w.case("dsl_" + name, x=x, start=np.asarray(start),
           p=np.array(p, np.int64), out=x[tuple(idx)])


dsl("basic", rand((6, 4)), np.array([2], np.int32), [0], [3])
dsl("two", rand((6, 5)), np.array([1, 2], np.int64), [0, 1], [2, 3])
dsl("neg_axis", rand((3, 6, 4)), np.array([3], np.uint32), [-2], [2])
dsl("clamp_hi", rand((6, 4)), np.array([5], np.int32), [0], [3])
dsl("clamp_lo", rand((6, 4)), np.array([-2], np.int8), [0], [3])
dsl("clamp_both", rand((5, 5)), np.array([100, -100], np.int64), [1, 0],
    [2, 4])
dsl("size0", rand((5, 3)), np.array([2], np.uint8), [0], [0])
dsl("full", rand((4, 3)), np.array([3], np.int32), [1], [3])


def dsu(name, x, u, start, axes):
    ax = [a % x.ndim for a in axes]
    off = clamp_starts(x.shape, start, ax, [u.shape[a] for a in ax])
    idx = [slice(None)] * x.ndim
    for a, o in zip(ax, off):
        idx[a] = slice(o, o + u.shape[a])
    y = x.copy()
    y[tuple(idx)] = u
    p = [len(axes)] + list(axes)
    w.case("dsu_" + name, x=x, u=u, start=np.asarray(start),
           p=np.array(p, np.int64), out=y)


dsu("basic", rand((6, 4)), rand((2, 4)), np.array([3], np.int32), [0])
dsu("two", rand((6, 5)), rand((2, 3)), np.array([1, 2], np.int64), [0, 1])
dsu("neg_axis", rand((3, 6, 4)), rand((3, 2, 4)), np.array([4], np.uint32),
    [-2])
dsu("clamp_hi", rand((6, 4)), rand((3, 4)), np.array([5], np.int32), [0])
dsu("clamp_lo", rand((6, 4)), rand((6, 2)), np.array([-3], np.int8), [1])
dsu("cast", rand((5, 3), np.int64), rand((2, 3), np.float32).round() * 10,
    np.array([1], np.int32), [0])
dsu("empty", rand((5, 3)), rand((0, 3)), np.array([2], np.int32), [0])

w.close()
