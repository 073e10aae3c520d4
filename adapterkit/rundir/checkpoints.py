"""Checkpoints of a run: written by the Trainer into ``DIR/.checkpoint-tmp``, then published whole into
``DIR/checkpoints`` (fsync, one rename), the last ``KEEP`` kept."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

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


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint was saved at (its name, ``checkpoint-N``)."""
    return int(_STEP.match(Path(checkpoint).name).group(1))


def _is_final(checkpoint: Path) -> bool:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        return state["global_step"] >= state["max_steps"] > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def publish(run_dir: Path, step: int, best: str | None = None) -> Path:
    """Move the checkpoint the Trainer just wrote for ``step`` into place (fsync, then one rename), keep the last 2
    and ``best``, the best checkpoint so far (``train.keep_best``; its staged or published path)."""
    source = staging_dir(run_dir) / f"checkpoint-{step}"
    target = Path(run_dir) / CHECKPOINTS / f"checkpoint-{step}"
    if best:
        _point_best_at_published(source / "trainer_state.json", run_dir)
    for path in sorted(source.rglob("*")):
        if path.is_file():
            _fsync(path)
    _fsync(source)
    target.parent.mkdir(exist_ok=True)
    if target.exists():  # left by an earlier attempt at this step
        shutil.rmtree(target)
    os.rename(source, target)
    _fsync(target.parent)
    spared = published_path(run_dir, best) if best else None
    for old in checkpoints(run_dir)[:-KEEP]:
        if spared is None or old != spared:
            shutil.rmtree(old, ignore_errors=True)
    return target


def published_path(run_dir: Path, checkpoint: str) -> Path:
    """Where a checkpoint the Trainer names by its staged path (``DIR/.checkpoint-tmp/checkpoint-N``) is published."""
    return Path(run_dir) / CHECKPOINTS / Path(checkpoint).name


def _point_best_at_published(state_file: Path, run_dir: Path) -> None:
    """The saved trainer state names the best checkpoint by its published path, so a resumed run still finds it."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if state.get("best_model_checkpoint"):
        state["best_model_checkpoint"] = str(published_path(run_dir, state["best_model_checkpoint"]))
        state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
