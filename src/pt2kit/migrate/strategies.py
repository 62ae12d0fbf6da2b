"""The ways a TorchScript module becomes a module `torch.export` can capture, tried in order.

1. `ts2ep`: torch's `TS2EPConverter` translates the TorchScript graph node by node into FX (`prim::If` becomes
   `torch.cond`, loops with a constant count are unrolled); sizes stay symbolic.
2. `specialize`: the same converter after the graph's sizes are fixed at the example's: shapes are propagated,
   `aten::size` folds to constants and a loop over `x.shape[0]` gets a constant count. Branches on tensor values
   still become `torch.cond`. The program then takes only the example's sizes.
3. `non-strict`: `torch.export` in non-strict mode calls the scripted module itself; the TorchScript interpreter
   runs every op through the dispatcher, so export records them, unrolling every loop at the example's sizes.
   It stops at a branch on tensor values (`bool(tensor)` has no value while tracing).

Each returns an `nn.Module` (named like the scripted `forward`) for the export stage to capture with pt2kit's
dynamic shapes, manifest and checks.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator

import torch

from pt2kit.diagnose.blockers import Blocker
from pt2kit.migrate.archive import ScriptArchive, method_as_forward, named_module, read_module
from pt2kit.migrate.blockers import root_cause, node_location, unsupported_nodes


class Strategy(str, Enum):
    TS2EP = "ts2ep"
    SPECIALIZE = "specialize"
    NON_STRICT = "non-strict"

    def __str__(self) -> str:
        return self.value

    @property
    def static(self) -> bool:
        """The strategy fixes every size at the example's (its program takes no other sizes)."""
        return self is Strategy.SPECIALIZE


@dataclass(frozen=True)
class StrategyAttempt:
    """One strategy's try: whether it produced a program, and what it changed or hit.

    Attributes:
        strategy: which one.
        ok: it produced a program (and, with `--verify`, the program matched).
        seconds: time spent converting and exporting.
        message: the failure, one paragraph (empty when ok).
        notes: what the strategy fixed or assumed (a loop count fixed at the example's sizes).
        blockers: the nodes it could not convert, each at its file and line.
    """

    strategy: Strategy
    ok: bool
    seconds: float
    message: str = ""
    notes: tuple[str, ...] = ()
    blockers: tuple[Blocker, ...] = field(default=())

    def __str__(self) -> str:
        head = f"{self.strategy}: " + (f"converted in {self.seconds:.1f}s" if self.ok else f"failed ({self.message})")
        return "\n".join([head] + [f"  note: {n}" for n in self.notes])

    def to_json(self) -> dict:
        return {"strategy": str(self.strategy), "ok": self.ok, "seconds": round(self.seconds, 3), "message": self.message,
                "notes": list(self.notes), "blockers": [b.to_json() for b in self.blockers]}


class ConversionFailed(Exception):
    """A strategy could not produce a module; carries the blockers it found."""

    def __init__(self, message: str, blockers: list[Blocker] | None = None):
        super().__init__(message)
        self.blockers = blockers or []


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the converter's prints, logs and warnings: pt2kit reports what matters itself."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def fresh_module(archive: ScriptArchive) -> torch.jit.ScriptModule:
    """A new copy of the archive's module: the converter rewrites the graph it is given in place, and the
    reference model that verification compares with must stay as saved."""
    return method_as_forward(read_module(archive.path), archive.method)


def convert_ts2ep(archive: ScriptArchive, args: tuple) -> tuple[torch.nn.Module, list[str]]:
    """Strategy `ts2ep`: `TS2EPConverter` as torch ships it."""
    from torch._export.converter import TS2EPConverter

    with quiet():
        converter = TS2EPConverter(fresh_module(archive), args)
        try:
            program = converter.convert()
        except Exception as exc:  # noqa: BLE001 - every unsupported node is found and reported below
            blockers = unsupported_nodes(TS2EPConverter(fresh_module(archive), args))
            raise ConversionFailed(root_cause(exc), blockers) from None
    return named_module(program.module(), archive.parameters, "Converted"), []


def convert_specialized(archive: ScriptArchive, args: tuple) -> tuple[torch.nn.Module, list[str]]:
    """Strategy `specialize`: fix sizes at the example's, fold them into constants, then `TS2EPConverter`."""
    from torch._export.converter import TS2EPConverter

    with quiet():
        converter = TS2EPConverter(fresh_module(archive), args)
        graph = converter.ts_graph
        before = {node.sourceRange(): node for node in _loops(graph) if not _constant_count(node)}
        try:  # types every value with its example size, so `aten::size` of intermediates folds too
            torch._C._jit_pass_complete_shape_analysis(graph, tuple(args) + tuple(converter.params), False)
        except RuntimeError:
            pass  # inputs it cannot type (None, lists): the peephole below still folds sizes of typed inputs
        for _ in range(3):
            torch._C._jit_pass_peephole(graph, False)
            torch._C._jit_pass_constant_propagation(graph)
        notes = []
        for node in _loops(graph):
            if node.sourceRange() in before and _constant_count(node):
                loc = node_location(node)
                notes.append(f"the loop at {loc.file}:{loc.line} (`{loc.code}`) runs {node.inputsAt(0).toIValue()} times at the example's "
                             "sizes: unrolled with that count fixed")
        try:
            program = converter.convert()
        except Exception as exc:  # noqa: BLE001 - the same converter's blockers, after specialization
            raise ConversionFailed(root_cause(exc), unsupported_nodes(converter, "specialize")) from None
    notes.append("every input size is fixed at the example's: the program accepts only "
                 + ", ".join(f"{n}[{', '.join(map(str, a.shape))}]" for n, a in zip(archive.parameters, args)
                             if isinstance(a, torch.Tensor)))
    return named_module(program.module(), archive.parameters, "Specialized"), notes


def convert_non_strict(archive: ScriptArchive, args: tuple) -> tuple[torch.nn.Module, list[str]]:
    """Strategy `non-strict`: the scripted module itself, for `torch.export` in non-strict mode to call."""
    notes = ["non-strict export runs the TorchScript interpreter: every loop is unrolled at the example's sizes"]
    if any(True for _ in _loops(archive.module.forward.graph)) or any(True for _ in _loops(archive.module.inlined_graph)):
        notes[0] += " (this model has loops: a dynamic dim they iterate over becomes static)"
    return named_module(fresh_module(archive), archive.parameters, "Scripted"), notes


def _loops(block) -> Iterator[torch._C.Node]:
    for node in block.nodes():
        if node.kind() == "prim::Loop":
            yield node
        for inner in node.blocks():
            yield from _loops(inner)


def _constant_count(loop: torch._C.Node) -> bool:
    return loop.inputsAt(0).node().kind() == "prim::Constant"


CONVERTERS = {Strategy.TS2EP: convert_ts2ep, Strategy.SPECIALIZE: convert_specialized, Strategy.NON_STRICT: convert_non_strict}


def convert(strategy: Strategy, archive: ScriptArchive, args: tuple) -> tuple[torch.nn.Module, list[str]]:
    """Run one strategy: `(module to export, notes)`.

    Raises:
        ConversionFailed: the strategy could not produce a module (`.blockers` says where).
    """
    return CONVERTERS[strategy](archive, args)


__all__ = ["CONVERTERS", "ConversionFailed", "Strategy", "StrategyAttempt", "convert"]
