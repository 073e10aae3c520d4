"""The order of the training examples: a function of ``train.seed`` and the epoch alone, so that a run resumed from
a checkpoint reads the same batches as the run that was not interrupted.

transformers' ``LengthGroupedSampler`` (``train_sampling_strategy="group_by_length"``, adapterkit's default) draws
each epoch's permutation from torch's global random state at the moment the epoch starts. That state depends on
everything drawn before (dropout masks of the epochs already trained); a resumed run restores it only after its
first batch, so from the second epoch on it would train on another permutation than the run it continues (a
different loss curve and different weights, with nothing said). ``seed_by_epoch`` gives the Trainer's sampler a
generator seeded with ``seed + epoch`` at the start of every epoch. The epoch is taken from the Trainer's state when
the epoch begins (``on_epoch_begin``, before the epoch's batches are drawn), not from ``set_epoch``: with several
ranks, accelerate's ``skip_first_batches`` (a resumed epoch) wraps the sampler too deep for
``DataLoaderShard.set_epoch`` to reach it, and the resumed epoch would be drawn as epoch 0.
"""

from __future__ import annotations

import math
from typing import Any


class EpochSeeded:
    """A sampler whose permutation is drawn from a generator seeded with ``seed + epoch`` (the wrapped sampler's
    ``generator`` attribute, which ``LengthGroupedSampler`` reads when iterated)."""

    def __init__(self, sampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        import torch

        self.sampler.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(self.sampler)


def seed_by_epoch(trainer, seed: int) -> None:
    """Make ``trainer``'s length-grouped training sampler draw each epoch's order from ``seed + epoch`` (see the
    module). Other samplers are left as they are: ``RandomSampler`` (chat's padding-free batches) becomes accelerate's
    ``SeedableRandomSampler`` (``use_seedable_sampler``), seeded the same way; a stream has none."""
    from transformers import TrainerCallback
    from transformers.trainer_pt_utils import LengthGroupedSampler

    built, made = trainer._get_train_sampler, []  # the Trainer's hook that builds the sampler (subclasses override it)

    def train_sampler(*args: Any, **kwargs: Any):
        sampler = built(*args, **kwargs)
        if not isinstance(sampler, LengthGroupedSampler):  # "random": accelerate's seedable sampler seeds each epoch
            return sampler
        made.append(EpochSeeded(sampler, seed))
        return made[-1]

    class _Epoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            # state.epoch is the fractional epoch of the last step: k.0 when epoch k begins, k.x in a resumed epoch k
            for sampler in made:
                sampler.epoch = math.floor(state.epoch or 0)

    trainer._get_train_sampler = train_sampler
    trainer.add_callback(_Epoch())
