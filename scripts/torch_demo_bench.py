#!/usr/bin/env python3
"""torch_demo_bench.py — the demo model's decode speed under PyTorch /
transformers on the GPU, for comparison with `amorph generate --device cuda`
on the same checkpoint (tests/data/models/demo-hf, the float demo).

Greedy decode at batch 1 after a short prompt, timed with CUDA
synchronization, in three modes: the model as loaded (eager), and with a
static KV cache and torch.compile (mode "reduce-overhead": CUDA graphs),
which is transformers' fastest documented single-stream path.
Prints one line per mode and a last line `BENCH torch_demo ...`.

    python3 scripts/torch_demo_bench.py [MODEL_DIR] [N_TOKENS]
"""
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def timed_generate(model, ids, n, **kw):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n,
                         do_sample=False, **kw)
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/models/demo-hf"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    dev = "cuda"
    results = {}
    for dtype, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(dev)
        model.eval()
        ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]], device=dev)
        with torch.no_grad():
            timed_generate(model, ids, 16)  # warm-up
            _, t = timed_generate(model, ids, n)
        results[f"eager_{name}_tok_s"] = n / t
        print(f"transformers eager {name}: {n} tokens in {t:.3f} s, "
              f"{n / t:.1f} tok/s")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.bfloat16).to(dev)
        model.eval()
        model.forward = torch.compile(model.forward, mode="reduce-overhead")
        with torch.no_grad():
            timed_generate(model, ids, 16, cache_implementation="static")
            timed_generate(model, ids, 16, cache_implementation="static")
            _, t = timed_generate(model, ids, n, cache_implementation="static")
        results["compiled_bf16_tok_s"] = n / t
        print(f"transformers static cache + torch.compile bf16: {n / t:.1f} "
              f"tok/s")
    except Exception as e:  # the hybrid cache may not support it
        print(f"torch.compile path failed: {type(e).__name__}: {e}"[:300])
        results["compiled_bf16_tok_s"] = 0.0
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print("BENCH torch_demo tokens=%d " % n +
          " ".join(f"{k}={v:.1f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
