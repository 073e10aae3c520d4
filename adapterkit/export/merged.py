"""``--format merged``: a standard transformers folder (safetensors, tokenizer, chat template, generation
config) that ``AutoModel*.from_pretrained`` loads, with the trained weights folded in by the method's own
``merge`` (peft's ``merge_and_unload`` for LoRA/IA3, the NF4-dequantized base for QLoRA, the saved model for
full/freeze). Prompt-learning and bottleneck runs cannot merge and are refused (their ``no_merge``).

Causal LMs get a ``generation_config.json`` whose EOS ids include the token that ends an assistant turn in
the chat template (``<|im_end|>`` for ChatML), and whose pad id is the tokenizer's.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from . import Format, Source
from .check import Tolerance, torch_runner

DTYPES = ("fp32", "bf16", "fp16")
TOLERANCES = {"fp32": Tolerance(max_abs_logit=1e-4, loss_increase=1e-4, metric_drop=0.0),
              "fp16": Tolerance(loss_increase=0.01, metric_drop=0.02),
              "bf16": Tolerance(loss_increase=0.03, metric_drop=0.03)}


def torch_dtype(dtype: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]


def merge_run(source: Source):
    """The run's trained weights folded into a plain transformers model (fp32); consumes ``source.model``."""
    from .. import loading

    plan = source.plan

    def load_base():
        return loading.load_model(plan, source.tokenizer, plan.task.model_kwargs(source.data), quantize=False,
                                  training=False)  # the trained head comes from the run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # peft's notes on merging (rounding of quantized layers)
        model = plan.method.merge(source.model, load_base)
    return model.eval()


def turn_end_ids(tokenizer) -> list[int]:
    """The special token(s) the chat template writes right after an assistant message (``<|im_end|>``)."""
    marker = "\x1fANSWER\x1f"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": marker}], tokenize=False)
    except (ValueError, TypeError, AttributeError):
        return []
    if marker not in text:
        return []
    after = tokenizer(text.split(marker, 1)[1], add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    return [i for i in after[:2] if i in special][:1]


def generation_config(model, tokenizer):
    """The model's generation config with the chat template's end-of-turn token among the EOS ids."""
    config = model.generation_config
    eos = config.eos_token_id
    ids = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    for extra in [tokenizer.eos_token_id, *turn_end_ids(tokenizer)]:
        if extra is not None and extra not in ids:
            ids.append(extra)
    config.eos_token_id = ids[0] if len(ids) == 1 else ids
    if tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    return config


def save_merged(source: Source, model, output: Path, dtype: str) -> list[str]:
    """``model`` (merged) as a from_pretrained folder in ``dtype``, with the run's tokenizer and labels."""
    model = model.to(torch_dtype(dtype))
    if model.can_generate():
        model.generation_config = generation_config(model, source.tokenizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.save_pretrained(output, safe_serialization=True)
    source.tokenizer.save_pretrained(output)
    labels = source.artifact / "labels.json"
    if labels.is_file():
        shutil.copy(labels, output / "labels.json")
    return sorted(p.name for p in output.iterdir() if not p.name.startswith("."))


def write(source: Source, output: Path, dtype: str) -> list[str]:
    return save_merged(source, merge_run(source), output, dtype)


def load(source: Source, output: Path, dtype: str):
    import transformers

    auto = getattr(transformers, source.plan.task.auto_class)
    return torch_runner(auto.from_pretrained(output, dtype=torch_dtype(dtype)).eval())


FORMAT = Format(
    name="merged",
    summary="a transformers folder (safetensors + tokenizer) with the trained weights folded in",
    dtypes=DTYPES,
    write=write,
    load=load,
    tolerance=TOLERANCES.__getitem__,
)
