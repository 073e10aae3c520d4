"""``adapterkit export`` refuses: a sabotaged export (wrongly scaled, NaN weights) fails its self-check and is
removed; runs that cannot merge, bad options and folders of the user's files are refused in one line, with
nothing of the user's replaced."""

from __future__ import annotations

import json

import pytest
from conftest import snapshot
from export_runs import _run, chat_run, cls_run  # noqa: F401  (fixtures)

from adapterkit.cli import main
from adapterkit.errors import UserError
from adapterkit.export import export


def _scaled_merge(monkeypatch, factor: float):
    """A wrongly scaled merge: every LoRA update folded in ``factor`` times."""
    from adapterkit.export import merged

    original = merged.merge_run

    def sabotaged(source):
        from peft.tuners.lora import LoraLayer

        for module in source.model.modules():
            if isinstance(module, LoraLayer):
                module.scaling = {k: v * factor for k, v in module.scaling.items()}
        return original(source)

    monkeypatch.setattr(merged, "merge_run", sabotaged)


@pytest.mark.parametrize("fmt", ["merged", "onnx"])
def test_a_wrongly_scaled_merge_is_refused_and_removed(cls_run, tmp_path, monkeypatch, fmt):
    _scaled_merge(monkeypatch, 3.0)
    with pytest.raises(UserError, match="refused by its self-check: max .Δlogit"):
        export(cls_run, fmt, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    record = export(cls_run, fmt, output=tmp_path / "out", force=True)  # --force keeps it, marked as failed
    assert not record["check"]["passed"]
    assert not json.loads((tmp_path / "out" / "export.json").read_text())["check"]["passed"]


def test_a_wrongly_scaled_gguf_is_refused(chat_run, tmp_path, monkeypatch):
    _scaled_merge(monkeypatch, 3.0)
    with pytest.raises(UserError, match="refused by its self-check: max .Δlogit"):
        export(chat_run, "gguf", dtype="q8_0", output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_export_with_nan_weights_is_refused(cls_run, tmp_path, monkeypatch):
    from adapterkit.export import merged

    original = merged.merge_run

    def poisoned(source):
        model = original(source)
        model.classifier.bias.data[0] = float("nan")
        return model

    monkeypatch.setattr(merged, "merge_run", poisoned)
    with pytest.raises(UserError, match="max .Δlogit. is nan"):
        export(cls_run, "onnx", output=tmp_path / "out")


@pytest.mark.parametrize("method", ["prompt", "bottleneck"])
def test_methods_that_cannot_merge_are_refused_in_one_line(tmp_path_factory, tiny_bert_dir, data_files, method,
                                                           capsys):
    run_dir = _run(tmp_path_factory, method, "classification", method, tiny_bert_dir, data_files,
                   train={"max_steps": 1})
    capsys.readouterr()  # the run's own output
    for fmt in ("merged", "onnx"):
        assert main(["export", str(run_dir), "--format", fmt]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("adapterkit: error: ") and "\n" not in err and f"cannot export a {method} run" in err
        assert "cannot fold" in err if method == "bottleneck" else "virtual tokens" in err
    assert not any(p.name.startswith("export-") for p in run_dir.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--format", "gguf"], "--format gguf takes AutoModelForCausalLM runs"),
    (["--format", "onnx", "--dtype", "int4"], "--dtype: 'int4': --format onnx writes fp32"),
    (["--format", "safetensors"], "unknown export format 'safetensors'"),
])
def test_bad_format_or_dtype_is_one_line(cls_run, argv, message, capsys):
    assert main(["export", str(cls_run), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "merged"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a finished adapterkit run" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_onnx_of_a_chat_run_is_refused(chat_run, capsys):
    assert main(["export", str(chat_run), "--format", "onnx"]) == 2
    assert "use --format merged" in capsys.readouterr().err


def test_a_folder_of_the_users_files_is_refused_and_left_byte_identical(cls_run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.onnx").write_bytes(b"my own model")
    (mine / "notes.txt").write_text("keep me\n")
    before = snapshot(mine)
    assert main(["export", str(cls_run), "--format", "onnx", "--output", str(mine)]) == 2
    assert "did not write" in capsys.readouterr().err
    assert snapshot(mine) == before


def test_an_adapterkit_folder_that_is_no_export_is_not_replaced(cls_run, tmp_path, capsys):
    """The run directory itself, or a comparison folder (stamped, no export.json), is never cleared."""
    from adapterkit import rundir

    other = rundir.take(tmp_path / "comparison", "compare")
    (other / "report.md").write_text("results\n")
    for folder in (cls_run, other):
        before = snapshot(folder)
        assert main(["export", str(cls_run), "--format", "onnx", "--output", str(folder)]) == 2
        assert capsys.readouterr().err.count("\n") == 1
        assert snapshot(folder) == before


@pytest.fixture(scope="module")
def other_cls_run(tmp_path_factory, tiny_bert_dir, data_files):
    return _run(tmp_path_factory, "cls-other", "classification", "lora", tiny_bert_dir, data_files)


def _interrupted_write(monkeypatch):
    """Ctrl-C while the merged folder is half written."""
    from adapterkit.export import merged

    def interrupted(source, model, output, dtype):
        (output / "model.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(merged, "save_merged", interrupted)


@pytest.mark.parametrize("failure", ["self-check", "interrupt"])
def test_a_failed_re_export_leaves_the_previous_export_byte_identical(cls_run, tmp_path, monkeypatch, failure):
    """The new export is written beside the folder and swapped in only once it passed: a failure leaves the
    old export as it was, and nothing beside it."""
    out = tmp_path / "out"
    export(cls_run, "merged", output=out)
    before = snapshot(out)
    stamp = (out / ".adapterkit").read_bytes()
    if failure == "self-check":
        _scaled_merge(monkeypatch, 3.0)
        with pytest.raises(UserError, match="refused by its self-check"):
            export(cls_run, "merged", output=out)
    else:
        _interrupted_write(monkeypatch)
        with pytest.raises(KeyboardInterrupt):
            export(cls_run, "merged", output=out)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    if failure == "self-check":  # --force keeps the failed export in its place, marked as failed
        assert not export(cls_run, "merged", output=out, force=True)["check"]["passed"]
        assert not json.loads((out / "export.json").read_text())["check"]["passed"]
        assert (out / ".adapterkit").read_bytes() == stamp
        assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_another_runs_export_is_refused_in_one_line(cls_run, other_cls_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(cls_run), "--format", "merged", "--output", str(out)]) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main(["export", str(other_cls_run), "--format", "merged", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"adapterkit: error: {out}: ") and "\n" not in err
    assert str(cls_run) in err and "--overwrite" in err
    assert snapshot(out) == before
    assert main(["export", str(other_cls_run), "--format", "merged", "--output", str(out), "--overwrite"]) == 0
    assert json.loads((out / "export.json").read_text())["run"] == str(other_cls_run)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_same_run_re_exported_is_a_refresh(cls_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(cls_run), "--format", "merged", "--output", str(out)]) == 0
    stamp = (out / ".adapterkit").read_bytes()
    (out / "stale.txt").write_text("left by the previous export\n")  # what the previous export held is replaced
    assert main(["export", str(cls_run), "--format", "merged", "--output", str(out)]) == 0
    assert json.loads((out / "export.json").read_text())["run"] == str(cls_run)
    assert (out / ".adapterkit").read_bytes() == stamp  # the folder's ownership stamp is kept
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_which_run_an_export_folder_holds(tmp_path):
    """The run's stamp id decides when both sides have one; an older export.json (no run_id) is matched by
    path; an unreadable export.json is not replaced without --overwrite."""
    from adapterkit import rundir
    from adapterkit.export import folder

    run, out = rundir.take(tmp_path / "run", "run"), rundir.take(tmp_path / "out", "export")
    (out / "export.json").write_text(json.dumps({"run": str(tmp_path / "elsewhere" / ".." / "run")}))
    folder.refuse(out, run)
    (out / "export.json").write_text(json.dumps({"run": str(run), "run_id": "another"}))
    with pytest.raises(UserError, match=f"^{out}: holds the export of another run \\({run}\\); pass --overwrite"):
        folder.refuse(out, run)
    folder.refuse(out, run, overwrite=True)
    (out / "export.json").write_text("{not json")
    with pytest.raises(UserError, match="export.json cannot be read .JSONDecodeError.; pass --overwrite"):
        folder.refuse(out, run)


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_an_export_killed_between_its_renames_is_put_back_by_the_next(cls_run, tmp_path, monkeypatch):
    """SIGKILL between publish's two renames leaves --output missing, the previous export in a hidden '-previous'
    folder and the new one staged beside it. The next export puts the previous export back before anything else:
    refused by its self-check here, it leaves that export in place, byte-identical, and nothing beside it."""
    out = tmp_path / "out"
    export(cls_run, "merged", output=out)
    before = snapshot(out)
    dead = _dead_pid()
    out.rename(tmp_path / f".out.export-{dead}-0123abcd-previous")
    (tmp_path / f".out.export-{dead}-0123abcd").mkdir()
    (tmp_path / f".out.export-{dead}-0123abcd" / "export.json").write_text("{}")
    _scaled_merge(monkeypatch, 3.0)
    with pytest.raises(UserError, match="refused by its self-check"):
        export(cls_run, "merged", output=out)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_folders_of_killed_exports_are_removed_but_not_a_running_ones(cls_run, tmp_path):
    """Killed after the second rename: the '-previous' folder stays beside the good export; killed while writing:
    its staging folder. The next export removes both (and an earlier adapterkit's, without a pid in its name),
    but not the staging folder of an export whose process still runs."""
    import shutil
    import subprocess

    out = tmp_path / "out"
    export(cls_run, "merged", output=out)
    dead = _dead_pid()
    shutil.copytree(out, tmp_path / f".out.export-{dead}-4567cdef-previous")
    (tmp_path / f".out.export-{dead}-89abcdef").mkdir()
    (tmp_path / ".out.export-0123abcd").mkdir()
    running = subprocess.Popen(["sleep", "60"])  # an export still writing beside out
    try:
        (tmp_path / f".out.export-{running.pid}-deadbeef").mkdir()
        assert export(cls_run, "merged", output=out)["check"]["passed"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".out.export-{running.pid}-deadbeef", "out"]
    finally:
        running.kill()
        running.wait()
