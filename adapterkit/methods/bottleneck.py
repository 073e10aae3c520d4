"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020), written here since peft has none.

An adapter is ``h + dropout(up(act(down(ln?(h)))))`` with ``up`` initialised to zeros, so a fresh adapter is
the identity and the wrapped model starts exactly where the base model was. Where adapters go comes from
``anatomy.py`` (one row per architecture): Pfeiffer puts one on each block's FFN output, Houlsby one on the
attention output as well.

Mechanics: each adapter is an ``nn.Sequential`` registered as the child ``bottleneck`` of the projection it
follows (so ``parameters()``, ``.to()``, optimizers and ``state_dict()`` see it, and base weight names do not
change), and a forward hook on that projection adds the adapter's output. The hook is a module-level
function that holds no state, so models stay deep-copyable; activation checkpointing re-runs it like any
other part of the block. Adapter weights are float32 whatever the base dtype (mixed-precision trainers need
fp32 trainable weights); the hook casts the hidden states in and out.

Artifact: ``bottleneck.safetensors`` (every trainable weight: adapters + task head) and
``bottleneck_config.json`` (options, points, block path, model type, saved names). ``load`` re-wraps a
fresh base model with the saved options and loads the weights strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..errors import UserError
from .base import Footprint, Method, MethodOptions, Needs, SavedFiles, WrapContext, reading_artifact

CHILD = "bottleneck"  # name of the adapter inside the projection module it follows
WEIGHTS, CONFIG = "bottleneck.safetensors", "bottleneck_config.json"
SAVED_FILES = SavedFiles(config=CONFIG, weights=WEIGHTS, what="the bottleneck adapters' configuration")
LM_TASKS = ("CAUSAL_LM", "SEQ_2_SEQ_LM")  # their head is the pretrained vocabulary projection, not a task head


class BottleneckOptions(MethodOptions):
    config: Literal["houlsby", "pfeiffer"] = Field(
        "pfeiffer", description="pfeiffer: one adapter after each FFN output; houlsby: after attention output too")
    reduction_factor: int = Field(4, ge=1, le=4096, description="bottleneck size = hidden // reduction_factor "
                                                                "(4: +1.5 F1 over 16 on sentiment, docs/defaults.md)")
    non_linearity: Literal["relu", "gelu", "swish", "tanh"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's output, before the residual")
    train_head: bool = Field(True, description="the task head (classifier/score, and the backbone's pooler where it "
                                               "has one) trains; an LM's lm_head never does")
    layer_norm: bool = Field(False, description="LayerNorm on the adapter's input, before the down-projection")
    train_layer_norms: bool = Field(False, description="the blocks' own layer norms train too, as in Houlsby et al.")


def _points(model, options: BottleneckOptions) -> dict[str, str]:
    from ..anatomy import adapter_points

    points = adapter_points(model)
    return points if options.config == "houlsby" else {"ffn": points["ffn"]}


def _width(module, model) -> int:
    """Output width of a projection: Linear.out_features, GPT-2 Conv1D.nf, else the config's hidden size."""
    for attr in ("out_features", "nf"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    return model.config.hidden_size


def make_adapter(width: int, options: BottleneckOptions, device=None):
    """ln? -> down -> act -> up (zeros) -> dropout, in float32. The residual is added by the hook."""
    from collections import OrderedDict

    import torch
    from torch import nn

    size = max(1, width // options.reduction_factor)
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}[options.non_linearity]
    layers = OrderedDict()
    if options.layer_norm:
        layers["ln"] = nn.LayerNorm(width)
    layers["down"] = nn.Linear(width, size)
    layers["act"] = act()
    layers["up"] = nn.Linear(size, width)
    if options.dropout:
        layers["dropout"] = nn.Dropout(options.dropout)
    adapter = nn.Sequential(layers).to(device=device, dtype=torch.float32)
    nn.init.zeros_(adapter.up.weight)
    nn.init.zeros_(adapter.up.bias)
    return adapter


def _add_adapter(module, args, output):
    """Forward hook on a projection: output + adapter(output), computed in the adapter's dtype."""
    adapter = getattr(module, CHILD)
    h = output[0] if isinstance(output, tuple) else output
    h = h + adapter(h.to(adapter.down.weight.dtype)).to(h.dtype)
    return (h, *output[1:]) if isinstance(output, tuple) else h


def _head_modules(model, options: BottleneckOptions, task_type: str) -> list[str]:
    """The task head and, where the backbone has one, its pooler (it feeds only the head)."""
    from ..anatomy import head_module_names, pooler_module_names

    if not options.train_head or task_type in LM_TASKS:
        return []
    return head_module_names(model) + pooler_module_names(model)


def insert_adapters(model, options: BottleneckOptions) -> tuple[str, dict[str, str], list[str]]:
    """Add an adapter after every adapter point of every block; returns (block path, points, module names)."""
    from ..anatomy import find_blocks

    block_path, blocks = find_blocks(model)
    points = _points(model, options)
    names = []
    for i, block in enumerate(blocks):
        for point in points.values():
            target = block.get_submodule(point)
            if hasattr(target, CHILD):
                raise UserError(f"{block_path}.{i}.{point} already has a bottleneck adapter", where="method")
            weight = next(target.parameters(), None)
            target.add_module(CHILD, make_adapter(_width(target, model), options,
                                                  weight.device if weight is not None else None))
            target.register_forward_hook(_add_adapter)
            names.append(f"{block_path}.{i}.{point}.{CHILD}")
    return block_path, points, names


def inserted_adapter(model) -> str | None:
    """The name of the first adapter ``insert_adapters`` put into ``model`` (a second wrap is refused), or None."""
    for name, module in model.named_modules():
        if CHILD in module._modules and _add_adapter in module._forward_hooks.values():
            return f"{name}.{CHILD}"
    return None


def block_norms(model) -> list:
    """The layer norms (LayerNorm, RMSNorm, ...) inside the transformer blocks, adapters' own excluded."""
    from ..anatomy import find_blocks

    _, blocks = find_blocks(model)
    return [m for block in blocks for name, m in block.named_modules()
            if type(m).__name__.lower().endswith("norm") and f".{CHILD}." not in f".{name}."]


def wrap(model, options: BottleneckOptions, ctx: WrapContext):
    """Freeze the base model, insert adapters in every block, keep the task head trainable if asked."""
    _points(model, options)  # an unknown architecture fails here, before the model is touched
    for p in model.parameters():
        p.requires_grad_(False)
    insert_adapters(model, options)  # new parameters require grad
    for name in _head_modules(model, options, ctx.peft_task_type):
        model.get_submodule(name).requires_grad_(True)
    if options.train_layer_norms:
        for norm in block_norms(model):
            norm.requires_grad_(True)
    model._adapterkit_bottleneck = {"options": options.model_dump(), "peft_task_type": ctx.peft_task_type}
    return model


def save(model, folder: Path) -> None:
    from safetensors.torch import save_file

    from ..anatomy import find_blocks

    info = getattr(model, "_adapterkit_bottleneck", None)
    if info is None:
        raise UserError("model was not wrapped by the bottleneck method", where="save")
    options = BottleneckOptions(**info["options"])
    tensors = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
    config = {
        "method": "bottleneck",
        "options": info["options"],
        "peft_task_type": info["peft_task_type"],
        "model_type": model.config.model_type,
        "block_path": find_blocks(model)[0],
        "adapter_points": _points(model, options),
        "head_modules": _head_modules(model, options, info["peft_task_type"]),
        "parameters": sorted(tensors),
    }
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load(base_model, folder: Path):
    """Re-wrap a fresh base model with the saved options and load the saved weights (strictly)."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise UserError(f"not a bottleneck adapter folder (needs {CONFIG} and {WEIGHTS})", where=str(folder))
    with reading_artifact(folder):
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    if config["model_type"] != base_model.config.model_type:
        raise UserError(f"adapter was trained on model type {config['model_type']!r}, base model is "
                        f"{base_model.config.model_type!r}", where=str(folder))
    options = BottleneckOptions(**config["options"])
    model = wrap(base_model, options, WrapContext(peft_task_type=config["peft_task_type"], model_path=""))
    saved_heads = config.get("head_modules")
    for name in _head_modules(model, options, config["peft_task_type"]):
        if saved_heads is not None and name not in saved_heads:  # saved before the pooler trained with the head
            model.get_submodule(name).requires_grad_(False)
    with reading_artifact(folder):
        tensors = load_file(str(folder / WEIGHTS))
    params = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(params))
    missing = sorted(n for n, p in params.items() if p.requires_grad and n not in tensors)  # adapters + head
    if unknown or missing:
        raise UserError(f"weights do not fit the model: unknown {unknown[:3]}, missing {missing[:3]}",
                        where=str(folder / WEIGHTS))
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise UserError(f"{name}: saved shape {tuple(tensor.shape)}, model has "
                                f"{tuple(params[name].shape)}", where=str(folder / WEIGHTS))
            params[name].copy_(tensor)
    return model


def check_model(options: BottleneckOptions, config, task: str) -> str | None:
    """Preflight: the architecture table (``anatomy.ARCHITECTURES``) must place the adapters."""
    from ..anatomy import unknown_reason

    return unknown_reason(config.model_type)


def footprint(options: BottleneckOptions, shape) -> Footprint:
    """Per block and adapter point (pfeiffer 1, houlsby 2): down h x m + m, up m x h + h (m = h //
    reduction_factor), + 2h for the LayerNorm; + the task head (and pooler) when it trains; + the blocks' two norms
    (weight and bias, 2h each) when they train."""
    h = shape.hidden
    m = max(1, h // options.reduction_factor)
    per_adapter = 2 * h * m + m + h + (2 * h if options.layer_norm else 0)
    points = 2 if options.config == "houlsby" else 1
    head = shape.task_head_params + shape.pooler_params if options.train_head else 0
    norms = shape.layers * 2 * 2 * h if options.train_layer_norms else 0
    return Footprint(shape.layers * points * per_adapter + head + norms, keeps_linear_inputs=False,
                     branch_matmul_shapes=((h, m), (m, h)))


METHOD = Method(
    name="bottleneck",
    trains="small bottleneck adapters after each block's FFN (and attention) output (+ task head and pooler)",
    options=BottleneckOptions,
    # Adapters start at the identity and are tiny: they want a larger rate than full fine-tuning. 1e-3 is the
    # usual choice (AdapterHub examples; Houlsby et al. searched 3e-5..3e-3; Pfeiffer et al. 1e-4..1e-3), but on
    # W-NUT it collapsed one seed of three to near all-O (0.09 F1); 5e-4 had the best mean and a small spread
    # there, 0.7 F1 less on the sentiment mean over 2 seeds (docs/defaults.md).
    default_learning_rate=5e-4,
    wrap=wrap,
    save=save,
    load=load,
    no_merge="bottleneck adapters add a nonlinear branch (down-projection, activation, up-projection) after a "
             "projection, which cannot fold into its linear weights: no merged, GGUF or ONNX model (refused, not "
             "kept as extra modules, which AutoModel could not load); deploy with adapterkit or train lora",
    artifact="adapter",
    saved_files=SAVED_FILES,
    needs=Needs(),
    check_model=check_model,
    footprint=footprint,
)
