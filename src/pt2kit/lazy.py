"""Public names imported on first use, for package `__init__` files.

`import pt2kit` (or `pt2kit.serve`, `pt2kit.compile`, `pt2kit.partial`) must stay fast and must not pull in
`torch.export`, Inductor, FastAPI or Ray until a name that needs them is used. Each of those `__init__`
files maps its public names to the modules that define them and sets `__getattr__ = lazy_exports(...)`.

Example:
    >>> __getattr__ = lazy_exports(__name__, {"compile_package": "pt2kit.compile.build"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: name -> imported from `exports[name]`, then cached in the package.

    Raises (from the returned function):
        AttributeError: the name is not one of `exports`.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
