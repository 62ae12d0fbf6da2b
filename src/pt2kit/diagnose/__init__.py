"""Diagnosis: what stops or silently distorts an export, located in the user's source.

    >>> import pt2kit
    >>> d = pt2kit.diagnose(pt2kit.load_target("model.py:model"))
    >>> print(d)            # one block per blocker, in source order, each with its fix as code
    >>> d.to_json()         # {"blockers": [{"kind", "file", "line", "code", "explanation", "fix", ...}], ...}
"""

import sys
import types

from pt2kit.diagnose.blockers import Blocker, BlockerKind, CompileReport, Diagnosis, GraphBreak
from pt2kit.diagnose.diagnosis import diagnose
from pt2kit.export.specialization import Specialization, find_specializations


class _CallablePackage(types.ModuleType):
    """Importing any submodule binds `pt2kit.diagnose` to this package, hiding the function of the
    same name that `pt2kit.__init__` exports; calling the package calls the function, so
    `pt2kit.diagnose(target)` works whichever of the two the name is bound to."""

    def __call__(self, *args, **kwargs) -> Diagnosis:
        return diagnose(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = [
    "Blocker", "BlockerKind", "CompileReport", "Diagnosis", "GraphBreak", "Specialization", "diagnose",
    "find_specializations",
]
