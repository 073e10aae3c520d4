"""The hand-written baseline: all-MiniLM-L6-v2 on Rotten Tomatoes with plain transformers (+ peft).

What a user would write without adapterkit, in the two textbook variants the issue measured:
``--method lora``: LoRA r=8 (alpha 16, dropout 0.1) on ``query`` and ``value``, learning rate 2e-4;
``--method full``: every weight trained, learning rate 5e-5. Both fp32, ``Trainer`` defaults otherwise
(linear decay, no warmup, AdamW), batch 32, texts padded to ``max_length`` 64. It reads the same
train/eval JSONL files ``run.py`` hands adapterkit.

    python benchmarks/overhead/plain_trainer.py --model DIR --train train.jsonl --eval eval.jsonl \
        --method lora --max-steps 336 --seed 0 --output out/plain-lora

Writes ``OUTPUT/result.json``: train seconds, non-padding tokens/s, peak RSS, eval loss, accuracy, macro-F1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--learning-rate", type=float, help="default 2e-4 for lora, 5e-5 for full")
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    import resource

    import numpy as np
    from datasets import load_dataset
    from peft import LoraConfig, TaskType, get_peft_model
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(args.seed)
    data = load_dataset("json", data_files={"train": args.train, "eval": args.eval})
    labels = sorted(set(data["train"]["label"]))
    label2id = {name: i for i, name in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def preprocess(batch):
        enc = tokenizer(batch["text"], truncation=True, padding="max_length", max_length=args.max_length)
        enc["labels"] = [label2id[x] for x in batch["label"]]
        return enc

    data = data.map(preprocess, batched=True, remove_columns=["text", "label"])
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    if args.method == "lora":
        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.1,
                            target_modules=["query", "value"])
        model = get_peft_model(model, config)
        model.print_trainable_parameters()
    learning_rate = args.learning_rate or (2e-4 if args.method == "lora" else 5e-5)

    def compute_metrics(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {"accuracy": accuracy_score(prediction.label_ids, predicted),
                "macro_f1": f1_score(prediction.label_ids, predicted, average="macro")}

    training_args = TrainingArguments(
        output_dir=str(Path(args.output) / "checkpoints"),
        learning_rate=learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        num_train_epochs=1,
        max_steps=args.max_steps,
        seed=args.seed,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["eval"],
                      compute_metrics=compute_metrics)
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    metrics = trainer.evaluate()
    tokens = int(trainer.state.num_input_tokens_seen)
    result = {"method": args.method, "learning_rate": learning_rate,
              "train_seconds": train_seconds, "steps": trainer.state.global_step,
              "train_tokens": tokens, "tokens_per_second": tokens / train_seconds,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "eval_loss": metrics["eval_loss"], "eval_accuracy": metrics["eval_accuracy"],
              "eval_macro_f1": metrics["eval_macro_f1"]}
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
