"""``adapterkit.save`` / ``adapterkit.load``: a model ``adapterkit.wrap`` returned, trained a few steps, saved and
reloaded on a fresh copy of its base, gives the same outputs, for peft's LoRA and adapterkit's own bottleneck
adapters (whose weights ``save_pretrained`` + ``from_pretrained`` drop)."""

from __future__ import annotations

import json

import pytest
import torch

import adapterkit
from adapterkit import UserError
from adapterkit.support import tiny_config


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> str:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert-classifier")
    AutoModelForSequenceClassification.from_config(tiny_config("bert", 1000)).save_pretrained(folder)  # 2 labels
    return str(folder)


def fresh_base(folder: str):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


def logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("method, options", [("lora", {"r": 4}), ("bottleneck", {"config": "houlsby"})])
def test_save_load_round_trip(method, options, base_dir, tmp_path):
    model = adapterkit.wrap(fresh_base(base_dir), method, **options)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # B (LoRA) and up (bottleneck) start at zero: train them away from the identity
        ids = torch.randint(0, 1000, (4, 10), generator=generator)
        model(input_ids=ids, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    ids = torch.randint(0, 1000, (3, 10), generator=generator)
    trained = logits(model, ids)
    assert not torch.allclose(trained, logits(fresh_base(base_dir), ids)), "training changed nothing"

    folder = adapterkit.save(model, tmp_path / "saved")
    assert json.loads((folder / "adapterkit_method.json").read_text()) == {"method": method}
    again = adapterkit.load(fresh_base(base_dir), folder)
    torch.testing.assert_close(logits(again, ids), trained, rtol=0, atol=1e-6)
    adapterkit.save(again, tmp_path / "saved-again")  # a loaded model knows its method too
    assert (tmp_path / "saved-again" / "adapterkit_method.json").is_file()


def test_save_and_load_refuse_what_they_cannot_place(base_dir, tmp_path):
    with pytest.raises(UserError, match="did not come from adapterkit.wrap: pass method=NAME"):
        adapterkit.save(fresh_base(base_dir), tmp_path / "plain")
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match="not a folder adapterkit.save"):
        adapterkit.load(fresh_base(base_dir), tmp_path / "other")
