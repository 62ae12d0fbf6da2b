"""Where a TorchScript graph cannot be converted, at the original file and line, in diagnose's `Blocker` format.

Every TorchScript node keeps a source range. `node.sourceRange()` prints the original file and line when the
archive was scripted from a file (its debug info keeps them), and always the serialized code inside the archive
(`code/__torch__.py`), so a model loaded without its source still points at readable code.
"""

from __future__ import annotations

import re

import torch

from pt2kit.diagnose.blockers import Blocker, BlockerKind
from pt2kit.capture.capture import SourceLocation

_FILE_LINE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def node_location(node: torch._C.Node) -> SourceLocation:
    """The original file, line and code of a TorchScript node; the archive's serialized code when the original is
    unknown; `<unknown>` for nodes without a range (constants the compiler made)."""
    return location_in(node.sourceRange()) or SourceLocation("<unknown>", 0, "", str(node).split("\n")[0].strip())


def location_in(text: str) -> SourceLocation | None:
    """The first `File "...", line N` of a TorchScript source range or traceback, with the line it highlights;
    the original source comes before the archive's serialized code when both are there."""
    if "original code" in text:  # an interpreter traceback: serialized code first, then the original
        text = text.split("original code", 1)[1]
    for section in re.split(r"\nSerialized ", text) if text else []:
        m = _FILE_LINE.search(section)
        if m:
            return SourceLocation(m["file"], int(m["line"]), "", _highlighted_line(section[m.start():]))
    return None


def _highlighted_line(section: str) -> str:
    """The first source line the range marks with `~~~` (the line that `line N` names)."""
    lines = section.splitlines()
    for i, line in enumerate(lines):
        if i > 0 and line.strip() and set(line.strip()) <= set("~^") | set(" <-HERE"):
            if "~" in line:
                return lines[i - 1].strip()
    return lines[1].strip() if len(lines) > 1 else ""


def root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def classify(node: torch._C.Node, exc: BaseException, mode: str = "ts2ep") -> Blocker:
    """A `Blocker` for one node `TS2EPConverter` could not convert: the reason and what to do."""
    reason = root_cause(exc)
    kind_name = node.kind()
    location = node_location(node)
    if kind_name == "prim::Loop" and "number of iterations" in reason:
        return Blocker(
            BlockerKind.UNSUPPORTED_PYTHON, location,
            "a loop whose trip count is computed from an input (its size or its values); torch.export has no loop "
            "whose count varies, so torch's converter stops here",
            "# pt2kit migrate retries with the count fixed at the example's sizes (strategy `specialize`, or\n"
            "# `non-strict`); the program then accepts only those sizes. To keep the size dynamic, write the loop\n"
            "# as one tensor op in the Python source, e.g.\n"
            "#     y = x + x.sum(0)          # instead of: for i in range(x.shape[0]): y = y + x[i]\n"
            "# and export the Python model: pt2kit export model.py:Model --dynamic x:0=batch",
            False, (mode,), reason)
    if kind_name == "prim::Loop" and "condition" in reason:
        return Blocker(
            BlockerKind.DATA_DEPENDENT_BRANCH, location,
            "a `while` loop whose condition is computed inside the loop; torch.export cannot capture a loop that "
            "decides at run time when to stop",
            "# give the loop a fixed bound that does not depend on tensor values, e.g.\n"
            "#     for _ in range(MAX_STEPS):\n"
            "#         x = torch.where(done, x, step(x))\n"
            "# or use torch._higher_order_ops.while_loop in the Python source, then `pt2kit export`",
            False, (mode,), reason)
    if "Unsupported" in reason or "no attribute" in reason or "schema" in reason or "op" in kind_name.split("::")[0]:
        fix = (f"# torch's converter has no rule for `{kind_name}`. Replace it in the Python source with aten ops,\n"
               f"# or register it: @torch.library.custom_op(\"mylib::op\", mutates_args=()) with a register_fake\n"
               f"# stub, then export the Python model with `pt2kit export`")
        return Blocker(BlockerKind.UNSUPPORTED_OPERATOR, location, f"`{kind_name}` cannot be converted to an aten op",
                       fix, False, (mode,), reason)
    return Blocker(BlockerKind.UNCLASSIFIED, location, f"torch's converter failed on `{kind_name}`",
                   "# report the node and the message above; meanwhile try `pt2kit migrate --strategy non-strict`,\n"
                   "# or export the Python model with `pt2kit export`", False, (mode,), reason)


def unsupported_nodes(converter, mode: str = "ts2ep") -> list[Blocker]:
    """Every top-level node of `converter.ts_graph` that `TS2EPConverter` cannot convert, each as a `Blocker`.

    Runs torch's own explain mode (which mocks the values a failed node would have made, so it continues past a
    failure) but keeps each node's exception, which torch's `explain()` drops.
    """
    from torch._export import converter as ts_converter

    lifted, fqns = ts_converter.get_block_to_lifted_attrs(converter.ts_graph)
    graph_converter = ts_converter.ExplainTS2FXGraphConverter(
        converter.ts_graph, converter.name_to_param, converter.name_to_buffer, lifted,
        converter.name_to_non_tensor_attributes, converter.name_to_constant, fqns,
    )
    blockers: list[Blocker] = []
    try:
        graph_converter.convert_graph_inputs()
    except Exception as exc:  # noqa: BLE001 - reported as a blocker on the graph's inputs
        return [Blocker(BlockerKind.UNCLASSIFIED, SourceLocation("<graph inputs>", 0), "the converter cannot read the inputs",
                        "# give --input values of the types forward declares", False, (mode,), root_cause(exc))]
    for node in converter.ts_graph.nodes():
        try:
            ts_converter.TS2FXGraphConverter.convert_node(graph_converter, node)
        except Exception as exc:  # noqa: BLE001 - collected: every node is reported, not the first
            blockers.append(classify(node, exc, mode))
    return blockers


__all__ = ["classify", "location_in", "node_location", "root_cause", "unsupported_nodes"]
