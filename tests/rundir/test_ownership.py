"""adapterkit writes into, resumes from, replaces or deletes only folders it can prove it wrote (its
``.adapterkit`` stamp), and a failed run leaves nothing behind. Every command that writes is tried on a
folder of the user's own files, which must come out byte-identical."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import tomli_w
from conftest import snapshot, tiny_recipe

from adapterkit import rundir
from adapterkit.callbacks import SaveOnInterrupt
from adapterkit.cli import main
from adapterkit.errors import RunInterrupted


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """What a user keeps in a folder: a commented recipe, metrics, checkpoints of their own, samples."""
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "recipe.toml").write_text("# my notes, keep them\n[model]\nname = 'x'\n")
    (folder / "metrics.json").write_text('{"f1": 0.9}\n')
    (folder / "samples.jsonl").write_text('{"a": 1}\n')
    for step in (100, 200, 300):
        ckpt = folder / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 300}))
        (ckpt / "weights.bin").write_bytes(os.urandom(64))
    return folder


@pytest.mark.parametrize("command", [
    ["run", "{recipe}", "--output", "{out}"],
    ["run", "{recipe}", "--output", "{out}", "--overwrite"],
    ["zero-shot", "{recipe}", "--output", "{out}", "--overwrite"],
    ["compare", "{recipe}", "--methods", "lora", "--output", "{out}"],
], ids=["run", "run-overwrite", "zero-shot-overwrite", "compare"])
def test_a_folder_of_the_users_files_is_refused_and_left_byte_identical(user_folder, one_step_recipe, command, capsys):
    before = snapshot(user_folder)
    argv = [a.format(recipe=one_step_recipe, out=user_folder) for a in command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "adapterkit did not write" in err and str(user_folder) in err, err
    assert snapshot(user_folder) == before


def test_a_nested_user_folder_is_refused_too(tmp_path, one_step_recipe, capsys):
    """Only the stamp counts: a folder holding nothing but a sub-folder of the user's is theirs."""
    folder = tmp_path / "nested"
    (folder / "deep" / "deeper").mkdir(parents=True)
    (folder / "deep" / "deeper" / "notes.txt").write_text("mine")
    before = snapshot(folder)
    assert main(["run", str(one_step_recipe), "--output", str(folder), "--overwrite"]) == 2
    assert snapshot(folder) == before


def test_an_empty_folder_is_used_and_stamped_and_overwrite_replaces_only_its_own_run(tmp_path, one_step_recipe):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["run", str(one_step_recipe), "--output", str(folder)]) == 0
    assert rundir.owned(folder) and (folder / "run.json").is_file()
    stamp = (folder / rundir.MARKER).read_text()
    assert main(["run", str(one_step_recipe), "--output", str(folder), "--overwrite"]) == 0
    assert (folder / rundir.MARKER).read_text() == stamp  # the same owner, the same run folder


@pytest.mark.parametrize("command,target", [("run", "new"), ("run", "empty"), ("run", "default"),
                                            ("zero-shot", "new"), ("zero-shot", "empty")])
def test_a_run_that_fails_on_its_data_writes_nothing(tmp_path, tiny_bert_dir, data_files, command, target,
                                                      monkeypatch, capsys):
    """The data error comes after preflight, while loading (zero-shot: after the folder is claimed): no run
    directory, and nothing in an empty one, may be left behind."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "pos"}\n{"text": "broken\n')
    path = tmp_path / "bad.toml"
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files)
    recipe["data"]["train"] = str(bad)
    path.write_text(tomli_w.dumps(recipe))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = work / "out"
    if target == "empty":
        out.mkdir()
    argv = [command, str(path)] + ([] if target == "default" else ["--output", str(out)])
    assert main(argv) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    if target == "empty":
        assert out.is_dir() and not any(out.iterdir())
    else:
        assert not out.exists() and not list(work.glob("runs/*"))


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_an_output_that_cannot_be_a_folder_is_one_line(tmp_path, one_step_recipe, kind, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    out = afile if kind == "file" else afile / "sub"
    assert main(["run", str(one_step_recipe), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "Traceback" not in err, err
    assert afile.read_text() == "keep"


def test_a_signal_during_the_final_evaluation_is_announced_then_a_second_one_stops(tmp_path, caplog):
    """The first Ctrl-C/SIGTERM after training waits for the results (and says so); a second one stops and
    says what is kept."""
    before = signal.getsignal(signal.SIGINT)  # Python's default_int_handler, or SIG_IGN when started in the background
    callback = SaveOnInterrupt(tmp_path)
    with caplog.at_level("WARNING", logger="adapterkit"):
        with callback.finishing():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
    assert "finishing the final evaluation" in caplog.text
    with pytest.raises(RunInterrupted, match="nothing of this run is left") as stopped:
        with callback.finishing():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert stopped.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
