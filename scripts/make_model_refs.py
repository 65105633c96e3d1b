#!/usr/bin/env python3
"""Hugging Face transformers references (PyTorch, fp32, CPU) for the model
conformance tests, and the tiny random-weight models they run on.

  python3 scripts/make_model_refs.py rand --out ROOT
      Builds one tiny random-weight model of each architecture with
      transformers 5.17 (float32, raw HF layout as save_pretrained writes
      it), saves it to ROOT/rand-qwen3-next, ROOT/rand-qwen3-5-moe,
      ROOT/rand-qwen3-moe and writes ROOT/<model>/ref_rand.safetensors
      (a fixed random prompt of 24 ids, 16 greedy tokens).

  python3 scripts/make_model_refs.py refs --model DIR [--prompts short,long]
      References for an existing HF-layout checkpoint DIR (the demo):
      DIR/ref_<prompt>.safetensors. The prompt ids are taken from
      --prompt-from DIR2/ref_<prompt>.safetensors when given, else encoded
      with DIR/tokenizer.json ("short" = "ROMEO:\\nBut soft, what light",
      "long" = 300 ids of held-out tinyshakespeare).

ROOT / DIR are normally tests/data/models/. These need torch and
transformers (run on the GPU machine; the references themselves are
computed on its CPU in float32 with eager attention, eager experts and the
PyTorch (non-FLA) gated-delta path, so they do not depend on TF32 or GPU
kernels). Every model is reloaded from the saved directory before the
references are computed, so the files test what was written.

Format of the reference files: scripts/model_refs_common.py.
"""
import argparse
import importlib.util
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_refs_common as common  # noqa: E402

import transformers  # noqa: E402
from transformers import (Qwen3MoeConfig, Qwen3MoeForCausalLM,  # noqa: E402
                          Qwen3NextConfig, Qwen3NextForCausalLM)

try:
    from transformers import (Qwen3_5MoeConfig,  # noqa: E402
                              Qwen3_5MoeForConditionalGeneration)
except ImportError:  # pragma: no cover
    Qwen3_5MoeConfig = Qwen3_5MoeForConditionalGeneration = None

SOURCE = "transformers %s fp32 (torch %s, CPU, eager)" % (
    transformers.__version__, torch.__version__.split("+")[0])


def setup():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    for pkg in ("fla", "causal_conv1d", "kernels"):
        print("package %s: %s" % (pkg, "present" if importlib.util.find_spec(
            pkg) else "absent"))


# ------------------------------------------------------------ random models
def cfg_qwen3_next():
    return Qwen3NextConfig(
        vocab_size=256, hidden_size=64, intermediate_size=64,
        num_hidden_layers=4, full_attention_interval=2,  # lin, full, lin, full
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                         "partial_rotary_factor": 0.5},
        linear_num_key_heads=2, linear_num_value_heads=4,
        linear_key_head_dim=32, linear_value_head_dim=16,
        linear_conv_kernel_dim=4,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=True,
        moe_intermediate_size=32, shared_expert_intermediate_size=32,
        decoder_sparse_step=1, mlp_only_layers=[2],  # layer 2: dense MLP
        rms_norm_eps=1e-6, tie_word_embeddings=False,
        max_position_embeddings=512, eos_token_id=None, bos_token_id=None)


def cfg_qwen3_5_moe():
    text = dict(
        vocab_size=256, hidden_size=64, num_hidden_layers=4,  # 3 lin + full
        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        rope_parameters={"rope_type": "default", "rope_theta": 10000000.0,
                         "partial_rotary_factor": 0.25,
                         "mrope_section": [2, 1, 1],
                         "mrope_interleaved": True},
        linear_num_key_heads=1, linear_num_value_heads=2,
        linear_key_head_dim=32, linear_value_head_dim=32,
        linear_conv_kernel_dim=4,
        num_experts=4, num_experts_per_tok=2,
        moe_intermediate_size=32, shared_expert_intermediate_size=32,
        rms_norm_eps=1e-6, tie_word_embeddings=False,
        max_position_embeddings=512, eos_token_id=None, bos_token_id=None)
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                  patch_size=2, temporal_patch_size=2, spatial_merge_size=2,
                  out_hidden_size=64, num_position_embeddings=16,
                  in_channels=3)
    return Qwen3_5MoeConfig(text_config=text, vision_config=vision,
                            image_token_id=250, video_token_id=251,
                            vision_start_token_id=252,
                            vision_end_token_id=253,
                            tie_word_embeddings=False)


def cfg_qwen3_moe():
    return Qwen3MoeConfig(
        vocab_size=256, hidden_size=64, intermediate_size=96,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32,  # != hidden / heads = 16
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        num_experts=6, num_experts_per_tok=2, moe_intermediate_size=32,
        norm_topk_prob=False, decoder_sparse_step=2,  # layers 1, 3 MoE
        mlp_only_layers=[], tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=512, eos_token_id=None, bos_token_id=None)


RAND = {
    # name: (config fn, model class, zero-centred norms, save_original_format)
    "rand-qwen3-next": (cfg_qwen3_next, Qwen3NextForCausalLM, True, True),
    "rand-qwen3-5-moe": (cfg_qwen3_5_moe, Qwen3_5MoeForConditionalGeneration,
                         True, False),
    "rand-qwen3-moe": (cfg_qwen3_moe, Qwen3MoeForCausalLM, False, True),
}


@torch.no_grad()
def randomize(model, zero_centred, seed):
    """Weights large enough that the logits are far from uniform; norm
    weights, A_log and dt_bias random too (so the +1 rule, the gates and the
    conv are all exercised)."""
    g = torch.Generator().manual_seed(seed)

    def normal(p, std, mean=0.0):
        p.copy_(torch.randn(p.shape, generator=g) * std + mean)

    for name, p in model.named_parameters():
        if ".visual." in name or name.startswith("model.visual"):
            normal(p, 0.02) if p.ndim > 1 else None
        elif name.endswith("A_log"):
            p.copy_(torch.empty(p.shape).uniform_(math.log(0.5), math.log(8.0),
                                                  generator=g))
        elif name.endswith("dt_bias"):
            normal(p, 0.5)
        elif "conv1d" in name:
            normal(p, 0.3)
        elif name.endswith("linear_attn.norm.weight"):   # gated norm: plain
            normal(p, 0.15, 1.0)
        elif p.ndim == 1:                                 # RMSNorm weights
            normal(p, 0.15, 0.0 if zero_centred else 1.0)
        elif "embed_tokens" in name:     # tied: also the lm_head
            normal(p, 0.15 if model.config.tie_word_embeddings else 0.5)
        elif name.endswith("mlp.gate.weight"):            # router
            normal(p, 0.3)
        else:
            normal(p, 0.08)


def file_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def make_rand(root):
    for i, (name, (cfg_fn, cls, zc, orig)) in enumerate(RAND.items()):
        t0 = time.time()
        try:
            if cls is None:
                raise RuntimeError("class not available in this transformers")
            torch.manual_seed(100 + i)
            cfg = cfg_fn()
            model = cls(cfg).float()
            randomize(model, zc, 100 + i)
            d = os.path.join(root, name)
            os.makedirs(d, exist_ok=True)
            model.save_pretrained(d, save_original_format=orig)
            keys = list_keys(os.path.join(d, "model.safetensors"))
            print("%s: saved %d tensors, %d bytes; keys e.g. %s" % (
                name, len(keys), file_size(d),
                [k for k in keys if "layers.1." in k][:40]), flush=True)
            m = load(d)
            vocab = text_config(m.config).vocab_size
            prompt = common.rand_prompt(vocab)
            run_refs(m, d, {"rand": prompt}, common.RAND_GREEDY, name)
            print("%s done in %.1fs" % (name, time.time() - t0), flush=True)
        except Exception:
            import traceback
            traceback.print_exc()
            print("FAILED:", name, flush=True)


def list_keys(path):
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        return sorted(f.keys())


# --------------------------------------------------------------- references
def text_config(cfg):
    return getattr(cfg, "text_config", None) or cfg


def load(d, dtype=torch.float32):
    cfg = json.load(open(os.path.join(d, "config.json")))
    cls = {"qwen3_next": Qwen3NextForCausalLM,
           "qwen3_moe": Qwen3MoeForCausalLM,
           "qwen3_5_moe": Qwen3_5MoeForConditionalGeneration}[cfg["model_type"]]
    m = cls.from_pretrained(d, dtype=dtype, attn_implementation="eager")
    try:
        m.set_experts_implementation("eager")
    except Exception as e:  # noqa: BLE001
        print("set_experts_implementation:", e)
    m.eval()
    print("loaded %s: %s, attn=%s experts=%s dtype=%s" % (
        d, cls.__name__, m.config._attn_implementation,
        getattr(m.config, "_experts_implementation", None),
        next(m.parameters()).dtype), flush=True)
    return m


@torch.no_grad()
def greedy(model, prompt, G):
    """Prefill the prompt in one call (all positions' logits), then G-1
    single-token decode steps with the cache."""
    T = len(prompt)
    ids = torch.tensor(np.asarray(prompt, dtype=np.int64))[None]
    out = model(input_ids=ids, position_ids=torch.arange(T)[None],
                use_cache=True)
    plog = out.logits[0].float().numpy().copy()
    pkv = out.past_key_values
    rows, toks = [plog[-1]], []
    for i in range(G):
        t = int(np.argmax(rows[-1]))
        toks.append(t)
        if i == G - 1:
            break
        out = model(input_ids=torch.tensor([[t]]),
                    position_ids=torch.tensor([[T + i]]),
                    past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        rows.append(out.logits[0, -1].float().numpy().copy())
    return plog, np.array(toks, np.int32), np.stack(rows)


@torch.no_grad()
def full_logits(model, ids):
    ids = torch.tensor(np.asarray(ids, dtype=np.int64))[None]
    out = model(input_ids=ids, position_ids=torch.arange(ids.shape[1])[None],
                use_cache=False)
    return out.logits[0].double().numpy()


def run_refs(model, d, prompts, G, name, prefix="ref_", extra=None):
    """Writes d/<prefix><prompt>.safetensors for each prompt and prints
    self-consistency numbers (cached decode vs one full forward; fp32 vs
    fp64)."""
    results = {}
    for pname, prompt in prompts.items():
        t0 = time.time()
        plog, toks, glog = greedy(model, prompt, G)
        T = len(prompt)
        seq = np.concatenate([np.asarray(prompt), toks[:-1]])
        full = full_logits(model, seq)
        d_cache = float(np.max(np.abs(full[T - 1:] - glog)))
        d_prefill = float(np.max(np.abs(full[:T] - plog)))
        # "fp64" is partial: transformers keeps RMSNorm, RoPE and the
        # gated-delta rule in fp32 even for a float64 model
        model64 = model.double()
        full64 = full_logits(model64, seq)
        model.float()
        allrows = np.concatenate([plog, glog[1:]])
        d64 = float(np.max(np.abs(full64 - allrows)))
        meta = dict(source=SOURCE, model=name, prompt_name=pname,
                    notes="prompt logits from one prefill call; greedy "
                          "rows from single-token cached decode steps")
        if extra:
            meta.update(extra)
        path = os.path.join(d, "%s%s.safetensors" % (prefix, pname))
        common.write_ref(path, prompt, plog, toks, glog, **meta)
        mg = common.margins(glog)
        r = {"T": T, "G": G, "prefill_vs_full": d_prefill,
             "decode_vs_full": d_cache, "fp32_vs_fp64": d64,
             "min_margin": float(mg.min()),
             "logit_absmax": float(np.abs(plog).max()),
             "logit_std": float(plog.std()), "seconds": time.time() - t0}
        results[pname] = r
        print("REF %s/%s: %s tokens=%s" % (name, pname, json.dumps(r),
                                          toks.tolist()), flush=True)
    return results


def demo_prompts(d, data, tok=None, prompt_from=None, names=("short", "long")):
    if prompt_from:
        return {n: common.read_ref(os.path.join(
            prompt_from, "ref_%s.safetensors" % n))["prompt"]
            for n in names}, tok
    return common.demo_prompts(os.path.join(d, "tokenizer.json"), data,
                               names), tok


def demo_refs(d, data, tok=None, prompt_from=None, name="demo-hf",
              names=("short", "long"), note=None):
    setup()
    prompts, tok = demo_prompts(d, data, tok, prompt_from, names)
    m = load(d)
    res = run_refs(m, d, prompts, common.DEMO_GREEDY, name,
                   extra={"model_notes": note} if note else None)
    if tok is None and os.path.exists(os.path.join(d, "tokenizer.json")):
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    if tok is not None:
        for pname, prompt in prompts.items():
            r = common.read_ref(os.path.join(d, "ref_%s.safetensors" % pname))
            print("TEXT %s/%s: %r + %r" % (
                name, pname, tok.decode(prompt.tolist())[-200:],
                tok.decode(r["greedy_tokens"].tolist())), flush=True)
    with open(os.path.join(d, "ref_summary.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("rand")
    a.add_argument("--out", default=common.MODELS)
    b = sub.add_parser("refs")
    b.add_argument("--model", required=True)
    b.add_argument("--name", default=None)
    b.add_argument("--data", default=common.CORPUS)
    b.add_argument("--prompt-from", default=None)
    b.add_argument("--prompts", default="short,long")
    b.add_argument("--note", default=None,
                   help="stored as model_notes in the files' metadata")
    args = ap.parse_args()
    print("transformers", transformers.__version__, "torch", torch.__version__,
          flush=True)
    if args.cmd == "rand":
        setup()
        make_rand(args.out)
    else:
        demo_refs(args.model, args.data, prompt_from=args.prompt_from,
                  name=args.name or os.path.basename(args.model.rstrip("/")),
                  names=tuple(args.prompts.split(",")), note=args.note)


if __name__ == "__main__":
    main()
