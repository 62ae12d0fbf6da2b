"""Which input sizes the user's code decides on, and whether by a Python branch.

Repair (pt2kit.shape_repair) must tell a constraint forced by the model's structure (a weight's
size, an operator combining two inputs) from one forced by `if x.shape[0] > 5:` in the user's
code: the first may be applied, the second would bake one side of the branch into the program.
"""

from __future__ import annotations

import ast
import re

from pt2kit.capture import SourceLocation
from pt2kit.diagnose.specialization import find_specializations


def is_branch(code: str) -> bool:
    """True when a source line decides control flow: `if`/`elif`/`while`/`assert` or `a if c else b`."""
    text = code.strip()
    if re.match(r"(if|elif|while|assert)\b", text):
        return True
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.IfExp, ast.If, ast.While, ast.Assert)) for n in ast.walk(tree))


def size_guards(module, args, kwargs, param_names) -> dict[tuple[str, int], tuple[SourceLocation, bool]]:
    """(input, dim) -> the user's line that decided on that input size, and whether the line is a branch.

    Re-traces with every dim dynamic (`find_specializations`); a dim no user line decided on is absent.
    """
    found: dict[tuple[str, int], tuple[SourceLocation, bool]] = {}
    for s in find_specializations(module, args, kwargs, param_names):
        branch = is_branch(s.location.code)
        for key in s.sizes:
            m = re.fullmatch(r"(\w+)\.shape\[(\d+)\]", key)
            if m and (not found.get((m[1], int(m[2])), (None, False))[1]):
                found[(m[1], int(m[2]))] = (s.location, branch)
    return found


__all__ = ["is_branch", "size_guards"]
