"""Inputs that take each side of a scripted `if`, so verification runs both branches of every `torch.cond`.

A condition pt2kit can steer is a simple comparison of a whole-tensor reduction of one input with a constant
(`if x.sum() > 0`, `if x.mean() <= 0.5`, `if x.max() > 3`), or of an input's size with a constant
(`if x.size(0) > 4`, only when that dim is dynamic in the program). For a value condition the example input is
shifted so the reduction lands just above and just below the constant; for a size condition the input is drawn at
the constant's size and one past it. Every other `if` is listed as covered only by the random inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pt2kit.capture.capture import SourceLocation
from pt2kit.migrate.blockers import node_location

_COMPARE = {"aten::gt": lambda a, b: a > b, "aten::ge": lambda a, b: a >= b, "aten::lt": lambda a, b: a < b,
            "aten::le": lambda a, b: a <= b, "aten::eq": lambda a, b: a == b, "aten::ne": lambda a, b: a != b}
_SWAPPED = {"aten::gt": "aten::lt", "aten::lt": "aten::gt", "aten::ge": "aten::le", "aten::le": "aten::ge",
            "aten::eq": "aten::eq", "aten::ne": "aten::ne"}
_REDUCTIONS = {"aten::sum": 2, "aten::mean": 2, "aten::max": 1, "aten::min": 1, "aten::amax": None, "aten::amin": None}


@dataclass(frozen=True)
class BranchCondition:
    """One scripted `if`: where it is, and (when steerable) what it compares.

    Attributes:
        location: the `if` in the original source (or the archive's serialized code).
        input: the input the condition reads (None: not a simple comparison of an input).
        reduction: `sum`, `mean`, `max`, `min`, or `size` for a size comparison.
        op: the comparison, as the input's side sees it (`gt`: `reduction(input) > threshold`).
        threshold: the constant compared with.
        dim: the dim a size condition reads.
    """

    location: SourceLocation
    input: str | None = None
    reduction: str | None = None
    op: str | None = None
    threshold: float | None = None
    dim: int | None = None

    @property
    def steerable(self) -> bool:
        return self.input is not None

    def describe(self) -> str:
        where = f"{self.location.file}:{self.location.line}"
        if not self.steerable:
            return f"`if` at {where} (`{self.location.code}`): condition is not a simple comparison of an input"
        lhs = f"{self.input}.size({self.dim})" if self.reduction == "size" else f"{self.input}.{self.reduction}()"
        sign = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}[self.op]
        return f"`if` at {where}: {lhs} {sign} {self.threshold:g}"

    def holds(self, value: float) -> bool:
        return bool(_COMPARE["aten::" + self.op](value, self.threshold))

    def to_json(self) -> dict:
        return {"location": self.location.to_json(), "input": self.input, "reduction": self.reduction, "op": self.op,
                "threshold": self.threshold, "dim": self.dim, "steerable": self.steerable}


def find_conditions(module: torch.jit.ScriptModule, parameters: tuple[str, ...]) -> list[BranchCondition]:
    """Every `prim::If` in `forward` (submodules inlined) whose condition reads tensors or sizes.

    Ifs the compiler made from constants or `Optional` checks (`if bias is None`) are not listed.
    """
    graph = module.inlined_graph
    inputs = {v.debugName(): name for v, name in zip(list(graph.inputs())[1:], parameters)}
    found = []
    for node in _ifs(graph):
        cond = node.inputsAt(0).node()
        if cond.kind() in ("aten::__isnot__", "aten::__is__", "prim::Constant", "aten::__not__", "prim::isinstance"):
            continue
        found.append(_describe(node, cond, inputs))
    return found


def _describe(if_node, cond, inputs: dict[str, str]) -> BranchCondition:
    loc = node_location(if_node)
    if cond.kind() == "aten::Bool":  # bool(tensor comparison)
        cond = cond.inputsAt(0).node()
    if cond.kind() not in _COMPARE or cond.inputsSize() < 2:
        return BranchCondition(loc)
    op, lhs, rhs = cond.kind(), cond.inputsAt(0), cond.inputsAt(1)
    if lhs.node().kind() == "prim::Constant" and rhs.node().kind() != "prim::Constant":
        op, lhs, rhs = _SWAPPED[op], rhs, lhs
    if rhs.node().kind() != "prim::Constant" or not isinstance(rhs.toIValue(), (int, float)):
        return BranchCondition(loc)
    threshold = float(rhs.toIValue())
    producer = lhs.node()
    if producer.kind() in _REDUCTIONS:  # a whole-tensor reduction of an input
        arity = _REDUCTIONS[producer.kind()]
        source = producer.inputsAt(0)
        if (arity is None or producer.inputsSize() == arity) and source.debugName() in inputs:
            return BranchCondition(loc, inputs[source.debugName()], producer.kind().split("::")[1], op.split("::")[1], threshold)
    if producer.kind() == "aten::size" and producer.inputsSize() == 2:  # x.size(d) compared with a constant
        source, dim = producer.inputsAt(0), producer.inputsAt(1)
        if source.debugName() in inputs and dim.node().kind() == "prim::Constant":
            return BranchCondition(loc, inputs[source.debugName()], "size", op.split("::")[1], threshold, int(dim.toIValue()))
    return BranchCondition(loc)


def _ifs(block):
    for node in block.nodes():
        if node.kind() == "prim::If":
            yield node
        for inner in node.blocks():
            yield from _ifs(inner)


def _reduce(value: torch.Tensor, reduction: str) -> float:
    fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.max, "min": torch.min, "amax": torch.amax, "amin": torch.amin}
    return float(fn[reduction](value.double()))


def steer(condition: BranchCondition, args: tuple, parameters: tuple[str, ...], side: bool,
          dynamic_dims: dict[tuple[str, int], tuple[int, int | None]]) -> tuple | None:
    """Example inputs changed so `condition` evaluates to `side`, or None when pt2kit cannot make it so.

    Args:
        dynamic_dims: (input, dim) -> (min, max) of the program's dynamic dims that belong to that input alone;
            a size condition is steered only within them.
    """
    index = parameters.index(condition.input)
    value = args[index]
    if not isinstance(value, torch.Tensor):
        return None
    if condition.reduction == "size":
        bounds = dynamic_dims.get((condition.input, condition.dim))
        if bounds is None:
            return None
        low, high = bounds
        candidates = [int(condition.threshold) + d for d in (-1, 0, 1)]
        sizes = [s for s in candidates if s >= max(low, 0) and (high is None or s <= high) and condition.holds(s) == side]
        if not sizes:
            return None
        shape = list(value.shape)
        shape[condition.dim] = sizes[0]
        generator = torch.Generator().manual_seed(sizes[0])
        if value.is_floating_point():
            changed = torch.randn(shape, generator=generator, dtype=torch.float64).to(value.dtype)
        else:
            lo, hi = (int(value.min()), int(value.max()) + 1) if value.numel() else (0, 2)
            changed = torch.randint(lo, hi, shape, generator=generator).to(value.dtype)
    else:
        if not value.is_floating_point() or value.numel() == 0:
            return None
        margin = max(1.0, abs(condition.threshold) * 0.5)
        target = condition.threshold + (margin if condition.holds(condition.threshold + margin) == side else -margin)
        if condition.holds(target) != side:
            return None  # eq / ne with no value on the wanted side nearby
        current = _reduce(value, condition.reduction)
        if condition.reduction == "sum":
            shift = (target - current) / value.numel()
        else:
            shift = target - current
        changed = (value.double() + shift).to(value.dtype)
        if condition.holds(_reduce(changed, condition.reduction)) != side:
            return None  # rounding in a low-precision dtype kept it on the other side
    return args[:index] + (changed,) + args[index + 1:]


__all__ = ["BranchCondition", "find_conditions", "steer"]
