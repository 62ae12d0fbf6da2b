"""Diagnosis: what stops or silently distorts an export, located in the user's source.

    >>> import pt2kit
    >>> d = pt2kit.diagnose_model(pt2kit.load_target("model.py:model"))
    >>> print(d)            # one block per blocker, in source order, each with its fix as code (or advice)
    >>> d.to_json()         # {"blockers": [{"kind", "file", "line", "code", "explanation", "fix", ...}], ...}

May import: `rewrite`, `shapes`, `capture`, `target`, and the base (`progress`); not `export`, its peer
(the export stage never needs a diagnosis, and a diagnosis captures through `capture`).
"""

from pt2kit.diagnose.blockers import Blocker, BlockerKind, CompileReport, Diagnosis, GraphBreak
from pt2kit.diagnose.diagnosis import diagnose_model
from pt2kit.capture.specialization import Specialization, find_specializations


__all__ = [
    "Blocker", "BlockerKind", "CompileReport", "Diagnosis", "GraphBreak", "Specialization", "diagnose_model",
    "find_specializations",
]
