"""Silently wrong results on other architectures, found by a user sweep (tiny models of ``adapterkit.support.TINY``):
each test failed before its fix."""

from __future__ import annotations

import pytest
import torch
from matrix_models import matrix_files, tiny_model_dir  # noqa: F401 (fixture)
from test_architecture_matrix import recipe_for

from adapterkit import api, loading
from adapterkit.recipe import NamedSection

# the top decoder block and the decoder's final norm (BART's decoder has none: its layernorm_embedding is at the bottom)
DECODER_TOP = {"t5": ("decoder.block.1.", "decoder.final_layer_norm."), "bart": ("model.decoder.layers.1.",)}


def _freeze_recipe(arch, task, tmp_path_factory, files):
    recipe = recipe_for(arch, task, "freeze", tiny_model_dir(arch, tmp_path_factory), files)
    return recipe.model_copy(update={"method": NamedSection(name="freeze", top_layers=1)})


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_freeze_trains_the_top_of_the_decoder_on_encoder_decoders(arch, tmp_path_factory, matrix_files):
    """freeze trained the top ENCODER block (and BART's bottom embedding norm): the decoder never changed."""
    from transformers import AutoModelForSeq2SeqLM

    recipe = _freeze_recipe(arch, "seq2seq", tmp_path_factory, matrix_files)
    result = api.run(recipe, output=tmp_path_factory.mktemp("freeze-seq2seq"))
    before = AutoModelForSeq2SeqLM.from_pretrained(recipe.model.name).state_dict()
    after = AutoModelForSeq2SeqLM.from_pretrained(result.artifact_dir).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    top = DECODER_TOP[arch]
    assert changed, "nothing trained"
    assert all(k.startswith(top) for k in changed), sorted(k for k in changed if not k.startswith(top))
    for prefix in top:  # every part of the top trains: the block's FFN output and the final norm
        assert any(k.startswith(prefix) for k in changed), f"{prefix} did not train"


@pytest.mark.parametrize(("arch", "task"), [("t5", "seq2seq"), ("bart", "seq2seq"), ("t5", "classification"),
                                            ("bart", "classification")])
def test_freeze_on_encoder_decoders_requires_grad_at_the_decoder_and_the_planner_counts_it(arch, task, tmp_path_factory,
                                                                                          matrix_files):
    """Classification heads of T5 and BART read the decoder's output at the end-of-sequence token: the top of the
    decoder trains there too, beside the head; the memory planner's count is what trains (T5's first block alone
    carries the relative position bias, so the count is per block)."""
    from adapterkit.memory.shape import model_shape
    from adapterkit.plan import make_plan

    recipe = _freeze_recipe(arch, task, tmp_path_factory, matrix_files)
    plan = make_plan(recipe)
    kwargs = {"num_labels": 2} if task == "classification" else {}
    model = loading.load_model(plan, loading.load_tokenizer(recipe.model, recipe.source), kwargs)
    model = plan.method.wrap(model, plan.method_options, None)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    top = tuple(("transformer." if (arch, task) == ("t5", "classification") else "") + p for p in DECODER_TOP[arch])
    head = ("classification_head.",) if task == "classification" else ()
    assert trainable and all(n.startswith(top + head) for n in trainable), sorted(trainable)
    assert all(any(n.startswith(p) for n in trainable) for p in top + head)

    config = loading.load_config(recipe.model, recipe.source)
    if task == "classification":
        config.num_labels = 2
    shape = model_shape(config, plan.task.auto_class, lm_task=task == "seq2seq")
    predicted = plan.method.footprint(plan.method_options, shape).trainable_params
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == predicted


ENCODERS = ("bert", "roberta", "xlm-roberta", "electra")


def _long_config(arch, **changes):
    """The tiny config with room for the causal tasks' default max_length (256): only the task's own rule refuses."""
    from adapterkit.support import tiny_config

    config = tiny_config(arch)
    config.max_position_embeddings = 512
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@pytest.mark.parametrize("task", ["chat", "lm", "preference"])
@pytest.mark.parametrize("arch", ENCODERS)
def test_causal_tasks_refuse_encoders_in_preflight(arch, task):
    """BertLMHeadModel & co. were accepted with config.is_decoder = False: every position attended to later tokens."""
    from adapterkit.support import cell

    reason = cell(arch, "lora", task, _long_config(arch))
    assert reason is not None and "encoder that attends both ways" in reason and "\n" not in reason, reason
    assert cell(arch, "lora", task, _long_config(arch, is_decoder=True)) is None  # trained as a decoder: accepted


@pytest.mark.parametrize(("task", "tail"), [("chat", ", whose causal-LM class would start from fresh embeddings"),
                                            ("lm", " (use task 'seq2seq')"), ("preference", "")])
def test_causal_tasks_keep_their_encoder_decoder_refusals(task, tail):
    from adapterkit.support import cell

    expected = f"task {task!r} needs a decoder-only causal LM; model type 'bart' is an encoder-decoder{tail}"
    assert cell("bart", "lora", task, _long_config("bart")) == expected


def test_the_refused_encoders_do_see_later_tokens():
    """Why the rule reads config.is_decoder: BERT's causal-LM class masks later tokens only when it is set."""
    import transformers

    ids = torch.tensor([[101, 2000, 2001, 2002, 2003, 2004, 102]])
    later = ids.clone()
    later[0, 5] = 3000
    for is_decoder in (False, True):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(_long_config("bert", is_decoder=is_decoder)).eval()
        with torch.no_grad():
            leaks = not torch.equal(model(input_ids=ids).logits[0, 2], model(input_ids=later).logits[0, 2])
        assert leaks is not is_decoder


def test_chat_on_an_encoder_is_refused_before_any_weight_is_read(tmp_path_factory, matrix_files, monkeypatch):
    from adapterkit.errors import UserError

    def no_weights(*_args, **_kwargs):
        raise AssertionError("a refused run read weights")

    recipe = recipe_for("bert", "chat", "lora", tiny_model_dir("bert", tmp_path_factory), matrix_files)
    monkeypatch.setattr(loading, "load_model", no_weights)
    with pytest.raises(UserError, match="encoder that attends both ways"):
        api.run(recipe, output=tmp_path_factory.mktemp("bert-chat"))


@pytest.fixture(scope="module")
def bert_decoder_dir(tmp_path_factory):
    """A tiny BERT trained as a decoder (config.is_decoder = true), saved from its causal-LM class with its tokenizer."""
    import transformers
    from transformers import AutoTokenizer

    from adapterkit.assets import resolve_model
    from adapterkit.support import TINY, tiny_config

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(TINY["bert"].tokenizer))
    config = tiny_config("bert", vocab_size=len(tokenizer))
    config.is_decoder = True
    folder = tmp_path_factory.mktemp("tiny-bert-decoder")
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_bert_lm_head_is_not_a_task_head(bert_decoder_dir):
    """BERT's output embeddings sit inside ``cls`` (cls.predictions.decoder): LoRA saved the whole vocabulary
    projection (peft's modules_to_save) as if it were a fresh task head."""
    import transformers

    from adapterkit import wrap
    from adapterkit.anatomy import full_precision_module_names, head_module_names

    model = transformers.AutoModelForCausalLM.from_pretrained(bert_decoder_dir)
    assert type(model).__name__ == "BertLMHeadModel"
    assert head_module_names(model) == []
    assert full_precision_module_names(model) == ["cls.predictions.decoder"]  # still kept out of 4-bit
    wrapped = wrap(model, "lora")
    assert not wrapped.peft_config["default"].modules_to_save
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable), [n for n in trainable if "lora_" not in n]


def test_freeze_on_a_bert_causal_lm_leaves_the_embeddings_alone(bert_decoder_dir, tmp_path_factory):
    """freeze trained bert.embeddings.word_embeddings through the tied decoder inside ``cls``, the same cause."""
    import transformers

    from adapterkit.memory.shape import model_shape
    from adapterkit.plan import make_plan
    from adapterkit.recipe import recipe_from_dict

    folder = tmp_path_factory.mktemp("lm-data")
    (folder / "train.txt").write_text("\n\n".join(f"a quiet moving film number {i} with a long plot" for i in range(16)))
    recipe = recipe_from_dict({
        "name": "bert_lm_freeze", "model": {"name": str(bert_decoder_dir)}, "method": {"name": "freeze", "top_layers": 1},
        "task": {"name": "lm", "max_length": 16}, "data": {"train": str(folder / "train.txt"), "eval": 0.25},
        "train": {"max_steps": 1, "batch_size": 4, "seed": 0, "logging_steps": 1, "learning_rate": 1e-2},
        "hardware": {"profile": "auto", "precision": "fp32"},
    })
    plan = make_plan(recipe)
    config = loading.load_config(recipe.model, recipe.source)
    predicted = plan.method.footprint(plan.method_options, model_shape(config, plan.task.auto_class, lm_task=True))
    model = api.prepare_model(plan, loading.load_tokenizer(recipe.model, recipe.source), None)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("bert.encoder.layer.1.") for n in trainable), sorted(trainable)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == predicted.trainable_params

    result = api.run(recipe, output=tmp_path_factory.mktemp("bert-lm"))
    before = transformers.AutoModelForCausalLM.from_pretrained(bert_decoder_dir).state_dict()
    after = transformers.AutoModelForCausalLM.from_pretrained(result.artifact_dir).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("bert.encoder.layer.1.") for k in changed), sorted(changed)
