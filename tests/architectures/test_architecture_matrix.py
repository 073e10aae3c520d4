"""Every architecture x method x task of ``adapterkit.support.TINY`` (the table README's "Supported architectures"
is generated from): a supported cell trains one step, saves, reloads through adapterkit (``adapterkit eval``
reproduces metrics.json) and through plain peft/transformers with the same logits; a refused cell is refused
by preflight, before any weight is read."""

from __future__ import annotations

import pytest
import torch
from matrix_models import matrix_files, plain_reload, tiny_model_dir  # noqa: F401 (fixture)

from adapterkit import api, loading
from adapterkit.errors import UserError
from adapterkit.methods import METHODS
from adapterkit.recipe import recipe_from_dict
from adapterkit.support import TINY, cell, trained_in_ci

CELLS = [(arch, task, method) for arch, row in TINY.items() for task in row.tasks for method in METHODS.names()
         if trained_in_ci(arch, method)]
# The long tail: the matrix runs in CI (integration included); these keep a quick `-m "not integration"` run short.
QUICK = {"bert", "llama", "modernbert", "t5"}


def _param(arch, task, method):
    marks = () if arch in QUICK else (pytest.mark.integration,)
    return pytest.param(arch, task, method, id=f"{arch}-{task}-{method}", marks=marks)


def recipe_for(arch, task, method, model_dir, files):
    recipe = {
        "name": f"{arch}_{task}_{method}",
        "model": {"name": model_dir},
        "method": {"name": method},
        "task": {"name": task, "max_length": 16},
        "data": {"train": str(files[f"{task}_train"]), "eval": str(files[f"{task}_eval"]), "on_error": "skip"},
        "train": {"max_steps": 1, "batch_size": 4, "seed": 0, "logging_steps": 1, "learning_rate": 1e-2},
        "hardware": {"profile": "auto", "precision": "fp32"},
    }
    if task == "chat":
        recipe["task"].update({"num_samples": 1, "max_new_tokens": 2, "max_length": 64})
    if task == "seq2seq":
        recipe["task"].update({"num_samples": 1, "max_new_tokens": 2})
    return recipe_from_dict(recipe)


@pytest.mark.parametrize(("arch", "task", "method"), [_param(*c) for c in CELLS])
def test_cell(arch, task, method, tmp_path_factory, matrix_files, monkeypatch):
    model_dir = tiny_model_dir(arch, tmp_path_factory)
    recipe = recipe_for(arch, task, method, model_dir, matrix_files)
    reason = cell(arch, method, task, loading.load_config(recipe.model, recipe.source))
    if reason is not None:
        def no_weights(*_args, **_kwargs):
            raise AssertionError("a refused cell read weights")

        monkeypatch.setattr(loading, "load_model", no_weights)
        with pytest.raises(UserError) as err:
            api.run(recipe, output=tmp_path_factory.mktemp("refused"))
        assert reason in str(err.value)
        return

    result = api.run(recipe, output=tmp_path_factory.mktemp("run"))
    reopened = {}
    original = api.reopen

    def spy(*args, **kwargs):
        reopened["parts"] = original(*args, **kwargs)
        return reopened["parts"]

    monkeypatch.setattr(api, "reopen", spy)
    again = api.evaluate_run(result.run_dir)  # what `adapterkit eval RUN_DIR` does
    for key, value in result.metrics.items():
        if isinstance(value, float) and key.startswith("eval_") and not key.endswith(("_runtime", "_per_second", "_num_tokens")):
            assert again[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    if METHODS.get(method).quantization is not None:
        return  # bitsandbytes' CPU kernels differ outside adapterkit's loader (README: plain-peft interop)
    _, tokenizer, ours, _ = reopened["parts"]
    plain, batch = plain_reload(result, task, tokenizer)
    if plain is None:
        return  # bottleneck adapters: adapterkit's own format
    ours.eval(), plain.eval()
    with torch.no_grad():
        expected, got = ours(**batch).logits, plain(**batch).logits
    got = got[:, -expected.shape[1]:]  # plain peft keeps prompt positions in token logits (README)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_readme_table_is_generated_from_the_support_table():
    from pathlib import Path

    from adapterkit.support import markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- support-table:start -->\n", "\n<!-- support-table:end -->"
    assert readme[readme.index(start) + len(start):readme.index(end)] == markdown_table(), \
        "README's Supported architectures table is stale: paste `adapterkit methods --models`"


SAMPLED = [(arch, task, method) for arch, row in TINY.items() for task in row.tasks for method in METHODS.names()
           if not trained_in_ci(arch, method)]


@pytest.mark.parametrize(("arch", "task", "method"), [_param(*c) for c in SAMPLED])
def test_a_supported_cell_not_trained_in_ci_wraps_and_runs_forward(arch, task, method):
    """The table's (✓) cells are not trained in CI; each must at least wrap and run a forward pass (peft's LoHa,
    LoKr, VeRA, OFT and BOFT were (✓) on GPT-2 and failed on its Conv1D layers after the model had loaded)."""
    import transformers
    from matrix_models import AUTO_CLASSES

    import adapterkit
    from adapterkit.support import has_head, tiny_config

    config = tiny_config(arch)
    if not has_head(arch, task, config) or cell(arch, method, task, config) is not None:
        return  # no row, or refused in preflight (test_cell checks the refusal)
    config.num_labels = 3
    if config.pad_token_id is None:
        config.pad_token_id = 0  # a decoder's classifier finds each row's last token by it
    model = getattr(transformers, AUTO_CLASSES[task]).from_config(config)
    steps = {"total_steps": 10} if METHODS.get(method).needs.total_steps else {}  # AdaLoRA's schedule
    wrapped = adapterkit.wrap(model, method, **steps)
    ids = torch.randint(3, 100, (2, 8))
    if config.eos_token_id is not None and config.eos_token_id < config.vocab_size:
        ids[:, -1] = config.eos_token_id  # BART's classifier reads each row's end-of-sequence token
    extra = {"decoder_input_ids": ids[:, :4]} if task == "seq2seq" else {}
    with torch.no_grad():
        out = wrapped(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
    assert torch.isfinite(out.logits).all()
