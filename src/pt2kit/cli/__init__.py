"""The `pt2kit` command line: a thin layer over the library.

Each subcommand lives in its own module in this package and defines `add_arguments(parser)`
and `run(args) -> int`. Modules import torch only inside `run`, so `--help` is instant.
Errors pt2kit raises on purpose become one line on stderr and their exit code:
0 success, 1 the model could not be exported (or checks failed), 2 bad usage or input.

May import: any package; nothing imports `cli` but `pt2kit.__main__`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

# (subcommand, module, one-line help), in pipeline order
COMMANDS: list[tuple[str, str, str]] = [
    ("export", "pt2kit.cli.export_cmd", "capture a model with torch.export and write a .pt2 program with a manifest"),
    ("diagnose", "pt2kit.cli.diagnose_cmd", "list every export blocker in one run, each at your line with the fix as code"),
    ("compile", "pt2kit.cli.compile_cmd", "build an AOTInductor package (.so inside) from a .pt2 or TARGET, with a build cache"),
    ("verify", "pt2kit.cli.verify_cmd", "compare an artifact's outputs with the eager model's, across the dynamic range"),
    ("inspect", "pt2kit.cli.inspect_cmd", "describe a .pt2: inputs, outputs, dynamic dims, weights, operators"),
    ("run", "pt2kit.cli.run_cmd", "run a .pt2 on inputs, without the model's source code"),
    ("tune", "pt2kit.cli.tune_cmd", "build candidate configs, keep those within a tolerance of float32 eager, write the fastest"),
    ("bench", "pt2kit.cli.bench_cmd", "benchmark eager, torch.compile, export, AOTInductor and ONNX Runtime side by side"),
    ("cpp-runner", "pt2kit.cli.cpp_runner_cmd", "write and build a C++ program that runs an AOTInductor package without Python"),
    ("migrate", "pt2kit.cli.migrate_cmd", "convert a TorchScript archive (.pt) to a verified .pt2 program, with blockers at the source line"),
    ("serve", "pt2kit.cli.serve_cmd", "serve artifacts over HTTP: Open Inference Protocol v2, dynamic batching, Prometheus metrics"),
    ("survey", "pt2kit.cli.survey_cmd", "export, verify and compile many models; print a coverage table with each blocker"),
]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), like every other pt2kit error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    from pt2kit import __version__

    parser = _Parser(
        prog="pt2kit",
        description="Ahead-of-time deployment of PyTorch models: export, diagnose, fix, compile, verify, benchmark.",
        epilog="Exit codes: 0 success, 1 the model could not be exported or a check failed, 2 bad usage or input.",
    )
    parser.add_argument("--version", action="version", version=f"pt2kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        module.add_arguments(p)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pt2kit` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from pt2kit import progress
    from pt2kit.errors import Pt2kitError

    progress.set_quiet(args.quiet)
    # torch's own deprecation chatter from its pickling of pytree specs: nothing a user can act on
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    _quiet_torchao()
    try:
        return args._run(args)
    except Pt2kitError as exc:
        print(f"error: {' '.join(str(exc).split()) if exc.exit_code == 2 else str(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `pt2kit ... | head` closed stdout early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # pt2kit never exits from inside a command: the model's own code called sys.exit
        if os.environ.get("PT2KIT_DEBUG"):
            raise
        print(f"error: the model's code called `sys.exit({exc.code!r})` while pt2kit ran it; remove that call from the model "
              "(set PT2KIT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug in pt2kit or torch: one line, the traceback only on request
        if os.environ.get("PT2KIT_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {first} (set PT2KIT_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1


class _NoEnumConstantNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "register_constant() on Enum subclasses is deprecated" not in record.getMessage()


def _quiet_torchao() -> None:
    """torchao, when installed, is imported by transformers too (its quantizer integration), not only by
    `--quantize`: on a machine without its CUDA kernels it logs a "Failed to load" line per kernel library, and
    torch logs a deprecation notice per Enum it registers. Neither is anything the user can act on. Configures the
    two loggers only; imports nothing."""
    logging.getLogger("torchao").setLevel(logging.ERROR)
    pytree = logging.getLogger("torch.utils._pytree")
    if not any(isinstance(f, _NoEnumConstantNotice) for f in pytree.filters):
        pytree.addFilter(_NoEnumConstantNotice())
