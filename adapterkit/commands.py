"""What each ``adapterkit`` command does with its parsed arguments: one small function per command that calls
the library (``cli.py`` parses the arguments and turns errors into one line and an exit code)."""

from __future__ import annotations

import json
import sys


def cmd_run(args) -> int:
    import shlex

    from . import distributed
    from .api import run
    from .errors import RunInterrupted
    from .launch import launch_overrides, launch_ranks

    sets = [*args.set, *launch_overrides(args)]
    if not distributed.is_worker():
        code = launch_ranks(args, sets)
        if code is not None:
            return code
    try:
        result = run(args.recipe, overrides=sets, output=args.output, overwrite=args.overwrite, force=args.force)
    except RunInterrupted as stop:
        again = ["adapterkit", "run", args.recipe, *(f"--set={s}" for s in args.set), "--output", str(stop.run_dir),
                 *(["--force"] if args.force else [])]
        print(f"adapterkit: {stop}\nadapterkit: resume with: {shlex.join(again)}", file=sys.stderr)
        return stop.exit_code
    if not distributed.is_main():
        return 0
    shown = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    print(json.dumps(shown, indent=2))
    print(f"run directory: {result.run_dir}")
    return 0


def _names(text: str | None, option: str) -> list[str] | None:
    """``--methods a,b`` -> ["a", "b"]; None when the option was not given; an empty list is an error."""
    from .errors import UserError

    if text is None:
        return None
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise UserError(f"{text!r}: give at least one name, comma-separated", where=option)
    return names


def _seeds(text: str) -> list[int]:
    from .errors import UserError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"{text!r}: expected comma-separated integers such as 0,1,2", where="--seeds") from None
    if not seeds:
        raise UserError(f"{text!r}: give at least one seed, e.g. --seeds 0,1", where="--seeds")
    return seeds


def cmd_plan(args) -> int:
    from .plan_report import plan_report

    methods = _names(args.methods, "--methods")
    from .launch import launch_overrides

    text, fits = plan_report(args.recipe, overrides=[*args.set, *launch_overrides(args)], profile=args.profile,
                             methods=methods)
    print(text)
    return 0 if fits else 1


def cmd_methods(args) -> int:
    if args.models:
        from .support import markdown_table

        print(markdown_table())
        return 0
    from .listing import methods_table

    print(methods_table())
    return 0


def cmd_eval(args) -> int:
    from .api import evaluate_run

    metrics = evaluate_run(args.run_dir, data=args.data)
    print(json.dumps({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, indent=2))
    return 0


def cmd_generate(args) -> int:
    from .api import generate
    from .errors import UserError

    if args.max_new_tokens < 1:
        raise UserError(f"{args.max_new_tokens}: must be at least 1", where="--max-new-tokens")
    if not args.prompt.strip():
        raise UserError("empty: give the text to answer", where="--prompt")
    print(generate(args.run_dir, args.prompt, max_new_tokens=args.max_new_tokens, safety=_safety(args)))
    return 0


def _safety(args):
    """The safety filter the --filter/--blocklist/--moderator* flags describe, or None."""
    if not (args.filter or args.blocklist or args.moderator):
        if args.moderator_labels or args.moderator_threshold is not None:
            from .errors import UserError

            raise UserError("needs --moderator RUN_DIR (or a --filter file naming one)", where="--moderator-labels")
        return None
    from .serve.safety import build_filter

    return build_filter(args.filter, args.blocklist, args.moderator, args.moderator_labels, args.moderator_threshold)


def _positive(value, option: str):
    from .errors import UserError

    if value is not None and not value > 0:
        raise UserError(f"{value}: must be positive", where=option)
    return value


def cmd_serve(args) -> int:
    import socket
    from dataclasses import fields

    from .errors import UserError
    from .serve import serve
    from .serve.schemas import Limits

    if not 0 < args.port < 65536:
        raise UserError(f"{args.port}: expected a port between 1 and 65535", where="--port")
    given = {f.name: _positive(getattr(args, f.name), "--" + f.name.replace("_", "-")) for f in fields(Limits)}
    limits = Limits(**{k: v for k, v in given.items() if v is not None})
    try:
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as err:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({err.strerror or err})", where="--port") from None
    serve(args.run_dirs, args.host, args.port, args.api_key, limits, _safety(args))
    return 0


def cmd_chat(args) -> int:
    from .serve.repl import chat

    _positive(args.max_tokens, "--max-tokens")
    return chat(args.run_dir, max_tokens=args.max_tokens, temperature=args.temperature, system=args.system,
                safety=_safety(args))


def cmd_compare(args) -> int:
    from .compare import compare

    seeds = _seeds(args.seeds)
    methods = _names(args.methods, "--methods")
    from .launch import launch_args

    done = compare(args.recipe, methods=methods, seeds=seeds, output=args.output, overrides=args.set,
                   zero_shot=not args.no_zero_shot, launch=launch_args(args), overwrite=args.overwrite,
                   resume=args.resume)
    return 1 if any(r["status"] == "failed" for r in done) else 0


def cmd_tune(args) -> int:
    from .tune import tune

    tune(args.recipe, space=args.space, trials=args.trials, metric=args.metric, direction=args.direction,
         parallel=args.parallel, output=args.output, resume=args.resume, budget=args.budget, overrides=args.set)
    return 0


def cmd_report(args) -> int:
    from .report import rebuild

    path = rebuild(args.dirs, args.output)
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0


def cmd_zero_shot(args) -> int:
    from .zeroshot import evaluate_base

    result = evaluate_base(args.recipe, overrides=args.set, output=args.output, overwrite=args.overwrite)
    print(json.dumps({k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}, indent=2))
    print(f"run directory: {result.run_dir}")
    return 0


def cmd_export(args) -> int:
    from .export import export

    record = export(args.run_dir, args.format, dtype=args.dtype, output=args.output, force=args.force,
                    overwrite=args.overwrite)
    check = record["check"]
    print(json.dumps({"format": record["format"], "dtype": record["dtype"], "passed": check["passed"],
                      "max_abs_logit_diff": check["max_abs_logit_diff"], "reference": check["reference"],
                      "exported": check["exported"]}, indent=2))
    print(f"export: {record['output']}")
    return 0
