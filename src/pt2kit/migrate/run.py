"""`migrate_model`: a TorchScript archive -> a verified `.pt2` program with pt2kit's manifest.

The driver: load the archive, bind example inputs, try each conversion strategy (`pt2kit.migrate.strategies`)
until one produces a program that the export stage captures and that matches the scripted module, and write it
atomically. Every strategy's result, every blocker (at the original file and line), every specialization and
everything the program does not carry over (other methods, attributes) is reported.
"""

from __future__ import annotations

import json
import os
import time
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from pt2kit import progress
from pt2kit.artifact.manifest import Manifest
from pt2kit.artifact.package import atomic_path, check_output_path, save_program
from pt2kit.runtime.loaded import load
from pt2kit.diagnose.blockers import Blocker, BlockerKind
from pt2kit.errors import ExportFailed, InputSpecError, Pt2kitError, UsageError
from pt2kit.capture.capture import CaptureMode
from pt2kit.export.program import export_program
from pt2kit.migrate.archive import ScriptArchive, example_inputs, load_archive, named_module
from pt2kit.migrate.blockers import location_in, root_cause
from pt2kit.migrate.branches import BranchCondition, find_conditions, steer
from pt2kit.migrate.strategies import ConversionFailed, Strategy, StrategyAttempt, convert, quiet
from pt2kit.shapes.spec import parse_dynamic
from pt2kit.target.inputs import InputSpec
from pt2kit.target.resolve import Target
from pt2kit.verify.outputs import verify_outputs
from pt2kit.verify.report import VerifyReport


@dataclass(frozen=True)
class BranchCheck:
    """One side of one scripted `if`, as verified: the report, or why no input could take that side."""

    condition: BranchCondition
    side: bool
    report: VerifyReport | None = None
    reason: str = ""

    def __str__(self) -> str:
        head = f"{self.condition.describe()} -> {str(self.side).lower()}: "
        if self.report is None:
            return head + f"not exercised ({self.reason})"
        return head + ("matches" if self.report.ok else self.report.summary())

    def to_json(self) -> dict:
        return {"condition": self.condition.to_json(), "side": self.side, "ok": self.report.ok if self.report else None,
                "reason": self.reason, "report": self.report.to_json() if self.report else None}


@dataclass(frozen=True)
class MigrateResult:
    """What `migrate_model` did.

    Attributes:
        archive: the TorchScript file.
        path: the `.pt2` written (None: no strategy produced a program that matched).
        strategy: the strategy whose program was written.
        attempts: every strategy tried, in order, with its notes and blockers.
        inputs_from: where the example inputs came from (`--input`, or recorded in the archive at tracing).
        manifest: the written program's manifest.
        verification: the report on the example and seeded random inputs (None: not verified).
        branches: each side of each scripted `if`, verified on inputs crafted to take it (with `verify`).
        conditions: every scripted `if` found in `forward`.
        dropped: what the archive has that the program does not carry.
    """

    archive: str
    path: Path | None
    strategy: Strategy | None
    attempts: tuple[StrategyAttempt, ...]
    inputs_from: str
    manifest: Manifest | None = None
    verification: VerifyReport | None = None
    branches: tuple[BranchCheck, ...] = ()
    conditions: tuple[BranchCondition, ...] = ()
    dropped: tuple[str, ...] = ()
    program: torch.export.ExportedProgram | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.path is not None

    @property
    def blockers(self) -> tuple[Blocker, ...]:
        """The blockers of every failed strategy, one per line and kind, with every strategy that hit it."""
        merged: dict[tuple, Blocker] = {}
        for attempt in self.attempts:
            for b in attempt.blockers:
                key = (b.location.file, b.location.line, b.kind)
                first = merged.setdefault(key, b)
                if first is not b:
                    merged[key] = replace(first, modes=first.modes + tuple(m for m in b.modes if m not in first.modes))
        return tuple(merged.values())

    def __str__(self) -> str:
        if self.ok:
            lines = [f"migrated {self.archive} ({self.strategy}) -> {self.path}"]
        else:
            lines = [f"{self.archive}: no strategy produced a program that matches the scripted model; nothing was written"]
        lines.append(f"  inputs from {self.inputs_from}")
        if self.manifest is not None:
            lines += [f"  input  {self.manifest.describe(leaf)}" for leaf in self.manifest.inputs]
            lines += [f"  output {self.manifest.describe(leaf)}" for leaf in self.manifest.outputs]
            lines += [f"  dim    {d.describe()}" for d in self.manifest.dims]
        lines += ["  " + ln for a in self.attempts for ln in str(a).splitlines()]
        lines += [f"  dropped: {d}" for d in self.dropped]
        if self.verification is not None:
            lines.append("  " + self.verification.summary() + f" ({', '.join(map(str, self.verification.cases))})")
            lines += [f"    {o}" for o in self.verification.outputs if not o.passed]
            lines += [f"    {e}" for e in self.verification.errors]
        if self.ok:
            lines += [f"  branch {b}" for b in self.branches]
            covered = {id(b.condition) for b in self.branches}
            lines += [f"  branch {c.describe()}: covered only by the random inputs" for c in self.conditions
                      if id(c) not in covered]
        if not self.ok and self.blockers:
            lines += ["", f"{len(self.blockers)} blocker{'s' * (len(self.blockers) != 1)}:", ""]
            for i, b in enumerate(self.blockers, 1):
                lines += [f"[{i}] {b}", ""]
        return "\n".join(lines).rstrip()

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "archive": self.archive, "path": str(self.path) if self.path else None,
            "strategy": str(self.strategy) if self.strategy else None, "inputs_from": self.inputs_from,
            "attempts": [a.to_json() for a in self.attempts], "blockers": [b.to_json() for b in self.blockers],
            "manifest": self.manifest.to_json() if self.manifest else None,
            "verify": self.verification.to_json() if self.verification else None,
            "branches": [b.to_json() for b in self.branches], "conditions": [c.to_json() for c in self.conditions],
            "dropped": list(self.dropped),
        }


def migrate_model(
    archive: str | os.PathLike,
    output: str | os.PathLike,
    *,
    inputs: list[InputSpec] | None = None,
    seed: int = 0,
    dynamic: str | None = None,
    strategy: str | Strategy = "auto",
    method: str = "forward",
    verify: bool = False,
    samples: int = 8,
    atol: float | None = None,
    rtol: float | None = None,
    max_size: int | None = None,
) -> MigrateResult:
    """Convert a TorchScript archive into a `.pt2` program with pt2kit's manifest.

    Tries `ts2ep`, `specialize`, then `non-strict` (or only `strategy`) until one gives a program that matches the
    scripted module: on the example always, and with `verify` also on `samples` seeded random inputs across the
    dynamic range and on inputs crafted to take each side of every scripted `if` pt2kit can steer. The `.pt2` is
    written atomically, only once it matched.

    Args:
        archive: a `.pt` written by `torch.jit.save`.
        output: where to write the `.pt2`.
        inputs: parsed `--input` specs; when empty, the inputs a traced archive recorded.
        dynamic: a `--dynamic` spec over `forward`'s parameter names (strategy `specialize` drops it, and says so).
        strategy: `auto`, `ts2ep`, `specialize` or `non-strict`.
        method: the scripted method to migrate (its program's entry point); the others are listed as dropped.
        verify: the full check above (else the example only).
        samples, atol, rtol, max_size: as for `verify_outputs`.

    Returns:
        A `MigrateResult`; `result.ok` is False when no strategy worked (`result.blockers` says where).

    Raises:
        ArtifactError: the file is not a TorchScript archive.
        InputSpecError: no inputs and none recorded, inputs that do not bind, the scripted module fails on them,
            or a malformed `--dynamic`.

    Example:
        >>> result = migrate_model("model.pt", "model.pt2", inputs=[parse_input("x=float32[4,16]")], verify=True)
        >>> assert result.ok, result
    """
    check_output_path(output, "-o")  # a folder, a missing or read-only folder: before minutes of conversion, not after
    with progress.stage("load TorchScript archive"):
        loaded = load_archive(archive, method)
    args, inputs_from = example_inputs(loaded, list(inputs or []), seed)
    spec = parse_dynamic(dynamic)
    reference = Target(str(loaded.path), named_module(loaded.module, loaded.parameters, "Scripted"), args, {})
    _run_reference(loaded, reference)
    names = [str(s) for s in Strategy]
    if str(strategy) not in ["auto", *names]:
        raise UsageError(f"`--strategy {strategy}` is not a strategy; use auto, {', '.join(names)}")
    order = list(Strategy) if str(strategy) == "auto" else [Strategy(str(strategy))]
    try:
        conditions = tuple(find_conditions(loaded.module, loaded.parameters))
    except RuntimeError:  # a graph TorchScript cannot inline: its branches are covered by the random inputs only
        conditions = ()
    options = {"seed": seed, "atol": atol, "rtol": rtol, "max_size": max_size}
    attempts: list[StrategyAttempt] = []
    report, branches = None, ()
    for current in order:
        attempt, written, checked = _attempt(current, loaded, reference, spec, output, conditions, verify, samples, options)
        progress.info(f"{'✓' if attempt.ok else '✗'} strategy {current}  {attempt.seconds:.1f}s"
                      + ("" if attempt.ok else f": {attempt.message[:120]}"))
        attempts.append(attempt)
        if checked is not None:  # the last program verified, written or not, is the one the result shows
            report, branches = checked
        if written is not None:
            manifest, program = written
            return MigrateResult(str(loaded.path), Path(output), current, tuple(attempts), inputs_from, manifest, report,
                                 branches, conditions, _dropped(loaded), program)
    return MigrateResult(str(loaded.path), None, None, tuple(attempts), inputs_from, None, report, branches, conditions,
                         _dropped(loaded))


def _run_reference(loaded: ScriptArchive, reference: Target) -> None:
    try:
        with torch.no_grad():
            reference.module(*reference.args)
    except Exception as exc:  # the inputs, not pt2kit, are wrong: say which and how
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        first = (lines[-1] if lines else type(exc).__name__)[:240]  # TorchScript puts the error after its traceback
        raise InputSpecError(f"the scripted model fails on the example inputs ({first}); give inputs that "
                             f"{loaded.signature()} accepts with --input") from None


def _attempt(current: Strategy, loaded: ScriptArchive, reference: Target, spec, output, conditions, verify: bool,
             samples: int, options: dict) -> tuple[StrategyAttempt, tuple | None, tuple | None]:
    """One strategy: convert, capture with pt2kit's export stage, verify, write. Returns the attempt, then
    `(manifest, program)` when written, then `(report, branch checks)` when a program was verified."""
    start = time.perf_counter()

    def failed(message: str, notes=(), blockers=()) -> StrategyAttempt:
        return StrategyAttempt(current, False, time.perf_counter() - start, message, tuple(notes), tuple(blockers))

    try:
        module, notes = convert(current, loaded, reference.args)
    except ConversionFailed as exc:
        return failed(str(exc), (), exc.blockers), None, None
    except Exception as exc:  # noqa: BLE001 - torch's converter raises anything on graphs it does not expect
        return failed(f"{type(exc).__name__}: {root_cause(exc)}"), None, None
    if current.static and spec:
        notes.append(f"--dynamic `{spec}` is not applied: this strategy fixes every size at the example's")
    target = Target(str(loaded.path), module, reference.args, {})
    try:
        with quiet():
            result = export_program(target, None, mode=CaptureMode.NON_STRICT, dynamic=None if current.static else spec,
                                    check_specialization=not current.static)
    except ExportFailed as exc:
        blockers = _export_blockers(current, exc)
        return failed(blockers[0].message if blockers else _failure_line(str(exc)), notes, blockers), None, None
    except InputSpecError:
        raise  # a --dynamic spec that does not fit forward's inputs: the user's to fix, whatever the strategy
    except Exception as exc:  # noqa: BLE001 - one strategy's crash must not hide the next strategy
        return failed(f"{type(exc).__name__}: {root_cause(exc)}", notes), None, None
    notes += [str(s) for s in result.specializations]
    notes += [f"shape repair: {r}" for r in (result.shape_repair.repairs if result.shape_repair else ())]
    manifest = result.manifest.replace(
        dims=tuple(d for d in result.manifest.dims if d.used_by),  # the converter's unbacked values are no input dim
        target=str(loaded.path), capture_mode=f"migrate:{current}", notes=result.manifest.notes + tuple(notes),
        extra={**result.manifest.extra, "migrate": {
            "archive": str(loaded.path), "method": loaded.method, "strategy": str(current), "methods_dropped": list(loaded.methods),
            "attributes": {k: _jsonable(v) for k, v in loaded.attributes.items()}, "submodules": list(loaded.submodules)}},
    )
    report, branches = None, ()
    try:
        with atomic_path(output) as tmp:  # written only once it matched; a failure leaves no file at `output`
            save_program(result.program, manifest, tmp)
            artifact = load(tmp)
            with quiet():
                report = verify_outputs(reference, artifact, samples=samples if verify else 0, **options)
                branches = _branch_checks(reference, artifact, conditions, loaded, options) if verify else ()
            report = replace(report, artifact=str(output))
            if not report.ok or any(b.report is not None and not b.report.ok for b in branches):
                raise _NotWritten()
    except Pt2kitError as exc:  # the program was written but cannot be loaded or run here
        return failed(f"the converted program cannot be checked: {exc}", notes), None, None
    except _NotWritten:
        differs = [str(b) for b in branches if b.report is not None and not b.report.ok]
        why = report.summary() if not report.ok else "; ".join(differs)
        return failed(f"the program does not match the scripted model: {why}", notes), None, (report, branches)
    return (StrategyAttempt(current, True, time.perf_counter() - start, "", tuple(notes)), (manifest, result.program),
            (report, branches))


class _NotWritten(Exception):
    """Raised inside `atomic_path` so a program that does not match is discarded, never moved into place."""


def _branch_checks(reference: Target, artifact, conditions, loaded: ScriptArchive, options: dict) -> tuple[BranchCheck, ...]:
    """Verify each side of every steerable `if` on inputs crafted to take it."""
    manifest = artifact.manifest
    own_dims = {}
    for d in manifest.dims if manifest else ():
        if len(d.used_by) == 1:  # a dim shared with another input would need both resized together
            name, dim = d.used_by[0].rsplit(":", 1)
            own_dims[(name, int(dim))] = (d.min, d.max)
    checks = []
    for condition in conditions:
        if not condition.steerable:
            continue
        for side in (True, False):
            args = steer(condition, reference.args, loaded.parameters, side, own_dims)
            if args is None:
                reason = ("the dim is static in the program" if condition.reduction == "size"
                          else "no input near the threshold takes this side")
                checks.append(BranchCheck(condition, side, None, reason))
                continue
            report = verify_outputs(replace(reference, args=args), artifact, samples=0, **options)
            checks.append(BranchCheck(condition, side, report))
    return tuple(checks)


def _export_blockers(current: Strategy, exc: ExportFailed) -> list[Blocker]:
    """A blocker for each failed capture of the converted or scripted module: the TorchScript interpreter's
    traceback names the original line (or the archive's serialized code)."""
    blockers = []
    for attempt in exc.capture.attempts if exc.capture else ():
        if attempt.ok or attempt.exception is None:
            continue
        text = str(attempt.exception)
        location = location_in(text)
        if location is None:
            continue
        reason = next((ln.strip() for ln in text.splitlines() if re.match(r"^\s*\w+(Error|Exception|Node): ", ln)),
                      attempt.message)[:300]
        if any(k in text for k in ("data-dependent", "DataDependent", "GuardOnDataDependent")):
            blockers.append(Blocker(
                BlockerKind.DATA_DEPENDENT_BRANCH, location,
                "a decision on a tensor's value: tracing the scripted module cannot know which way it goes",
                "# strategy `ts2ep` (tried first by default) turns an `if` on a tensor into torch.cond; a `while` on\n"
                "# tensor values needs a fixed bound or torch._higher_order_ops.while_loop in the Python source",
                False, (str(current),), reason))
        else:
            blockers.append(Blocker(BlockerKind.UNCLASSIFIED, location, f"{current} export of the module failed here",
                                    "# see torch's message; `pt2kit diagnose` on the Python source explains most causes",
                                    False, (str(current),), reason))
    return blockers


def _failure_line(text: str) -> str:
    """The first line of a capture failure that says what failed, past pt2kit's own heading and a traceback."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("torch.export could not capture", "Traceback")):
            return re.sub(r"^- (non-strict|strict): ", "", line)[:300]
    return text.strip()[:300]


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _dropped(loaded: ScriptArchive) -> tuple[str, ...]:
    """What the archive has that an ExportedProgram (one `forward`, tensors only) does not carry."""
    out = [] if not loaded.traced else [
        "Python branches and loops of the traced model: tracing recorded the path its example took, so the archive "
        "(and the program) hold that path only; check other inputs against the Python model if you have it"]
    out += [f"method `{m}`: an ExportedProgram has one entry point; migrate it to its own program with "
            f"`--method {m.split('(')[0]}`" for m in loaded.methods]
    if loaded.attributes:
        names = ", ".join(f"`{k}`" for k in list(loaded.attributes)[:8]) + (" ..." if len(loaded.attributes) > 8 else "")
        out.append(f"attributes {names}: their values at save time are inlined into the program as constants and "
                   "recorded in the manifest (extra.migrate.attributes); setting them afterwards changes nothing")
    return tuple(out)


__all__ = ["BranchCheck", "MigrateResult", "migrate_model"]
