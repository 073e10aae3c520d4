"""What a fine-tuning method is: a record the registry holds. Generic code reads these fields and
never branches on a method's name; a method's own module holds its special cases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import UserError
from ..recipe import Checked
from ..rundir.artifact import SavedFiles


class MethodOptions(Checked):
    """Base for a method's ``[method]`` options: unknown keys are errors, true/false is no number."""


@dataclass(frozen=True)
class WrapContext:
    """What a method may know about the run when it wraps a model."""

    peft_task_type: str  # "CAUSAL_LM" | "SEQ_CLS" | "TOKEN_CLS" | "SEQ_2_SEQ_LM"
    model_path: str  # local folder or hub id the base model came from (tokenizer lives there too)
    gradient_checkpointing: bool = False
    total_steps: int | None = None  # optimizer steps the run will take (AdaLoRA's rank schedule); None: eval only


@dataclass(frozen=True)
class Needs:
    """What a method requires; checked before any model is loaded."""

    packages: tuple[str, ...] = ()  # importable module names, e.g. ("bitsandbytes",)
    tasks: tuple[str, ...] | None = None  # task names it suits; None = every task
    quantization: bool = False  # loads the base model quantized (needs 4-bit kernels)
    injects_past_key_values: bool = False  # prefix-style tuners: no gradient checkpointing (peft #869)
    padded_rows: bool = False  # prompt-learning tuners prepend virtual tokens: chat batches stay padded
    shardable: bool = True  # FSDP / ZeRO-3 can shard the wrapped model (prompt learning: no, strategies.py)
    # its schedule spans the run's optimizer steps (``WrapContext.total_steps``; AdaLoRA's rank budget): a run counts
    # them, ``adapterkit.wrap`` needs its caller's ``total_steps``
    total_steps: bool = False


@dataclass(frozen=True)
class Footprint:
    """What a method adds to a memory plan (``memory/estimate.py`` turns it into bytes)."""

    trainable_params: int  # parameters with gradients and optimizer state
    extra_tokens: int = 0  # virtual tokens prepended to every sequence (soft prompts)
    # Autograd keeps each linear layer's input only where a weight gradient needs it (LoRA's A, full/freeze);
    # methods that train no linear of the backbone (prompts, bottleneck adapters) only pass gradients through.
    keeps_linear_inputs: bool = True
    # Sum of out_features (over all layers) of the linears that carry an adapter branch (LoRA: x@A@B, scaled,
    # added to the base output): per token, its short-lived outputs are freed at once; on CPU they are part
    # of the heap slack (``memory/estimate.py``: ADAPTER_TEMP_BYTES), not of the live activations.
    branch_out_features: int = 0
    # The branch is peft's plain LoRA sum, which a run takes in one addmm outside autocast (methods/fused_lora_sum.py):
    # in fp32 only the base output is freed per adapted linear, not B's output and its scaled copy.
    fused_sum: bool = False
    # Distinct (in, out) shapes of the adapter branch's matmuls (LoRA: x @ A is in -> r, then r -> out): each is a
    # oneDNN primitive per token count under bf16/fp16 on a CPU (``memory/kernels.py``).
    branch_matmul_shapes: tuple[tuple[int, int], ...] = ()


class FootprintEstimate(Protocol):
    def __call__(self, options: Any, shape: Any) -> Footprint:
        """Trainable parameters etc. for a model of this ``memory.shape.ModelShape``, from sizes only."""


class ModelCheck(Protocol):
    def __call__(self, options: Any, model_config: Any, task_name: str) -> str | None:
        """Return a one-line reason the method cannot apply to this model, or None."""


@dataclass(frozen=True)
class Method:
    name: str
    trains: str  # human description of what is trained, for `adapterkit methods`
    options: type[MethodOptions]
    default_learning_rate: float
    wrap: Callable[[Any, Any, WrapContext], Any]  # (model, options, ctx) -> trainable model
    save: Callable[[Any, Path], None]  # (wrapped model, run_dir/"adapter" or "model") -> None
    load: Callable[[Any, Path], Any]  # (fresh base model, saved folder) -> model with trained weights
    artifact: str = "adapter"  # name of the folder in the run dir that `save` fills
    # The files `save` writes there (and `load` reads), named from the same constants they use: a finished run's
    # artifact is checked against them before any weight loads (``rundir.check_artifact``: each there, the
    # config readable JSON, safetensors headers whole). None: safetensors headers only, and some weights file.
    saved_files: SavedFiles | None = None
    # The peft tuner `save` writes (adapter_config.json's peft_type, a ``peft.PeftType`` name), checked before a saved
    # adapter is loaded (``peft_tuner.check_tuner``). None: the method saves no peft adapter.
    peft_type: str | None = None
    # (fresh base model, saved folder) -> the model with the saved weights, trainable (``model.adapter``: continue
    # training an earlier run's adapter). None: the method cannot continue a saved artifact.
    load_trainable: Callable[[Any, Path], Any] | None = None
    # The wrapped model can switch its trained part off (peft's ``disable_adapter``), so a frozen reference
    # model (preference tuning) is the base itself, not a second copy in memory.
    can_disable: bool = False
    needs: Needs = field(default_factory=Needs)
    quantization: Callable[[Any], dict[str, Any]] | None = None  # options -> BitsAndBytesConfig kwargs
    check_model: ModelCheck | None = None
    # Memory planning. ``trains_base``: base weights themselves train (kept as fp32 master weights, with
    # gradients and optimizer state); otherwise the base is frozen and may be stored in the compute dtype.
    # ``footprint`` estimates trainable parameters from the model's shape; without one the planner
    # assumes every weight trains (an upper bound) and says so.
    trains_base: bool = False
    footprint: FootprintEstimate | None = None
    # (options, shape) -> a one-line reason these options do not fit the model's shape (``memory.shape.ModelShape``,
    # built from the config on the meta device), or None; preflight asks before any weight loads.
    check_shape: Callable[[Any, Any], str | None] | None = None
    # Export (``adapterkit export``): ``merge`` folds the trained weights into a plain transformers model,
    # (model as ``load`` returned it, load_base: () -> a fresh unquantized fp32 base model) -> model; it may
    # consume its input. None: the method cannot merge, and ``no_merge`` says why in one line.
    merge: Callable[[Any, Callable[[], Any]], Any] | None = None
    # (trainer, options) -> None, before training: what the method needs of the Trainer beyond the model, e.g. its
    # own optimizer (LoRA+'s learning-rate ratio) or a per-step callback (AdaLoRA's rank allocation).
    prepare_trainer: Callable[[Any, Any], None] | None = None
    # options -> a one-line reason ``adapterkit.wrap`` refuses these options, with how to get them, or None. wrap never
    # calls ``prepare_trainer`` (it has no Trainer): what acts only there (an optimizer, data) would be ignored.
    wrap_refusal: Callable[[Any], str | None] | None = None
    no_merge: str = "the method does not say how to merge its trained weights into the model"


def missing_package(method: Method) -> str | None:
    """The one-line reason ``method`` cannot run here (a package in ``needs.packages`` is not installed), or None;
    the run's plan (``plan.check_packages``) and ``adapterkit.wrap`` refuse with it."""
    import importlib.util

    for module in method.needs.packages:
        if importlib.util.find_spec(module) is None:
            return f"method {method.name!r} needs the package {module!r}; install it (pip install {module})"
    return None


@contextmanager
def reading_artifact(folder: Path) -> Iterator[None]:
    """A loader's errors on a saved artifact (run folder's adapter/ or model/) as one line naming the folder.
    ``rundir.read_run`` checks the files first; this catches damage it cannot see (a tensor's bytes, a config's
    fields). Errors of other kinds (out of memory, a bug) pass through unchanged."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:
        from safetensors import SafetensorError

        # tokenizers' Rust errors (a damaged tokenizer.json) are plain Exceptions
        if not isinstance(err, (OSError, ValueError, SafetensorError)) and type(err) is not Exception:
            raise
        reason = (str(err).strip().splitlines() or [""])[0][:120]
        raise UserError(f"could not load the run's saved files ({type(err).__name__}: {reason}); rerun the recipe "
                        f"with --output {Path(folder).parent} --overwrite", where=str(folder)) from err
