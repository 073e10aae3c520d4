"""The sizes of a model the memory plan reads, from its config alone (no weights are loaded).

``model_shape`` builds the task's model class on the meta device (accelerate's ``init_empty_weights``) to count
its parameters and list its linear layers; ``memory/estimate.py`` turns a shape into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelShape:
    """Sizes of a model, read from a meta-device instance of the task's model class."""

    model_type: str
    total_params: int
    layers: int
    hidden: int
    heads: int
    attention_dropout: bool  # the config applies dropout to attention probabilities
    hidden_dropout: bool  # ... and to hidden states
    vocab: int
    block_params: int  # parameters of one repeated block
    block_out_features: int  # sum of out_features over one block's linear layers
    block_in_features: int  # sum of in_features over one block's linear layers
    linears: tuple[tuple[str, int, int], ...]  # backbone linear layers: (name, in_features, out_features)
    task_head_params: int  # a freshly initialised task head (classifier, score); 0 for LM heads
    top_block_params: tuple[int, ...]  # each block of the stack the head reads, bottom to top (anatomy.top_stack)
    top_norm_params: int  # that stack's final norm
    lm_logits: bool  # the head projects onto the vocabulary (causal LM)
    checkpoint_bytes: int | None  # weights on disk, when the model is a local folder
    checkpoint_dtype: str = "fp32"
    pooler_params: int = 0  # the backbone's pooler, which feeds a sequence classifier (BERT-style)

    @property
    def linear_params(self) -> int:
        return sum(i * o for _, i, o in self.linears)


def _text_config(config):
    return getattr(config, "text_config", None) or config


def _first(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value:
            return value
    return default


def _checkpoint_bytes(model_dir: str | None) -> int | None:
    if not model_dir or not Path(model_dir).is_dir():
        return None
    files = list(Path(model_dir).glob("*.safetensors")) or list(Path(model_dir).glob("*.bin"))
    return sum(f.stat().st_size for f in files) or None


def model_shape(config, auto_class: str, *, lm_task: bool, model_dir: str | None = None,
                trust_remote_code: bool = False) -> ModelShape:
    """Build the task's model class on the meta device and measure it. Allocates no weight memory."""
    import torch

    from ..anatomy import find_blocks, head_module_names, meta_model, pooler_module_names, top_stack

    model = meta_model(config, auto_class, trust_remote_code)
    heads = head_module_names(model)
    output = model.get_output_embeddings() if lm_task else None  # LM head: never an adapter target, never 4-bit
    head_prefixes = tuple(h + "." for h in heads)
    block_path, blocks = find_blocks(model)
    linears = []
    for name, module in model.named_modules():
        if name in heads or name.startswith(head_prefixes) or (output is not None and module is output):
            continue
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear):
            linears.append((name, module.in_features, module.out_features))
        elif type(module).__name__ == "Conv1D" and weight is not None:  # GPT-2 style: weight is (in, out)
            linears.append((name, weight.shape[0], weight.shape[1]))
    first_block = f"{block_path}.0."
    block_out = sum(o for n, _, o in linears if n.startswith(first_block))
    block_in = sum(i for n, i, _ in linears if n.startswith(first_block))
    _, top_blocks, top_norms = top_stack(model)
    top_norm = sum(p.numel() for n in top_norms for p in model.get_submodule(n).parameters())
    head_params = sum(p.numel() for h in heads for p in model.get_submodule(h).parameters())
    pooler_params = sum(p.numel() for h in pooler_module_names(model) for p in model.get_submodule(h).parameters())
    text = _text_config(config)
    dtype = str(getattr(config, "dtype", None) or "float32")
    return ModelShape(
        model_type=config.model_type,
        total_params=sum(p.numel() for p in model.parameters()),
        layers=len(blocks),
        hidden=_first(text, "hidden_size", "n_embd", "d_model", "dim"),
        heads=_first(text, "num_attention_heads", "n_head", "n_heads", default=1),
        attention_dropout=bool(_first(text, "attention_probs_dropout_prob", "attention_dropout", "attn_pdrop",
                                      default=0.0)),
        hidden_dropout=bool(_first(text, "hidden_dropout_prob", "resid_pdrop", "hidden_dropout", "dropout",
                                   default=0.0)),
        vocab=_first(text, "vocab_size", default=0),
        block_params=sum(p.numel() for p in blocks[0].parameters()),
        block_out_features=block_out,
        block_in_features=block_in,
        linears=tuple(linears),
        task_head_params=0 if lm_task else head_params,
        pooler_params=0 if lm_task else pooler_params,
        top_block_params=tuple(sum(p.numel() for p in block.parameters()) for block in top_blocks),
        top_norm_params=top_norm,
        lm_logits=lm_task,
        checkpoint_bytes=_checkpoint_bytes(model_dir),
        checkpoint_dtype={"torch.bfloat16": "bf16", "bfloat16": "bf16", "torch.float16": "fp16",
                          "float16": "fp16"}.get(dtype, "fp32"),
    )
