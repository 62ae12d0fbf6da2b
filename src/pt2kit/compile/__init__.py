"""AOTInductor: compile a program to a package, cache builds, load packages safely.

    presets.py  named Inductor settings (`--preset`)
    dtype.py    `--dtype`: cast weights, export again (casts inside keep the model's dtypes outside)
    quantize.py `--quantize`: PT2E / torchao quantization of linear layers, export again (torchao optional)
    cache.py    the build cache (`PT2KIT_CACHE_DIR`)
    build.py    `compile_package` -> `CompileResult`

Names resolve lazily, so loading a package (`pt2kit.load`) does not import the build side; the loader
itself lives in `runtime.loader`.

May import: `export` (to export a TARGET first), `capture`, `runtime`, `artifact`, `target`, the base (`errors`,
`progress`), `lazy` and `pt2kit.__version__` (part of the cache key).
"""

from pt2kit.lazy import lazy_exports

_EXPORTS = {"CompileResult": "pt2kit.compile.build", "compile_package": "pt2kit.compile.build",
            "PRESETS": "pt2kit.compile.presets", "Preset": "pt2kit.compile.presets"}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = ["CompileResult", "PRESETS", "Preset", "compile_package"]
