"""SIGKILL `pt2kit export` and `pt2kit compile` at several points: the output is absent or complete, never half
written, and the next run in that folder sweeps the temporaries the killed one left.

The kill points follow the progress lines on stderr (a stage finished), so they land inside the same stage on a
fast or a slow machine: right after capture, right after the specialization check (while saving), as the
AOTInductor build starts, in the middle of it, and as the manifest is written. The whole process group is killed, as an OOM killer
or a job scheduler would, so no compiler child keeps running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import pt2kit
from pt2kit.artifact.package import TEMP_MARK

from conftest import case

pytestmark = pytest.mark.slow


def _run(argv: list[str], env: dict, trigger: str | None = None, delay: float = 0.0) -> int | None:
    """Run `pt2kit ARGV`; SIGKILL it `delay` s after a stderr line containing `trigger` (or after start when None).
    Returns the exit code, or None when it was killed."""
    proc = subprocess.Popen([sys.executable, "-m", "pt2kit", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    if trigger is None and delay == 0.0:
        proc.stderr.read()
        return proc.wait(timeout=600)
    if trigger is not None:
        for line in proc.stderr:
            if trigger in line:
                break
        else:
            return proc.wait(timeout=600)  # finished before the trigger: nothing to kill
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    return None if proc.returncode == -signal.SIGKILL else proc.returncode


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARK in p.name)


def _check_absent_or_complete(path: Path, x: torch.Tensor) -> bool:
    """The output is either not there or a whole artifact that loads and runs. Returns whether it is there."""
    if not path.exists():
        return False
    assert pt2kit.load(path)(x).shape == (x.shape[0], 4)
    return True


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, PT2KIT_CACHE_DIR=str(tmp_path / "cache"))


def test_killed_export_and_compile_leave_no_half_file_and_the_next_run_sweeps(tmp_path, env):
    x = torch.randn(2, 16)
    target = f"{case('linear_relu')}:model"
    exports, packages = tmp_path / "exports", tmp_path / "packages"
    exports.mkdir()
    packages.mkdir()
    program = exports / "m.pt2"
    export = ["export", target, "-o", str(program), "--dynamic", "input:0=batch[1,64]"]
    left: list[str] = []
    for trigger, delay in [("export (", 0.0), ("check shape specialization", 0.0)]:
        code = _run(export, env, trigger, delay)
        assert code in (None, 0)
        _check_absent_or_complete(program, x)
        left += _temporaries(exports)
    assert _run(export, env) == 0
    assert _check_absent_or_complete(program, x) and _temporaries(exports) == []

    package = packages / "m.aoti.pt2"
    compile_ = ["compile", str(program), "-o", str(package), "--no-cache"]
    for trigger, delay in [("hash program", 0.0), ("hash program", 3.0)]:
        code = _run(compile_, env, trigger, delay)
        assert code in (None, 0)
        _check_absent_or_complete(package, x)
        left += _temporaries(packages)
    assert left, "no kill landed while a temporary existed, so the sweep was not exercised"
    assert _run(compile_, env) == 0
    assert _check_absent_or_complete(package, x) and _temporaries(packages) == []

    # a rebuild killed as it writes the manifest leaves the earlier package or the complete new one, never a mix
    assert _run(compile_, env, "compile with AOTInductor", 0.0) in (None, 0)
    assert _check_absent_or_complete(package, x)
