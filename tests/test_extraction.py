"""Where AOTInductor unpacks packages (pt2kit.runtime.extraction): a killed process's copy is removed by the
next process that loads one, a live process's copy is never touched, and a normal exit leaves nothing."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pt2kit.runtime.extraction import ROOT_NAME, sweep_dead_folders

# torch 2.10 and 2.11 unpack into /tmp/XXXXXX whatever TMPDIR says (checked on both); 2.13 under $TMPDIR
UNPACKS_UNDER_TMPDIR = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 13)

# load the package, say so, then wait for stdin to close (or to be killed)
CHILD = """
import sys, torch, pt2kit
model = pt2kit.load(sys.argv[1])
model(torch.ones(2, 16))
print("loaded", flush=True)
sys.stdin.read()
"""


def _start(package: Path, tmpdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(package)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "TMPDIR": str(tmpdir)})
    assert proc.stdout.readline().strip() == "loaded"
    return proc


def _unpacked(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.rglob("aotinductor_*"))


@pytest.mark.slow
@pytest.mark.skipif(not UNPACKS_UNDER_TMPDIR, reason="this torch's loader unpacks into /tmp/XXXXXX, ignoring TMPDIR")
def test_a_killed_process_copy_is_removed_by_the_next_load_and_a_live_one_is_kept(small_aoti_package, tmp_path):
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(_start(small_aoti_package, tmp_path))
        return started[-1]

    try:
        killed = start()
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        left = _unpacked(tmp_path)
        assert len(left) == 1 and left[0].parent.parent == tmp_path / ROOT_NAME  # what a killed process leaves

        alive = start()  # its first load sweeps the dead folder
        assert not left[0].exists()
        (alive_copy,) = _unpacked(tmp_path)

        finished = start()
        finished.stdin.close()
        assert finished.wait(timeout=60) == 0
        assert _unpacked(tmp_path) == [alive_copy], "a normal exit removes its own copy and never a live process's"

        alive.stdin.close()
        assert alive.wait(timeout=60) == 0
        assert list((tmp_path / ROOT_NAME).iterdir()) == []
    finally:
        for proc in started:  # none outlives the test, whatever failed
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_only_folders_whose_lock_is_free_are_swept(tmp_path):
    dead, alive, creating = (tmp_path / name for name in ("1-dead", "2-alive", "3-creating"))
    for folder in (dead, alive, creating):
        folder.mkdir()
        (folder / "aotinductor_x").mkdir()
    for folder in (dead, alive):
        (folder / ".lock").touch()
    held = os.open(alive / ".lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a live process holds it
    try:
        assert sweep_dead_folders(tmp_path) == [dead]
    finally:
        os.close(held)
    assert not dead.exists() and alive.exists() and creating.exists()
