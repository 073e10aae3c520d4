"""What the libraries a run imports keep resident in *this* Python environment, measured once and cached.

A CPU run's memory baseline is mostly torch and its neighbours, and what they keep resident depends on the build
and version installed, not on the machine: importing torch, transformers, peft, trl and datasets took 509 MiB with
torch 2.13.0+cpu, 826 MiB with 2.11.0+cu130 (PyPI's default build, whose CUDA libraries load on a CPU run too) and
886 MiB with 2.14.1+cu130 on the same AMD EPYC, and 798 MiB with 2.11.0+cu130 on an AMX Xeon (docs/defaults.md).
The planner's baseline (``memory/calibration.py``) was fitted where that import measured
``LIBRARIES_MIB_AT_CALIBRATION``; it moves by the difference this environment measures.

The measurement is a fresh interpreter importing them (a few seconds, the first time), cached under
``$ADAPTERKIT_CACHE/planner`` per interpreter and installed versions; ``None`` where it cannot be taken (no
``resource`` module, a failing import), and the planner falls back to its constants.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
from importlib import metadata

from ..assets import cache_dir
from ..measure import maxrss_mib
from .detect import torch_ships_cuda

LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets")
# bitsandbytes (imported by peft) warns on CPUs; the child's output is one number
PROBE = ("import resource, warnings\nwarnings.simplefilter('ignore')\nimport " + ", ".join(LIBRARIES)
         + "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
TIMEOUT_S = 300


def environment() -> dict:
    """What the measurement depends on: the interpreter, the libraries' versions and torch's build."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.executable, "python_version": sys.version.split()[0], "platform": sys.platform,
            "versions": versions, "torch_ships_cuda": torch_ships_cuda()}


def measure_imports() -> float | None:
    """Peak RSS (MiB) of a fresh interpreter that imports LIBRARIES, or None where that fails."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        return maxrss_mib(int(done.stdout.split()[-1])) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


@functools.cache
def imported_libraries_mib() -> float | None:
    """This environment's import footprint (MiB), from the cache or measured now and cached (failures too, as
    null: an environment where the import fails is not re-measured on every plan)."""
    key = environment()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "planner" / f"libraries-{digest}.json"
    try:
        return json.loads(path.read_text())["mib"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    logging.getLogger("adapterkit").info("planner: measuring what torch and its neighbours keep resident in this "
                                         "environment (once, a few seconds)")
    mib = measure_imports()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"mib": mib, "imports": list(LIBRARIES), **key}, indent=1) + "\n")
        partial.replace(path)  # atomic: two plans measuring at once both leave a whole file
    except OSError:
        pass
    return mib
