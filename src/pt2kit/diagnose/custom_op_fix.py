"""The custom-operator fix for a line that leaves torch (`.numpy()`, `data_ptr()`, a C extension).

The line's expression moves into a `@torch.library.custom_op` defined at module level, with a fake
kernel, and the line calls it. A custom op takes and returns tensors, so the fix is written from what
the line read and produced in one eager run (`line_values.statement_values`): each input is declared
`torch.Tensor`, `int`, `float` or `bool` as it was, and the value is returned as a tensor of its own
dtype and shape (`torch.tensor(...)` for a number, `torch.as_tensor(...).clone()` for an array, on
the first tensor input's device); the fake kernel returns an empty tensor of that dtype and shape
(an input's own shape when the value had it, so a dynamic dim stays dynamic). Where that cannot be
known (the line never ran, it reads `self`, it produced something that is not a number or an array),
no code is written: the caller prints advice instead.
"""

from __future__ import annotations

import ast
import os
import re

from pt2kit.capture.capture import SourceLocation
from pt2kit.diagnose.line_values import StatementValues
from pt2kit.diagnose.source_code import local_names_before, statement_at
from pt2kit.rewrite.analysis import loaded_names

_PYTHON_TYPES = {"int": "int", "float": "float", "bool": "bool", "tensor": "torch.Tensor"}


def wrapped_statement(loc: SourceLocation) -> tuple[int, str | None, tuple[str, ...]] | None:
    """(last line, the name it assigns or None for a return, the local names it reads) of the statement at
    `loc`, when it is one a custom op can replace (`name = EXPR` or `return EXPR`); else None."""
    found = statement_at(loc.file, loc.line)
    stmt = found.statement if found else None
    if isinstance(stmt, ast.Return) and stmt.value is not None:
        name = None
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        name = stmt.targets[0].id
    else:
        return None
    local = set(local_names_before(found.function, stmt.lineno))
    reads = tuple(n for n in loaded_names([stmt.value]) if n in local)
    return stmt.end_lineno or stmt.lineno, name, reads


def custom_op_wrapper(loc: SourceLocation, values: StatementValues | None) -> str | None:
    """The custom-op fix for the line at `loc` (module-level op and fake kernel, and the line calling it), or
    None when it cannot be written so that it runs (see the module docstring)."""
    shape = wrapped_statement(loc)
    found = statement_at(loc.file, loc.line)
    if shape is None or found is None or values is None or values.result is None:
        return None
    last, assigned, params = shape
    stmt, result = found.statement, values.result
    if result.kind not in ("tensor", "ndarray", "int", "float", "bool") or "self" in loaded_names([stmt.value]):
        return None
    if any(values.inputs.get(p) is None or values.inputs[p].kind not in _PYTHON_TYPES for p in params):
        return None
    file = os.path.basename(loc.file)
    name = re.sub(r"\W", "_", file.removesuffix(".py"))
    name = f"{name if name[:1].isalpha() else 'op_' + name}_line_{stmt.lineno}"
    dtype = f"torch.{str(result.dtype).removeprefix('torch.')}"
    tensors = [p for p in params if values.inputs[p].kind == "tensor"]
    device = f", device={tensors[0]}.device" if tensors else ""
    expr = ast.unparse(stmt.value)
    if result.kind in ("tensor", "ndarray"):  # a copy: a custom op's output may not share memory with an input
        value = f"torch.as_tensor({expr}, dtype={dtype}{device}).clone()"
    else:
        value = f"torch.tensor({expr}, dtype={dtype}{device})"
    same = next((p for p in tensors if values.inputs[p].shape == result.shape), None) if result.shape else None
    fake = (f"{same}.new_empty({same}.shape, dtype={dtype})" if same else
            f"torch.empty({tuple(result.shape)!r}, dtype={dtype}{device})")
    typed = ", ".join(f"{p}: {_PYTHON_TYPES[values.inputs[p].kind]}" for p in params)
    call = f"{name}({', '.join(params)})"
    was = "" if result.kind == "tensor" else f" (`{assigned or 'the result'}` is now a tensor; it was a {_noun(result.kind)})"
    use = f"return {call}" if assigned is None else f"{assigned} = {call}"
    return "\n".join([
        f"# add at module level of {file}:",
        f'@torch.library.custom_op("user::{name}", mutates_args=())',
        f"def {name}({typed}) -> torch.Tensor:",
        f"    return {value}",
        "",
        "",
        f"@{name}.register_fake",
        f"def _({', '.join(params)}):",
        f"    return {fake}  # the output's shape and dtype, no data",
        "",
        f"# replaces lines {stmt.lineno}-{last} of {file}:{was}",
        use,
    ])


def _noun(kind: str) -> str:
    return {"ndarray": "NumPy value", "int": "Python int", "float": "Python float", "bool": "Python bool"}.get(kind, kind)


__all__ = ["custom_op_wrapper", "wrapped_statement"]
