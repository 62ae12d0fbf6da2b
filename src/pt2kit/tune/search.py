"""`tune_model`: build every candidate, keep those within the tolerance, time them side by side, write the fastest.

Order of work: get a `.pt2` program (export a TARGET once, at `batch_size`), plan the candidates
(`candidates.plan_candidates`), compute float32 eager's outputs on the verification inputs once, then for each
candidate in turn build its package (through the build cache, so a second tune of the same model is fast), load
it and verify it; no new build starts once `time_budget` seconds have passed. The survivors are timed
round-robin in one process, and the fastest is copied to `output` with the manifest recording the choice
(`Manifest.tuned`) and the options `pt2kit.load` applies by default (`Manifest.load_options`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from pt2kit import progress
from pt2kit.artifact.contract import check_inputs
from pt2kit.artifact.manifest import Manifest
from pt2kit.artifact.package import (ArtifactKind, artifact_kind, atomic_path, check_output_folder, check_output_path, load_program,
                                     read_manifest, save_program)
from pt2kit.runtime.loaded import load
from pt2kit.compile.build import add_manifest, compile_package
from pt2kit.errors import UsageError, first_line
from pt2kit.target.resolve import Target, load_target
from pt2kit.compile.quantize import import_torchao
from pt2kit.tune.candidates import Candidate, parse_list, plan_candidates, split_dtypes
from pt2kit.tune.checks import Reference, cast_leaves, check_candidate, num_threads, time_calls
from pt2kit.tune.layout import has_image_inputs, to_channels_last
from pt2kit.tune.report import CandidateResult, TuneReport


def tune_model(
    source: str | os.PathLike | Target,
    output: str | os.PathLike,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    dtypes: str | tuple[str, ...] | None = None,
    recipes: str | tuple[str, ...] | None = None,
    threads: str | tuple[int, ...] | None = None,
    time_budget: float = 900.0,
    samples: int = 2,
    warmup: int = 5,
    iters: int = 30,
    inputs: list | None = None,
    seed: int = 0,
    use_cache: bool = True,
    workdir: str | os.PathLike | None = None,
    low_precision_io: bool = False,
) -> TuneReport:
    """Try build configurations of a model, keep those within the tolerance of float32 eager, write the fastest.

    Args:
        source: a TARGET (`file.py:NAME`, or a `Target`) or a `.pt2` program.
        output: the package to write (`.pt2`).
        device: `cpu` or `cuda`.
        batch_size: resize the batch (dim 0 of the batched inputs) to this before exporting and timing.
        atol, rtol: the tolerance against float32 eager (`|a - e| <= atol + rtol * |e|`, every element).
        dtypes: `fp32,bf16,fp16` (default every dtype the device computes natively), and quantized candidates:
            `int8`, `fp8`, `int4` or scheme names (`pt2kit.compile.quantize.SCHEMES`; needs `pt2kit[quant]`).
        recipes: recipe names (`pt2kit.tune.candidates.RECIPES`; default all for the device).
        threads: CPU thread counts to try, e.g. `1,2` (default this process's count).
        time_budget: seconds after which no new build starts (the first always runs).
        samples: random verification inputs besides the example.
        warmup, iters: calls per candidate before timing, and timed.
        inputs: `--input` specs for a TARGET.
        use_cache: reuse identical earlier builds (`PT2KIT_CACHE_DIR`).
        workdir: keep every candidate's package here (default: a temporary folder).
        low_precision_io: a lower-precision candidate takes and returns its own dtype (bf16, fp16) instead of the
            model's; by default it casts inside, so every candidate keeps the model's calling contract and is
            verified and timed that way.

    Returns:
        A `TuneReport`; `report.chosen` is None (and nothing is written) when no candidate passed.

    Raises:
        UsageError: bad device, output name, dtype, recipe, thread count or batch size.

    Example:
        >>> report = pt2kit.tune_model("model.py:model", "model.tuned.pt2", dtypes="fp32,bf16", atol=1e-2)
        >>> pt2kit.load(report.output)(torch.randn(8, 16))
    """
    start = time.perf_counter()
    output = Path(output)
    _check_options(output, device, batch_size, time_budget, samples, iters)
    _check_tolerances(atol, rtol)
    check_output_path(output, "-o")  # before any build: a folder, a missing or read-only folder fails now
    if workdir is not None:
        check_output_folder(workdir, "--keep")
    thread_counts = _thread_counts(threads)
    if isinstance(dtypes, str):
        dtypes = parse_list(dtypes, "dtypes", "fp32,bf16")
    if split_dtypes(dtypes, device)[1]:
        import_torchao()  # a missing `quant` extra fails now, before the export
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        return _tune(source, output, Path(workdir), start, device=device, batch_size=batch_size, atol=atol, rtol=rtol,
                     dtypes=dtypes, recipes=recipes, threads=thread_counts, time_budget=time_budget, samples=samples,
                     warmup=warmup, iters=iters, inputs=inputs, seed=seed, use_cache=use_cache,
                     low_precision_io=low_precision_io)
    with tempfile.TemporaryDirectory(prefix="pt2kit-tune-") as tmp:
        return _tune(source, output, Path(tmp), start, device=device, batch_size=batch_size, atol=atol, rtol=rtol,
                     dtypes=dtypes, recipes=recipes, threads=thread_counts, time_budget=time_budget, samples=samples,
                     warmup=warmup, iters=iters, inputs=inputs, seed=seed, use_cache=use_cache,
                     low_precision_io=low_precision_io)


def _check_options(output: Path, device: str, batch_size, time_budget, samples, iters) -> None:
    if not output.name.endswith(".pt2"):
        raise UsageError(f"output `{output}` must end in .pt2; e.g. `-o {output.stem}.tuned.pt2`")
    if not output.parent.exists():
        raise UsageError(f"output folder `{output.parent}` does not exist; create it or choose another `-o` path")
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device `{device}`; use `--device cpu` or `--device cuda`")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("`--device cuda` needs a CUDA GPU and a CUDA build of torch, and this machine has neither; use `--device cpu`")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"`--batch-size {batch_size}` must be at least 1")
    if time_budget <= 0 or samples < 0 or iters < 1:
        raise UsageError(f"`--time-budget {time_budget}` must be > 0, `--samples {samples}` >= 0 and `--iters {iters}` >= 1")


def _check_tolerances(atol, rtol) -> None:
    """NaN would let every candidate through (no difference compares greater than NaN); inf would too."""
    for flag, value in (("--atol", atol), ("--rtol", rtol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UsageError(f"`{flag} {value}` must be a finite number >= 0; e.g. `{flag} 1e-3`")


def _thread_counts(threads) -> tuple[int, ...] | None:
    if threads is None or isinstance(threads, tuple):
        return threads
    items = parse_list(str(threads), "threads", "1,2")
    try:
        return tuple(int(t) for t in items)
    except ValueError:
        raise UsageError(f"`--threads {threads}` is not a list of integers; write e.g. `--threads 1,2`") from None


def _program(source, workdir: Path, batch_size: int | None, inputs, seed: int) -> tuple[Path, Target]:
    """The `.pt2` to build from and the eager model (as a Target with inputs at `batch_size`) to check against."""
    from pt2kit.benchmark.batching import batch_layout

    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".pt2"):
        path = Path(source)
        if artifact_kind(path) is ArtifactKind.AOTI:
            raise UsageError(f"`{path}` is already an AOTInductor package; tune the `.pt2` program it came from, or the TARGET")
        from pt2kit.verify.outputs import program_target

        target = program_target(path)
        if batch_size is not None:
            layout = batch_layout(target.args, target.kwargs, target.parameter_names)
            args, kwargs = layout.resize(target.args, target.kwargs, batch_size)
            target = dataclasses.replace(target, args=args, kwargs=kwargs)
        return path, target
    target = source if isinstance(source, Target) else load_target(str(source), inputs, seed=seed)
    if batch_size is not None:
        layout = batch_layout(target.args, target.kwargs, target.parameter_names)
        if layout.size is None:
            raise UsageError(f"`{target.spec}` takes no tensor input with a batch dim, so `--batch-size` cannot apply; leave it out")
        args, kwargs = layout.resize(target.args, target.kwargs, batch_size)
        target = dataclasses.replace(target, args=args, kwargs=kwargs)
    from pt2kit.export.program import export_program

    path = workdir / "program.pt2"
    with progress.stage("export"):
        export_program(target, path, dynamic=target.dynamic or "", check_specialization=False)
    return path, target


def _reference(target: Target, manifest: Manifest, device: str, samples: int, seed: int) -> Reference:
    from pt2kit.verify.cases import leaves_and_names, plan_cases

    leaves, names, spec = leaves_and_names(target.args, target.kwargs, target.parameter_names)
    check_inputs(manifest, leaves)  # e.g. a `--batch-size` a static program cannot take: one clear error now
    plan = plan_cases(manifest, names, leaves, samples=samples, seed=seed)
    cases = [(str(c), list(c.leaves)) for c in plan.cases]
    with progress.stage(f"the eager reference on {len(cases)} verification inputs"):
        return Reference.compute(target.module, spec, cases, device)


def _tune(source, output: Path, workdir: Path, start: float, *, device, batch_size, atol, rtol, dtypes, recipes, threads,
          time_budget, samples, warmup, iters, inputs, seed, use_cache, low_precision_io) -> TuneReport:
    program, target = _program(source, workdir, batch_size, inputs, seed)
    manifest = read_manifest(program)
    if manifest is None:
        raise UsageError(f"`{program}` has no pt2kit manifest; export it with `pt2kit export` first")
    candidates = plan_candidates(device, dtypes=parse_list(dtypes, "dtypes", "fp32,bf16") if isinstance(dtypes, str) else dtypes,
                                 recipes=parse_list(recipes, "recipes", "default,cpu-freeze") if isinstance(recipes, str) else recipes,
                                 channels_last=has_image_inputs(manifest), threads=threads)
    reference = _reference(target, manifest, device, samples, seed)
    program_dtype = _program_dtype(manifest)
    results: dict[str, CandidateResult] = {}
    loaded: dict[str, Any] = {}
    packages: dict[tuple, Path | CandidateResult] = {}
    programs: dict[bool, Path] = {False: program}
    notes: list[str] = [reference.note] if reference.note else []
    for i, cand in enumerate(candidates, 1):
        built = packages.get(cand.build_key)
        if built is None and packages and time.perf_counter() - start > time_budget:
            results[cand.name] = CandidateResult(cand, False, "skipped: time budget",
                                                 reason=f"not built: the {time_budget:.0f}s budget was spent")
            continue
        progress.info(f"candidate {i}/{len(candidates)}: {cand.name}")
        if built is None:
            built = packages[cand.build_key] = _build(cand, programs, manifest, workdir, device, program_dtype, use_cache,
                                                      low_precision_io)
        if isinstance(built, CandidateResult):
            results[cand.name] = dataclasses.replace(built, candidate=cand)
            continue
        package, build_s, cached = built
        try:
            artifact = load(package, cuda_graphs=cand.cuda_graphs, threads=0)
        except Exception as exc:
            results[cand.name] = CandidateResult(cand, False, "load failed", build_s=build_s, cached=cached, reason=first_line(exc))
            continue
        with progress.stage(f"verify {cand.name}"), num_threads(cand.threads):
            agreement = check_candidate(artifact, reference, cand.dtype if low_precision_io else None, device, atol, rtol)
        if not agreement.ok:
            results[cand.name] = CandidateResult(cand, False, "failed verification", max_abs_err=agreement.max_abs_err,
                                                 build_s=build_s, cached=cached,
                                                 reason=f"{len(agreement.problems)} problem(s); first: {agreement.problems[0]}")
            continue
        results[cand.name] = CandidateResult(cand, True, "ok", max_abs_err=agreement.max_abs_err, build_s=build_s, cached=cached)
        loaded[cand.name] = artifact
    timings = _time(loaded, candidates, reference, device, warmup, iters, low_precision_io)
    for name, (p50, p90) in timings.items():
        results[name] = dataclasses.replace(results[name], p50_ms=p50, p90_ms=p90)
    ordered = [results[c.name] for c in candidates]
    chosen = min((r for r in ordered if r.ok and r.p50_ms is not None), key=lambda r: r.p50_ms, default=None)
    if chosen is not None:
        ordered = [dataclasses.replace(r, status="chosen") if r is chosen else r for r in ordered]
        with progress.stage(f"write {chosen.name} -> {output}"):
            package = packages[chosen.candidate.build_key][0]
            _write(package, output, chosen, read_manifest(package), atol, rtol, batch_size, device, len(candidates))
    if threads is None and device == "cpu":
        notes.append(f"timed at this process's {torch.get_num_threads()} CPU threads; pass `--threads 1,2` to compare counts")
    return TuneReport(str(getattr(source, "spec", source)), output if chosen else None, device, batch_size, atol, rtol,
                      chosen.name if chosen else None, tuple(ordered), time.perf_counter() - start, tuple(notes))


def _program_dtype(manifest: Manifest) -> str | None:
    if manifest.extra.get("dtype"):
        return manifest.extra["dtype"]
    floating = {leaf.dtype for leaf in manifest.inputs if leaf.kind == "tensor" and leaf.dtype in ("float32", "bfloat16", "float16")}
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[floating.pop()] if len(floating) == 1 else None


def _build(cand: Candidate, programs: dict[bool, Path], manifest: Manifest, workdir: Path, device: str,
           program_dtype: str | None, use_cache: bool, low_precision_io: bool):
    """(package, build seconds, cached) or a failed `CandidateResult`."""
    try:
        if cand.channels_last not in programs:
            with progress.stage("channels_last program"):
                ep, cl_manifest = to_channels_last(load_program(programs[False]), manifest)
                programs[True] = save_program(ep, cl_manifest, workdir / "program-cl.pt2")
        package = workdir / f"{cand.name.removesuffix('-graphs')}.aoti.pt2"
        # an fp32 program built as fp32 is not converted: the build is then the same one `pt2kit compile` caches
        dtype = None if cand.dtype == (program_dtype or "fp32") else cand.dtype
        with num_threads(cand.threads):
            result = compile_package(programs[cand.channels_last], package, device=device, preset=cand.recipe.preset, dtype=dtype,
                                     use_cache=use_cache, inductor_configs=cand.inductor_configs(),
                                     low_precision_io=low_precision_io and dtype is not None, quantize=cand.quant)
        return package, result.build_seconds, result.cached
    except Exception as exc:  # one candidate that cannot build must not stop the others
        return CandidateResult(cand, False, "build failed", reason=first_line(exc))


def _time(loaded: dict[str, Any], candidates, reference: Reference, device: str, warmup: int, iters: int,
          low_precision_io: bool) -> dict[str, tuple[float, float]]:
    if not loaded:
        return {}
    by_name = {c.name: c for c in candidates}
    calls = {}
    for name, artifact in loaded.items():
        cand = by_name[name]
        args, kwargs = pytree.tree_unflatten(cast_leaves(reference.cases[0][1], cand.dtype if low_precision_io else None, device), reference.spec)
        calls[name] = _bound(artifact, args, kwargs)
    with progress.stage(f"time {len(calls)} candidates x {iters} calls, interleaved"):
        return time_calls(calls, device, warmup, iters, threads={name: by_name[name].threads for name in calls})


def _bound(artifact, args: tuple, kwargs: dict):
    return lambda: artifact(*args, **kwargs)


def _write(package: Path, output: Path, chosen: CandidateResult, manifest: Manifest, atol: float, rtol: float,
           batch_size: int | None, device: str, tried: int) -> None:
    from pt2kit.benchmark.harness import machine_info

    cand = chosen.candidate
    options: dict[str, Any] = {"cuda_graphs": cand.cuda_graphs}
    if cand.threads is not None:
        options["threads"] = cand.threads
    batch = _batch_dim(manifest)
    if cand.cuda_graphs and batch is not None:
        high = batch.max if batch.max is not None else 64
        wanted = {1, 2, 4, 8, 16, 32, 64, batch_size or batch.min, min(high, 64)}
        sizes = sorted(s for s in wanted if batch.min <= s <= high)
        options["cuda_graph_batch"] = {"dim": batch.name, "sizes": sizes}
    tuned = {"candidate": cand.name, "config": cand.to_json(), "p50_ms": chosen.p50_ms, "p90_ms": chosen.p90_ms,
             "max_abs_err": chosen.max_abs_err, "atol": atol, "rtol": rtol, "batch_size": batch_size, "device": device,
             "candidates_tried": tried, "machine": str(machine_info("cuda" if device == "cuda" else "cpu")),
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    with atomic_path(output) as tmp:
        shutil.copyfile(package, tmp)
        add_manifest(tmp, manifest.replace(tuned=tuned, load_options=options))


def _batch_dim(manifest: Manifest):
    """The dynamic dim that is dim 0 of every input it appears in (the batch), if there is one."""
    return next((d for d in manifest.dims if d.used_by and all(u.endswith(":0") for u in d.used_by)), None)
