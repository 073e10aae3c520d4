"""Is the memory planner honest? Predicted peak vs measured peak for every shipped recipe.

Each recipe runs for a few steps, once per precision (``--precisions``), in its own ``adapterkit run``
process (so the RSS high-water mark is that run's alone); the measured peak is ``peak_rss_mib`` from its
run.json (``cuda_max_allocated_mib`` when the run used a GPU), the prediction is ``adapterkit plan``'s peak
for the same recipe, precision and overrides. Recipes in DEFAULTS_ROWS also get a row at their own defaults, run
for as many steps as it takes what grows with the shapes a run meets to grow (bf16 kernels on a CPU), which a
2-step run does not show (a filter that names such a recipe runs its defaults row too: --no-defaults-rows skips it).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planner/run.py                # all recipes, 2 steps each
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planner/run.py chat_lora --steps 2 --no-defaults-rows
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planner/run.py --reuse        # re-predict, keep measurements
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planner/run.py chat_lora chat_dpo  # chat_dpo needs chat_lora's run

Writes ``benchmarks/planner/results.json`` (or ``--out``) and prints predicted/measured per recipe.
Target on a CPU: every ratio within 0.90-1.10. Runs use glibc's default allocator (``ADAPTERKIT_MALLOC`` is
removed from their environment), as users' runs do: the planner predicts that RSS, heap slack included.
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
# Eval is cut to one batch (the eval phase's peak is per batch, not per dataset) to keep runs short.
OVERRIDES = ["data.limit_eval=16"]
# The plan is for the worst case, batches padded to task.max_length. The trainer sorts the longest batch
# first, so a run reaches that case when its data has an example of max_length tokens. W-NUT's longest
# tweet is 75 sub-words, so NER recipes (max_length 128) are measured and planned at max_length 64.
# Chat trains padding-free by default (rows back to back, as many tokens as the data has); padded batches
# make the longest-first batch the planned worst case, batch x max_length (the longest dialogue exceeds 256).
# Chat's sample answers (task.num_samples) are skipped: greedy decoding of one conversation peaks far below
# training, and on a CPU it took minutes of the benchmark's time.
# DPO draws pairs at random and trl pads each batch to its longest sequence, so a 2-step run at max_length 256
# measured short batches (1,998 tokens in 32 sequences: 1.17-1.20 of the plan); most sequences exceed 64 tokens,
# so at max_length 64 every batch is padded to it, the case the plan is for.
RECIPE_OVERRIDES = {"ner_lora": ["task.max_length=64"], "ner_bottleneck": ["task.max_length=64"],
                    "chat_lora": ["task.padding_free=false", "task.num_samples=0"],
                    "chat_qlora": ["task.padding_free=false", "task.num_samples=0"],
                    "chat_dpo": ["task.num_samples=0", "task.max_length=64"]}
# A recipe that continues another recipe's adapter (model.adapter) runs after it, on the adapter this benchmark's
# own run of it saved (in --runs, same precision), not on whatever runs/ holds.
CONTINUES = {"chat_dpo": "chat_lora"}
# Rows at the recipe's own defaults (none of the overrides above), run long enough for what grows with the shapes a
# run meets to have grown: under bf16 on a CPU oneDNN keeps kernels per matmul shape (memory/kernels.py), and chat's
# padding-free passes meet every rounded length; chat_lora bf16 peaked at 1,796 MiB from step 60 to step 200 (AMD EPYC).
DEFAULTS_ROWS = {"chat_lora": 80}


def ordered(paths: list[Path]) -> list[Path]:
    """Every recipe after the recipe it continues (CONTINUES), otherwise by name."""
    late = [p for p in paths if p.stem in CONTINUES]
    return [p for p in paths if p.stem not in CONTINUES] + late


def overrides_for(recipe: Path, precision: str, runs: Path, defaults: bool = False) -> list[str]:
    if defaults:
        return [f"hardware.precision={precision}"]
    adapter = [f"model.adapter={runs / f'{CONTINUES[recipe.stem]}-{precision}' / 'adapter'}"] \
        if recipe.stem in CONTINUES else []
    return [*OVERRIDES, *RECIPE_OVERRIDES.get(recipe.stem, []), *adapter, f"hardware.precision={precision}"]


def measure(recipe: Path, steps: int, run_dir: Path, precision: str, defaults: bool = False) -> dict:
    sets = overrides_for(recipe, precision, run_dir.parent, defaults)
    cmd = [sys.executable, "-m", "adapterkit", "run", str(recipe), "--set", f"train.max_steps={steps}",
           *(a for o in sets for a in ("--set", o)), "--output", str(run_dir),
           "--overwrite", "--force"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("ADAPTERKIT_MALLOC", None)  # measure what users get: glibc's default allocator, not the opt-in one
    started = time.time()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {done.returncode}: {tail}", "seconds": time.time() - started}
    info = json.loads((run_dir / "run.json").read_text())
    measured = info.get("cuda_max_allocated_mib") or info["peak_rss_mib"]
    return {"measured_mib": measured, "metric": "cuda_max_allocated" if info.get("cuda_max_allocated_mib")
            else "rss_high_water", "seconds": time.time() - started, "trainable_params": info["trainable_params"],
            **({"cuda_max_reserved_mib": info["cuda_max_reserved_mib"]} if info.get("cuda_max_reserved_mib") else {})}


def predict(recipe: Path, steps: int, precision: str, runs: Path, defaults: bool = False) -> dict:
    from adapterkit import loading
    from adapterkit.hardware.libraries import imported_libraries_mib
    from adapterkit.memory.estimate import MIB
    from adapterkit.memory.verdict import assess, eval_lengths, shape_of
    from adapterkit.plan import load_recipe, make_plan

    loaded = load_recipe(recipe, [f"train.max_steps={steps}", *overrides_for(recipe, precision, runs, defaults)])
    plan = make_plan(loaded)
    # as the preflight plans a run: with the eval split's real lengths where the task reads them before any weight
    fit = assess(plan, shape_of(plan, loading.load_config(loaded.model, loaded.source)), eval_lengths(plan))
    est = fit.estimate
    return {"precision": precision, "predicted_mib": est.peak / MIB, "predicted_phase": est.phase, "method": plan.method.name,
            "profile": plan.hardware.name, "predicted_trainable_params": est.trainable_params,
            "terms_mib": {k: round(v / MIB, 1) for k, v in est.terms.items()},
            "phases_mib": {p: round(getattr(est, p) / MIB, 1) for p in ("train", "eval", "load")},
            "libraries_import_mib": imported_libraries_mib() if plan.hardware.device == "cpu" else None}


def main() -> int:
    from importlib.metadata import version

    from adapterkit.hardware import cpu_flags, cpu_has_fast_bf16, cpu_model
    from adapterkit.hardware.detect import torch_ships_cuda
    from adapterkit.hardware.precision import cpu_kind

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", help="recipe names (default: every recipes/*.toml)")
    parser.add_argument("--steps", type=int, default=2, help="the first step has the longest batch")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "planner-benchmark")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--precisions", default="fp32,bf16" if cpu_has_fast_bf16() else "fp32",
                        help="each recipe runs once per precision (default: fp32,bf16 on CPUs with AVX512-BF16 or "
                             "AMX, else fp32)")
    parser.add_argument("--reuse", action="store_true", help="keep earlier measurements found in --runs")
    parser.add_argument("--no-defaults-rows", action="store_true", help="skip the long rows at recipes' defaults")
    parser.add_argument("--only-defaults-rows", action="store_true", help="only the rows at recipes' defaults")
    args = parser.parse_args()
    paths = ordered(sorted((REPO / "recipes").glob("*.toml")))
    if args.recipes:
        paths = [p for p in paths if p.stem in args.recipes]
    rows = []
    cases = [] if args.only_defaults_rows else [(path, path.stem, args.steps, False) for path in paths]
    if not args.no_defaults_rows:
        cases += [(path, f"{path.stem} (defaults)", DEFAULTS_ROWS[path.stem], True) for path in paths
                  if path.stem in DEFAULTS_ROWS]
    for path, name, steps, defaults in cases:
        for precision in args.precisions.split(","):
            run_dir = args.runs / f"{path.stem}{'-defaults' if defaults else ''}-{precision}"
            row = {"recipe": name, "steps": steps, **predict(path, steps, precision, args.runs, defaults)}
            if args.reuse and (run_dir / "run.json").is_file():
                info = json.loads((run_dir / "run.json").read_text())
                row.update(measured_mib=info.get("cuda_max_allocated_mib") or info["peak_rss_mib"], reused=True,
                           trainable_params=info["trainable_params"])
            else:
                row.update(measure(path, steps, run_dir, precision, defaults))
            if "measured_mib" in row:
                row["ratio"] = row["predicted_mib"] / row["measured_mib"]
            rows.append(row)
            shown = f"{row['ratio']:.2f}" if "ratio" in row else row.get("error", "?")
            print(f"{name:<20} {precision:5} predicted {row['predicted_mib']:7.0f} MiB "
                  f"({row['predicted_phase']:5})  measured {row.get('measured_mib', float('nan')):7.0f} MiB  "
                  f"ratio {shown}", flush=True)
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    result = {"run_info": {"steps": args.steps, "overrides": OVERRIDES, "recipe_overrides": RECIPE_OVERRIDES,
                           "continues": CONTINUES,
                           "defaults_rows_steps": DEFAULTS_ROWS, "machine": platform.machine(), "precisions": args.precisions,
                           "cpu": f"{cpu_model()} ({cpu_kind(cpu_flags())})",
                           "cpus": os.cpu_count(), "python": platform.python_version(),
                           "torch": version("torch") + (" (a CUDA build)" if torch_ships_cuda() else ""),
                           "allocator": "glibc default (ADAPTERKIT_MALLOC unset)",
                           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                           "target": "0.90 <= predicted/measured <= 1.10"},
              "rows": rows,
              "summary": {"within_target": sum(0.9 <= r <= 1.1 for r in ratios), "recipes": len(rows),
                          "min_ratio": min(ratios, default=None), "max_ratio": max(ratios, default=None)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['summary']['within_target']}/{len(rows)} within 0.90-1.10; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
