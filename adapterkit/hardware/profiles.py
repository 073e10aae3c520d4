"""Hardware profiles: what a machine can do, and the training defaults that suit it.

A profile is a TOML file (``recipes/profiles/<name>.toml``) or ``auto``, which detects this machine.
Keys: ``device`` (cpu|cuda), ``memory_gb`` (GiB per device: the planner's budget), ``dtypes`` (compute
dtypes the device supports), ``precision`` (fp32|bf16|fp16, the default), ``bnb_4bit`` (bitsandbytes
4-bit kernels usable), ``devices`` (per node),
``strategy``, ``cpu_offload``, and defaults a recipe may override: ``gradient_checkpointing``,
``batch_size``, ``grad_accum``. The recipe's ``[hardware]`` keys override the profile, and keys the
recipe's ``[train]`` sets explicitly win over the profile's batch defaults.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

SHIPPED = Path(__file__).resolve().parents[2] / "recipes" / "profiles"  # in a source checkout


@dataclass(frozen=True)
class Hardware:
    name: str
    device: str = "cpu"
    memory_gb: float = 16.0
    precision: str = "fp32"
    bnb_4bit: bool = True
    devices: int = 1
    gradient_checkpointing: bool = False
    dtypes: tuple[str, ...] = ("fp32", "bf16", "fp16")
    batch_size: int | None = None  # default train.batch_size for recipes that do not set one
    grad_accum: int | None = None  # default train.grad_accum for recipes that do not set one
    nodes: int = 1  # machines (world size = nodes x devices)
    strategy: str = "auto"  # auto | ddp | fsdp | deepspeed-zero2 | deepspeed-zero3 (memory/sharding.py)
    cpu_offload: bool = False  # sharded strategies keep parameters/optimizer state in CPU RAM
    timeout_minutes: float = 10.0  # collective time-out: a rank that died ends the others after this

    @property
    def world_size(self) -> int:
        return self.nodes * self.devices


def profile_dirs(recipe_source: str) -> list[Path]:
    return [Path(recipe_source).parent / "profiles", Path("recipes/profiles"), SHIPPED]


def known_profiles(recipe_source: str = "<memory>") -> list[str]:
    return sorted({p.stem for d in profile_dirs(recipe_source) for p in d.glob("*.toml")})


def profile_path(name: str, recipe_source: str) -> Path:
    candidates = [Path(name)] if name.endswith(".toml") else []
    candidates += [folder / f"{name}.toml" for folder in profile_dirs(recipe_source)]
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(f"unknown hardware profile {name!r} (known: auto, {', '.join(known_profiles(recipe_source))})",
                    where=f"{recipe_source}: hardware.profile")


def load_profile(name: str, recipe_source: str = "<memory>") -> Hardware:
    path = profile_path(name, recipe_source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if "dtypes" in data:
            data["dtypes"] = tuple(data["dtypes"])
        hw = Hardware(name=path.stem, **data)
    except (tomllib.TOMLDecodeError, TypeError) as err:
        raise UserError(f"bad hardware profile: {err}", where=str(path)) from None
    if hw.device not in ("cpu", "cuda") or hw.precision not in hw.dtypes or hw.memory_gb <= 0:
        raise UserError(f"bad hardware profile: device must be cpu|cuda, precision one of dtypes {list(hw.dtypes)}, "
                        "memory_gb > 0", where=str(path))
    return hw
