"""Source rewrites that make data-dependent Python control flow exportable.

Small rules (`rules.py`: each takes an `ast` node and a context, returns a replacement, a refusal or
None) and one driver (`driver.py`) that applies them to a method's text; `binding.py` runs the
result on a copy of the model; `diff.py` shows it as a patch; `equivalence.py` proves it;
`fix.py` is the `--fix` loop (rewrite, prove, capture again).

May import: `shapes`, `capture`, `artifact`, `target`, and the base (`errors`, `progress`); never
`diagnose` or `export`, which use it.
"""

from pt2kit.rewrite.binding import MethodSource, ModelPatch
from pt2kit.rewrite.diff import unified_diff
from pt2kit.rewrite.driver import RewriteStep, rewrite_function
from pt2kit.rewrite.refusal import Refusal, RefusalReason

__all__ = ["MethodSource", "ModelPatch", "Refusal", "RefusalReason", "RewriteStep", "rewrite_function", "unified_diff"]
