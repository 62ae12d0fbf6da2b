"""Names for generated branch functions, read off the condition: `x.mean() > 0` gives
`_if_x_mean_positive` and `_if_x_mean_nonpositive`; `x.shape[0] > 5` gives `_if_x_shape_0_gt_5`
and `_if_x_shape_0_le_5`."""

from __future__ import annotations

import ast
import re

_OP_WORD = {ast.Gt: "gt", ast.GtE: "ge", ast.Lt: "lt", ast.LtE: "le", ast.Eq: "eq", ast.NotEq: "ne"}
_NEGATED = {"gt": "le", "ge": "lt", "lt": "ge", "le": "gt", "eq": "ne", "ne": "eq"}
_AGAINST_ZERO = {"gt": "positive", "ge": "nonnegative", "lt": "negative", "le": "nonpositive", "eq": "zero", "ne": "nonzero"}
_MAX_LEN = 24


def expression_words(expr: ast.AST) -> str:
    """A snake_case phrase for an expression: `self.fc(x).norm()` -> `fc_x_norm`."""
    text = ast.unparse(expr)
    text = re.sub(r"\bself\.", "", text)
    text = re.sub(r"\btorch\.", "", text)
    text = text.replace(".", "_").replace("-", "_neg_")
    words = re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_").lower()
    words = re.sub(r"_+", "_", words)
    return words or "cond"


def _number_words(expr: ast.AST) -> str:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, (int, float)) and not isinstance(expr.value, bool):
        value = expr.value
        text = str(int(value)) if float(value).is_integer() else str(value).replace(".", "_")
        return text.replace("-", "minus_")
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub):
        return "minus_" + _number_words(expr.operand)
    return expression_words(expr)


def _is_zero(expr: ast.AST) -> bool:
    return isinstance(expr, ast.Constant) and not isinstance(expr.value, bool) and expr.value == 0


def branch_names(test: ast.AST) -> tuple[str, str]:
    """(true-branch name, false-branch name) for a condition."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OP_WORD:
        op = _OP_WORD[type(test.ops[0])]
        left, right = test.left, test.comparators[0]
        if _is_zero(right):
            subject = _clip(expression_words(left))
            true, false = _AGAINST_ZERO[op], _AGAINST_ZERO[_NEGATED[op]]
            return f"_if_{subject}_{true}", f"_if_{subject}_{false}"
        subject, other = _clip(expression_words(left)), _clip(_number_words(right))
        return f"_if_{subject}_{op}_{other}", f"_if_{subject}_{_NEGATED[op]}_{other}"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, (ast.Not, ast.Invert)):
        true, false = branch_names(test.operand)
        return false, true
    if isinstance(test, ast.Compare) and len(test.ops) == 2:
        subject = _clip(expression_words(test.comparators[0]))
        return f"_if_{subject}_in_range", f"_if_{subject}_out_of_range"
    if isinstance(test, ast.BoolOp):
        joiner = "and" if isinstance(test.op, ast.And) else "or"
        parts = [_phrase(v) for v in test.values]
        phrase = f"_{joiner}_".join(p for p in parts if p)
        if len(parts) == len(test.values) and all(parts) and len(phrase) <= 2 * _MAX_LEN:
            return f"_if_{phrase}", f"_if_not_{phrase}".replace("_if_not_not_", "_if_")
        return ("_if_all_conditions", "_if_not_all_conditions") if joiner == "and" else ("_if_any_condition", "_if_no_condition")
    subject = _clip(expression_words(test))
    return f"_if_{subject}", f"_if_not_{subject}"


def _phrase(test: ast.AST) -> str:
    """A short phrase for one operand of and/or: `x.max() > 1` -> `x_max_gt_1`, `not x.max() > 1` -> `x_max_le_1`."""
    negate = False
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, (ast.Not, ast.Invert)):
        test, negate = test.operand, not negate
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OP_WORD:
        op = _OP_WORD[type(test.ops[0])]
        op = _NEGATED[op] if negate else op
        return f"{_clip(expression_words(test.left))}_{op}_{_clip(_number_words(test.comparators[0]))}"
    if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Is, ast.IsNot))
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None):
        given = isinstance(test.ops[0], ast.IsNot) != negate
        return f"{_clip(expression_words(test.left))}_{'given' if given else 'missing'}"
    if isinstance(test, (ast.Name, ast.Attribute, ast.Call)):
        return ("not_" if negate else "") + _clip(expression_words(test))
    return ""


def _clip(name: str) -> str:
    if len(name) <= _MAX_LEN:
        return name
    return name[:_MAX_LEN].rstrip("_")


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`... when it is taken; the result is added to `taken`."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate
