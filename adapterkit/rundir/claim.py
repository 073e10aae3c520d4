"""Whose a run directory is, and one run at a time in it: the ``.adapterkit`` stamp, the lock, claiming,
resuming and unwinding (see the package docstring for the rules)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from . import replacing
from .checkpoints import CHECKPOINTS, STAGING, _is_final, checkpoints, staging_dir

log = logging.getLogger("adapterkit")

MARKER = ".adapterkit"
LOCK = ".lock"


def owned(folder: Path) -> bool:
    """Whether adapterkit wrote ``folder`` (it holds the ``.adapterkit`` stamp)."""
    return (Path(folder) / MARKER).is_file()


def check_output(folder: Path, *, overwrite: bool = False, what: str = "--output", probe_lock: bool = True) -> None:
    """Refuse, before anything is loaded or written, a ``folder`` adapterkit may not write into: a file, the
    user's own files, a finished run without ``overwrite``, a run another process is writing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"exists and is not a folder; choose another {what}", where=str(folder))
    if not folder.is_dir():
        parent = next((p for p in folder.absolute().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise UserError(f"cannot be created: {parent} is a file; choose another {what}", where=str(folder))
        if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"cannot be created: {parent} is not writable; choose another {what}", where=str(folder))
        return
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"is not writable; choose another {what}", where=str(folder))
    if not owned(folder) and any(p.name != LOCK for p in folder.iterdir()):
        raise UserError(f"holds files adapterkit did not write (no {MARKER} stamp); adapterkit never writes into, "
                        f"resumes from or deletes them (--overwrite included): choose a new or empty {what}",
                        where=str(folder))
    _refuse_finished(folder, overwrite)
    if probe_lock:
        check_free(folder)


def check_free(folder: Path, command: str = "run") -> None:
    """Refuse ``folder`` while a live process holds its lock (``lock``), naming that process's pid; a cheap probe
    that writes nothing. ``command`` is the one that locks such a folder (``run``, ``compare``), for the message."""
    holder = _holder(Path(folder))
    if holder is not None:
        raise _busy(folder, holder, command)


def read_stamp(folder: Path) -> dict | None:
    """``folder``'s ``.adapterkit`` stamp (run_id, created, command, pid); None without one, {} if unreadable."""
    try:
        stamp = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def stamped_by(folder: Path) -> str | None:
    """The command named in ``folder``'s stamp (``run``, ``compare``, ``tune`` ...); "?" if it cannot be read."""
    stamp = read_stamp(folder)
    return None if stamp is None else stamp.get("command", "?")


def holds_output(folder: Path) -> bool:
    """Whether ``folder`` holds anything besides adapterkit's stamp and lock (an earlier command's output)."""
    folder = Path(folder)
    return folder.is_dir() and any(p.name not in (MARKER, LOCK) for p in folder.iterdir())


def check_take(folder: Path, command: str) -> None:
    """Refuse what ``take`` refuses, writing nothing: besides ``check_output``'s rules, a folder another
    command stamped (a run directory, a search, an export) is never taken by ``command``."""
    folder = Path(folder)
    other = stamped_by(folder) if folder.is_dir() else None
    if other is not None and other != command:
        whose = "of an unknown command (its .adapterkit stamp cannot be read)" if other == "?" else \
            f"of `adapterkit {other}`"
        raise UserError(f"holds the output {whose}, not of {command}; adapterkit {command} never writes into it: "
                        "choose another --output", where=str(folder))
    check_output(folder, probe_lock=False)


def take(folder: Path, command: str) -> Path:
    """Create (or reuse) ``folder`` for a command that writes several runs into it (``compare``, ``tune``,
    ``export``): the same ownership rule as a run directory, and only a folder that is new, empty, or stamped
    by the same ``command`` (``check_take``). It takes no lock: several ``tune --resume`` workers share one
    search folder; ``compare``, one writer at a time, holds ``lock`` on its folder besides."""
    folder = Path(folder)
    check_take(folder, command)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the folder: {err.strerror or err}", where=str(folder)) from None
    _stamp(folder, command)
    return folder


@contextmanager
def claim(run_dir: Path, recipe_text: str, *, overwrite: bool, command: str = "run") -> Iterator[Path | None]:
    """Own ``run_dir`` for one run and write its recipe; yields the checkpoint to resume from, or None.

    Only a new, empty or adapterkit-stamped folder is claimed (``check_output``). A finished run
    (``run.json``) is replaced only with ``overwrite``, and kept aside until the new run has finished
    (``replacing``); a second run into the same folder fails at once; an unfinished run of the same recipe
    is resumed, one of another recipe is refused. If the body raises before anything is kept (no
    checkpoint, no ``run.json``), what the claim wrote is removed again and a replaced run put back.
    """
    run_dir = Path(run_dir)
    check_output(run_dir, overwrite=overwrite)  # before writing anything
    made = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the run directory: {err.strerror or err}", where=str(run_dir)) from None
    try:
        with lock(run_dir):
            check_output(run_dir, overwrite=overwrite, probe_lock=False)  # again, now that this process holds the lock
            _stamp(run_dir, command)
            if overwrite:
                replacing.set_aside(run_dir)
            resume = _resume_point(run_dir, recipe_text)
            (run_dir / "recipe.toml").write_text(recipe_text, encoding="utf-8")
            yield resume
            if (run_dir / "run.json").is_file():
                replacing.drop(run_dir)
    except BaseException:
        _unwind(run_dir, made)
        raise


def _stamp(run_dir: Path, command: str) -> None:
    if owned(run_dir):
        return
    import uuid
    from datetime import UTC, datetime

    stamp = {"run_id": uuid.uuid4().hex, "created": datetime.now(UTC).isoformat(timespec="seconds"),
             "command": command, "pid": os.getpid()}
    (run_dir / MARKER).write_text(json.dumps(stamp) + "\n", encoding="utf-8")


def _unwind(run_dir: Path, made: bool) -> None:
    """After a failure: a run that kept nothing (no checkpoint, no run.json) leaves nothing behind, and the
    run it was to replace (--overwrite) is put back."""
    if not owned(run_dir):
        return
    if (run_dir / "run.json").exists() or checkpoints(run_dir):
        if replacing.waiting(run_dir):
            log.warning("the run this one replaces stays in %s until this one finishes (rerun the same "
                        "command without --overwrite to resume it)", run_dir / replacing.REPLACED)
        return
    if replacing.put_back(run_dir):
        return
    if made:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in ("recipe.toml", MARKER, LOCK):
        (run_dir / name).unlink(missing_ok=True)
    for name in (CHECKPOINTS, STAGING):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _refuse_finished(run_dir: Path, overwrite: bool) -> None:
    if (run_dir / "run.json").is_file() and not overwrite:
        raise UserError("holds a finished run; pass --overwrite to replace it or choose another --output",
                        where=str(run_dir))


def _busy(run_dir: Path, holder: str, command: str = "run") -> UserError:
    return UserError(f"another adapterkit {command} (pid {holder}) is writing to this directory; wait for it "
                     "to finish or choose another --output", where=str(run_dir))


def _holder(run_dir: Path) -> str | None:
    """The pid written in ``run_dir``'s lock while a live process holds it, else None (a cheap probe)."""
    import fcntl

    try:
        fh = open(run_dir / LOCK, encoding="utf-8")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return fh.read().strip() or "?"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


@contextmanager
def lock(run_dir: Path, command: str = "run") -> Iterator[None]:
    """Hold ``run_dir``'s ``.lock`` (an exclusive flock, with this process's pid in it) while the body runs, or fail
    at once naming the live process that holds it. The kernel drops the lock when that process ends or dies;
    the file is not inherited by child processes (Python opens it close-on-exec)."""
    import fcntl

    run_dir = Path(run_dir)
    fh = open(run_dir / LOCK, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise _busy(run_dir, holder, command) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
    finally:
        fh.close()  # closing the file releases the lock; the file stays (unlinking it would race)


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
