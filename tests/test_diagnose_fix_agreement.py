"""`pt2kit diagnose` and `pt2kit export --fix` agree on every branch of the auto-fix corpus
(tests/fix_cases): diagnose claims `--fix` can apply a branch's fix exactly where `--fix` rewrites it,
and for a branch `--fix` refuses it gives the refusal's reason and manual options instead of a rewrite."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import pt2kit
from pt2kit.diagnose import BlockerKind
from pt2kit.rewrite.fix import fix_model
from pt2kit.rewrite import rewrite_function
from pt2kit.shapes.spec import parse_dynamic, to_dynamic_shapes
from fix_cases import CASES_DIR, case_files

FIXED = case_files(prefix="c")
REFUSED = case_files(prefix="r")
_BRANCH_KINDS = (BlockerKind.DATA_DEPENDENT_BRANCH, BlockerKind.DYNAMIC_SHAPE_VIOLATION)


_DIAGNOSES: dict = {}


def _diagnose(path):
    """The case's target and its diagnosis, once per session."""
    if path not in _DIAGNOSES:
        target = pt2kit.load_target(f"{path}:model")
        _DIAGNOSES[path] = target, pt2kit.diagnose_model(target, mode=getattr(target.source, "mode", "auto"), check_compile=False)
    return _DIAGNOSES[path]


def test_side_effect_branch_is_not_claimed_auto_fixable():
    _, diagnosis = _diagnose(CASES_DIR / "r03_module_state.py")
    (blocker,) = [b for b in diagnosis.blockers if b.kind is BlockerKind.DATA_DEPENDENT_BRANCH]
    assert blocker.location.code == "if x.max() > self.last_peak:"
    assert not blocker.auto_fixable
    assert "(side-effect)" in blocker.explanation and "self.last_peak" in blocker.explanation
    assert "option:" in blocker.explanation
    code = [ln for ln in blocker.fix.splitlines() if not ln.lstrip().startswith("#")] if blocker.fix_is_code else []
    assert "# replaces lines" not in blocker.fix and not any("torch.cond(" in ln for ln in code)  # no refused rewrite
    assert "can apply this" not in str(diagnosis)


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: p.stem)
def test_branch_refused_by_fix_is_not_claimed_auto_fixable(path):
    target, diagnosis = _diagnose(path)
    spec = parse_dynamic(target.dynamic)
    fixed = fix_model(target.module, target.args, target.kwargs, param_names=target.parameter_names, spec=spec,
                      dynamic_shapes=to_dynamic_shapes(spec, target.parameter_names, target.args, target.kwargs),
                      mode=getattr(target.source, "mode", "auto"))
    refused = {(r.location.file, r.location.line) for r in fixed.left if r.location is not None}
    at_refused = [b for b in diagnosis.blockers if (b.location.file, b.location.line) in refused]
    assert at_refused, str(diagnosis)
    for blocker in at_refused:
        assert not blocker.auto_fixable, str(blocker)
        if blocker.location.code.startswith("while "):  # a loop: its while_loop form, never torch.cond's options
            assert "does not rewrite loops" in blocker.explanation and "torch.cond(" not in blocker.explanation
            assert "while_loop(cond_fn, body_fn" in blocker.fix and blocker.fix_is_code
        else:
            assert f"({target.source.refusal})" in blocker.explanation and "option:" in blocker.explanation


@pytest.mark.parametrize("path", FIXED, ids=lambda p: p.stem)
def test_branch_fix_rewrites_is_claimed_auto_fixable(path):
    _, diagnosis = _diagnose(path)
    for blocker in diagnosis.blockers:
        if blocker.kind is BlockerKind.DATA_DEPENDENT_BRANCH:
            assert blocker.auto_fixable and "torch.cond(" in blocker.fix, str(blocker)
            assert blocker.fix.startswith("# replaces lines ") or "\n# replaces lines " in blocker.fix


def test_most_fixed_cases_have_a_branch_blocker():
    with_branch = [p for p in FIXED if any(b.kind in _BRANCH_KINDS for b in _diagnose(p)[1].blockers)]
    assert len(with_branch) >= len(FIXED) - 3  # all but the cases whose branches are Python-static


def test_elif_rewrite_stays_in_the_else_of_the_if_above():
    # an `elif` after a Python-static `if`: --fix and diagnose rewrite the elif alone, which must stay its `else:`
    text = ("def forward(self, x):\n    out = x\n    if self.flag:\n        out = x * 3\n"
            "    elif x.sum() > 0:\n        out = x + 1\n    return out\n")
    new, _ = rewrite_function(text, 5, location=None, frame_locals=None, module_attrs={"flag": False})
    namespace = {"torch": torch}
    exec(new, namespace)
    x = torch.ones(3)
    for flag, expected in ((True, x * 3), (False, x + 1)):
        torch.testing.assert_close(namespace["forward"](SimpleNamespace(flag=flag), x), expected)
