"""transformers' ``Conv1D`` (GPT-2's and GPT's linear layers, weight stored transposed): which architectures
build it, and a preflight refusal for the peft tuners that cannot adapt it.

LoHa, LoKr, VeRA, OFT and BOFT (peft 0.21) fail on a ``Conv1D`` target with a raw TypeError or "No layers types
compatible" after the model has loaded; LoRA and IA3 adapt it (``fan_in_fan_out``). Whether an architecture
builds ``Conv1D`` is read from the model itself, built from the config on the meta device (no memory, no
weights), once per model type.
"""

from __future__ import annotations

import logging

_BUILDS_CONV1D: dict[str, bool] = {}


def builds_conv1d(config) -> bool:
    """Whether ``config``'s model has transformers ``Conv1D`` layers (False if it cannot be built from the config
    alone, e.g. remote code: peft's own error then stands)."""
    key = config.model_type
    if key not in _BUILDS_CONV1D:
        _BUILDS_CONV1D[key] = _probe(config)
    return _BUILDS_CONV1D[key]


def _probe(config) -> bool:
    import torch
    from transformers import AutoModel
    from transformers.pytorch_utils import Conv1D
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # config checks of a tiny or odd config are not the user's concern here
    try:
        with torch.device("meta"):
            model = AutoModel.from_config(config)
    except Exception as err:  # noqa: BLE001 (any failure to build: not known to build Conv1D)
        logging.getLogger("adapterkit").debug("could not build %s on the meta device: %s", config.model_type, err)
        return False
    finally:
        hf_logging.set_verbosity(verbosity)
    return any(isinstance(module, Conv1D) for module in model.modules())


def refuse_conv1d(method: str, config) -> str | None:
    """The one-line refusal of a tuner that cannot adapt ``Conv1D`` layers, or None."""
    if builds_conv1d(config):
        return (f"method {method!r} cannot adapt model type {config.model_type!r}: its linear layers are "
                "transformers' Conv1D, which peft's tuner does not support (use lora or ia3)")
    return None
