"""The export's output folder: what may be replaced, and how, so that no good export is lost.

The folder follows the ownership rule (``rundir``): a new or empty folder, or one adapterkit stamped. An
adapterkit folder that holds something else than an export is never replaced. A new export is written into
a hidden folder beside ``--output`` (same parent, so one filesystem and an atomic rename), checked there,
and swapped in only when it is kept; any failure (an exception, a refused self-check, Ctrl-C) removes only
that folder and leaves the previous export as it was. The ``.adapterkit`` stamp moves with the export.
Re-exporting the same run refreshes its export; another run's export is replaced only with ``overwrite``.
A process killed outright (SIGKILL, power loss) cannot clean up: the next export into the same folder does
(``recover``), and the previous export is never lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

log = logging.getLogger("adapterkit")
# what follows ".<name>" in the hidden folders beside <name>: staged (".export-<pid>-<8 hex>") and moved aside by
# publish ("...-previous"); folders of versions before the pid was in the name have none
SIBLING = re.compile(r"\.export-(?:(?P<pid>\d+)-)?[0-9a-f]{8}(?P<previous>-previous)?")


def refuse(out: Path, run_dir: Path, *, overwrite: bool = False) -> None:
    """Before anything is loaded: an adapterkit folder that is no export, another run's export (unless
    ``overwrite``), or a folder the export cannot be swapped into."""
    from ..rundir import holds_output

    if not out.is_dir():
        return
    other = holds_output(out)
    if other and not (out / "export.json").is_file():
        raise UserError("holds adapterkit files that are not an export (no export.json); choose a new or empty "
                        "--output", where=str(out))
    if other and not overwrite:
        _refuse_another_run(out, run_dir)
    parent = out.absolute().parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot be replaced: its parent {parent} is not writable (an export is written beside "
                        "the folder, then swapped in); choose another --output", where=str(out))


def _refuse_another_run(out: Path, run_dir: Path) -> None:
    try:
        record = json.loads((out / "export.json").read_text(encoding="utf-8"))
        held, held_id = record["run"], record.get("run_id")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"holds an export whose export.json cannot be read ({type(err).__name__}); pass "
                        "--overwrite to replace it or choose another --output", where=str(out)) from None
    mine = run_id(run_dir)
    same = held_id == mine if held_id and mine else Path(str(held)).resolve() == Path(run_dir).resolve()
    if not same:
        raise UserError(f"holds the export of another run ({held}); pass --overwrite to replace it or choose "
                        "another --output", where=str(out))


def run_id(run_dir: Path) -> str | None:
    """A run's identity: the ``run_id`` of its ``.adapterkit`` stamp (``run --overwrite`` keeps it)."""
    from ..rundir import read_stamp

    return (read_stamp(run_dir) or {}).get("run_id")


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A new folder beside ``out``, stamped as ``out`` is (or freshly); removed on exit unless ``publish``
    moved it into place."""
    from .. import rundir

    parent = out.absolute().parent
    tmp = parent / f".{out.name}.export-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # the pid: see ``recover``
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as err:
        raise UserError(f"cannot create the folder beside it: {err.strerror or err}", where=str(out)) from None
    try:
        if rundir.owned(out):
            shutil.copy2(out / rundir.MARKER, tmp / rundir.MARKER)  # the same stamp: the folder's owner is kept
            shutil.copymode(out, tmp)
        else:
            rundir.take(tmp, "export")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, out: Path) -> None:
    """Swap the finished export ``tmp`` in as ``out``: the previous export moves aside, the new one into its
    place, then the previous one is deleted (put back if the second rename fails)."""
    if not out.exists():
        os.rename(tmp, out)
        return
    previous = tmp.with_name(tmp.name + "-previous")
    os.rename(out, previous)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(previous, out)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def recover(out: Path) -> None:
    """Undo what an export killed outright left beside ``out`` (``staged``, ``publish``), before anything else
    looks at ``out``. Killed between publish's two renames, ``out`` is missing and the previous export sits in
    ``.<name>.export-<pid>-<id>-previous``: it is put back (the newest, should there be several). Killed after
    the second rename, that folder is stale beside the good one; killed while writing, a half-written
    ``.<name>.export-<pid>-<id>`` is left. Both are removed.

    Only folders of dead processes are touched: the pid in the name is the process that staged the folder, and a
    folder whose process is alive belongs to an export running now (between its two renames ``out`` is missing
    for a moment: putting its previous export back would break that export's swap), so it is left alone. A
    folder named before the pid was in the name is from an earlier adapterkit's export, taken for dead. A reused
    pid only leaves a folder for a later export to remove. (On a folder shared between machines a pid is looked
    up on this one: run exports into one ``--output`` from one machine.)"""
    parent = out.absolute().parent
    prefix = f".{out.name}"
    try:
        names = [p.name for p in parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return  # no parent yet: nothing was left
    dead = []
    for name in names:
        match = SIBLING.fullmatch(name[len(prefix):])
        if match and not _alive(match["pid"]) and (parent / name).is_dir():
            dead.append((parent / name, bool(match["previous"])))
    previous = sorted((p for p, aside in dead if aside), key=_modified)
    if previous and not os.path.lexists(out):
        try:
            os.rename(previous[-1], out)
            log.warning("%s: put back the previous export, which an export killed while swapping folders left in %s",
                        out, previous[-1].name)
        except OSError:
            pass  # another export put it back first
    for path, _ in dead:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            log.info("%s: removed %s, left by an export that was killed", out, path.name)


def _alive(pid: str | None) -> bool:
    if pid is None:
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):
        return True  # another user's process (PermissionError), or a pid this system cannot look up
    return True


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
