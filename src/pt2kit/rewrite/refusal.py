"""Why a branch could not be rewritten into `torch.cond`, and what the user can do by hand."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pt2kit.capture.capture import SourceLocation


class RefusalReason(str, Enum):
    """What stops a branch from becoming a `torch.cond`."""

    BRANCH_MISMATCH = "branch-mismatch"        # the two sides return different shapes, dtypes or structures
    SIDE_EFFECT = "side-effect"                # a side assigns module state or mutates a value it did not create
    RETURN_IN_LOOP = "return-in-loop"          # a return inside a loop cannot leave a torch.cond branch
    LOOP_CONTROL = "loop-control"              # break/continue out of a branch
    PARTIAL_RETURN = "partial-return"          # a side returns on some paths only
    NON_TENSOR_OUTPUT = "non-tensor-output"    # a side produces a Python value used later
    UNBOUND_OUTPUT = "unbound-output"          # a variable assigned on one side has no value on the other
    NO_OUTPUT = "no-output"                    # the branch changes nothing used later
    RAISES = "raises"                          # a side raises: a run-time check, not a branch
    NO_RULE = "no-rule"                        # the failing line is not a branch pt2kit knows how to rewrite
    OUTSIDE_MODEL = "outside-model"            # the line is not in a method of a module class of the model
    NOT_EQUIVALENT = "not-equivalent"          # the rewritten model disagrees with the original

    def __str__(self) -> str:
        return self.value


_OPTIONS = {
    RefusalReason.BRANCH_MISMATCH: (
        "make both sides return tensors of one shape and dtype, e.g. `b = b.to(a.dtype)` or pad to a common size",
        "compute both sides and pick elementwise: `out = torch.where(pred, a, b)`",
    ),
    RefusalReason.SIDE_EFFECT: (
        "return the new value from the branch and assign it outside: `self.count = torch.cond(pred, inc, keep, (self.count,))` "
        "becomes a buffer update after the call",
        "move the state change out of `forward`, or make it unconditional with `torch.where`",
    ),
    RefusalReason.RETURN_IN_LOOP: (
        "collect per-step results and return once after the loop",
        "replace the early exit with a mask: `x = torch.where(done, x, step(x))`",
    ),
    RefusalReason.LOOP_CONTROL: (
        "replace break/continue with a mask: `x = torch.where(done, x, step(x))`",
        "use `torch._higher_order_ops.while_loop` for a data-dependent loop",
    ),
    RefusalReason.PARTIAL_RETURN: (
        "make each side end in one `return` (or none), then rerun with --fix",
    ),
    RefusalReason.NON_TENSOR_OUTPUT: (
        "keep the value a tensor (drop `.item()`/`int()`), or compute it outside the branch",
    ),
    RefusalReason.UNBOUND_OUTPUT: (
        "give the variable a value before the `if` (e.g. `out = x`), then rerun with --fix",
    ),
    RefusalReason.NO_OUTPUT: (
        "delete the branch if it has no effect, or return what it computes",
    ),
    RefusalReason.RAISES: (
        "check at run time without a branch: `torch._assert_async(~(cond), \"message\")` (exported, raises RuntimeError)",
        "or drop the check from the exported model",
    ),
    RefusalReason.NO_RULE: (
        "rewrite the condition with `torch.cond(pred, true_fn, false_fn, (x,))` or `torch.where(pred, a, b)`",
        "for a check, use `torch._check(cond)` instead of `if`/`assert`",
    ),
    RefusalReason.OUTSIDE_MODEL: (
        "move the branch into a method of an nn.Module class of the model, or rewrite it with `torch.cond` by hand",
    ),
    RefusalReason.NOT_EQUIVALENT: (
        "rewrite the branch by hand with `torch.cond`; please report the case to pt2kit with the model file",
    ),
}


@dataclass(frozen=True)
class Refusal:
    """A branch pt2kit left as it was.

    Attributes:
        reason: the kind of obstacle.
        location: the user's line with the branch.
        detail: one line naming the offending statement or value.
    """

    reason: RefusalReason
    location: SourceLocation | None
    detail: str

    @property
    def options(self) -> tuple[str, ...]:
        """What the user can do by hand."""
        return _OPTIONS[self.reason]

    def __str__(self) -> str:
        where = f"{self.location}: `{self.location.code}`: " if self.location else ""
        return f"{where}not rewritten ({self.reason}): {self.detail}"

    def report(self) -> str:
        """The one-line message and the manual options, one per line."""
        return "\n".join([str(self)] + [f"    option: {o}" for o in self.options])

    def to_json(self) -> dict:
        return {"reason": self.reason.value, "location": self.location.to_json() if self.location else None,
                "detail": self.detail, "options": list(self.options)}
