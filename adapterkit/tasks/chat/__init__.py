"""The chat task (supervised fine-tuning on conversations), one concept in five modules:

- ``task.py``      the task record: data, options, trainer, metrics, generation
- ``answers.py``   generation-scored eval (``task.generate_eval``): batched greedy answers, ROUGE/BLEU/...
- ``template.py``  the chat template: rendering, assistant-token masks, a default system prompt
- ``loss.py``      the trainer's loss: LM head on labelled positions only, runs of ``tokens_per_pass``
- ``prefix.py``    the opening every conversation of a padding-free row shares, computed once
"""

from .task import TASK, ChatOptions, ChatTask, generate

__all__ = ["TASK", "ChatOptions", "ChatTask", "generate"]
