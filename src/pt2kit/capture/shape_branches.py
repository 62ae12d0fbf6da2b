"""Which input sizes the user's code decides on, and whether by a Python branch.

Repair (pt2kit.shapes.repair) must tell a constraint forced by the model's structure (a weight's
size, an operator combining two inputs) from one forced by `if x.shape[0] > 5:` in the user's
code: the first may be applied, the second would bake one side of the branch into the program.

`size_guards` re-traces non-strictly with every dim `Dim.AUTO` and records, from torch's
symbolic-shapes log, each symbol's input dim (`create_symbol s0 ... for L['x'].size()[0]`) and
each guard added from a line of user code. Symbols are mapped when they are created, so a guard
that pins a dim to a constant (`if x.shape[1] == 8:`, after which the symbol is gone from the
program) is still traced back to its input dim.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import re

from pt2kit.capture.capture import SourceLocation, auto_dynamic_shapes, export_module, is_user_file, quiet_torch_logs

_LOGGER = "torch.fx.experimental.symbolic_shapes"
_TOP_LEVEL_SOURCE = re.compile(r"^L\['(\w+)'\]\.size\(\)\[(\d+)\]$")


def is_branch(code: str) -> bool:
    """True when a source line decides control flow: `if`/`elif`/`while`/`assert` or `a if c else b`."""
    text = code.strip()
    if re.match(r"(if|elif|while|assert)\b", text):
        return True
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.IfExp, ast.If, ast.While, ast.Assert)) for n in ast.walk(tree))


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.symbols: dict[str, tuple[str, int]] = {}
        self.guards: list[tuple[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message, args = str(record.msg), record.args or ()
        if message.startswith("create_symbol") and len(args) >= 3:
            m = _TOP_LEVEL_SOURCE.match(str(args[2]))
            if m:
                self.symbols.setdefault(str(args[0]), (m[1], int(m[2])))
        elif "[guard added]" in message and len(args) >= 3:
            self.guards.append((str(args[1]), args[2]))


def size_guards(module, args, kwargs, param_names) -> dict[tuple[str, int], tuple[SourceLocation, bool]]:
    """(input, dim) -> the user's line that decided on that input size, and whether the line is a branch.

    A dim that no user line decided on is absent. Best effort: guards recorded before a failed
    re-trace still count.
    """
    bound = dict(zip(param_names, args))
    bound.update(kwargs)
    recorder, logger = _Recorder(), logging.getLogger(_LOGGER)
    with quiet_torch_logs():
        saved = (logger.level, logger.handlers, logger.propagate)
        logger.setLevel(logging.INFO)
        logger.handlers, logger.propagate = [recorder], False
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                export_module(module, tuple(args), dict(kwargs), dynamic_shapes={n: auto_dynamic_shapes(v) for n, v in bound.items()})
        except Exception:  # noqa: BLE001 - the guards seen so far are what we want
            pass
        finally:
            logger.setLevel(saved[0])
            logger.handlers, logger.propagate = saved[1], saved[2]
    found: dict[tuple[str, int], tuple[SourceLocation, bool]] = {}
    for expr, sloc in recorder.guards:
        location = _user_line(sloc)
        if location is None:
            continue
        branch = is_branch(location.code)
        for symbol in re.findall(r"\bs\d+\b", expr):
            key = recorder.symbols.get(symbol)
            if key is not None and not found.get(key, (None, False))[1]:
                found[key] = (location, branch)
    return found


def _user_line(sloc) -> SourceLocation | None:
    frame = getattr(sloc, "framework_loc", None)
    filename = getattr(frame, "filename", None)
    if filename and is_user_file(filename):
        return SourceLocation(filename, frame.lineno or 0, frame.name, (frame.line or "").strip())
    return None


__all__ = ["is_branch", "size_guards"]
