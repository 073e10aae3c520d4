"""Command line: argument parsing only; every command calls a plain function of the library.

Errors the user can fix print as one line (``adapterkit: error: FILE: KEY: what is wrong``) and exit
with code 2 (bad input) or 3 (training diverged); no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import commands


def _filter_flags(p) -> None:
    p.add_argument("--filter", metavar="FILE", help="safety filter settings (TOML or JSON; see adapterkit.serve.safety)")
    p.add_argument("--blocklist", metavar="FILE", help="words (or re:REGEX) to block, one a line")
    p.add_argument("--moderator", metavar="RUN_DIR", help="a classification run that judges inputs and answers")
    p.add_argument("--moderator-labels", metavar="A,B", help="the moderator labels that block")
    p.add_argument("--moderator-threshold", type=float, help="probability at which they block (default 0.8)")


def _launch_flags(p) -> None:
    g = p.add_argument_group("several devices (torchrun; see README 'More than one device')")
    g.add_argument("--devices", type=int, help="worker processes on this node, one per device (CPU: per core); "
                                               "default: the profile's hardware.devices")
    g.add_argument("--nnodes", type=int, help="nodes taking part (default 1, or SLURM_NNODES under SLURM)")
    g.add_argument("--node-rank", type=int, help="this node's rank, 0 to nnodes-1 (SLURM: SLURM_NODEID)")
    g.add_argument("--master-addr", help="host of node 0 (default $MASTER_ADDR, or the first SLURM host)")
    g.add_argument("--master-port", type=int, help="port on node 0 (default $MASTER_PORT or 29500)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adapterkit", description="Parameter-efficient fine-tuning toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train and evaluate a recipe, write a run directory")
    p.add_argument("recipe", help="recipe TOML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set train.max_steps=20 (repeatable)")
    p.add_argument("--output", help="run directory (default runs/<recipe>-<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")
    p.add_argument("--force", action="store_true", help="run even if the memory planner says it will not fit")
    _launch_flags(p)
    p.set_defaults(func=commands.cmd_run)

    p = sub.add_parser("plan", help="predict peak memory from the model config (no weights loaded): will it fit? "
                                    "(exit 1 if not)")
    p.add_argument("recipe", help="recipe TOML file")
    p.add_argument("--profile", help="hardware profile to plan for (default: the recipe's hardware.profile)")
    p.add_argument("--methods", help="comma-separated methods to compare side by side, e.g. lora,qlora,full")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--devices", type=int, help="plan per device for this many devices per node (hardware.devices)")
    p.add_argument("--nnodes", type=int, help="... on this many nodes (hardware.nodes)")
    p.set_defaults(func=commands.cmd_plan)

    p = sub.add_parser("methods", help="list the registered methods")
    p.add_argument("--models", action="store_true",
                   help="which architectures x methods x tasks are supported (the table CI's matrix trains)")
    p.set_defaults(func=commands.cmd_methods)

    p = sub.add_parser("eval", help="re-evaluate a finished run")
    p.add_argument("run_dir")
    p.add_argument("--data", help="evaluate on this file or dataset instead of the run's eval split")
    p.set_defaults(func=commands.cmd_eval)

    p = sub.add_parser("generate", help="answer a prompt with a finished chat run")
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    _filter_flags(p)
    p.set_defaults(func=commands.cmd_generate)

    p = sub.add_parser("serve", help="answer with finished runs over HTTP (OpenAI-compatible chat, /v1/classify, "
                                     "a chat page at /)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs to serve; each is a model named after its "
                                                                   "folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require Authorization: Bearer KEY on /v1/* (default: $ADAPTERKIT_API_KEY)")
    p.add_argument("--max-tokens", type=int, help="cap (and default) of a request's max_tokens (default 512)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 1000000)")
    p.add_argument("--max-pending", type=int, help="requests in progress at once; more get 429 (default 64)")
    p.add_argument("--request-seconds", type=float, help="time per request (default 120)")
    p.add_argument("--max-batch", type=int, help="chat requests generated together (default 16)")
    p.add_argument("--batch-window-ms", type=float, help="how long a request waits for others to batch with "
                                                         "(default 10)")
    p.add_argument("--max-inputs", type=int, help="texts in one /v1/classify request (default 64)")
    _filter_flags(p)
    p.set_defaults(func=commands.cmd_serve)

    p = sub.add_parser("chat", help="chat with a finished chat run in the terminal (/reset, /system TEXT, /exit)")
    p.add_argument("run_dir")
    p.add_argument("--max-tokens", type=int, default=256, help="longest answer in tokens (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy")
    p.add_argument("--system", help="system prompt")
    _filter_flags(p)
    p.set_defaults(func=commands.cmd_chat)

    p = sub.add_parser("compare", help="run a recipe once per method and seed, each in its own process; "
                                       "write results/*.json and report.md/html")
    p.add_argument("recipe", help="recipe TOML file (its data, split, budget and hardware are shared)")
    p.add_argument("--methods", help="comma-separated methods (default: every registered method)")
    p.add_argument("--seeds", default="0", help="comma-separated train.seed values (default: 0)")
    p.add_argument("--output", help="comparison folder (default runs/compare-<recipe>-<timestamp>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key for every run; method.* keys apply to the recipe's own method only")
    p.add_argument("--no-zero-shot", action="store_true", help="leave out the untuned base model's row")
    p.add_argument("--resume", action="store_true", help="finish or extend the comparison in --output: keep its ok "
                                                         "results, run the rest (new methods or seeds, failed runs)")
    p.add_argument("--overwrite", action="store_true", help="replace the comparison in --output (every run again)")
    _launch_flags(p)
    p.set_defaults(func=commands.cmd_compare)

    p = sub.add_parser("tune", help="search hyper-parameters (Optuna: TPE + Hyperband pruning); trials the planner "
                                    "says will not fit are never started; writes report.md/html and best_recipe.toml")
    p.add_argument("recipe", help="recipe TOML file; its [tune] table is the search space")
    p.add_argument("--space", action="append", default=[], metavar="KEY=VALUE",
                   help='a search dimension, e.g. --space \'method.r=[4,8,16]\' --space train.learning_rate=1e-5..1e-2:log '
                        "(repeatable; replaces the recipe's [tune] entry for that key)")
    p.add_argument("--trials", type=int, default=8, help="trials in the whole search, resumed ones included (default 8)")
    p.add_argument("--metric", help="eval metric to optimise (default: the task's, e.g. eval_macro_f1)")
    p.add_argument("--direction", choices=["maximize", "minimize"], help="default: the metric's")
    p.add_argument("--parallel", type=int, default=1, help="trials run at once by this process (default 1)")
    p.add_argument("--output", help="search folder (default runs/tune-<recipe>-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the search in --output (or join it as a worker)")
    p.add_argument("--budget", help="stop starting trials after this long, e.g. 30m, 2h, 90s")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key for every trial; method.* keys apply to the recipe's own method only")
    p.set_defaults(func=commands.cmd_tune)

    p = sub.add_parser("report", help="rebuild report.md/html from comparison folders' results/*.json")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="comparison folders to merge")
    p.add_argument("--output", help="where to write the report (default: the first DIR)")
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser("zero-shot", help="evaluate a recipe's base model without tuning (fresh task head)")
    p.add_argument("recipe", help="recipe TOML file (its [method] is ignored)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    p.add_argument("--output", help="run directory (default runs/<recipe>-zero-shot-<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")
    p.set_defaults(func=commands.cmd_zero_shot)

    p = sub.add_parser("export", help="export a finished run (merged transformers folder, GGUF, ONNX) and check "
                                      "it against the run's own model; writes export.json")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, help="merged | gguf | onnx")
    p.add_argument("--dtype", help="merged: fp32 (default), bf16, fp16; gguf: f16 (default), q8_0, bf16; onnx: fp32")
    p.add_argument("--output", help="export folder (default RUN_DIR/export-<format>-<dtype>)")
    p.add_argument("--force", action="store_true", help="keep an export its self-check refuses")
    p.add_argument("--overwrite", action="store_true", help="replace another run's export in --output (the same "
                                                            "run's export is refreshed without it)")
    p.set_defaults(func=commands.cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from . import distributed
    from .errors import TrainingFailed, UserError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="adapterkit: %(message)s")

    rank = f"rank {distributed.rank()}: " if distributed.is_worker() else ""
    try:
        return args.func(args)
    except (UserError, TrainingFailed) as err:
        print(f"adapterkit: error: {rank}{err}", file=sys.stderr)
        return err.exit_code
    except Exception as err:  # a rank's unexpected failure: one line (the launcher names the rank's exit)
        if not rank:
            raise
        print(f"adapterkit: error: {rank}{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("adapterkit: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.finish()


if __name__ == "__main__":
    sys.exit(main())
