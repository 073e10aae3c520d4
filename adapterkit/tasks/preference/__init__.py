"""The preference task (DPO, IPO..., ORPO, SimPO, KTO through trl), one concept in three modules:

- ``task.py``      the task record: options, data, trainer, metrics, samples
- ``rows.py``      preference rows: checks with file:line, one shape for trl (messages or text)
- ``trainers.py``  ``task.loss`` -> trl's trainer and config; which losses need a reference model
"""

from .task import TASK, PreferenceOptions, PreferenceTask

__all__ = ["TASK", "PreferenceOptions", "PreferenceTask"]
