"""The load path: what it imports, the libstdc++ check for CUDA packages, and the inputs' device.

The libstdc++ tests use real ELF files (the CPU package's `.so`, the system libstdc++, torch's own
libraries) and the real dynamic linker; only the process map is replaced, by a file, where a test
needs a libstdc++ this machine does not have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import pt2kit
from pt2kit.artifact.size_expr import parse_size
from pt2kit.runtime.libstdcxx import (
    Verdict,
    check_package,
    check_shared_object,
    defined_versions,
    global_bindings,
    mapped_libstdcxx,
    needed_versions,
    package_shared_objects,
    runtime_symbols,
)

# tests that take `small_aoti_package` are slow: that fixture is an AOTInductor build (shared with test_compile.py)

LOAD_AND_CALL = """
import json, sys, time
import torch, pt2kit
before = set(sys.modules)
x = torch.randn(4, 16)
t = time.perf_counter()
model = pt2kit.load(sys.argv[1])
y = model(x)
seconds = time.perf_counter() - t
new = sorted(set(sys.modules) - before)
print(json.dumps({"seconds": seconds, "new": new, "shape": list(y.shape)}))
"""


def fresh_process(code: str, *args: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_load_and_call_import_only_what_they_use(small_aoti_package):
    doc = fresh_process(LOAD_AND_CALL, small_aoti_package)
    assert doc["shape"] == [4, 4]
    new = doc["new"]
    assert not [m for m in new if m == "sympy" or m.startswith("sympy.")], "sympy is imported to load and call a package"
    assert not [m for m in new if m.startswith("torch._inductor")], "Inductor is imported to load a package"
    assert not [m for m in new if m.startswith("elftools")], "ELF data is read for a CPU package"
    pt2kit_modules = {m for m in new if m.startswith("pt2kit")}
    assert pt2kit_modules <= {
        "pt2kit.artifact", "pt2kit.runtime.calling", "pt2kit.artifact.contract", "pt2kit.runtime.extraction",
        "pt2kit.artifact.manifest", "pt2kit.artifact.manifest_check", "pt2kit.artifact.package", "pt2kit.artifact.size_expr",
        "pt2kit.runtime", "pt2kit.runtime.loaded", "pt2kit.pytrees.trust", "pt2kit.compile", "pt2kit.runtime.loader", "pt2kit.errors", "pt2kit.pytrees",
            "pt2kit.runtime.weights",
        "pt2kit.pytrees.nodes", "pt2kit.pytrees.spec_codec", "pt2kit.pytrees.types", "pt2kit.target", "pt2kit.target.inputs",
    }, sorted(pt2kit_modules)
    others = {m.split(".")[0] for m in new} - {"pt2kit", "torch", "encodings"}
    assert not others, f"the load path imports {sorted(others)}"


def test_derived_dims_are_checked_without_sympy():
    code = """
import json, sys
from pt2kit.artifact.contract import check_inputs
from pt2kit.artifact.manifest import DimRange, LeafSpec, Manifest
from pt2kit.errors import InputMismatchError
import torch
m = Manifest(inputs=(LeafSpec("x", "tensor", "float32", ("s0", 4)), LeafSpec("y", "tensor", "float32", ("2*s0 + 1", 4))),
             outputs=(), dims=(DimRange("s0", "half", 1, 8),))
check_inputs(m, [torch.zeros(3, 4), torch.zeros(7, 4)])
try:
    check_inputs(m, [torch.zeros(3, 4), torch.zeros(6, 4)])
    message = ""
except InputMismatchError as exc:
    message = str(exc)
print(json.dumps({"sympy": "sympy" in sys.modules, "message": message}))
"""
    doc = fresh_process(code)
    assert doc["sympy"] is False
    assert "needs 2*half + 1 = 7" in doc["message"]


@pytest.mark.parametrize("expr, symbol, scale, offset, at3", [
    ("s0", "s0", 1, 0, 3), ("2*s0", "s0", 2, 0, 6), ("8*s0 - 4", "s0", 8, -4, 20), ("s0 + 1", "s0", 1, 1, 4), ("s0*2", "s0", 2, 0, 6),
    ("8 - s0", "s0", -1, 8, 5),
])
def test_affine_dims_parse_without_sympy(expr, symbol, scale, offset, at3):
    parsed = parse_size(expr)
    assert (parsed.symbols, parsed.affine({}), parsed.evaluate({symbol: 3})) == ((symbol,), ({symbol: scale}, offset), at3)


@pytest.mark.parametrize("expr, at3", [("s0*s0", 9), ("s0**2", 9), ("Max(1, s0)", 3), ("(s0//2)", 1), ("Mod(s0, 2)", 1)])
def test_other_dims_are_not_affine_but_evaluate(expr, at3):
    parsed = parse_size(expr)
    assert parsed.affine({}) is None and parsed.evaluate({"s0": 3}) == at3


# -- the libstdc++ check: real .so files, the real dynamic linker -------------------------------------------------


def package_so(package: Path, folder: Path) -> Path:
    with zipfile.ZipFile(package) as zf:
        entry = next(n for n in zf.namelist() if n.endswith(".so"))
        out = folder / entry.rsplit("/", 1)[-1]
        out.write_bytes(zf.read(entry))
    return out


def _skip_unless_versioned(package: Path, folder: Path) -> None:
    """Skip where the package's .so imports libstdc++ with no versions (torch 2.11's CUDA wheel on the GPU machine:
    benchmarks/gpu/gpu_compile.md); these tests are about version needs, which CI's torch 2.13 packages have."""
    with open(package_so(package, folder), "rb") as stream:
        if "libstdc++.so.6" not in needed_versions(stream):
            pytest.skip("this torch's packages import libstdc++ with no versions")


without_preload = pytest.mark.skipif(bool(os.environ.get("LD_PRELOAD")),
                                     reason="compares this process's bindings without a preload; LD_PRELOAD is set")


def fake_maps(folder: Path, *libraries: str) -> str:
    """A process map (the format of /proc/self/maps) listing these files."""
    lines = [f"7f0000000000-7f0000001000 r-xp 00000000 fe:00 1 {lib}" for lib in libraries]
    path = folder / "maps"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.slow
def test_reads_the_version_needs_and_definitions(small_aoti_package, tmp_path):
    _skip_unless_versioned(small_aoti_package, tmp_path)
    so = package_so(small_aoti_package, tmp_path)
    with open(so, "rb") as stream:
        needs = needed_versions(stream)
    assert "GLIBCXX_3.4" in needs["libstdc++.so.6"] and "CXXABI_1.3" in needs["libstdc++.so.6"]
    (mapped,) = mapped_libstdcxx()  # torch is imported: one libstdc++ is mapped
    provided = defined_versions(mapped)
    assert set(needs["libstdc++.so.6"]) <= provided
    with open(so, "rb") as stream:
        symbols = runtime_symbols(stream)
    assert "__cxa_begin_catch" in symbols.versioned  # imported from libstdc++ (CXXABI_1.3)
    assert "memset" in symbols.unversioned and symbols.defined


@pytest.mark.slow
def test_the_child_probe_runs_only_when_elf_data_cannot_decide(small_aoti_package, monkeypatch):
    # this package loads fine here, so the check must not call it a clash; with torch 2.13's CPU wheel its .so ties
    # its libstdc++ imports by version (fits); a .so linked against torch's own copies of libstdc++ code imports them
    # with no version (torch 2.11's wheel), and where those bind cannot be decided without loading it (undecided)
    from pt2kit.runtime import loader

    probes = []
    monkeypatch.setattr(loader, "probe_load", lambda *a, **k: probes.append(a))
    check = loader.check_libstdcxx(small_aoti_package, -1)
    assert check.verdict in (Verdict.FITS, Verdict.UNDECIDED), check
    assert len(probes) == (1 if check.verdict is Verdict.UNDECIDED else 0)
    assert check.mapped == mapped_libstdcxx() and not check.missing and not check.bound_elsewhere


@pytest.mark.slow
def test_a_libstdcxx_without_the_needed_versions_is_a_clash(small_aoti_package, tmp_path):
    _skip_unless_versioned(small_aoti_package, tmp_path)
    # a real ELF library that defines versions, but no GLIBCXX ones, in the place of libstdc++
    libgcc = next(p for p in ("/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
                              "/lib64/libgcc_s.so.1") if os.path.exists(p))
    old = tmp_path / "old" / "libstdc++.so.6"
    old.parent.mkdir()
    shutil.copyfile(libgcc, old)
    with open(package_so(small_aoti_package, tmp_path), "rb") as stream:
        check = check_shared_object(stream, "model.so", maps=fake_maps(tmp_path, str(old)))
    assert check.verdict is Verdict.CLASH
    assert "GLIBCXX_3.4" in check.missing and "does not define" in check.reason


@pytest.mark.slow
def test_two_libstdcxx_copies_are_a_clash_and_none_is_undecided(small_aoti_package, tmp_path):
    (mapped,) = mapped_libstdcxx()
    other = tmp_path / "libstdc++.so.6"
    shutil.copyfile(mapped, other)
    so = package_so(small_aoti_package, tmp_path)
    with open(so, "rb") as stream:
        assert check_shared_object(stream, "m.so", maps=fake_maps(tmp_path, mapped, str(other))).verdict is Verdict.CLASH
    with open(so, "rb") as stream:
        check = check_shared_object(stream, "m.so", maps=fake_maps(tmp_path, "/usr/lib/x86_64-linux-gnu/libc.so.6"))
    assert check.verdict is Verdict.UNDECIDED and "no libstdc++" in check.reason


@pytest.mark.slow
def test_an_unreadable_so_is_undecided(small_aoti_package, tmp_path):
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(package_so(small_aoti_package, tmp_path).read_bytes()[:200])
    with open(truncated, "rb") as stream:
        check = check_shared_object(stream, "truncated.so")
    assert check.verdict is Verdict.UNDECIDED and "cannot read the ELF data" in check.reason


@pytest.mark.slow
@without_preload
def test_symbols_bound_into_another_library_are_a_clash(small_aoti_package):
    # torch's libc10 carries its own copies of a few libstdc++ symbols; put it in the global scope (as
    # RTLD_GLOBAL preloads do) and the package's .so would bind to those copies instead of libstdc++'s
    code = """
import ctypes, glob, json, os, sys
from pathlib import Path
import torch
from pt2kit.runtime import loader
from pt2kit.errors import ArtifactError
lib = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))[0]
from pt2kit.runtime.libstdcxx import check_package
before = check_package(Path(sys.argv[1])).verdict.value
ctypes.CDLL(lib, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL | os.RTLD_LAZY)
try:
    loader.check_libstdcxx(Path(sys.argv[1]), -1)
    message = ""
except ArtifactError as exc:
    message = str(exc)
print(json.dumps({"before": before, "message": message}))
"""
    doc = fresh_process(code, small_aoti_package)
    assert doc["before"] in ("fits", "undecided")
    assert "bind into another library" in doc["message"] and "/torch/lib/lib" in doc["message"]  # libc10 or libtorch_cpu
    assert "LD_PRELOAD=" in doc["message"] and "\n" not in doc["message"]


@pytest.mark.slow
def test_global_bindings_ask_the_dynamic_linker(small_aoti_package):
    (mapped,) = mapped_libstdcxx()
    for _name, stream in package_shared_objects(small_aoti_package):
        found = global_bindings(runtime_symbols(stream), mapped)
        assert found is not None and found.elsewhere == ()  # nothing in this process's global scope shadows libstdc++
    assert check_package(small_aoti_package).verdict is not Verdict.CLASH


REGEX_SO = """
#include <regex>
extern "C" int parse_device(const char* s) {
    std::regex re("(cuda|cpu)(:([0-9]+))?");
    std::cmatch m;
    return std::regex_match(s, m, re) ? 1 : 0;
}
"""


@pytest.fixture(scope="module")
def regex_objects(tmp_path_factory) -> dict[str, Path]:
    """A std::regex user built twice: by g++ (linked against libstdc++, by version) and by gcc (libstdc++ not linked:
    its libstdc++ symbols carry no version, like the CUDA packages' .so on the GPU machine)."""
    if not shutil.which("g++"):
        pytest.skip("needs g++")
    folder = tmp_path_factory.mktemp("regex")
    (folder / "parse.cpp").write_text(REGEX_SO)
    built = {}
    for driver in ("g++", "gcc"):
        out = folder / f"parse_{driver.replace('+', 'x')}.so"
        subprocess.run([driver, "-shared", "-fPIC", "-O1", str(folder / "parse.cpp"), "-o", str(out)], check=True, timeout=120)
        built[driver] = out
    return built


@pytest.mark.slow
@without_preload
def test_a_so_without_libstdcxx_versions_is_undecided_unless_libstdcxx_is_preloaded(regex_objects):
    code = """
import json, sys
import torch
from pt2kit.runtime.libstdcxx import check_shared_object
verdicts = {}
for so in sys.argv[1:]:
    with open(so, "rb") as stream:
        check = check_shared_object(stream, so)
    verdicts[so] = [check.verdict.value, check.reason]
print(json.dumps(verdicts))
"""
    linked, unlinked = str(regex_objects["g++"]), str(regex_objects["gcc"])
    plain = fresh_process(code, linked, unlinked)
    assert plain[linked][0] == "fits"
    assert plain[unlinked][0] == "undecided" and "with no version" in plain[unlinked][1]
    (mapped,) = mapped_libstdcxx()
    preloaded = fresh_process(code, unlinked, env={"LD_PRELOAD": mapped})
    assert preloaded[unlinked][0] == "fits", preloaded  # libstdc++ first in the global scope: every name binds to it


# -- inputs on the artifact's device ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tensor_on_another_device_is_one_line_input_mismatch(small_aoti_package, linear_program):
    for path in (small_aoti_package, linear_program):
        model = pt2kit.load(path)
        assert model.device == torch.device("cpu")
        with pytest.raises(pt2kit.InputMismatchError) as info:
            model(torch.empty(4, 16, device="meta"))
        message = str(info.value)
        assert "\n" not in message
        assert "input `input` is on meta, but the artifact runs on cpu" in message and "input.to('cpu')" in message
        assert model(torch.randn(4, 16)).shape == (4, 4)
