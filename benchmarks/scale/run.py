"""Tokens/s of one process with 2 threads against 2 gloo ranks with 1 thread each, on this CPU (informational).

    PYTHONPATH=. python benchmarks/scale/run.py [--steps 24] [--repeats 1]

Trains recipes/sentiment_lora.toml (MiniLM-L6 LoRA, global batch 32, fp32, no dropout) for --steps steps both
ways and reads train_tokens_per_second from each run.json; writes benchmarks/scale/results.json. On a shared
machine the figures are indicative only. The GPU part (DDP/FSDP overhead at world size 1) is
benchmarks/gpu/scale.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def one_run(devices: int, threads: int, steps: int, folder: Path) -> dict:
    out = folder / f"d{devices}-t{threads}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "adapterkit", "run", str(REPO / "recipes" / "sentiment_lora.toml"), "--output", str(out),
           "--set", f"train.max_steps={steps}", "--set", "data.limit_eval=64", "--set", "hardware.precision=fp32",
           "--set", "model.dropout=0", "--set", "train.save_minutes=1000", "--devices", str(devices)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    info = json.loads((out / "run.json").read_text())
    return {"processes": devices, "threads_per_process": threads, "steps": info["steps"],
            "train_tokens": info["train_tokens"], "train_seconds": info["phase_seconds"]["train"],
            "tokens_per_second": info["train_tokens_per_second"],
            "eval_accuracy": json.loads((out / "metrics.json").read_text())["eval_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from adapterkit.hardware import cpu_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for devices, threads in ((1, 2), (2, 1)):
                row = one_run(devices, threads, args.steps, Path(tmp) / str(repeat))
                rows.append(row)
                print(json.dumps(row))
    load = os.getloadavg()
    result = {"machine": f"{cpu_model()}, {os.cpu_count()} cores (shared machine, indicative)",
              "load_average_1_5_15": load, "python": platform.python_version(), "runs": rows}
    (REPO / "benchmarks" / "scale" / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
