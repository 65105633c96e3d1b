#!/usr/bin/env python3
"""The 4-bit MLX demo and the mlx-lm references (CPU; needs mlx + mlx-lm,
no torch).

  python3 scripts/mlx_refs.py convert
      tests/data/models/demo-hf (raw HF, bf16) -> models/demo: mlx-lm's
      convert with -q --q-bits 4 --q-group-size 64 (affine; mlx-lm's
      qwen3_next predicate puts mlp.gate and mlp.shared_expert_gate at 8
      bits), bf16 scales/biases and non-quantized weights, plus the demo
      tokenizer files. This is the default `make demo` model.

  python3 scripts/mlx_refs.py dequant --out DIR
      models/demo back to a float32 raw-HF-layout checkpoint in DIR (for a
      transformers reference of the 4-bit model): every quantized matrix
      dequantized (w = scales * q + biases, in fp32), sanitize undone
      (experts un-stacked to experts.<e>.*, conv1d (C, K, 1) -> (C, 1, K),
      1 subtracted from the zero-centred norms).

  python3 scripts/mlx_refs.py refs
      mlx-lm references, float32, written as mlx_<prompt>.safetensors:
        models/demo (4-bit)   -> tests/data/models/demo-q4/mlx_{short,long}
        demo-hf (raw HF bf16) -> tests/data/models/demo-hf/mlx_short
        rand-*  (raw HF fp32) -> tests/data/models/rand-*/mlx_rand
      with the prompts of the transformers files (ref_*.safetensors), and
      prints / writes tests/data/models/agreement.json: max |logit diff|
      between every pair of references of the same model and prompt.

"float32" here: every floating tensor of the checkpoint (bf16 weights,
norms, scales, biases) is cast to float32 *before* mlx-lm's sanitize, so the
+1 of the zero-centred norms is done in fp32 as transformers does (stock
mlx-lm adds it in bf16 and then differs by ~1e-2 in the logits; `refs`
prints that number too). Quantized weights stay 4/8-bit (quantized_matmul
with fp32 scales and biases). mlx-lm on the CPU runs the gated-delta rule
with its pure-ops path (the Metal kernel is GPU only).

Some transformers-5.17 configs lack keys mlx-lm needs; they are supplied as
overrides (MLX_OVERRIDES), not written to the files.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_refs_common as common  # noqa: E402

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import mlx_lm  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402
from mlx_lm.utils import _get_classes, load_model  # noqa: E402

ROOT = common.ROOT
DEMO_HF = os.path.join(common.MODELS, "demo-hf")
DEMO_Q4_REFS = os.path.join(common.MODELS, "demo-q4")
DEMO_MLX = os.path.join(ROOT, "models", "demo")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# What mlx-lm 0.32 needs but transformers 5.17 does not write (or writes
# stale): qwen3_next reads top-level rope_theta / partial_rotary_factor /
# full_attention_interval (transformers writes rope_parameters + layer_types
# and a stale top-level partial_rotary_factor of 0.25); qwen3_moe reads
# num_experts and rope_theta (transformers writes num_local_experts +
# rope_parameters).
MLX_OVERRIDES = {
    "rand-qwen3-next": {"rope_theta": 1000000.0, "partial_rotary_factor": 0.5,
                        "full_attention_interval": 2},
    "rand-qwen3-moe": {"rope_theta": 1000000.0, "num_experts": 6},
    "rand-qwen3-5-moe": {},
}
SOURCE = "mlx-lm %s fp32 (mlx %s, CPU)" % (mlx_lm.__version__, mx.__version__)


# ------------------------------------------------------------------ loading
def _f32(v):
    return v.astype(mx.float32) if mx.issubdtype(v.dtype, mx.floating) else v


def _fp32_classes(config):
    cls, args = _get_classes(config)

    class F32(cls):
        def sanitize(self, weights):
            weights = {k: _f32(v) for k, v in weights.items()}
            if hasattr(cls, "sanitize"):
                return cls.sanitize(self, weights)
            return weights

    return F32, args


def load_mlx(path, overrides=None, fp32=True):
    from pathlib import Path
    model, config = load_model(
        Path(path), model_config=overrides or {},
        get_model_classes=_fp32_classes if fp32 else _get_classes)
    if fp32:
        from mlx.utils import tree_map
        model.update(tree_map(_f32, model.parameters()))
        mx.eval(model.parameters())
    return model, config


# ---------------------------------------------------------------- reference
def greedy(model, prompt, G):
    cache = make_prompt_cache(model)
    logits = model(mx.array(np.asarray(prompt, np.int32))[None], cache=cache)
    plog = np.array(logits[0].astype(mx.float32))
    rows, toks = [plog[-1]], []
    for i in range(G):
        t = int(np.argmax(rows[-1]))
        toks.append(t)
        if i == G - 1:
            break
        out = model(mx.array([[t]], dtype=mx.int32), cache=cache)
        rows.append(np.array(out[0, -1].astype(mx.float32)))
    return plog, np.array(toks, np.int32), np.stack(rows)


def full_logits(model, ids):
    out = model(mx.array(np.asarray(ids, np.int32))[None])
    return np.array(out[0].astype(mx.float32))


def run(model, prompt, G, path, name, pname, store=True, notes=""):
    plog, toks, glog = greedy(model, prompt, G)
    T = len(prompt)
    full = full_logits(model, np.concatenate([np.asarray(prompt),
                                              toks[:-1]]))
    r = {"prefill_vs_full": float(np.abs(full[:T] - plog).max()),
         "decode_vs_full": float(np.abs(full[T - 1:] - glog).max()),
         "min_margin": float(common.margins(glog).min())}
    print("MLX %s/%s: %s" % (name, pname, json.dumps(r)), flush=True)
    if store:
        common.write_ref(path, prompt, plog, toks, glog, source=SOURCE,
                         model=name, prompt_name=pname,
                         notes="floating tensors cast to fp32 before "
                               "sanitize; prompt logits from one call, "
                               "greedy rows from cached decode steps. " +
                               notes)
    return {"prompt_logits": plog, "greedy_tokens": toks,
            "greedy_logits": glog}


# ------------------------------------------------------------------ convert
def convert(args):
    from mlx_lm import convert as mlx_convert
    mx.random.seed(0)
    if os.path.exists(DEMO_MLX):
        shutil.rmtree(DEMO_MLX)
    mlx_convert(DEMO_HF, DEMO_MLX, quantize=True, q_group_size=64, q_bits=4,
                q_mode="affine", dtype="bfloat16")
    keep = {"config.json", "model.safetensors"} | set(TOKENIZER_FILES)
    for f in os.listdir(DEMO_MLX):
        if f not in keep:
            os.remove(os.path.join(DEMO_MLX, f))
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(DEMO_HF, f), os.path.join(DEMO_MLX, f))
    cfg = json.load(open(os.path.join(DEMO_MLX, "config.json")))
    print("quantization:", json.dumps(cfg.get("quantization")))
    for f in sorted(os.listdir(DEMO_MLX)):
        print("%-24s %9d" % (f, os.path.getsize(os.path.join(DEMO_MLX, f))))


# ------------------------------------------------------------------ dequant
NORMS = (".input_layernorm.weight", ".post_attention_layernorm.weight",
         "model.norm.weight", ".q_norm.weight", ".k_norm.weight")


def dequant(args):
    cfg = json.load(open(os.path.join(DEMO_MLX, "config.json")))
    q = cfg["quantization"]
    w = mx.load(os.path.join(DEMO_MLX, "model.safetensors"))
    out = {}
    for k, v in w.items():
        if k.endswith(".scales") or k.endswith(".biases"):
            continue
        base = k[:-len(".weight")] if k.endswith(".weight") else None
        if base and base + ".scales" in w:
            p = q.get(base) if isinstance(q.get(base), dict) else q
            v = mx.dequantize(v, _f32(w[base + ".scales"]),
                              _f32(w[base + ".biases"]),
                              group_size=p["group_size"], bits=p["bits"],
                              mode=p.get("mode", "affine"))
        v = _f32(v)
        if ".switch_mlp." in k:          # (E, out, in) -> experts.<e>.*
            pre, post = k.split(".switch_mlp.")
            for e in range(v.shape[0]):
                out["%s.experts.%d.%s" % (pre, e, post)] = v[e]
            continue
        if k.endswith("conv1d.weight"):   # (C, K, 1) -> (C, 1, K)
            v = v.transpose(0, 2, 1)
        if any(k.endswith(s) for s in NORMS):
            v = v - 1.0
        out[k] = v
    os.makedirs(args.out, exist_ok=True)
    mx.save_safetensors(os.path.join(args.out, "model.safetensors"), out,
                        metadata={"format": "pt"})
    hcfg = json.load(open(os.path.join(DEMO_HF, "config.json")))
    hcfg["dtype"] = "float32"
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(hcfg, f, indent=2, sort_keys=True)
    for f in TOKENIZER_FILES + ("generation_config.json",):
        shutil.copy(os.path.join(DEMO_HF, f), os.path.join(args.out, f))
    print("dequantized %d tensors -> %s" % (len(out), args.out))


# --------------------------------------------------------------------- refs
def demo_prompts():
    """The demo prompts, checked against the prompts of any transformers
    reference file present."""
    prompts = common.demo_prompts(os.path.join(DEMO_HF, "tokenizer.json"),
                                  common.CORPUS)
    for n, ids in prompts.items():
        for d in (DEMO_HF, DEMO_Q4_REFS):
            p = os.path.join(d, "ref_%s.safetensors" % n)
            if os.path.exists(p):
                assert np.array_equal(common.read_ref(p)["prompt"], ids), p
    return prompts


def read_if(path):
    return common.read_ref(path) if os.path.exists(path) else None


def refs(args):
    agree = {}

    def cmp(tag, a, b):
        c = common.compare(a, b)
        agree[tag] = c
        print("AGREE %-44s %s" % (tag, json.dumps(c)), flush=True)

    mx.set_default_device(mx.cpu)
    hf_prompts = demo_prompts()

    # 4-bit demo
    m, _ = load_mlx(DEMO_MLX)
    q4 = {}
    for pname, prompt in hf_prompts.items():
        q4[pname] = run(m, prompt, common.DEMO_GREEDY,
                        os.path.join(DEMO_Q4_REFS, "mlx_%s.safetensors" %
                                     pname), "demo-q4 (models/demo)", pname)
        deq = read_if(os.path.join(DEMO_Q4_REFS, "ref_%s.safetensors" %
                                   pname))
        if deq is not None:
            cmp("demo-q4/%s transformers-dequant vs mlx" % pname, deq,
                q4[pname])
    if args.check_dequant:
        m2, _ = load_mlx(args.check_dequant)
        for pname, prompt in hf_prompts.items():
            r = run(m2, prompt, common.DEMO_GREEDY, None, "dequant", pname,
                    store=False)
            cmp("demo-q4/%s mlx dequant-HF vs mlx q4" % pname, r, q4[pname])

    # float demo (raw HF layout, sanitized by mlx-lm)
    m, _ = load_mlx(DEMO_HF)
    for pname, prompt in hf_prompts.items():
        r = run(m, prompt, common.DEMO_GREEDY,
                os.path.join(DEMO_HF, "mlx_%s.safetensors" % pname),
                "demo-hf", pname, store=(pname == "short"))
        hf = read_if(os.path.join(DEMO_HF, "ref_%s.safetensors" % pname))
        if hf is not None:
            cmp("demo-hf/%s transformers vs mlx" % pname, hf, r)
            cmp("demo-hf/%s transformers vs mlx q4" % pname, hf, q4[pname])
        else:
            cmp("demo-hf/%s mlx vs mlx q4" % pname, r, q4[pname])
    m, _ = load_mlx(DEMO_HF, fp32=False)   # stock: bf16 weights, +1 in bf16
    from mlx.utils import tree_map
    m.update(tree_map(_f32, m.parameters()))
    r = run(m, hf_prompts["short"], common.DEMO_GREEDY, None, "demo-hf",
            "short", store=False)
    cmp("demo-hf/short transformers vs stock mlx-lm (bf16 sanitize)",
        common.read_ref(os.path.join(DEMO_HF, "ref_short.safetensors")), r)

    # random-weight models
    for name, over in MLX_OVERRIDES.items():
        d = os.path.join(common.MODELS, name)
        hf = common.read_ref(os.path.join(d, "ref_rand.safetensors"))
        m, _ = load_mlx(d, over)
        r = run(m, hf["prompt"], common.RAND_GREEDY,
                os.path.join(d, "mlx_rand.safetensors"), name, "rand",
                notes="config overrides: %s" % json.dumps(over))
        cmp("%s/rand transformers vs mlx" % name, hf, r)

    if args.no_agreement_file:
        return
    with open(os.path.join(common.MODELS, "agreement.json"), "w") as f:
        json.dump(agree, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("convert")
    d = sub.add_parser("dequant")
    d.add_argument("--out", required=True)
    r = sub.add_parser("refs")
    r.add_argument("--check-dequant", default=None,
                   help="also run mlx-lm on this dequantized HF checkpoint")
    r.add_argument("--no-agreement-file", action="store_true",
                   help="print the agreement table only")
    args = ap.parse_args()
    {"convert": convert, "dequant": dequant, "refs": refs}[args.cmd](args)


if __name__ == "__main__":
    main()
