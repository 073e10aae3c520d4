"""Save/load shared by the methods built on peft tuners: a standard PEFT adapter folder."""

from __future__ import annotations

from pathlib import Path


def save_peft(model, folder: Path) -> None:
    model.save_pretrained(folder)


def load_peft(base_model, folder: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, folder)


def peft_model(model, config):
    from peft import get_peft_model

    return get_peft_model(model, config)
