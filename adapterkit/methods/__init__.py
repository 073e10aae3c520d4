"""The method registry: the built-in methods listed here, plus entry points in ``adapterkit.methods``.

A third-party package registers a method with, in its pyproject.toml::

    [project.entry-points."adapterkit.methods"]
    mymethod = "mypkg.mymethod:METHOD"

where ``METHOD`` is an ``adapterkit.methods.base.Method``.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Method, MethodOptions, Needs, SavedFiles, WrapContext


def _builtin() -> list[Method]:
    from . import adalora, boft, bottleneck, freeze, full, ia3, loha, lokr, lora, oft, prefix, prompt, ptuning, qlora, vera

    return [m.METHOD for m in (lora, qlora, adalora, loha, lokr, vera, oft, boft, prefix, prompt, ptuning, ia3,
                               bottleneck, full, freeze)]


METHODS: Registry[Method] = Registry("method", "adapterkit.methods", _builtin)

__all__ = ["METHODS", "Method", "MethodOptions", "Needs", "SavedFiles", "WrapContext"]
