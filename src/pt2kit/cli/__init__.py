"""The `pt2kit` command line: a thin layer over the library.

Each subcommand lives in its own module in this package and defines `add_arguments(parser)`
and `run(args) -> int`. Modules import torch only inside `run`, so `--help` is instant.
Errors pt2kit raises on purpose become one line on stderr and their exit code:
0 success, 1 the model could not be exported (or checks failed), 2 bad usage or input.

May import: any package; nothing imports `cli` but `pt2kit.__main__`.
"""

from __future__ import annotations

import argparse
import contextlib
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


# commands that read `.pt2` files: each takes `--trust-import MODULE` (pt2kit.pytrees.trust)
READS_ARTIFACTS = {"compile", "verify", "inspect", "run", "tune", "bench", "migrate", "serve"}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), like every other pt2kit error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())}; see `{self.prog} --help`\n")


class _PipeSafeStdout:
    """stdout for one command: once the reader closes the pipe (`pt2kit ... --json | head`), the rest of the output
    goes to /dev/null, so the command still finishes and exits with its own code (a failed verify stays 1)."""

    def __init__(self, stream):
        self._stream = stream
        self.closed_by_reader = False

    def _guard(self, call, *args):
        if self.closed_by_reader:
            return None
        try:
            return call(*args)
        except BrokenPipeError:
            self.closed_by_reader = True
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            except (OSError, ValueError, AttributeError):  # not a real file (captured in tests): nothing to redirect
                pass
            return None

    def write(self, text):
        return self._guard(self._stream.write, text) or len(text)

    def flush(self):
        self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _torch_logs(verbose: bool):
    """torch's own log lines (Inductor's and Dynamo's warnings) at error level only, unless `-v` or `TORCH_LOGS` is set."""
    if verbose or os.environ.get("TORCH_LOGS"):
        yield
        return
    import logging

    import torch._logging

    torch._logging.set_logs(all=logging.ERROR)
    try:
        yield
    finally:
        torch._logging.set_logs()  # torch's defaults again (in-process callers, tests)


def _exit_message(exc: SystemExit) -> tuple[str, int]:
    """Who called `sys.exit` inside a command, read from the frame that raised: the model's code (exit 2, the user
    can remove the call), a library (exit 1, named), or pt2kit itself (a bug: exit 1, please report)."""
    import sysconfig

    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame if tb is not None else None
    filename = os.path.abspath(frame.f_code.co_filename) if frame else ""
    module = str(frame.f_globals.get("__name__", "")) if frame else ""
    where = f"{filename}:{tb.tb_lineno}" if tb is not None else "an unknown place"
    debug = "(set PT2KIT_DEBUG=1 for the traceback)"
    libraries = {os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib")}
    if module == "pt2kit" or module.startswith("pt2kit."):
        return f"error: unexpected SystemExit({exc.code!r}) from pt2kit at {where} {debug}, and please report it", 1
    if any(filename.startswith(folder + os.sep) for folder in libraries) or "site-packages" in filename:
        top = module.split(".")[0] or "a library"
        return (f"error: the library `{top}` called `sys.exit({exc.code!r})` at {where} while pt2kit ran the model; "
                f"this is not the model's own code {debug}"), 1
    return (f"error: the model's code called `sys.exit({exc.code!r})` at {where} while pt2kit ran it; remove that call "
            f"from the model {debug}"), 2


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
        p.add_argument("-v", "--verbose", action="store_true",
                       help="let torch's and Inductor's own warnings, logs and autotune tables through to stderr")
        if name in READS_ARTIFACTS:
            p.add_argument("--trust-import", metavar="MODULE", action="append", default=[],
                           help="let a .pt2 make pt2kit import MODULE (and modules under it) for its pytree types; without it "
                                "pt2kit imports only modules already imported and `transformers` (repeatable)")
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
    progress.set_verbose(args.verbose)
    try:
        if getattr(args, "trust_import", None):
            from pt2kit.pytrees.trust import trust_imports

            trust_imports(args.trust_import)
    except Pt2kitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    # torch's own deprecation chatter from its pickling of pytree specs: nothing a user can act on
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    stdout = sys.stdout
    sys.stdout = _PipeSafeStdout(stdout)
    if not args.verbose:
        _quiet_torchao()
    try:
        with warnings.catch_warnings(), _torch_logs(args.verbose):
            if not args.verbose:  # torch's, ONNX's and transformers' warnings are not the user's to act on
                warnings.filterwarnings("ignore")
                warnings.filterwarnings("default", message="pt2kit")  # pt2kit's own (a region run eagerly, ...)
            code = args._run(args)
        sys.stdout.flush()  # a reader gone by now must not turn the exit code into a traceback at shutdown
        return code
    except Pt2kitError as exc:
        print(f"error: {' '.join(str(exc).split()) if exc.exit_code == 2 else str(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # a pipe closed under a write pt2kit does not route through sys.stdout
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # pt2kit never exits from inside a command: the model's code or a library did
        if os.environ.get("PT2KIT_DEBUG"):
            raise
        message, code = _exit_message(exc)
        print(message, file=sys.stderr)
        return code
    except Exception as exc:  # a bug in pt2kit or torch: one line, the traceback only on request
        if os.environ.get("PT2KIT_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {first} (set PT2KIT_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1
    finally:
        sys.stdout = stdout


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
