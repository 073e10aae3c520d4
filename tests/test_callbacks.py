"""Numerical faults: an absurd learning rate makes a tiny model diverge; the run stops with a one-line message
naming the step, exit code 3, and keeps only checkpoints from before the fault, all with finite weights."""

from __future__ import annotations

import re

import tomli_w
import torch
from conftest import tiny_recipe
from safetensors.torch import load_file

from adapterkit import rundir
from adapterkit.cli import main


def test_divergence_stops_with_exit_3_and_keeps_the_last_good_checkpoint(tiny_llama_dir, data_files, tmp_path,
                                                                         capsys):
    recipe = tmp_path / "diverge.toml"
    recipe.write_text(tomli_w.dumps(tiny_recipe(
        "chat", "full", tiny_llama_dir, data_files,
        train={"learning_rate": 9.9, "lr_scheduler": "constant", "max_steps": 60, "save_every": 4})))
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--output", str(out)]) == 3
    err = capsys.readouterr().err
    line = err[err.index("adapterkit: error:"):].splitlines()[0]  # (after the progress bar's last redraw)
    assert "Traceback" not in err
    found = re.search(r"training diverged at step (\d+): (training loss|gradient norm).* is (nan|inf)", line)
    assert found, line
    step = int(found.group(1))
    kept = rundir.checkpoints(out)
    assert kept, "no checkpoint before the fault; raise max_steps or lower save_every"
    assert f"the last good checkpoint is {kept[-1]}" in line
    assert all(int(p.name.split("-")[1]) < step for p in kept)
    for checkpoint in kept:
        weights = load_file(checkpoint / "model.safetensors")
        assert all(torch.isfinite(w).all() for w in weights.values()), f"non-finite weights in {checkpoint}"
    assert not (out / "run.json").exists() and not (out / "metrics.json").exists()
