"""The pt2kit exception tree.

Every error pt2kit raises on purpose is a ``Pt2kitError``; each also subclasses the
nearest builtin so callers that catch ``ValueError`` or ``RuntimeError`` keep working.
The CLI turns each into one line on stderr and the exit code below.

    Pt2kitError                      (exit_code 1)
    ├── UsageError(ValueError)       (exit_code 2)  bad input: fix the command line or the file
    │   ├── TargetError              `file.py:NAME` cannot be resolved to a module
    │   ├── InputSpecError           a malformed `--input` or `--dynamic` spec
    │   ├── TensorFileError          a tensor file that cannot be read
    │   ├── ArtifactError            a `.pt2` that is missing, corrupt or not pt2kit's
    │   │   └── UntrustedImportError a `.pt2` names a module to import that the user did not trust
    │   ├── OutputPathError          an output path that is a folder, or in a folder that cannot be written
    │   └── InputMismatchError       a tensor of the wrong rank, dtype or size at run time
    ├── ExportFailed(RuntimeError)   (exit_code 1)  the model could not be captured
    │   └── FixFailed                `--fix` left a branch it cannot rewrite, or its rewrite did not match
    └── BuildFailed(RuntimeError)    (exit_code 1)  a native build (CMake, the C++ compiler) failed

Messages follow one shape: what failed, the offending name in backticks, and the fix.
"""

from __future__ import annotations


class Pt2kitError(Exception):
    """Base of every error pt2kit raises on purpose."""

    exit_code = 1


class UsageError(Pt2kitError, ValueError):
    """The command line, a file or an input is wrong; the user can fix it."""

    exit_code = 2


class TargetError(UsageError):
    """`TARGET` does not name a module pt2kit can build."""


class InputSpecError(UsageError):
    """A `--input` or `--dynamic` spec does not parse or does not fit the model."""


class TensorFileError(UsageError):
    """A `.pt`, `.npy` or `.safetensors` file cannot be read as tensors."""


class ArtifactError(UsageError):
    """A `.pt2` file is missing, truncated, corrupt, or not loadable here."""


class UntrustedImportError(ArtifactError):
    """A `.pt2` names a module (for its pytree types) that is not imported yet and not trusted: importing it would
    run its code because a file said so. `.module` is the name to pass to `--trust-import` / `trust_imports=`."""

    def __init__(self, message: str, module: str = ""):
        super().__init__(message)
        self.module = module


class OutputPathError(UsageError):
    """An output path (`-o`, `--out`, `--keep`, `--write-patch`, ...) names a folder, sits in a missing or
    read-only folder, or the disk filled up while writing it."""


class InputMismatchError(UsageError):
    """A run-time input does not match the contract recorded in the manifest."""


class ExportFailed(Pt2kitError, RuntimeError):
    """`torch.export` could not capture the model; `.capture` holds every attempt."""

    def __init__(self, message: str, capture=None):
        super().__init__(message)
        self.capture = capture


class FixFailed(ExportFailed):
    """`--fix` could not make the model exportable (a branch torch.cond cannot express), or the rewritten
    model did not match the original; nothing was written. `.fix` holds the `FixResult`."""

    def __init__(self, message: str, capture=None, fix=None):
        super().__init__(message, capture)
        self.fix = fix


class BuildFailed(Pt2kitError, RuntimeError):
    """A native build pt2kit runs (CMake and the C++ compiler for `pt2kit cpp-runner`) failed; the message ends with
    the log's last lines and names the full log. Sits beside ExportFailed in the tree (exit_code 1)."""


def first_line(error: BaseException | str, limit: int | None = 300) -> str:
    """The first line of an error's message, for a one-line report: `ValueError: bad value`.

    Args:
        error: an exception (its type name comes first, alone when its message is empty) or a text.
        limit: the most characters kept of the line (the type name not counted); None keeps it whole.

    Example:
        >>> first_line(ValueError("bad value\\nmore detail"))
        'ValueError: bad value'
    """
    lines = str(error).strip().splitlines()
    line = (lines[0] if lines else "")[:limit]
    if isinstance(error, str):
        return line
    return f"{type(error).__name__}: {line}" if line else type(error).__name__
