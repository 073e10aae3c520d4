"""Where things are inside a transformers model: one declarative row per architecture.

A row names, relative to the backbone (``model.<base_model_prefix>``), the ``ModuleList`` of repeated
blocks, and, relative to one block, the attention-output and FFN-output projections — the two places
bottleneck adapters hook in (as in AdapterHub ``adapters``). Methods read the table through three
generic functions and never test a model's class or name themselves:

* ``find_blocks(model)``       -> (dotted name, ModuleList) of the repeated blocks
* ``adapter_points(model)``    -> {"attention": ..., "ffn": ...} inside one block
* ``head_module_names(model)`` -> top-level children that are the task head, not the backbone
* ``pooler_module_names(model)`` -> the backbone's pooler, which only feeds a sequence classifier

Names returned are relative to the object passed in, so they work on plain and peft-wrapped models alike.
torch is imported inside functions only: importing this module stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UserError


@dataclass(frozen=True)
class Arch:
    blocks: str  # ModuleList of blocks, relative to the backbone
    attention: str  # attention-output projection, relative to one block
    ffn: str  # FFN-output projection, relative to one block


_BERT = Arch("encoder.layer", "attention.output.dense", "output.dense")
_LLAMA = Arch("layers", "self_attn.o_proj", "mlp.down_proj")

ARCHITECTURES: dict[str, Arch] = {
    # encoders
    **dict.fromkeys(("bert", "roberta", "xlm-roberta", "camembert", "electra", "deberta", "deberta-v2"), _BERT),
    "distilbert": Arch("transformer.layer", "attention.out_lin", "ffn.lin2"),
    "mpnet": Arch("encoder.layer", "attention.attn.o", "output.dense"),
    "modernbert": Arch("layers", "attn.Wo", "mlp.Wo"),
    # decoders
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo",
                     "olmo2", "granite", "smollm3"), _LLAMA),
    "gpt2": Arch("h", "attn.c_proj", "mlp.c_proj"),
    "gpt_neox": Arch("layers", "attention.dense", "mlp.dense_4h_to_h"),
    "phi": Arch("layers", "self_attn.dense", "mlp.fc2"),
    "opt": Arch("decoder.layers", "self_attn.out_proj", "fc2"),
}


def _unwrap(model) -> tuple[str, Any]:
    """(prefix, transformers model): peel a peft wrapper if there is one; prefix ends with '.' or is ''."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if inner is model:
        return "", model
    for name, module in model.named_modules():
        if module is inner:
            return name + ".", inner
    return "", inner


def _model_type(model) -> str:
    return getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__


def arch(model) -> Arch:
    """The table row for ``model``'s architecture, or a UserError naming the supported ones."""
    model_type = _model_type(model)
    if model_type not in ARCHITECTURES:
        raise UserError(f"no adapter points known for model type {model_type!r}; supported: "
                        f"{', '.join(sorted(ARCHITECTURES))}", where="method")
    return ARCHITECTURES[model_type]


def find_blocks(model) -> tuple[str, Any]:
    """Dotted name and ``ModuleList`` of the repeated transformer blocks.

    Known architectures: the table's path (the shallowest module whose name ends with it). Otherwise the
    largest ``ModuleList`` whose children all share one class.
    """
    from torch import nn

    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    row = ARCHITECTURES.get(_model_type(model))
    if row is not None:
        hits = [(n, m) for n, m in lists if n == row.blocks or n.endswith("." + row.blocks)]
        if hits:
            return min(hits, key=lambda hit: hit[0].count("."))
    uniform = [(n, m) for n, m in lists if len({type(child) for child in m}) == 1]
    if not uniform:
        raise UserError(f"found no list of repeated blocks in {type(model).__name__}", where="method")
    return max(uniform, key=lambda hit: (len(hit[1]), -hit[0].count(".")))


def adapter_points(model) -> dict[str, str]:
    """Inside one block: the attention-output and FFN-output projections, e.g. for Llama
    ``{"attention": "self_attn.o_proj", "ffn": "mlp.down_proj"}``. UserError for unknown architectures."""
    row = arch(model)
    return {"attention": row.attention, "ffn": row.ffn}


def head_module_names(model) -> list[str]:
    """Top-level children that are not the backbone: the task head (``classifier``, ``score``, ``lm_head``).

    An output layer whose weight is the input embedding matrix (tied embeddings) is left out: training
    it would train the embeddings.
    """
    prefix, inner = _unwrap(model)
    backbone = getattr(inner, "base_model_prefix", "") or ""
    if getattr(inner, backbone, None) is None:  # a bare backbone (BertModel, LlamaModel): no head
        return []
    tied = _tied_output(inner)
    names = []
    for name, child in inner.named_children():
        if name == backbone or child is tied or not any(True for _ in child.parameters()):
            continue
        names.append(prefix + name)
    return names


def pooler_module_names(model) -> list[str]:
    """The backbone's ``pooler`` (BERT-style: dense + tanh over the first token), if it has weights.

    It exists only to feed the sequence-classification head, and a checkpoint trained for something else
    (all-MiniLM-L6-v2 is trained for mean-pooled sentence embeddings) leaves it unsuited to the task.
    """
    prefix, inner = _unwrap(model)
    backbone = getattr(inner, "base_model_prefix", "") or ""
    pooler = getattr(getattr(inner, backbone, None), "pooler", None)
    if pooler is None or not any(True for _ in pooler.parameters()):
        return []
    return [f"{prefix}{backbone}.pooler"]


def _tied_output(model):
    """The output-embedding module if its weight is the input-embedding weight, else None."""
    try:
        out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if out is None or inp is None:
        return None
    w_out, w_in = getattr(out, "weight", None), getattr(inp, "weight", None)
    if w_out is None or w_in is None:
        return None
    if w_out is w_in:
        return out
    if w_out.device.type == "meta":  # meta tensors have no storage: every data_ptr() is 0
        return None
    same = w_out.shape == w_in.shape and w_out.data_ptr() == w_in.data_ptr()
    return out if same else None
