"""Golden data for the quantization family (tests/test_quant.c), made by MLX.

Every case holds its inputs, an int64 array `p` with the op's parameters
and MLX's outputs. quantize cases (q_*) hold MLX's packed words, scales and
biases, which amorph must reproduce bit for bit, and `deq`, MLX's
dequantize of them. Matmul cases hold MLX's quantized_matmul / gather_qmm /
gather_mm results (compared within float tolerance).

Where amorph defines a behaviour MLX leaves arbitrary (NaN/inf groups of
the mx modes, NaN elements in affine, exponents below E8M0's range), the
expected words are MLX's with those groups/elements replaced by amorph's
documented rule, computed here (see include/amorph.h, am_quant_mode).

Run from the repository root (needs mlx):
    python3 scripts/golden_quant.py
"""
import os
import sys

import mlx.core as mx
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from golden_common import GoldenWriter  # noqa: E402

rng = np.random.default_rng(20240607)
w = GoldenWriter("tests/golden/quant.txt", "scripts/golden_quant.py")

MODES = {"affine": 0, "mxfp4": 1, "mxfp8": 2, "nvfp4": 3}
DEFAULTS = {"affine": (64, 4), "mxfp4": (32, 4), "mxfp8": (32, 8),
            "nvfp4": (16, 4)}
MX_DT = {"float32": mx.float32, "float16": mx.float16,
         "bfloat16": mx.bfloat16}


def bf16(a):
    """float32 values rounded to bfloat16 (stored as float32)."""
    a = np.asarray(a, np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def as_dtype(a, dt):
    """NumPy values of dtype dt (bfloat16 kept as rounded float32)."""
    if dt == "bfloat16":
        return bf16(a)
    return np.asarray(a).astype(dt)


def to_mx(a, dt):
    return mx.array(np.asarray(a, np.float32)).astype(MX_DT[dt])


def to_np(a):
    """MLX array to NumPy (bfloat16 as float32) and its amorph dtype name."""
    if a.dtype == mx.bfloat16:
        return np.array(a.astype(mx.float32)), "bfloat16"
    n = np.array(a)
    return n, None


def grid(shape, step=1 / 64, scale=1.0):
    """Random values on a grid of `step`: short to print, and full of the
    exact ties that test rounding."""
    return (np.round(rng.standard_normal(shape) * scale / step) * step).astype(
        np.float32)


def emit(name, arrays, ints=None):
    """arrays: key -> MLX or NumPy array (bfloat16 handled)."""
    out, ov = {}, {}
    for k, a in arrays.items():
        if isinstance(a, mx.array):
            n, o = to_np(a)
        else:
            n, o = np.asarray(a), None
        out[k] = n
        if o:
            ov[k] = o
    if ints is not None:
        out["p"] = np.array(ints, np.int64)
    w.case(name, dtype_override=ov, **out)


# ------------------------------------------------------------- unpacking
def codes_of(wq, bits, k):
    """Codes of each row of uint32 words (little-endian bit stream)."""
    b = np.asarray(wq, np.uint32).view(np.uint8).reshape(wq.shape[0], -1)
    bitsarr = np.unpackbits(b, axis=1, bitorder="little")
    c = bitsarr[:, : k * bits].reshape(wq.shape[0], k, bits)
    return (c.astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(-1)


def pack_codes(codes, bits):
    n, k = codes.shape
    codes = np.asarray(codes, np.uint32)
    bitsarr = ((codes[..., None] >> np.arange(bits, dtype=np.uint32)) & 1)
    bitsarr = bitsarr.astype(np.uint8)
    by = np.packbits(bitsarr.reshape(n, k * bits), axis=1, bitorder="little")
    return by.view(np.uint32).reshape(n, -1)


# --------------------------------------------------------------- quantize
def quant_case(name, wv, mode, gs, bits, dt, gscale=None, fix=None,
               deq_dtypes=()):
    """wv: float32 NumPy values (already representable in dt)."""
    x = to_mx(wv, dt)
    kw = dict(group_size=gs, bits=bits, mode=mode)
    g = mx.array(np.float32(gscale)) if gscale is not None else None
    r = mx.quantize(x, global_scale=g, **kw) if g is not None else \
        mx.quantize(x, **kw)
    wq = np.array(r[0])
    sc = r[1]
    if fix is not None:
        wq, sc = fix(wv, wq, sc)
    wn = wv.astype(np.float16) if dt == "float16" else wv
    arrays = {"w": wn, "wq": wq, "scales": sc}
    biases = r[2] if mode == "affine" else None
    if biases is not None:
        arrays["biases"] = biases
    wq_m = mx.array(wq)
    sc_m = sc if isinstance(sc, mx.array) else mx.array(sc)
    dkw = dict(kw)
    if g is not None:
        dkw["global_scale"] = g
    arrays["deq"] = mx.dequantize(wq_m, sc_m, biases, **dkw)
    for ddt in deq_dtypes:
        arrays["deq_" + ddt] = mx.dequantize(wq_m, sc_m, biases, dtype=MX_DT[ddt],
                                             **dkw)
    ovs = {"w": "bfloat16"} if dt == "bfloat16" else {}
    out = {}
    for k, a in arrays.items():
        if isinstance(a, mx.array):
            n, o = to_np(a)
            if o:
                ovs[k] = o
        else:
            n = np.asarray(a)
        out[k] = n
    if gscale is not None:
        out["g"] = np.array([gscale], np.float32)
    out["p"] = np.array([MODES[mode], gs, bits], np.int64)
    w.case(name, dtype_override=ovs, **out)


# Every mode x bits x group size x dtype, grid values.
for dt in ["float32", "float16", "bfloat16"]:
    for bits in [2, 3, 4, 5, 6, 8]:
        for gs in [32, 64, 128]:
            wv = as_dtype(grid((2, 2 * gs)), dt).astype(np.float32)
            quant_case("q_affine_b%d_g%d_%s" % (bits, gs, dt), wv, "affine",
                       gs, bits, dt)
    for mode in ["mxfp4", "mxfp8", "nvfp4"]:
        gs, bits = DEFAULTS[mode]
        wv = as_dtype(grid((3, 4 * gs), scale=2.0), dt).astype(np.float32)
        quant_case("q_%s_%s" % (mode, dt), wv, mode, gs, bits, dt)
        # full-precision values too: rounding of scales and log2
        wv = as_dtype(rng.standard_normal((2, 4 * gs)) * 3, dt).astype(
            np.float32)
        quant_case("q_%s_%s_full" % (mode, dt), wv, mode, gs, bits, dt)
    wv = as_dtype(grid((2, 64), scale=2.0), dt).astype(np.float32)
    quant_case("q_nvfp4_%s_global" % dt, wv, "nvfp4", 16, 4, dt, gscale=3.5)
    wv = as_dtype(rng.standard_normal((2, 64)) * 0.01, dt).astype(np.float32)
    quant_case("q_nvfp4_%s_global_small" % dt, wv, "nvfp4", 16, 4, dt,
               gscale=0.02)

# Full-precision float32 affine values (no ties), every width.
for bits in [2, 3, 4, 5, 6, 8]:
    wv = (rng.standard_normal((2, 128)) * 0.05).astype(np.float32)
    quant_case("q_affine_b%d_g64_full" % bits, wv, "affine", 64, bits,
               "float32")

# Dequantize to other dtypes than the default.
wv = bf16(grid((2, 128)))
quant_case("q_affine_b4_g64_bfloat16_deqdt", wv, "affine", 64, 4, "bfloat16",
           deq_dtypes=("float32", "float16"))
wv = grid((2, 128), scale=2.0)
quant_case("q_mxfp4_float32_deqdt", wv, "mxfp4", 32, 4, "float32",
           deq_dtypes=("float32", "float16"))
quant_case("q_mxfp8_float32_deqdt", wv, "mxfp8", 32, 8, "float32",
           deq_dtypes=("float32", "float16"))
quant_case("q_nvfp4_float32_deqdt", wv, "nvfp4", 16, 4, "float32",
           deq_dtypes=("float32", "float16"))


# ------------------------------------------------------------ edge cases
def edge_rows(gs):
    """Rows of one group each: zeros, constant, negative-only, positive
    only, large magnitudes, tiny (subnormal) values, one huge outlier."""
    lin = np.linspace(-1, 1, gs, dtype=np.float32)
    return np.stack([
        np.zeros(gs, np.float32),
        np.full(gs, 2.5, np.float32),
        -np.abs(np.linspace(0.1, 3, gs, dtype=np.float32)),
        np.abs(np.linspace(0.1, 3, gs, dtype=np.float32)),
        lin * np.float32(1e30),
        lin * np.float32(3e38),
        lin * np.float32(1e-30),
        np.where(np.arange(gs) == 5, 1000.0, lin * 0.01).astype(np.float32),
        np.full(gs, -7.0, np.float32),
    ]).astype(np.float32)


def nonfinite_rows(gs):
    lin = np.linspace(-1, 1, gs, dtype=np.float32)
    rows = []
    for v in [np.nan, np.inf, -np.inf]:
        r = lin.copy()
        r[3] = v
        rows.append(r)
    r = lin.copy()
    r[0] = np.nan
    rows.append(r)
    return np.stack(rows).astype(np.float32)


def fix_affine_nan(wv, wq, sc, bits, gs, biases):
    """amorph quantizes a NaN element as 0 would be: rint((0-b)/s) clipped."""
    k = wv.shape[1]
    codes = codes_of(wq, bits, k)
    s = np.array(sc).astype(np.float32)
    b = np.array(biases).astype(np.float32)
    n_bins = (1 << bits) - 1
    for r, c in zip(*np.nonzero(np.isnan(wv))):
        g = c // gs
        with np.errstate(all="ignore"):
            q = np.rint((np.float32(0) - b[r, g]) / s[r, g])
        codes[r, c] = int(q) if 0 <= q <= n_bins else (
            n_bins if q > n_bins else 0)
    return pack_codes(codes, bits)


for bits in [3, 4, 8]:
    for gs in [32, 64]:
        quant_case("q_edge_affine_b%d_g%d" % (bits, gs), edge_rows(gs),
                   "affine", gs, bits, "float32")
for mode in ["mxfp4", "mxfp8", "nvfp4"]:
    gs, bits = DEFAULTS[mode]
    rows = edge_rows(32)
    if mode != "nvfp4":
        rows = np.delete(rows, 6, axis=0)  # tiny: amorph clamps, MLX wraps
    quant_case("q_edge_%s" % mode, rows, mode, gs, bits, "float32")
for dt in ["float16", "bfloat16"]:
    for mode in ["affine", "mxfp4", "mxfp8", "nvfp4"]:
        gs, bits = DEFAULTS[mode]
        rows = edge_rows(gs)
        keep = [0, 1, 2, 3, 7, 8]  # finite in the dtype
        quant_case("q_edge_%s_%s" % (mode, dt),
                   as_dtype(rows[keep], dt).astype(np.float32), mode, gs,
                   bits, dt)


def quant_nonfinite(mode, bits, gs):
    wv = nonfinite_rows(gs)
    x = mx.array(wv)
    r = mx.quantize(x, group_size=gs, bits=bits, mode=mode)
    wq = np.array(r[0])
    if mode == "affine":
        wq = fix_affine_nan(wv, wq, r[1], bits, gs, r[2])
        emit("q_nonfinite_affine_b%d" % bits,
             {"w": wv, "wq": wq, "scales": r[1], "biases": r[2]},
             [MODES[mode], gs, bits])
    elif mode == "nvfp4":
        emit("q_nonfinite_nvfp4", {"w": wv, "wq": wq, "scales": r[1]},
             [MODES[mode], gs, bits])
    else:
        # amorph: a group with NaN/inf gets scale 0xff and codes 0
        sc = np.array(r[1])
        k = wv.shape[1]
        codes = codes_of(wq, bits, k)
        for row in range(wv.shape[0]):
            for g in range(k // gs):
                if not np.all(np.isfinite(wv[row, g * gs:(g + 1) * gs])):
                    sc[row, g] = 0xFF
                    codes[row, g * gs:(g + 1) * gs] = 0
        emit("q_nonfinite_%s" % mode,
             {"w": wv, "wq": pack_codes(codes, bits), "scales": sc},
             [MODES[mode], gs, bits])


for bits in [3, 4]:
    quant_nonfinite("affine", bits, 32)
quant_nonfinite("mxfp4", 4, 32)
quant_nonfinite("mxfp8", 8, 32)
quant_nonfinite("nvfp4", 4, 16)


# -------------------------------------------------------------- embedding
def embed_case(name, mode, gs, bits, dt, idx):
    gs0, bits0 = gs, bits
    wv = as_dtype(grid((7, 2 * gs0)), dt).astype(np.float32)
    r = mx.quantize(to_mx(wv, dt), group_size=gs0, bits=bits0, mode=mode)
    b = r[2] if mode == "affine" else None
    ii = mx.array(idx)
    sel = lambda a: a[ii]  # noqa: E731
    out = mx.dequantize(sel(r[0]), sel(r[1]), sel(b) if b is not None else None,
                        group_size=gs0, bits=bits0, mode=mode)
    arrays = {"wq": r[0], "scales": r[1]}
    if b is not None:
        arrays["biases"] = b
    arrays["idx"] = np.asarray(idx)
    arrays["out"] = out
    emit(name, arrays, [MODES[mode], gs0, bits0])


embed_case("e_affine_b4_g64_bf16", "affine", 64, 4, "bfloat16",
           np.array([[0, 6, 3], [2, 2, 5]], np.int32))
embed_case("e_affine_b3_g32_f32", "affine", 32, 3, "float32",
           np.array([1, 0, 6], np.int64))
embed_case("e_affine_b6_g128_f16", "affine", 128, 6, "float16",
           np.array([4], np.uint32))
embed_case("e_mxfp4", "mxfp4", 32, 4, "float32", np.array([3, 1], np.int32))
embed_case("e_mxfp8", "mxfp8", 32, 8, "bfloat16", np.array([0, 6], np.uint8))
embed_case("e_nvfp4", "nvfp4", 16, 4, "float32",
           np.array([[5], [2]], np.int64))


# ---------------------------------------------------------------- matmuls
def qmm_case(name, mode, gs, bits, transpose, xdt, sdt, xshape, wshape):
    """quantized_matmul of MLX-quantized weights (w of shape wshape, the
    dequantized layout: [.., N, K] when transposed, [.., K, N] otherwise)."""
    wv = as_dtype(rng.standard_normal(wshape) * 0.5, sdt).astype(np.float32)
    r = mx.quantize(to_mx(wv, sdt), group_size=gs, bits=bits, mode=mode)
    b = r[2] if mode == "affine" else None
    xv = as_dtype(grid(xshape, step=1 / 16), xdt).astype(np.float32)
    y = mx.quantized_matmul(to_mx(xv, xdt), r[0], r[1], b, transpose=transpose,
                            group_size=gs, bits=bits, mode=mode)
    arrays = {"x": to_mx(xv, xdt), "wq": r[0], "scales": r[1]}
    if b is not None:
        arrays["biases"] = b
    arrays["out"] = y
    emit(name, arrays, [MODES[mode], gs, bits, int(transpose)])


for mode in ["affine", "mxfp4", "mxfp8", "nvfp4"]:
    gs, bits = DEFAULTS[mode]
    for tr in [True, False]:
        n, k = (24, 2 * gs) if tr else (2 * gs, 24)
        if not tr and mode == "affine":
            k = 40
        wsh = (n, k) if tr else (k, n)
        qmm_case("m_%s_t%d_f32" % (mode, tr), mode, gs, bits, tr, "float32",
                 "float32", (3, k), wsh)
        qmm_case("m_%s_t%d_bf16" % (mode, tr), mode, gs, bits, tr, "bfloat16",
                 "bfloat16", (2, k), wsh)
for bits in [2, 3, 5, 6, 8]:
    qmm_case("m_affine_b%d_t1_f32" % bits, "affine", 32, bits, True,
             "float32", "float32", (2, 64), (8, 64))
qmm_case("m_affine_g128_t1_f16", "affine", 128, 4, True, "float16", "float16",
         (2, 256), (12, 256))
qmm_case("m_affine_xf16_sbf16", "affine", 64, 4, True, "float16", "bfloat16",
         (2, 128), (6, 128))
# batch broadcasting: x [2, 1, M, K] with w [3, N, K]
qmm_case("m_affine_batch", "affine", 32, 4, True, "float32", "float32",
         (2, 1, 3, 64), (3, 5, 64))
qmm_case("m_mxfp4_batch", "mxfp4", 32, 4, False, "float32", "float32",
         (3, 2, 16), (1, 16, 64))
qmm_case("m_affine_vec", "affine", 64, 4, True, "float32", "float32", (64,),
         (7, 64))


def gqmm_case(name, mode, gs, bits, transpose, xshape, wshape, lhs, rhs,
              sorted_indices=False):
    wv = (rng.standard_normal(wshape) * 0.5).astype(np.float32)
    r = mx.quantize(mx.array(wv), group_size=gs, bits=bits, mode=mode)
    b = r[2] if mode == "affine" else None
    xv = grid(xshape, step=1 / 16)
    li = mx.array(lhs) if lhs is not None else None
    ri = mx.array(rhs) if rhs is not None else None
    y = mx.gather_qmm(mx.array(xv), r[0], r[1], b, lhs_indices=li,
                      rhs_indices=ri, transpose=transpose, group_size=gs,
                      bits=bits, mode=mode, sorted_indices=sorted_indices)
    arrays = {"x": xv, "wq": r[0], "scales": r[1]}
    if b is not None:
        arrays["biases"] = b
    if lhs is not None:
        arrays["lhs"] = np.asarray(lhs)
    if rhs is not None:
        arrays["rhs"] = np.asarray(rhs)
    arrays["out"] = y
    emit(name, arrays, [MODES[mode], gs, bits, int(transpose),
                        int(sorted_indices)])


E = 6
# MoE decode: x [T, 1, 1, K], rhs [T, k]
gqmm_case("g_affine_moe", "affine", 64, 4, True, (3, 1, 1, 128),
          (E, 16, 128), None, rng.integers(0, E, (3, 2)).astype(np.int32))
gqmm_case("g_mxfp4_moe", "mxfp4", 32, 4, True, (2, 1, 1, 64), (E, 8, 64),
          None, rng.integers(0, E, (2, 3)).astype(np.uint32))
gqmm_case("g_nvfp4_moe_n", "nvfp4", 16, 4, False, (2, 1, 2, 8), (E, 8, 32),
          None, rng.integers(0, E, (2, 2)).astype(np.int64))
# sorted, with lhs gathering x rows (mlx-lm's _gather_sort)
rs = np.sort(rng.integers(0, E, 8)).astype(np.uint32)
gqmm_case("g_affine_sorted", "affine", 32, 3, True, (4, 1, 64), (E, 8, 64),
          rng.integers(0, 4, 8).astype(np.uint32), rs, True)
gqmm_case("g_mxfp8_sorted", "mxfp8", 32, 8, True, (8, 1, 64), (E, 8, 64),
          None, rs, True)
# both indices, broadcasting
gqmm_case("g_affine_both", "affine", 32, 6, True, (3, 2, 32), (E, 5, 32),
          rng.integers(0, 3, (2, 1)).astype(np.int32),
          rng.integers(0, E, (1, 3)).astype(np.int32))


def gmm_case(name, ashape, bshape, lhs, rhs, dt="float32", sorted_indices=False):
    av = as_dtype(grid(ashape, step=1 / 16), dt).astype(np.float32)
    bv = as_dtype(grid(bshape, step=1 / 16), dt).astype(np.float32)
    li = mx.array(lhs) if lhs is not None else None
    ri = mx.array(rhs) if rhs is not None else None
    y = mx.gather_mm(to_mx(av, dt), to_mx(bv, dt), li, ri,
                     sorted_indices=sorted_indices)
    arrays = {"a": to_mx(av, dt), "b": to_mx(bv, dt)}
    if lhs is not None:
        arrays["lhs"] = np.asarray(lhs)
    if rhs is not None:
        arrays["rhs"] = np.asarray(rhs)
    arrays["out"] = y
    emit(name, arrays, [int(sorted_indices)])


gmm_case("mm_moe", (3, 1, 2, 5), (4, 5, 6), None,
         rng.integers(0, 4, (3, 2)).astype(np.int32))
gmm_case("mm_lhs", (3, 2, 5), (4, 5, 6),
         rng.integers(0, 3, (2, 1)).astype(np.int64), None)
gmm_case("mm_both", (3, 2, 8), (4, 8, 3),
         rng.integers(0, 3, (5,)).astype(np.uint8),
         np.sort(rng.integers(0, 4, (5,))).astype(np.uint8))
gmm_case("mm_sorted", (6, 1, 8), (4, 8, 7), None,
         np.sort(rng.integers(0, 4, (6,))).astype(np.int32), "float32", True)

w.close()
