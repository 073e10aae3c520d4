"""Which architectures x methods x tasks adapterkit supports: one table, read by the CI matrix
(``tests/test_architecture_matrix.py`` trains, saves and reloads every supported cell and checks every
refused one is refused in preflight), by ``adapterkit methods --models`` and by README's "Supported
architectures" section.

``TINY`` holds, per architecture, a tiny config (2 layers, width <= 64) and the packaged tokenizer whose
ids it must cover; the verdict of each cell comes from the same preflight rules a run applies
(``plan.preflight_refusal``: the task's model class exists, the method's and the task's own checks), from
the config alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENCODER_TOKENIZER = "builtin:minilm-l6"  # BERT WordPiece, 30,522 ids; [SEP] (102) ends every row once
DECODER_TOKENIZER = "builtin:smollm2-135m-instruct"  # 49,152 ids and a chat template


@dataclass(frozen=True)
class Tiny:
    tokenizer: str
    tasks: tuple[str, ...]  # the tasks the matrix trains it on (each must have the task's model class)
    config: dict[str, Any] = field(default_factory=dict)
    save_as: str = "AutoModel"  # the Auto class the checkpoint is saved from (its keys are what loaders see)


# The lm task uses the causal-LM class and the methods' rules exactly as chat does: it is no extra row.
ENC_TASKS, DEC_TASKS = ("classification", "ner"), ("chat", "classification")
SEQ2SEQ_TASKS = ("classification", "chat", "seq2seq")
_ENC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128, pad_token_id=0)
_DEC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
            max_position_embeddings=256, head_dim=8)
_SEQ2SEQ_IDS = dict(pad_token_id=0, eos_token_id=102, bos_token_id=101, decoder_start_token_id=0)

TINY: dict[str, Tiny] = {
    # encoders: classification + ner
    "bert": Tiny(ENCODER_TOKENIZER, ENC_TASKS, _ENC),
    "roberta": Tiny(ENCODER_TOKENIZER, ENC_TASKS, {**_ENC, "max_position_embeddings": 130}),
    "xlm-roberta": Tiny(ENCODER_TOKENIZER, ENC_TASKS, {**_ENC, "max_position_embeddings": 130}),
    "electra": Tiny(ENCODER_TOKENIZER, ENC_TASKS, {**_ENC, "embedding_size": 32}),
    "deberta-v2": Tiny(ENCODER_TOKENIZER, ENC_TASKS, _ENC),
    "distilbert": Tiny(ENCODER_TOKENIZER, ENC_TASKS, dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                               max_position_embeddings=128, pad_token_id=0)),
    "modernbert": Tiny(ENCODER_TOKENIZER, ENC_TASKS, {**_ENC, "global_attn_every_n_layers": 2, "local_attention": 16,
                                           "bos_token_id": 101, "eos_token_id": 102, "sep_token_id": 102,
                                           "cls_token_id": 101}),
    # decoders: chat (+ classification where a ForSequenceClassification exists)
    "gpt2": Tiny(DECODER_TOKENIZER, DEC_TASKS, dict(n_embd=32, n_layer=2, n_head=2, n_positions=256), "AutoModelForCausalLM"),
    "llama": Tiny(DECODER_TOKENIZER, DEC_TASKS, {**_DEC, "tie_word_embeddings": True}, "AutoModelForCausalLM"),
    "mistral": Tiny(DECODER_TOKENIZER, DEC_TASKS, {**_DEC, "tie_word_embeddings": False}, "AutoModelForCausalLM"),
    "qwen2": Tiny(DECODER_TOKENIZER, DEC_TASKS, _DEC, "AutoModelForCausalLM"),
    "qwen3": Tiny(DECODER_TOKENIZER, DEC_TASKS, _DEC, "AutoModelForCausalLM"),
    "phi3": Tiny(DECODER_TOKENIZER, DEC_TASKS, {**_DEC, "pad_token_id": 2}, "AutoModelForCausalLM"),
    "gemma2": Tiny(DECODER_TOKENIZER, DEC_TASKS, _DEC, "AutoModelForCausalLM"),
    "gemma3_text": Tiny(DECODER_TOKENIZER, DEC_TASKS, {**_DEC, "sliding_window": 16}, "AutoModelForCausalLM"),
    "gpt_neox": Tiny(DECODER_TOKENIZER, DEC_TASKS, dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                             intermediate_size=64, max_position_embeddings=256),
                     "AutoModelForCausalLM"),
    "opt": Tiny(DECODER_TOKENIZER, DEC_TASKS, dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                                        word_embed_proj_dim=32, max_position_embeddings=256), "AutoModelForCausalLM"),
    "falcon": Tiny(DECODER_TOKENIZER, DEC_TASKS, dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
                   "AutoModelForCausalLM"),
    # encoder-decoders: seq2seq and classification (chat is refused)
    "t5": Tiny(ENCODER_TOKENIZER, SEQ2SEQ_TASKS, dict(d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2, **_SEQ2SEQ_IDS),
               "AutoModelForSeq2SeqLM"),
    "bart": Tiny(ENCODER_TOKENIZER, SEQ2SEQ_TASKS, dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                                         decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                         max_position_embeddings=512, **_SEQ2SEQ_IDS), "AutoModelForSeq2SeqLM"),
}


# peft tuners whose layers peft builds the same way on every architecture (LyCORIS, VeRA, AdaLoRA, orthogonal):
# to keep CI short the matrix trains them on these architectures only; their other cells pass the same preflight
# rules and are marked "(✓)" in the table. The method-contract test trains each of them on every task.
SAMPLED_METHODS = ("adalora", "loha", "lokr", "vera", "oft", "boft")
SAMPLED_ARCHITECTURES = ("bert", "llama", "t5")


def trained_in_ci(model_type: str, method_name: str) -> bool:
    """Whether the CI matrix trains this architecture x method (its verdict is preflight's either way)."""
    return method_name not in SAMPLED_METHODS or model_type in SAMPLED_ARCHITECTURES


def tiny_config(model_type: str, vocab_size: int | None = None):
    """The table's config for ``model_type`` (``vocab_size``: the tokenizer's size; default 49,152)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, vocab_size=vocab_size or 49152, **TINY[model_type].config)


def cell(model_type: str, method_name: str, task_name: str, config=None) -> str | None:
    """None if the cell is supported, else the one-line reason preflight refuses it with."""
    from .methods import METHODS
    from .plan import preflight_refusal
    from .tasks import TASKS

    method, task = METHODS.get(method_name), TASKS.get(task_name)
    if method.needs.tasks is not None and task_name not in method.needs.tasks:
        return f"method {method_name!r} does not suit task {task_name!r}"
    refusal = preflight_refusal(method, method.options(), task, task.options(), config or tiny_config(model_type))
    return refusal[0] if refusal else None


def has_head(model_type: str, task_name: str, config=None) -> bool:
    """The architecture has a model class for the task (else the task is no row of the table)."""
    from .plan import head_reason
    from .tasks import TASKS

    return head_reason(TASKS.get(task_name), config or tiny_config(model_type)) is None


def support_table() -> dict[str, dict[str, dict[str, str | None]]]:
    """{model_type: {task: {method: None | reason}}}, for every architecture in ``TINY`` and each of its
    ``tasks`` it has a model class for (T5 has no causal LM: no chat row; BART's BartForCausalLM is one, and
    the chat task itself refuses it)."""
    from .methods import METHODS
    table = {}
    for model_type in TINY:
        config = tiny_config(model_type)
        table[model_type] = {task: {m: cell(model_type, m, task, config) for m in METHODS.names()}
                             for task in TINY[model_type].tasks if has_head(model_type, task, config)}
    return table


def markdown_table() -> str:
    """The README table: one row per architecture and task with a head; ✓ supported (trained in CI), (✓) supported
    and passing preflight but not trained in CI (``SAMPLED_METHODS``), ✗ refused in preflight."""
    from .methods import METHODS

    methods = METHODS.names()
    lines = ["| architecture | task | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for model_type, tasks in support_table().items():
        for task, verdicts in tasks.items():
            marks = ["✗" if verdicts[m] is not None else "✓" if trained_in_ci(model_type, m) else "(✓)" for m in methods]
            lines.append(f"| {model_type} | {task} | " + " | ".join(marks) + " |")
    return "\n".join(lines)
