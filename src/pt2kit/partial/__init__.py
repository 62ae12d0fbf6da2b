"""Partial AOT: when the whole model does not export, compile the submodules that do and keep the rest in Python.

    trace.py    run the model with hooks: each submodule's inputs and share of the eager time
    regions.py  top-down: the largest submodules that export (with --fix), grouped by class, config and shapes
    blocks.py   one block's region: its group's package opened with the block's own weights
    build.py    `compile_regions`: one package per group, each block checked against eager, the archive written
    archive.py  the region archive: packages, weights, `pt2kit/regions.json`
    apply.py    `apply_regions`: swap the regions into the user's model; eager fallback outside the contract
    report.py   `PartialResult`: compiled, stayed eager and why (diagnose's blockers), share of eager time

May import: compile, artifact, shapes, diagnose, rewrite, export, target (never verify, benchmark or cli;
`verify` imports `apply` to check a region archive).
"""

_EXPORTS = {
    "PartialResult": "pt2kit.partial.report", "EagerPart": "pt2kit.partial.report", "GroupBuild": "pt2kit.partial.report",
    "compile_regions": "pt2kit.partial.build", "apply_regions": "pt2kit.partial.apply", "regions_of": "pt2kit.partial.apply",
    "CompiledRegion": "pt2kit.partial.apply", "RegionFallbackWarning": "pt2kit.partial.apply",
    "RegionWeightsWarning": "pt2kit.partial.apply", "RegionManifest": "pt2kit.partial.archive",
    "RegionEntry": "pt2kit.partial.archive", "read_manifest": "pt2kit.partial.archive",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pt2kit.partial' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
