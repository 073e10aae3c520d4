"""``adapterkit run RECIPE --devices N``: several worker processes through torchrun (``torch.distributed.run``,
the engine itself, called in-process), after the preflight has planned and checked the run once.

    one node       adapterkit run RECIPE --devices 2                          (torchrun --standalone)
    several nodes  adapterkit run RECIPE --devices 8 --nnodes 2 --node-rank R --master-addr HOST --master-port P
    SLURM          srun adapterkit run RECIPE --devices 8   (--nnodes, --node-rank, --master-addr from SLURM_*)
    already a rank torchrun ... -m adapterkit run RECIPE  or a Kubernetes PyTorchJob (WORLD_SIZE, RANK, MASTER_*):
                   adapterkit runs as that rank and launches nothing

Each worker is ``python -m adapterkit run`` with the same recipe, overrides and run directory; its errors are one
line each (``cli.main``), and when a rank fails or is killed torchrun's agent stops the others (no hang) and
this prints one line naming the rank and how it ended.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

log = logging.getLogger("adapterkit")
DEFAULT_PORT = 29500


def launch_overrides(args) -> list[str]:
    """``--devices``/``--nnodes`` (or SLURM's node count) as recipe overrides of ``[hardware]``."""
    from .errors import UserError

    sets = []
    for flag in ("devices", "nnodes"):  # 0 was taken for "not given" and ignored
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UserError(f"--{flag} {value}: give at least 1")
    if getattr(args, "devices", None) is not None:
        sets.append(f"hardware.devices={args.devices}")
    nnodes = getattr(args, "nnodes", None) or _slurm("SLURM_NNODES")
    if nnodes and int(nnodes) > 1:
        sets.append(f"hardware.nodes={int(nnodes)}")
    return sets


def launch_args(args) -> list[str]:
    """The launch flags given on the command line, to hand on (``compare`` passes them to each run)."""
    out = []
    for flag in ("devices", "nnodes", "node_rank", "master_addr", "master_port"):
        value = getattr(args, flag, None)
        if value is not None:
            out += [f"--{flag.replace('_', '-')}", str(value)]
    return out


def _slurm(name: str) -> str | None:
    return os.environ.get(name) if "SLURM_JOB_ID" in os.environ else None


def _slurm_master() -> str | None:
    """The first host of the SLURM allocation (``scontrol show hostnames``), else None."""
    nodelist = _slurm("SLURM_JOB_NODELIST")
    if not nodelist:
        return None
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return None


def torchrun_argv(hardware, args, worker_args: list[str]) -> list[str]:
    """torchrun's own command line for this launch (its ``parse_args`` builds the rest)."""
    from .errors import UserError

    argv = ["--nproc-per-node", str(hardware.devices), "--max-restarts", "0", "--monitor-interval", "1"]
    if hardware.nodes == 1:
        argv.append("--standalone")  # a free local port, no master address needed
    else:
        node_rank = args.node_rank if args.node_rank is not None else _slurm("SLURM_NODEID")
        master = args.master_addr or os.environ.get("MASTER_ADDR") or _slurm_master()
        if node_rank is None or not master:
            raise UserError(f"{hardware.nodes} nodes need --node-rank and --master-addr (or run under SLURM)",
                            where="--nnodes")
        port = args.master_port or int(os.environ.get("MASTER_PORT", DEFAULT_PORT))
        argv += ["--nnodes", str(hardware.nodes), "--node-rank", str(node_rank), "--master-addr", master,
                 "--master-port", str(port)]
    return [*argv, "--module", "adapterkit", *worker_args]


def _quiet_agent() -> None:
    """torchrun's agent logs every signal it sends and a traceback-sized summary; the user gets one line."""
    for name in ("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def failure_lines(err) -> tuple[list[str], int]:
    """One line per failed rank of a ``ChildFailedError``, root cause first, and the exit code to return."""
    root_rank, root = err.get_first_failure()
    lines, code = [], root.exitcode if root.exitcode > 0 else 1
    for rank, failure in sorted(err.failures.items(), key=lambda kv: (kv[0] != root_rank, kv[0])):
        if failure.exitcode < 0:
            how = f"was killed by {failure.signal_name()}"
            if rank != root_rank and failure.signal_name() == "SIGTERM":
                how = "was stopped because another rank failed"
        else:
            how = f"exited with code {failure.exitcode} (its error is above)"
        lines.append(f"rank {rank} (pid {failure.pid}) {how}")
    return lines, code


def launch(hardware, args, worker_args: list[str]) -> int:
    """Run ``adapterkit <worker_args>`` as ``hardware.devices`` ranks on this node; returns the exit code."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    argv = torchrun_argv(hardware, args, worker_args)
    log.info("launching %d rank(s) on this node (world size %d, strategy %s) through torchrun", hardware.devices,
             hardware.world_size, hardware.strategy)
    _quiet_agent()
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // hardware.devices)))
    try:
        torchrun.run(torchrun.parse_args(argv))
    except ChildFailedError as err:
        lines, code = failure_lines(err)
        for line in lines:
            print(f"adapterkit: error: {line}", file=sys.stderr)
        print("adapterkit: rerunning the same command (same --output) resumes from the last complete checkpoint",
              file=sys.stderr)
        return code
    except (SignalException, KeyboardInterrupt) as stop:  # Ctrl-C / SIGTERM to the launcher: the agent stopped the ranks
        signum = int(getattr(stop, "sigval", 2))
        print(f"adapterkit: interrupted ({signal.Signals(signum).name}): the ranks were stopped; rerunning the same "
              "command (same --output) resumes from the last complete checkpoint", file=sys.stderr)
        return 128 + signum
    return 0


def launch_ranks(args, sets: list[str]) -> int | None:
    """Several devices (``--devices``, ``--nnodes``, the profile's ``devices``) or a sharded strategy: plan and
    check once, then start the ranks through torchrun and return their exit code; None for a plain one-process run."""
    from pathlib import Path

    from . import rundir
    from .hardware import resolve
    from .plan import load_recipe
    from .preflight import preflight

    recipe = load_recipe(args.recipe, sets)
    hardware = resolve(recipe.hardware, recipe.source)
    if hardware.world_size == 1 and hardware.strategy in ("auto", "ddp"):  # FSDP/ZeRO need a process group, even of 1
        return None
    plan = preflight(recipe, force=args.force).plan  # refusals, strategy, memory verdict: before any rank starts
    output = Path(args.output) if args.output else rundir.default_run_dir(recipe.name)
    if not args.node_rank:
        rundir.check_output(output, overwrite=args.overwrite)
    worker = ["run", args.recipe, *(f"--set={s}" for s in sets), f"--set=hardware.strategy={plan.hardware.strategy}",
              "--output", str(output), *(["--overwrite"] if args.overwrite else []), *(["--force"] if args.force else [])]
    return launch(plan.hardware, args, worker)
