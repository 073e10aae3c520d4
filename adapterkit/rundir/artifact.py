"""A finished run's trained artifact, checked before any weight is loaded: the files its method's ``load``
reads are there, and every safetensors file's header is whole (safetensors checks at open that the header
covers the file exactly, so a truncated or overwritten file fails there; no tensor is read).

Which files those are is the method's to say: its record's ``saved_files`` (``methods/base.py``), a
``SavedFiles`` built from the same names its ``save`` and ``load`` use, e.g.

    adapter/  adapter_config.json + adapter_model.safetensors     peft tuners (``methods/peft_tuner.py``: PEFT_FILES)
    adapter/  bottleneck_config.json + bottleneck.safetensors     ``methods/bottleneck.py``: SAVED_FILES
    model/    config.json + model.safetensors                     full, freeze (``methods/full.py``: MODEL_FILES,
              (large models: model.safetensors.index.json + the   transformers' ``save_pretrained``)
              shards it names)

The caller, which knows the run's method, passes them in (``api.finished_plan``, ``methods/continuing.py``);
this module stays below the methods and never names one. The layout is recognised by either of its files, so
losing one of them is named. A folder in no declared layout (a method with ``saved_files=None``, e.g. a plugin
that declares none, or neither file there) is checked only for safetensors headers, and refused only if it holds
no weights file at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".gguf")


@dataclass(frozen=True)
class SavedFiles:
    """The files a method's ``save`` writes into the run's artifact folder, and ``load`` reads back."""

    config: str  # the configuration file (JSON object), e.g. "adapter_config.json"
    weights: str  # the trained weights, e.g. "adapter_model.safetensors"
    what: str  # what the configuration is, for the one-line error: "the adapter's configuration"
    # large models: an index (JSON, its "weight_map" naming the shards) written instead of ``weights``
    shard_index: str | None = None


def check_artifact(run_dir: Path, artifact: str, saved: SavedFiles | None = None) -> None:
    """Raise a one-line UserError naming the first missing or damaged file of ``run_dir/artifact``, whose method's
    ``save`` writes ``saved`` (None: no declared layout, safetensors headers only)."""
    run_dir = Path(run_dir)
    folder = run_dir / artifact
    rerun = f"rerun the recipe with --output {run_dir} --overwrite"
    present = {p.name for p in folder.iterdir() if p.is_file()}
    if saved is not None and {saved.config, saved.weights} & present:
        if saved.config not in present:
            raise UserError(f"missing ({saved.what}); {rerun}", where=str(folder / saved.config))
        _readable_json(folder / saved.config, rerun)
        if saved.weights not in present and saved.shard_index is not None and saved.shard_index in present:
            _shards(folder, saved.shard_index, rerun)
        elif saved.weights not in present:
            raise UserError(f"missing (the run's trained weights); {rerun}", where=str(folder / saved.weights))
    elif not any(name.endswith(WEIGHT_SUFFIXES) for name in present):
        expected = f"{saved.config} + {saved.weights}" if saved is not None else "a weights file"
        raise UserError(f"holds none of the run's trained weights (expected {expected}); {rerun}", where=str(folder))
    for name in sorted(present):
        if name.endswith(".safetensors"):
            _header(folder / name, rerun)


def _readable_json(path: Path, rerun: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"truncated or corrupt ({type(err).__name__}: {str(err).splitlines()[0][:80]}); {rerun}",
                        where=str(path)) from None
    if not isinstance(data, dict):
        raise UserError(f"truncated or corrupt (not a JSON object); {rerun}", where=str(path))
    return data


def _shards(folder: Path, index: str, rerun: str) -> None:
    weight_map = _readable_json(folder / index, rerun).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UserError(f"truncated or corrupt (no weight_map); {rerun}", where=str(folder / index))
    for shard in sorted(set(map(str, weight_map.values()))):
        if not (folder / shard).is_file():
            raise UserError(f"missing (a shard of the run's trained weights); {rerun}", where=str(folder / shard))


def _header(path: Path, rerun: str) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "numpy"):
            pass
    except (SafetensorError, OSError) as err:
        reason = str(err).splitlines()[0][:100] if str(err) else type(err).__name__
        raise UserError(f"truncated or corrupt ({reason}); {rerun}", where=str(path)) from None
