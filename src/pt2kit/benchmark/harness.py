"""`pt2kit.bench`: every mode of one model, side by side, in one process, interleaved.

Order of work: build every mode (collecting failures), take each one's cold start, then for
each batch size warm up and time all modes round-robin (an empty call rides along as the
harness overhead), and last probe each call's memory.

The model is left as found: its state (mode flags, parameters, buffers, requires_grad) is
captured after it is prepared, checked and restored after every mode's build and calls (a mode
that changed it is `changed-model`, its figures dropped), and the user's original state (before
the move to `--device`/`--dtype` and `eval()`) is restored when `bench` returns.

Batch sizes: one size builds static artifacts. Several sizes build ONE artifact per mode whose
dim 0 is a shared dynamic dim `batch[min,max]` (the same as `--dynamic x:0=batch[min,max]`),
exported at the largest size; a model that cannot export with a dynamic batch falls back to
one static build per batch size, and the report says so.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils import _pytree as pytree

from pt2kit import progress
from pt2kit.benchmark.agreement import agreement, tf32_allowed
from pt2kit.benchmark.batching import BatchLayout, batch_layout, parse_batch_sizes
from pt2kit.benchmark.model_state import ModelState, StateGuard
from pt2kit.benchmark.modes import BuildContext, Built, ModeUnavailable, build
from pt2kit.benchmark.report import BenchMode, BenchReport, BenchRow, Machine, ModeOutcome, ModeStatus
from pt2kit.benchmark.timing import MemoryProbe, Timer, interleaved, percentile
from pt2kit.artifact.package import check_output_folder
from pt2kit.errors import UsageError, first_line
from pt2kit.target.device import parse_device
from pt2kit.target.inputs import DTYPES, InputSpec, dtype_name
from pt2kit.target.resolve import Target, load_target

DEFAULT_MODES = (BenchMode.EAGER, BenchMode.COMPILE, BenchMode.EXPORT, BenchMode.AOTI, BenchMode.ONNXRUNTIME)
_ARTIFACT_MODES = (BenchMode.EXPORT, BenchMode.AOTI, BenchMode.ONNXRUNTIME)
_EMPTY = "(empty call)"


def bench(
    target: str | Target,
    *,
    inputs: list[InputSpec] | None = None,
    device: str = "cpu",
    modes: str | list[str | BenchMode] | None = None,
    batch_sizes: str | list[int] | tuple[int, ...] | None = None,
    dtype: str | torch.dtype | None = None,
    warmup: int = 10,
    iters: int = 50,
    seed: int = 0,
    workdir: str | os.PathLike | None = None,
    threads: int | None = None,
    artifact: str | os.PathLike | None = None,
    cuda_graphs: bool = False,
) -> BenchReport:
    """Benchmark a model's modes side by side: build and cold-start times, latency percentiles,
    throughput, peak memory and artifact size per mode and batch size.

    Args:
        target: `file.py:NAME` / `pkg.mod:NAME`, or a `Target` from `load_target`.
        inputs: parsed `--input` specs (default: the target's `example_args`).
        device: `cpu` or `cuda` (`cuda:N`).
        modes: `eager,compile,export,aoti,onnxruntime` (default all; `aoti` also reports `aoti-raw`).
        batch_sizes: e.g. `[1, 8, 32]` or `"1,8,32"`; default the example's own batch size.
        dtype: cast the model and its floating inputs (e.g. `bfloat16`); default as they are.
        warmup, iters: calls per mode and batch size before timing, and timed.
        seed: seed for random inputs.
        workdir: keep the artifacts here (default: a temporary folder, removed afterwards).
        threads: CPU threads for torch (`torch.set_num_threads`) and onnxruntime (default: their own).
        artifact: also time this existing package (mode `artifact`), loaded with its manifest's load options.
        cuda_graphs: load the `aoti` package (and `artifact`) with CUDA graph replay (`--device cuda` only).

    Returns:
        A `BenchReport`; modes that could not be built are in `.outcomes` as skipped or failed, a mode
        that changed the model (its flags, parameters or buffers) as `changed-model`. The model itself
        is left as it was given, in every case.

    Raises:
        UsageError: an unknown mode or dtype, bad batch sizes, an unavailable device.
        TargetError, InputSpecError: as `load_target`.

    Example:
        >>> report = pt2kit.bench("model.py:model", modes="eager,export", batch_sizes=[1, 8])
        >>> print(report); report.to_json()["modes"]["export"]["batches"]["8"]["p50_ms"]
    """
    chosen = parse_modes(modes)
    if artifact is not None:
        from pt2kit.artifact.package import artifact_kind

        artifact_kind(artifact)  # a missing or corrupt file is one clear error before any build
        chosen = tuple(dict.fromkeys(chosen + (BenchMode.ARTIFACT,)))
    if cuda_graphs and not str(device).startswith("cuda"):
        raise UsageError("`--cuda-graphs` replays CUDA graphs and needs `--device cuda`; leave it out on the CPU")
    sizes = parse_batch_sizes(batch_sizes if batch_sizes is None or isinstance(batch_sizes, str) else ",".join(map(str, batch_sizes)))
    if warmup < 0 or iters < 1:
        raise UsageError(f"`--warmup {warmup} --iters {iters}`: warm-up must be >= 0 and iters >= 1")
    device = _check_device(device)
    cast = _parse_dtype(dtype)
    if workdir is not None:
        check_output_folder(workdir, "--keep")
    if threads is not None:
        if threads < 1:
            raise UsageError(f"`--threads {threads}`: give at least 1 thread")
        torch.set_num_threads(threads)
    if isinstance(target, str):
        target = load_target(target, inputs, seed=seed)
    original = ModelState.capture(target.module)
    try:
        return _bench_prepared(target, device, cast, sizes, chosen, warmup, iters, workdir, threads, (artifact, cuda_graphs))
    finally:
        original.restore()  # the device, dtype and mode flags the caller's model had


def _bench_prepared(target, device, cast, sizes, chosen, warmup, iters, workdir, threads, extra) -> BenchReport:
    with torch.no_grad():
        target = _prepare(target, device, cast)
        layout = batch_layout(target.args, target.kwargs, target.parameter_names)
        if sizes and layout.size is None:
            raise UsageError(f"`{target.spec}` takes no tensor input with a batch dim, so `--batch-sizes` cannot apply; leave it out")
        sizes = sizes or (layout.size or 1,)
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
            return _run(target, layout, chosen, sizes, device, warmup, iters, Path(workdir), threads, extra)
        with tempfile.TemporaryDirectory(prefix="pt2kit-bench-") as tmp:
            return _run(target, layout, chosen, sizes, device, warmup, iters, Path(tmp), threads, extra)


def parse_modes(modes: str | list | tuple | None) -> tuple[BenchMode, ...]:
    """`"eager,aoti"` -> (EAGER, AOTI). Raises UsageError for an unknown name."""
    if modes is None:
        return DEFAULT_MODES
    names = [m.strip() for m in modes.split(",")] if isinstance(modes, str) else [str(m) for m in modes]
    valid = ", ".join(m.value for m in BenchMode if m is not BenchMode.ARTIFACT)
    chosen = []
    for name in filter(None, names):
        try:
            mode = BenchMode(name)
        except ValueError:
            raise UsageError(f"unknown bench mode `{name}`; choose from: {valid} (e.g. `--modes eager,aoti`)") from None
        if mode is BenchMode.ARTIFACT:
            raise UsageError("mode `artifact` times an existing package: pass `--artifact PATH` instead of naming it in `--modes`")
        if mode is BenchMode.AOTI_RAW:
            mode = BenchMode.AOTI  # the raw package is timed whenever aoti is
        if mode not in chosen:
            chosen.append(mode)
    if not chosen:
        raise UsageError(f"no bench mode given; choose from: {valid}")
    return tuple(sorted(chosen, key=list(BenchMode).index))


def _check_device(device: str) -> str:
    device = parse_device(device)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    return device


def _parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES or not DTYPES[dtype].is_floating_point:
        raise UsageError(f"`--dtype {dtype}` is not a floating dtype; use float32, bfloat16 or float16")
    return DTYPES[dtype]


def _prepare(target: Target, device: str, dtype: torch.dtype | None) -> Target:
    """The target with its module and inputs on `device` (and in `dtype`). Moves the module in place."""
    module = target.module.to(device=device, dtype=dtype) if dtype is not None else target.module.to(device)

    def move(value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        value = value.to(device)
        return value.to(dtype) if dtype is not None and value.is_floating_point() else value

    args, kwargs = pytree.tree_map(move, (tuple(target.args), dict(target.kwargs)))
    return Target(target.spec, module.eval(), args, kwargs, target.source, target.dynamic)


def _run(target: Target, layout: BatchLayout, modes: tuple[BenchMode, ...], sizes: tuple[int, ...],
         device: str, warmup: int, iters: int, workdir: Path, threads: int | None, extra: tuple = (None, False)) -> BenchReport:
    inputs = {bs: layout.resize(target.args, target.kwargs, bs) for bs in sizes}
    notes: list[str] = []
    outcomes: dict[BenchMode, ModeOutcome] = {}
    built: dict[tuple[BenchMode, int], Built] = {}
    programs: dict = {}
    dynamic = layout.dynamic_spec(min(sizes), max(sizes)) if len(sizes) > 1 else None
    guard = StateGuard(target.module, inputs[max(sizes)], notes)
    for mode in modes:
        with progress.stage(f"build {mode}"):
            outcome, per_batch = _build_mode(mode, target, inputs, sizes, dynamic, device, workdir, programs, threads, extra)
        changed = guard.after_build(mode)
        if changed:
            outcome, per_batch = changed, {}
        outcomes[mode] = outcome
        built.update({(mode, bs): b for bs, b in per_batch.items()})
        if mode is BenchMode.AOTI and per_batch:
            raws = {bs: b.raw for bs, b in per_batch.items()}
            error = next((r for r in raws.values() if not isinstance(r, Built)), None)
            if error is None:
                outcomes[BenchMode.AOTI_RAW] = ModeOutcome(BenchMode.AOTI_RAW, ModeStatus.OK, batch_build=outcome.batch_build)
                built.update({(BenchMode.AOTI_RAW, bs): r for bs, r in raws.items()})
            else:
                reason = f"torch._inductor.aoti_load_package raised {first_line(error)}" if error else "no raw loader"
                outcomes[BenchMode.AOTI_RAW] = ModeOutcome(BenchMode.AOTI_RAW, ModeStatus.FAILED, reason)
    split = [o for o in outcomes.values() if o.batch_build == "per-batch"]
    if len(sizes) > 1 and split:
        notes += [f"`{o.mode}` was built once per batch size: {o.reason or 'no dynamic batch was asked for'}" for o in split]
    elif dynamic and any(m in modes for m in _ARTIFACT_MODES):
        notes.append(f"artifact modes were built once with a dynamic batch: `--dynamic {dynamic}`")

    timer, memory = Timer(device), MemoryProbe(device)
    cold: dict[tuple[BenchMode, int], tuple[float | None, float]] = {}
    with progress.stage("cold start (first call per mode and batch size)"):
        for bs in sizes:
            for mode in [m for m in outcomes if (m, bs) in built]:
                b = built[(mode, bs)]
                try:
                    first = timer.wall_s(_bind(b, inputs[bs]))
                except Exception as exc:
                    outcomes[mode] = ModeOutcome(mode, ModeStatus.FAILED, f"calling it at batch {bs} raised {first_line(exc)}")
                    for key in [k for k in built if k[0] is mode]:
                        del built[key]
                    continue
                finally:
                    changed = guard.after_call(mode, f"its first call at batch {bs}")
                if changed:
                    outcomes[mode] = changed
                    for key in [k for k in built if k[0] is mode]:
                        del built[key]
                    continue
                cold[(mode, bs)] = (first, first) if b.build_on_first_call else (b.build_s, b.load_s + first)
    with progress.stage("check every mode's outputs against eager"):
        matches = _check_outputs(target, built, inputs, outcomes, device, notes, guard)

    rows: list[BenchRow] = []
    empty_samples: list[float] = []
    for bs in sizes:
        calls: dict[Any, Callable[[], Any]] = {m: _bind(built[(m, bs)], inputs[bs]) for m in outcomes if (m, bs) in built}
        if not calls:
            continue
        calls[_EMPTY] = lambda: None
        gc.collect()
        with progress.stage(f"time batch {bs}: {len(calls) - 1} modes x {iters} calls, interleaved"):
            interleaved(timer, calls, warmup)
            samples = interleaved(timer, calls, iters)
        empty_samples += samples.pop(_EMPTY)
        del calls[_EMPTY]
        for mode, values in samples.items():
            p50 = percentile(values, 50)
            build_s, cold_s = cold[(mode, bs)]
            rows.append(BenchRow(
                mode, bs, build_s, cold_s, p50, percentile(values, 90), percentile(values, 99), sum(values) / len(values),
                bs * 1000.0 / p50 if p50 > 0 else float("inf"), memory.measure(calls[mode]),
                built[(mode, bs)].artifact_bytes, len(values), matches.get((mode, bs)),
            ))
        guard.after_timing(bs)  # the timed calls and the memory probe's
    if device == "cpu":
        notes.append(f"CPU threads: torch {torch.get_num_threads()}" + (f", onnxruntime {threads}" if threads else ", onnxruntime its default"))
    if not memory.available:
        notes.append("peak memory was not measured: /proc/self/clear_refs is not writable here")
    order = list(BenchMode)
    return BenchReport(
        target=target.spec, device=device, dtype=_dtype_of(target), rows=tuple(sorted(rows, key=lambda r: (order.index(r.mode), r.batch_size))),
        outcomes=tuple(outcomes[m] for m in sorted(outcomes, key=order.index)), overhead_ms=percentile(empty_samples, 50),
        warmup=warmup, iters=iters, machine=machine_info(device), notes=tuple(notes),
    )


def _check_outputs(target: Target, built: dict, inputs: dict, outcomes: dict, device: str,
                   notes: list[str], guard: StateGuard) -> dict[tuple[BenchMode, int], bool]:
    """Call every built mode once per batch size and compare with eager; a mode that disagrees becomes WRONG."""
    compute, tf32 = _dtype_of(target), device != "cpu" and tf32_allowed(target.module)
    matches: dict[tuple[BenchMode, int], bool] = {}
    for bs in sorted({bs for _, bs in built}):
        args, kwargs = inputs[bs]
        try:
            expected = target.module(*args, **kwargs)
        except Exception as exc:
            notes.append(f"outputs not checked at batch {bs}: the eager model raised {first_line(exc)}")
            continue
        finally:
            guard.after_call(BenchMode.EAGER, "")
        for mode in [m for m in outcomes if (m, bs) in built and m is not BenchMode.EAGER]:
            try:
                result = agreement(expected, _bind(built[(mode, bs)], inputs[bs])(), device=device, compute=compute, tf32=tf32)
                changed = guard.after_call(mode, f"a call at batch {bs}")
                if changed:
                    raise _Changed(changed)
            except _Changed as exc:
                outcomes[mode] = exc.outcome
                for key in [k for k in built if k[0] is mode]:
                    del built[key]
                continue
            except Exception as exc:
                guard.after_call(mode, "")
                outcomes[mode] = ModeOutcome(mode, ModeStatus.FAILED, f"calling it at batch {bs} raised {first_line(exc)}")
                for key in [k for k in built if k[0] is mode]:
                    del built[key]
                continue
            matches[(mode, bs)] = result.ok
            if not result.ok and outcomes[mode].status is ModeStatus.OK:
                outcomes[mode] = ModeOutcome(mode, ModeStatus.WRONG, f"at batch {bs}, {result}", outcomes[mode].batch_build)
    return matches


class _Changed(Exception):
    def __init__(self, outcome: ModeOutcome):
        super().__init__(outcome.reason)
        self.outcome = outcome


def _build_mode(mode, target, inputs, sizes, dynamic, device, workdir, programs, threads, extra) -> tuple[ModeOutcome, dict[int, Built]]:
    """Build `mode` once for every batch size (static or dynamic), else once per batch size."""
    artifact, cuda_graphs = extra

    def context(bs: int, spec: str | None, tag: str) -> BuildContext:
        args, kwargs = inputs[bs]
        return BuildContext(target, args, kwargs, spec, device, workdir, tag, threads, programs, cuda_graphs,
                            Path(artifact) if artifact is not None else None)

    shared = mode not in _ARTIFACT_MODES or len(sizes) == 1 or dynamic is not None
    how = "static" if len(sizes) == 1 else ("dynamic" if mode in _ARTIFACT_MODES else "")
    try:
        if shared:
            try:
                b = build(mode, context(max(sizes), dynamic, ""))
                return ModeOutcome(mode, ModeStatus.OK, batch_build=how), {bs: b for bs in sizes}
            except ModeUnavailable:
                raise
            except Exception as exc:
                if mode not in _ARTIFACT_MODES or len(sizes) == 1:
                    raise
                why = f"the dynamic-batch build raised {first_line(exc)}"  # said in the report's notes, not hidden
        per = {bs: build(mode, context(bs, None, f"-b{bs}")) for bs in sizes}
        return ModeOutcome(mode, ModeStatus.OK, why if shared else "", batch_build="per-batch"), per
    except ModeUnavailable as exc:
        return ModeOutcome(mode, ModeStatus.SKIPPED, str(exc)), {}
    except Exception as exc:
        return ModeOutcome(mode, ModeStatus.FAILED, f"building it raised {first_line(exc)}"), {}


def _bind(b: Built, batch_inputs: tuple[tuple, dict]) -> Callable[[], Any]:
    fn, (args, kwargs) = b.fn, batch_inputs
    if b.prepare is not None:
        args, kwargs = b.prepare(args, kwargs)
    return lambda: fn(args, kwargs)


def _dtype_of(target: Target) -> str:
    floating = [p.dtype for p in target.module.parameters() if p.is_floating_point()]
    return dtype_name(floating[0]) if floating else "float32"


def machine_info(device: str) -> Machine:
    """The CPU, GPU, Python and torch versions, and the date (UTC)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return Machine(
        platform=platform.platform(terse=True), cpu=cpu, cpu_count=os.cpu_count() or 0, python=platform.python_version(),
        torch=torch.__version__, gpu=gpu, date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


__all__ = ["DEFAULT_MODES", "bench", "machine_info", "parse_modes"]
