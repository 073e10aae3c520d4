"""Full fine-tuning: every weight trains; the run saves a complete ``model/`` folder."""

from __future__ import annotations

from pathlib import Path

from .base import Footprint, Method, MethodOptions, SavedFiles, WrapContext, reading_artifact

# What transformers' ``save_pretrained`` writes (transformers.utils CONFIG_NAME, SAFE_WEIGHTS_NAME; a large model
# as shards named by SAFE_WEIGHTS_INDEX_NAME) and ``from_pretrained`` reads: full's and freeze's ``saved_files``.
MODEL_FILES = SavedFiles(config="config.json", weights="model.safetensors", what="the model's configuration",
                         shard_index="model.safetensors.index.json")


class FullOptions(MethodOptions):
    pass


def wrap(model, options: FullOptions, ctx: WrapContext):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def footprint(options: FullOptions, shape) -> Footprint:
    return Footprint(shape.total_params)


def save_model(model, folder: Path) -> None:
    """A complete ``from_pretrained`` folder (``MODEL_FILES``)."""
    model.save_pretrained(folder)


def load_model(base_model, folder: Path):
    """The saved folder holds every weight: load it with the base model's own class."""
    with reading_artifact(folder):
        return type(base_model).from_pretrained(str(folder))


def merge_model(model, load_base=None):
    """The saved folder is a complete model already: nothing to fold in."""
    return model


METHOD = Method(
    name="full",
    trains="every weight",
    options=FullOptions,
    default_learning_rate=5e-5,
    wrap=wrap,
    save=save_model,
    load=load_model,
    merge=merge_model,
    artifact="model",
    saved_files=MODEL_FILES,
    trains_base=True,
    footprint=footprint,
)
