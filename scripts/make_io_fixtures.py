#!/usr/bin/env python3
"""Writes the fixtures of tests/test_safetensors.c and tests/test_config.c
into tests/data/.

Valid files are written by the `safetensors` package (pip install safetensors)
from NumPy arrays; dtypes NumPy lacks (bfloat16, float8) and the deliberately
corrupt variants are written by `raw_file` below, whose output for ordinary
dtypes is checked against the package's own reader. The expected values of
every valid tensor go to tests/data/st_expected.txt, one tensor a line:

    file name dtype ndim d0 .. dn-1 count v0 .. v(count-1)

Config fixtures (tests/data/config/) are config.json files as the publishers
ship them (values from ../shared/spec/qwen3next.md section 1), as current
transformers rewrites them, as mlx-community quantizes them, and broken.

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


QWEN3_NEXT_80B = {  # Qwen/Qwen3-Next-80B-A3B-Instruct config.json
    "architectures": ["Qwen3NextForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 151643, "decoder_sparse_step": 1,
    "eos_token_id": 151645, "full_attention_interval": 4, "head_dim": 256,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 5120, "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128, "linear_num_key_heads": 16,
    "linear_num_value_heads": 32, "linear_value_head_dim": 128,
    "max_position_embeddings": 262144, "mlp_only_layers": [],
    "model_type": "qwen3_next", "moe_intermediate_size": 512,
    "norm_topk_prob": True, "num_attention_heads": 16, "num_experts": 512,
    "num_experts_per_tok": 10, "num_hidden_layers": 48,
    "num_key_value_heads": 2, "output_router_logits": False,
    "partial_rotary_factor": 0.25, "rms_norm_eps": 1e-06, "rope_scaling": None,
    "rope_theta": 10000000, "router_aux_loss_coef": 0.001,
    "shared_expert_intermediate_size": 512, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.57.0.dev0",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
}

QWEN3_30B = {  # Qwen/Qwen3-30B-A3B config.json
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 151643, "decoder_sparse_step": 1,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144,
    "max_position_embeddings": 40960, "max_window_layers": 48,
    "mlp_only_layers": [], "model_type": "qwen3_moe",
    "moe_intermediate_size": 768, "norm_topk_prob": True,
    "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
    "num_hidden_layers": 48, "num_key_value_heads": 4,
    "output_router_logits": False, "rms_norm_eps": 1e-06, "rope_scaling": None,
    "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "sliding_window": None, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
}


def qwen35_moe():
    """Qwen3.5/3.6-35B-A3B: the text model sits in text_config, RoPE in
    rope_parameters (current transformers), explicit layer_types."""
    types = ["full_attention" if (i + 1) % 4 == 0 else "linear_attention"
             for i in range(40)]
    return {
        "architectures": ["Qwen3_5MoeForConditionalGeneration"],
        "image_token_id": 248056, "model_type": "qwen3_5_moe",
        "text_config": {
            "attention_bias": False, "attention_dropout": 0.0,
            "attn_output_gate": True, "bos_token_id": None,
            "dtype": "bfloat16", "eos_token_id": 248046,
            "full_attention_interval": 4, "head_dim": 256,
            "hidden_act": "silu", "hidden_size": 2048,
            "initializer_range": 0.02, "layer_types": types,
            "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128,
            "linear_num_key_heads": 16, "linear_num_value_heads": 32,
            "linear_value_head_dim": 128, "max_position_embeddings": 262144,
            "model_type": "qwen3_5_moe_text", "moe_intermediate_size": 512,
            "mtp_num_hidden_layers": 1, "num_attention_heads": 16,
            "num_experts": 256, "num_experts_per_tok": 8,
            "num_hidden_layers": 40, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_parameters": {"mrope_interleaved": True,
                                "mrope_section": [11, 11, 10],
                                "partial_rotary_factor": 0.25,
                                "rope_theta": 10000000,
                                "rope_type": "default"},
            "shared_expert_intermediate_size": 512,
            "tie_word_embeddings": False, "use_cache": True,
            "vocab_size": 248320,
        },
        "tie_word_embeddings": False, "transformers_version": "4.57.0.dev0",
        "video_token_id": 248057,
        "vision_config": {"depth": 27, "hidden_size": 1152,
                          "model_type": "qwen3_5_moe", "num_heads": 16,
                          "out_hidden_size": 2048, "patch_size": 16},
        "vision_end_token_id": 248054, "vision_start_token_id": 248053,
    }


def mlx_quant(cfg, prefix, layers):
    """mlx-community 4-bit: 8-bit router and shared-expert gate (quant_predicate)."""
    q = {"group_size": 64, "bits": 4, "mode": "affine"}
    for i in range(layers):
        for m in ("mlp.gate", "mlp.shared_expert_gate"):
            q[f"{prefix}model.layers.{i}.{m}"] = {"group_size": 64, "bits": 8}
    return dict(cfg, quantization=q, quantization_config=q)


def configs():
    d = os.path.join(OUT, "config")
    os.makedirs(d, exist_ok=True)

    def put(name, obj, text=None):
        with open(os.path.join(d, name), "w") as f:
            f.write(text if text is not None else json.dumps(obj, indent=2))

    put("qwen3_next_80b.json", QWEN3_NEXT_80B)
    put("qwen3_next_80b_mlx4.json", mlx_quant(QWEN3_NEXT_80B, "", 48))
    # As transformers >= 5 saves it: RoPE moved into rope_parameters.
    new = {k: v for k, v in QWEN3_NEXT_80B.items()
           if k not in ("rope_theta", "partial_rotary_factor", "rope_scaling",
                        "full_attention_interval")}
    new["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000000,
                              "partial_rotary_factor": 0.25}
    new["layer_types"] = ["full_attention" if (i + 1) % 4 == 0
                          else "linear_attention" for i in range(48)]
    put("qwen3_next_80b_v5.json", new)
    put("qwen3_5_moe_35b.json", qwen35_moe())
    q = mlx_quant(qwen35_moe(), "language_model.", 40)
    q["quantization"]["language_model.model.layers.0.mlp.shared_expert_gate"] = False
    q["quantization"]["language_model.model.layers.1.mlp.gate"] = {
        "mode": "mxfp8"}
    put("qwen3_5_moe_35b_mlx4.json", q)
    put("qwen3_30b_a3b.json", QWEN3_30B)
    # A small hybrid exercising the rarer fields: dense layers, tied
    # embeddings, yarn rope scaling, an eos list, other head dims.
    small = {
        "model_type": "qwen3_next", "hidden_size": 64, "num_hidden_layers": 6,
        "vocab_size": 300, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 32, "intermediate_size": 96, "moe_intermediate_size": 16,
        "shared_expert_intermediate_size": 24, "num_experts": 8,
        "num_experts_per_tok": 2, "norm_topk_prob": False,
        "decoder_sparse_step": 2, "mlp_only_layers": [3],
        "full_attention_interval": 3, "linear_num_key_heads": 2,
        "linear_num_value_heads": 4, "linear_key_head_dim": 16,
        "linear_value_head_dim": 8, "linear_conv_kernel_dim": 3,
        "rms_norm_eps": 1e-5, "rope_theta": 5e5, "partial_rotary_factor": 0.5,
        "rope_scaling": {"type": "yarn", "factor": 4.0,
                         "original_max_position_embeddings": 32768},
        "tie_word_embeddings": True, "max_position_embeddings": 131072,
        "eos_token_id": [7, 9],
    }
    put("small_custom.json", small)
    # Only the required fields: every other value is a transformers default.
    put("qwen3_next_minimal.json", {"architectures": ["Qwen3NextForCausalLM"],
                                    "hidden_size": 128, "num_hidden_layers": 8,
                                    "vocab_size": 1000,
                                    "num_attention_heads": 4})
    put("qwen3_moe_minimal.json", {"model_type": "qwen3_moe",
                                   "hidden_size": 256, "num_hidden_layers": 2,
                                   "vocab_size": 1000,
                                   "num_attention_heads": 8})

    # Broken ones.
    put("bad_json.json", None, '{"model_type": "qwen3_next", "hidden_size": 20')
    put("bad_top.json", None, "[1, 2]")
    put("bad_type.json", dict(QWEN3_NEXT_80B, hidden_size="2048"))
    put("bad_arch.json", dict(QWEN3_NEXT_80B, model_type="llama"))
    put("bad_missing.json", {k: v for k, v in QWEN3_NEXT_80B.items()
                             if k != "num_hidden_layers"})
    put("bad_layer_types.json", dict(new, layer_types=new["layer_types"][:47]))
    put("bad_layer_kind.json", dict(new, layer_types=["mamba"] * 48))
    put("bad_quant_bits.json", dict(QWEN3_NEXT_80B, quantization={
        "group_size": 64, "bits": 4,
        "model.layers.0.mlp.gate": {"group_size": 64, "bits": 9}}))
    put("bad_topk.json", dict(QWEN3_NEXT_80B, num_experts_per_tok=600))
    put("bad_mlp_only.json", dict(QWEN3_NEXT_80B, mlp_only_layers=[48]))
    put("bad_heads.json", dict(QWEN3_NEXT_80B, num_key_value_heads=3))
    put("bad_negative.json", dict(QWEN3_NEXT_80B, vocab_size=-5))
    put("bad_text_config.json", dict(qwen35_moe(), text_config=[1]))
    put("bad_rope.json", dict(QWEN3_NEXT_80B, rope_theta="1e7"))
    put("bad_eps.json", dict(QWEN3_NEXT_80B, rms_norm_eps=True))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    check_raw_writer()
    all_dtypes()
    sharded()
    corrupt()
    configs()
    with open(os.path.join(OUT, "st_expected.txt"), "w") as fp:
        fp.write("\n".join(expected) + "\n")
