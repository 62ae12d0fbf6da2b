"""`compile_regions`: trace, choose the regions, build one package per group, check each block, write the archive."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pt2kit import __version__, progress
from pt2kit.artifact.manifest import Manifest
from pt2kit.artifact.package import check_output_path
from pt2kit.compile.build import add_manifest, quiet_inductor
from pt2kit.compile.cache import BuildCache, build_key, program_digest
from pt2kit.compile.presets import get_preset
from pt2kit.diagnose.blockers import Blocker
from pt2kit.diagnose.diagnosis import diagnose_model
from pt2kit.artifact.contract import bind_inputs, check_inputs
from pt2kit.errors import InputMismatchError, UsageError
from pt2kit.export.program import ExportResult
from pt2kit.artifact.regions.archive import RegionEntry, RegionManifest, weights_blob, write_archive
from pt2kit.runtime.regions.blocks import load_weights, module_constants, open_package, outputs_match
from pt2kit.partial.regions import RegionPlan, plan_regions
from pt2kit.partial.report import EagerPart, GroupBuild, PartialResult, StaticBatch
from pt2kit.partial.trace import trace_calls
from pt2kit.target.resolve import Target

MAX_DIAGNOSED = 4  # groups whose blockers `diagnose` explains in full; the rest get export's one-line reason
NO_WEIGHTS = {"aot_inductor.package_constants_in_so": False}


def compile_regions(
    target: Target,
    output: str | Path | None,
    *,
    device: str = "cpu",
    preset: str = "default",
    min_share: float = 0.02,
    fix: bool = True,
    samples: list[tuple[tuple, dict]] | None = None,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
) -> PartialResult:
    """Compile the parts of a model that export; keep the rest in Python.

    Runs the model with hooks to record each submodule's inputs and time, exports submodules top-down (a module
    that exports covers its children; `--fix` rewrites first), builds one AOTInductor package per group of
    identical blocks, checks every block with its own weights against its eager outputs, and writes the archive.

    Args:
        target: from `load_target`.
        output: the archive to write (`.pt2`); None builds and reports without writing.
        device: `cpu` or `cuda`.
        preset: Inductor settings (`default` or `max-autotune`; `cpu-freeze` folds weights, so blocks could not share).
        min_share: a module taking less than this share of the eager time stays eager.
        fix: rewrite data-dependent branches into `torch.cond` before exporting a submodule.
        samples: more `(args, kwargs)` input sets: dims that differ across a block's calls become dynamic.
        use_cache, cache_dir: the build cache (`PT2KIT_CACHE_DIR`), shared with `pt2kit compile`.

    Returns:
        A `PartialResult`; `.ok` is False (and nothing is written) when no submodule could be compiled.

    Raises:
        UsageError: bad device, preset, min_share or output name.

    Example:
        >>> result = compile_regions(load_target("model.py:model"), "model.regions.pt2")
        >>> model = pt2kit.apply_regions(build_model(), result.path)
    """
    start = time.perf_counter()
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device `{device}`; use `--device cpu` or `--device cuda`")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("`--device cuda` needs a CUDA GPU and a CUDA build of torch; use `--device cpu`")
    if not 0 <= min_share < 1:
        raise UsageError(f"`--min-share {min_share}` must be in [0, 1), e.g. `--min-share 0.02` for 2% of the eager time")
    if output is not None and not str(output).endswith(".pt2"):
        raise UsageError(f"output `{output}` must end in .pt2, e.g. `-o {Path(output).stem}.regions.pt2`")
    if output is not None:
        check_output_path(output, "-o")  # before the model is traced and its regions built
    chosen = get_preset(preset, device)
    if chosen.inductor_configs.get("freezing"):
        raise UsageError(f"preset `{preset}` folds weights into the code, so blocks could not share a package; "
                         "use `--preset default` or `--preset max-autotune` with --partial")
    model = target.module.eval()
    if device == "cuda":
        model = model.to("cuda")
    inputs = [(target.args, target.kwargs)] + list(samples or [])
    inputs = [_to_device(call, device) for call in inputs]
    with progress.stage("run the model with hooks"):
        trace = trace_calls(model, inputs)
    plan = plan_regions(model, trace, target_spec=target.spec, source=target.source, min_share=min_share, fix=fix)
    settings = {**chosen.inductor_configs, **NO_WEIGHTS}
    eager = [_eager_part(model, r.path, r.share, r.kind, r.reason) for r in plan.rejected]
    regions: list[RegionEntry] = []
    groups: list[GroupBuild] = []
    weights: dict[str, bytes] = {}
    packages: dict[str, Path] = {}
    static: list[StaticBatch] = []
    with tempfile.TemporaryDirectory(prefix="pt2kit-partial-") as folder:
        for key, result in plan.programs.items():
            blocks = [c for c in plan.regions if c.group == key]
            name = f"packages/{key}.pt2"
            try:
                package, build_seconds, cached = _build(result, Path(folder) / f"{key}.pt2", settings, device, chosen.name,
                                                        use_cache, cache_dir)
            except Exception as exc:  # a failed build leaves these blocks eager; the report says why
                eager += [_eager_part(model, c.path, c.share, "build", f"AOTInductor build failed: {_line(exc)}") for c in blocks]
                continue
            kept = 0
            program_constants = {**result.program.state_dict, **result.program.constants}
            for block in blocks:
                module = model.get_submodule(block.path)
                with progress.stage(f"check {block.path or '(model)'} with its own weights"):
                    try:
                        runner = open_package(package, result.manifest)
                        constants = module_constants(module, list(runner.loader.get_constant_fqns()), program_constants)
                        load_weights(runner, constants, device)
                        problem = _check_block(runner, result.manifest, trace.records[block.path].calls, module)
                    except Exception as exc:  # this block stays eager; the others of its group may still fit
                        problem = f"its region could not run with its own weights: {_line(exc)}"
                if problem:
                    eager.append(_eager_part(model, block.path, block.share, "mismatch", problem))
                    continue
                region_id = block.path or "model"
                blob, sha = weights_blob(constants)
                weights[f"weights/{region_id}.safetensors"] = blob
                regions.append(RegionEntry(block.path, type(module).__qualname__, key, name, f"weights/{region_id}.safetensors", sha,
                                           result.manifest, block.seconds, block.share, block.calls))
                if plan.static.get(key):
                    static.append(StaticBatch(block.path, plan.static[key]))
                kept += 1
            if kept:
                packages[name] = package
                groups.append(GroupBuild(key, plan.representatives[key], kept, build_seconds, cached, package.stat().st_size))
        order = {path: i for i, path in enumerate(trace.records)}
        regions.sort(key=lambda r: order[r.path])
        eager = [_outside_regions(e, regions) for e in _explain(eager, plan, target, model)]
        eager.sort(key=lambda e: order.get(e.path, len(order)))
        path = None
        if regions and output is not None:
            manifest = RegionManifest(target.spec, type(model).__qualname__, device, torch.__version__, __version__,
                                      trace.total_seconds, tuple(regions), tuple(e.entry() for e in eager),
                                      extra={"preset": chosen.name, "inductor_configs": settings})
            with progress.stage("write region archive"):
                path = write_archive(output, manifest, packages, weights)
    static.sort(key=lambda s: order[s.path])
    return PartialResult(path, target.spec, device, tuple(regions), tuple(eager), tuple(groups), trace.total_seconds,
                         time.perf_counter() - start, tuple(static))


def _build(result: ExportResult, package: Path, settings: dict, device: str, preset: str, use_cache: bool,
           cache_dir) -> tuple[Path, float, bool]:
    """One group's package, from the build cache when an identical build is there."""
    import torch._inductor

    ep = result.program
    if device == "cuda":
        from torch.export.passes import move_to_device_pass

        ep = move_to_device_pass(ep, f"cuda:{torch.cuda.current_device()}")
    key = build_key(program_digest(ep, "partial: weights loaded per block"), settings, device, None)
    cache = BuildCache(cache_dir)
    entry = cache.get(key) if use_cache else None
    if entry is not None:
        shutil.copyfile(entry.path, package)
        return package, entry.build_seconds, True
    begin = time.perf_counter()
    with progress.stage(f"compile {result.manifest.target} with AOTInductor ({preset}, {device})"), quiet_inductor():
        torch._inductor.aoti_compile_and_package(ep, package_path=str(package), inductor_configs=dict(settings))
    seconds = time.perf_counter() - begin
    meta = dict(torch._C._aoti.AOTIModelPackageLoader.load_metadata_from_package(str(package), "model"))
    aoti = {"device": device, "preset": preset, "inductor_configs": settings, "dtype": None, "cpu_isa": meta.get("AOTI_CPU_ISA", ""),
            "compute_capability": meta.get("AOTI_COMPUTE_CAPABILITY", ""), "machine": meta.get("AOTI_MACHINE", ""),
            "torch_version": torch.__version__, "build_key": key}
    add_manifest(package, result.manifest.replace(torch_version=torch.__version__, extra={**result.manifest.extra, "aoti": aoti}))
    if use_cache:
        cache.put(key, package, seconds)
    return package, seconds, False


def _check_block(runner, contract: Manifest, calls: list, module) -> str:
    """Run the block's recorded calls through its region and through eager; '' when every output matches."""
    checked = 0
    with torch.no_grad():
        for args, kwargs in calls:
            try:
                leaves = bind_inputs(contract, list(args), dict(kwargs))
                check_inputs(contract, leaves)
            except InputMismatchError:
                continue  # a call outside the region's contract runs eagerly at run time too
            ok, worst = outputs_match(module(*args, **kwargs), runner.run_flat(leaves))
            if not ok:
                return f"its compiled region differs from eager on its recorded inputs (max abs diff {worst:.3g})"
            checked += 1
    return "" if checked else "none of its recorded calls fits the exported contract"


def _eager_part(model, path: str, share: float, kind: str, reason: str) -> EagerPart:
    return EagerPart(path, type(model.get_submodule(path)).__qualname__, share, kind, reason)


def _explain(eager: list[EagerPart], plan: RegionPlan, target: Target, model) -> list[EagerPart]:
    """Attach `diagnose`'s blockers to the modules that did not export (one diagnosis per group, the largest first)."""
    blockers: dict[str, tuple[Blocker, ...]] = {}
    by_path = {r.path: r for r in plan.rejected if r.kind == "export"}
    for rejected in sorted(by_path.values(), key=lambda r: -r.share):
        if rejected.representative in blockers or len(blockers) >= MAX_DIAGNOSED:
            continue
        record = plan.trace.records[rejected.representative]
        args, kwargs = record.calls[0]
        name = f"{target.spec}.{rejected.representative}" if rejected.representative else target.spec
        sub = Target(name, model.get_submodule(rejected.representative), args, kwargs, target.source)
        try:
            with progress.stage(f"diagnose {rejected.representative or '(model)'}"):
                blockers[rejected.representative] = diagnose_model(sub, None, check_compile=False).blockers
        except Exception:  # the one-line reason from export stays; a diagnosis is a bonus
            blockers[rejected.representative] = ()
    out = []
    for part in eager:
        rep = by_path[part.path].representative if part.path in by_path else None
        if rep is None:
            out.append(part)
        elif rep == part.path:  # the blockers say it better than export's first line
            found = blockers.get(rep, ())
            reason = f"does not export ({len(found)} blocker{'s' * (len(found) != 1)}, `pt2kit diagnose` format)" if found else part.reason
            out.append(EagerPart(part.path, part.module_class, part.share, part.kind, reason, found))
        else:  # a block of a group already explained: say so rather than repeat the blockers
            out.append(EagerPart(part.path, part.module_class, part.share, part.kind, f"as `{rep or '(model)'}`: {part.reason}"))
    return out


def _outside_regions(part: EagerPart, regions: list[RegionEntry]) -> EagerPart:
    """The share of the eager time spent in `part` itself, its compiled descendants excluded."""
    prefix = f"{part.path}." if part.path else ""
    inside = sum(r.share for r in regions if r.path.startswith(prefix))
    return EagerPart(part.path, part.module_class, max(0.0, part.share - inside), part.kind, part.reason, part.blockers)


def _to_device(call: tuple[tuple, dict], device: str) -> Any:
    if device == "cpu":
        return call
    return torch.utils._pytree.tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, call)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
