"""Hardware profiles: what a machine can do, and the training defaults that suit it.

A profile is a TOML file (``recipes/profiles/<name>.toml``) or ``auto``, which detects this machine.
Keys: ``device`` (cpu|cuda), ``memory_gb``, ``precision`` (fp32|bf16|fp16), ``bnb_4bit`` (4-bit kernels
usable), ``devices``, ``gradient_checkpointing``. The recipe's ``[hardware]`` keys override the profile.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class Hardware:
    name: str
    device: str = "cpu"
    memory_gb: float = 16.0
    precision: str = "fp32"
    bnb_4bit: bool = True
    devices: int = 1
    gradient_checkpointing: bool = False


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 multiply bf16 matrices several times faster than fp32; plain AVX2 does not."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def detect() -> Hardware:
    import psutil
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return Hardware(name=f"auto ({props.name})", device="cuda", memory_gb=props.total_memory / 2**30,
                        precision=precision, bnb_4bit=True, devices=torch.cuda.device_count())
    return Hardware(name=f"auto (cpu, {os.cpu_count()} cores)", device="cpu",
                    memory_gb=psutil.virtual_memory().total / 2**30,
                    precision="bf16" if cpu_has_fast_bf16() else "fp32", bnb_4bit=True)


def profile_path(name: str, recipe_source: str) -> Path:
    candidates = [Path(name)] if name.endswith(".toml") else []
    candidates += [Path(recipe_source).parent / "profiles" / f"{name}.toml", Path("recipes/profiles") / f"{name}.toml"]
    for path in candidates:
        if path.is_file():
            return path
    known = sorted({p.stem for c in candidates for p in c.parent.glob("*.toml")})
    raise UserError(f"unknown hardware profile {name!r} (known: auto, {', '.join(known)})",
                    where=f"{recipe_source}: hardware.profile")


def load_profile(name: str, recipe_source: str) -> Hardware:
    path = profile_path(name, recipe_source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Hardware(name=path.stem, **data)
    except (tomllib.TOMLDecodeError, TypeError) as err:
        raise UserError(f"bad hardware profile: {err}", where=str(path)) from None


def resolve(section, recipe_source: str) -> Hardware:
    """The profile named by ``[hardware]``, with the section's explicit overrides applied."""
    hw = detect() if section.profile == "auto" else load_profile(section.profile, recipe_source)
    if section.precision != "auto":
        hw = replace(hw, precision=section.precision)
    if section.gradient_checkpointing is not None:
        hw = replace(hw, gradient_checkpointing=section.gradient_checkpointing)
    return hw
