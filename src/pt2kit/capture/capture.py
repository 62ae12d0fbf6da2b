"""Capture a model with `torch.export`: strategies, attempts, and where a failure came from.

`auto` checks that the model runs eagerly on its example inputs, then tries non-strict
capture (Python runs normally, tensors are traced) and then strict capture (TorchDynamo
reads the bytecode). Every attempt is kept, so a failure report says what each mode said.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from pt2kit.errors import ExportFailed


class CaptureMode(str, Enum):
    AUTO = "auto"
    NON_STRICT = "non-strict"
    STRICT = "strict"


@dataclass(frozen=True)
class SourceLocation:
    """A line of the user's code: where a failure or a guard came from."""

    file: str
    line: int
    function: str = ""
    code: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" + (f" in {self.function}" if self.function else "")

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "function": self.function, "code": self.code}


@dataclass(frozen=True)
class Attempt:
    """One try at capturing the model (or running it eagerly, mode `eager`)."""

    mode: str
    ok: bool
    seconds: float
    error_type: str = ""
    message: str = ""
    location: SourceLocation | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def summary(self) -> str:
        if self.ok:
            return f"{self.mode}: captured in {self.seconds:.1f}s"
        where = f" at {self.location}" + (f": `{self.location.code}`" if self.location and self.location.code else "") if self.location else ""
        return f"{self.mode}: {self.error_type}{where}: {self.message}"

    def to_json(self) -> dict:
        return {
            "mode": self.mode, "ok": self.ok, "seconds": round(self.seconds, 3),
            "error_type": self.error_type, "message": self.message,
            "location": self.location.to_json() if self.location else None,
        }


@dataclass(frozen=True)
class Capture:
    """The result of `capture`: the program (when one mode succeeded) and every attempt."""

    program: torch.export.ExportedProgram | None
    mode: str | None
    attempts: tuple[Attempt, ...]

    @property
    def ok(self) -> bool:
        return self.program is not None

    def to_json(self) -> dict:
        return {"ok": self.ok, "mode": self.mode, "attempts": [a.to_json() for a in self.attempts]}


def capture(
    module: torch.nn.Module,
    args: tuple,
    kwargs: dict | None = None,
    *,
    mode: str | CaptureMode = CaptureMode.AUTO,
    dynamic_shapes: Any = None,
    check_eager: bool = True,
    defer_guards: bool = False,
) -> Capture:
    """Capture `module` with `torch.export.export`, trying the modes `mode` allows.

    Args:
        module: the model.
        args, kwargs: example inputs.
        mode: `auto` (non-strict, then strict), `non-strict` or `strict`.
        dynamic_shapes: passed to `torch.export.export` as is.
        check_eager: run the model eagerly first, so a model that fails in plain Python
            is reported as such rather than as an export error.
        defer_guards: keep guards torch cannot prove as assertions in the program (see `export_module`).

    Returns:
        A `Capture`; `capture.ok` is False when every mode failed (nothing is raised).
    """
    kwargs = kwargs or {}
    mode = CaptureMode(mode)
    attempts: list[Attempt] = []
    if check_eager:
        eager = _attempt("eager", lambda: _run_eager(module, args, kwargs))
        if not eager.ok:
            return Capture(None, None, (eager,))
    modes = [CaptureMode.NON_STRICT, CaptureMode.STRICT] if mode is CaptureMode.AUTO else [mode]
    for m in modes:
        result: dict[str, Any] = {}

        def run(m=m):
            result["ep"] = export_module(module, args, kwargs, dynamic_shapes=dynamic_shapes, strict=m is CaptureMode.STRICT,
                                         defer_guards=defer_guards)

        attempt = _attempt(m.value, run)
        attempts.append(attempt)
        if attempt.ok:
            return Capture(result["ep"], m.value, tuple(attempts))
    return Capture(None, None, tuple(attempts))


def export_module(module, args: tuple, kwargs: dict | None = None, *, dynamic_shapes: Any = None,
                  strict: bool = False, defer_guards: bool = False) -> torch.export.ExportedProgram:
    """`torch.export.export`, traced with attention's kernel choice kept out of the shape guards.

    The program records `aten.scaled_dot_product_attention` itself; which kernel runs is decided
    when the program runs or is compiled. While tracing, though, torch runs the op's kernel choice
    on fake tensors, and on CUDA (seen with torch 2.11) the memory-efficient kernel checks that the
    mask's strides are multiples of 8 (pytorch/pytorch#124502): a guard `seq % 8 == 0` that turns a
    dynamic sequence into `8*_seq` or a constant. Tracing with only the math backend enabled adds no
    such guard and records the same attention op; the math kernel's output layout can make a
    `.contiguous()` in the model appear in the graph, a no-op at run time (`tests/test_capture_attention.py`).
    Every export pt2kit runs goes through here.

    `defer_guards` keeps guards torch cannot prove as assertions in the program instead of failing
    (`prefer_deferred_runtime_asserts_over_guards`); shape repair sets it only after checking that
    every such guard holds at every size in the declared range (pt2kit.shapes.unprovable).
    """
    with sdpa_kernel([SDPBackend.MATH]):
        return torch.export.export(module, tuple(args), dict(kwargs or {}), dynamic_shapes=dynamic_shapes, strict=strict,
                                   prefer_deferred_runtime_asserts_over_guards=defer_guards)


def auto_dynamic_shapes(value: Any) -> Any:
    """`Dim.AUTO` for every dim of every tensor in `value` (a tensor, or lists, tuples and dicts of them).

    The `dynamic_shapes` entry that lets torch decide each dim; what `--dynamic auto` and the
    re-traces that look for baked-in shape decisions pass to `torch.export.export`.

    Example:
        >>> auto_dynamic_shapes((torch.ones(2, 3), 4))   # ({0: Dim.AUTO, 1: Dim.AUTO}, None)
    """
    if isinstance(value, torch.Tensor):
        return {i: torch.export.Dim.AUTO for i in range(value.dim())} or None
    if isinstance(value, (list, tuple)):
        return type(value)(auto_dynamic_shapes(v) for v in value)
    if isinstance(value, dict):
        return {k: auto_dynamic_shapes(v) for k, v in value.items()}
    return None


def capture_or_raise(module, args, kwargs=None, **options) -> Capture:
    """`capture`, raising `ExportFailed` with every attempt's reason when no mode works."""
    result = capture(module, args, kwargs, **options)
    if not result.ok:
        raise ExportFailed(failure_message(result), result)
    return result


def failure_message(result: Capture) -> str:
    """One readable paragraph: why each attempt failed, with the user's line."""
    if len(result.attempts) == 1 and result.attempts[0].mode == "eager":
        a = result.attempts[0]
        return f"the model fails when run eagerly on its example inputs, before any export: {a.summary().removeprefix('eager: ')}"
    lines = ["torch.export could not capture the model:"]
    lines += [f"  - {a.summary()}" for a in result.attempts]
    return "\n".join(lines)


def _run_eager(module, args, kwargs):
    with torch.no_grad():
        module(*args, **kwargs)


@contextlib.contextmanager
def quiet_torch_logs():
    """Silence torch's own error-level log lines during capture; pt2kit reports failures itself."""
    names = ["torch"] + [n for n in list(logging.root.manager.loggerDict) if n.startswith("torch.")]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def _attempt(mode: str, fn) -> Attempt:
    start = time.perf_counter()
    try:
        # torch prints partial graphs of failed exports to stderr; pt2kit reports failures itself
        with quiet_torch_logs(), contextlib.redirect_stderr(io.StringIO()):
            fn()
    except Exception as exc:  # every export failure is data for the report
        torch._dynamo.reset()
        return Attempt(
            mode, False, time.perf_counter() - start, type(exc).__name__, short_message(exc), user_location(exc), exc
        )
    return Attempt(mode, True, time.perf_counter() - start)


_NOISE = re.compile(
    r"(For more information, run with.*|Set TORCH_LOGS=.*|The error above occurred when calling torch.export.export.*"
    r"|For more details about this graph break.*|Developer debug context:.*|\s*Hint: .*)$"
)


def short_message(exc: BaseException) -> str:
    """The meaningful part of a torch exception, without the hints torch appends.

    Usually its first line; for a constraint violation, each violated constraint and
    torch's suggested fixes, since the first line alone ("Constraints violated") says nothing.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines()]
    lines = [ln for ln in lines if ln and not _NOISE.match(ln) and not ln.startswith("from user code")]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("Constraints violated"):
        details = [ln.lstrip("- ") for ln in lines[1:] if not ln.startswith(("File ", "The error above"))]
        head = lines[0].split("!")[0] + ":"
        text = " ".join([head] + details)[:1200]
        return re.sub(r"L\['(\w+)'\]\.size\(\)\[(\d+)\]", r"\1.shape[\2]", text)
    return lines[0][:400]


_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.dirname(p))
    for p in (torch.__file__, os.__file__, contextlib.__file__)
) + (os.path.dirname(os.path.dirname(os.path.abspath(__file__))),)  # all of pt2kit, not only export/


def is_user_file(filename: str) -> bool:
    """True for a file of the user's, not of torch, the standard library, site-packages or pt2kit."""
    if not filename or filename.startswith("<") and filename != "<stdin>":
        return False
    path = os.path.abspath(filename)
    return not any(path.startswith(d) for d in _LIBRARY_DIRS) and "site-packages" not in path


_QUOTED_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\w+)\n\s*(.*)')


def user_location(exc: BaseException) -> SourceLocation | None:
    """The innermost frame of user code behind `exc`, looking through the exception chain.

    Strict-mode errors carry the traced user stack in `real_stack`; non-strict errors in
    the traceback itself.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = list(getattr(exc, "real_stack", None) or []) + traceback.extract_tb(exc.__traceback__)
        for frame in reversed(frames):
            if is_user_file(frame.filename):
                return SourceLocation(frame.filename, frame.lineno or 0, frame.name, (frame.line or "").strip())
        quoted = [m for m in _QUOTED_FRAME.finditer(str(exc)) if is_user_file(m[1])]
        if quoted:
            m = quoted[-1]
            return SourceLocation(m[1], int(m[2]), m[3], m[4].strip())
        exc = exc.__cause__ or exc.__context__
    return None
