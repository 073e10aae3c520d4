"""`adapterkit chat` fed through stdin (streamed answer, /system, /reset, /exit, the filter), and, on the
packaged SmolLM2 after a short chat_lora run, an answer that ends at its end-of-turn token <|im_end|>."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO
from serve_runs import Server, chat_run


def chat(run_dir, stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapterkit", "chat", str(run_dir), "--max-tokens", "6", *args],
                          input=stdin, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def alpha(tmp_path_factory, tiny_llama_dir):
    return chat_run(tmp_path_factory.mktemp("chat"), tiny_llama_dir, "alpha", "apples apples apples")


def test_chat_streams_keeps_history_and_obeys_commands(alpha):
    done = chat(alpha, "question 1\n/system You are terse.\nquestion 2\n/reset\n/bogus\n/exit\nnever read\n")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("adapterkit chat with alpha")
    assert sum("apples" in line for line in lines) == 2 and "(cut at 6 tokens)" in lines
    assert "(system prompt set; conversation reset)" in lines and "(conversation reset)" in lines
    assert any(line.startswith("(unknown command /bogus") for line in lines)
    assert "Traceback" not in done.stderr
    # peft's call of a deprecated transformers property, filtered where the run's adapter is opened
    assert "is_gradient_checkpointing" not in done.stderr and "FutureWarning" not in done.stderr, done.stderr[-2000:]


def test_chat_applies_the_safety_filter(alpha, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("apples\nforbidden\n")
    done = chat(alpha, "question 1\nsay forbidden\n", "--blocklist", str(words))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "apples" not in done.stdout and done.stdout.count("Sorry, I can't help with that.") == 2


def test_chat_refuses_bad_input_in_one_line(alpha, tmp_path):
    done = chat(tmp_path, "")
    assert done.returncode == 2 and done.stderr.startswith("adapterkit: error:") and "Traceback" not in done.stderr
    done = chat(alpha, "", "--moderator-labels", "toxic")
    assert done.returncode == 2 and "--moderator" in done.stderr
    missing = subprocess.run([sys.executable, "-m", "adapterkit", "serve", str(alpha), "--blocklist",
                              str(tmp_path / "nope.txt")], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert missing.returncode == 2 and "blocklist file not found" in missing.stderr


@pytest.mark.integration
def test_smollm_chat_run_stops_at_its_end_of_turn_token(tmp_path):
    from openai import OpenAI

    run_dir = tmp_path / "chat"
    trained = subprocess.run([sys.executable, "-m", "adapterkit", "run", str(REPO / "recipes" / "chat_lora.toml"),
                              "--set", "train.max_steps=2", "--set", "task.num_samples=0", "--output", str(run_dir)],
                             capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert trained.returncode == 0, trained.stderr[-2000:]
    live = Server([run_dir])
    try:
        client = OpenAI(base_url=live.url + "/v1", api_key="none", max_retries=0)
        said = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Say hello."}],
                                              max_tokens=128, temperature=0)
        assert said.choices[0].finish_reason == "stop" and said.usage.completion_tokens < 128
        assert said.choices[0].message.content.strip() and "<|im_end|>" not in said.choices[0].message.content
    finally:
        live.stop()
    repl = chat(run_dir, "Say hello.\n/exit\n", "--max-tokens", "128")
    assert repl.returncode == 0 and "(cut at" not in repl.stdout, repl.stdout + repl.stderr[-2000:]
