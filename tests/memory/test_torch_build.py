"""What the libraries keep resident depends on torch's build and version: a CUDA build (PyPI's default on Linux) loads
its CUDA libraries at import, on a CPU run too (2.14.1+cu130: 346-397 MiB more peak RSS than 2.13.0+cpu on
benchmarks/planner's rows; 2.11.0+cu130: +317 at import). The planner measures this environment's import footprint
once (hardware/libraries.py) and moves a CPU run's baseline by it; where it cannot, it finds a CUDA build without
importing torch and adds CPU_CUDA_LIBRARIES_MIB."""

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


def _estimate(monkeypatch, profile: str, ships_cuda: bool = False, libraries_mib: float | None = None):
    from adapterkit import loading
    from adapterkit.hardware import libraries
    from adapterkit.memory.verdict import assess, shape_of, workload
    from adapterkit.plan import load_recipe, make_plan

    detect = importlib.import_module("adapterkit.hardware.detect")  # the module (the package exports a detect function)
    monkeypatch.setattr(detect, "torch_ships_cuda", lambda: ships_cuda)
    monkeypatch.setattr(libraries, "imported_libraries_mib", lambda: libraries_mib)
    recipe = load_recipe(REPO / "recipes" / "sentiment_lora.toml", [f"hardware.profile={profile}"])
    plan = make_plan(recipe)
    assert workload(plan).torch_ships_cuda is (ships_cuda and plan.hardware.device == "cpu")
    return assess(plan, shape_of(plan, loading.load_config(recipe.model, recipe.source))).estimate


def test_a_cpu_run_plans_the_libraries_this_environment_measured(monkeypatch):
    from adapterkit.memory.calibration import LIBRARIES_MIB_AT_CALIBRATION, PROCESS_BASELINE_MIB
    from adapterkit.memory.estimate import MIB

    calibrated = _estimate(monkeypatch, "cpu-2c-24g", libraries_mib=LIBRARIES_MIB_AT_CALIBRATION)
    assert calibrated.terms["overhead"] == PROCESS_BASELINE_MIB * MIB
    # a CUDA build measured 288 MiB more at import (torch 2.11.0+cu130 on an AMX Xeon): that, not a flat 390
    heavier = _estimate(monkeypatch, "cpu-2c-24g", ships_cuda=True, libraries_mib=LIBRARIES_MIB_AT_CALIBRATION + 288)
    for phase in ("train", "eval", "load"):
        assert getattr(heavier, phase) - getattr(calibrated, phase) == pytest.approx(288 * MIB), phase
    assert "took 798 MiB at import" in heavier.notes["overhead"]
    # on a GPU the planner compares CUDA memory, where the host's libraries do not count
    assert (_estimate(monkeypatch, "a100-40g", libraries_mib=2000.0).terms["overhead"]
            == _estimate(monkeypatch, "a100-40g", libraries_mib=None).terms["overhead"])


def test_the_import_footprint_is_measured_once_per_environment(tmp_path, monkeypatch):
    from adapterkit.hardware import libraries

    monkeypatch.setenv("ADAPTERKIT_CACHE", str(tmp_path))
    libraries.imported_libraries_mib.cache_clear()
    measured = libraries.imported_libraries_mib()  # a real interpreter importing torch, transformers, peft, trl, datasets
    assert measured is not None and 150 < measured < 4000
    (cached,) = (tmp_path / "planner").glob("libraries-*.json")
    assert '"torch"' in cached.read_text()
    libraries.imported_libraries_mib.cache_clear()
    monkeypatch.setattr(libraries, "measure_imports", lambda: pytest.fail("measured again"))
    assert libraries.imported_libraries_mib() == measured  # read back, not re-measured
    libraries.imported_libraries_mib.cache_clear()


def test_where_the_footprint_cannot_be_measured_a_cuda_build_adds_its_libraries(monkeypatch):
    from adapterkit.memory.estimate import CPU_CUDA_LIBRARIES_MIB, MIB

    def estimate(ships_cuda: bool, profile: str):
        return _estimate(monkeypatch, profile, ships_cuda=ships_cuda, libraries_mib=None)

    cpu_build, cuda_build = estimate(False, "cpu-2c-24g"), estimate(True, "cpu-2c-24g")
    assert cuda_build.terms["overhead"] - cpu_build.terms["overhead"] == CPU_CUDA_LIBRARIES_MIB * MIB
    for phase in ("train", "eval", "load"):
        assert getattr(cuda_build, phase) - getattr(cpu_build, phase) == pytest.approx(CPU_CUDA_LIBRARIES_MIB * MIB), phase
    assert "CUDA libraries" in cuda_build.notes["overhead"]
    # on a GPU the planner compares CUDA memory, where the host's libraries do not count
    assert estimate(True, "a100-40g").terms["overhead"] == estimate(False, "a100-40g").terms["overhead"]
