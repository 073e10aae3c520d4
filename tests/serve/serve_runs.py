"""Tiny finished runs for the serve tests: two chat LoRA runs on one tiny Llama (trained hard on different
data so their answers differ), a classification and an NER run on a tiny BERT, and a live server helper."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import tomli_w
from conftest import REPO, tiny_recipe


def train(folder: Path, recipe: dict) -> Path:
    from adapterkit import api

    path = folder / f"{recipe['name']}.toml"
    path.write_bytes(tomli_w.dumps(recipe).encode())
    return api.run(path, output=folder / recipe["name"]).run_dir


def one_answer_data(folder: Path, name: str, answer: str) -> dict:
    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": answer}]}
            for i in range(16)]
    files = {}
    for split in ("train", "eval"):
        path = folder / f"{name}_{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows[:16 if split == "train" else 4]))
        files[f"chat_{split}"] = path
    return files


def chat_run(folder: Path, llama_dir: str, name: str, answer: str) -> Path:
    recipe = tiny_recipe("chat", "lora", llama_dir, one_answer_data(folder, name, answer),
                         method={"r": 8, "alpha": 16, "target_modules": "all-linear"},
                         train={"max_steps": 8, "learning_rate": 0.05})
    recipe["task"]["num_samples"] = 0
    recipe["name"] = name
    return train(folder, recipe)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``adapterkit serve`` in a subprocess on a free loopback port."""

    def __init__(self, run_dirs, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(run_dirs[0]).parent / f"serve-{self.port}.log"
        cmd = [sys.executable, "-m", "adapterkit", "serve", *map(str, run_dirs), "--port", str(self.port), *args]
        environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=environ)
        self.wait()

    def wait(self, seconds: float = 240) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None and requests.get(self.url + "/health", timeout=5).status_code == 200

    def stop(self, signum: int = signal.SIGTERM, seconds: float = 20) -> int | None:
        """Send ``signum`` and wait up to ``seconds``: the exit code, or None when it had to be killed."""
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
