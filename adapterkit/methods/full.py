"""Full fine-tuning: every weight trains; the run saves a complete ``model/`` folder."""

from __future__ import annotations

from pathlib import Path

from .base import Footprint, Method, MethodOptions, WrapContext, reading_artifact


class FullOptions(MethodOptions):
    pass


def wrap(model, options: FullOptions, ctx: WrapContext):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def footprint(options: FullOptions, shape) -> Footprint:
    return Footprint(shape.total_params)


def save_model(model, folder: Path) -> None:
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
    trains_base=True,
    footprint=footprint,
)
