"""AOTInductor: compile a program to a package, cache builds, load packages safely.

    presets.py  named Inductor settings (`--preset`)
    dtype.py    `--dtype`: cast weights and inputs, export again
    cache.py    the build cache (`PT2KIT_CACHE_DIR`)
    build.py    `compile_package` -> `CompileResult`

Names resolve lazily, so loading a package (`pt2kit.load`) does not import the build side; the loader
itself lives in `artifact.loader`.

May import: `export` (to export a TARGET first), `artifact`, `target`, and what those build on, and the base
(`errors`, `progress`).
"""

_EXPORTS = {"CompileResult": "pt2kit.compile.build", "compile_package": "pt2kit.compile.build",
            "PRESETS": "pt2kit.compile.presets", "Preset": "pt2kit.compile.presets"}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pt2kit.compile' has no attribute {name!r}")


__all__ = ["CompileResult", "PRESETS", "Preset", "compile_package"]
