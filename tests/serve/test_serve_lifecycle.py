"""`adapterkit serve` started and stopped as a user or a service manager does, on a tiny classification run:
SIGTERM (``kill PID``) and Ctrl-C (SIGINT) end it gracefully, exit 0 and one log line; and neither serve nor
eval prints transformers' report that the run's task head is "MISSING ... newly initialized" (the base
checkpoint lacks it, but the run's adapter puts the trained head back right after), nor a library's
deprecation warning that is not the user's concern."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import REPO, tiny_recipe
from serve_runs import Server, train

MISLEADING = ("LOAD REPORT", "MISSING", "newly initialized",
              "is_gradient_checkpointing", "FutureWarning")  # peft asking transformers a deprecated property


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory, tiny_bert_dir, data_files) -> Path:
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train={"max_steps": 2})
    recipe["name"] = "sentiment"
    return train(tmp_path_factory.mktemp("lifecycle"), recipe)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_server_gracefully_with_exit_0(sentiment, signum):
    live = Server([sentiment])
    answered = requests.post(live.url + "/v1/classify", json={"model": "sentiment", "input": "a fine film"}, timeout=30)
    assert answered.status_code == 200
    code = live.stop(signum, seconds=30)
    log = live.log.read_text()
    assert code == 0, f"exit {code}:\n{log[-3000:]}"
    assert log.rstrip().endswith(f"adapterkit: stopped ({signum.name})") and "Traceback" not in log, log[-3000:]


def test_reopening_a_classification_run_does_not_say_its_trained_head_is_missing(sentiment):
    live = Server([sentiment])
    try:
        scores = requests.post(live.url + "/v1/classify", json={"model": "sentiment", "input": "a fine film"},
                               timeout=30).json()["data"][0]["scores"]
    finally:
        live.stop()
    log = live.log.read_text()
    assert "adapterkit: sentiment: loaded" in log and len(scores) == 2
    assert not [text for text in MISLEADING if text in log], log[-3000:]
    evaluated = subprocess.run([sys.executable, "-m", "adapterkit", "eval", str(sentiment)], capture_output=True,
                               text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert evaluated.returncode == 0 and "eval_accuracy" in evaluated.stdout, evaluated.stderr[-3000:]
    assert not [text for text in MISLEADING if text in evaluated.stderr], evaluated.stderr[-3000:]
