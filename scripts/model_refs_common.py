"""Shared pieces of the model reference scripts (numpy + safetensors only).

Used by scripts/train_demo.py and scripts/make_model_refs.py (which run with
PyTorch + transformers on a GPU machine) and by scripts/mlx_refs.py (which
runs with mlx-lm on a CPU). Nothing here imports torch or mlx.

Reference file format (read by the C tests with amorph's safetensors reader),
one file per (model, prompt, source):

    prompt         int32   [T]     the prompt token ids
    prompt_logits  float32 [T, V]  logits of every prompt position
    greedy_tokens  int32   [G]     greedy continuation (argmax, no stop token)
    greedy_logits  float32 [G, V]  greedy_logits[i] is the row greedy_tokens[i]
                                   was chosen from; row 0 is the last prompt
                                   position (= prompt_logits[T-1])
    greedy_margin  float32 [G]     top-1 minus top-2 logit of each row (how
                                   safe the argmax is; small = fragile)

__metadata__ (all strings): source (e.g. "transformers 5.17.0 fp32"), model,
prompt_name, and notes.

File names: ref_<prompt>.safetensors   = transformers (PyTorch) reference,
            mlx_<prompt>.safetensors   = mlx-lm reference.
"""
import json
import os

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = os.path.join(ROOT, "tests", "data", "models")

SHORT_PROMPT = "ROMEO:\nBut soft, what light"
LONG_PROMPT_TOKENS = 300     # the long demo prompt is cut to this many ids
DEMO_GREEDY = 64
CORPUS = "/work/shared/data/tinyshakespeare.txt"
RAND_PROMPT_LEN = 24
RAND_GREEDY = 16
RAND_SEED = 1234


def long_prompt_text(corpus_text):
    """~1.2 KB of held-out tinyshakespeare (from the last 10 %, the
    validation split), starting at a speaker line. Cut to
    LONG_PROMPT_TOKENS ids after encoding."""
    n = len(corpus_text)
    start = corpus_text.index("\n\n", int(n * 0.95)) + 2
    return corpus_text[start:start + 1600]


def demo_prompts(tokenizer_json, corpus_path, names=("short", "long")):
    """The demo prompts as int32 ids: "short" = SHORT_PROMPT, "long" = the
    first LONG_PROMPT_TOKENS ids of long_prompt_text()."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    out = {}
    for n in names:
        if n == "short":
            ids = tok.encode(SHORT_PROMPT).ids
        else:
            text = long_prompt_text(open(corpus_path, encoding="utf-8").read())
            ids = tok.encode(text).ids
            assert len(ids) >= LONG_PROMPT_TOKENS
            ids = ids[:LONG_PROMPT_TOKENS]
        out[n] = np.array(ids, np.int32)
    return out


def rand_prompt(vocab_size, n=RAND_PROMPT_LEN, seed=RAND_SEED):
    """A fixed random token sequence (ids in [0, vocab_size))."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab_size, size=n).astype(np.int32)


def margins(logits):
    """top-1 minus top-2 of each row of a [G, V] array."""
    s = np.sort(logits.astype(np.float64), axis=-1)
    return (s[:, -1] - s[:, -2]).astype(np.float32)


def write_ref(path, prompt, prompt_logits, greedy_tokens, greedy_logits,
              **metadata):
    prompt = np.asarray(prompt, dtype=np.int32)
    prompt_logits = np.ascontiguousarray(prompt_logits, dtype=np.float32)
    greedy_tokens = np.asarray(greedy_tokens, dtype=np.int32)
    greedy_logits = np.ascontiguousarray(greedy_logits, dtype=np.float32)
    T, V = prompt_logits.shape
    G = greedy_tokens.shape[0]
    assert prompt.shape == (T,) and greedy_logits.shape == (G, V)
    assert np.array_equal(np.argmax(greedy_logits, -1), greedy_tokens), \
        "greedy_tokens must be the argmax of greedy_logits"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    meta = {k: (v if isinstance(v, str) else json.dumps(v))
            for k, v in metadata.items()}
    save_safetensors(path, {"prompt": prompt, "prompt_logits": prompt_logits,
                            "greedy_tokens": greedy_tokens,
                            "greedy_logits": greedy_logits,
                            "greedy_margin": margins(greedy_logits)}, meta)


_DT = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32",
       np.dtype(np.float16): "F16"}


def save_safetensors(path, tensors, metadata):
    """A plain safetensors writer with a deterministic header (sorted keys,
    tensors in name order), so regenerated files are byte-identical."""
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DT[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_ref(path):
    return load_file(path)


def compare(a, b):
    """Agreement of two references for the same prompt: max abs diff of the
    prompt logits, number of leading greedy tokens that agree, and the max
    abs diff of the greedy logits over that common prefix."""
    pa, pb = a["prompt_logits"], b["prompt_logits"]
    d_prompt = float(np.max(np.abs(pa - pb)))
    ga, gb = a["greedy_tokens"], b["greedy_tokens"]
    n = 0
    while n < min(len(ga), len(gb)) and ga[n] == gb[n]:
        n += 1
    # rows up to and including the first divergence were fed the same tokens
    m = min(n + 1, len(ga), len(gb))
    d_greedy = float(np.max(np.abs(a["greedy_logits"][:m] -
                                   b["greedy_logits"][:m])))
    scale = float(np.max(np.abs(pa)))
    return {"prompt_max_abs": d_prompt, "greedy_common": n,
            "greedy_len": int(min(len(ga), len(gb))),
            "greedy_max_abs": d_greedy, "logit_scale": scale}
