"""`pt2kit survey`: run the pipeline stages over many models and report coverage.

Each entry (see `pt2kit.survey.targets`) runs once per shape variant (`static`: no dynamic dims;
`dynamic`: the entry's `--dynamic` spec, or with `dynamic_batch` dim 0 of every tensor input) through
the chosen stages: `export` (`export_program`), `verify` (`verify_outputs` against eager, on the
example and on inputs at the dynamic dims' bounds), `compile` (`compile_package`, then verified).
A failure stops that row only; the sweep always reaches the end. With `isolate=True` every row runs
in its own process with a timeout, so a crash or a hang costs one row.

    >>> report = survey_models(collect_entries(["tests/architectures.py"]), stages=("export", "verify"))
    >>> print(report)              # the coverage table
    >>> report.to_json()           # the schema in docs/survey.md
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pt2kit import progress
from pt2kit.errors import ExportFailed, Pt2kitError, UsageError
from pt2kit.survey.report import StageResult, Status, SurveyReport, SurveyRow
from pt2kit.survey.targets import SurveyEntry
from pt2kit.target.resolve import Target

STAGES = ("export", "verify", "compile")
_PARTIAL_ENV = "PT2KIT_SURVEY_ROW_FILE"
SHAPES = ("static", "dynamic")


@dataclass(frozen=True)
class SurveyOptions:
    """How each row runs. `samples`: random verify inputs besides the example (the first two at the dims' bounds)."""

    stages: tuple[str, ...] = ("export", "verify")
    shapes: tuple[str, ...] = ("static",)
    dynamic_batch: bool = False
    max_batch: int = 64
    device: str = "cpu"
    samples: int = 2
    check_specialization: bool = False
    isolate: bool = False
    timeout: float = 600.0
    workdir: str | None = None


def survey_models(entries: list[SurveyEntry], options: SurveyOptions = SurveyOptions()) -> SurveyReport:
    """Run `options.stages` over every entry at every shape variant; never stops at a failure.

    Args:
        entries: from `collect_entries`.
        options: stages, shape variants, device, isolation (see `SurveyOptions`).

    Returns:
        A `SurveyReport` with one row per entry and shape variant.

    Raises:
        UsageError: an unknown stage or shape variant, or `verify`/`compile` without `export`.

    Example:
        >>> report = survey_models(collect_entries(["models.py"]), SurveyOptions(shapes=("static", "dynamic")))
    """
    _check_options(options)
    start = time.perf_counter()
    rows: list[SurveyRow] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="pt2kit-survey-") as scratch:
        workdir = Path(options.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        total = len(entries) * len(options.shapes)
        try:
            _run_all(entries, options, workdir, rows, total)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: report the rows done so far
            interrupted = True
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return SurveyReport(tuple(rows), options.stages, options.device, torch.__version__, created, time.perf_counter() - start,
                        interrupted, total)


def _run_all(entries: list[SurveyEntry], options: SurveyOptions, workdir: Path, rows: list[SurveyRow], total: int) -> None:
    for entry in entries:
        for shapes in options.shapes:
            with progress.silenced():  # one line per row below, not every inner stage
                row = _run_isolated(entry, shapes, options) if options.isolate else run_row(entry, shapes, options, workdir)
            rows.append(row)
            progress.info(f"[{len(rows)}/{total}] {row.name} {shapes}: "
                          + ", ".join(f"{s.stage} {s.cell()}" for s in row.stages if s.status is not Status.NOT_RUN))


def _check_options(options: SurveyOptions) -> None:
    from pt2kit.artifact.package import check_output_folder
    from pt2kit.target.device import parse_device

    parse_device(options.device)
    if options.samples < 0 or not options.timeout > 0:
        raise UsageError(f"`--samples {options.samples} --timeout {options.timeout:g}`: samples must be >= 0 and the timeout "
                         "above 0 seconds")
    if options.workdir is not None:
        check_output_folder(options.workdir, "--workdir")
    for stage in options.stages:
        if stage not in STAGES:
            raise UsageError(f"unknown stage `{stage}`; use a comma-separated list of {', '.join(STAGES)}")
    for shapes in options.shapes:
        if shapes not in SHAPES:
            raise UsageError(f"unknown shape variant `{shapes}`; use `--shapes static`, `dynamic` or `static,dynamic`")
    if "export" not in options.stages:
        raise UsageError("`--stages` must include `export`: verify and compile work on the exported program")


def run_row(entry: SurveyEntry, shapes: str, options: SurveyOptions, workdir: Path) -> SurveyRow:
    """One entry at one shape variant, in this process. Every exception becomes a failed stage."""
    from pt2kit.export.program import export_program

    start = time.perf_counter()
    results: dict[str, StageResult] = {}
    notes: list[str] = []
    pytree_types: tuple[str, ...] = ()
    dynamic = ""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{entry.name}-{shapes}")
    try:
        t0 = time.perf_counter()
        try:
            target = _on_device(entry.build(), options.device)
        except Exception as exc:  # a target that cannot be built is this row's failure, not the sweep's
            results["export"] = _failed("export", t0, exc, "target_error")
            return _row(entry, shapes, dynamic, results, options, start, pytree_types, notes)
        dynamic = _dynamic_for(target, entry, shapes, options, notes)
        program_path = workdir / f"{slug}.pt2"
        t0 = time.perf_counter()
        try:
            exported = export_program(target, program_path, dynamic=dynamic, check_specialization=options.check_specialization)
        except Exception as exc:
            results["export"] = _failed("export", t0, exc)
            return _row(entry, shapes, dynamic, results, options, start, pytree_types, notes)
        results["export"] = StageResult("export", Status.OK, time.perf_counter() - t0)
        pytree_types = tuple(r["type"] for r in exported.manifest.pytree_types)
        notes += [n for n in exported.manifest.notes if not n.startswith("fix:")]
        del exported
        if "verify" in options.stages:
            _row(entry, shapes, dynamic, results, options, start, pytree_types, notes)
            results["verify"] = _verify("verify", target, program_path, options)
        if "compile" in options.stages:
            _row(entry, shapes, dynamic, results, options, start, pytree_types, notes)
            results["compile"] = _compile(target, program_path, workdir / f"{slug}.aoti.pt2", options)
    finally:
        gc.collect()
        torch._dynamo.reset()
    return _row(entry, shapes, dynamic, results, options, start, pytree_types, notes)


def _row(entry, shapes, dynamic, results, options, start, pytree_types, notes) -> SurveyRow:
    row = _assemble(entry, shapes, dynamic, results, options, start, pytree_types, notes)
    partial = os.environ.get(_PARTIAL_ENV)
    if partial:  # the parent of an isolated row reads this if the process dies in a later stage: write it whole or not at all
        Path(partial + ".tmp").write_text(json.dumps(row.to_json()))
        os.replace(partial + ".tmp", partial)
    return row


def _assemble(entry, shapes, dynamic, results, options, start, pytree_types, notes) -> SurveyRow:
    stages = []
    failed = False
    for stage in options.stages:
        if stage in results:
            stages.append(results[stage])
            failed = failed or results[stage].status is Status.FAILED
        else:
            stages.append(StageResult(stage, Status.SKIPPED if failed or stage == "export" else Status.NOT_RUN))
    return SurveyRow(entry.name, entry.spec, shapes, dynamic, tuple(stages), time.perf_counter() - start, pytree_types, tuple(notes))


def _dynamic_for(target: Target, entry: SurveyEntry, shapes: str, options: SurveyOptions, notes: list[str]) -> str:
    if shapes == "static":
        return ""
    declared = entry.dynamic or target.dynamic
    if declared:
        return declared
    if options.dynamic_batch:
        names = [n for n, v in zip(target.parameter_names, target.args) if isinstance(v, torch.Tensor) and v.dim()]
        names += [n for n, v in target.kwargs.items() if isinstance(v, torch.Tensor) and v.dim()]
        if names:
            return ",".join(f"{n}:0=batch" + (f"[1,{options.max_batch}]" if i == 0 else "") for i, n in enumerate(names))
    notes.append("no dynamic dims declared: exported static (pass --dynamic or --dynamic-batch)")
    return ""


def _on_device(target: Target, device: str) -> Target:
    if device == "cpu":
        return target
    from torch.utils import _pytree as pytree

    move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v  # noqa: E731
    return dataclasses.replace(target, module=target.module.to(device), args=pytree.tree_map(move, target.args),
                               kwargs=pytree.tree_map(move, target.kwargs))


def _verify(stage: str, target: Target, artifact: Path, options: SurveyOptions) -> StageResult:
    from pt2kit.verify.outputs import verify_outputs

    t0 = time.perf_counter()
    try:
        report = verify_outputs(target, artifact, samples=options.samples)
    except Exception as exc:
        return _failed(stage, t0, exc, "verify_error")
    if report.ok:
        return StageResult(stage, Status.OK, time.perf_counter() - t0)
    return StageResult(stage, Status.FAILED, time.perf_counter() - t0, "verify_mismatch", report.summary())


def _compile(target: Target, program: Path, package: Path, options: SurveyOptions) -> StageResult:
    from pt2kit.compile import compile_package

    t0 = time.perf_counter()
    try:
        compile_package(program, package, device=options.device, use_cache=False)
    except Exception as exc:
        return _failed("compile", t0, exc, "compile_error")
    seconds = time.perf_counter() - t0
    checked = _verify("compile", target, package, options)
    return dataclasses.replace(checked, seconds=seconds) if checked.status is Status.OK else checked


def _failed(stage: str, t0: float, exc: BaseException, default: str = "unclassified") -> StageResult:
    return StageResult(stage, Status.FAILED, time.perf_counter() - t0, blocker_kind(exc, default), _one_line(exc))


def blocker_kind(exc: BaseException, default: str = "unclassified") -> str:
    """The diagnose `BlockerKind` of an export failure (its JSON name), or `default` for other errors."""
    if isinstance(exc, ExportFailed) and exc.capture is not None:
        failed = [a for a in exc.capture.attempts if not a.ok and a.exception is not None]
        if failed:
            try:
                from pt2kit.diagnose.classify import classify_exception
            except ImportError:  # diagnose not available: say which exception it was
                return type(failed[0].exception).__name__
            return str(classify_exception(failed[0].exception, failed[0].mode).kind)
    if isinstance(exc, Pt2kitError) and default == "unclassified":
        return type(exc).__name__
    return default


def _one_line(exc: BaseException) -> str:
    """The whole message on one line (a survey cell), not `errors.first_line`: later lines often say why."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# --- one process per row -----------------------------------------------------------------------

def _run_isolated(entry: SurveyEntry, shapes: str, options: SurveyOptions) -> SurveyRow:
    argv = [sys.executable, "-m", "pt2kit", "survey", *entry.argv(), "--stages", ",".join(options.stages),
            "--shapes", shapes, "--device", options.device, "--samples", str(options.samples), "--json", "-q"]
    if options.dynamic_batch:
        argv.append("--dynamic-batch")
    if options.check_specialization:
        argv.append("--specialization-check")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pt2kit-row-") as folder:
        partial = Path(folder) / "row.json"
        env = dict(os.environ, **{_PARTIAL_ENV: str(partial)})
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=options.timeout, env=env)
        except subprocess.TimeoutExpired:
            return _crashed(entry, shapes, options, start, partial, "timeout", f"no result within {options.timeout:.0f}s (--timeout)")
        try:
            (data,) = json.loads(proc.stdout)["rows"]
            return dataclasses.replace(SurveyRow.from_json(data), name=entry.name)
        except (ValueError, KeyError, TypeError):
            why = f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:300]
            return _crashed(entry, shapes, options, start, partial, "crash", f"the process ended without a result ({why}): {tail}")


def _crashed(entry: SurveyEntry, shapes: str, options: SurveyOptions, start: float, partial: Path, kind: str, message: str) -> SurveyRow:
    """The row as far as it got (from the child's partial file), with the crash charged to the stage it was in."""
    try:  # the child writes it atomically; a file from an older pt2kit may still be cut short
        done = SurveyRow.from_json(json.loads(partial.read_text())) if partial.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        done = None
    stages, failed = [], False
    for name in options.stages:
        previous = done.stage(name) if done else None
        if previous is not None and previous.status is Status.OK:
            stages.append(previous)
        elif not failed:
            stages.append(StageResult(name, Status.FAILED, time.perf_counter() - start, kind, message))
            failed = True
        else:
            stages.append(StageResult(name, Status.SKIPPED))
    return SurveyRow(entry.name, entry.spec, shapes, done.dynamic if done else "", tuple(stages), time.perf_counter() - start,
                     done.pytree_types if done else (), done.notes if done else ())


__all__ = ["STAGES", "SHAPES", "Status", "StageResult", "SurveyOptions", "SurveyReport", "SurveyRow", "run_row", "survey_models",
           "blocker_kind"]
