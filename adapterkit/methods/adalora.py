"""AdaLoRA (peft): LoRA in SVD form (P·Λ·Q) whose rank budget is re-allocated during training, from ``init_r``
per layer down to ``target_r`` on average, to the layers where the singular values matter most.

peft needs ``update_and_allocate(global_step)`` after every optimizer step and before the gradients are
zeroed, and the run's total number of steps when the model is wrapped (``WrapContext.total_steps``, from
the plan): the rank budget shrinks between ``tinit_share`` and ``1 - tfinal_share`` of the run. Through
``adapterkit.wrap`` the caller passes ``total_steps`` and makes that call in their own loop (peft's documented
loop: ``model.base_model.update_and_allocate(step)`` after ``optimizer.step()``, steps counted from 0).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import Footprint, Method, MethodOptions, Needs, WrapContext
from .lora import lora_matmul_shapes, targeted_linears
from .peft_tuner import PEFT_FILES, load_peft, merge_peft, peft_model, save_peft


class AdaLoraOptions(MethodOptions):
    init_r: int = Field(12, gt=0, le=4096, description="rank each layer starts with")
    target_r: int = Field(8, gt=0, le=4096, description="average rank per layer at the end")
    alpha: float | None = Field(None, gt=0, description="lora_alpha; default 2*target_r")
    dropout: float = Field(0.0, ge=0, lt=1)
    tinit_share: float = Field(0.1, ge=0, lt=1, description="share of the steps trained before ranks are pruned")
    tfinal_share: float = Field(0.2, ge=0, lt=1, description="share of the steps trained after the last pruning")
    delta_t: int = Field(1, gt=0, description="optimizer steps between two rank allocations")
    orth_reg_weight: float = Field(0.5, ge=0, description="weight of the orthogonality regulariser on P and Q")
    target_modules: list[str] | str = "all-linear"

    @model_validator(mode="after")
    def _a_budgeting_phase(self):
        if self.tinit_share + self.tfinal_share >= 1:
            raise ValueError("tinit_share + tfinal_share must be below 1 (ranks are pruned in between)")
        if self.target_r > self.init_r:
            raise ValueError(f"target_r ({self.target_r}) cannot exceed init_r ({self.init_r})")
        return self


def footprint(options: AdaLoraOptions, shape) -> Footprint:
    """init_r x (in + out + 1) per adapted linear (P, Q and the singular values; pruning masks, never frees)."""
    targeted = targeted_linears(options, shape)
    adapters = sum(options.init_r * (i + o + 1) for _, i, o in targeted)
    return Footprint(adapters + shape.task_head_params, branch_out_features=sum(o for _, _, o in targeted),
                     branch_matmul_shapes=lora_matmul_shapes(targeted, options.init_r))


def wrap(model, options: AdaLoraOptions, ctx: WrapContext):
    from peft import AdaLoraConfig

    total = ctx.total_steps or 1
    tinit, tfinal = int(options.tinit_share * total), int(options.tfinal_share * total)
    config = AdaLoraConfig(task_type=ctx.peft_task_type, init_r=options.init_r, target_r=options.target_r,
                           lora_alpha=options.alpha or 2 * options.target_r, lora_dropout=options.dropout,
                           tinit=tinit, tfinal=tfinal, deltaT=options.delta_t, orth_reg_weight=options.orth_reg_weight,
                           total_step=total, target_modules=options.target_modules)
    return peft_model(model, config)


def load(base_model, folder):
    """peft's adapter folder. A loaded (inference-mode) AdaLoRA model has no ``trainable_adapter_name``, which its
    forward still reads whenever labels give a loss (peft 0.21): evaluation with labels would fail without it."""
    model = load_peft(base_model, folder)
    if not hasattr(model.base_model, "trainable_adapter_name"):
        model.base_model.trainable_adapter_name = model.active_adapter
    return model


def prepare_trainer(trainer, options: AdaLoraOptions) -> None:
    """peft's rank allocation after each optimizer step (the Trainer zeroes gradients right after)."""
    from transformers import TrainerCallback

    class AllocateRanks(TrainerCallback):
        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            model.base_model.update_and_allocate(state.global_step)

    trainer.add_callback(AllocateRanks())


METHOD = Method(
    name="adalora",
    trains="low-rank SVD-form updates whose ranks are re-allocated across layers while training (+ task head)",
    options=AdaLoraOptions,
    peft_type="ADALORA",
    default_learning_rate=5e-4,  # LoRA's; not tuned for AdaLoRA (docs/defaults.md)
    wrap=wrap,
    save=save_peft,
    load=load,
    saved_files=PEFT_FILES,
    merge=merge_peft,
    footprint=footprint,
    prepare_trainer=prepare_trainer,
    needs=Needs(total_steps=True),
)
