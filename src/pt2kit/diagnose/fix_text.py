"""How a printed fix says where its code goes, so it can be pasted mechanically (and is, in the tests).

A fix printed as code is one or more sections, each led by a header comment that names the place:

    # replaces lines A-B of FILE:         the lines below replace lines A..B, indented like line A
    # add before line N of FILE:          the lines below go before line N, indented like line N
    # add at module level of FILE:        the lines below go at the end of FILE, at module level

Text after the header's colon is a note. A line `# or ...` ends the fix that applies mechanically (what
follows is an alternative for a reader). Comment lines before the first header explain; they are not
pasted. A fix with no header is advice, printed as prose: pt2kit found no code that runs in its place.

Example:
    >>> edits = parse_fix(blocker.fix)          # [] for advice
    >>> fixed_source = apply_fix(Path(path).read_text(), blocker.fix)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_HEADER = re.compile(
    r"^# (?:(?P<replace>replaces lines (?P<first>\d+)-(?P<last>\d+))|(?P<before>add before line (?P<line>\d+))"
    r"|(?P<module>add at module level))(?: of [^:]+?)?:(?P<note>.*)$")


class EditKind(str, Enum):
    REPLACE = "replace"
    INSERT = "insert"
    MODULE = "module"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FixEdit:
    """One section of a printed fix: where it goes and its lines (relative indentation)."""

    kind: EditKind
    first: int  # REPLACE: first line replaced; INSERT: the line it goes before; MODULE: 0
    last: int  # REPLACE: last line replaced (inclusive); otherwise first - 1
    lines: tuple[str, ...]


def parse_fix(fix: str) -> list[FixEdit]:
    """The sections of a printed fix, in order ([] when the fix is advice)."""
    edits: list[FixEdit] = []
    current: tuple[EditKind, int, int] | None = None
    body: list[str] = []

    def close() -> None:
        if current is not None:
            while body and not body[-1].strip():
                body.pop()
            edits.append(FixEdit(current[0], current[1], current[2], tuple(body)))

    for line in fix.splitlines():
        if line.startswith("# or"):
            break
        m = _HEADER.match(line)
        if m:
            close()
            body = []
            if m.group("replace"):
                current = (EditKind.REPLACE, int(m.group("first")), int(m.group("last")))
            elif m.group("before"):
                current = (EditKind.INSERT, int(m.group("line")), int(m.group("line")) - 1)
            else:
                current = (EditKind.MODULE, 0, -1)
        elif current is not None:
            body.append(line)
    close()
    return edits


def is_code(fix: str) -> bool:
    """True when the fix says where its code goes (it is pasted, not read as advice)."""
    return bool(parse_fix(fix))


def apply_fix(source: str, *fixes: str) -> str:
    """`source` with every section of every fix pasted where its header says (line numbers of the original)."""
    lines = source.splitlines()
    tail: list[str] = []
    placed = [e for fix in fixes for e in parse_fix(fix)]
    for edit in sorted((e for e in placed if e.kind is not EditKind.MODULE), key=lambda e: (-e.first, e.kind is EditKind.INSERT)):
        anchor = lines[edit.first - 1] if edit.first - 1 < len(lines) else ""
        indent = re.match(r"\s*", anchor).group()
        lines[edit.first - 1:edit.last] = [indent + ln if ln.strip() else "" for ln in edit.lines]
    for edit in placed:
        if edit.kind is EditKind.MODULE:
            tail += ["", *edit.lines]
    return "\n".join(lines + tail) + "\n"


__all__ = ["EditKind", "FixEdit", "apply_fix", "is_code", "parse_fix"]
