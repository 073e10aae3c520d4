"""``task.loss`` -> the trl trainer that implements it, with its config.

DPO and its variants are ``trl.DPOTrainer`` loss types (``DPOConfig.loss_type``); ORPO and SimPO are
reference-free trainers in ``trl.experimental`` (ORPOTrainer; CPOTrainer with ``loss_type="simpo"``); KTO is
``trl.KTOTrainer`` on unpaired rows. The reference of the reference-based losses: with a method that can switch
its adapter off (``Method.can_disable``: peft), trl uses the base with the adapter disabled (or, when training
continues a saved adapter, a frozen copy of that adapter's weights: the model it started from), no second
model; otherwise a frozen copy of the base model, which the memory planner counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ... import distributed

log = logging.getLogger("adapterkit")

# adapterkit name -> DPOConfig.loss_type (the DPO family shares DPOTrainer)
DPO_LOSSES = {"dpo": "sigmoid", "ipo": "ipo", "hinge": "hinge", "robust": "robust", "sigmoid_norm": "sigmoid_norm",
              "bco_pair": "bco_pair", "sppo_hard": "sppo_hard", "nca_pair": "nca_pair", "aot": "aot",
              "apo_zero": "apo_zero", "apo_down": "apo_down", "discopop": "discopop"}
LOSSES = (*DPO_LOSSES, "orpo", "simpo", "kto")
ROUNDS_LENGTHS = (*DPO_LOSSES, "kto")  # trl's collators for these pad to a multiple (pad_to_multiple_of)


@dataclass(frozen=True)
class Loss:
    name: str
    uses_reference: bool  # a reference model's log-probs enter the loss
    unpaired: bool  # trains on prompt+completion+label rows (pairs are split)


def loss_record(name: str) -> Loss:
    return Loss(name, uses_reference=name not in ("orpo", "simpo"), unpaired=name == "kto")


def _counting_pairs(trainer_class):
    """``trainer_class`` counting the tokens of trl's paired batches. ORPO's and CPO's (SimPO's) batches carry
    ``chosen_``/``rejected_input_ids`` (each the prompt and an answer), not the ``input_ids`` the Trainer counts, so
    ``num_input_tokens_seen`` (the run's train tokens and tokens/s) stayed 0; their tokens are counted as DPO's
    concatenated ``input_ids`` are (non-padding, or all, as the arguments say)."""
    import torch

    class CountingPairs(trainer_class):
        def _track_num_input_tokens(self, inputs):
            mode = self.args.include_num_input_tokens_seen
            if "input_ids" in inputs or mode == "no" or "chosen_input_ids" not in inputs:
                return super()._track_num_input_tokens(inputs)
            sides = ("chosen", "rejected")
            count = sum(inputs[f"{side}_attention_mask"].sum() if mode == "non_padding"
                        else inputs[f"{side}_input_ids"].numel() for side in sides)
            count = torch.as_tensor(count, device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += self.accelerator.gather(count).sum().item()

    CountingPairs.__name__ = CountingPairs.__qualname__ = trainer_class.__name__
    return CountingPairs


def build(loss: Loss, args: dict, beta: float | None, max_length: int, model, ref_model, tokenizer, train, evaluation,
          pad_multiple: int | None = None):
    """The trl trainer for ``loss``; ``args``: adapterkit's shared Trainer arguments (``training.training_kwargs``);
    ``pad_multiple``: batches padded to a multiple of that many tokens (DPO and KTO: trl's collators take it; ORPO's
    and SimPO's do not: ``ROUNDS_LENGTHS``)."""
    return _quiet_steps(_build(loss, args, beta, max_length, model, ref_model, tokenizer, train, evaluation,
                               pad_multiple))


def _build(loss: Loss, args: dict, beta: float | None, max_length: int, model, ref_model, tokenizer, train, evaluation,
           pad_multiple: int | None = None):
    import warnings

    common = {**args, "max_length": max_length}
    rounded = {"pad_to_multiple_of": pad_multiple} if pad_multiple and loss.name in ROUNDS_LENGTHS else {}
    if beta is not None:
        common["beta"] = beta
    data = {"train_dataset": train, "eval_dataset": evaluation, "processing_class": tokenizer}
    with warnings.catch_warnings():  # trl.experimental announces itself on import: not the user's concern
        warnings.filterwarnings("ignore", message=".*experimental.*")
        if loss.name in DPO_LOSSES:
            from trl import DPOConfig, DPOTrainer

            config = DPOConfig(**common, **rounded, loss_type=[DPO_LOSSES[loss.name]])
            return DPOTrainer(model=model, ref_model=ref_model, args=config, **data)
        if loss.name == "kto":
            from trl import KTOConfig, KTOTrainer

            # KTO's KL estimate pairs each row with its neighbour in a fixed-order batch (KTOConfig's docs)
            config = KTOConfig(**{**common, **rounded, "train_sampling_strategy": "sequential"})
            return KTOTrainer(model=model, ref_model=ref_model, args=config, **data)
        if loss.name == "orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            return _counting_pairs(ORPOTrainer)(model=model, args=ORPOConfig(**common), **data)
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        return _counting_pairs(CPOTrainer)(model=model, args=CPOConfig(**common, loss_type="simpo", cpo_alpha=0.0),
                                           **data)


def _quiet_steps(trainer):
    """peft asks transformers 5 for the deprecated ``is_gradient_checkpointing`` at every step of trl's preference
    trainers: not the user's concern. Silenced while the trainer trains and evaluates, and nowhere else (a
    process-wide filter would outlive the run, in the library user's process)."""
    import functools
    import warnings

    def quietly(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                return method(*args, **kwargs)
        return call

    trainer.train, trainer.evaluate = quietly(trainer.train), quietly(trainer.evaluate)
    return trainer


def warn_cut(dataset, given: int, max_length: int, split: str) -> None:
    """Say how many of the ``given`` rows DPO and KTO drop (their prompt alone fills ``max_length``: trl filters them
    out) and how many lose answer tokens (their collators cut prompt + answer at ``max_length``, keeping the start).
    ORPO's and SimPO's trainers cut while tokenizing and warn themselves."""
    columns = getattr(dataset, "column_names", None) or []
    answers = [c for c in ("chosen_ids", "rejected_ids", "completion_ids") if c in columns]
    if "prompt_ids" not in columns or not answers or not distributed.is_main():
        return
    if len(dataset) < given:
        log.warning("%d of %d %s rows are left out: the prompt alone fills task.max_length = %d tokens, leaving no "
                    "answer to learn from (trl drops them)", given - len(dataset), given, split, max_length)
    prompts = [len(ids) for ids in dataset["prompt_ids"]]
    longest = [max(lengths) for lengths in zip(*([len(ids) for ids in dataset[c]] for c in answers))]
    cut = sum(p + a > max_length for p, a in zip(prompts, longest))
    if cut:
        log.warning("%d of %d %s rows are cut at task.max_length = %d tokens (prompt + answer, the end goes)",
                    cut, len(prompts), split, max_length)
