"""oneDNN's memory for low-precision matmuls on a CPU: a fixed part, then a share per distinct matmul shape.

Under bf16/fp16 on a CPU every matmul runs through oneDNN, which builds (JIT-compiles) a primitive per distinct
shape and keeps it in its primitive cache (1,024 entries by default); fp32 matmuls go to MKL's sgemm, which keeps
far less (a 576 -> 1,536 linear over 300 row counts: 35 MiB in fp32, 683 MiB in bf16; docs/defaults.md).
Measured with ``benchmarks/planner/kernels.py`` (2-core AMD EPYC, Zen 4, AVX512-BF16, no AMX, torch 2.13): each
new token count M through a frozen bf16 linear (forward + input gradient: 2 primitives) kept 1.4-1.8 MiB, through
a trained fp32 one under autocast (+ its weight gradient: 3 primitives) 2.1 MiB, about the
same for a 576 x 576 linear as for the 576 x 49,152 LM head: ~0.7 MiB per primitive, not per weight byte.

So a run's kernel memory grows with the shapes it meets: (distinct token counts a pass can have) x (primitives
per count). A bf16 run rounds its pass lengths up to ``training.shape_multiple`` tokens, which bounds the counts
(max_length / 16); chat's padding-free passes meet every rounded length up to ``task.tokens_per_pass`` (and its
LM head every rounded count of labelled rows), packed LM blocks one. Chat LoRA at its defaults on that CPU grew
from 1,567 MiB at step 10 to 1,796 MiB by step 60 and stayed there to step 200 (1,847 MiB with the eval after);
16 lengths x 25 primitives x 0.72 MiB + 40 MiB = 328 MiB, where a flat 64 MiB had been planned.

Not planned: an eval batch of another size than the train batch meets new row counts (forward primitives only;
every shipped recipe's eval phase is planned below its train phase), and the shapes of greedy generation.
"""

from __future__ import annotations

from typing import Any

from .calibration import ONEDNN_BASE_MIB, ONEDNN_PRIMITIVE_MIB, ONEDNN_PRIMITIVE_MIB_BY_KIND

MIB = 2**20


def primitives_per_token_count(shape: Any, foot: Any, trains_base: bool) -> int:
    """Distinct oneDNN primitives per token count: 2 per distinct (in, out) of the frozen linears (forward and the
    input's gradient; 3 where the base trains: the weight's gradient too) and of an LM head, 3 per distinct shape
    of an adapter branch's matmuls (they train)."""
    frozen = {(i, o) for _, i, o in shape.linears}
    if shape.lm_logits and shape.vocab:
        frozen.add((shape.hidden, shape.vocab))
    return len(frozen) * (3 if trains_base else 2) + 3 * len(set(foot.branch_matmul_shapes))


def low_precision_kernels(shape: Any, foot: Any, work: Any, trains_base: bool) -> tuple[float, str | None]:
    """(bytes, note) of oneDNN's kernels on a CPU run in bf16/fp16: nothing for fp32 or on CUDA."""
    if work.device != "cpu" or work.precision == "fp32":
        return 0.0, None
    per_length = primitives_per_token_count(shape, foot, trains_base)
    each = ONEDNN_PRIMITIVE_MIB_BY_KIND.get(work.cpu_kind, ONEDNN_PRIMITIVE_MIB)
    mib = ONEDNN_BASE_MIB + each * per_length * work.pass_lengths
    counts = f"{work.pass_lengths} token count{'s' if work.pass_lengths != 1 else ''}"
    return mib * MIB, (f"oneDNN's {work.precision} kernels: {per_length} matmul primitives x {counts} x "
                       f"{each} MiB + {ONEDNN_BASE_MIB:.0f} MiB")
