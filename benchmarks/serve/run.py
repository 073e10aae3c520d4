"""Serving throughput: ``adapterkit serve`` (batched) against a plain transformers ``generate`` loop that
answers one request at a time, side by side, at 1, 4 and 16 concurrent clients.

    python benchmarks/serve/run.py RUN_DIR [--max-tokens 32] [--requests 16] [--output results.json]

RUN_DIR is a finished chat run (e.g. ``adapterkit run recipes/chat_lora.toml --set train.max_steps=3``).
Both sides answer the same prompts greedily with the same adapter; prints generated tokens/s and p50/p95
latency per concurrency, and writes them as JSON with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "serve"), str(REPO / "tests")]  # serve_runs.Server (and its conftest)
PROMPTS = [f"Tell me one short fact about the number {i}." for i in range(64)]


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def measure(ask, clients: int, requests: int) -> dict:
    latencies, tokens = [], []
    started = time.perf_counter()

    def one(i):
        t = time.perf_counter()
        tokens.append(ask(PROMPTS[i % len(PROMPTS)]))
        latencies.append(time.perf_counter() - t)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"clients": clients, "requests": requests, "tokens": sum(tokens), "tokens_per_s": sum(tokens) / wall,
            "p50_s": statistics.median(latencies), "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]}


def plain_loop(run_dir: Path, max_tokens: int):
    """The baseline: the run reopened with adapterkit.api.reopen, one generate call per request, in turn."""
    import torch

    from adapterkit.api import reopen

    _, tokenizer, model, _ = reopen(run_dir)
    model.eval()
    lock = threading.Lock()

    def ask(prompt: str) -> int:
        enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with lock, torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        return out.shape[1] - enc["input_ids"].shape[1]

    return ask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=16, help="requests per concurrency level (at least clients)")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()

    from openai import OpenAI
    from serve_runs import Server

    server = Server([args.run_dir], "--max-tokens", str(args.max_tokens), "--request-seconds", "900")
    client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=600)
    model = args.run_dir.resolve().name

    def served(prompt: str) -> int:
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                           max_tokens=args.max_tokens, temperature=0)
        return r.usage.completion_tokens

    rows = []
    try:
        served(PROMPTS[0])  # warm up
        for clients in (1, 4, 16):
            rows.append({"side": "adapterkit serve", **measure(served, clients, max(args.requests, clients))})
    finally:
        server.stop()
    plain = plain_loop(args.run_dir, args.max_tokens)
    plain(PROMPTS[0])
    for clients in (1, 4, 16):
        rows.append({"side": "plain generate loop", **measure(plain, clients, max(args.requests, clients))})
    print(f"{'side':22} {'clients':>7} {'tokens/s':>9} {'p50 s':>7} {'p95 s':>7}")
    for r in rows:
        print(f"{r['side']:22} {r['clients']:7d} {r['tokens_per_s']:9.1f} {r['p50_s']:7.2f} {r['p95_s']:7.2f}")
    by = {(r["side"], r["clients"]): r["tokens_per_s"] for r in rows}
    ratio = by[("adapterkit serve", 16)] / by[("plain generate loop", 16)]
    print(f"16 clients: serve / plain loop = {ratio:.2f}x  (CPU: {cpu_name()})")
    args.output.write_text(json.dumps({"cpu": cpu_name(), "max_tokens": args.max_tokens, "run": str(args.run_dir),
                                       "rows": rows, "ratio_at_16": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
