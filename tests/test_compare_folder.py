"""`adapterkit compare --output DIR` on a DIR that holds something already: an earlier comparison is refused
(exit 2, one line, byte for byte untouched) unless --resume (keep its ok results, run the rest) or --overwrite
(replace it); another command's folder is refused with either flag; a method given twice runs once. A folder another
live comparison is writing is refused at once, whatever the flags; its lock goes with the process that held it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, snapshot

from adapterkit import results, rundir
from adapterkit.cli import main


def compare(recipe, out, *extra: str) -> int:
    return main(["compare", str(recipe), "--methods", "lora", "--no-zero-shot", "--output", str(out), *extra])


def one_error_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err
    return err


def test_a_second_comparison_is_refused_and_resume_keeps_what_is_done(one_step_recipe, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare(one_step_recipe, out) == 0
    first = snapshot(out)
    assert "runs/lora-seed0/adapter" in {k.replace("\\", "/") for k in first} and "results/lora-seed0.json" in first
    capsys.readouterr()

    assert compare(one_step_recipe, out) == 2
    one_error_line(capsys, str(out), "holds a comparison", "--resume", "--overwrite")
    assert snapshot(out) == first

    # --resume with another --set would mix two setups in one report: refused, nothing touched
    assert compare(one_step_recipe, out, "--resume", "--set", "train.learning_rate=0.01") == 2
    one_error_line(capsys, str(out), "--resume", "sets")
    assert snapshot(out) == first

    # --resume with a new seed: seed 0's run and result are kept as they are, seed 1 runs
    assert compare(one_step_recipe, out, "--resume", "--seeds", "0,1") == 0
    printed = capsys.readouterr().out
    assert "lora-seed0: kept" in printed and "[2/2] lora-seed1 ..." in printed
    after = snapshot(out)
    kept = {k: v for k, v in first.items() if k.startswith(("runs", "results"))}
    assert {k: after[k] for k in kept} == kept
    assert json.loads((out / "results" / "lora-seed1.json").read_text())["status"] == "ok"
    assert "lora" in (out / "report.md").read_text()


def test_overwrite_replaces_the_comparison(one_step_recipe, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare(one_step_recipe, out) == 0
    run_json = (out / "runs" / "lora-seed0" / "run.json").read_bytes()
    (out / "results" / "full-seed0.json").write_text("{}")  # a result of the earlier comparison only
    assert compare(one_step_recipe, out, "--overwrite") == 0
    assert (out / "runs" / "lora-seed0" / "run.json").read_bytes() != run_json  # trained again
    assert sorted(p.name for p in (out / "results").iterdir()) == ["lora-seed0.json"]
    assert compare(one_step_recipe, out, "--overwrite", "--resume") == 2
    one_error_line(capsys, "--overwrite", "--resume")


@pytest.mark.parametrize("flag", [[], ["--overwrite"], ["--resume"]], ids=["plain", "overwrite", "resume"])
def test_another_commands_folder_is_refused(one_step_recipe, tmp_path, capsys, flag):
    for command in ("tune", "run"):
        folder = rundir.take(tmp_path / command, command) if command == "tune" else tmp_path / command
        if command == "run":
            folder.mkdir()
            (folder / rundir.MARKER).write_text(json.dumps({"command": "run"}))
            (folder / "run.json").write_text("{}")
        (folder / "report.md").write_text("the search's report\n")
        (folder / "results").mkdir()
        (folder / "results" / "trial-0.json").write_text("{}")
        before = snapshot(folder)
        assert compare(one_step_recipe, folder, *flag) == 2
        one_error_line(capsys, str(folder), f"adapterkit {command}", "choose another --output")
        assert snapshot(folder) == before


def test_a_method_given_twice_is_trained_once(one_step_recipe, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(one_step_recipe), "--methods", "lora,lora", "--no-zero-shot", "--output",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("plan: lora") == 1 and "[1/1] lora-seed0 ..." in printed and "[2/" not in printed
    assert sorted(p.name for p in (out / "results").iterdir()) == ["lora-seed0.json"]


def not_trained(monkeypatch, during=None):
    """Jobs recorded as failed without a child process (the folder's lock is what is tested); ``during(out_dir)``
    runs inside the first job, while the comparison holds its folder."""
    started = []

    def job(job, recipe_path, out_dir, *args, **kwargs):
        started.append(job.name)
        if during is not None and len(started) == 1:
            during(out_dir)
        return results.empty(status="failed", method=job.method, seed=job.seed, error="not trained in this test")

    monkeypatch.setattr("adapterkit.compare.run_job", job)


def test_a_second_comparison_into_a_folder_being_written_fails_at_once(one_step_recipe, tmp_path, capsys, monkeypatch):
    refused = []

    def second(out_dir):  # started while the first comparison runs its job
        before = snapshot(out_dir)
        for flag in ([], ["--resume"], ["--overwrite"]):
            refused.append((flag, compare(one_step_recipe, out_dir, *flag), capsys.readouterr().err))
        assert snapshot(out_dir) == before

    out = tmp_path / "cmp"
    not_trained(monkeypatch, during=second)
    assert compare(one_step_recipe, out) == 1
    for flag, code, err in refused:
        assert code == 2 and len(err.strip().splitlines()) == 1, (flag, err)
        assert str(out) in err and f"another adapterkit compare (pid {os.getpid()}) is writing" in err, (flag, err)
    assert len(refused) == 3
    assert compare(one_step_recipe, out, "--resume") == 1  # the first one is done: its folder is free again


HOLD = "import sys, time\nfrom adapterkit import rundir\nwith rundir.lock(sys.argv[1], 'compare'):\n" \
       "    print('held', flush=True)\n    time.sleep(300)\n"


def test_a_killed_comparisons_folder_is_resumed(one_step_recipe, tmp_path, capsys, monkeypatch):
    """Another process holds the folder's lock (as a live comparison does), then is killed with SIGKILL."""
    out = tmp_path / "cmp"
    not_trained(monkeypatch)
    assert compare(one_step_recipe, out) == 1
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = snapshot(out)
        capsys.readouterr()
        assert compare(one_step_recipe, out, "--resume") == 2
        one_error_line(capsys, str(out), f"another adapterkit compare (pid {holder.pid}) is writing")
        assert snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()
    assert compare(one_step_recipe, out, "--resume") == 1  # the kernel dropped the killed one's lock
    assert "[1/1] lora-seed0 ..." in capsys.readouterr().out


def test_report_into_a_comparison_being_written_is_refused(one_step_recipe, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    not_trained(monkeypatch)
    assert compare(one_step_recipe, out) == 1
    with rundir.lock(out, "compare"):
        before = snapshot(out)
        capsys.readouterr()
        assert main(["report", str(out)]) == 2  # the comparison would overwrite it at its end
        one_error_line(capsys, str(out), f"another adapterkit compare (pid {os.getpid()}) is writing", "--output")
        assert main(["report", str(out), "--output", str(tmp_path / "interim")]) == 0  # elsewhere: fine
        assert snapshot(out) == before
    assert main(["report", str(out)]) == 0
