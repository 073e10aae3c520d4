"""``adapterkit export RUN_DIR --format merged|gguf|onnx``: ship a finished run, then check what was shipped.

Each format is a ``Format`` record (its own module: ``merged.py``, ``gguf.py``, ``onnx.py``): which runs it
takes, its dtypes, how it writes the output folder and how it loads the result back. ``export`` is the
spine shared by all of them:

    reopen the run (adapter on base: the reference) -> its outputs on the first rows of the eval split
    -> the format writes the folder -> loads it back -> ``check.compare`` -> ``export.json``

An export whose quality falls outside the format's tolerance (``check.py``) is refused (exit 2) unless
``force``. The output folder (``folder.py``) follows the ownership rule (``rundir``): a new or empty folder,
or one adapterkit stamped; a folder of the user's own files is refused before anything is loaded. The export
is written and checked beside it and swapped in only when kept: a failed export never costs the previous one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import Registry

log = logging.getLogger("adapterkit")


@dataclass(frozen=True)
class Source:
    """A finished run, reopened: what every format exports from."""

    run_dir: Path
    info: dict  # run.json
    plan: Any
    tokenizer: Any
    model: Any  # the trained model as the method loads it (adapter on base): the check's reference
    data: Any  # tasks.base.TaskData

    @property
    def artifact(self) -> Path:
        return self.run_dir / self.info["artifact"]


@dataclass(frozen=True)
class Format:
    name: str
    summary: str
    dtypes: tuple[str, ...]  # the first is the default
    write: Callable[[Source, Path, str], list[str]]  # (source, output folder, dtype) -> names of the files written
    load: Callable[[Source, Path, str], Callable]  # -> runner: dict of input tensors -> logits (numpy)
    tolerance: Callable[[str], Any]  # dtype -> check.Tolerance
    heads: tuple[str, ...] | None = None  # task Auto classes it takes (None: every task)
    architectures: tuple[str, ...] | None = None  # config.model_type values it takes (None: any)


def _builtin() -> list[Format]:
    from . import gguf, merged, onnx

    return [merged.FORMAT, gguf.FORMAT, onnx.FORMAT]


FORMATS: Registry[Format] = Registry("export format", "adapterkit.export_formats", _builtin)


def default_output(run_dir: Path, fmt: str, dtype: str) -> Path:
    return Path(run_dir) / f"export-{fmt}-{dtype}"


def _refusal(plan, fmt: Format) -> str | None:
    """Why this run cannot be exported in ``fmt`` (before its weights are read), or None."""
    if plan.method.merge is None:
        return f"cannot export a {plan.method.name} run: {plan.method.no_merge}"
    if fmt.heads is not None and plan.task.auto_class not in fmt.heads:
        return (f"--format {fmt.name} takes {' and '.join(fmt.heads)} runs; this is a {plan.task.name} run "
                f"({plan.task.auto_class}); use --format merged")
    if fmt.architectures is not None:
        from ..loading import load_config

        model_type = getattr(load_config(plan.recipe.model, plan.where), "model_type", None)
        if model_type not in fmt.architectures:
            return (f"--format {fmt.name} writes {', '.join(fmt.architectures)} models; this run's model is "
                    f"{model_type!r}; use --format merged")
    return None


def export(run_dir: str | Path, format: str, *, dtype: str | None = None, output: str | Path | None = None,
           force: bool = False, overwrite: bool = False, rows: int | None = None) -> dict:
    """Export a finished run and check it against the run's own model; returns what export.json holds.
    ``overwrite`` replaces another run's export in ``output`` (the same run's is always refreshed)."""
    from .. import rundir
    from ..api import finished_plan, reopen
    from . import check, folder, vllm

    fmt = FORMATS.get(format, where="--format")
    dtype = (dtype or fmt.dtypes[0]).lower()
    if dtype not in fmt.dtypes:
        raise UserError(f"{dtype!r}: --format {fmt.name} writes {', '.join(fmt.dtypes)}", where="--dtype")
    run_dir = Path(run_dir)
    info = rundir.read_run(run_dir)
    plan = finished_plan(run_dir, info)  # a damaged artifact is named first, before --output is looked at
    out = Path(output) if output else default_output(run_dir, fmt.name, dtype)
    folder.recover(out)  # what an export killed outright left beside out: its previous export is put back
    rundir.check_output(out, what="--output", probe_lock=False)
    folder.refuse(out, run_dir, overwrite=overwrite)
    reason = _refusal(plan, fmt)
    if reason:
        raise UserError(reason, where=str(run_dir))
    plan, tokenizer, model, data = reopen(run_dir)
    source = Source(run_dir, info, plan, tokenizer, model.eval(), data)
    rows = rows or check.ROWS
    reference = check.reference(source, rows)  # before the merge, which may consume the model
    previous = f"; {out} is left as it was" if out.is_dir() else ""
    with folder.staged(out) as tmp:  # written and checked beside out; out is replaced only if it is kept
        files = fmt.write(source, tmp, dtype)
        result = check.compare(reference, fmt.load(source, tmp, dtype), fmt.tolerance(dtype))
        record = {"format": fmt.name, "dtype": dtype, "run": str(run_dir), "run_id": folder.run_id(run_dir),
                  "output": str(out), "method": plan.method.name, "task": plan.task.name,
                  "model": plan.recipe.model.name, "files": files,
                  "check_rows": f"the first {reference.rows} rows of the eval split (capped at {rows}, for speed)",
                  "check": result,
                  "vllm_lora": vllm.compatibility(source), "versions": rundir.versions()}
        rundir.write_json(tmp / "export.json", record)
        if not result["passed"] and not force:
            raise UserError(f"export refused by its self-check: {result['verdict']} (--force keeps it"
                            f"{previous})", where=str(run_dir))
        folder.publish(tmp, out)
    for line in vllm.lines(record["vllm_lora"]):
        log.info("%s", line)
    if not result["passed"]:
        log.warning("self-check failed (%s); kept because of --force", result["verdict"])
    log.info("%s export in %s: %s", fmt.name, out, result["verdict"])
    return record


__all__ = ["FORMATS", "Format", "Source", "export"]
