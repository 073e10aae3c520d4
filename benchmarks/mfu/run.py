"""Model FLOPs utilisation of LoRA training on the default causal LM, against this machine's matmul peak.

1. Peak: the best FLOP/s of large square matmuls (``torch.matmul`` of n x n, 2·n³ FLOPs each, n up to
   2048, smaller where one product would take too long), for fp32 and bf16, on all the threads torch uses.
2. Achieved: ``adapterkit run recipes/chat_lora.toml`` (LoRA on SmolLM2-135M-Instruct) for a few steps,
   in this process; tokens are the non-padding input tokens the Trainer saw, time is the training loop's.

FLOPs per trained token, with the base frozen (the usual 6·N counts 2N forward + 2N activation
gradients + 2N weight gradients, and frozen weights need no weight gradients):

    frozen base matmul weights N_base:  2·N_base (forward) + 2·N_base (activation gradients) = 4·N_base
    LoRA parameters N_lora:             6·N_lora (forward, activation and weight gradients)
    FLOPs = tokens · (4·N_base + 6·N_lora)

N_base counts the weights of every ``nn.Linear`` of the base model, ``lm_head`` included (with tied
embeddings it is still a 576 x 49,152 matmul per token); the embedding lookup is not a matmul and is
left out. Attention score/value products (about 12·layers·width·context FLOPs per token) and padding
are not counted, so the figure is a lower bound. MFU = achieved / peak of the dtype the run trains in
(the recipe's precision: fp32 on CPUs without fast bf16).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mfu/run.py               # 10 steps, a few minutes on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mfu/run.py --steps 3 --matmul-seconds 3

Writes ``benchmarks/mfu/results.json`` (or ``--out``). Target on a CPU: MFU >= 40%.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def matmul_peak(dtype_name: str, max_n: int, seconds: float) -> tuple[float, int]:
    """(best FLOP/s, size) of n x n @ n x n within about ``seconds``: n doubles from 256 up to ``max_n``
    while one product stays short (bf16 without hardware support is ~100x slower), then repeats."""
    import torch

    dtype = getattr(torch, DTYPES[dtype_name])
    best, n, deadline = 0.0, 256, time.perf_counter() + seconds

    def once(a, b) -> float:
        start = time.perf_counter()
        torch.matmul(a, b)
        return 2 * a.shape[0] ** 3 / (time.perf_counter() - start)

    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        once(a, b)  # warm-up
        flops = once(a, b)
        best = max(best, flops)
        if n * 2 > max_n or 2 * (2 * n) ** 3 / flops > seconds / 8:
            break
        n *= 2
    while time.perf_counter() < deadline:
        best = max(best, once(a, b))
    return best, n


def linear_weights(model_name: str) -> int:
    """Weights of every nn.Linear of the base causal LM (built on the meta device: no memory, no load)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from adapterkit.assets import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model_name))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def main() -> None:
    parser = argparse.ArgumentParser(description="matmul peak vs achieved LoRA training FLOP/s")
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "chat_lora.toml"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--matmul-size", type=int, default=2048, help="largest n tried")
    parser.add_argument("--matmul-seconds", type=float, default=10.0, help="time spent per dtype on the peak")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--work", default=str(HERE / "work"))
    args = parser.parse_args()

    import torch

    import adapterkit
    from adapterkit.results import describe_device

    peaks, sizes = {}, {}
    for name in DTYPES:
        peaks[name], sizes[name] = matmul_peak(name, args.matmul_size, args.matmul_seconds)
        print(f"matmul peak {name}: {peaks[name] / 1e9:.1f} GFLOP/s ({sizes[name]}x{sizes[name]}, "
              f"{torch.get_num_threads()} threads)")

    result = adapterkit.run(args.recipe, overrides={"train.max_steps": args.steps},
                            output=Path(args.work) / "chat_lora", overwrite=True)
    info = result.info
    precision = info["hardware"]["precision"]
    n_base = linear_weights(info["model"])
    n_lora = info["trainable_params"]
    tokens, seconds = info["train_tokens"], info["phase_seconds"]["train"]
    flops = tokens * (4 * n_base + 6 * n_lora)
    achieved = flops / seconds
    peak = peaks.get(precision, peaks["fp32"])
    report = {
        "machine": f"{describe_device({'device': 'cpu'})}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "matmul_sizes": sizes,
        "peak_flops": peaks,
        "recipe": Path(args.recipe).name,
        "precision": precision,
        "steps": info["steps"],
        "train_tokens": tokens,
        "train_seconds": seconds,
        "n_base_linear": n_base,
        "n_lora": n_lora,
        "flops_per_token": 4 * n_base + 6 * n_lora,
        "achieved_flops": achieved,
        "mfu": achieved / peak,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"LoRA training ({precision}): {tokens:,} tokens in {seconds:.1f} s = {tokens / seconds:,.0f} tokens/s")
    print(f"FLOPs/token = 4 x {n_base / 1e6:.1f}M frozen + 6 x {n_lora / 1e6:.2f}M LoRA = "
          f"{report['flops_per_token'] / 1e6:.0f} MFLOP")
    print(f"achieved {achieved / 1e9:.1f} GFLOP/s of {peak / 1e9:.1f} GFLOP/s {precision} peak: MFU {100 * report['mfu']:.1f}%")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
