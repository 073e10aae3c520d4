"""``model.adapter``: continue training an adapter an earlier run saved, instead of a fresh one.

The folder is ``RUN_DIR/adapter`` of a finished run (a glob such as ``runs/chat_lora-*/adapter`` picks the newest
finished match, since run directories are stamped with their start time), resolved against the working directory, then
the recipe's folder. Before any weight is read, the run that saved it must have used this recipe's method and
base model (its ``run.json``; for a bare PEFT folder, ``adapter_config.json``'s base model), a run's folder
must hold the files the method's ``save`` writes, whole (``Method.saved_files``, ``rundir.check_artifact``), and its
``adapter_config.json`` must name that method's peft tuner (``peft_tuner.check_tuner``); the adapter's own options
(rank, targets...) then apply, not the recipe's ``[method]`` options.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

from ..errors import UserError
from ..rundir import check_artifact
from .peft_tuner import PEFT_FILES, check_tuner


def resolve_adapter(spec: str, recipe_source: str) -> Path:
    """The adapter folder ``spec`` names (see the module docstring); one-line UserError if there is none."""
    where = f"{recipe_source}: model.adapter"
    bases = [Path.cwd()] + ([Path(recipe_source).parent] if recipe_source and recipe_source != "<memory>" else [])
    for base in bases:
        pattern = str(base / Path(spec).expanduser())
        matches = sorted((Path(m) for m in glob.glob(pattern)), key=lambda p: str(p))
        matches = [m for m in matches if m.is_dir()]
        finished = [m for m in matches if (m.parent / "run.json").is_file()]  # not a run that stopped midway
        if finished or matches:
            return (finished or matches)[-1]
    raise UserError(f"adapter folder {spec!r} not found (run the recipe that trains it first, e.g. "
                    "`adapterkit run recipes/chat_lora.toml`)", where=where)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"unreadable ({type(err).__name__})", where=str(path)) from None
    return data if isinstance(data, dict) else {}


def check_adapter(recipe, method, model_path: str) -> Path:
    """The adapter folder, after the checks above; raises the first mismatch in one line."""
    where = f"{recipe.source}: model.adapter"
    folder = resolve_adapter(recipe.model.adapter, recipe.source)
    if method.load_trainable is None:
        hint = (f"; to continue a full run, set model.name = \"{folder.parent / method.artifact}\""
                if method.trains_base else "")
        raise UserError(f"method {method.name!r} cannot continue a saved adapter{hint}", where=where)
    run_json = folder.parent / "run.json"
    if run_json.is_file():
        info = _json(run_json)
        if info.get("method") != method.name:
            raise UserError(f"{folder} was trained with method {info.get('method')!r}, this recipe uses "
                            f"{method.name!r}; set method.name = \"{info.get('method')}\"", where=where)
        if info.get("model") != recipe.model.name:
            raise UserError(f"{folder} was trained on model {info.get('model')!r}, this recipe uses "
                            f"{recipe.model.name!r}", where=where)
        check_artifact(folder.parent, folder.name, method.saved_files)
        check_tuner(method, folder)
        return folder
    config = folder / PEFT_FILES.config
    if not config.is_file():
        raise UserError(f"{folder} holds no saved adapter (no run.json beside it, no {PEFT_FILES.config} in it)",
                        where=where)
    base = str(_json(config).get("base_model_name_or_path") or "")
    if base and base not in (recipe.model.name, model_path) and Path(base).name != Path(model_path).name:
        raise UserError(f"{folder} was trained on model {base!r}, this recipe uses {recipe.model.name!r}",
                        where=where)
    check_tuner(method, folder)
    return folder


def with_resolved_adapter(recipe):
    """``recipe`` with ``model.adapter`` as the concrete folder (a glob resolved), so recipe.toml names it."""
    if not recipe.model.adapter:
        return recipe
    folder = str(resolve_adapter(recipe.model.adapter, recipe.source).resolve())
    return recipe.model_copy(update={"model": recipe.model.model_copy(update={"adapter": folder})})


# PEFT's saved config key -> the method options field it sets (the options that size an adapter)
_SAVED_OPTIONS = {"r": "r", "lora_alpha": "alpha", "target_modules": "target_modules", "use_dora": "use_dora",
                  "init_r": "init_r", "target_r": "target_r"}


def saved_options(options, adapter: str | None, recipe_source: str):
    """``options`` as the saved adapter ``model.adapter`` names sets them (its own rank, targets...), for plans made
    before any weight is read; ``options`` unchanged when there is no adapter, or none saved yet."""
    if not adapter:
        return options
    try:
        config = resolve_adapter(adapter, recipe_source) / PEFT_FILES.config
    except UserError:
        return options  # not trained yet: the preflight says so; a plan alone goes on with the recipe's options
    saved = _json(config) if config.is_file() else {}
    fields = type(options).model_fields
    update = {ours: saved[theirs] for theirs, ours in _SAVED_OPTIONS.items() if ours in fields and saved.get(theirs) is not None}
    if isinstance(update.get("target_modules"), list):
        update["target_modules"] = sorted(update["target_modules"])
    return options.model_copy(update=update) if update else options


def continue_adapter(method, base_model, folder: Path):
    """The saved adapter on ``base_model``, its weights trainable."""
    import logging

    logging.getLogger("adapterkit").info("continuing the %s adapter in %s (its own options apply)", method.name,
                                         folder)
    return method.load_trainable(base_model, folder)
