"""What a finished run leaves behind: the trained artifact, metrics.json and run.json, and reading them back."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import UserError

PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate", "adapterkit")


def default_run_dir(recipe_name: str) -> Path:
    return Path("runs") / f"{recipe_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def save_trained(plan, model, tokenizer, labels: list[str] | None, run_dir: Path) -> Path:
    folder = run_dir / plan.method.artifact
    folder.mkdir(parents=True, exist_ok=True)
    plan.method.save(model, folder)
    tokenizer.save_pretrained(folder)
    if labels is not None:
        write_json(folder / "labels.json", {"id2label": dict(enumerate(labels))})
    return folder


def trained_labels(folder: Path) -> list[str] | None:
    """The label order ``save_trained`` wrote beside a run's weights (``labels.json``), or None without one."""
    path = folder / "labels.json"
    if not path.is_file():
        return None
    id2label = json.loads(path.read_text(encoding="utf-8"))["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


def run_info(plan, data, counts: dict, clock, started: float, **fields) -> dict[str, Any]:
    """The run.json record: what every run states (recipe, data, sizes, time, memory, machine, versions),
    with the run-specific ``fields`` (method, artifact, steps, throughput, ...) in between."""
    import time

    from .. import measure

    recipe = plan.recipe
    return {
        "recipe": recipe.name,
        "task": plan.task.name,
        "model": recipe.model.name,
        **fields,
        **counts,
        "eval_examples": len(data.eval),
        "skipped_rows": data.skipped_rows,
        "wall_seconds": time.time() - started,
        "phase_seconds": clock.seconds,
        "peak_rss_mib": measure.peak_rss_mib(),
        **measure.cuda_peaks_mib(),
        "hardware": vars(plan.hardware),
        "versions": versions(),
        "git_commit": git_commit(),
        "resolved_recipe": recipe.model_dump(),
    }


def read_run(run_dir: Path) -> dict[str, Any]:
    """A finished run's run.json, checked: readable JSON whose trained artifact folder is there. Whether its files
    are whole is for the caller that knows the run's method: ``artifact.check_artifact`` with the method's
    ``saved_files`` (``api.finished_plan``), before any weight loads."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UserError("not a finished adapterkit run (no run.json)", where=str(run_dir))
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"is corrupt ({type(err).__name__}: {str(err).splitlines()[0][:80]}); rerun the recipe with "
                        "--overwrite to write it again", where=str(path)) from None
    if not isinstance(info, dict) or not isinstance(info.get("artifact"), (str, type(None))):
        raise UserError("is not an adapterkit run record (no 'artifact' entry)", where=str(path))
    artifact = info.get("artifact")
    if artifact and not (Path(run_dir) / artifact).is_dir():
        raise UserError(f"the trained weights ({artifact}/) are missing from the run directory", where=str(run_dir))
    return info
