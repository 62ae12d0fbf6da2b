"""What blocks an export, as data: `BlockerKind`, `Blocker`, `CompileReport` and `Diagnosis`.

A `Blocker` is one problem at one line of the user's code, with the fix printed as Python.
A `Diagnosis` holds every blocker found in one run, in source order, plus how
`torch.compile` would treat the same model (graph breaks are fine for compile, fatal for export).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pt2kit.capture.capture import Capture, SourceLocation
from pt2kit.diagnose.fix_text import is_code


class BlockerKind(str, Enum):
    """The kinds of problem pt2kit recognises; `str(kind)` is its JSON name."""

    DATA_DEPENDENT_BRANCH = "data_dependent_branch"
    DATA_DEPENDENT_VALUE = "data_dependent_value"
    UNSUPPORTED_PYTHON = "unsupported_python"
    UNSUPPORTED_OPERATOR = "unsupported_operator"
    DYNAMIC_SHAPE_VIOLATION = "dynamic_shape_violation"
    ZERO_ONE_SPECIALIZATION = "zero_one_specialization"
    INPUT_MUTATION_OR_ALIASING = "input_mutation_or_aliasing"
    NON_PYTREE_TYPE = "non_pytree_type"
    SHAPE_SPECIALIZED = "shape_specialized"
    EAGER_FAILURE = "eager_failure"
    UNCLASSIFIED = "unclassified"

    def __str__(self) -> str:
        return self.value

    @property
    def title(self) -> str:
        return _TITLES[self]

    @property
    def stops_export(self) -> bool:
        """False only for the silent kind: export succeeds, but with a branch baked in."""
        return self is not BlockerKind.SHAPE_SPECIALIZED


_TITLES = {
    BlockerKind.DATA_DEPENDENT_BRANCH: "data-dependent branch",
    BlockerKind.DATA_DEPENDENT_VALUE: "data-dependent value",
    BlockerKind.UNSUPPORTED_PYTHON: "Python that cannot be traced",
    BlockerKind.UNSUPPORTED_OPERATOR: "operator without a fake (meta) kernel",
    BlockerKind.DYNAMIC_SHAPE_VIOLATION: "dynamic shape constraint violated",
    BlockerKind.ZERO_ONE_SPECIALIZATION: "0/1 specialization of a dynamic dim",
    BlockerKind.INPUT_MUTATION_OR_ALIASING: "input mutation or aliasing",
    BlockerKind.NON_PYTREE_TYPE: "input or output type that is not a pytree",
    BlockerKind.SHAPE_SPECIALIZED: "shape branch baked into the program",
    BlockerKind.EAGER_FAILURE: "the model fails when run eagerly",
    BlockerKind.UNCLASSIFIED: "export failure pt2kit cannot classify",
}


@dataclass(frozen=True)
class Blocker:
    """One problem at one line of the user's code.

    Attributes:
        kind: what sort of problem it is.
        location: the user's file, line and source text (never a torch-internal frame).
        explanation: what goes wrong there, in a sentence or two.
        fix: paste-able Python specific to that line, each part under a header saying where it goes
            (`pt2kit.diagnose.fix_text`); or advice, in prose, where no code that runs can be written.
        auto_fixable: whether `pt2kit export --fix` applies the fix by itself.
        modes: the capture modes that hit it (`non-strict`, `strict`, `draft`, `eager`, `specialization`).
        message: torch's own message, kept verbatim (shortened), so nothing is swallowed.
    """

    kind: BlockerKind
    location: SourceLocation
    explanation: str
    fix: str
    auto_fixable: bool
    modes: tuple[str, ...] = ()
    message: str = ""

    @property
    def fix_is_code(self) -> bool:
        """True when `fix` is code to paste (it says where each part goes), False when it is advice."""
        return is_code(self.fix)

    def __str__(self) -> str:
        loc = self.location
        lines = [f"{loc.file}:{loc.line}: {self.kind.title} [{self.kind}]"]
        if loc.code:
            lines.append(f"    {loc.line} | {loc.code}")
        lines.append(f"  {self.explanation}")
        if self.message:
            lines.append(f"  torch said: {self.message}")
        seen_in = ", ".join(self.modes)
        lines.append(f"  found by: {seen_in}" + ("; `pt2kit export --fix` can apply this" if self.auto_fixable else ""))
        if self.fix_is_code:
            lines.append("  fix:")
            lines += [f"      {ln}" if ln else "" for ln in self.fix.splitlines()]
        elif "\n" not in self.fix:
            lines.append(f"  advice: {self.fix}")
        else:
            lines.append("  advice:")
            lines += [f"      {ln}" if ln else "" for ln in self.fix.splitlines()]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "kind": str(self.kind), "file": self.location.file, "line": self.location.line,
            "function": self.location.function, "code": self.location.code, "explanation": self.explanation,
            "fix": self.fix, "fix_is_code": self.fix_is_code, "auto_fixable": self.auto_fixable, "modes": list(self.modes), "message": self.message,
        }


@dataclass(frozen=True)
class GraphBreak:
    """Where `torch.compile` would split the graph, and dynamo's reason."""

    location: SourceLocation | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.location}: `{self.location.code}`" if self.location else "(no user frame)"
        return f"{where}: {self.reason}"

    def to_json(self) -> dict:
        return {"location": self.location.to_json() if self.location else None, "reason": self.reason}


@dataclass(frozen=True)
class CompileReport:
    """How `torch.compile` treats the model (from `torch._dynamo.explain`).

    Attributes:
        ran: explain ran to the end (False: `error` says why it stopped).
        graph_count: graphs compile would build.
        graph_breaks: each break, where, and why.
        error: what stopped explain, if anything (compile would fail there too).
    """

    ran: bool
    graph_count: int = 0
    graph_breaks: tuple[GraphBreak, ...] = ()
    error: str = ""

    def __str__(self) -> str:
        if not self.ran:
            return f"torch.compile: stops with an error: {self.error}"
        n = len(self.graph_breaks)
        if n == 0:
            return "torch.compile: one graph, no graph breaks"
        lines = [f"torch.compile: runs it as {self.graph_count} graph{'s' * (self.graph_count != 1)} with {n} graph break{'s' * (n != 1)} "
                 "(Python runs between them); torch.export needs one whole graph, so none may remain:"]
        lines += [f"  - {b}" for b in self.graph_breaks]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "ran": self.ran, "graph_count": self.graph_count, "graph_break_count": len(self.graph_breaks),
            "graph_breaks": [b.to_json() for b in self.graph_breaks], "error": self.error,
        }


@dataclass(frozen=True)
class Diagnosis:
    """Everything that blocks or distorts the export of one model, found in one run.

    Attributes:
        target: the `TARGET` text.
        blockers: every blocker, in source order.
        exports: some capture mode produced a program (only silent blockers can remain).
        capture: every capture attempt (eager, non-strict, strict).
        compile: how `torch.compile` treats the model (None when not checked).
        notes: failures no line of the user's explains, kept with torch's message.
    """

    target: str
    blockers: tuple[Blocker, ...]
    exports: bool
    capture: Capture | None = None
    compile: CompileReport | None = field(default=None)
    notes: tuple[str, ...] = ()

    def successful(self) -> bool:
        """True when the model exports and nothing was silently baked in."""
        return self.exports and not self.blockers

    def __str__(self) -> str:
        n = len(self.blockers)
        if self.successful():
            head = f"{self.target}: exports cleanly; no blockers"
        elif self.exports:
            head = f"{self.target}: exports, but {n} problem{'s' * (n != 1)} silently changed the program"
        else:
            head = f"{self.target}: {n} blocker{'s stop' if n != 1 else ' stops'} torch.export"
        parts = [head, ""]
        for i, b in enumerate(self.blockers, 1):
            parts += [f"[{i}] {b}", ""]
        parts += [f"note: {n}" for n in self.notes] + ([""] if self.notes else [])
        if self.compile is not None:
            parts.append(str(self.compile))
        return "\n".join(parts).rstrip()

    def to_json(self) -> dict:
        return {
            "target": self.target, "ok": self.successful(), "exports": self.exports,
            "blockers": [b.to_json() for b in self.blockers],
            "capture": self.capture.to_json() if self.capture else None,
            "compile": self.compile.to_json() if self.compile else None, "notes": list(self.notes),
        }


__all__ = ["Blocker", "BlockerKind", "CompileReport", "Diagnosis", "GraphBreak"]
