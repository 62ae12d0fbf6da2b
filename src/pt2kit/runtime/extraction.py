"""Where AOTInductor unpacks a package's `.so`, and the clean-up after processes that died.

AOTInductor copies each package it opens into a fresh `$TMPDIR/aotinductor_XXXXXX` folder and deletes it
when the loader is destroyed. A process that is killed (the OOM killer, SIGKILL after a grace period, a
crash) never destroys it, and neither does one whose loaders are still referenced at exit. On a
container's tmpfs that is memory: one package's size per restart of a crashing server.

So pt2kit opens packages with `TMPDIR` pointing at a folder of its own process,
`$TMPDIR/pt2kit-aoti/<pid>-XXXX/`, which holds an exclusive `flock` on its `.lock` file for the life of the
process. The kernel drops that lock however the process ends, so at its first load a process removes
every sibling folder whose lock it can take: its owner is gone. (A lock, not a pid check, because pids are
reused and another container sharing `/tmp` has pids this one cannot see.) At a normal exit the
process removes its own folder after closing its packages.

This needs a torch whose loader honours `TMPDIR`: 2.13 does; 2.10 and 2.11 unpack into `/tmp/XXXXXX`
whatever it says, so there a killed process's copy stays (a normal exit still removes it).

`TMPDIR` is changed only while a loader is being constructed, under a lock; a thread of another library
reading `TMPDIR` at that moment gets pt2kit's folder, which exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT_NAME = "pt2kit-aoti"
_LOCK_NAME = ".lock"
_lock = threading.Lock()
_own: tuple[Path, int, int] | None = None  # this process's folder, the fd holding its flock, and its pid


def extraction_root() -> Path:
    """`$TMPDIR/pt2kit-aoti` (read from the environment each time, as AOTInductor does)."""
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / ROOT_NAME


@contextlib.contextmanager
def own_extraction_folder() -> Iterator[Path]:
    """Run the body with `TMPDIR` set to this process's folder; sweep folders of dead processes first."""
    with _lock:
        folder = _own_folder()
        saved = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = str(folder)
        try:
            yield folder
        finally:
            if saved is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved


def sweep_dead_folders(root: Path | None = None) -> list[Path]:
    """Remove the folders under `root` whose owner no longer holds its lock; returns what was removed."""
    root = root or extraction_root()
    removed = []
    try:
        children = list(root.iterdir())
    except OSError:
        return removed
    for child in children:
        if _own is not None and child == _own[0]:
            continue
        if child.name.startswith("."):
            continue
        try:
            fd = os.open(child / _LOCK_NAME, os.O_RDWR)
        except OSError:  # no lock yet (a folder being created right now gets it within microseconds), or unreadable: leave it
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its process is alive
            os.close(fd)
            continue
        shutil.rmtree(child, ignore_errors=True)
        os.close(fd)
        removed.append(child)
    return removed


def remove_own_folder() -> None:
    """At exit, after the packages are closed: remove this process's folder and release its lock."""
    global _own
    if _own is None or _own[2] != os.getpid():  # a forked child never removes its parent's folder
        return
    folder, fd, _ = _own
    _own = None
    shutil.rmtree(folder, ignore_errors=True)
    os.close(fd)


def _own_folder() -> Path:
    global _own
    root = extraction_root()
    if _own is not None and _own[2] == os.getpid() and _own[0].parent == root and _own[0].is_dir():
        return _own[0]
    root.mkdir(parents=True, exist_ok=True)
    sweep_dead_folders(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    # lock under another name, then rename: a sweeper never finds `.lock` unlocked in a live folder
    fd = os.open(folder / ".lock-new", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(folder / ".lock-new", folder / _LOCK_NAME)
    if _own is not None and _own[2] == os.getpid():
        os.close(_own[1])  # the previous folder is gone or TMPDIR changed: its lock is no longer needed
    _own = (folder, fd, os.getpid())
    return folder
