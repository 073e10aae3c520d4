"""What oneDNN keeps per low-precision matmul shape on this CPU: the planner's ONEDNN_* constants, measured.

Each case runs one linear (frozen: a bf16 weight; trained: an fp32 weight under bf16 autocast, whose weight gradient
is one more matmul) forward and backward at token counts M = 16, 32, ..., 256 (the lengths a bf16 run rounds to),
in a fresh process, and reads RSS after each new M. The first bf16 matmul of the process loads oneDNN (the base);
every new M after it builds new primitives (forward and input gradient, + weight gradient where the weight trains).
MiB per primitive = growth per new M / primitives per M. Compare with memory/calibration.py:

    .venv/bin/python benchmarks/planner/kernels.py            # a minute on 2 cores; writes kernels.json here

Shapes: SmolLM2-135M's (576 x 576, 576 -> 1,536, 1,536 -> 576, the 576 x 49,152 LM head, LoRA's 576 -> 8 and
8 -> 576) and MiniLM-L6's (384 -> 1,536). The microbenchmark holds no activations between passes and reuses one
incoming gradient, so only the kernels (and the heap blocks of a pass's own outputs) grow.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {"frozen 576x576": (576, 576, False), "frozen 576->1536": (576, 1536, False),
         "frozen 1536->576": (1536, 576, False), "frozen LM head 576->49152": (576, 49152, False),
         "frozen 384->1536": (384, 1536, False), "trained 576->8": (576, 8, True), "trained 8->576": (8, 576, True)}
LENGTHS = list(range(16, 257, 16))

CHILD = r"""
import gc, json, sys, psutil, torch
in_f, out_f, trained, lengths = json.loads(sys.argv[1])
torch.set_num_threads(2)
rss = lambda: psutil.Process().memory_info().rss / 2**20
w = (torch.randn(out_f, in_f) * 0.01).requires_grad_() if trained else (torch.randn(out_f, in_f) * 0.01).bfloat16()
grad = torch.randn(max(lengths), out_f).bfloat16()  # one incoming gradient for every M: no new large temporaries
start, after = rss(), []
for m in lengths:
    x = torch.randn(m, in_f, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = torch.nn.functional.linear(x, w)
    y.backward(grad[:m])
    del x, y
    gc.collect()
    after.append(rss() - start)
print(json.dumps(after))
"""


def measure(in_f: int, out_f: int, trained: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([in_f, out_f, trained, LENGTHS])],
                         capture_output=True, text=True, check=True)
    growth = json.loads(out.stdout.strip().splitlines()[-1])
    per_m = (growth[-1] - growth[0]) / (len(LENGTHS) - 1)
    primitives = 3 if trained else 2
    return {"first_mib": round(growth[0], 1), "per_new_m_mib": round(per_m, 2), "primitives_per_m": primitives,
            "per_primitive_mib": round(per_m / primitives, 3), "growth_mib": [round(g, 1) for g in growth]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "kernels.json")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parents[1]))
    from adapterkit.memory.calibration import ONEDNN_BASE_MIB, ONEDNN_PRIMITIVE_MIB

    rows = {}
    for name, (in_f, out_f, trained) in CASES.items():
        rows[name] = measure(in_f, out_f, trained)
        print(f"{name:28s} first M {rows[name]['first_mib']:6.1f} MiB, then {rows[name]['per_new_m_mib']:.2f} MiB per new M"
              f" = {rows[name]['per_primitive_mib']:.2f} per primitive", flush=True)
    per = sorted(r["per_primitive_mib"] for r in rows.values())
    summary = {"per_primitive_mib_median": per[len(per) // 2], "per_primitive_mib_range": [per[0], per[-1]],
               "first_bf16_matmul_mib_max": max(r["first_mib"] for r in rows.values()),
               "calibration": {"ONEDNN_BASE_MIB": ONEDNN_BASE_MIB, "ONEDNN_PRIMITIVE_MIB": ONEDNN_PRIMITIVE_MIB}}
    print(json.dumps(summary))
    import torch

    from adapterkit.results import describe_device

    run_info = {"cpu": describe_device({"device": "cpu"}), "machine": platform.machine(),
                "torch": torch.__version__, "threads": 2, "lengths": LENGTHS}
    args.out.write_text(json.dumps({"run_info": run_info,
                                     "cases": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
