"""A finished run's trained artifact, checked before any weight is loaded: the files its method's ``load``
reads are there, and every safetensors file's header is whole (safetensors checks at open that the header
covers the file exactly, so a truncated or overwritten file fails there; no tensor is read).

The layouts are those the methods' save functions write (``methods/*.py``):

    adapter/  adapter_config.json + adapter_model.safetensors     peft tuners (``peft_tuner.save_peft``, ``lora.save``)
    adapter/  bottleneck_config.json + bottleneck.safetensors     ``bottleneck.save``
    model/    config.json + model.safetensors                     full, freeze (``full.save_model``: transformers'
              (large models: model.safetensors.index.json + the   ``save_pretrained``)
              shards it names)

A layout is recognised by either of its files, so losing one of them is named, and ``adapter_config.json``'s
``peft_type`` must be a tuner the installed peft knows. A folder in none of these layouts (a plugin method's own)
is checked only for safetensors headers, and refused only if it holds no weights file at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError

PEFT_CONFIG = "adapter_config.json"
# artifact folder -> its layouts: (configuration file, weights file, what the weights are)
LAYOUTS = {
    "adapter": ((PEFT_CONFIG, "adapter_model.safetensors", "the adapter's configuration"),
                ("bottleneck_config.json", "bottleneck.safetensors", "the bottleneck adapters' configuration")),
    "model": (("config.json", "model.safetensors", "the model's configuration"),),
}
SHARD_INDEX = "model.safetensors.index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".gguf")


def check_artifact(run_dir: Path, artifact: str) -> None:
    """Raise a one-line UserError naming the first missing or damaged file of ``run_dir/artifact``."""
    run_dir = Path(run_dir)
    folder = run_dir / artifact
    rerun = f"rerun the recipe with --output {run_dir} --overwrite"
    present = {p.name for p in folder.iterdir() if p.is_file()}
    layout = next((each for each in LAYOUTS.get(artifact, ()) if {each[0], each[1]} & present), None)
    if layout is not None:
        config, weights, what = layout
        if config not in present:
            raise UserError(f"missing ({what}); {rerun}", where=str(folder / config))
        saved = _readable_json(folder / config, rerun)
        if config == PEFT_CONFIG:
            _known_peft_type(saved, folder / config, rerun)
        if weights not in present and artifact == "model" and SHARD_INDEX in present:
            _shards(folder, rerun)
        elif weights not in present:
            raise UserError(f"missing (the run's trained weights); {rerun}", where=str(folder / weights))
    elif not any(name.endswith(WEIGHT_SUFFIXES) for name in present):
        expected = " or ".join(f"{c} + {w}" for c, w, _ in LAYOUTS.get(artifact, ())) or "a weights file"
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


def _known_peft_type(config: dict, path: Path, rerun: str) -> None:
    """peft reads ``peft_type`` first and looks it up in its own registry of tuners (``PEFT_TYPE_TO_CONFIG_MAPPING``,
    keyed by ``peft.PeftType``): a type it does not know is a bare KeyError there. Whether it is the type the run's
    method saves is the method's concern (``methods.peft_tuner.check_tuner``)."""
    import peft

    kind = config.get("peft_type")
    if isinstance(kind, str) and kind in peft.PEFT_TYPE_TO_CONFIG_MAPPING:
        return
    saved_by = config.get("peft_version")
    by = f", saved by peft {saved_by}" if saved_by and saved_by != peft.__version__ else ""
    raise UserError(f"peft_type {kind!r} is not a tuner peft {peft.__version__} knows{by}; {rerun}", where=str(path))


def _shards(folder: Path, rerun: str) -> None:
    weight_map = _readable_json(folder / SHARD_INDEX, rerun).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UserError(f"truncated or corrupt (no weight_map); {rerun}", where=str(folder / SHARD_INDEX))
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
