"""The rewritten methods as a unified diff against the user's files.

The diff names each file relative to the current directory (`--- model.py` / `+++ model.py`), so it
applies with `patch -p0 < fix.patch` or `git apply -p0 fix.patch` from the directory it was written in.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from pt2kit.rewrite.binding import MethodSource


def rewritten_file(path: str, methods: list[MethodSource], add_torch_import: bool) -> tuple[list[str], list[str]]:
    """(original lines, rewritten lines) of one file, each method's text put back at its indentation."""
    original = Path(path).read_text().splitlines(keepends=True)
    new = list(original)
    for method in sorted(methods, key=lambda m: -m.first_line):
        body = [(method.indent + ln if ln.strip() else ln) for ln in method.current.splitlines(keepends=True)]
        new[method.first_line - 1:method.first_line - 1 + method.line_count] = body
    if add_torch_import:
        new.insert(_import_position(new), "import torch\n")
    return original, new


def _import_position(lines: list[str]) -> int:
    position = 0
    for i, line in enumerate(lines):
        if line.startswith(("import ", "from ")):
            position = i + 1
        elif line.strip() and not line.startswith(("#", '"""', "'''")) and position:
            break
    return position


def unified_diff(methods: list[MethodSource], needs_torch_import: set[str], cwd: str | None = None) -> str:
    """One unified diff for every changed method, grouped by file."""
    by_file: dict[str, list[MethodSource]] = {}
    for m in methods:
        if m.changed:
            by_file.setdefault(m.file, []).append(m)
    chunks = []
    for path, group in sorted(by_file.items()):
        before, after = rewritten_file(path, group, path in needs_torch_import)
        name = _display_path(path, cwd or os.getcwd())
        chunks.append("".join(difflib.unified_diff(before, after, fromfile=name, tofile=name)))
    return "".join(chunks)


def _display_path(path: str, cwd: str) -> str:
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path
