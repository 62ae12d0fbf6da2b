"""Which modules a `.pt2` may make pt2kit import: a file is data, and importing a module runs its code.

A manifest names modules for its pytree types (`pytree_types`, `pytree_imports`), and a program's spec names
classes for its constants. pt2kit imports such a module only if

- it is imported already (`sys.modules`: nothing runs), or
- it is trusted: its top package is in `ALLOWED_IMPORTS` (`transformers`), or the user named it (or a package
  above it) with `pt2kit.load(path, trust_imports=[...])` or `--trust-import MODULE` on the command line.

Anything else that could be imported is refused with `UntrustedImportError`, one line naming the module and the
option. A module that cannot be found at all is not refused (nothing would run): its types come back as
stand-ins, with a note.

    >>> with trusting(["my_models"]):
    ...     module = import_named("my_models.outputs", "`model.pt2`")
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.machinery
import importlib.util
import re
import sys
from types import ModuleType
from typing import Iterable, Iterator

from pt2kit.errors import ArtifactError, UntrustedImportError, UsageError

# libraries whose import registers their own pytree types and that pt2kit's docs name as trusted by default
ALLOWED_IMPORTS: tuple[str, ...] = ("transformers",)
MODULE_NAME = re.compile(r"^(?!__)[A-Za-z_][A-Za-z0-9_]{0,99}(\.(?!__)[A-Za-z_][A-Za-z0-9_]{0,99}){0,15}$")

_trusted_here: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("pt2kit_trusted_imports", default=frozenset())
_trusted_process: set[str] = set()


def trust_imports(modules: Iterable[str]) -> None:
    """Trust `modules` (and the modules under them) for the rest of the process (`--trust-import` does this)."""
    _trusted_process.update(_checked_names(modules))


@contextlib.contextmanager
def trusting(modules: Iterable[str] | None) -> Iterator[None]:
    """Trust `modules` inside the block only (`pt2kit.load(path, trust_imports=...)` does this)."""
    token = _trusted_here.set(_trusted_here.get() | frozenset(_checked_names(modules or ())))
    try:
        yield
    finally:
        _trusted_here.reset(token)


def is_trusted(module: str) -> bool:
    """Whether `module`, or a package above it, is allowed by default or by the user."""
    trusted = set(ALLOWED_IMPORTS) | _trusted_process | _trusted_here.get()
    parts = module.split(".")
    return any(".".join(parts[:i]) in trusted for i in range(1, len(parts) + 1))


def import_named(module: str, source: str) -> ModuleType | None:
    """`module` if it is imported already or trusted (imported now); None if it cannot be found.

    Args:
        module: a dotted module name read from a file.
        source: names the file in the refusal (`` `model.pt2` ``).

    Raises:
        UntrustedImportError: it could be imported, but it is neither imported yet nor trusted.
        ArtifactError: the name is not a module name.
    """
    if not isinstance(module, str) or not MODULE_NAME.match(module):
        raise ArtifactError(f"{source} names {str(module)[:80]!r} as a module to import, which is not a module name; "
                            "the file was modified or damaged, export the model again")
    if module in sys.modules:
        return sys.modules[module]
    if is_trusted(module):
        try:
            return importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a trusted module that fails to import only matters if its types are needed
            return None
    top = module.split(".")[0]
    if top not in sys.modules and _findable(top):
        raise refusal(top, module, source)
    if top in sys.modules and _findable_under(module):
        raise refusal(top, module, source)
    return None


def refusal(top: str, module: str, source: str) -> UntrustedImportError:
    """The one-line refusal for `module` (whose top package is `top`)."""
    return UntrustedImportError(
        f"{source} asks pt2kit to import module `{module}`, which is not imported and not trusted (importing runs its code); "
        f"if you trust it, pass `--trust-import {top}` (Python: `pt2kit.load(path, trust_imports=[\"{top}\"])`)", module=top)


def _findable(top: str) -> bool:
    """Whether a top-level module could be imported, found without running any of its code."""
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _findable_under(module: str) -> bool:
    """Whether a submodule of an imported package exists, looked up on the parent's path (no code runs)."""
    parent, _, name = module.rpartition(".")
    package = sys.modules.get(parent)
    path = getattr(package, "__path__", None)
    if package is None or path is None:
        return False
    try:
        return importlib.machinery.PathFinder.find_spec(module, list(path)) is not None
    except (ImportError, ValueError, TypeError):
        return False


def _checked_names(modules: Iterable[str]) -> list[str]:
    names = [modules] if isinstance(modules, str) else list(modules)
    for name in names:
        if not isinstance(name, str) or not MODULE_NAME.match(name):
            raise UsageError(f"`{name}` is not a module name to trust; pass a dotted name like `--trust-import my_models`")
    return names


__all__ = ["ALLOWED_IMPORTS", "MODULE_NAME", "import_named", "is_trusted", "refusal", "trust_imports", "trusting"]
