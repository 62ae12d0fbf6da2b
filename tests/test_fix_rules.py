"""The rewrite driver on source text alone (no capture): each rule's output, each refusal's reason, and
the names it gives branch functions."""

from __future__ import annotations

import ast
import textwrap

import pytest
import torch

from pt2kit.rewrite import Refusal, RefusalReason, rewrite_function
from pt2kit.rewrite.naming import branch_names

T = torch.zeros(1)  # stands for a tensor in a failed capture's frame


def rewrite(source: str, line_text: str, frame: dict | None = None, attrs: dict | None = None):
    text = textwrap.dedent(source).lstrip("\n")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == line_text)
    return rewrite_function(text, line, location=None, frame_locals=frame, module_attrs=attrs or {})


def test_assignment_with_two_outputs_passes_the_unassigned_one_through():
    new, replacement = rewrite("""
        def forward(self, x, y):
            if x.sum() > 0:
                x = x + y
            return x, y
        """, "if x.sum() > 0:", {"self": None, "x": T, "y": T})
    assert replacement.rule == "assign"
    assert "    x = torch.cond(x.sum() > 0, _if_x_sum_positive, _if_x_sum_nonpositive, (x, y))" in new
    assert "        return x.clone()" in new  # the side that does not assign returns a copy, not its input
    ast.parse(new)


def test_python_values_are_closed_over_not_passed():
    new, _ = rewrite("""
        def forward(self, x, scale):
            if x.mean() > 0:
                x = x * scale
            return x
        """, "if x.mean() > 0:", {"self": None, "x": T, "scale": 2.0})
    assert "(x,))" in new and "def _if_x_mean_positive(x):" in new


def test_without_a_frame_parameters_with_number_defaults_are_python_values():
    new, _ = rewrite("""
        def forward(self, x, scale=2.0):
            if x.mean() > 0:
                x = x * scale
            return x
        """, "if x.mean() > 0:")
    assert "(x,))" in new


def test_item_value_becomes_a_tensor_in_condition_and_operands():
    new, _ = rewrite("""
        def forward(self, x):
            s = x.std().item()
            if s > 1.0:
                x = x / s
            return x
        """, "if s > 1.0:", {"self": None, "x": T, "s": 1.5})
    assert "    s = x.std()\n" in new and "(x, s))" in new


@pytest.mark.parametrize("source, line, reason", [
    ("""
     def forward(self, x):
         if x.sum() > 0:
             if x.max() > 1:
                 return x
             x = x * 2
         return x
     """, "if x.sum() > 0:", RefusalReason.PARTIAL_RETURN),
    ("""
     def forward(self, x):
         if x.sum() > 0:
             extra = x * 2
         return x + extra
     """, "if x.sum() > 0:", RefusalReason.UNBOUND_OUTPUT),
    ("""
     def forward(self, x):
         n = 0
         if x.sum() > 0:
             n = 1
         return x * n
     """, "if x.sum() > 0:", RefusalReason.NON_TENSOR_OUTPUT),
    ("""
     def forward(self, x):
         if x.sum() > 0:
             unused = x * 2
         return x
     """, "if x.sum() > 0:", RefusalReason.NO_OUTPUT),
    ("""
     def forward(self, x):
         if x.sum() > 0:
             self.seen.append(x)
         return x
     """, "if x.sum() > 0:", RefusalReason.SIDE_EFFECT),
    ("""
     def forward(self, x):
         y = x[x > 0]
         return y
     """, "y = x[x > 0]", RefusalReason.NO_RULE),
])
def test_refusals_have_a_reason_and_options(source, line, reason):
    frame = {"self": None, "x": T, "n": 0}
    outcome = rewrite(source, line, frame)
    assert isinstance(outcome, Refusal) and outcome.reason is reason
    assert outcome.options and str(outcome)


@pytest.mark.parametrize("condition, names", [
    ("x.mean() > 0", ("_if_x_mean_positive", "_if_x_mean_nonpositive")),
    ("x.shape[0] > 5", ("_if_x_shape_0_gt_5", "_if_x_shape_0_le_5")),
    ("h.norm() > x.norm()", ("_if_h_norm_gt_x_norm", "_if_h_norm_le_x_norm")),
    ("s <= -1.5", ("_if_s_le_minus_1_5", "_if_s_gt_minus_1_5")),
    ("0 < m < 1", ("_if_m_in_range", "_if_m_out_of_range")),
    ("mask is not None and mask.any()", ("_if_mask_given_and_mask_any", "_if_not_mask_given_and_mask_any")),
    ("not self.is_ready(x)", ("_if_not_is_ready_x", "_if_is_ready_x")),
])
def test_branch_names_read_like_the_condition(condition, names):
    assert branch_names(ast.parse(condition).body[0].value) == names
