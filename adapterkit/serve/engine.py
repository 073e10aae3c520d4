"""Runs opened for serving: each base model loaded once, its runs' adapters attached by name.

Runs whose artifact is a PEFT adapter folder (``adapter_config.json``) and whose base, head, labels and peft
tuner type match share one base model: the first is opened with ``PeftModel.from_pretrained(..., adapter_name=)``,
the others with ``load_adapter``; a request switches with ``set_adapter`` on that base's worker thread
(one thread per base model, so switching never races a forward pass). Other artifacts (full fine-tunes,
bottleneck adapters) load through their method's own ``load``, one model each.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

log = logging.getLogger("adapterkit.serve")
HEADS = {"AutoModelForCausalLM": "chat", "AutoModelForSequenceClassification": "classification",
         "AutoModelForTokenClassification": "ner"}


@dataclass
class Served:
    """One run as a served model: ``id`` is the run folder's name."""

    id: str
    run_dir: Path
    kind: str  # chat | classification | ner: which endpoint answers it (from the task's model head)
    base: str
    tokenizer: Any
    backend: Any  # a batching.Backend: the model + the thread that runs it
    adapter: str | None  # peft adapter name on a shared base, None when the model is the run's alone
    labels: list[str] | None
    max_length: int
    created: int = field(default_factory=lambda: int(time.time()))


def _quiet_generation_warnings() -> None:
    """Per-request generation-config notices (e.g. sampling flags unused at temperature 0) are not the
    server user's business; real errors still raise."""
    for name in ("transformers.generation.utils", "transformers.generation.configuration_utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _describe(run_dir: Path):
    from .. import loading, rundir
    from ..api import finished_plan
    from ..methods.peft_tuner import PEFT_FILES
    from ..tasks.base import TaskData

    info = rundir.read_run(run_dir)
    if not info.get("artifact"):
        raise UserError(f"method {info.get('method')!r} saved no trained weights to serve", where=str(run_dir))
    # its artifact checked against its method's saved files and peft tuner: a shared base attaches the adapter with
    # peft alone, not through the method's load
    plan = finished_plan(run_dir, info)
    folder = run_dir / info["artifact"]
    labels = rundir.trained_labels(folder)
    kwargs = plan.task.model_kwargs(TaskData(None, None, labels))
    shared = (folder / PEFT_FILES.config).is_file()
    # peft attaches adapters of one tuner type to a model ("Cannot combine adapters with different peft types"):
    # a LoRA run and an IA3 run on the same base each get their own copy of it (the file's peft_type is the method's:
    # finished_plan checked it)
    key = (loading.model_path(plan.recipe.model), plan.task.auto_class, json.dumps(kwargs, sort_keys=True, default=str),
           plan.recipe.model.revision, plan.method.peft_type) if shared else None
    return plan, folder, labels, kwargs, key


def open_runs(run_dirs: list[str | Path], limits=None) -> dict[str, Served]:
    """Every run in ``run_dirs`` as a Served model, keyed by id; bases are loaded once per key."""
    from ..api import run_tokenizer
    from ..methods.peft_tuner import attach_peft, load_peft
    from . import batching
    from .schemas import Limits

    _quiet_generation_warnings()
    limits = limits or Limits()
    served: dict[str, Served] = {}
    bases: dict[tuple, tuple[Any, Any]] = {}  # key -> (peft model, backend)
    for k, raw in enumerate(run_dirs):
        run_dir = Path(raw)
        name = run_dir.resolve().name
        if name in served:
            raise UserError(f"two runs are named {name!r}; each served run needs its own folder name", where=str(raw))
        plan, folder, labels, kwargs, key = _describe(run_dir)
        kind = HEADS.get(plan.task.auto_class)
        if kind is None:
            raise UserError(f"task {plan.task.name!r} has no serving endpoint", where=str(run_dir))
        tokenizer = run_tokenizer(plan, folder)  # a chat run's task.system_prompt in its template
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        adapter = None
        if key is not None and key in bases:
            model, backend = bases[key]
            adapter = f"run{k}"
            attach_peft(model, folder, adapter)
            log.info("%s: adapter attached to the loaded %s", name, plan.recipe.model.name)
        else:
            from .. import loading

            base = loading.load_model(plan, tokenizer, kwargs, training=False)
            if key is not None:
                adapter = f"run{k}"
                model = load_peft(base, folder, adapter_name=adapter)  # quiet, one-line errors (methods/peft_tuner.py)
            else:
                model = plan.method.load(base, folder)
            model.eval()
            backend = batching.Backend(model, limits)
            if key is not None:
                bases[key] = (model, backend)
            log.info("%s: loaded %s", name, plan.recipe.model.name)
        max_length = getattr(plan.task_options, "max_length", 512)
        served[name] = Served(name, run_dir, kind, plan.recipe.model.name, tokenizer, backend, adapter, labels,
                              max_length)
    return served


def close(served: dict[str, Served]) -> None:
    for backend in {id(s.backend): s.backend for s in served.values()}.values():
        backend.close()


def classify(served: Served, texts: list[str]) -> list[dict]:
    """Runs on the model's worker thread: labels + probabilities, or entities with character spans."""
    import torch

    backend = served.backend
    backend.use(served.adapter)
    enc = served.tokenizer(texts, padding=True, truncation=True, max_length=served.max_length, return_tensors="pt",
                           return_offsets_mapping=served.kind == "ner")
    offsets = enc.pop("offset_mapping", None)
    with torch.no_grad():
        probs = backend.model(**{k: v.to(backend.device) for k, v in enc.items()}).logits.float().softmax(-1).cpu()
    labels = served.labels or [str(i) for i in range(probs.shape[-1])]
    if served.kind == "classification":
        out = []
        for i, row in enumerate(probs):
            best = int(row.argmax())
            out.append({"index": i, "label": labels[best], "score": float(row[best]),
                        "scores": {name: float(p) for name, p in zip(labels, row)}})
        return out
    return [{"index": i, "entities": entities(texts[i], enc.word_ids(i), offsets[i].tolist(), probs[i], labels)}
            for i in range(len(texts))]


def entities(text: str, word_ids, offsets, probs, labels: list[str]) -> list[dict]:
    """BIO tags of each word's first sub-word -> entities; a word's later sub-words extend its span."""
    found: list[dict] = []
    current, previous_word = None, None
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[position]
        if word == previous_word:
            if current is not None:
                current["end"] = end
            continue
        previous_word = word
        best = int(probs[position].argmax())
        tag, score = labels[best], float(probs[position][best])
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind is not None and (tag.startswith("B-") or current is None or current["type"] != kind):
            current = {"type": kind, "start": start, "end": end, "scores": [score]}
            found.append(current)
        elif kind is not None:
            current["end"] = end
            current["scores"].append(score)
        else:
            current = None
    return [{"type": e["type"], "text": text[e["start"]:e["end"]], "start": e["start"], "end": e["end"],
             "score": sum(e["scores"]) / len(e["scores"])} for e in found]


def load_moderator(run_dir: str):
    """A classification run as the safety filter's moderator: text -> {label: probability}."""
    served = open_runs([run_dir])
    model = next(iter(served.values()))
    if model.kind != "classification":
        raise UserError(f"the moderator must be a classification run, this one is {model.kind}", where=str(run_dir))

    def scores(text: str) -> dict[str, float]:
        return model.backend.call(classify, model, [text]).result()[0]["scores"]

    return scores

