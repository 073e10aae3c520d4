"""The precision ``hardware.profile = "auto"`` trains in, per kind of device, and the evidence for each.

A CPU flag says what a CPU *can* do in bf16, not whether a training run gets faster or smaller: on a
2-core Xeon with AMX, bf16 autocast made chat LoRA 12% slower and 58% larger than fp32 (issue #17, before
frozen weights were stored in bf16). So each kind's rule is what was measured on it, side by side in one
run, after that fix (``docs/defaults.md``: "Precision"); a kind nobody has measured keeps the choice that
cannot surprise a user, and says so in ``EVIDENCE``. A recipe's ``hardware.precision`` always wins.
"""

from __future__ import annotations

# kind -> (precision "auto" picks, {task: precision where the task's own measurement differs}, why)
RULES: dict[str, tuple[str, dict[str, str], str]] = {
    "cpu-amx": ("fp32", {"classification": "bf16", "ner": "bf16", "chat": "bf16"},
                "an AMX Xeon, 2 pinned cores, side by side (docs/defaults.md, Precision): chat LoRA 1.14x faster in "
                "bf16 and 2% smaller after the bf16 fixes (fp32 adapter sums, shapes rounded to 16 tokens), eval "
                "loss within 0.4% of fp32's (AMD EPYC, same numerics); sentiment LoRA 1.08-1.21x faster and 13% "
                "smaller; issue #17 before the fixes: sentiment 1.3x faster at the same macro-F1. Other tasks "
                "(lm, seq2seq, preference) are unmeasured there and stay fp32"),
    "cpu-avx512-bf16": ("fp32", {"classification": "bf16", "ner": "bf16", "chat": "bf16", "lm": "bf16",
                                 "preference": "bf16"},
                        "measured on a 2-core AMD EPYC (Zen 4): encoder LoRA (sentiment, NER) trains 1.25-2x faster "
                        "in bf16 at the same eval loss; chat LoRA on SmolLM2, with its adapter sums in fp32 and its "
                        "pass lengths and LM-head rows rounded to 16, 1.39x faster at 100 steps, 9% smaller peak RSS "
                        "and within 0.2% of fp32's eval loss; lm_lora and chat_dpo at their defaults, side by side, "
                        "1.52x and 1.27x faster, 28% and 26% smaller, eval loss +0.04% and -0.5% (docs/defaults.md, "
                        "Precision); seq2seq is unmeasured in bf16 and stays fp32"),
    "cpu": ("fp32", {}, "no bf16 matrix instructions: a bf16 matmul runs at ~1 GFLOP/s"),
    "cuda-bf16": ("bf16", {}, "bf16 autocast with a bf16-stored frozen base, the usual CUDA practice: 0.65x of fp32's "
                              "GPU memory for chat LoRA on an H200; on that 135M model the step is bound by kernel "
                              "launches and bf16 ran 2.3x slower than fp32 (cuDNN attention's per-shape plans, now "
                              "left out: hardware/attention.py; not re-measured)"),
    "cuda": ("fp16", {}, "no bf16 on this GPU (pre-Ampere): fp16 autocast, as peft and transformers recommend"),
}


def cpu_kind(flags: set[str]) -> str:
    """``cpu-amx`` (AMX tiles), ``cpu-avx512-bf16`` (AVX512-BF16 only) or ``cpu``, from /proc/cpuinfo flags."""
    if "amx_bf16" in flags:
        return "cpu-amx"
    if "avx512_bf16" in flags:
        return "cpu-avx512-bf16"
    return "cpu"


def auto_precision(kind: str, task: str | None = None) -> str:
    default, per_task, _ = RULES[kind]
    return per_task.get(task, default) if task else default


def evidence(kind: str) -> str:
    return RULES[kind][2]
