"""Human-readable tables of the registries (``adapterkit methods``)."""

from __future__ import annotations


def methods_table() -> str:
    from rich.console import Console
    from rich.table import Table

    from .methods import METHODS
    from .tasks import TASKS

    table = Table(title="adapterkit methods")
    for column in ("method", "trains", "needs", "suits tasks", "default lr"):
        table.add_column(column)
    for m in METHODS:
        needs = [*m.needs.packages, *(["4-bit kernels"] if m.needs.quantization else []),
                 *(["no grad. checkpointing"] if m.needs.injects_past_key_values else [])]
        tasks = ", ".join(m.needs.tasks) if m.needs.tasks is not None else ", ".join(TASKS.names())
        table.add_row(m.name, m.trains, ", ".join(needs) or "-", tasks, f"{m.default_learning_rate:g}")
    console = Console(width=140, record=True)
    with console.capture() as capture:
        console.print(table)
    return capture.get()
