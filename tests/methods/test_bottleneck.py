"""Bottleneck adapters and the architecture table, on tiny models saved and reloaded through from_pretrained:
identity at init, exactly the adapters + head train, loss falls, save -> load is exact, unknown types fail."""

from __future__ import annotations

import json

import pytest
import torch

from adapterkit.anatomy import (
    adapter_points,
    find_blocks,
    full_precision_module_names,
    head_module_names,
    pooler_module_names,
)
from adapterkit.errors import UserError
from adapterkit.methods.base import WrapContext
from adapterkit.methods.bottleneck import CONFIG, METHOD, WEIGHTS, BottleneckOptions

HIDDEN, LAYERS, LABELS = 32, 2, 3
# name -> (Auto class, peft task type, folder fixture)
KINDS = {"seq_cls": ("AutoModelForSequenceClassification", "SEQ_CLS", "bert_dir"),
         "token_cls": ("AutoModelForTokenClassification", "TOKEN_CLS", "bert_dir"),
         "causal_lm": ("AutoModelForCausalLM", "CAUSAL_LM", "llama_dir")}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> str:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=LABELS)
    folder = tmp_path_factory.mktemp("bert")
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         tie_word_embeddings=True, pad_token_id=0)
    folder = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    return str(folder)


def load_base(kind, request, **kwargs):
    import transformers

    auto, task_type, fixture = KINDS[kind]
    folder = request.getfixturevalue(fixture)
    extra = {"num_labels": LABELS} if kind == "token_cls" else {}
    torch.manual_seed(1)  # the token classifier head is fresh: make it the same on every load
    model = getattr(transformers, auto).from_pretrained(folder, **extra, **kwargs)
    return model, WrapContext(peft_task_type=task_type, model_path=folder)


def batch_for(kind):
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 100, (4, 8), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 6:] = 0
    labels = {"seq_cls": torch.tensor([0, 1, 2, 1]), "token_cls": torch.randint(0, LABELS, (4, 8), generator=g),
              "causal_lm": input_ids.clone()}[kind]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def logits_of(model, batch):
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def train_steps(model, batch, steps=5, lr=1e-2) -> list[float]:
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def expected_trainable(options: BottleneckOptions, head_params: int) -> int:
    size = max(1, HIDDEN // options.reduction_factor)
    per_adapter = 2 * HIDDEN * size + size + HIDDEN + (2 * HIDDEN if options.layer_norm else 0)
    per_block = 2 if options.config == "houlsby" else 1
    return LAYERS * per_block * per_adapter + head_params


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("opts", [{"config": "houlsby"}, {"config": "pfeiffer", "layer_norm": True,
                                                          "non_linearity": "gelu", "reduction_factor": 4}])
def test_wrap_identity_and_trainable(kind, opts, request):
    model, ctx = load_base(kind, request)
    batch = batch_for(kind)
    before = logits_of(model, batch)
    options = BottleneckOptions(**opts)
    wrapped = METHOD.wrap(model, options, ctx)
    assert torch.equal(logits_of(wrapped, batch), before), "a fresh adapter must be the identity"

    heads = {"seq_cls": ["classifier"], "token_cls": ["classifier"], "causal_lm": []}[kind]  # lm_head is tied
    assert head_module_names(model) == heads
    # The sequence classifier's pooler trains with it; a token classifier has none.
    poolers = {"seq_cls": ["bert.pooler"], "token_cls": [], "causal_lm": []}[kind]
    assert pooler_module_names(model) == poolers
    head_params = sum(p.numel() for h in heads + poolers for p in model.get_submodule(h).parameters())
    trainable = {n: p for n, p in wrapped.named_parameters() if p.requires_grad}
    assert all(".bottleneck." in n or n.split(".")[0] in heads or n.startswith("bert.pooler.")
               for n in trainable), sorted(trainable)
    assert sum(p.numel() for p in trainable.values()) == expected_trainable(options, head_params)


def test_train_head_false_freezes_head(request):
    model, ctx = load_base("seq_cls", request)
    wrapped = METHOD.wrap(model, BottleneckOptions(train_head=False), ctx)
    assert all(".bottleneck." in n for n, p in wrapped.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_training_lowers_loss_and_save_load_is_exact(kind, request, tmp_path):
    model, ctx = load_base(kind, request)
    model = METHOD.wrap(model, BottleneckOptions(config="houlsby", dropout=0.1), ctx)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    batch = batch_for(kind)
    losses = train_steps(model, batch)
    assert losses[-1] < losses[0], losses
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)

    METHOD.save(model, tmp_path)
    config = json.loads((tmp_path / CONFIG).read_text())
    assert config["model_type"] == model.config.model_type and config["options"]["config"] == "houlsby"
    assert config["parameters"] == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    expected = logits_of(model, batch)
    fresh, _ = load_base(kind, request)
    reloaded = METHOD.load(fresh, tmp_path)
    torch.testing.assert_close(logits_of(reloaded, batch), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_train_layer_norms_trains_the_blocks_norms_and_saves_them(kind, request, tmp_path):
    """method.train_layer_norms (Houlsby et al.): every norm inside the blocks (LayerNorm, Llama's RMSNorm)
    trains beside the adapters, moves in training, and is saved and loaded back."""
    model, ctx = load_base(kind, request)
    model = METHOD.wrap(model, BottleneckOptions(train_layer_norms=True), ctx)
    norms = {n: p.detach().clone() for n, p in model.named_parameters()
             if p.requires_grad and ".bottleneck." not in n and "norm" in n.lower()}
    layers = model.config.num_hidden_layers
    assert len({n.rsplit(".", 1)[0] for n in norms}) == 2 * layers, sorted(norms)  # two norms a block
    outside = [n for n, p in model.named_parameters() if "norm" in n.lower() and ".layers." not in n
               and ".layer." not in n and ".h." not in n]
    assert not any(dict(model.named_parameters())[n].requires_grad for n in outside), outside
    batch = batch_for(kind)
    train_steps(model, batch)
    assert all(not torch.equal(p, norms[n]) for n, p in model.named_parameters() if n in norms)

    METHOD.save(model, tmp_path)
    expected = logits_of(model, batch)
    reloaded = METHOD.load(load_base(kind, request)[0], tmp_path)
    torch.testing.assert_close(logits_of(reloaded, batch), expected, rtol=0, atol=1e-6)


def test_load_is_strict(request, tmp_path):
    from safetensors.torch import load_file, save_file

    model, ctx = load_base("seq_cls", request)
    METHOD.save(METHOD.wrap(model, BottleneckOptions(), ctx), tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS))
    dropped = next(n for n in tensors if ".bottleneck." in n)
    save_file({n: t for n, t in tensors.items() if n != dropped}, str(tmp_path / WEIGHTS))
    with pytest.raises(UserError, match="missing"):
        METHOD.load(load_base("seq_cls", request)[0], tmp_path)
    save_file({**tensors, "bert.not.a.weight": tensors[dropped].clone()}, str(tmp_path / WEIGHTS))
    with pytest.raises(UserError, match="unknown"):
        METHOD.load(load_base("seq_cls", request)[0], tmp_path)


def test_unknown_model_type_is_a_user_error():
    from transformers import AlbertConfig, AlbertForSequenceClassification

    model = AlbertForSequenceClassification(AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=HIDDEN,
                                                         num_hidden_layers=1, num_attention_heads=2,
                                                         intermediate_size=64))
    with pytest.raises(UserError, match=r"'albert'.*supported: .*bert.*llama"):
        METHOD.wrap(model, BottleneckOptions(), WrapContext(peft_task_type="SEQ_CLS", model_path=""))


def test_bf16_base_and_gradient_checkpointing(request):
    model, ctx = load_base("causal_lm", request, dtype=torch.bfloat16)
    model = METHOD.wrap(model, BottleneckOptions(config="houlsby"), ctx)
    model.gradient_checkpointing_enable()
    model.train()
    batch = batch_for("causal_lm")
    out = model(**batch)
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()
    adapters = [p for n, p in model.named_parameters() if ".bottleneck." in n]
    assert adapters and all(p.dtype == torch.float32 and p.grad is not None for p in adapters)
    assert any(p.grad.abs().sum() > 0 for p in adapters)


def test_targets_on_peft_wrapped_and_untied_models(request):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    model, _ = load_base("seq_cls", request)
    peft_model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query"]))
    path, blocks = find_blocks(peft_model)
    assert path.endswith("bert.encoder.layer") and peft_model.get_submodule(path) is blocks
    assert adapter_points(peft_model) == {"attention": "attention.output.dense", "ffn": "output.dense"}
    assert [peft_model.get_submodule(n) for n in head_module_names(peft_model)] == [model.classifier]

    untied = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=64, tie_word_embeddings=False))
    # An untied lm_head is the pretrained vocabulary projection, not a task head (#19 D9: freeze trained it
    # whole while the planner counted nothing); it still stays out of 4-bit.
    assert head_module_names(untied) == []
    assert full_precision_module_names(untied) == ["lm_head"]
    assert head_module_names(untied.model) == []  # a bare backbone has no head


def test_find_blocks_fallback_without_table_row():
    from torch import nn

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.mixed = nn.ModuleList([nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)])
            self.stack = nn.ModuleList([nn.Sequential(nn.Linear(2, 2)) for _ in range(3)])
            self.small = nn.ModuleList([nn.Linear(2, 2)])

    model = Toy()
    assert find_blocks(model) == ("stack", model.stack)


def test_adapter_saved_without_the_pooler_still_loads(request, tmp_path):
    """An adapter saved when the head was the classifier alone (head_modules without the pooler) loads
    strictly, with the base model's own pooler."""
    from safetensors.torch import load_file, save_file

    model, ctx = load_base("seq_cls", request)
    model = METHOD.wrap(model, BottleneckOptions(), ctx)
    train_steps(model, batch_for("seq_cls"))
    METHOD.save(model, tmp_path)
    tensors = {n: t for n, t in load_file(str(tmp_path / WEIGHTS)).items() if not n.startswith("bert.pooler.")}
    save_file(tensors, str(tmp_path / WEIGHTS))
    config = json.loads((tmp_path / CONFIG).read_text())
    config["head_modules"] = ["classifier"]
    (tmp_path / CONFIG).write_text(json.dumps(config))
    fresh, _ = load_base("seq_cls", request)
    pooler = fresh.bert.pooler.dense.weight.detach().clone()
    reloaded = METHOD.load(fresh, tmp_path)
    assert torch.equal(reloaded.bert.pooler.dense.weight, pooler)
    assert not reloaded.bert.pooler.dense.weight.requires_grad
