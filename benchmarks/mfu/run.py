"""Model FLOPs utilisation of LoRA training on the default causal LM, against this machine's matmul peak.

1. Peak: the best FLOP/s of large square matmuls (``torch.matmul`` of n x n, 2·n³ FLOPs each, n up to
   2048, smaller where one product would take too long), for fp32 and bf16, on all the threads torch uses.
2. Achieved: ``adapterkit run recipes/chat_lora.toml`` (LoRA on SmolLM2-135M-Instruct) for a few steps,
   in this process; time is the training loop's.

FLOPs are those the run executes, counted from what the training loss hands the model (a forward hook):
the tokens each pass runs through the blocks (padding-free rows, the shared opening of a row counted once)
and the positions whose logits it asks for (labelled ones only). With the base frozen (the usual 6·N counts
2N forward + 2N activation gradients + 2N weight gradients, and frozen weights need no weight gradients):

    per computed token:  4·N_body (frozen linears of the blocks) + 6·N_lora (forward, both gradients)
    per scored position: 4·N_head (the 576 x 49,152 LM head, forward + activation gradient)

The embedding lookup is not a matmul and is left out; attention score/value products (about
12·layers·width·context FLOPs per token) are not counted, so the figure is a lower bound. Tokens the run
skips (pads, the repeated opening, the LM head on unlabelled positions) are not counted: they are savings
of the method, not work of the hardware. MFU = achieved / peak of the dtype the run trains in. Each precision
(``--precisions``; default fp32 and bf16 where the CPU has bf16 instructions) trains in its own process, one
after the other, so the table compares them side by side with each one's peak RSS. ``train_tokens`` (the
conversations' tokens the Trainer saw) is reported beside ``computed_tokens``.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mfu/run.py               # 10 steps, a few minutes on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mfu/run.py --steps 3 --matmul-seconds 3

Writes ``benchmarks/mfu/results.json`` (or ``--out``). Target on a CPU: MFU >= 40% (fp32); bf16 >= 20% on AMX.
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


def linear_weights(model_name: str) -> tuple[int, int]:
    """(weights of the blocks' nn.Linear layers, weights of the LM head) of the base causal LM, built on
    the meta device (no memory, no load)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from adapterkit.assets import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model_name))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    body = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    return body, head.weight.numel()


class ComputedTokens:
    """Counts, over training passes, the tokens the chat loss runs through the model and the positions it
    scores, by a forward pre-hook on the model it calls."""

    def __init__(self):
        self.computed = self.scored = 0

    def __enter__(self):
        import torch

        from adapterkit.tasks.chat.loss import SelectiveLossSFTTrainer

        self._cls, self._original = SelectiveLossSFTTrainer, SelectiveLossSFTTrainer.compute_loss
        tally = self

        def hook(module, args, kwargs):
            ids = kwargs["input_ids"]
            keep = kwargs.get("logits_to_keep")
            tally.computed += ids.numel()
            tally.scored += keep.numel() if torch.is_tensor(keep) else ids.numel()

        def counting(trainer, model, inputs, *rest, **kw):
            if not model.training:
                return tally._original(trainer, model, inputs, *rest, **kw)
            handle = model.register_forward_pre_hook(hook, with_kwargs=True)
            try:
                return tally._original(trainer, model, inputs, *rest, **kw)
            finally:
                handle.remove()

        SelectiveLossSFTTrainer.compute_loss = counting
        return self

    def __exit__(self, *exc):
        self._cls.compute_loss = self._original


def train_one(recipe: str, precision: str, steps: int, work: Path) -> dict:
    """One precision's training run, in this process (``--child``): the counts the FLOPs need."""
    import adapterkit

    with ComputedTokens() as computed:
        result = adapterkit.run(recipe, overrides={"train.max_steps": steps, "hardware.precision": precision},
                                output=work / f"chat_lora-{precision}", overwrite=True)
    info = result.info
    return {"precision": info["hardware"]["precision"], "model": info["model"], "steps": info["steps"],
            "trainable_params": info["trainable_params"], "train_tokens": info["train_tokens"],
            "train_seconds": info["phase_seconds"]["train"], "peak_rss_mib": info["peak_rss_mib"],
            "eval_loss": result.metrics.get("eval_loss"), "computed_tokens": computed.computed,
            "scored_positions": computed.scored}


def in_child(recipe: str, precision: str, steps: int, work: Path) -> dict:
    """``train_one`` in a fresh process, so that each precision's peak RSS is its own."""
    import subprocess
    import sys

    out = work / f"child-{precision}.json"
    subprocess.run([sys.executable, __file__, "--recipe", recipe, "--steps", str(steps), "--work", str(work),
                    "--child", precision], check=True)
    return json.loads(out.read_text())


def main() -> None:
    from adapterkit.hardware import cpu_has_fast_bf16

    parser = argparse.ArgumentParser(description="matmul peak vs achieved LoRA training FLOP/s")
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "chat_lora.toml"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--precisions", default="fp32,bf16" if cpu_has_fast_bf16() else "fp32",
                        help="trained one after the other, each in its own process (default: fp32,bf16 on CPUs "
                             "with AVX512-BF16 or AMX, else fp32)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="largest n tried")
    parser.add_argument("--matmul-seconds", type=float, default=10.0, help="time spent per dtype on the peak")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        (work / f"child-{args.child}.json").write_text(json.dumps(train_one(args.recipe, args.child, args.steps,
                                                                            work)))
        return

    import torch

    from adapterkit.results import describe_device

    peaks, sizes = {}, {}
    for name in DTYPES:
        peaks[name], sizes[name] = matmul_peak(name, args.matmul_size, args.matmul_seconds)
        print(f"matmul peak {name}: {peaks[name] / 1e9:.1f} GFLOP/s ({sizes[name]}x{sizes[name]}, "
              f"{torch.get_num_threads()} threads)")

    runs = {}
    for precision in args.precisions.split(","):
        info = in_child(args.recipe, precision, args.steps, work)
        n_body, n_head = linear_weights(info["model"])
        n_lora = info["trainable_params"]
        flops = info["computed_tokens"] * (4 * n_body + 6 * n_lora) + info["scored_positions"] * 4 * n_head
        achieved = flops / info["train_seconds"]
        runs[precision] = {**info, "n_body_linear": n_body, "n_head": n_head, "n_lora": n_lora, "flops": flops,
                           "achieved_flops": achieved, "tokens_per_second": info["train_tokens"] / info["train_seconds"],
                           "mfu": achieved / peaks[precision]}
    report = {
        "machine": f"{describe_device({'device': 'cpu'})}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "matmul_sizes": sizes,
        "peak_flops": peaks,
        "recipe": Path(args.recipe).name,
        "steps": args.steps,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    first = next(iter(runs.values()))
    print(f"FLOPs = computed x (4 x {first['n_body_linear'] / 1e6:.1f}M frozen + 6 x {first['n_lora'] / 1e6:.2f}M "
          f"LoRA) + scored x 4 x {first['n_head'] / 1e6:.1f}M head")
    print(f"{'precision':10} {'tokens/s':>9} {'GFLOP/s':>8} {'peak':>8} {'MFU':>6} {'peak RSS':>10} {'eval loss':>10}")
    for precision, r in runs.items():
        print(f"{precision:10} {r['tokens_per_second']:9.1f} {r['achieved_flops'] / 1e9:8.1f} "
              f"{peaks[precision] / 1e9:8.1f} {100 * r['mfu']:5.1f}% {r['peak_rss_mib']:7.0f} MiB "
              f"{r['eval_loss']:10.4f}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
