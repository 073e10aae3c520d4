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
    "cpu-amx": ("fp32", {"classification": "bf16", "ner": "bf16", "chat": "bf16", "lm": "bf16", "preference": "bf16"},
                "the lent machine's AMX Xeon, 2 pinned cores per run, side by side, random weights with the real shapes "
                "(docs/defaults.md, Precision; 2026-11-28): chat LoRA at its defaults 1.13x faster in bf16 and 5% "
                "smaller, eval loss within 0.2% of fp32's (AMD EPYC, real weights, same numerics); sentiment LoRA "
                "1.19x faster and 13% smaller; chat_dpo 1.21x faster and 25% smaller (AMD EPYC: eval loss -0.5%); "
                "lm_lora 25% smaller and ~1.3x faster over the 4 steps its random weights trained before diverging "
                "(AMD EPYC: 1.52x, eval loss +0.04%). seq2seq is unmeasured in bf16 and stays fp32"),
    "cpu-avx512-bf16": ("fp32", {"classification": "bf16", "ner": "bf16", "chat": "bf16", "lm": "bf16",
                                 "preference": "bf16"},
                        "measured on a 2-core AMD EPYC (Zen 4): encoder LoRA (sentiment, NER) trains 1.25-2x faster "
                        "in bf16 at the same eval loss; chat LoRA on SmolLM2, with its adapter sums in fp32 and its "
                        "pass lengths and LM-head rows rounded to 16, 1.39x faster at 100 steps, 9% smaller peak RSS "
                        "and within 0.2% of fp32's eval loss; lm_lora and chat_dpo at their defaults, side by side, "
                        "1.52x and 1.27x faster, 28% and 26% smaller, eval loss +0.04% and -0.5% (docs/defaults.md, "
                        "Precision); seq2seq is unmeasured in bf16 and stays fp32"),
    "cpu": ("fp32", {}, "no bf16 matrix instructions: a bf16 matmul runs at ~1 GFLOP/s"),
    "cuda-bf16": ("bf16", {}, "bf16 autocast with a bf16-stored frozen base, the usual CUDA practice: chat LoRA on an "
                              "H200 (135M, launch-bound) as fast as fp32 (1,060 vs 1,065 tokens/s) at 0.70x its GPU "
                              "memory, once cuDNN's attention (a plan per new shape) was left out: hardware/attention.py; "
                              "before, bf16 ran 2.3x slower"),
    "cuda": ("fp16", {}, "no bf16 on this GPU (pre-Ampere): fp16 autocast, as peft and transformers recommend"),
}


# The /proc/cpuinfo flags that make each kind (what tests and benchmarks pin to plan as another CPU would).
KIND_FLAGS = {"cpu-amx": frozenset({"amx_bf16", "amx_tile", "avx512_bf16"}), "cpu-avx512-bf16": frozenset({"avx512_bf16"}),
              "cpu": frozenset()}


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
