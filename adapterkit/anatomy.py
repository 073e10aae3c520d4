"""Where things are inside a transformers model: one declarative row per architecture.

A row names, relative to the backbone (``model.<base_model_prefix>``), the ``ModuleList`` of repeated
blocks, and, relative to one block, the attention-output and FFN-output projections — the two places
bottleneck adapters hook in (as in AdapterHub ``adapters``). Methods read the table through three
generic functions and never test a model's class or name themselves:

* ``find_blocks(model)``       -> (dotted name, ModuleList) of the repeated blocks
* ``top_stack(model)``         -> the blocks the head reads (an encoder-decoder's decoder) and their final norm
* ``adapter_points(model)``    -> {"attention": ..., "ffn": ...} inside one block
* ``head_module_names(model)`` -> top-level children that are the task head, not the backbone: the one
  source for what a method trains whole and saves (peft's ``modules_to_save``), what a quantizing loader
  keeps in full precision and what the memory planner counts as the head
* ``pooler_module_names(model)`` -> the backbone's pooler, which only feeds a sequence classifier
* ``full_precision_module_names(model)`` -> the head + the output embeddings: never quantized
* ``meta_model(config, auto_class)`` -> the task's model class on the meta device (no weight memory)

Names returned are relative to the object passed in, so they work on plain and peft-wrapped models alike.
torch is imported inside functions only: importing this module stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class Arch:
    blocks: str  # ModuleList of blocks, relative to the backbone
    attention: str  # attention-output projection, relative to one block
    ffn: str  # FFN-output projection, relative to one block
    kv: tuple[str, ...] = ()  # the projections that produce keys and values (fused qkv where there is one)


_BERT = Arch("encoder.layer", "attention.output.dense", "output.dense", ("attention.self.key", "attention.self.value"))
_LLAMA = Arch("layers", "self_attn.o_proj", "mlp.down_proj", ("self_attn.k_proj", "self_attn.v_proj"))

ARCHITECTURES: dict[str, Arch] = {
    # encoders
    **dict.fromkeys(("bert", "roberta", "xlm-roberta", "camembert", "electra"), _BERT),
    **dict.fromkeys(("deberta", "deberta-v2"), Arch("encoder.layer", "attention.output.dense", "output.dense",
                                                    ("attention.self.key_proj", "attention.self.value_proj"))),
    "distilbert": Arch("transformer.layer", "attention.out_lin", "ffn.lin2", ("attention.k_lin", "attention.v_lin")),
    "mpnet": Arch("encoder.layer", "attention.attn.o", "output.dense", ("attention.attn.k", "attention.attn.v")),
    "modernbert": Arch("layers", "attn.Wo", "mlp.Wo", ("attn.Wqkv",)),
    # decoders
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo",
                     "olmo2", "granite", "smollm3"), _LLAMA),
    "phi3": Arch("layers", "self_attn.o_proj", "mlp.down_proj", ("self_attn.qkv_proj",)),
    "gpt2": Arch("h", "attn.c_proj", "mlp.c_proj", ("attn.c_attn",)),
    "gpt_neox": Arch("layers", "attention.dense", "mlp.dense_4h_to_h", ("attention.query_key_value",)),
    "phi": Arch("layers", "self_attn.dense", "mlp.fc2", ("self_attn.k_proj", "self_attn.v_proj")),
    "opt": Arch("decoder.layers", "self_attn.out_proj", "fc2", ("self_attn.k_proj", "self_attn.v_proj")),
    "falcon": Arch("h", "self_attention.dense", "mlp.dense_4h_to_h", ("self_attention.query_key_value",)),
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


def unknown_reason(model_type: str) -> str | None:
    """Why the table cannot place adapters in ``model_type`` (None if it has a row); read by preflight."""
    if model_type in ARCHITECTURES:
        return None
    return f"no adapter points known for model type {model_type!r}; supported: {', '.join(sorted(ARCHITECTURES))}"


def arch(model) -> Arch:
    """The table row for ``model``'s architecture, or a UserError naming the supported ones."""
    model_type = _model_type(model)
    reason = unknown_reason(model_type)
    if reason:
        raise UserError(reason, where="method")
    return ARCHITECTURES[model_type]


def find_blocks(model) -> tuple[str, Any]:
    """Dotted name and ``ModuleList`` of the repeated transformer blocks (an encoder-decoder's encoder).

    Known architectures: the table's path (the shallowest module whose name ends with it). Otherwise the
    largest ``ModuleList`` whose children all share one class.
    """
    return _blocks_among(model, _module_lists(model))


def top_stack(model) -> tuple[str, Any, list[str]]:
    """(dotted name, ``ModuleList``, final norms) of the blocks whose output the head reads: the top of the
    model, where ``freeze`` trains.

    On an encoder-decoder (T5, BART) that is the decoder, which every head of theirs reads (the LM head, and the
    classification heads, at the decoder's end-of-sequence token); elsewhere ``find_blocks``'s list. The final
    norms are the norms beside the block list (``LlamaModel.norm``, ``GPT2Model.ln_f``, ``T5Stack.final_layer_norm``)
    less those the stack's ``forward`` applies before its first block: an embedding norm such as BART's
    ``layernorm_embedding`` or BLOOM's ``word_embeddings_layernorm`` (a name cannot tell: LFM2's final norm is
    called ``embedding_norm``).
    """
    lists = _module_lists(model)
    decoder = _decoder(model)
    if decoder is not None:
        inside = {id(m) for m in decoder.modules()}
        lists = [(n, m) for n, m in lists if id(m) in inside] or lists
    block_path, blocks = _blocks_among(model, lists)
    parent_path, _, attr = block_path.rpartition(".")
    parent = model.get_submodule(parent_path)
    norms = [f"{parent_path}.{name}" if parent_path else name for name, child in parent.named_children()
             if "Norm" in type(child).__name__ and not _called_before(parent, name, attr)]
    return block_path, blocks, norms


def _module_lists(model) -> list[tuple[str, Any]]:
    from torch import nn

    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]


def _blocks_among(model, lists) -> tuple[str, Any]:
    row = ARCHITECTURES.get(_model_type(model))
    if row is not None:
        hits = [(n, m) for n, m in lists if n == row.blocks or n.endswith("." + row.blocks)]
        if hits:
            return min(hits, key=lambda hit: hit[0].count("."))
    uniform = [(n, m) for n, m in lists if len({type(child) for child in m}) == 1]
    if not uniform:
        raise UserError(f"found no list of repeated blocks in {type(model).__name__}", where="method")
    return max(uniform, key=lambda hit: (len(hit[1]), -hit[0].count(".")))


def _decoder(model):
    """An encoder-decoder's decoder stack (transformers' ``get_decoder``), else None."""
    if not getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return None
    try:
        return model.get_decoder()
    except (AttributeError, NotImplementedError, ValueError):
        return None


def _called_before(parent, name: str, blocks: str) -> bool:
    """``parent.forward``'s source calls ``self.<name>(...)`` before it first reads ``self.<blocks>``. False when
    the source cannot be read or does neither (a norm applied elsewhere keeps its place at the top)."""
    import inspect
    import re

    try:
        source = inspect.getsource(type(parent).forward)
    except (OSError, TypeError):
        return False
    call = re.search(rf"self\.{re.escape(name)}\(", source)
    first = re.search(rf"self\.{re.escape(blocks)}\b", source)
    return bool(call and first and call.start() < first.start())


def adapter_points(model) -> dict[str, str]:
    """Inside one block: the attention-output and FFN-output projections, e.g. for Llama
    ``{"attention": "self_attn.o_proj", "ffn": "mlp.down_proj"}``. UserError for unknown architectures."""
    row = arch(model)
    return {"attention": row.attention, "ffn": row.ffn}


def head_module_names(model) -> list[str]:
    """Top-level children with weights that are not the backbone: the task head, whatever the model calls
    its parts (``classifier``/``score``; DistilBERT's ``pre_classifier``, DeBERTa's ``pooler``, ModernBERT's
    ``head``, T5's and BART's ``classification_head``).

    The output embeddings (an LM's ``lm_head``, tied or not) are left out, and so is a child that holds them
    (BERT's ``cls``, whose ``predictions.decoder`` is the vocabulary projection): they are the pretrained LM head,
    not a task head; training a tied one would train the input embeddings.
    """
    prefix, inner = _unwrap(model)
    backbone = getattr(inner, "base_model_prefix", "") or ""
    if getattr(inner, backbone, None) is None:  # a bare backbone (BertModel, LlamaModel): no head
        return []
    output = _output_embeddings(inner)
    names = []
    for name, child in inner.named_children():
        if name == backbone or not any(True for _ in child.parameters()):
            continue
        if output is not None and any(m is output for m in child.modules()):
            continue
        names.append(prefix + name)
    return names


def full_precision_module_names(model) -> list[str]:
    """Modules a quantizing loader keeps out of 4-bit: the task head and the output embeddings."""
    output = _output_embeddings(model)
    names = [n for n, m in model.named_modules() if output is not None and m is output]
    return head_module_names(model) + names[:1]


def meta_model(config, auto_class: str, trust_remote_code: bool = False):
    """The Auto class's model for ``config`` on the meta device: its structure, no weight memory."""
    import transformers
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = getattr(transformers, auto_class).from_config(config, trust_remote_code=trust_remote_code)
    model.tie_weights()  # from_config under init_empty_weights leaves tied embeddings as two parameters
    return model


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


def _output_embeddings(model):
    """The model's output-embedding module (an LM head), or None."""
    try:
        return model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
