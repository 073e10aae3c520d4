"""Which malloc settings should a CPU run use? Every shipped recipe at its defaults, once per allocator variant,
the variants side by side (started together, one thread each, so both see the same load): train tokens/s and
peak RSS from each run's run.json.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/allocator/run.py                      # every recipe
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/allocator/run.py sentiment_lora --repeats 2
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/allocator/run.py --variants glibc,steady
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/allocator/run.py chat_lora chat_dpo  # chat_dpo needs chat_lora's run

A variant is ``ADAPTERKIT_MALLOC``'s value for the run (``adapterkit/measure.py: allocator_threshold``); "unset" leaves
the variable out (the run's default). Writes ``benchmarks/allocator/results.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# Steps per recipe: enough for the heap to settle (RSS keeps growing over the first tens of steps), short enough to
# time every recipe in one sitting on 2 cores. Eval is cut to 64 rows; chat's sample answers are skipped.
STEPS = {"chat_lora": 10, "chat_qlora": 10, "chat_dpo": 6, "lm_lora": 10, "ner_bottleneck": 30, "ner_lora": 30,
         "sentiment_full": 30, "sentiment_lora": 60, "sentiment_prompt": 60, "sentiment_smollm_lora": 10}
OVERRIDES = ["data.limit_eval=64"]
RECIPE_OVERRIDES = {"chat_lora": ["task.num_samples=0"], "chat_qlora": ["task.num_samples=0"],
                    "chat_dpo": ["task.num_samples=0"]}
CONTINUES = {"chat_dpo": "chat_lora"}  # trains on the adapter this benchmark's own run of chat_lora saved


def command(recipe: Path, run_dir: Path, variant: str, runs: Path) -> list[str]:
    sets = [f"train.max_steps={STEPS.get(recipe.stem, 10)}", *OVERRIDES, *RECIPE_OVERRIDES.get(recipe.stem, [])]
    if recipe.stem in CONTINUES:
        sets.append(f"model.adapter={runs / f'{CONTINUES[recipe.stem]}-{variant}' / 'adapter'}")
    return [sys.executable, "-m", "adapterkit", "run", str(recipe), *(a for s in sets for a in ("--set", s)),
            "--output", str(run_dir), "--overwrite", "--force"]


def environment(variant: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "ADAPTERKIT_MALLOC"}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if variant != "unset":
        env["ADAPTERKIT_MALLOC"] = variant
    return env


def side_by_side(recipe: Path, variants: list[str], runs: Path) -> dict:
    started = time.time()
    runs.mkdir(parents=True, exist_ok=True)
    logs = {v: runs / f"{recipe.stem}-{v}.log" for v in variants}  # files, not pipes: a full pipe would stall a run
    files = {v: logs[v].open("w") for v in variants}
    procs = {v: subprocess.Popen(command(recipe, runs / f"{recipe.stem}-{v}", v, runs), cwd=REPO, env=environment(v),
                                 stdout=subprocess.DEVNULL, stderr=files[v]) for v in variants}
    out = {}
    for variant, proc in procs.items():
        code = proc.wait()
        files[variant].close()
        if code != 0:
            tail = (logs[variant].read_text().strip().splitlines() or ["?"])[-1]
            out[variant] = {"error": f"exit {proc.returncode}: {tail}"}
            continue
        info = json.loads((runs / f"{recipe.stem}-{variant}" / "run.json").read_text())
        out[variant] = {"peak_rss_mib": round(info["peak_rss_mib"], 1), "precision": info["hardware"]["precision"],
                        "train_tokens_per_second": round(info["train_tokens_per_second"], 2),
                        "train_seconds": round(info["phase_seconds"]["train"], 1), "train_loss": info["train_loss"]}
    return {"recipe": recipe.stem, "steps": STEPS.get(recipe.stem, 10), "seconds": round(time.time() - started), **out}


def main() -> int:
    from adapterkit.hardware import cpu_flags, cpu_model
    from adapterkit.hardware.precision import cpu_kind

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", help="recipe names (default: every recipes/*.toml)")
    parser.add_argument("--variants", default="glibc,4", help="ADAPTERKIT_MALLOC values, comma-separated")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=HERE / "work")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    variants = args.variants.split(",")
    paths = sorted((REPO / "recipes").glob("*.toml"), key=lambda p: (p.stem in CONTINUES, p.stem))
    paths = [p for p in paths if not args.recipes or p.stem in args.recipes]
    rows = []
    for repeat in range(args.repeats):
        for path in paths:
            row = {"repeat": repeat, **side_by_side(path, variants, args.runs)}
            rows.append(row)
            cells = "  ".join(f"{v}: " + (f"{row[v]['train_tokens_per_second']:8.1f} tok/s {row[v]['peak_rss_mib']:7.0f} MiB"
                                          if "error" not in row[v] else row[v]["error"]) for v in variants)
            print(f"{path.stem:<22} {cells}", flush=True)
    result = {"run_info": {"variants": variants, "steps": STEPS, "overrides": OVERRIDES, "recipe_overrides": RECIPE_OVERRIDES,
                           "threads_per_run": 1, "cpu": f"{cpu_model()} ({cpu_kind(cpu_flags())})", "cpus": os.cpu_count(),
                           "machine": platform.machine(), "python": platform.python_version(),
                           "libc": " ".join(platform.libc_ver())}, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
