"""A run directory while a run owns it: one run at a time, atomic checkpoints, and where to resume.

    DIR/.lock                      flock held by the run writing DIR; the kernel drops it if that process dies
    DIR/.checkpoint-tmp/           the Trainer's ``output_dir``: a checkpoint is written here first...
    DIR/checkpoints/checkpoint-N/  ...then renamed here once complete (Trainer's own format; the last 2 kept)

``adapterkit run RECIPE --output DIR`` on a DIR without ``run.json`` resumes from the newest complete
checkpoint, provided DIR's ``recipe.toml`` is the same recipe. Light imports only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError

log = logging.getLogger("adapterkit")

CHECKPOINTS = "checkpoints"
STAGING = ".checkpoint-tmp"
KEEP = 2
_STEP = re.compile(r"^checkpoint-(\d+)$")


def staging_dir(run_dir: Path) -> Path:
    return Path(run_dir) / STAGING


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    found = [(int(m.group(1)), p) for p in folder.glob("checkpoint-*") if (m := _STEP.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


@contextmanager
def claim(run_dir: Path, recipe_text: str, *, overwrite: bool) -> Iterator[Path | None]:
    """Own ``run_dir`` for one run and write its recipe; yields the checkpoint to resume from, or None.

    A finished run (``run.json``) is replaced only with ``overwrite``; a second run into the same folder
    fails at once; an unfinished run of the same recipe is resumed, one of another recipe is refused.
    """
    run_dir = Path(run_dir)
    _refuse_finished(run_dir, overwrite)  # before writing anything
    run_dir.mkdir(parents=True, exist_ok=True)
    with _lock(run_dir):
        _refuse_finished(run_dir, overwrite)
        if overwrite:
            _clear(run_dir)
        resume = _resume_point(run_dir, recipe_text)
        (run_dir / "recipe.toml").write_text(recipe_text, encoding="utf-8")
        yield resume


def _refuse_finished(run_dir: Path, overwrite: bool) -> None:
    if (run_dir / "run.json").is_file() and not overwrite:
        raise UserError("holds a finished run; pass --overwrite to replace it or choose another --output",
                        where=str(run_dir))


@contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    import fcntl

    fh = open(run_dir / ".lock", "a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise UserError(f"another adapterkit run (pid {holder}) is writing to this directory; wait for it "
                        "to finish or choose another --output", where=str(run_dir)) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
    finally:
        fh.close()  # closing the file releases the lock; the file stays (unlinking it would race)


def _clear(run_dir: Path) -> None:
    """What --overwrite replaces: the previous run's results and checkpoints."""
    for name in ("run.json", "metrics.json", "samples.jsonl"):
        (run_dir / name).unlink(missing_ok=True)
    for name in (CHECKPOINTS, STAGING):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _resume_point(run_dir: Path, recipe_text: str) -> Path | None:
    shutil.rmtree(staging_dir(run_dir), ignore_errors=True)  # a checkpoint cut off mid-write
    found = checkpoints(run_dir)
    if not found:
        return None
    previous = run_dir / "recipe.toml"
    if previous.is_file() and previous.read_text(encoding="utf-8") != recipe_text:
        raise UserError("holds an unfinished run of a different recipe (its recipe.toml differs); pass --overwrite "
                        "to start over or choose another --output", where=str(run_dir))
    if len(found) > 1 and _is_final(found[-1]):
        # Trainer's resume from a checkpoint at max_steps runs one step too many: redo the last stretch instead
        found.pop()
    elif _is_final(found[-1]):
        log.info("the only checkpoint in %s is the final step's; training again from the start", run_dir)
        return None
    log.info("resuming the unfinished run in %s from %s", run_dir, found[-1].name)
    return found[-1]


def _is_final(checkpoint: Path) -> bool:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        return state["global_step"] >= state["max_steps"] > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def publish(run_dir: Path, step: int) -> Path:
    """Move the checkpoint the Trainer just wrote for ``step`` into place (fsync, then one rename), keep the last 2."""
    source = staging_dir(run_dir) / f"checkpoint-{step}"
    target = Path(run_dir) / CHECKPOINTS / f"checkpoint-{step}"
    for path in sorted(source.rglob("*")):
        if path.is_file():
            _fsync(path)
    _fsync(source)
    target.parent.mkdir(exist_ok=True)
    if target.exists():  # left by an earlier attempt at this step
        shutil.rmtree(target)
    os.rename(source, target)
    _fsync(target.parent)
    for old in checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
