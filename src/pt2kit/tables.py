"""Plain-text tables for results' `__str__`: `rich.table` lays out the columns, without colour or box lines.

    >>> print(render_table(["mode", "p50 ms"], [["eager", "1.234"], ["aoti", "0.512"]], right={1}))
    mode   p50 ms
    eager   1.234
    aoti    0.512
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

_WIDTH = 100_000  # never wrap a cell: a row is one line, whatever its note says


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Iterable[int] = (),
                 show_header: bool = True, indent: int = 0) -> str:
    """The rows as aligned columns separated by two spaces, the header first (when `show_header`).

    Args:
        headers: one name per column (also used to count the columns when `show_header` is False).
        rows: the cells; each is shown with `str`, literally (brackets are not rich markup).
        right: indices of the columns to right-align (numbers); the rest are left-aligned.
        indent: spaces before every line.

    Returns:
        The table, lines joined by newlines, with no trailing spaces.
    """
    right = set(right)
    table = Table(box=None, show_header=show_header, show_edge=False, pad_edge=False, padding=(0, 1),
                  header_style="", highlight=False)
    for i, header in enumerate(headers):
        table.add_column(Text(str(header)), justify="right" if i in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    out = io.StringIO()
    Console(file=out, width=_WIDTH, color_system=None, force_terminal=False, highlight=False).print(table)
    return "\n".join(" " * indent + line.rstrip() for line in out.getvalue().splitlines())


__all__ = ["render_table"]
