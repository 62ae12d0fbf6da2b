"""The libstdc++ decision by version: a CUDA package loads without the child probe whenever the mapped libstdc++
defines every version its `.so` needs (or, for a `.so` with no version needs, is as new as the compiler's).

Pure comparisons on crafted version sets, then the real ELF files here: the system libstdc++ and the `.so` of the
session's CPU AOTInductor package (`small_aoti_package`, shared with test_compile.py and test_load_runtime.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pt2kit.runtime import libstdcxx, loader
from pt2kit.runtime.libstdcxx import (
    Verdict,
    check_package,
    check_shared_object,
    compare_versions,
    defined_versions,
    mapped_libstdcxx,
    needed_versions,
    version_key,
)
from tests.test_load_runtime import _skip_unless_versioned, fake_maps, package_so

SYSTEM = frozenset({"GLIBCXX_3.4", "GLIBCXX_3.4.29", "GLIBCXX_3.4.30", "GLIBCXX_3.4.32", "CXXABI_1.3", "CXXABI_1.3.13"})
OLDER = frozenset({"GLIBCXX_3.4", "GLIBCXX_3.4.29", "CXXABI_1.3", "CXXABI_1.3.13"})  # a conda-like runtime: up to 3.4.29


@pytest.mark.parametrize("needs, provided, compiler, missing, new_enough", [
    (("GLIBCXX_3.4", "CXXABI_1.3"), SYSTEM, SYSTEM, (), True),
    (("GLIBCXX_3.4.29",), OLDER, SYSTEM, (), True),  # older than the compiler's, yet every need is there: no probe, no clash
    (("GLIBCXX_3.4.30", "GLIBCXX_3.4"), OLDER, SYSTEM, ("GLIBCXX_3.4.30",), False),  # a need the mapped one lacks
    (("CXXABI_1.3.15",), SYSTEM, SYSTEM, ("CXXABI_1.3.15",), False),
    (("GLIBC_2.34", "GLIBCXX_3.4"), OLDER, SYSTEM, (), True),  # libc's versions are not libstdc++'s business
    ((), SYSTEM, SYSTEM, (), True),  # no version needs: as new as the compiler's runtime is enough
    ((), OLDER, SYSTEM, (), False),  # no version needs, and the mapped runtime is older than the compiler's
])
def test_version_needs_against_the_mapped_definitions(needs, provided, compiler, missing, new_enough):
    match = compare_versions(needs, provided, compiler)
    assert match.missing == missing and match.new_enough is new_enough
    assert all(version_key(v)[0] in ("GLIBCXX", "CXXABI") for v in match.needs)


def test_versions_order_numerically():
    assert version_key("GLIBCXX_3.4.9") < version_key("GLIBCXX_3.4.30")
    assert version_key("CXXABI_1.3.13") == ("CXXABI", (1, 3, 13))


def test_the_system_libstdcxx_defines_its_own_versions():
    (mapped,) = mapped_libstdcxx()  # torch is imported: one libstdc++ is mapped
    provided = defined_versions(mapped)
    assert "GLIBCXX_3.4" in provided and "CXXABI_1.3" in provided
    assert compare_versions(sorted(provided), provided, provided).new_enough  # a runtime is as new as itself


@pytest.mark.slow
def test_a_real_so_fits_a_runtime_older_than_the_compiler_when_it_defines_its_needs(small_aoti_package, tmp_path, monkeypatch):
    # the compiler's libstdc++ stands in for a newer one (a version no release has added to the real set): the .so's
    # needs decide, so the load goes ahead with no clash and no child
    _skip_unless_versioned(small_aoti_package, tmp_path)
    so = package_so(small_aoti_package, tmp_path)
    with open(so, "rb") as stream:
        needs = [v for v in needed_versions(stream)["libstdc++.so.6"] if v.startswith("GLIBCXX_")]
    (mapped,) = mapped_libstdcxx()
    real = defined_versions(mapped)
    system = tmp_path / "compiler-libstdc++.so.6"
    system.write_bytes(b"")  # only its path is used: defined_versions below answers for it
    newer = real | {"GLIBCXX_3.4.999"}
    monkeypatch.setattr(libstdcxx, "defined_versions", lambda p: newer if str(p) == str(system) else real)
    with open(so, "rb") as stream:
        check = check_shared_object(stream, "model.so", system=str(system))
    assert check.verdict is Verdict.FITS, check
    # the same runtime without a version the .so needs is a clash, decided without a child as well
    newest = max(needs, key=version_key)
    monkeypatch.setattr(libstdcxx, "defined_versions", lambda p: newer if str(p) == str(system) else real - {newest})
    with open(so, "rb") as stream:
        check = check_shared_object(stream, "model.so", maps=fake_maps(tmp_path, mapped), system=str(system))
    assert check.verdict is Verdict.CLASH and check.missing == (newest,)


def _no_child(*args, **kwargs):
    raise AssertionError(f"a child process was started: {args[:1]}")


@pytest.mark.slow
def test_the_fast_path_starts_no_child(small_aoti_package, tmp_path, monkeypatch):
    _skip_unless_versioned(small_aoti_package, tmp_path)
    monkeypatch.setenv("PT2KIT_CACHE_DIR", str(tmp_path / "cache"))  # no cached probe verdict to hide a child
    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, _no_child)
    check = loader.check_libstdcxx(small_aoti_package, -1)
    assert check.verdict is Verdict.FITS, check
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_without_pyelftools_the_probe_runs_and_says_why(small_aoti_package, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "elftools", None)  # `import elftools` now raises ImportError
    assert check_package(small_aoti_package).verdict is Verdict.UNDECIDED
    children = []

    def child(cmd, **kwargs):
        children.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", child)
    monkeypatch.setenv("PT2KIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.warns(loader.ChildProbeWarning, match="pip install pyelftools"):
        loader.check_libstdcxx(small_aoti_package, -1)
    assert len(children) == 1
    loader.check_libstdcxx(small_aoti_package, -1)  # the verdict is cached: no second child
    assert len(children) == 1
