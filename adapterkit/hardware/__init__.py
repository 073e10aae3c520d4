"""Hardware: profiles (``profiles.py``) and detection of this machine (``detect.py``), and ``resolve``, the
hardware a recipe's ``[hardware]`` section names. The memory estimate lives in ``memory/estimate.py``."""

from __future__ import annotations

import os
from dataclasses import replace

from .detect import cpu_flags, cpu_has_fast_bf16, cpu_model, detect
from .profiles import Hardware, known_profiles, load_profile, profile_path


def resolve(section, recipe_source: str, task: str | None = None) -> Hardware:
    """The profile named by ``[hardware]``, with the section's explicit overrides applied; ``auto`` detects this
    machine, and its precision may depend on the ``task`` (``precision.RULES``)."""
    if section.profile == "auto":
        hw = detect(task)
    else:
        hw = load_profile(section.profile, recipe_source)
    if section.precision != "auto":
        hw = replace(hw, precision=section.precision)
    if section.gradient_checkpointing is not None:
        hw = replace(hw, gradient_checkpointing=section.gradient_checkpointing)
    devices, nodes = section.devices or hw.devices, section.nodes
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a rank of a torchrun launch: its world is the real one
        devices = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        nodes = int(os.environ["WORLD_SIZE"]) // devices
    return replace(hw, devices=devices, nodes=nodes, cpu_offload=section.cpu_offload or hw.cpu_offload,
                   strategy=section.strategy if section.strategy != "auto" else hw.strategy,
                   timeout_minutes=section.timeout_minutes)

__all__ = ["Hardware", "cpu_flags", "cpu_has_fast_bf16", "cpu_model", "detect", "known_profiles", "load_profile",
           "profile_path", "resolve"]
