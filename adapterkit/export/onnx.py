"""``--format onnx``: classification and NER runs as ``model.onnx`` for ONNX Runtime.

The merged model (``merged.merge_run``) is exported with ``torch.onnx.export(dynamo=True)`` (torch.export +
onnxscript), with dynamic batch and sequence axes, in one file; inputs are the tokenizer's own
(``input_ids``, ``attention_mask``, ``token_type_ids`` for BERT), output ``logits``. The folder also holds the
tokenizer, the model config (labels) and ``labels.json``. optimum-onnx is not used: it requires
transformers < 5. The check runs the file with onnxruntime's CPU provider.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from . import Format, Source
from .check import Tolerance

FILE = "model.onnx"


def input_names(model, tokenizer) -> list[str]:
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [name for name in tokenizer.model_input_names if name in accepted]


def _module(model, names: list[str]):
    import torch

    class Logits(torch.nn.Module):
        """Positional inputs in ``names`` order -> logits (ONNX graphs take no keyword dicts)."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(**dict(zip(names, tensors))).logits

    return Logits().eval()


def export_onnx(model, tokenizer, path: Path) -> list[str]:
    """Write ``model`` (a transformers model with a ``logits`` output) to ``path``; returns its input names."""
    import torch
    from torch.export import Dim

    names = input_names(model, tokenizer)
    sample = tokenizer(["an example sentence to trace", "another"], padding=True, return_tensors="pt")
    dynamic = tuple({0: Dim.DYNAMIC, 1: Dim.DYNAMIC} for _ in names)
    # torch.onnx: "torchvision is not installed. Skipping torchvision::nms" and the like; onnx_ir's passes log each
    # initializer they deduplicate at INFO (85 lines for a MiniLM): none of it is the user's concern
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export's deprecation notes on pytree specs
            torch.onnx.export(_module(model, names), tuple(sample[n] for n in names), str(path),
                              input_names=names, output_names=["logits"], dynamo=True, dynamic_shapes=(dynamic,),
                              external_data=False, verbose=False)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    return names


def write(source: Source, output: Path, dtype: str) -> list[str]:
    from . import merged

    model = merged.merge_run(source)
    export_onnx(model, source.tokenizer, output / FILE)
    source.tokenizer.save_pretrained(output)
    model.config.save_pretrained(output)
    labels = source.artifact / "labels.json"
    if labels.is_file():
        (output / "labels.json").write_bytes(labels.read_bytes())
    return sorted(p.name for p in output.iterdir() if not p.name.startswith("."))


def session_runner(path: Path):
    """An onnxruntime session as a check runner: dict of input tensors -> logits."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(inputs):
        return session.run(["logits"], {n: inputs[n].numpy() for n in names})[0]

    return run


def load(source: Source, output: Path, dtype: str):
    return session_runner(output / FILE)


FORMAT = Format(
    name="onnx",
    summary="classification / NER model as model.onnx for ONNX Runtime (dynamic batch and sequence axes)",
    dtypes=("fp32",),
    write=write,
    load=load,
    tolerance=lambda dtype: Tolerance(max_abs_logit=1e-4, loss_increase=1e-4, metric_drop=0.0),
    heads=("AutoModelForSequenceClassification", "AutoModelForTokenClassification"),
)
