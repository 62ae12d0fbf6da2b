"""AOTInductor: compile a program to a package, cache builds, load packages safely.

    presets.py  named Inductor settings (`--preset`)
    dtype.py    `--dtype`: cast weights and inputs, export again
    cache.py    the build cache (`PT2KIT_CACHE_DIR`)
    build.py    `compile_package` -> `CompileResult`
    loader.py   compatibility checks and the fast loader `pt2kit.load` uses
"""

from pt2kit.compile.build import CompileResult, compile_package
from pt2kit.compile.presets import PRESETS, Preset

__all__ = ["CompileResult", "PRESETS", "Preset", "compile_package"]
