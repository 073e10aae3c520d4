"""Re-predict a results file's rows as the machine it was measured on would plan them, keeping its measurements.

The planner's CPU constants can depend on the kind of CPU (``hardware.precision.cpu_kind``) and on the import footprint
of the environment (``hardware/libraries.py``); a results file records both (``run_info``: ``cpu`` and
``libraries_import_mib``). This plans every row again with this checkout's constants, with the CPU kind and footprint
read from the file instead of detected here: a refit of the constants is checked against another machine's runs
(``results-amx.json``, measured on a lent AMX Xeon) without that machine. CPU rows only (a GPU's plan reads the device).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planner/repredict.py benchmarks/planner/results-amx.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planner/repredict.py benchmarks/planner/results-amx.json --write
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

def as_measured_on(run_info: dict, row: dict) -> None:
    """Make this process detect the CPU kind that ``run_info`` records and the import footprint ``row`` was planned
    with (each run measured its own; older files have it only in the overhead term)."""
    import importlib

    from adapterkit.hardware import libraries
    from adapterkit.hardware.precision import KIND_FLAGS

    detect = importlib.import_module("adapterkit.hardware.detect")  # the package's ``detect`` is the function
    from adapterkit.memory.calibration import LIBRARIES_MIB_AT_CALIBRATION, PROCESS_BASELINE_MIB

    found = re.search(r"\((cpu[a-z0-9-]*)\)\s*$", run_info["cpu"])
    if not found:
        raise SystemExit(f"run_info.cpu: no CPU kind in {run_info['cpu']!r}")
    flags = KIND_FLAGS[found.group(1)]
    detect.cpu_flags = lambda: set(flags)
    footprint = row.get("libraries_import_mib") or run_info.get("libraries_import_mib")
    if "libraries_import_mib" not in row and "overhead" in row.get("terms_mib", {}):
        footprint = row["terms_mib"]["overhead"] - PROCESS_BASELINE_MIB + LIBRARIES_MIB_AT_CALIBRATION
    libraries.imported_libraries_mib = lambda: footprint
    detect.torch_ships_cuda = lambda: "CUDA build" in run_info.get("torch", "")


def main() -> int:
    from run import REPO, predict

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "planner-benchmark",
                        help="where chat_lora's adapter is for chat_dpo's plan (run.py's --runs)")
    parser.add_argument("--write", action="store_true", help="write the new predictions into the file")
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    for row in data["rows"]:
        as_measured_on(data["run_info"], row)
        recipe = REPO / "recipes" / f"{row['recipe'].split(' ')[0]}.toml"
        defaults = row["recipe"].endswith("(defaults)")
        new = predict(recipe, row["steps"], row["precision"], args.runs, defaults)
        before = row.get("ratio")
        row.update(new, ratio=new["predicted_mib"] / row["measured_mib"])
        print(f"{row['recipe']:<22} {row['precision']:5} measured {row['measured_mib']:7.0f} MiB  predicted "
              f"{new['predicted_mib']:7.0f} MiB  ratio {before:.3f} -> {row['ratio']:.3f}")
    ratios = [r["ratio"] for r in data["rows"]]
    data["summary"] = {"within_target": sum(0.9 <= r <= 1.1 for r in ratios), "recipes": len(ratios),
                       "min_ratio": min(ratios), "max_ratio": max(ratios)}
    print(f"{data['summary']['within_target']}/{len(ratios)} within 0.90-1.10 "
          f"({min(ratios):.2f}-{max(ratios):.2f})")
    if args.write:
        args.results.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
