"""`adapterkit serve` stopped as a user or a service manager stops it: SIGTERM (``kill PID``) and Ctrl-C
(SIGINT) end it gracefully, exit 0 and one log line, on a tiny classification run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests
from conftest import tiny_recipe
from serve_runs import Server, train


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
