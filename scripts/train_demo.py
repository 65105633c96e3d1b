#!/usr/bin/env python3
"""The bundled demo model: a tiny Qwen3-Next (`qwen3_next`) trained on
tinyshakespeare.

Two stages:

  python3 scripts/train_demo.py tokenizer [--data tinyshakespeare.txt]
      CPU, needs only `tokenizers`. Trains the byte-level BPE tokenizer
      (2045 BPE tokens + <|endoftext|>, <|im_start|>, <|im_end|> = 2048 ids)
      with the Qwen2 pipeline (NFC, Split(Qwen2 regex, Isolated) +
      ByteLevel(add_prefix_space=false, use_regex=false), ByteLevel decoder)
      and writes tests/data/models/demo-hf/{tokenizer.json,
      tokenizer_config.json}.

  python3 scripts/train_demo.py train --out DIR [--seconds 230]
      GPU, needs torch + transformers (5.17). Trains the model with AdamW and
      bf16 autocast on the 90 % split (sequence length 256), keeps the
      weights of the best validation loss, and saves the raw Hugging Face
      checkpoint (bf16 model.safetensors, config.json,
      generation_config.json, the tokenizer files) to DIR. Then writes the
      transformers fp32 references for DIR (scripts/make_model_refs.py:
      ref_short / ref_long) and DIR/train_log.json.
      The committed copy lives in tests/data/models/demo-hf/.

The 4-bit MLX demo (models/demo/) is made from that checkpoint by
scripts/mlx_refs.py. Deterministic given the seeds (up to GPU
nondeterminism in training).
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_refs_common as common  # noqa: E402
# The Qwen byte-level BPE pipeline (NFC, regex split, ByteLevel), shared
# with the tokenizer goldens.
from make_tokenizer_goldens import SPECIALS, qwen_pipeline  # noqa: E402

DATA = common.CORPUS
DEMO_HF = os.path.join(common.MODELS, "demo-hf")
VOCAB = 2048
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] "
          "+ '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")

# The model (every quantized input dim divisible by 64).
DEMO_CONFIG = dict(
    vocab_size=VOCAB,
    hidden_size=128,
    intermediate_size=256,          # dense MLP size: unused (all layers MoE)
    num_hidden_layers=8,
    full_attention_interval=4,      # layers 3 and 7 are attention
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                     "partial_rotary_factor": 0.25},
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=32,
    linear_value_head_dim=32,
    linear_conv_kernel_dim=4,
    num_experts=16,
    num_experts_per_tok=2,
    norm_topk_prob=True,
    moe_intermediate_size=64,
    shared_expert_intermediate_size=128,
    decoder_sparse_step=1,
    mlp_only_layers=[],
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    max_position_embeddings=4096,
    attention_bias=False,
    router_aux_loss_coef=0.001,
)
SEQ = 256
BATCH = 32
LR = 2e-3
WD = 0.1
WARMUP = 100
SEED = 0


# ---------------------------------------------------------------- tokenizer
def train_tokenizer(data, out_dir):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    qwen_pipeline(tok)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - len(SPECIALS), min_frequency=2, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tok.train([data], trainer)
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "model_max_length": DEMO_CONFIG["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
        "chat_template": CHATML,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    text = open(data, encoding="utf-8").read()
    ids = tok.encode(text).ids
    print("tokenizer: %d ids, %d merges; tinyshakespeare = %d chars -> %d "
          "tokens (%.2f chars/token)" % (
              tok.get_vocab_size(),
              len(json.loads(tok.to_str())["model"]["merges"]), len(text),
              len(ids), len(text) / len(ids)))
    print("short prompt ids:", tok.encode(common.SHORT_PROMPT).ids)


# ---------------------------------------------------------------- training
def build_config(eos_id):
    from transformers import Qwen3NextConfig
    return Qwen3NextConfig(eos_token_id=eos_id, bos_token_id=None,
                           pad_token_id=None, **DEMO_CONFIG)


def train(args):
    import numpy as np
    import torch
    from tokenizers import Tokenizer
    from transformers import Qwen3NextForCausalLM, GenerationConfig
    import make_model_refs as mrefs

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    eos_id = tok.token_to_id("<|endoftext|>")
    text = open(args.data, encoding="utf-8").read()
    n = len(text)
    train_ids = np.array(tok.encode(text[:int(n * 0.9)]).ids, dtype=np.int64)
    val_ids = np.array(tok.encode(text[int(n * 0.9):]).ids, dtype=np.int64)
    print("train %d tokens, val %d tokens" % (len(train_ids), len(val_ids)),
          flush=True)
    train_t = torch.from_numpy(train_ids).to(dev)
    val_t = torch.from_numpy(val_ids).to(dev)

    config = build_config(eos_id)
    config._attn_implementation = "sdpa"
    config._experts_implementation = "eager"
    model = Qwen3NextForCausalLM(config).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    print("params: %d" % n_params, flush=True)

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "A_log" in name or "dt_bias" in name
         else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator(device="cpu").manual_seed(SEED)

    def batch(src, bs):
        ix = torch.randint(0, len(src) - SEQ - 1, (bs,), generator=gen)
        x = torch.stack([src[i:i + SEQ] for i in ix.tolist()])
        y = torch.stack([src[i + 1:i + SEQ + 1] for i in ix.tolist()])
        return x, y

    def lm_loss(x, y, aux=False):
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                            enabled=dev == "cuda"):
            out = model(input_ids=x, output_router_logits=aux)
        logits = out.logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits.view(-1, logits.shape[-1]), y.reshape(-1))
        if aux and getattr(out, "aux_loss", None) is not None:
            return loss, loss + config.router_aux_loss_coef * out.aux_loss
        return loss, loss

    # fixed validation batches: contiguous windows over the whole split
    nval = (len(val_t) - 1) // SEQ
    vstarts = torch.linspace(0, len(val_t) - SEQ - 2, min(nval, 48)).long()
    vx = torch.stack([val_t[i:i + SEQ] for i in vstarts.tolist()])
    vy = torch.stack([val_t[i + 1:i + SEQ + 1] for i in vstarts.tolist()])

    @torch.no_grad()
    def evaluate():
        model.eval()
        tot = 0.0
        for i in range(0, len(vx), 16):
            tot += lm_loss(vx[i:i + 16], vy[i:i + 16])[0].item() * \
                len(vx[i:i + 16])
        model.train()
        return tot / len(vx)

    log = {"config": DEMO_CONFIG, "seq": SEQ, "batch": BATCH, "lr": LR,
           "weight_decay": WD, "params": n_params, "evals": []}
    model.train()
    t0 = time.time()
    step, total_steps = 0, None
    best = (float("inf"), -1, None)
    while True:
        if total_steps is None and step == 30:
            per = (time.time() - t0) / 30
            total_steps = max(100, int(args.seconds / per * 0.92))
            print("%.3f s/step -> %d steps" % (per, total_steps), flush=True)
        T = total_steps or 10 ** 9
        lr = LR * min(1.0, (step + 1) / WARMUP)
        if total_steps:
            prog = min(1.0, max(0.0, (step - WARMUP) / (T - WARMUP)))
            lr = LR * min(1.0, (step + 1) / WARMUP) * \
                (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train_t, BATCH)
        loss, total = lm_loss(x, y, aux=True)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        last = total_steps is not None and step >= total_steps
        if step % 100 == 0 or last:
            v = evaluate()
            el = time.time() - t0
            log["evals"].append({"step": step, "train": loss.item(),
                                 "val": v, "lr": lr, "seconds": el})
            print("step %5d  train %.4f  val %.4f  lr %.2e  %.0fs" % (
                step, loss.item(), v, lr, el), flush=True)
            if v < best[0]:
                best = (v, step, {k: t.detach().clone() for k, t in
                                  model.state_dict().items()})
        if last:
            break
    log["best_val"], log["best_step"] = best[0], best[1]
    log["train_seconds"] = time.time() - t0
    print("best val %.4f at step %d" % (best[0], best[1]), flush=True)
    model.load_state_dict(best[2])

    # save: raw HF layout, bf16 weights
    out = args.out
    os.makedirs(out, exist_ok=True)
    model = model.to("cpu").to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=eos_id, do_sample=True,
        temperature=0.8, top_p=0.95)
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src, dst = os.path.join(args.tokenizer, f), os.path.join(out, f)
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.copy(src, dst)
    # mlx-lm (and released Qwen3-Next configs) read rope_theta,
    # partial_rotary_factor and full_attention_interval at the top level;
    # transformers 5.17 writes rope_parameters and layer_types. Keep both.
    cpath = os.path.join(out, "config.json")
    cfg = json.load(open(cpath))
    cfg["rope_theta"] = DEMO_CONFIG["rope_parameters"]["rope_theta"]
    cfg["partial_rotary_factor"] = \
        DEMO_CONFIG["rope_parameters"]["partial_rotary_factor"]
    cfg["full_attention_interval"] = DEMO_CONFIG["full_attention_interval"]
    with open(cpath, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print("saved", out, sorted(os.listdir(out)), flush=True)

    # sample text (bf16 weights, fp32 compute) for eyeballing
    mrefs.demo_refs(out, args.data, tok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("tokenizer")
    a.add_argument("--data", default=DATA)
    a.add_argument("--out", default=DEMO_HF)
    b = sub.add_parser("train")
    b.add_argument("--data", default=DATA)
    b.add_argument("--tokenizer", default=DEMO_HF)
    b.add_argument("--out", required=True)
    b.add_argument("--seconds", type=float, default=230)
    args = ap.parse_args()
    if args.cmd == "tokenizer":
        train_tokenizer(args.data, args.out)
    else:
        train(args)


if __name__ == "__main__":
    main()
