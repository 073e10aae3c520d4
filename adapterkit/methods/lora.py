"""LoRA (peft): low-rank updates on the chosen linear layers; the task head trains fully.

Defaults: rank 16, alpha 32 on every linear layer ("all-linear"), no LoRA dropout — peft applies
dropout per adapted module, which costs ~20% of a CPU step for little regularisation at these budgets.

Variants, all peft's own: DoRA (``use_dora``), rsLoRA (``use_rslora``), LoRA+ (``loraplus_lr_ratio``: B learns
that many times faster than A, peft's ``create_loraplus_optimizer``) and initialisations (``init``): gaussian,
pissa and olora (the base weights become the residual of the adapter's initial value: the saved adapter is
converted, as peft does, to a plain LoRA of rank 2r against the original base), eva (data-driven: peft's
``initialize_lora_eva_weights`` on the training batches; chat and ner only). LoftQ is refused: it replaces the base weights
with their quantized copy, which a plain adapter folder cannot carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .base import Footprint, Method, MethodOptions, WrapContext
from .peft_tuner import PEFT_FILES, load_peft, load_peft_trainable, merge_peft, peft_model, save_peft


class LoraOptions(MethodOptions):
    r: int = Field(16, gt=0, le=4096)
    alpha: float | None = Field(None, gt=0, description="lora_alpha; default 2*r")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    use_dora: bool = False
    use_rslora: bool = False
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: list[str] | None = None
    init: Literal["default", "gaussian", "pissa", "olora", "eva", "loftq"] = Field(
        "default", description="initialisation of A and B (peft's init_lora_weights); default: A random, B zero")
    loraplus_lr_ratio: float | None = Field(None, ge=1, le=1e4, description="LoRA+: B's learning rate over A's "
                                            "(the paper suggests 16); None: one learning rate")

    @field_validator("init")
    @classmethod
    def _not_loftq(cls, value: str) -> str:
        if value == "loftq":
            raise ValueError("loftq replaces the base model's weights with a quantized copy, which adapterkit's "
                             "adapter folders do not carry; use pissa, olora, eva or gaussian")
        return value


# method.init -> peft's init_lora_weights
INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora", "eva": "eva"}


def lora_config(options: LoraOptions, ctx: WrapContext):
    """peft's LoraConfig (``peft_model`` keeps the task head, trained whole, out of "all-linear")."""
    from peft import EvaConfig, LoraConfig

    # EVA masks label padding in per-token labels; a sequence label is no mask
    eva = EvaConfig(use_label_mask=ctx.peft_task_type != "SEQ_CLS") if options.init == "eva" else None
    return LoraConfig(
        task_type=ctx.peft_task_type,
        r=options.r,
        lora_alpha=options.alpha if options.alpha is not None else 2 * options.r,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        use_dora=options.use_dora,
        use_rslora=options.use_rslora,
        bias=options.bias,
        modules_to_save=options.modules_to_save,
        init_lora_weights=INIT[options.init],
        eva_config=eva,
    )


def targeted_linears(options: LoraOptions, shape) -> list[tuple[str, int, int]]:
    """The shape's backbone linears that ``target_modules`` selects, matched as peft matches names."""
    import re

    targets = options.target_modules
    if targets == "all-linear":
        return list(shape.linears)
    if isinstance(targets, str):
        return [lin for lin in shape.linears if re.fullmatch(targets, lin[0])]
    return [lin for lin in shape.linears if any(lin[0] == t or lin[0].endswith("." + t) for t in targets)]


def lora_matmul_shapes(targeted, r: int) -> tuple[tuple[int, int], ...]:
    """The distinct matmul shapes of LoRA branches on these linears: in -> r (A), r -> out (B)."""
    return tuple(sorted({(i, r) for _, i, _ in targeted} | {(r, o) for _, _, o in targeted}))


def footprint(options: LoraOptions, shape) -> Footprint:
    """r x (in + out) per adapted linear (A is r x in, B is out x r), + out for DoRA's magnitude, + task head."""
    targeted = targeted_linears(options, shape)
    adapters = sum(options.r * (i + o) + (o if options.use_dora else 0) for _, i, o in targeted)
    return Footprint(adapters + shape.task_head_params, branch_out_features=sum(o for _, _, o in targeted),
                     branch_matmul_shapes=lora_matmul_shapes(targeted, options.r), fused_sum=not options.use_dora)


def check_model(options: LoraOptions, config, task: str) -> str | None:
    """EVA needs many token vectors per layer; a sequence classifier's pooler sees one per sequence, and peft's
    convergence loop over the batches then never ends (seen with BERT on a 16-example train set)."""
    if options.init == "eva" and task == "classification":
        return "method.init = 'eva' is not supported for classification (use it for chat or ner; or pissa/olora)"
    return None


def wrap(model, options: LoraOptions, ctx: WrapContext):
    model = peft_model(model, lora_config(options, ctx))
    if options.init in MUTATES_BASE:
        keep_initial_adapter(model)
    return model


# Initialisations that subtract the adapter's initial value from the base weights (peft: "residual model").
MUTATES_BASE = ("pissa", "olora")


def keep_initial_adapter(model) -> None:
    """Save the adapter as initialised (peft's recipe: with init_lora_weights=True) into a temporary folder that
    lives as long as the model, for ``save`` to convert the trained adapter against."""
    import tempfile

    config = model.peft_config["default"]
    folder = tempfile.TemporaryDirectory(prefix="adapterkit-lora-init-")
    init, config.init_lora_weights = config.init_lora_weights, True
    try:
        model.save_pretrained(Path(folder.name) / "initial")
    finally:
        config.init_lora_weights = init
    model.adapterkit_initial_adapter = folder


def save(model, folder: Path) -> None:
    """A standard PEFT folder; PiSSA/OLoRA adapters converted to plain LoRA (rank 2r) against the original base."""
    initial = getattr(model, "adapterkit_initial_adapter", None)
    if initial is None:
        save_peft(model, folder)
        return
    import warnings

    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    with warnings.catch_warnings():  # peft warns that PiSSA/OLoRA change the base: the conversion is the remedy
        warnings.filterwarnings("ignore", message=".*(PiSSA|OLoRA|changes the base weights).*")
        model.save_pretrained(folder, path_initial_model_for_weight_conversion=str(Path(initial.name) / "initial"))
    # peft's conversion keeps only the LoRA matrices: put back the task head it trained whole (modules_to_save)
    path = folder / PEFT_FILES.weights
    tensors = load_file(path)
    for key, value in get_peft_model_state_dict(model).items():
        if "lora_" not in key:
            tensors.setdefault(key, value.detach().cpu().contiguous())
    save_file(tensors, path, metadata={"format": "pt"})


def prepare_trainer(trainer, options: LoraOptions) -> None:
    """EVA's data-driven initialisation on the training batches; LoRA+'s optimizer (two learning rates)."""
    if options.init == "eva" and trainer.train_dataset is not None:
        from peft import initialize_lora_eva_weights
        from peft.tuners.lora.eva import prepare_layer_inputs_fn_language_modeling as token_inputs
        from peft.tuners.lora.eva import prepare_model_inputs_fn_language_modeling as eva_mask

        def layer_inputs(layer_input, mask, name):
            """peft's per-token inputs; a layer that sees one vector per sequence (BERT's pooler) keeps them all."""
            first = layer_input[0] if isinstance(layer_input, (tuple, list)) else layer_input
            return token_inputs(layer_input, mask, name) if first.dim() == 3 else first.contiguous()

        initialize_lora_eva_weights(trainer.model, trainer.get_train_dataloader(), show_progress_bar=False,
                                    # the Trainer's batches are BatchEncoding mappings, peft's mask wants a dict
                                    prepare_model_inputs_fn=lambda batch, config: eva_mask(dict(batch), config),
                                    prepare_layer_inputs_fn=layer_inputs)
    if options.loraplus_lr_ratio:
        import torch
        from peft.optimizers import create_loraplus_optimizer

        args = trainer.args
        trainer.optimizer = create_loraplus_optimizer(
            trainer.model, torch.optim.AdamW, lr=args.learning_rate, loraplus_lr_ratio=options.loraplus_lr_ratio,
            weight_decay=args.weight_decay, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)


def wrap_refusal(options: LoraOptions) -> str | None:
    """What ``prepare_trainer`` alone applies, refused by ``adapterkit.wrap`` (it has no Trainer, optimizer or data)."""
    if options.init == "eva":
        return ("init='eva' initialises A and B from training batches, which wrap does not see; use adapterkit.run, or "
                "peft itself: LoraConfig(init_lora_weights='eva'), then peft.initialize_lora_eva_weights(model, dataloader)")
    if options.loraplus_lr_ratio:
        return (f"loraplus_lr_ratio acts through the optimizer, which wrap does not build; use adapterkit.run, or pass "
                f"peft.optimizers.create_loraplus_optimizer(model, torch.optim.AdamW, lr=LR, "
                f"loraplus_lr_ratio={options.loraplus_lr_ratio:g}) to your Trainer or loop")
    return None


METHOD = Method(
    name="lora",
    trains="low-rank A·B updates on linear layers (+ task head); variants: DoRA, rsLoRA, LoRA+, init pissa/olora/eva",
    options=LoraOptions,
    peft_type="LORA",
    default_learning_rate=5e-4,
    wrap=wrap,
    save=save,
    load=load_peft,
    saved_files=PEFT_FILES,
    load_trainable=load_peft_trainable,
    can_disable=True,
    merge=merge_peft,
    footprint=footprint,
    prepare_trainer=prepare_trainer,
    wrap_refusal=wrap_refusal,
    check_model=check_model,
)
