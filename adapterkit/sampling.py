"""The order of the training examples: a function of ``train.seed`` and the epoch alone, so that a run resumed from
a checkpoint reads the same batches as the run that was not interrupted.

transformers' ``LengthGroupedSampler`` (``train_sampling_strategy="group_by_length"``, adapterkit's default) and
``RandomSampler`` draw each epoch's permutation from torch's global random state at the moment the epoch starts.
That state depends on everything drawn before (dropout masks of the epochs already trained); a resumed run restores
it only after its first batch, so from the second epoch on it would train on another permutation than the run it
continues (a different loss curve and different weights, with nothing said). ``seed_by_epoch`` gives the Trainer's
sampler a generator seeded with ``seed + epoch`` at the start of every epoch: the Trainer calls ``set_epoch`` on it
(through accelerate's ``DataLoaderShard``, also after ``skip_first_batches``), on one process or several ranks.
"""

from __future__ import annotations

from typing import Any


class EpochSeeded:
    """A sampler whose permutation is drawn from a generator seeded with ``seed + epoch`` (the wrapped sampler's
    ``generator`` attribute, which ``LengthGroupedSampler`` and ``RandomSampler`` both read when iterated)."""

    def __init__(self, sampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        import torch

        self.sampler.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(self.sampler)


def seed_by_epoch(trainer, seed: int) -> None:
    """Make ``trainer``'s training sampler draw each epoch's order from ``seed + epoch`` (see the module); samplers
    that keep their own epoch (``set_epoch``) or draw nothing (sequential, a stream) are left as they are."""
    built = trainer._get_train_sampler  # the Trainer's hook that builds the sampler (subclasses override it too)

    def train_sampler(*args: Any, **kwargs: Any):
        sampler = built(*args, **kwargs)
        if sampler is None or not hasattr(sampler, "generator") or hasattr(sampler, "set_epoch"):
            return sampler
        return EpochSeeded(sampler, seed)

    trainer._get_train_sampler = train_sampler
