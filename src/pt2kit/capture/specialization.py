"""Find the silent failure: a Python branch on a shape that export decided once and baked in.

`torch.export` with static shapes evaluates `if x.shape[0] > 5:` on the example and keeps
one side, saying nothing. To see such decisions, pt2kit re-traces the model non-strictly
with every dim marked `Dim.AUTO` and records the shape guards torch adds from user code:
each one is a Python decision that depended on an input size.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from dataclasses import dataclass

import torch

from pt2kit.artifact.manifest import leaf_name
from pt2kit.capture.capture import SourceLocation, auto_dynamic_shapes, export_module, is_user_file, quiet_torch_logs

_GUARD_LOGGER = "torch.fx.experimental.symbolic_shapes"


@dataclass(frozen=True)
class Specialization:
    """A decision on input sizes made in Python at export time.

    Attributes:
        condition: the condition in terms of inputs, e.g. `x.shape[0] > 5`.
        location: the user's line that made it.
        sizes: the example sizes it was decided with, e.g. `{"x.shape[0]": 10}`.
    """

    condition: str
    location: SourceLocation
    sizes: dict[str, int]

    def __str__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return (
            f"{self.location}: `{self.location.code}` depends on input sizes and was decided once, at export, "
            f"with {sizes} (`{self.condition}`); the program keeps only that side of the branch"
        )

    def to_json(self) -> dict:
        return {"condition": self.condition, "location": self.location.to_json(), "sizes": self.sizes}


class _GuardRecorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.guards: list[tuple[str, object]] = []
        # symbol -> (`x.shape[1]`, example size), for dims a guard made static (absent from the program)
        self.created: dict[str, tuple[str, int]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if "[guard added]" in str(record.msg) and len(record.args) >= 3:
            self.guards.append((str(record.args[1]), record.args[2]))
        elif str(record.msg).startswith("create_symbol") and len(record.args) >= 3:
            m = _SIZE_SOURCE.fullmatch(str(record.args[2]))
            if m and str(record.args[1]).lstrip("-").isdigit():
                self.created[str(record.args[0])] = (f"{m[1]}{m[2]}.shape[{m[3]}]", int(str(record.args[1])))


_SIZE_SOURCE = re.compile(r"L\['(\w+)'\]((?:\[\d+\]|\['\w+'\])*)\.size\(\)\[(\d+)\]")


@dataclass(frozen=True)
class SpecializationCheck:
    """The outcome of the re-trace: the decisions found, or why the check could not run.

    Attributes:
        found: the size decisions export baked in (empty when none, or when the check did not run).
        not_run: None when the re-trace ran; else the reason it could not (its exception, first line).
    """

    found: tuple[Specialization, ...] = ()
    not_run: str | None = None

    @property
    def ran(self) -> bool:
        return self.not_run is None

    def __str__(self) -> str:
        if self.not_run is not None:
            return f"shape-specialization check not run: {self.not_run}"
        return f"shape-specialization check: {len(self.found)} size decision(s) baked in"

    def to_json(self) -> dict:
        return {"ran": self.ran, "not_run": self.not_run, "found": [s.to_json() for s in self.found]}


def find_specializations(module: torch.nn.Module, args: tuple, kwargs: dict, param_names: list[str]) -> list[Specialization]:
    """Re-trace with every dim dynamic and return the user-code decisions that depended on sizes.

    Best effort: returns [] when the re-trace itself fails (the real export already succeeded); use
    `check_specializations` to learn whether it ran.
    """
    return list(check_specializations(module, args, kwargs, param_names).found)


def check_specializations(module: torch.nn.Module, args: tuple, kwargs: dict, param_names: list[str]) -> SpecializationCheck:
    """Re-trace with every dim dynamic; return the user-code decisions that depended on sizes, or, when the
    re-trace itself fails, a check that says it did not run and why (never an empty "nothing found")."""
    from torch.utils import _pytree as pytree

    # torch marks the tensors it exports with Dim.AUTO as dynamic (`_dynamo_weak_dynamic_indices`), and a later
    # export of the same tensors would trace them dynamic too: re-trace on fresh aliases, never on the caller's
    args, kwargs = pytree.tree_map_only(torch.Tensor, lambda t: t.detach(), (tuple(args), dict(kwargs)))
    bound = dict(zip(param_names, args))
    bound.update(kwargs)
    dynamic_shapes = {name: auto_dynamic_shapes(v) for name, v in bound.items()}
    recorder = _GuardRecorder()
    logger = logging.getLogger(_GUARD_LOGGER)
    try:
        with quiet_torch_logs():
            logger.setLevel(logging.INFO)
            saved = (logger.handlers, logger.propagate)
            logger.handlers, logger.propagate = [recorder], False  # record guards, print nothing
            try:
                # a failed re-trace prints its partial graph; stdout must stay clean for --json
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    ep = export_module(module, args, kwargs, dynamic_shapes=dynamic_shapes)
            finally:
                logger.handlers, logger.propagate = saved
    except Exception as exc:
        text = " ".join(str(exc).split())
        return SpecializationCheck(not_run=f"the re-trace with every dim dynamic raised {type(exc).__name__}: {text[:200]}".rstrip(": "))
    sources = {**recorder.created, **_symbol_sources(ep, param_names)}
    found: dict[tuple, Specialization] = {}
    for expr, sloc in recorder.guards:
        location = _user_location(sloc)
        if location is None:
            continue
        symbols = re.findall(r"\bs\d+\b", expr)
        if not symbols or not all(s in sources for s in symbols):
            continue
        condition = _python_condition(re.sub(r"\bs\d+\b", lambda m: sources[m.group()][0], expr))
        sizes = {sources[s][0]: sources[s][1] for s in dict.fromkeys(symbols)}
        found.setdefault((location.file, location.line), Specialization(condition, location, sizes))
    return SpecializationCheck(tuple(found.values()))


def _python_condition(expr: str) -> str:
    """sympy's `Eq(a, b)` / `Ne(a, b)` as Python: `a == b` / `a != b`."""
    for name, op in (("Eq", "=="), ("Ne", "!=")):
        m = re.fullmatch(rf"{name}\((.+), (.+)\)", expr.strip())
        if m:
            return f"{m.group(1)} {op} {m.group(2)}"
    return expr


def _symbol_sources(ep: torch.export.ExportedProgram, param_names: list[str]) -> dict[str, tuple[str, int]]:
    """symbol -> (`x.shape[0]`, example size) for every input dim the re-trace made symbolic."""
    from torch.utils import _pytree as pytree

    example_args, example_kwargs = ep.example_inputs
    flat = pytree.tree_flatten_with_path((example_args, example_kwargs))[0]
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    sources: dict[str, tuple[str, int]] = {}
    for (path, example), node_name in zip(flat, ep.graph_signature.user_inputs):
        node = placeholders.get(node_name) if isinstance(node_name, str) else None
        val = node.meta.get("val") if node is not None else None
        if not isinstance(val, torch.Tensor) or not isinstance(example, torch.Tensor):
            continue
        name = leaf_name(path, param_names)
        for d, size in enumerate(val.shape):
            if hasattr(size, "node") and str(size.node.expr).isidentifier():
                sources.setdefault(str(size.node.expr), (f"{name}.shape[{d}]", int(example.shape[d])))
    return sources


def _user_location(sloc) -> SourceLocation | None:
    frame = getattr(sloc, "framework_loc", None)
    filename = getattr(frame, "filename", None)
    if filename and is_user_file(filename):
        return SourceLocation(filename, frame.lineno or 0, frame.name, (frame.line or "").strip())
    return None


__all__ = ["Specialization", "SpecializationCheck", "check_specializations", "find_specializations"]
