"""The method registry: the built-in methods listed here, plus entry points in ``adapterkit.methods``.

A third-party package registers a method with, in its pyproject.toml::

    [project.entry-points."adapterkit.methods"]
    mymethod = "mypkg.mymethod:METHOD"

where ``METHOD`` is an ``adapterkit.methods.base.Method``.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Method, MethodOptions, Needs, WrapContext


def _builtin() -> list[Method]:
    from . import bottleneck, freeze, full, ia3, lora, prefix, prompt, ptuning, qlora

    return [m.METHOD for m in (lora, qlora, prefix, prompt, ptuning, ia3, bottleneck, full, freeze)]


METHODS: Registry[Method] = Registry("method", "adapterkit.methods", _builtin)

__all__ = ["METHODS", "Method", "MethodOptions", "Needs", "WrapContext"]
