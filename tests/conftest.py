"""Shared test helpers: run the CLI in-process, locate case files, build artifacts once."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pt2kit import progress
from pt2kit.cli import main

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "cases"
ACCEPTANCE = Path(__file__).resolve().parent / "acceptance"  # vendored from the shared folder: a fresh clone has them


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run `pt2kit ARGS...` in this process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        progress.set_quiet(False)
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(*args: str, env=None, cwd=None) -> CliResult:
    """Run `python -m pt2kit ARGS...` in a fresh process (for isolation checks)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pt2kit", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def case(name: str) -> str:
    """`tests/cases/NAME.py` as a path string."""
    return str(CASES / f"{name}.py")


def check_one_line_error(result: CliResult, *needles: str, code: int = 2) -> None:
    """The CLI failed with `code`, printed no traceback, and its error line mentions each needle."""
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="session")
def linear_program(tmp_path_factory) -> Path:
    """`tests/cases/linear_relu.py:model` exported once with a dynamic batch."""
    out = tmp_path_factory.mktemp("linear") / "linear.pt2"
    code = main(["export", f"{case('linear_relu')}:model", "-o", str(out), "--dynamic", "input:0=batch[1,64]", "-q"])
    progress.set_quiet(False)
    assert code == 0
    return out


@pytest.fixture(scope="session")
def build_cache_dir(tmp_path_factory) -> Path:
    """A private pt2kit build cache for the session (PT2KIT_CACHE_DIR), so tests never touch ~/.cache."""
    import os

    folder = tmp_path_factory.mktemp("pt2kit-cache")
    old = os.environ.get("PT2KIT_CACHE_DIR")
    os.environ["PT2KIT_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("PT2KIT_CACHE_DIR", None)
    else:
        os.environ["PT2KIT_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def small_aoti_package(linear_program, build_cache_dir, tmp_path_factory) -> Path:
    """`linear_program` compiled once for CPU (preset default, dynamic batch 1..64), stored in the session's build cache."""
    return _quiet_cpu_build(linear_program, tmp_path_factory.mktemp("aoti") / "linear.aoti.pt2", preset="default")


@pytest.fixture(scope="session")
def tensors_aoti_package(linear_program, build_cache_dir, tmp_path_factory) -> Path:
    """`linear_program` compiled once for CPU with `--external-weights tensors` (one file per weight in the archive)."""
    return _quiet_cpu_build(linear_program, tmp_path_factory.mktemp("aoti-tensors") / "linear.aoti.pt2", external_weights="tensors")


def _quiet_cpu_build(program: Path, out: Path, **options) -> Path:
    """`compile_package(program, out, device="cpu", **options)` without its progress lines."""
    from pt2kit.compile import compile_package

    progress.set_quiet(True)
    try:
        compile_package(program, out, device="cpu", **options)
    finally:
        progress.set_quiet(False)
    return out
