"""Progress of long steps on stderr: the stage name, a spinner while it runs, and its time.

stdout stays clean for results and `--json`. `set_quiet(True)` silences progress (tests, `-q`); `silenced()`
does so for one block; `is_quiet()` says which holds. `set_verbose(True)` (`-v`) lets torch's and Inductor's own
warnings and autotune tables through to stderr; by default pt2kit keeps them off (`is_verbose()`).
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

from rich.console import Console

_console = Console(stderr=True, highlight=False)
_quiet = False
_verbose = False


def set_verbose(verbose: bool) -> None:
    global _verbose
    _verbose = verbose


def is_verbose() -> bool:
    """Whether torch's and Inductor's own warnings, logs and autotune tables reach stderr (`-v`)."""
    return _verbose


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    """Whether progress is silenced (`set_quiet`, `-q`)."""
    return _quiet


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Silence progress inside the block, then restore it as it was: for a caller that reports one line per
    step itself (`survey` prints one line per model, not every inner stage)."""
    before = _quiet
    set_quiet(True)
    try:
        yield
    finally:
        set_quiet(before)


def info(message: str) -> None:
    """One line on stderr (a note, not a result)."""
    if not _quiet:
        _console.print(message, markup=False)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Show `name` with a spinner while the block runs, then `name  1.2s` (or `failed`)."""
    start = time.perf_counter()
    if _quiet:
        yield
        return
    ok = False
    try:
        if _console.is_terminal:
            with _console.status(f"{name} ..."):
                yield
        else:
            yield
        ok = True
    finally:
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        _console.print(f"{mark} {name}  [dim]{time.perf_counter() - start:.1f}s[/]")
        sys.stderr.flush()
