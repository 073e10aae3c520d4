"""``--overwrite`` replaces a run only once the new one has finished: the old run waits in ``DIR/.replaced``,
comes back when the new run fails before keeping anything, and stays there while a new run that kept a
checkpoint is unfinished (rerunning resumes it; finishing deletes the old run)."""

from __future__ import annotations

import json

import pytest
from conftest import snapshot
from transformers import TrainerCallback

from adapterkit import api, rundir
from adapterkit.cli import main


class Crash(TrainerCallback):
    """Fails the run in its first step, before any checkpoint (as a crash, Ctrl-C or SIGTERM would)."""

    def on_step_begin(self, args, state, control, **kwargs):
        raise RuntimeError("crashed on purpose")


def test_a_failed_overwrite_leaves_the_finished_run_as_it_was(tmp_path, one_step_recipe, capsys):
    out = tmp_path / "run"
    assert main(["run", str(one_step_recipe), "--output", str(out)]) == 0
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="crashed on purpose"):
        api.run(one_step_recipe, output=out, overwrite=True, callbacks=(Crash(),))
    assert snapshot(out) == before  # run.json, metrics, adapter, curves, logs: byte for byte
    assert not (out / ".replaced").exists()
    assert main(["eval", str(out)]) == 0  # and it is still a run a later command reads


def test_a_finished_overwrite_replaces_the_run_and_deletes_the_old_one(tmp_path, one_step_recipe):
    out = tmp_path / "run"
    assert main(["run", str(one_step_recipe), "--output", str(out)]) == 0
    first = json.loads((out / "run.json").read_text())
    assert main(["run", str(one_step_recipe), "--output", str(out), "--overwrite"]) == 0
    second = json.loads((out / "run.json").read_text())
    assert second["wall_seconds"] != first["wall_seconds"]  # written again
    assert not (out / ".replaced").exists()


def write_run(folder, tag: str) -> None:
    """What a finished run leaves (as far as claiming is concerned)."""
    (folder / "adapter").mkdir()
    (folder / "adapter" / "weights.safetensors").write_text(tag)
    for name in ("run.json", "metrics.json", "history.json"):
        (folder / name).write_text(json.dumps({"tag": tag}))


def make_checkpoint(folder, step: int) -> None:
    staged = rundir.staging_dir(folder) / f"checkpoint-{step}"
    staged.mkdir(parents=True)
    (staged / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 100}))
    rundir.publish(folder, step)


def test_a_new_run_that_kept_a_checkpoint_resumes_and_the_old_run_waits_until_it_finishes(tmp_path):
    with rundir.claim(tmp_path, "recipe A", overwrite=False):
        write_run(tmp_path, "A")
    finished_a = snapshot(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with rundir.claim(tmp_path, "recipe B", overwrite=True):
            make_checkpoint(tmp_path, 4)
            raise KeyboardInterrupt
    aside = tmp_path / ".replaced"
    assert json.loads((aside / "run.json").read_text()) == {"tag": "A"}
    assert (aside / "recipe.toml").read_text() == "recipe A"
    assert not (tmp_path / "run.json").exists() and rundir.checkpoints(tmp_path)
    # another --overwrite that fails at once: the unfinished B goes, A still waits, and nothing else moves
    with pytest.raises(RuntimeError):
        with rundir.claim(tmp_path, "recipe C", overwrite=True):
            raise RuntimeError
    assert snapshot(tmp_path) == finished_a  # A put back in place, byte for byte
    # an overwrite that keeps a checkpoint, then is resumed without --overwrite and finishes: A is deleted
    with pytest.raises(RuntimeError):
        with rundir.claim(tmp_path, "recipe B", overwrite=True):
            make_checkpoint(tmp_path, 4)
            raise RuntimeError
    with rundir.claim(tmp_path, "recipe B", overwrite=False) as resume:
        assert resume is not None and resume.name == "checkpoint-4"
        assert aside.is_dir()
        write_run(tmp_path, "B")
    assert not aside.exists() and json.loads((tmp_path / "run.json").read_text()) == {"tag": "B"}
