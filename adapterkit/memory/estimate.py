"""Predicted peak memory of a training run, from the model's config alone (no weights are loaded).

``estimate`` turns a model's shape (``memory/shape.py``), a method and a workload into a breakdown in
bytes. Every term and its formula (P = parameters, T = trainable parameters):

* weights     frozen base: P x bytes(dtype the loader uses, ``loading.weights_dtype``); a quantizing
              method stores the backbone's linear weights Q in NF4/FP4: Q x (0.5 + 4/64) bytes (an fp32
              absmax per 64-weight block), with double quantization Q x (0.5 + 1/64 + 4/(64*256)); the
              rest (embeddings, norms, heads) in fp32, as ``prepare_model_for_kbit_training`` leaves it.
* trainable   T x 4 (fp32 adapter weights); part of the weights when the method trains the base.
* gradients   T x 4 (fp32, one per trainable parameter).
* optimizer   AdamW: T x 8 (exp_avg + exp_avg_sq in fp32).
* activations per layer and token, E elements are kept for backward at the activation width (2 bytes
              under bf16/fp16 autocast, 4 in fp32):
                E = ACT_PER_OUT x (sum of out_features of one block's linears) + ACT_PER_HIDDEN x hidden
                    + ACT_PER_IN x (sum of in_features)        if the method keeps linear inputs (Footprint)
                    + ATTN_DROPOUT_PER_SCORE x heads x seq     if the config drops attention probabilities
                    + HIDDEN_DROPOUT_PER_HIDDEN x hidden       if it drops hidden states
              activations = batch x seq x layers x E x width, seq = max_length + virtual tokens (worst
              case: every row max_length long). With activation checkpointing only each block's input is
              kept (tokens x layers x hidden x width) plus one block recomputed (tokens x E x width).
* logits      language-model heads only: tokens x vocab x (width + LOGIT_COPIES x 4): the logits, their
              fp32 log-softmax, its gradient, the logits' gradient and the metrics' temporaries of trl's
              SFTTrainer (classification heads: negligible). A trainer that only takes the model's own loss
              (``Workload.logit_metrics`` off: the lm task's transformers Trainer, ForCausalLMLoss) drops the
              logits with the model's output before backward; its peak is in log-softmax's backward, with
              CE_LOGIT_COPIES fp32 tensors alive (the saved log-softmax, its incoming gradient, the logits'
              fp32 gradient): tokens x vocab x CE_LOGIT_COPIES x 4, in either precision.
              A fused LM head (``Workload.lm_head_tile``: trl's SFTTrainer
              on padded batches) holds one tile at a time: min(tokens, tile rows) x min(vocab, tile columns) x
              (width + FUSED_HEAD_COPIES x 4).
* heap slack  (CPU only, glibc's default allocator) freed heap blocks of short-lived temporaries (the 1-30 MiB
              tensors of a forward/backward pass) stay resident instead of going back to the OS, so RSS
              runs above the live tensors by
                CPU_HEAP_SLACK x activations counted at 4 bytes an element (fp32-sized, in every precision)
                + bytes per out-feature (``branch_slack.py``) x tokens x ``branch_out_features`` (all layers)
              The second part is the LoRA sum's freed outputs per adapted linear:
              measured, LoRA's slack is ~1x its activations, full fine-tuning's, prompt tuning's and
              bottleneck adapters' 0.3-0.6x. Measured, neither part halves under bf16 (glibc keeps half-size
              bf16 blocks resident too; on the benchmark, slack sized from bf16 activations planned every
              non-LoRA bf16 run 2-10% under): the first part is sized as in fp32, the branch part per precision.
              Logits get no slack: blocks above glibc's largest mmap threshold
              (32 MiB; one LM logits tensor is tokens x vocab x 4 bytes) are always unmapped when freed.
              Eval: CPU_HEAP_SLACK x its fp32-sized activations. Constants fitted, see below.
* eval        after training, the eval loop (batch = 2 x train batch unless set, no gradients) holds the
              weights, the optimizer state, one block's activations and logits + log-softmax. Where the task
              read its eval split before loading weights (chat: ``eval_batch_lengths``), the largest real eval
              batch's tokens and scored positions replace the worst case (every row max_length, every
              position scored).
* autocast    under bf16/fp16 autocast, every weight stored in fp32 that a matmul reads is cast on each
              forward pass and the copy kept for backward: the base's linears and LM head when they are
              stored in fp32 (full, freeze), the fp32 adapters and task heads (small). A frozen base stored
              in the compute dtype (``loading.weights_dtype``) needs no copy. Activations: linear outputs
              and inputs at the compute width, the residual stream and norms at the stored weights' width.
* load        (CPU only) the checkpoint file is memory-mapped while loading: when the loader converts or
              quantizes it, file pages (its size on disk) and the converted weights are resident at once,
              and (measured) a quantized one stays so through training: the "mapped checkpoint" term of train
              and eval (a file only converted to bf16 is unmapped after loading).
* kernels     (CPU, bf16/fp16) oneDNN's matmul primitives, per distinct shape and token count (``memory/kernels.py``).
* overhead    CPU: the Python process with torch/transformers/peft/trl/datasets imported, the tokenizer and the dataset
              (PROCESS_BASELINE_MIB, measured), moved by this environment's measured import footprint
              (``hardware/libraries.py``; where it cannot be measured, + CPU_CUDA_LIBRARIES_MIB for a CUDA build of
              torch); CUDA: context + allocator.

peak = max(load, train, eval), with train = weights + trainable + optimizer + max(activations + logits,
gradients) + heap slack + overhead (gradients are freed after each step and grow while backward frees
activations). The per-element constants (ACT_*, *_DROPOUT_*, LOGIT_COPIES, PROCESS_BASELINE_MIB) were
calibrated on CPU (fp32) against saved-tensor counts and the RSS high-water marks of ``benchmarks/planner``
(MiniLM-L6 encoder, SmolLM2-135M decoder) with ``measure.pin_mmap_threshold`` (``ADAPTERKIT_MALLOC=steady``:
RSS follows the live tensors). CPU_HEAP_SLACK, ADAPTER_TEMP_BYTES and FUSED_HEAD_COPIES were then fitted on the
same benchmark, in fp32 and bf16, under glibc's default allocator, which is what ``adapterkit run`` uses unless
told otherwise, so CPU predictions are for the default allocator (with ``ADAPTERKIT_MALLOC=steady`` they
overestimate by the slack term). The same per-element counts are assumed under bf16/fp16 on CUDA, which no
benchmark here has checked; CUDA has no heap-slack term (its caching allocator's slack is in CUDA_OVERHEAD_MIB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .branch_slack import branch_temp_bytes
from .calibration import (  # noqa: F401  (re-exported: the planner's tests and benchmarks read them here)
    ACT_PER_HIDDEN,
    ACT_PER_IN,
    ACT_PER_OUT,
    ATTN_DROPOUT_PER_SCORE,
    CE_LOGIT_COPIES,
    CPU_CUDA_LIBRARIES_MIB,
    CPU_HEAP_SLACK,
    CUDA_OVERHEAD_MIB,
    EVAL_LOGIT_COPIES,
    FUSED_HEAD_COPIES,
    HIDDEN_DROPOUT_PER_HIDDEN,
    LIBRARIES_MIB_AT_CALIBRATION,
    LOGIT_COPIES,
    PROCESS_BASELINE_MIB,
    QUANT_BYTES,
)
from .kernels import low_precision_kernels
from .shape import ModelShape

GIB = 2**30
MIB = 2**20
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Workload:
    batch_size: int
    seq_len: int
    eval_batch_size: int
    precision: str  # compute dtype: fp32 | bf16 | fp16
    device: str  # cpu | cuda
    gradient_checkpointing: bool
    weights_dtype: str  # dtype the loader stores the (non-quantized) base in
    # The eval split's largest batch, when the task read it before loading weights (chat: tokens of the largest
    # padding-free eval row, and its labelled positions, the only ones its LM head scores); None: worst case.
    eval_tokens: int | None = None
    eval_scored: int | None = None
    frozen_reference: bool = False  # a frozen copy of the base is held beside it (preference tuning, full)
    # (tokens, vocabulary entries) of the one logits tile a fused LM head holds at a time (trl's SFTTrainer on
    # padded batches); None: the loss builds the whole logits
    lm_head_tile: tuple[int, int] | None = None
    # the trainer computes metrics from the logits (trl's SFTTrainer: entropy, accuracy), keeping them alive
    # through backward; False: it only takes the model's loss (the lm task's Trainer)
    logit_metrics: bool = True
    fp32_adapter_sums: bool = False  # adapter sums taken in fp32 under autocast (methods/fp32_adapter_sum.py)
    torch_ships_cuda: bool = False  # a CUDA build of torch: its libraries are resident on a CPU run too
    libraries_mib: float | None = None  # CPU: this environment's import footprint, measured (hardware/libraries.py)
    pass_lengths: int = 1  # distinct token counts a pass can have (bf16/fp16 on a CPU: memory/kernels.py)
    # CPU: this machine's kind (hardware.precision.cpu_kind), where constants were measured apart per kind; None: the
    # constants fitted on the AMD EPYC (calibration.py)
    cpu_kind: str | None = None


@dataclass
class Estimate:
    """Bytes per term; ``peak`` is what the plan compares against the budget."""

    terms: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    activations_checkpointed: float = 0.0
    activations_full: float = 0.0
    train: float = 0.0
    eval: float = 0.0
    load: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    offloaded: float = 0.0  # bytes per rank a sharded strategy keeps in CPU RAM (memory/sharding.py)

    @property
    def peak(self) -> float:
        return max(self.train, self.eval, self.load)

    @property
    def phase(self) -> str:
        return max(("train", self.train), ("eval", self.eval), ("load", self.load), key=lambda kv: kv[1])[0]


def autocast_copies(shape: ModelShape, method: Any, foot: Any, work: Workload) -> float:
    """Parameters autocast casts to the compute dtype on each forward pass (their copies live until backward):
    none in fp32; else the fp32 trainable adapters/heads, plus the backbone's linears and the LM head when the
    base is stored in fp32 (full, freeze; a quantized base: only its fp32 LM head)."""
    if work.precision == "fp32":
        return 0.0
    head = shape.vocab * shape.hidden if shape.lm_logits else 0
    if method.quantization is not None:
        return foot.trainable_params + head
    if work.weights_dtype == "fp32":
        return shape.linear_params + head + (0 if method.trains_base else foot.trainable_params)
    return foot.trainable_params


def _per_token(shape: ModelShape, foot: Any, seq: int, width: int, hidden_width: int) -> float:
    """Bytes one token keeps for backward in one block: linear outputs (and inputs) at ``width``, the residual
    stream and norms at ``hidden_width``, dropout masks and outputs (module docstring: activations)."""
    per_token = ACT_PER_OUT * shape.block_out_features * width + ACT_PER_HIDDEN * shape.hidden * hidden_width
    if foot.keeps_linear_inputs:
        per_token += ACT_PER_IN * shape.block_in_features * width
    if shape.attention_dropout:
        per_token += ATTN_DROPOUT_PER_SCORE * shape.heads * seq * width
    if shape.hidden_dropout:
        per_token += HIDDEN_DROPOUT_PER_HIDDEN * shape.hidden * width
    return per_token


def _activations(shape: ModelShape, tokens: int, per_token: float, hidden_width: int) -> tuple[float, float]:
    """(without, with) activation checkpointing: every block's saved tensors, or each block's input plus one
    block recomputed."""
    return tokens * shape.layers * per_token, tokens * (shape.layers * shape.hidden * hidden_width + per_token)


def _logit_rows(tokens: int, vocab: int, work: Workload, copies: float, fused_copies: float):
    """(rows, vocabulary entries, fp32 copies) of the logits held at once: the whole logits, or one fused tile."""
    if work.lm_head_tile is None:
        return tokens, vocab, copies
    rows, cols = work.lm_head_tile
    return min(tokens, rows), min(vocab, cols), fused_copies


def estimate(shape: ModelShape, method: Any, options: Any, work: Workload) -> Estimate:
    """The breakdown for ``method`` (a ``methods.base.Method``) with ``options`` on this workload."""
    from ..methods.base import Footprint

    est = Estimate(total_params=shape.total_params)
    if method.footprint is not None:
        foot = method.footprint(options, shape)
    else:
        foot = Footprint(shape.total_params)
        est.notes["trainable"] = f"method {method.name!r} declares no footprint: assuming every weight trains"
    trainable = foot.trainable_params
    est.trainable_params = trainable

    # Weights: quantized backbone linears + the rest in the loader's dtype (see module docstring).
    wbytes = BYTES[work.weights_dtype]
    if method.quantization is not None:
        q = shape.linear_params
        double = bool(method.quantization(options).get("bnb_4bit_use_double_quant", False))
        weights = q * QUANT_BYTES[double] + (shape.total_params - q) * 4
        est.notes["weights"] = f"{q / 1e6:.0f}M linear weights in 4 bit, {(shape.total_params - q) / 1e6:.0f}M in fp32"
    else:
        weights = shape.total_params * wbytes
        est.notes["weights"] = f"{shape.total_params / 1e6:.0f}M parameters in {work.weights_dtype}"
    est.terms["weights"] = weights
    est.terms["trainable"] = 0.0 if method.trains_base else foot.trainable_params * 4
    est.terms["reference model"] = shape.total_params * wbytes if work.frozen_reference else 0.0
    if work.frozen_reference:
        est.notes["reference model"] = "a frozen copy of the base: the preference loss's reference"
    est.notes["trainable"] = est.notes.get("trainable", f"{trainable / 1e6:.2f}M parameters, fp32")
    est.terms["gradients"] = trainable * 4
    est.terms["optimizer"] = trainable * 8
    est.notes["optimizer"] = "AdamW: 2 fp32 states per trainable parameter"

    # Activations (see module docstring): tokens x layers x per-token bytes. Linear outputs and inputs are kept
    # at the compute width; the residual stream and norms at the stored weights' width (fp32 weights under
    # autocast keep an fp32 residual stream; a bf16-stored base a bf16 one).
    width = BYTES[work.precision]
    hidden_width = 4 if method.quantization is not None else max(width, BYTES[work.weights_dtype])
    seq = work.seq_len + foot.extra_tokens
    per_token = _per_token(shape, foot, seq, width, hidden_width)
    tokens = work.batch_size * seq
    est.activations_full, est.activations_checkpointed = _activations(shape, tokens, per_token, hidden_width)
    act = est.activations_checkpointed if work.gradient_checkpointing else est.activations_full
    # the same activations counted at 4 bytes an element: what the heap slack is sized from (module docstring)
    per_token_fp32 = _per_token(shape, foot, seq, 4, 4)
    act_fp32 = _activations(shape, tokens, per_token_fp32, 4)[1 if work.gradient_checkpointing else 0]
    est.terms["activations"] = act
    est.notes["activations"] = (f"batch {work.batch_size} x {seq} tokens x {shape.layers} layers, "
                                f"checkpointing {'on' if work.gradient_checkpointing else 'off'} "
                                f"(on: {est.activations_checkpointed / MIB:.0f} MiB, off: {est.activations_full / MIB:.0f} MiB)")
    # Autocast (bf16/fp16 compute): a weight stored wider than the compute dtype is cast on every forward and
    # its copy kept for backward; a bf16-stored frozen base needs none, fp32 adapters and heads (small) do.
    est.terms["autocast copies"] = autocast_copies(shape, method, foot, work) * width
    if est.terms["autocast copies"]:
        est.notes["autocast copies"] = f"{work.precision} copies of the fp32 weights the matmuls read"
    logit_tokens, logit_vocab, copies = _logit_rows(tokens, shape.vocab, work, LOGIT_COPIES, FUSED_HEAD_COPIES)
    # the model's own loss only: the logits are dropped before backward, CE_LOGIT_COPIES fp32 tensors at its peak
    per_logit = width + copies * 4 if work.logit_metrics or work.lm_head_tile else CE_LOGIT_COPIES * 4
    est.terms["logits"] = logit_tokens * logit_vocab * per_logit if shape.lm_logits else 0.0
    if shape.lm_logits and work.lm_head_tile:
        est.notes["logits"] = f"fused LM head: one {logit_tokens} x {logit_vocab} tile at a time"
    elif shape.lm_logits and not work.logit_metrics:
        est.notes["logits"] = f"the model's loss: {CE_LOGIT_COPIES:.0f} fp32 logits-sized tensors in backward"
    cuda_libraries = CPU_CUDA_LIBRARIES_MIB if work.torch_ships_cuda and work.libraries_mib is None else 0.0
    shift = work.libraries_mib - LIBRARIES_MIB_AT_CALIBRATION if work.libraries_mib is not None else cuda_libraries
    overhead = (PROCESS_BASELINE_MIB + shift if work.device == "cpu" else CUDA_OVERHEAD_MIB) * MIB
    est.terms["overhead"] = overhead
    kernels, kernels_note = low_precision_kernels(shape, foot, work, method.trains_base or method.footprint is None)
    est.terms["low-precision kernels"] = kernels
    if kernels_note:
        est.notes["low-precision kernels"] = kernels_note
    # CPU: a checkpoint the loader quantizes stays memory-mapped beside the 4-bit weights (measured: QLoRA's RSS = LoRA's
    # - smaller weights + the file); one it only converts to another dtype (an fp32 file stored in bf16) is unmapped
    # after loading (measured, SmolLM2 fp32 -> bf16: 1 MiB of the file left resident); an unconverted one *is* the weights.
    on_disk = shape.checkpoint_bytes or shape.total_params * BYTES[shape.checkpoint_dtype]
    converted = method.quantization is not None or work.weights_dtype != shape.checkpoint_dtype
    est.terms["mapped checkpoint"] = on_disk if work.device == "cpu" and method.quantization is not None else 0.0
    cpu_note = "python + libraries + data (RSS baseline" + (
        f": the libraries took {work.libraries_mib:.0f} MiB at import in this environment)" if work.libraries_mib is not None
        else f"), {cuda_libraries:.0f} MiB of them torch's CUDA libraries" if cuda_libraries else ")")
    est.notes["overhead"] = cpu_note if work.device == "cpu" else "CUDA context + allocator"
    # CPU: glibc keeps freed temporaries resident (module docstring: heap slack); CUDA's allocator is in overhead.
    slack = CPU_HEAP_SLACK if work.device == "cpu" else 0.0
    branch = branch_temp_bytes(foot, work) * tokens * foot.branch_out_features
    est.terms["heap slack"] = slack * act_fp32 + branch
    if work.device == "cpu":
        est.notes["heap slack"] = (f"freed temporaries glibc keeps: {slack:.2f} x fp32-sized activations + "
                                   f"{branch / MIB:.0f} MiB of adapter-branch outputs")
    # Gradients are freed after each optimizer step (zero_grad(set_to_none)) and grow while backward frees
    # activations: the step peaks at the larger of (activations + logits) and gradients, not their sum.
    t = est.terms
    est.train = (t["weights"] + t["reference model"] + t["trainable"] + t["optimizer"]
                 + max(t["activations"] + t["logits"], t["gradients"])
                 + t["autocast copies"] + t["heap slack"] + t["overhead"] + t["mapped checkpoint"] + kernels)

    eval_tokens = work.eval_tokens if work.eval_tokens is not None else work.eval_batch_size * seq
    scored = work.eval_scored if work.eval_scored is not None else eval_tokens
    eval_rows, eval_vocab, eval_copies = _logit_rows(scored, shape.vocab, work, EVAL_LOGIT_COPIES, EVAL_LOGIT_COPIES)
    eval_logits = eval_rows * eval_vocab * (width + eval_copies * 4) if shape.lm_logits else 0.0
    est.eval = (weights + est.terms["reference model"] + est.terms["trainable"] + est.terms["optimizer"]
                + eval_tokens * (per_token + slack * per_token_fp32) + eval_logits + overhead + est.terms["mapped checkpoint"]
                + kernels)
    if work.device == "cpu":
        est.load = (on_disk + (weights if converted else 0.0)) + overhead + est.terms["reference model"]
    return est
