"""Save/load shared by the methods built on peft tuners: a standard PEFT adapter folder."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from .base import SavedFiles, reading_artifact

# What peft's ``save_pretrained`` writes and ``PeftModel.from_pretrained`` reads (peft.utils.constants CONFIG_NAME,
# SAFETENSORS_WEIGHTS_NAME): every peft-based method's ``saved_files``.
PEFT_FILES = SavedFiles(config="adapter_config.json", weights="adapter_model.safetensors",
                        what="the adapter's configuration")


def save_peft(model, folder: Path) -> None:
    """The trained (active) adapter only (``PEFT_FILES``): trl's preference trainers add a frozen "ref" copy beside it."""
    model.save_pretrained(folder, selected_adapters=[model.active_adapter])


@contextmanager
def _quiet_peft():
    """peft 0.21 asks transformers 5 for ``is_gradient_checkpointing``, deprecated there: not the user's concern."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def check_tuner(method, folder: Path) -> None:
    """The adapter in ``folder`` is the tuner ``method`` saves (adapter_config.json's ``peft_type`` is
    ``method.peft_type``), checked before any weight is read: peft builds whatever tuner the file names, so an edited
    or swapped file would load another, untrained adapter without a word (LoHa or IA3 on a LoRA run: eval, serve and
    export go on with it), fail deep inside peft (prompt tuning on a LoRA run), or end in a bare KeyError (a type
    peft's registry ``PEFT_TYPE_TO_CONFIG_MAPPING`` does not know). A missing or unreadable file is left to
    ``rundir.check_artifact`` and the loader, which name it."""
    import json

    import peft

    path = Path(folder) / PEFT_FILES.config
    if method.peft_type is None or not path.is_file():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return
    saved = saved if isinstance(saved, dict) else {}
    kind = saved.get("peft_type")
    if not (isinstance(kind, str) and kind in peft.PEFT_TYPE_TO_CONFIG_MAPPING):
        by = saved.get("peft_version")
        by = f", saved by peft {by}" if by and by != peft.__version__ else ""
        raise UserError(f"peft_type {kind!r} is not a tuner peft {peft.__version__} knows{by}: the file was edited or "
                        "comes from another peft", where=str(path))
    if kind != method.peft_type:
        raise UserError(f"peft_type {kind!r}, but method {method.name!r} saves {method.peft_type!r} adapters: the file "
                        "was edited or comes from another run's adapter", where=str(path))


def load_peft(base_model, folder: Path, trainable: bool = False, adapter_name: str = "default"):
    """The saved adapter on ``base_model``; ``trainable``: its weights require gradients (continued training)."""
    from peft import PeftModel

    with _quiet_peft(), reading_artifact(folder):
        model = PeftModel.from_pretrained(base_model, str(folder), adapter_name=adapter_name, is_trainable=trainable)
    return align_token_outputs(model)


def attach_peft(model, folder: Path, adapter_name: str) -> None:
    """Another saved adapter on a loaded peft ``model``, as ``adapter_name`` (serving several runs on one base)."""
    with _quiet_peft(), reading_artifact(folder):
        model.load_adapter(str(folder), adapter_name=adapter_name)


def load_peft_trainable(base_model, folder: Path):
    return load_peft(base_model, folder, trainable=True)


def merge_peft(model, load_base=None):
    """Fold the adapter into the base weights (peft's ``merge_and_unload``): a plain transformers model."""
    return model.merge_and_unload()


# Why prompt-learning tuners cannot merge (prompt, prefix, p-tuning share it).
PROMPT_NO_MERGE = ("prompt-learning methods (prompt, prefix, ptuning) prepend learned virtual tokens or key/values "
                   "at run time: there are no weights to merge, so no merged, GGUF or ONNX model; use the run's "
                   "adapter/ with peft")


def peft_model(model, config):
    """peft's model for ``config``, with the task head (``anatomy.head_module_names``) trained whole and saved
    (peft's ``modules_to_save``; left alone, peft saves only modules named ``classifier`` or ``score``) and, where
    the tuner has ``exclude_modules`` and the method left it unset, kept out of the adapted layers ("all-linear"
    would otherwise adapt the head it also trains whole)."""
    from peft import get_peft_model

    from ..anatomy import head_module_names

    heads = head_module_names(model)
    if heads and hasattr(config, "exclude_modules") and config.exclude_modules is None:
        config.exclude_modules = heads
    if heads and hasattr(config, "modules_to_save"):
        config.modules_to_save = [*(config.modules_to_save or []),
                                  *(h for h in heads if h not in (config.modules_to_save or []))]
    with _quiet_peft():
        model = get_peft_model(model, config)
    for each in model.peft_config.values():  # peft appends its defaults for the task type: ["classifier", "score"]
        if getattr(each, "modules_to_save", None):
            each.modules_to_save = list(dict.fromkeys(each.modules_to_save))  # saved once each in adapter_config.json
    return align_token_outputs(model)


def align_token_outputs(model):
    """Make prompt/p-tuning usable for token classification.

    peft prepends ``num_virtual_tokens`` soft tokens to the input embeddings but passes the labels through
    unchanged, so a token-classification head sees ``n + virtual`` positions against ``n`` labels and the
    loss fails. Hooks on the wrapped transformers model give the virtual positions the ignore label (-100)
    and drop their logits, so labels, logits and the caller's input line up again.
    """
    config = model.active_peft_config
    if not (config.is_prompt_learning and str(config.task_type) == "TOKEN_CLS"
            and str(config.peft_type) != "PREFIX_TUNING"):
        return model
    virtual = config.num_virtual_tokens

    def pad_labels(_module, args, kwargs):
        labels, embeds = kwargs.get("labels"), kwargs.get("inputs_embeds")
        if labels is not None and embeds is not None and labels.shape[1] + virtual == embeds.shape[1]:
            kwargs["labels"] = _left_pad(labels, virtual)
        return args, kwargs

    def drop_virtual(_module, _args, kwargs, output):
        embeds = kwargs.get("inputs_embeds")
        if embeds is not None and getattr(output, "logits", None) is not None and output.logits.shape[1] == embeds.shape[1]:
            output.logits = output.logits[:, virtual:]
        return output

    model.base_model.register_forward_pre_hook(pad_labels, with_kwargs=True)
    model.base_model.register_forward_hook(drop_virtual, with_kwargs=True)
    return model


def _left_pad(labels, count: int):
    import torch

    return torch.cat([labels.new_full((labels.shape[0], count), -100), labels], dim=1)
