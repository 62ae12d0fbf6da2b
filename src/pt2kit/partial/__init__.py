"""Partial AOT: when the whole model does not export, compile the submodules that do and keep the rest in Python.

    trace.py    run the model with hooks: each submodule's inputs and share of the eager time
    regions.py  top-down: the largest submodules that export (with --fix), grouped by class, config and shapes
    build.py    `compile_regions`: one package per group, each block checked against eager, the archive written
    report.py   `PartialResult`: compiled, stayed eager and why (diagnose's blockers), share of eager time

The archive format is `pt2kit.artifact.regions`; the run-time half (opening a block's package with its weights,
`apply_regions`) is `pt2kit.runtime.regions`, so verify and load read archives without importing the build side.

May import: `compile`, `export`, `diagnose`, `shapes`, `runtime`, `artifact`, `target`, the base (`errors`,
`progress`), `lazy` and `pt2kit.__version__`; never `verify`, `benchmark` or `cli`.
"""

from pt2kit.lazy import lazy_exports

_EXPORTS = {
    "PartialResult": "pt2kit.partial.report", "EagerPart": "pt2kit.partial.report", "GroupBuild": "pt2kit.partial.report",
    "StaticBatch": "pt2kit.partial.report",
    "compile_regions": "pt2kit.partial.build", "apply_regions": "pt2kit.runtime.regions.apply", "regions_of": "pt2kit.runtime.regions.apply",
    "CompiledRegion": "pt2kit.runtime.regions.apply", "RegionFallbackWarning": "pt2kit.runtime.regions.apply",
    "RegionWeightsWarning": "pt2kit.runtime.regions.apply", "RegionManifest": "pt2kit.artifact.regions.archive",
    "RegionEntry": "pt2kit.artifact.regions.archive", "read_manifest": "pt2kit.artifact.regions.archive",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
