"""The hand-written reference: chat SFT of SmolLM2-135M-Instruct with LoRA, plain trl + peft.

What a user would write with trl 1.x for the settings of the chat-throughput issue: LoRA r=8, alpha 16,
dropout 0 (the issue's "best found" variant), ``target_modules="all-linear"``, ``SFTTrainer`` + ``SFTConfig``
with loss on the assistant turns only, max length 256, batch 8, lr 2e-4, fp32 on the CPU
(``use_cpu=True, bf16=False``), no gradient checkpointing (trl's config turns it on by default),
padded batches (trl's default collator, ``padding_free=False``), seed 0, no checkpoints. After training,
``trainer.evaluate()`` on the held-out conversations. It reads the same train/eval JSONL files
(``{"messages": [...]}`` a line) that ``run.py`` hands adapterkit.

Loss on assistant turns: trl's ``assistant_only_loss=True`` needs ``{% generation %}`` markers in the chat
template, and SmolLM2's ChatML template has none; trl 1.x then tries to swap in a patched training
template, but has none for SmolLM2 and raises ("patching is not supported for this template"). trl's
other route, the conversational prompt/completion format, puts the loss on the last assistant turn
only. So this script does what is left to a user who wants every assistant turn scored: it tokenizes
each conversation itself with the tokenizer's chat template and hands trl ``input_ids`` + ``labels``, with ``labels``
-100 everywhere except the assistant turns. The tokens of assistant turn i are those between the
rendering of ``messages[:i]`` with the generation prompt and the rendering of ``messages[:i+1]``
(the answer, its ``<|im_end|>`` and the newline after it). trl leaves a dataset that already has
``input_ids`` untokenized, keeps its ``labels``, truncates to ``max_length`` and pads batches. This gives the
same loss positions as adapterkit's chat task, so both eval losses score the same tokens. Conversations
get the template's default system prompt, as adapterkit's default does (no ``system_prompt`` set).

    python benchmarks/chat/plain_sft.py --model DIR --train train.jsonl --eval eval.jsonl \
        --max-steps 100 --output out/plain

Writes ``OUTPUT/result.json``: train seconds (``trainer.train()`` only), steps, eval loss, non-padding
train tokens (``include_num_input_tokens_seen="non_padding"``: the attention mask summed over the batches
the trainer saw), non-padding tokens and conversations per second, peak RSS (MiB), and token counts of
the train set.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="SmolLM2-135M-Instruct folder")
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-batch-size", type=int, default=16,
                        help="default 16, adapterkit's default (2 x batch), so both average eval loss over the same "
                             "batches")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def to_ids(messages, generation_prompt=False):
        out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt,
                                            return_dict=True)
        return out["input_ids"]

    def tokenize(row):
        messages = row["messages"]
        input_ids = to_ids(messages)
        labels = [-100] * len(input_ids)
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start, end = len(to_ids(messages[:i], generation_prompt=True)), len(to_ids(messages[: i + 1]))
            assert input_ids[:end] == to_ids(messages[: i + 1]), "template does not render prefix by prefix"
            labels[start:end] = input_ids[start:end]
        return {"input_ids": input_ids, "labels": labels}

    data = load_dataset("json", data_files={"train": args.train, "eval": args.eval})
    data = data.map(tokenize, remove_columns=["messages"])
    lengths = [len(ids) for ids in data["train"]["input_ids"]]
    labelled = [sum(x != -100 for x in lbl) for lbl in data["train"]["labels"]]

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    config = SFTConfig(
        output_dir=str(Path(args.output) / "checkpoints"),
        max_length=args.max_length,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        max_steps=args.max_steps,
        learning_rate=2e-4,
        seed=args.seed,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        padding_free=False,
        packing=False,
        include_num_input_tokens_seen="non_padding",
        save_strategy="no",
        report_to="none",
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=data["train"], eval_dataset=data["eval"],
                         processing_class=tokenizer, peft_config=peft_config)
    trainer.model.print_trainable_parameters()

    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    metrics = trainer.evaluate()

    steps = trainer.state.global_step
    tokens = int(trainer.state.num_input_tokens_seen)
    conversations = steps * args.batch_size
    result = {
        "train_seconds": train_seconds,
        "steps": steps,
        "seconds_per_step": train_seconds / steps if steps else None,
        "eval_loss": metrics["eval_loss"],
        "eval_conversations": len(data["eval"]),
        "train_tokens": tokens,
        "non_pad_tokens_per_second": tokens / train_seconds,
        "conversations": conversations,
        "conversations_per_second": conversations / train_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "gradient_checkpointing": bool(getattr(trainer.model, "is_activation_checkpointing", False)),
        "train_conversations": len(lengths),
        "train_tokens_per_conversation_mean": statistics.fmean(lengths),
        "train_tokens_per_conversation_median": statistics.median(lengths),
        "train_conversations_over_max_length": sum(n > args.max_length for n in lengths),
        "train_labelled_token_share": sum(labelled) / sum(lengths),
    }
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
