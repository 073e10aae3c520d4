"""``--overwrite`` without losing the run it replaces until its replacement is finished.

The finished (or unfinished) run in a run directory is moved aside into ``DIR/.replaced/`` (renames within
one folder: nothing is copied) before the new run starts. It is deleted when the new run has written its
``run.json``; it is put back when the new run fails before keeping anything (no checkpoint, no
``run.json``: an error, Ctrl-C or SIGTERM while loading or in the first steps). A new run that fails after
keeping a checkpoint leaves both: rerunning the same command without ``--overwrite`` resumes the new run,
and the replaced one waits in ``DIR/.replaced/`` until it finishes. Only the names a run writes move; the
stamp, the lock, exports and anything else in the folder stay where they are.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .checkpoints import CHECKPOINTS, STAGING

log = logging.getLogger("adapterkit")

REPLACED = ".replaced"
# What a run writes into its directory (rundir/__init__.py's layout; generations.jsonl: tasks/generation.py)
RUN_FILES = ("run.json", "metrics.json", "samples.jsonl", "generations.jsonl", "history.json", "recipe.toml",
             CHECKPOINTS, STAGING, "adapter", "model", "curves", "logs")


def set_aside(run_dir: Path) -> None:
    """Move the run in ``run_dir`` into ``run_dir/.replaced``. If a replaced run waits there already (an
    earlier --overwrite whose new run never finished), that one is kept and the unfinished run is dropped."""
    aside = run_dir / REPLACED
    if aside.is_dir() and not (run_dir / "run.json").is_file():
        _remove_run(run_dir)
        return
    shutil.rmtree(aside, ignore_errors=True)  # a finished run is in place: what waits aside is older still
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not present:
        return
    aside.mkdir()
    for name in present:
        os.rename(run_dir / name, aside / name)
    log.info("--overwrite: the previous run in %s is kept in %s until this one finishes", run_dir, aside.name)


def put_back(run_dir: Path) -> bool:
    """After a new run failed before keeping anything: what it wrote goes, the replaced run comes back.
    False if nothing was set aside."""
    aside = run_dir / REPLACED
    if not aside.is_dir():
        return False
    _remove_run(run_dir)
    for path in aside.iterdir():
        os.rename(path, run_dir / path.name)
    aside.rmdir()
    log.warning("the previous run in %s is back in place (this run kept nothing)", run_dir)
    return True


def drop(run_dir: Path) -> None:
    """The new run is finished: the replaced one is deleted."""
    shutil.rmtree(run_dir / REPLACED, ignore_errors=True)


def waiting(run_dir: Path) -> bool:
    """Whether a replaced run waits in ``run_dir/.replaced`` for an unfinished run."""
    return (run_dir / REPLACED).is_dir()


def _remove_run(run_dir: Path) -> None:
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
