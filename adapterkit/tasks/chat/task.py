"""Chat SFT of a causal LM on conversations with trl's SFTTrainer. Rows come in any conversation format of
``data/formats.py`` (OpenAI messages, sharegpt, alpaca, prompt/completion) and are read as ``messages``.

Conversations are tokenized here with the tokenizer's chat template and an assistant mask, so the
loss covers assistant turns only whatever the template. Eval: loss and perplexity on held-out
conversations, plus a few greedy sample answers written to ``samples.jsonl``; with ``task.generate_eval``,
ROUGE/BLEU/chrF/exact-match scores of greedy answers to every eval conversation (``answers.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import Field

from ... import distributed
from ...data.formats import conversations
from ...data.sources import load_train_eval
from ...methods.fp32_adapter_sum import LOW_PRECISION, add_adapters_in_fp32
from ...training import shape_multiple, trainable_in_fp32, training_kwargs
from ..base import TaskData, TaskOptions
from ..causal import decoder_only_reason
from ..generation import Score, generate_eval_field
from ..rows import checked_rows, warn_shared
from .answers import generation_metrics, last_answer
from .rows import answered, check_conversation, table
from .stream import stream_data, tokenized_stream
from .template import assistant_spans, encode, ensure_chat_template, ship_tokenizer


class ChatOptions(TaskOptions):
    messages_column: str = "messages"
    max_length: int = Field(256, gt=0)
    system_prompt: str | None = Field(None, description="prepended when a conversation has none; "
                                                         "None keeps the template's own default")
    assistant_only_loss: bool = True
    packing: bool = False
    padding_free: bool = Field(True, description="batch conversations back to back in one row instead of padding "
                                                 "them (no compute on pad tokens)")
    tokens_per_pass: int | None = Field(256, gt=0, description="padding-free batches: forward and backward over "
                                                                "runs of whole conversations of at most this many "
                                                                "tokens, gradients summed (same step, a fraction of "
                                                                "the activation memory); None: the whole batch at once")
    share_prefix: bool = Field(True, description="padding-free batches: compute the opening every conversation "
                                                 "shares (the template's system prompt) once per pass, not once "
                                                 "per conversation (same loss and gradients)")
    num_samples: int = Field(3, ge=0, description="sample answers generated after training")
    max_new_tokens: int = Field(48, gt=0, description="the most tokens a sample or generate_eval answer has")
    generate_eval: list[Score] = generate_eval_field()


def renderable(dataset, tokenizer, on_error: str, split: str, assistant_only: bool = True):
    """(conversations the tokenizer's chat template renders, how many it refused). A refused one (say, by a
    template that insists on user/assistant alternation) is a bad row, reported with its file:line. Without
    ``assistant_only`` (task.assistant_only_loss = false) the template need not render turn by turn."""
    from jinja2 import TemplateError

    def check(row):
        try:
            if assistant_only:
                assistant_spans(tokenizer, row["messages"])
            else:
                tokenizer.apply_chat_template(row["messages"], tokenize=False)
        except (TemplateError, ValueError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return f"the chat template cannot render this conversation ({reason})"
        return None

    kept, skipped = checked_rows([{**row, "_i": i} for i, row in enumerate(dataset)], check, on_error, split)
    return (dataset.select([r["_i"] for r in kept]) if skipped else dataset), skipped


class ChatTask:
    name = "chat"
    summary = "chat SFT of a causal LM, loss on assistant turns; data column messages"
    options = ChatOptions
    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    primary_metric = "eval_loss"
    greater_is_better = False

    def load_data(self, plan) -> TaskData:
        opts, on_error = plan.task_options, plan.recipe.data.on_error
        data = plan.recipe.data
        if data.streaming:
            return stream_data(plan, self.name)
        train_rows, eval_rows = load_train_eval(data, plan.where)
        warn_shared(train_rows, eval_rows)
        train_rows, eval_rows = (conversations(rows, data.format, data.roles, task=self.name, where=f"{plan.where}: "
                                               f"{key}", messages_column=opts.messages_column)
                                 for rows, key in ((train_rows, "data.train"), (eval_rows, "data.eval")))
        col = "messages"
        train_rows, skipped = checked_rows(train_rows, lambda r: check_conversation(r.get(col)), on_error, "train")
        eval_rows, skipped_eval = checked_rows(eval_rows, lambda r: check_conversation(r.get(col)), on_error, "eval")

        return TaskData(table(train_rows, opts), table(eval_rows, opts), None, skipped + skipped_eval)

    def padding_free(self, plan) -> bool:
        """Chat batches as one row of conversations back to back: the rule this task trains by and the planner
        sizes by (prompt-learning methods prepend virtual tokens to every row and keep padded rows)."""
        opts = plan.task_options
        return bool(opts.padding_free and not opts.packing and not plan.method.needs.padded_rows)

    def memory_needs(self, plan) -> dict[str, Any]:
        """For the planner: on padded batches trl's SFTTrainer scores the LM head in tiles (its fused head, never the
        whole logits); padding-free batches go through this task's loss, which builds the scored positions' logits. Under
        bf16/fp16, adapter sums are taken in fp32 (add_adapters_in_fp32): more freed temporaries per adapted layer."""
        sums = {"fp32_adapter_sums": plan.hardware.precision in LOW_PRECISION}  # add_adapters_in_fp32 (build_trainer)
        if self.padding_free(plan):
            return sums
        from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
        from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

        return {**sums, "lm_head_tile": (TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE)}

    def eval_batch_lengths(self, plan) -> tuple[int, int] | None:
        """For the memory plan, before any weight is loaded: (tokens, labelled positions) of the largest eval
        batch as the eval loop will run it (padding-free rows of ``train.eval_batch`` conversations in order;
        the LM head scores labelled positions only). Reads the data and the tokenizer; None when batches are
        padded (the worst case stands) or the split cannot be read here (the run reports that itself)."""
        from jinja2 import TemplateError

        from ...errors import UserError
        from ...loading import load_tokenizer

        if not self.padding_free(plan):
            return None
        import datasets

        opts, bars = plan.task_options, not datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()  # a preflight prints its verdict, not datasets' progress
        try:
            tokenizer = load_tokenizer(plan.recipe.model, plan.where)
            evaluation, _ = renderable(self.load_data(plan).eval, tokenizer, "skip", "eval", opts.assistant_only_loss)
            tokens = self.tokenized(evaluation, tokenizer, opts, "eval", plan.where, warn=False)
        except (UserError, TemplateError, ValueError, OSError):
            return None
        finally:
            if bars:
                datasets.enable_progress_bars()
        lengths = [len(ids) for ids in tokens["input_ids"]]
        scored = [sum(mask) for mask in tokens["assistant_masks"]]
        size = plan.recipe.train.eval_batch
        batches = range(0, len(lengths), size)
        if not lengths:
            return None
        return (max(sum(lengths[i:i + size]) for i in batches), max(sum(scored[i:i + size]) for i in batches))

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        return {}

    def check_model(self, options: ChatOptions, config) -> str | None:
        """Preflight: a causal LM built from an encoder-decoder checkpoint (BART's BartForCausalLM) keeps only the
        decoder and reads none of the checkpoint's shared embeddings or LM head: they would be drawn anew; an
        encoder's (BERT's BertLMHeadModel) attends both ways (``tasks/causal.py``)."""
        return decoder_only_reason(self.name, config, ", whose causal-LM class would start from fresh embeddings")

    def ship_tokenizer(self, tokenizer, options: ChatOptions) -> None:
        """After training, the template itself opens a conversation with ``task.system_prompt`` (``template.py``)."""
        ship_tokenizer(tokenizer, options.system_prompt)

    def generate(self, model, tokenizer, messages: list[dict], max_new_tokens: int) -> str:
        return generate(model, tokenizer, messages, max_new_tokens)

    def tokenized(self, dataset, tokenizer, opts, split: str, where: str, plan=None, warn: bool = True):
        """Token ids + assistant mask, truncated to ``task.max_length``; conversations left without an assistant
        token are left out, with a count in the log (``rows.answered``, which also gives the kept rows' indices)."""
        return self.answerable(dataset, tokenizer, opts, split, where, plan, warn)[0]

    def answerable(self, dataset, tokenizer, opts, split: str, where: str, plan=None, warn: bool = True):
        """(``tokenized``'s tokens, the indices of the conversations kept; None for a stream)."""
        from datasets import Dataset

        from ...data.cache import cached_map
        from . import template

        def one(row):
            enc = encode(tokenizer, row["messages"], opts.assistant_only_loss, row.get("context_turns") or ())
            return {k: v[:opts.max_length] for k, v in enc.items()}

        if not isinstance(dataset, Dataset):  # a stream (data.streaming): tokenized as it is read
            return tokenized_stream(dataset, one, plan), None
        import transformers

        key = [tokenizer, tokenizer.chat_template, opts.max_length, opts.assistant_only_loss,
               Path(template.__file__).read_bytes(), Path(__file__).read_bytes(), transformers.__version__]
        tokens = cached_map(dataset, one, key, remove_columns=dataset.column_names)
        return answered(tokens, split, opts.max_length, where, warn)

    def build_trainer(self, plan, model, tokenizer, data: TaskData, run_dir: Path):
        """trl's SFTTrainer. Conversations the chat template refuses leave ``data`` as bad rows (they count in
        ``data.skipped_rows``), since only the tokenizer, which arrives here, can tell."""
        from trl import SFTConfig

        from .loss import SelectiveLossSFTTrainer

        opts, on_error = plan.task_options, plan.recipe.data.on_error
        ensure_chat_template(tokenizer)
        ship_tokenizer(tokenizer, opts.system_prompt)  # saved with the adapter: it answers under the trained prompt
        skipped = 0
        if data.train is not None and not plan.recipe.data.streaming:  # a stream's rows are checked as read
            data.train, skipped = renderable(data.train, tokenizer, on_error, "train", opts.assistant_only_loss)
        data.eval, skipped_eval = renderable(data.eval, tokenizer, on_error, "eval", opts.assistant_only_loss)
        data.skipped_rows += skipped + skipped_eval
        padding_free = self.padding_free(plan)  # the planner sizes memory by the same rule
        kwargs = training_kwargs(plan, run_dir)
        if padding_free:
            # Grouping by length saves no compute without padding, and it puts the longest conversations in
            # one batch: random batches of 8 chatterbot conversations peak at ~750 tokens, the longest 8 at ~2,000.
            kwargs["train_sampling_strategy"] = "random"
        # bf16 on a CPU: lengths rounded up (training.shape_multiple): padded batches by trl's collator, padding-free
        # passes by the loss (rounding.py; trl's collator would split its pad tail into one-token sequences)
        multiple = shape_multiple(plan.hardware)
        if multiple and not padding_free:
            kwargs["pad_to_multiple_of"] = multiple
        config = SFTConfig(**kwargs, packing=opts.packing, padding_free=padding_free,
                           max_length=opts.max_length if opts.packing else None, prediction_loss_only=True)
        # conversations cut before their first assistant token are left out of the data too: eval loss, generate_eval,
        # samples and run.json's counts then cover the same conversations
        evaluation, kept = self.answerable(data.eval, tokenizer, opts, "eval", plan.where)
        data.eval = data.eval.select(kept) if len(kept) < len(data.eval) else data.eval
        train = evaluation  # trl's SFTTrainer requires a train_dataset: an evaluate-only trainer gets the eval set
        if data.train is not None:
            train, kept = self.answerable(data.train, tokenizer, opts, "train", plan.where, plan)
            data.train = data.train.select(kept) if kept is not None and len(kept) < len(data.train) else data.train
        trainer = SelectiveLossSFTTrainer(
            model=model,
            args=config,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=tokenizer,
        )
        trainer.tokens_per_pass = opts.tokens_per_pass if padding_free else None
        trainer.share_prefix = opts.share_prefix and padding_free
        trainer.pad_multiple = multiple if padding_free else None
        trainable_in_fp32(trainer.model)  # undo trl's bf16 cast of QLoRA adapters (see the function)
        add_adapters_in_fp32(trainer.model, plan.hardware.precision)  # bf16: early adapter updates not rounded away
        return trainer

    def evaluate(self, plan, trainer, data: TaskData, run_dir: Path) -> dict[str, Any]:
        metrics = {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))}
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
        metrics.update(generation_metrics(plan, trainer.model, trainer.processing_class, data.eval["messages"],
                                          run_dir, data.eval["context_turns"]))
        opts = plan.task_options
        samples = generate_samples(trainer.model, trainer.processing_class, data.eval.select(
            range(min(opts.num_samples, len(data.eval)))), opts.max_new_tokens)
        if samples and distributed.is_main():  # every rank generates them; rank 0 writes the run directory
            with (run_dir / "samples.jsonl").open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
        return metrics


def generate(model, tokenizer, messages: list[dict], max_new_tokens: int) -> str:
    """Greedy answer to a conversation that ends with a user turn."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    prompt = {k: v.to(model.device) for k, v in prompt.items()}
    model.eval()
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)


def generate_samples(model, tokenizer, conversations, max_new_tokens: int) -> list[dict]:
    """Greedy answers to each conversation's last assistant turn, beside the reference answer."""
    samples = []
    for row in conversations:
        messages = row["messages"]
        last = last_answer(messages, row.get("context_turns") or ())
        answer = generate(model, tokenizer, messages[:last], max_new_tokens)
        samples.append({"prompt": messages[:last], "reference": messages[last]["content"], "generated": answer})
    return samples


TASK = ChatTask()
