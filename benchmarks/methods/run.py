"""Every method side by side on the built-in sentiment and NER recipes: ``adapterkit compare`` on
``recipes/sentiment_lora.toml`` and ``recipes/ner_lora.toml`` (all methods, seeds 0,1,2), then one merged
report. Its table is the README's method comparison.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/methods/run.py            # the full benchmark: hours on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/methods/run.py --quick    # 2 methods, 1 seed, 5 steps: minutes
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/methods/run.py --methods lora,full,bottleneck --seeds 0,1 \
        --set train.max_steps=100

Writes ``OUT/<recipe>/`` (each comparison: results/*.json, report.md/html), the merged ``OUT/report.md``
and ``OUT/report.html``, and ``OUT/summary.json`` (per recipe and method: runs, primary metric mean/std,
median training time and peak memory); prints the merged report's tables. OUT defaults to
``benchmarks/methods/work``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RECIPES = ["sentiment_lora", "ner_lora"]
QUICK = {"methods": "lora,full", "seeds": "0",
         "set": ["train.max_steps=5", "data.limit_train=320", "data.limit_eval=128"]}


def summary(out: Path) -> list[dict]:
    from adapterkit.report import load_results, sections

    rows = []
    for sec in sections(load_results([out / r for r in RECIPES if (out / r / "results").is_dir()])):
        for row in sec.rows:
            q = row.quality(sec.primary)
            rows.append({"recipe": sec.recipe, "method": row.method, "runs_ok": len(row.ok), "runs": len(row.results),
                         "metric": sec.primary, "mean": q[0] if q else None, "std": q[1] if q else None,
                         "train_seconds_median": row.median("train_seconds"), "peak_memory_mib_median": row.memory(),
                         "trainable_share": row.median("trainable_share"), "problems": row.problems() or None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="adapterkit compare on the built-in sentiment and NER recipes")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"subset of {','.join(RECIPES)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra recipe override")
    parser.add_argument("--quick", action="store_true", help="lora,full; seed 0; 5 steps on 320 examples")
    parser.add_argument("--out", default=str(HERE / "work"))
    args = parser.parse_args()
    if args.quick:
        args.methods, args.seeds, args.set = QUICK["methods"], QUICK["seeds"], [*QUICK["set"], *args.set]

    out = Path(args.out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    names = [r for r in args.recipes.split(",") if r]
    for name in names:
        cmd = [sys.executable, "-m", "adapterkit", "compare", str(REPO / "recipes" / f"{name}.toml"),
               "--seeds", args.seeds, "--output", str(out / name)]
        cmd += ["--methods", args.methods] if args.methods else []
        cmd += [a for s in args.set for a in ("--set", s)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=REPO, env=env, check=False)  # failed runs are in the results; go on
    subprocess.run([sys.executable, "-m", "adapterkit", "report", *(str(out / n) for n in names), "--output", str(out)],
                   cwd=REPO, env=env, check=True)
    (out / "summary.json").write_text(json.dumps(summary(out), indent=2) + "\n")
    print((out / "report.md").read_text())
    print(f"written: {out / 'report.md'}, {out / 'report.html'}, {out / 'summary.json'}")


if __name__ == "__main__":
    main()
