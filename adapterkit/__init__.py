"""adapterkit: parameter-efficient fine-tuning with one registry of methods and one recipe format.

    import adapterkit
    model = adapterkit.wrap(model, "lora", r=8)
    adapterkit.save(model, "my-adapter")  # later: adapterkit.load(base_model, "my-adapter")
    result = adapterkit.run("recipes/sentiment_lora.toml", overrides={"train.max_steps": 20})

Heavy libraries (torch, transformers, peft) are imported only when a function needs them.
"""

from __future__ import annotations

import logging

from .errors import RunInterrupted, TrainingFailed, UserError, in_library_terms
from .methods import METHODS
from .plan import load_recipe as _load_recipe
from .recipe import Recipe
from .tasks import TASKS
from .wrap import wrap
from .wrapped import load, save

__version__ = "0.1.0"

# bitsandbytes logs, when it is imported on a CPU with AVX512-BF16, that it could not fetch an optional kernel
# from the hub ("Failed to load CPU gemm_4bit_forward"); its own fallback is used, nothing concerns the user.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward"))


def load_recipe(path, overrides=None):
    """Read and validate a recipe file (or re-validate a Recipe) with ``overrides`` applied; returns the Recipe."""
    with in_library_terms():
        return _load_recipe(path, overrides)


def run(recipe, *, overrides=None, output=None, overwrite=False, force=False, callbacks=(), progress=True):
    """Train and evaluate a recipe (a path or a Recipe, with ``overrides``: {"train.max_steps": 20} or
    ["train.max_steps=20"]); returns a RunResult (metrics, run_dir, info). ``callbacks``: extra
    ``transformers.TrainerCallback``s for the run's trainer; ``progress=False``: no progress bars. Its errors
    (UserError) name these arguments (``overwrite=True``), not the command line's flags."""
    from .api import run as _run

    with in_library_terms():
        return _run(recipe, overrides=overrides, output=output, overwrite=overwrite, force=force,
                    callbacks=tuple(callbacks), progress=progress)


__all__ = ["METHODS", "TASKS", "Recipe", "RunInterrupted", "TrainingFailed", "UserError", "load", "load_recipe", "run",
           "save", "wrap", "__version__"]
