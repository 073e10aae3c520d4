"""Generation-scored evaluation of a chat model: greedy answers to every eval conversation's last assistant
turn, generated in batches (left-padded prompts, KV cache), scored against the reference answers
(``task.generate_eval``, see ``tasks.generation``)."""

from __future__ import annotations

from pathlib import Path

from ..generation import scores, write_generations


def last_answer(messages: list[dict], context=()) -> int:
    """The index of the conversation's last assistant turn that is trained (not in ``context``: weighted 0)."""
    return max(i for i, m in enumerate(messages) if m["role"] == "assistant" and i not in context)


def prompts_and_references(conversations, contexts=None) -> tuple[list[list[dict]], list[str]]:
    """Each conversation up to its last trained assistant turn, and that turn's text (``contexts``: each
    conversation's ``context_turns``)."""
    prompts, references = [], []
    for messages, context in zip(conversations, contexts or [()] * len(conversations)):
        last = last_answer(messages, context)
        prompts.append(messages[:last])
        references.append(messages[last]["content"])
    return prompts, references


def generate_answers(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers to each prompt (a conversation ending with a user turn), ``batch_size`` at a time,
    prompts of similar length batched together; in the order given."""
    import torch

    ids = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
           for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = [""] * len(ids)
    model.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        # left padding: every prompt ends where generation starts
        input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in chunk], device=model.device)
        mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in chunk], device=model.device)
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, use_cache=True, pad_token_id=pad)
        for i, text in zip(chunk, tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)):
            answers[i] = text.strip()
    return answers


def generation_metrics(plan, model, tokenizer, conversations, run_dir: Path, contexts=None) -> dict[str, float]:
    """``task.generate_eval``'s scores over ``conversations``; the answers go to ``generations.jsonl``."""
    opts = plan.task_options
    if not opts.generate_eval:
        return {}
    prompts, references = prompts_and_references(conversations, contexts)
    answers = generate_answers(model, tokenizer, prompts, opts.max_new_tokens, plan.recipe.train.eval_batch)
    write_generations(run_dir, [{"prompt": p, "reference": r, "generated": a}
                                for p, r, a in zip(prompts, references, answers)])
    return scores(answers, references, opts.generate_eval)
