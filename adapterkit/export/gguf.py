"""``--format gguf``: chat runs on llama-architecture models (SmolLM2 is one) as one GGUF file for
llama.cpp / Ollama, plus an Ollama ``Modelfile``.

Written with the ``gguf`` package, after llama.cpp's ``convert_hf_to_gguf.py``: tensor names from
``gguf.get_tensor_name_map`` (``token_embd``, ``blk.N.attn_q``, ...), q/k projection rows permuted the way
llama.cpp's rotary embedding expects, ``llama.*`` hyper-parameters, a BPE (gpt2-style) tokenizer as
``tokenizer.ggml.*`` with merges, special ids and ``tokenizer.chat_template``. Norms stay F32; matrices are
F16, BF16 or Q8_0 (``gguf.quants.quantize``; a row length not divisible by 32 falls back to F16).

The check reads the file back with transformers (``from_pretrained(folder, gguf_file=...)``, which
dequantizes and un-permutes), so a wrong permutation or a wrong name fails it.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from . import Format, Source
from .check import Tolerance, torch_runner

DTYPES = ("f16", "q8_0", "bf16")
# Measured on SmolLM2-135M chat LoRA (8 eval conversations): f16 +0.07% loss, max |Δlogit| 0.13% of the largest
# logit; q8_0 +0.12%, 3.9% (the max over 49k logits per token is an extreme value); q/k not permuted: +139%, 95%.
TOLERANCES = {"f16": Tolerance(loss_increase=0.01, max_rel_logit=0.02),
              "bf16": Tolerance(loss_increase=0.03, max_rel_logit=0.15),
              "q8_0": Tolerance(loss_increase=0.03, max_rel_logit=0.15)}


def filename(dtype: str) -> str:
    return f"model-{dtype}.gguf"


def _types(dtype: str):
    import gguf

    Q = gguf.GGMLQuantizationType
    return {"f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16), "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
            "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)}[dtype]


def permute(weights, n_head: int, n_head_kv: int | None):
    """llama.cpp's q/k row order (convert_hf_to_gguf.py LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tokenizer_json(folder: Path) -> dict:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise UserError("the run's tokenizer has no tokenizer.json (a fast BPE tokenizer): --format gguf writes "
                        "gpt2-style BPE tokenizers only; use --format merged", where=str(folder))
    data = json.loads(path.read_text(encoding="utf-8"))
    if (data.get("model") or {}).get("type") != "BPE" or "ByteLevel" not in json.dumps(data.get("pre_tokenizer")):
        raise UserError("the run's tokenizer is not a byte-level BPE (gpt2-style) tokenizer, the only kind "
                        "--format gguf writes; use --format merged", where=str(folder))
    return data


def pre_tokenizer(data: dict) -> str:
    """llama.cpp's pre-tokenizer name: digits split one by one ('smollm') or plain GPT-2 byte-level regex."""
    text = json.dumps(data.get("pre_tokenizer"))
    return "smollm" if '"individual_digits": true' in text else "gpt2"


def add_tokenizer(writer, tokenizer, folder: Path, vocab_size: int) -> None:
    import gguf

    data = _tokenizer_json(folder)
    vocab = {i: t for t, i in tokenizer.get_vocab().items()}
    added = getattr(tokenizer, "added_tokens_decoder", {})
    tokens, types = [], []
    for i in range(vocab_size):
        if i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        elif i in vocab:
            tokens.append(vocab[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(data))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
    if tokenizer.chat_template:
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer)


def add_hparams(writer, config, name: str, file_type) -> None:
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise UserError(f"rope scaling {rope.get('rope_type')!r} is not written by --format gguf yet; use "
                        "--format merged")
    heads = config.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(getattr(config, "head_dim", None) or config.hidden_size // heads)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads or heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)


def add_tensors(writer, model, dtype: str) -> None:
    import gguf
    import numpy as np

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    matrix_type, _ = _types(dtype)
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight" and config.tie_word_embeddings:
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"no GGUF name for tensor {key!r}; --format gguf writes plain llama models")
        data = tensor.detach().float().numpy()
        if name.endswith("attn_q.weight"):
            data = permute(data, config.num_attention_heads, config.num_attention_heads)
        elif name.endswith("attn_k.weight"):
            data = permute(data, config.num_attention_heads, config.num_key_value_heads)
        if data.ndim == 1:
            writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
        elif matrix_type == gguf.GGMLQuantizationType.F16 or data.shape[-1] % 32:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, matrix_type), raw_dtype=matrix_type)


def write_gguf(model, tokenizer, tokenizer_folder: Path, path: Path, dtype: str, name: str) -> None:
    with _quiet("gguf"):  # "This GGUF file is for Little Endian only", "Adding 48900 merge(s)", ...
        _write_gguf(model, tokenizer, tokenizer_folder, path, dtype, name)


def _write_gguf(model, tokenizer, tokenizer_folder: Path, path: Path, dtype: str, name: str) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    add_hparams(writer, model.config, name, _types(dtype)[1])
    add_tokenizer(writer, tokenizer, tokenizer_folder, model.config.vocab_size)
    add_tensors(writer, model, dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write(source: Source, output: Path, dtype: str) -> list[str]:
    from . import merged
    from .modelfile import modelfile

    model = merged.merge_run(source)
    _tokenizer_json(source.artifact)  # refuse a tokenizer GGUF cannot hold before the work
    write_gguf(model, source.tokenizer, source.artifact, output / filename(dtype), dtype,
               name=f"{source.plan.recipe.name} ({source.plan.method.name})")
    (output / "Modelfile").write_text(modelfile(source.tokenizer, filename(dtype)), encoding="utf-8")
    return sorted(p.name for p in output.iterdir() if not p.name.startswith("."))


def load(source: Source, output: Path, dtype: str):
    import warnings

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Converting and de-quantizing GGUF tensors..."
    try:
        with _quiet("transformers"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_pretrained(output, gguf_file=filename(dtype), dtype=torch.float32)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return torch_runner(model.eval())


@contextmanager
def _quiet(name: str):
    """A library's own INFO chatter off while it works (warnings and errors still show)."""
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


FORMAT = Format(
    name="gguf",
    summary="chat runs on llama models as one GGUF file (f16, q8_0, bf16) for llama.cpp / Ollama, + Modelfile",
    dtypes=DTYPES,
    write=write,
    load=load,
    tolerance=TOLERANCES.__getitem__,
    heads=("AutoModelForCausalLM",),
    architectures=("llama",),
)
