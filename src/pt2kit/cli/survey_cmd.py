"""`pt2kit survey TARGET... | --from FILE`: export/verify/compile many models, print coverage."""

from __future__ import annotations

import argparse
import signal

from pt2kit.cli.common import add_json_argument, emit


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="file.py:NAME, pkg.mod:NAME, or file.py (every entry of its SURVEY dict; docs/survey.md)")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="a list of targets, one `TARGET [--input SPEC]... [--dynamic SPEC]` a line")
    p.add_argument("--stages", default="export,verify", metavar="LIST",
                   help="comma-separated stages from export,verify,compile (default export,verify)")
    p.add_argument("--shapes", metavar="LIST",
                   help="static, dynamic or static,dynamic (default static; dynamic with --dynamic-batch)")
    p.add_argument("--dynamic", metavar="SPEC", help="dynamic dims for targets that declare none (--dynamic grammar)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="targets that declare no dynamic dims get dim 0 of every tensor input as one dynamic `batch`")
    p.add_argument("--device", default="cpu", help="run models, programs and packages on this device (default cpu)")
    p.add_argument("--samples", type=int, default=2, help="random verify inputs besides the example (default 2)")
    p.add_argument("--specialization-check", action="store_true", help="also look for baked-in shape branches (slower)")
    p.add_argument("--isolate", action="store_true", help="run every row in its own process (survives crashes)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per row with --isolate (default 600)")
    p.add_argument("--workdir", metavar="DIR", help="keep the .pt2 files here (default: a temporary folder)")
    p.add_argument("--input", "-i", action="append", default=[], metavar="SPEC",
                   help="inputs for targets that define none (the --input grammar)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.survey.run import SurveyOptions, survey_models
    from pt2kit.survey.targets import collect_entries

    split = lambda text: tuple(s.strip() for s in text.split(",") if s.strip())  # noqa: E731
    shapes = split(args.shapes) if args.shapes else (("dynamic",) if args.dynamic_batch else ("static",))
    options = SurveyOptions(
        stages=split(args.stages), shapes=shapes, dynamic_batch=args.dynamic_batch, device=args.device,
        samples=args.samples, check_specialization=args.specialization_check, isolate=args.isolate,
        timeout=args.timeout, workdir=args.workdir,
    )
    entries = collect_entries(args.targets, args.from_file, args.input, args.dynamic, args.seed)
    # `timeout` and job schedulers stop with SIGTERM: end like Ctrl-C, with the table of the rows done so far
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = survey_models(entries, options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(report, args.json)
    return 0 if report.ok else 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
