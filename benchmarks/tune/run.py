"""``adapterkit tune`` on the built-in sentiment recipe (``recipes/sentiment_lora.toml``): 16 trials over
method in {lora, ia3, bottleneck} x LoRA rank / bottleneck reduction factor x learning rate, under a fixed
wall-time budget, against the shipped LoRA default trained with the same budget (``adapterkit run``).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tune/run.py                 # the full benchmark: hours on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tune/run.py --reduced       # 320 train / 200 eval reviews, 20 steps of 16

Writes ``OUT/search/`` (the search: study.db, runs, results, report.md/html, best_recipe.toml),
``OUT/default/`` (the shipped default's run) and ``OUT/summary.json``: the best trial's macro-F1, the
default's, hand-written full fine-tuning's (0.818 on the full data, docs/defaults.md), the trials pruned by
the planner and by the sampler, and the wall time. OUT defaults to ``benchmarks/tune/work``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # this checkout's adapterkit, as the subprocesses get it
RECIPE = REPO / "recipes" / "sentiment_lora.toml"
SPACE = ['method.name=["lora","ia3","bottleneck"]', "method.r=[4,8,16,32]", "method.reduction_factor=[4,8,16,32]",
         "train.learning_rate=1e-5..1e-2:log"]
REDUCED = ["data.limit_train=320", "data.limit_eval=200", "train.max_steps=20", "train.batch_size=16"]
FULL_FT = 0.818  # hand-written full fine-tuning on the full data (docs/defaults.md)


def adapterkit(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "adapterkit", *args], check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--budget", default="4h", help="wall time for the search (default 4h)")
    parser.add_argument("--reduced", action="store_true", help=f"a short run: {' '.join(REDUCED)}")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="continue the search in OUT/search")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "tune" / "work")
    args = parser.parse_args()
    sets = [a for s in (REDUCED if args.reduced else []) for a in ("--set", s)]
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.out / "default" / "run.json").is_file():
        adapterkit("run", str(RECIPE), *sets, "--output", str(args.out / "default"), "--overwrite")
    adapterkit("tune", str(RECIPE), *(a for s in SPACE for a in ("--space", s)), "--trials", str(args.trials),
               "--budget", args.budget, "--parallel", str(args.parallel), "--output", str(args.out / "search"),
               *sets, *(["--resume"] if args.resume else []))

    import optuna

    from adapterkit.tune.study import STUDY_NAME, storage_url

    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(args.out / "search"))
    trials = study.get_trials(deepcopy=False)
    planner = sum(bool(t.user_attrs.get("infeasible")) for t in trials)
    pruned = sum(t.state.name == "PRUNED" for t in trials) - planner
    default = json.loads((args.out / "default" / "metrics.json").read_text())["eval_macro_f1"]
    default_seconds = json.loads((args.out / "default" / "run.json").read_text())["wall_seconds"]
    best = study.best_trial if any(t.state.name == "COMPLETE" for t in trials) else None
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    search_seconds = (max(ends) - min(t.datetime_start for t in trials if t.datetime_start)).total_seconds()
    summary = {
        "reduced": args.reduced, "overrides": REDUCED if args.reduced else [], "trials": len(trials),
        "complete": sum(t.state.name == "COMPLETE" for t in trials), "pruned_by_planner": planner,
        "pruned_by_sampler": pruned, "failed": sum(t.state.name == "FAIL" for t in trials),
        "best_trial": best and best.number, "best_params": best and best.params,
        "best_macro_f1": best and best.value, "default_macro_f1": default,
        "full_fine_tuning_macro_f1_full_data": FULL_FT, "search_wall_seconds_first_start_to_last_end": round(search_seconds, 1),
        "default_wall_seconds": round(default_seconds, 1), "budget": args.budget,
        "machine": "shared 2-core AMD EPYC, indicative" if os.cpu_count() == 2 else f"{os.cpu_count()} CPUs",
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
