"""Several ranks on the 2-core CPU (gloo), through ``adapterkit run --devices N`` and torchrun: 2 ranks equal one
process at the same global batch, two single-rank "nodes" on localhost equal one node with 2 ranks, a run
checkpointed on 2 ranks resumes on 1 (and the other way round), and kill -9 of one rank ends the others."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w
from transformers import TrainerCallback as TrainerCallbackBase

from tests.conftest import tiny_recipe

pytestmark = pytest.mark.integration
STEPS = 4


def _env() -> dict[str, str]:
    repo = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo, "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _adapterkit(*args, wait: bool = True, timeout: float = 300):
    cmd = [sys.executable, "-m", "adapterkit", "run", *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_bert_dir, data_files) -> Path:
    """LoRA on the tiny BERT without dropout (masks would differ by rank), a checkpoint at the last step so
    its trainer_state.json holds every step's loss."""
    path = tmp_path_factory.mktemp("recipe") / "tiny.toml"
    path.write_text(tomli_w.dumps(tiny_recipe(
        "classification", "lora", tiny_bert_dir, data_files, model={"dropout": 0.0},
        train={"max_steps": STEPS, "batch_size": 8, "save_every": STEPS, "save_minutes": 1000.0})))
    return path


def _losses(run_dir: Path) -> list[float]:
    state = json.loads((run_dir / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def _adapter(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def assert_same_run(a: Path, b: Path) -> None:

    la, lb = _losses(a), _losses(b)
    assert len(la) == len(lb) == STEPS
    assert max(abs(x - y) for x, y in zip(la, lb)) < 1e-5, (la, lb)
    wa, wb = _adapter(a), _adapter(b)
    assert wa.keys() == wb.keys()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert abs(ma["eval_loss"] - mb["eval_loss"]) < 1e-5 and ma["eval_accuracy"] == mb["eval_accuracy"]


@pytest.fixture(scope="module")
def one_process(recipe, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    _adapterkit(recipe, "--output", out)
    return out


@pytest.fixture(scope="module")
def two_ranks(recipe, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two") / "run"
    done = _adapterkit(recipe, "--devices", 2, "--output", out)
    assert "launching 2 rank(s)" in done.stderr
    return out


def test_two_ranks_equal_one_process_at_the_same_global_batch(one_process, two_ranks):
    info = json.loads((two_ranks / "run.json").read_text())
    assert info["hardware"]["devices"] == 2 and info["hardware"]["strategy"] == "ddp"
    assert info["steps"] == STEPS
    assert sorted(p.name for p in two_ranks.iterdir()) == sorted(p.name for p in one_process.iterdir())
    assert_same_run(one_process, two_ranks)
    # STEPS global batches of 8 rows: each rank's Trainer counted 8 rows per rank (16 per step) before
    for run in (one_process, two_ranks):
        runtime = json.loads((run / "history.json").read_text())[-1]["train_runtime"]  # the Trainer's own clock
        seen = json.loads((run / "run.json").read_text())["train_samples_per_second"] * runtime
        assert seen == pytest.approx(STEPS * 8, rel=0.02), run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_equal_one_node_with_two_ranks(recipe, two_ranks, tmp_path):
    out, port = tmp_path / "run", _free_port()
    nodes = [_adapterkit(recipe, "--devices", 1, "--nnodes", 2, "--node-rank", rank, "--master-addr", "127.0.0.1",
                         "--master-port", port, "--output", out, wait=False) for rank in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    assert json.loads((out / "run.json").read_text())["hardware"]["nodes"] == 2
    assert_same_run(two_ranks, out)


def _ranks_of(launcher: subprocess.Popen) -> list:
    import psutil

    return [p for p in psutil.Process(launcher.pid).children(recursive=True) if "adapterkit" in " ".join(p.cmdline())]


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_dir():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_kill_9_of_one_rank_ends_the_others_and_the_rerun_resumes_on_one(recipe, one_process, tmp_path):
    """Checkpointed on 2 ranks, one rank killed (-9): the launcher exits with one line per rank within the
    time-out; the same command on 1 rank resumes from the last complete checkpoint and ends where one process
    ends."""
    out = tmp_path / "run"
    sets = ["--set", "train.save_every=1"]  # a checkpoint per step: a complete one exists long before the end
    launcher = _adapterkit(recipe, *sets, "--devices", 2, "--output", out, wait=False)
    _wait_for(out / "checkpoints" / "checkpoint-1", launcher)
    victim = max(_ranks_of(launcher), key=lambda p: p.pid)  # the rank started last
    victim.send_signal(signal.SIGKILL)
    started = time.monotonic()
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode != 0 and time.monotonic() - started < 60
    assert "was killed by SIGKILL" in err and "resumes from the last complete checkpoint" in err
    assert not (out / "run.json").exists()
    done = _adapterkit(recipe, *sets, "--devices", 1, "--output", out)
    assert "resuming the unfinished run" in done.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["resumed_from"].startswith("checkpoint-") and info["steps"] == STEPS


def test_a_run_checkpointed_on_one_process_resumes_on_two_ranks(recipe, one_process, tmp_path):
    out = tmp_path / "run"
    sets = ["--set", "train.save_every=1"]
    single = _adapterkit(recipe, *sets, "--output", out, wait=False)
    _wait_for(out / "checkpoints" / "checkpoint-1", single)
    single.send_signal(signal.SIGKILL)
    single.communicate(timeout=60)
    done = _adapterkit(recipe, *sets, "--devices", 2, "--output", out)
    assert "resuming the unfinished run" in done.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["hardware"]["devices"] == 2 and info["steps"] == STEPS
    assert abs(json.loads((out / "metrics.json").read_text())["eval_loss"]
               - json.loads((one_process / "metrics.json").read_text())["eval_loss"]) < 1e-4


class _CrashAt(TrainerCallbackBase):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"crash at step {self.step}")


def test_a_run_resumed_inside_its_second_epoch_on_two_ranks_reads_the_same_batches(recipe, tmp_path):
    """Checkpointed at step 10 (8 steps an epoch) by one process that then crashed, resumed on 2 ranks: the resumed
    epoch is drawn as epoch 2, not epoch 1 (accelerate's skip_first_batches hides the sampler from set_epoch), so the
    run ends where an uninterrupted 2-rank run ends."""
    from adapterkit.api import run

    sets = ["train.max_steps=14", "train.save_every=5"]
    whole, out = tmp_path / "whole", tmp_path / "resumed"
    _adapterkit(recipe, *(f"--set={s}" for s in sets), "--devices", 2, "--output", whole)
    with pytest.raises(RuntimeError, match="crash at step"):
        run(recipe, overrides=sets, output=out, callbacks=(_CrashAt(12),))
    _adapterkit(recipe, *(f"--set={s}" for s in sets), "--devices", 2, "--output", out)
    assert json.loads((out / "run.json").read_text())["resumed_from"] == "checkpoint-10"
    history = [[(e["step"], e["loss"]) for e in json.loads((d / "history.json").read_text()) if "loss" in e]
               for d in (whole, out)]
    assert [s for s, _ in history[1]] == list(range(1, 15))
    assert max(abs(a - b) for (_, a), (_, b) in zip(*history)) < 1e-5, history
    wa, wb = _adapter(whole), _adapter(out)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5


def test_eval_loss_on_two_ranks_counts_each_eval_row_once(recipe, tmp_path):
    """13 eval rows in batches of 16: the Trainer repeated each rank's loss once per row of the global batch and
    kept rank 0's half of the last batch only (and accelerate pads it with rows of the first batch); eval_loss, during
    training and in metrics.json, is now the mean over the 13 rows, as one process computes it."""
    sets = ["--set=data.limit_eval=13", "--set=train.eval_every=2"]
    one, two = tmp_path / "one", tmp_path / "two"
    _adapterkit(recipe, *sets, "--output", one)
    _adapterkit(recipe, *sets, "--devices", 2, "--output", two)
    curves = [[(e["step"], e["eval_loss"]) for e in json.loads((d / "history.json").read_text()) if "eval_loss" in e]
              for d in (one, two)]
    assert [s for s, _ in curves[0]] == [s for s, _ in curves[1]] == [2, 4]  # the evals during training
    assert max(abs(a - b) for (_, a), (_, b) in zip(*curves)) < 1e-5, curves
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert abs(ma["eval_loss"] - mb["eval_loss"]) < 1e-5 and ma["eval_accuracy"] == mb["eval_accuracy"]
    assert sum(v["support"] for v in mb["per_label"].values()) == 13
