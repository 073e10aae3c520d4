"""A CUDA build of torch (PyPI's default on Linux) loads its CUDA libraries at import, on a CPU run too: measured on
benchmarks/planner's rows, 346-397 MiB more peak RSS than torch's CPU build (memory/calibration.py). The planner finds
the build without importing torch and adds that to a CPU run's overhead."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from conftest import REPO

PROBE = "import sys; from adapterkit.hardware.detect import torch_ships_cuda; print(torch_ships_cuda(), 'torch' in sys.modules)"


def _fake_torch(folder, cuda: bool):
    package = folder / "torch"
    (package / "lib").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the planner must not import torch')\n")
    (package / "lib" / ("libtorch_cuda.so" if cuda else "libtorch_cpu.so")).write_bytes(b"")
    return folder


def test_a_cuda_build_of_torch_is_found_without_importing_it(tmp_path):
    for cuda in (True, False):
        folder = _fake_torch(tmp_path / str(cuda), cuda)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
        assert done.stdout.split() == [str(cuda), "False"], done.stderr


def test_a_cpu_run_plans_the_cuda_libraries_of_a_cuda_build(monkeypatch):
    from adapterkit import loading
    from adapterkit.memory.estimate import CPU_CUDA_LIBRARIES_MIB, MIB
    from adapterkit.memory.verdict import assess, shape_of, workload
    from adapterkit.plan import load_recipe, make_plan

    detect = importlib.import_module("adapterkit.hardware.detect")  # the module (the package exports a detect function)

    def estimate(ships_cuda: bool, profile: str):
        monkeypatch.setattr(detect, "torch_ships_cuda", lambda: ships_cuda)
        recipe = load_recipe(REPO / "recipes" / "sentiment_lora.toml", [f"hardware.profile={profile}"])
        plan = make_plan(recipe)
        assert workload(plan).torch_ships_cuda is (ships_cuda and plan.hardware.device == "cpu")
        return assess(plan, shape_of(plan, loading.load_config(recipe.model, recipe.source))).estimate

    cpu_build, cuda_build = estimate(False, "cpu-2c-24g"), estimate(True, "cpu-2c-24g")
    assert cuda_build.terms["overhead"] - cpu_build.terms["overhead"] == CPU_CUDA_LIBRARIES_MIB * MIB
    for phase in ("train", "eval", "load"):
        assert getattr(cuda_build, phase) - getattr(cpu_build, phase) == pytest.approx(CPU_CUDA_LIBRARIES_MIB * MIB), phase
    assert "CUDA libraries" in cuda_build.notes["overhead"]
    # on a GPU the planner compares CUDA memory, where the host's libraries do not count
    assert estimate(True, "a100-40g").terms["overhead"] == estimate(False, "a100-40g").terms["overhead"]
