"""`pt2kit tune`: build candidate configurations of a model, keep those within an accuracy budget, write the fastest.

    candidates.py  the recipes (Inductor settings), dtypes, layouts and load options tried
    layout.py      channels_last as a program transform
    checks.py      verify against float32 eager; time the survivors side by side
    search.py      `tune_model` -> `TuneReport`
    report.py      `CandidateResult`, `TuneReport`

Owns the search. May import: `benchmark`, `verify`, `compile`, `export`, `capture`, `runtime`, `artifact`, `target`,
and the base (`errors`, `progress`); nothing below imports tune.

    >>> report = pt2kit.tune_model("model.py:model", "model.tuned.pt2", device="cpu", time_budget=300)
    >>> print(report)
"""

from pt2kit.tune.candidates import RECIPES, Candidate, Recipe, plan_candidates
from pt2kit.tune.report import CandidateResult, TuneReport
from pt2kit.tune.search import tune_model

__all__ = ["RECIPES", "Candidate", "CandidateResult", "Recipe", "TuneReport", "plan_candidates", "tune_model"]
