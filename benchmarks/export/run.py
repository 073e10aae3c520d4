"""What exporting buys at inference: ONNX Runtime vs PyTorch latency, and GGUF Q8_0 size vs safetensors.

1. Latency: ``recipes/sentiment_lora.toml`` (LoRA on the packaged MiniLM-L6) for ``--max-steps`` steps,
   exported with ``adapterkit export --format onnx``; then the median forward time (``--repeats`` timed
   calls after 3 warm-ups) of real eval reviews (max length 64, padded to the batch's longest) at batch 1
   and 32 for: PyTorch with the adapter on the base (peft, as ``adapterkit eval`` runs it), PyTorch on the
   merged model, and ONNX Runtime (CPU provider) on ``model.onnx``. Both runtimes use all their threads.
2. Size: ``recipes/chat_lora.toml`` (LoRA on SmolLM2-135M-Instruct) for 2 steps, exported as merged
   safetensors (fp32) and as GGUF Q8_0 (and F16): bytes on disk of the weights files.

Figures from a shared machine are indicative only. Each export's self-check result is recorded too.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/export/run.py [--max-steps 30] [--repeats 30] [--skip-gguf]

Writes ``benchmarks/export/results.json`` (or ``--out``); scratch runs go to ``benchmarks/export/work/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                    platform.processor())
    except OSError:
        return platform.processor()


def median_ms(call, inputs, repeats: int) -> float:
    for _ in range(3):
        call(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(inputs)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def latency(run_dir: Path, onnx_dir: Path, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    from adapterkit import api
    from adapterkit.export.onnx import session_runner

    plan, tokenizer, adapter_model, data = api.reopen(run_dir)
    merged = AutoModelForSequenceClassification.from_pretrained(onnx_dir.parent / "merged").eval()
    ort = session_runner(onnx_dir / "model.onnx")
    texts = list(data.eval["text"][:32])
    results = {}
    for batch in (1, 32):
        inputs = tokenizer(texts[:batch], truncation=True, max_length=64, padding=True, return_tensors="pt")

        def torch_call(model):
            def call(x):
                with torch.no_grad():
                    return model(**x).logits
            return call

        results[f"batch_{batch}"] = {
            "sequence_length": int(inputs["input_ids"].shape[1]),
            "pytorch_adapter_ms": median_ms(torch_call(adapter_model.eval()), inputs, repeats),
            "pytorch_merged_ms": median_ms(torch_call(merged), inputs, repeats),
            "onnxruntime_ms": median_ms(ort, inputs, repeats),
        }
        row = results[f"batch_{batch}"]
        row["speedup_vs_merged"] = row["pytorch_merged_ms"] / row["onnxruntime_ms"]
        row["speedup_vs_adapter"] = row["pytorch_adapter_ms"] / row["onnxruntime_ms"]
        print(f"batch {batch:2d} (seq {row['sequence_length']}): PyTorch adapter {row['pytorch_adapter_ms']:.2f} ms, "
              f"merged {row['pytorch_merged_ms']:.2f} ms, ONNX Runtime {row['onnxruntime_ms']:.2f} ms "
              f"({row['speedup_vs_merged']:.2f}x vs merged)")
    return results


def sizes(work: Path) -> dict:
    from adapterkit import api, load_recipe
    from adapterkit.export import export

    overrides = {"train.max_steps": 2, "train.batch_size": 4, "data.limit_train": 16, "data.limit_eval": 8,
                 "task.max_length": 96, "task.num_samples": 0}
    run = api.run(load_recipe(REPO / "recipes" / "chat_lora.toml", overrides), output=work / "chat").run_dir
    found = {}
    for fmt, dtype, weights in (("merged", "fp32", "model.safetensors"), ("gguf", "q8_0", "model-q8_0.gguf"),
                                ("gguf", "f16", "model-f16.gguf")):
        record = export(run, fmt, dtype=dtype, output=work / f"chat-{fmt}-{dtype}")
        found[f"{fmt}_{dtype}"] = {"bytes": (work / f"chat-{fmt}-{dtype}" / weights).stat().st_size,
                                   "check": record["check"]["verdict"]}
    base = found["merged_fp32"]["bytes"]
    for row in found.values():
        row["ratio_to_merged_fp32"] = row["bytes"] / base
    for name, row in found.items():
        print(f"{name}: {row['bytes'] / 2**20:.1f} MiB ({row['ratio_to_merged_fp32']:.2f}x); {row['check']}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--skip-gguf", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()

    import torch

    from adapterkit import api, load_recipe
    from adapterkit.export import export

    work = HERE / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    overrides = {"train.max_steps": args.max_steps, "data.limit_eval": 256}
    run = api.run(load_recipe(REPO / "recipes" / "sentiment_lora.toml", overrides), output=work / "sentiment").run_dir
    onnx = export(run, "onnx", output=work / "export" / "onnx")
    export(run, "merged", output=work / "export" / "merged")
    print("onnx self-check:", onnx["check"]["verdict"])
    import onnxruntime

    results = {"cpu": cpu_name(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "onnxruntime": onnxruntime.__version__, "note": "shared machine: indicative figures",
               "sentiment_steps": args.max_steps, "onnx_check": onnx["check"]["verdict"],
               "latency": latency(run, work / "export" / "onnx", args.repeats)}
    if not args.skip_gguf:
        results["sizes"] = sizes(work)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
