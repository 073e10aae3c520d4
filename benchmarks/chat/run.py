"""Chat SFT throughput: the hand-written trl reference and adapterkit's chat LoRA, side by side.

Both train SmolLM2-135M-Instruct (the packaged asset) with LoRA r=8 / alpha 16 on all linear layers on
the same chatterbot-corpus conversations, batch 8, max length 256, fp32 on the CPU, seed 0, for the same
number of steps (default 100), then evaluate on the same 200 held-out conversations. The split is the
built-in chat recipe's (``recipes/chat_lora.toml``: ``builtin:chatterbot``, held out by
``adapterkit.data.sources.split_rows`` with split seed 0), with the share set so that exactly 200 distinct
conversations are held out (200/2026 instead of the recipe's 0.1, which holds out 203; the shuffle is the same,
so these 200 are 200 of the recipe's 203 and the other 3 join train; a held-out conversation's repeats in the
corpus are held out with it, so none is in train: since 2026-11-28). adapterkit's
``data.eval`` takes only a share or a file, so the split is written once to JSONL files that both read;
adapterkit's recipe has no ``limit_eval``, so both evaluate all of them.

- plain: ``plain_sft.py`` (trl ``SFTTrainer``, padded batches, lr 2e-4, LoRA dropout 0; see its docstring
  for how the loss is put on assistant turns only).
- adapterkit: ``adapterkit run`` on ``recipes/chat_lora.toml`` pointed at the JSONL files, with
  ``train.max_steps`` and ``train.batch_size`` set; its own defaults otherwise (padding-free batches with
  their shared opening computed once, loss head on labelled positions only, random batches,
  lr 5e-4 = the LoRA method's default, dropout 0,
  eval batch 16), once per precision of ``--precisions`` (default: fp32, and bf16 too on CPUs with
  AVX512-BF16 or AMX), each in its own process with its own peak RSS; the plain script stays fp32 as the
  issue's did).

Each runs in its own process, one after the other. Prints seconds per step, non-padding tokens per
second (tokens the trainer saw: ``include_num_input_tokens_seen="non_padding"`` in both), conversations
per second (steps x batch / training-loop seconds), peak RSS and eval loss of both, and the ratios
adapterkit / plain of tokens/s and conversations/s. Both draw random batches (adapterkit's padding-free
chat batches are not grouped by length), so the two see batches of the same size distribution.

The issue's reference figures (114 non-padding tokens/s, 8.1 GB peak for the plain trl script) were
measured on a Xeon with AMX (fast bf16 matmuls); this script measures both side by side on the current
machine, so compare the ratios, not the absolute figures, with the issue.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/chat/run.py                              # 100 steps each
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/chat/run.py --max-steps 2 --eval-rows 16  # smoke check

Writes ``benchmarks/chat/results.json`` (or ``--out``); data, runs and logs go to ``--work``.
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
EVAL_CONVERSATIONS = 200
BATCH = 8


def write_split(folder: Path, eval_rows: int | None) -> tuple[Path, Path, int, int]:
    """The chat recipe's split with 200 held out, as JSONL files both trainers read (``eval_rows``: keep only
    the first that many held-out conversations, for a quick check)."""
    from adapterkit.data.builtin import chatterbot
    from adapterkit.data.sources import split_rows

    rows = chatterbot()
    train, evaluation = split_rows(rows, EVAL_CONVERSATIONS / len(rows), seed=0)
    assert len(evaluation) == EVAL_CONVERSATIONS, len(evaluation)
    if eval_rows:
        evaluation = evaluation[:eval_rows]
    paths = []
    for name, split in (("train", train), ("eval", evaluation)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"messages": r["messages"]}, ensure_ascii=False) + "\n" for r in split),
                        encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1], len(train), len(evaluation)


def recipe(train: Path, evaluation: Path, max_steps: int) -> str:
    """``recipes/chat_lora.toml`` with the JSONL files, the step budget and no eval limit."""
    return f"""[model]
name = "builtin:smollm2-135m-instruct"

[method]
name = "lora"
r = 8
alpha = 16
target_modules = "all-linear"

[task]
name = "chat"
max_length = 256
num_samples = 3

[data]
train = "{train}"
eval = "{evaluation}"

[train]
max_steps = {max_steps}
batch_size = {BATCH}
seed = 0

[hardware]
profile = "auto"
"""


def timed(cmd: list[str], log: Path) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    with log.open("w") as fh:
        done = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return seconds


def main() -> None:
    from adapterkit.hardware import cpu_has_fast_bf16

    parser = argparse.ArgumentParser(description="hand-written trl chat SFT vs adapterkit's chat LoRA")
    parser.add_argument("--max-steps", type=int, default=100, help="training steps for both (default 100)")
    parser.add_argument("--eval-rows", type=int, default=None,
                        help=f"evaluate on only the first N of the {EVAL_CONVERSATIONS} held-out conversations "
                             "(quick checks)")
    parser.add_argument("--precisions", default="fp32,bf16" if cpu_has_fast_bf16() else "fp32",
                        help="adapterkit runs, one per precision, each in its own process (default: fp32,bf16 on "
                             "CPUs with AVX512-BF16 or AMX, else fp32)")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--work", default=str(HERE / "work"), help="folder for data, runs and logs")
    args = parser.parse_args()

    from adapterkit.assets import resolve_model
    from adapterkit.results import describe_device

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train, evaluation, n_train, n_eval = write_split(work, args.eval_rows)
    (work / "recipe.toml").write_text(recipe(train, evaluation, args.max_steps))

    model_dir = str(resolve_model("builtin:smollm2-135m-instruct"))
    plain_wall = timed([sys.executable, str(HERE / "plain_sft.py"), "--model", model_dir,
                        "--train", str(train), "--eval", str(evaluation), "--max-steps", str(args.max_steps),
                        "--batch-size", str(BATCH), "--output", str(work / "plain")], work / "plain.log")
    plain = json.loads((work / "plain" / "result.json").read_text())
    kits = {}
    for precision in args.precisions.split(","):
        out = work / f"adapterkit-{precision}"
        kit_wall = timed([sys.executable, "-m", "adapterkit", "run", str(work / "recipe.toml"), "--set",
                          f"hardware.precision={precision}", "--output", str(out), "--overwrite"],
                         work / f"adapterkit-{precision}.log")
        info = json.loads((out / "run.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
        seconds, steps, tokens = info["phase_seconds"]["train"], info["steps"], info["train_tokens"]
        kits[precision] = {
            "train_seconds": seconds, "steps": steps, "seconds_per_step": seconds / steps if steps else None,
            "eval_loss": metrics["eval_loss"], "eval_conversations": info["eval_examples"], "train_tokens": tokens,
            "non_pad_tokens_per_second": tokens / seconds, "conversations": steps * BATCH,
            "conversations_per_second": steps * BATCH / seconds, "peak_rss_mib": info["peak_rss_mib"],
            "train_conversations": info["train_examples"], "learning_rate": info["learning_rate"],
            "precision": info["hardware"].get("precision"), "process_seconds": kit_wall}
    result = {
        "max_steps": args.max_steps,
        "batch_size": BATCH,
        "machine": describe_device({"device": "cpu"}),
        "split": {"train": n_train, "eval": n_eval},
        "plain": {**plain, "process_seconds": plain_wall},
        "adapterkit": kits,
        "tokens_per_second_ratio": {p: k["non_pad_tokens_per_second"] / plain["non_pad_tokens_per_second"]
                                    for p, k in kits.items()},
        "conversations_per_second_ratio": {p: k["conversations_per_second"] / plain["conversations_per_second"]
                                           for p, k in kits.items()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"steps: {args.max_steps} (batch {BATCH}, max length 256), train {n_train}, eval {n_eval} conversations; "
          "plain fp32")
    print(f"{'':17} {'s/step':>8} {'tokens':>8} {'tok/s':>8} {'conv/s':>8} {'peak RSS':>10} {'eval loss':>10} "
          f"{'tok/s vs plain':>15}")
    rows = [("plain fp32", plain, None)] + [(f"adapterkit {p}", k, result["tokens_per_second_ratio"][p])
                                            for p, k in kits.items()]
    for name, r, ratio in rows:
        print(f"{name:17} {r['seconds_per_step']:8.2f} {r['train_tokens']:8d} {r['non_pad_tokens_per_second']:8.1f} "
              f"{r['conversations_per_second']:8.2f} {r['peak_rss_mib']:7.0f} MiB {r['eval_loss']:10.4f} "
              f"{'' if ratio is None else f'{ratio:.2f}x':>15}")
    print(f"targets: tokens/s ratio >= 2.5, adapterkit peak RSS < 2,048 MiB, eval loss no worse than plain "
          f"({plain['eval_loss']:.4f})")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
