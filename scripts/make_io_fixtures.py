#!/usr/bin/env python3
"""Writes the safetensors fixtures of tests/test_safetensors.c into tests/data/.

Valid files are written by the `safetensors` package (pip install safetensors)
from NumPy arrays; dtypes NumPy lacks (bfloat16, float8) and the deliberately
corrupt variants are written by `raw_file` below, whose output for ordinary
dtypes is checked against the package's own reader. The expected values of
every valid tensor go to tests/data/st_expected.txt, one tensor a line:

    file name dtype ndim d0 .. dn-1 count v0 .. v(count-1)

Run from the repository root: python3 scripts/make_io_fixtures.py
"""
import json
import os
import struct

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save, save_file

OUT = "tests/data"
rng = np.random.default_rng(7)
expected = []


def bf16_bits(x):
    """float32 -> bfloat16 bits (round to nearest even), and the rounded value."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    back = (r.astype(np.uint32) << 16).view(np.float32)
    return r, back


def raw_file(path, entries, metadata=None, align=8, header=None, cut=None):
    """entries: list of (name, dtype string, shape, bytes, offsets or None).
    Offsets default to the running position. `align` pads the header (1 = no
    padding, which misaligns the data); `header` replaces the JSON text;
    `cut` truncates the file (negative: drops that many trailing bytes)."""
    h, data, pos = {}, b"", 0
    if metadata is not None:
        h["__metadata__"] = metadata
    for name, dt, shape, raw, offs in entries:
        if offs is None:
            offs = [pos, pos + len(raw)]
        h[name] = {"dtype": dt, "shape": list(shape), "data_offsets": offs}
        data += raw
        pos += len(raw)
    text = header if header is not None else json.dumps(h, separators=(",", ":"))
    hb = text.encode()
    hb += b" " * ((-(8 + len(hb))) % align if align > 1 else 0)
    blob = struct.pack("<Q", len(hb)) + hb + data
    if cut is not None:
        blob = blob[:cut]
    with open(os.path.join(OUT, path), "wb") as f:
        f.write(blob)


def record(file, name, dt, arr_values):
    a = np.asarray(arr_values)
    vals = " ".join(repr(float(v)) for v in a.reshape(-1))
    dims = " ".join(str(d) for d in a.shape)
    expected.append(f"{file} {name} {dt} {a.ndim} {dims} {a.size} {vals}".replace("  ", " "))


def all_dtypes():
    """Every dtype amorph reads, written by the safetensors package, plus a
    bfloat16 tensor and a float8 tensor written raw."""
    t = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f16": rng.standard_normal((2, 3)).astype(np.float16),
        "f64": rng.standard_normal((5,)),
        "i64": rng.integers(-(2**40), 2**40, (2, 2), dtype=np.int64),
        "i32": rng.integers(-1000, 1000, (2, 3, 2), dtype=np.int32),
        "i8": rng.integers(-128, 127, (7,), dtype=np.int8),
        "u8": rng.integers(0, 255, (4, 1), dtype=np.uint8),
        "u32": rng.integers(0, 2**32 - 1, (3,), dtype=np.uint32),
        "bool": rng.integers(0, 2, (2, 3)).astype(bool),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "model.layers.0.mlp.gate.weight": rng.standard_normal((2, 8)).astype(np.float32),
    }
    save_file(t, os.path.join(OUT, "all_dtypes.safetensors"),
              metadata={"format": "mlx", "note": "amorph fixture"})
    names = {np.float32: "F32", np.float16: "F16", np.float64: "F64",
             np.int64: "I64", np.int32: "I32", np.int8: "I8", np.uint8: "U8",
             np.uint32: "U32", np.bool_: "BOOL"}
    for k, v in t.items():
        record("all_dtypes.safetensors", k, names[v.dtype.type], v)

    # bfloat16 (NumPy has no such dtype) and F8_E4M3 (amorph has none);
    # header unpadded so that the F32 tensor is misaligned (copied on load).
    x = rng.standard_normal((2, 5)).astype(np.float32)
    bits, back = bf16_bits(x)
    y = rng.standard_normal((3,)).astype(np.float32)
    raw_file("bf16.safetensors", [
        ("bf16", "BF16", x.shape, bits.tobytes(), None),
        ("f8", "F8_E4M3", [4], bytes([0x38, 0x40, 0xB8, 0x00]), None),
        ("f32_misaligned", "F32", y.shape, y.tobytes(), None),
    ], align=1, header=None)
    record("bf16.safetensors", "bf16", "BF16", back)
    record("bf16.safetensors", "f32_misaligned", "F32", y)


def sharded():
    """A two-shard checkpoint with its index, as mlx-lm / HF write them."""
    d = os.path.join(OUT, "sharded")
    os.makedirs(d, exist_ok=True)
    s1 = {"model.embed_tokens.weight": rng.standard_normal((4, 3)).astype(np.float32),
          "model.norm.weight": rng.standard_normal((3,)).astype(np.float32)}
    s2 = {"lm_head.weight": rng.standard_normal((4, 3)).astype(np.float32)}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    save_file(s1, os.path.join(d, names[0]), metadata={"format": "mlx"})
    save_file(s2, os.path.join(d, names[1]), metadata={"format": "mlx"})
    wm = {k: names[0] for k in s1} | {k: names[1] for k in s2}
    index = {"metadata": {"total_size": 96, "total_parameters": 27},
             "weight_map": wm}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    for k, v in (s1 | s2).items():
        record("sharded", k, "F32", v)

    # The index names a tensor its shard does not hold.
    d2 = os.path.join(OUT, "sharded_missing")
    os.makedirs(d2, exist_ok=True)
    save_file(s1, os.path.join(d2, names[0]))
    save_file(s2, os.path.join(d2, names[1]))
    bad = dict(wm)
    bad["model.layers.0.input_layernorm.weight"] = names[1]
    with open(os.path.join(d2, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": bad}, f)

    # The index points outside the directory.
    d3 = os.path.join(OUT, "sharded_escape")
    os.makedirs(d3, exist_ok=True)
    with open(os.path.join(d3, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {"x": "../all_dtypes.safetensors"}}, f)

    # A directory with a single model.safetensors.
    d4 = os.path.join(OUT, "single")
    os.makedirs(d4, exist_ok=True)
    one = {"w": np.arange(6, dtype=np.int32).reshape(2, 3)}
    save_file(one, os.path.join(d4, "model.safetensors"))
    record("single", "w", "I32", one["w"])


def corrupt():
    """Each file breaks one rule; the test checks status and message."""
    f = np.arange(4, dtype=np.float32).tobytes()  # 16 bytes
    ok = [("a", "F32", [4], f, None), ("b", "F32", [2, 2], f, None)]
    raw_file("truncated.safetensors", ok, cut=-12)  # cut inside the data
    with open(os.path.join(OUT, "tiny.safetensors"), "wb") as fp:
        fp.write(b"\x05\x00\x00")  # shorter than the length prefix
    with open(os.path.join(OUT, "header_past_eof.safetensors"), "wb") as fp:
        fp.write(struct.pack("<Q", 1 << 40) + b'{"a":{}}')
    raw_file("bad_json.safetensors", ok,
             header='{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]')
    raw_file("not_object.safetensors", ok, header="[1, 2, 3]")
    raw_file("overlap.safetensors", [("a", "F32", [4], f, [0, 16]),
                                     ("b", "F32", [4], f, [8, 24])])
    raw_file("out_of_range.safetensors", [("a", "F32", [4], f, [0, 16]),
                                          ("b", "F32", [4], b"", [16, 32])])
    raw_file("size_mismatch.safetensors",
             [("model.embed_tokens.weight", "BF16", [10, 4], bytes(100), [0, 100])])
    raw_file("unknown_dtype.safetensors", [("q", "Q4_K", [4], f, None)])
    raw_file("negative_dim.safetensors", [("n", "F32", [-1, 4], f, [0, 16])])
    raw_file("bad_metadata.safetensors", ok, metadata={"format": 3})
    raw_file("duplicate.safetensors", ok,
             header='{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
                    '"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}')
    raw_file("huge_dims.safetensors",
             [("h", "F32", [2**40, 2**40, 2**40], f, [0, 16])])


def check_raw_writer():
    """raw_file must produce what the reference reader accepts."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw_file("_check.safetensors", [("x", "F32", x.shape, x.tobytes(), None)])
    p = os.path.join(OUT, "_check.safetensors")
    with safe_open(p, framework="numpy") as fp:
        assert np.array_equal(fp.get_tensor("x"), x)
    os.remove(p)
    assert save({"x": x})[8:].lstrip(b"{").startswith(b'"x"')


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    check_raw_writer()
    all_dtypes()
    sharded()
    corrupt()
    with open(os.path.join(OUT, "st_expected.txt"), "w") as fp:
        fp.write("\n".join(expected) + "\n")
