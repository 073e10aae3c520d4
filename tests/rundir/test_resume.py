"""Resume after a crash, for real: ``adapterkit run`` in a subprocess, killed with SIGKILL between two
checkpoints and while a checkpoint is being written, or stopped with Ctrl-C; rerunning the same command
finishes with the same step count and eval metrics as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w
from conftest import REPO, tiny_recipe

from adapterkit import rundir
from adapterkit.cli import main
from adapterkit.errors import UserError

STEPS, SAVE_EVERY = 12, 4  # 64 train rows / batch 8: the run crosses an epoch boundary at step 8
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}


def adapterkit(*args) -> list[str]:
    return [sys.executable, "-m", "adapterkit", *map(str, args)]


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_leftover_runs():
    """A failing test must not leave a run frozen (SIGSTOP) or training behind it."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def start(recipe: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(adapterkit("run", recipe, "--output", out), cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(proc)
    return proc


def finish(cmd: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=REPO, env=ENV, text=True, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def wait_until(proc: subprocess.Popen, condition, what: str):
    """Poll ``condition`` every millisecond; freeze the process (SIGSTOP) the moment it holds."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = condition()
        if found:
            proc.send_signal(signal.SIGSTOP)
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.communicate()[1][-3000:]}")
        time.sleep(0.001)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def published(out: Path) -> list[str]:
    return [p.name for p in rundir.checkpoints(out)]


def results(out: Path) -> tuple[dict, dict]:
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "run.json").read_text())


def assert_same_run(out: Path, reference: dict) -> None:
    metrics, info = results(out)
    assert info["steps"] == reference["info"]["steps"] == STEPS
    assert abs(metrics["eval_loss"] - reference["metrics"]["eval_loss"]) <= 1e-6, (metrics, reference["metrics"])
    for key, value in reference["metrics"].items():
        if isinstance(value, float):
            assert metrics[key] == pytest.approx(value, abs=1e-6), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_bert_dir, data_files) -> dict:
    """The recipe, and the metrics of an uninterrupted run of it."""
    folder = tmp_path_factory.mktemp("resume")
    recipe = folder / "tiny.toml"
    recipe.write_text(tomli_w.dumps(tiny_recipe(
        "classification", "lora", tiny_bert_dir, data_files,
        train={"max_steps": STEPS, "save_every": SAVE_EVERY, "learning_rate": 5e-3})))
    out = folder / "uninterrupted"
    finish(adapterkit("run", recipe, "--output", out))
    metrics, info = results(out)
    assert published(out) == ["checkpoint-8", "checkpoint-12"]  # the last two kept
    assert not (out / rundir.STAGING).exists() or not any((out / rundir.STAGING).iterdir())
    return {"recipe": recipe, "metrics": metrics, "info": info, "out": out}


def test_kill_between_checkpoints_then_resume(reference, tmp_path):
    out = tmp_path / "run"
    proc = start(reference["recipe"], out)
    wait_until(proc, lambda: "checkpoint-4" in published(out), "checkpoint-4")
    assert published(out) == ["checkpoint-4"] and not any(rundir.staging_dir(out).glob("checkpoint-*"))
    kill9(proc)

    done = finish(adapterkit("run", reference["recipe"], "--output", out))  # the same command again
    assert "resuming the unfinished run" in done.stderr and "from checkpoint-4" in done.stderr
    assert_same_run(out, reference)
    assert results(out)[1]["resumed_from"] == "checkpoint-4"


def test_kill_while_a_checkpoint_is_written_then_resume(reference, tmp_path):
    out = tmp_path / "run"
    proc = start(reference["recipe"], out)

    def writing():  # a checkpoint after the first one exists in the staging folder but is not yet published
        staged = [p.name for p in rundir.staging_dir(out).glob("checkpoint-*") if p.name != "checkpoint-4"]
        return staged and staged[0] not in published(out) and staged[0]

    while True:
        partial = wait_until(proc, writing, "a checkpoint being written")
        if partial not in published(out):  # frozen mid-write (not just after the rename)
            break
        proc.send_signal(signal.SIGCONT)  # too late for this one: catch the next
    kill9(proc)
    assert (rundir.staging_dir(out) / partial).is_dir() and partial not in published(out)
    last = published(out)[-1]

    done = finish(adapterkit("run", reference["recipe"], "--output", out))
    assert f"from {last}" in done.stderr
    assert_same_run(out, reference)
    assert not any(rundir.staging_dir(out).glob("checkpoint-*"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_prints_the_resume_command(reference, tmp_path, signum):
    """SIGTERM (kill, schedulers) is treated like Ctrl-C; the exit code is 128 + the signal's number."""
    out = tmp_path / "run"
    proc = start(reference["recipe"], out)
    wait_until(proc, lambda: "checkpoint-4" in published(out), "checkpoint-4")
    proc.send_signal(signum)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err
    step = int(re.search(r"interrupted at step (\d+); checkpoint saved in \S+", err).group(1))
    assert 4 < step < STEPS and f"checkpoint-{step}" in published(out)
    command = re.search(r"resume with: (.+)", err).group(1)
    assert shlex.split(command) == ["adapterkit", "run", str(reference["recipe"]), "--output", str(out)]

    done = finish(adapterkit(*shlex.split(command)[1:]))
    assert f"from checkpoint-{step}" in done.stderr
    assert_same_run(out, reference)


def test_a_second_run_into_the_same_directory_fails_at_once(reference, tmp_path, capsys):
    out = tmp_path / "run"
    proc = start(reference["recipe"], out)
    lock = out / ".lock"
    wait_until(proc, lambda: lock.is_file() and lock.read_text().strip() == str(proc.pid), "the lock")
    started = time.monotonic()
    assert main(["run", str(reference["recipe"]), "--output", str(out)]) == 2
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert f"another adapterkit run (pid {proc.pid}) is writing to this directory" in err and str(out) in err
    kill9(proc)
    with rundir.claim(out, "x", overwrite=False):  # a killed run's lock does not block the next one
        pass


def test_a_finished_run_is_not_overwritten(reference, capsys):
    out = reference["out"]
    before = (out / "run.json").read_bytes()
    assert main(["run", str(reference["recipe"]), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a finished run; pass --overwrite" in err and "Traceback" not in err
    assert (out / "run.json").read_bytes() == before


# Run-directory rules, without training.

def make_checkpoint(run_dir: Path, step: int, max_steps: int = 100) -> None:
    folder = rundir.staging_dir(run_dir) / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
    rundir.publish(run_dir, step)


def test_publish_renames_and_keeps_the_last_two(tmp_path):
    for step in (2, 4, 6):
        make_checkpoint(tmp_path, step)
    assert published(tmp_path) == ["checkpoint-4", "checkpoint-6"]
    assert not any(rundir.staging_dir(tmp_path).iterdir())


def test_claim_resumes_the_newest_complete_checkpoint(tmp_path):
    with rundir.claim(tmp_path, "recipe A", overwrite=False) as resume:
        assert resume is None
    make_checkpoint(tmp_path, 4)
    make_checkpoint(tmp_path, 8)
    (rundir.staging_dir(tmp_path) / "checkpoint-12").mkdir()  # cut off mid-write
    with rundir.claim(tmp_path, "recipe A", overwrite=False) as resume:
        assert resume.name == "checkpoint-8"
    assert not rundir.staging_dir(tmp_path).exists()
    with pytest.raises(UserError, match="unfinished run of a different recipe"):
        with rundir.claim(tmp_path, "recipe B", overwrite=False):
            pass
    with rundir.claim(tmp_path, "recipe B", overwrite=True) as resume:
        assert resume is None and published(tmp_path) == []


def test_a_final_checkpoint_is_not_resumed_from(tmp_path):
    """Trainer would run one step past max_steps from it; the run redoes the last stretch instead."""
    with rundir.claim(tmp_path, "r", overwrite=False):  # adapterkit's folder (stamped)
        pass
    make_checkpoint(tmp_path, 4, max_steps=8)
    make_checkpoint(tmp_path, 8, max_steps=8)
    with rundir.claim(tmp_path, "r", overwrite=False) as resume:
        assert resume.name == "checkpoint-4"


def test_claims_exclude_each_other(tmp_path):
    with rundir.claim(tmp_path, "r", overwrite=False):
        with pytest.raises(UserError, match=f"another adapterkit run \\(pid {os.getpid()}\\)"):
            with rundir.claim(tmp_path, "r", overwrite=False):
                pass
    with rundir.claim(tmp_path, "r", overwrite=False):
        pass


def test_checkpoints_on_a_timer_without_save_every(tiny_bert_dir, data_files, tmp_path):
    """train.save_minutes (default 10) saves without any train.save_every, so a crash loses at most that much work;
    here a tiny interval saves after every step but the last (which the final artifacts cover)."""
    for minutes, expected in ((1e-6, ["checkpoint-1", "checkpoint-2"]),  # the last two kept
                              (10.0, [])):  # a run shorter than the interval writes none
        recipe = tmp_path / f"timer-{minutes}.toml"
        recipe.write_text(tomli_w.dumps(tiny_recipe("classification", "lora", tiny_bert_dir, data_files,
                                                    train={"max_steps": 3, "save_minutes": minutes})))
        finish(adapterkit("run", recipe, "--output", tmp_path / str(minutes)))
        assert published(tmp_path / str(minutes)) == expected
