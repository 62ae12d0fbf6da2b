"""Decide, without running a package, whether its `.so` fits the libstdc++ this process already uses.

An AOTInductor package's `.so` is built by the machine's own `g++` and linked against the
libstdc++ that compiler ships. The process that loads it (Python with torch) has already mapped
some libstdc++ by then, and a shared object gets no second copy: every C++ runtime symbol the `.so`
needs binds into the one already mapped. Three things are read from ELF data (pyelftools):

- the `.so`'s version requirements on libstdc++ (`.gnu.version_r`: `GLIBCXX_3.4.30`, `CXXABI_1.3.9`),
- the version definitions of the libstdc++ mapped into this process (`/proc/self/maps`, then its
  `.gnu.version_d`), and of the libstdc++ the system compiler links against,
- where the dynamic linker binds each versioned libstdc++ symbol the `.so` imports (`dlvsym` in the
  global scope, then `dladdr`): into the mapped libstdc++, or into another library that carries its
  own copy of those symbols.

Verdicts: `FITS` (every required version is defined by the mapped libstdc++, which is not older
than the one the compiler built against, and every import binds into it), `CLASH` (a required
version is missing, the mapped libstdc++ is older than the compiler's, or imports bind elsewhere),
`UNDECIDED` (not Linux, no libstdc++ mapped yet, pyelftools missing, unreadable ELF): then the
caller falls back to loading the package in a child process (`pt2kit.compile.loader.probe_load`).

What this does not see: a crash whose cause is inside code that both copies agree on by version
(two builds of the same libstdc++ version behaving differently). benchmarks/gpu_compile.md records
what it said on the GPU machine where the `std::regex` crash was seen.
"""

from __future__ import annotations

import ctypes
import os
import re
import zipfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Iterator

SYSTEM_LIBSTDCXX = ("/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6",
                    "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib/libstdc++.so.6")
_RUNTIME_VERSION = re.compile(r"^(GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)$")


class Verdict(str, Enum):
    FITS = "fits"
    CLASH = "clash"
    UNDECIDED = "undecided"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LibstdcxxCheck:
    """What the ELF comparison found for one package `.so` in this process."""

    verdict: Verdict
    reason: str
    shared_object: str = ""
    mapped: tuple[str, ...] = ()
    needed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    bound_elsewhere: tuple[str, ...] = field(default=())  # "symbol -> /path/of/the/library it binds into"

    def __str__(self) -> str:
        return f"libstdc++ check: {self.verdict}: {self.reason}"

    def to_json(self) -> dict:
        return {"verdict": self.verdict.value, "reason": self.reason, "shared_object": self.shared_object, "mapped": list(self.mapped),
                "needed": list(self.needed), "missing": list(self.missing), "bound_elsewhere": list(self.bound_elsewhere)}


def version_key(name: str) -> tuple[str, tuple[int, ...]]:
    """`GLIBCXX_3.4.30` -> ("GLIBCXX", (3, 4, 30)), for ordering versions of one family."""
    match = _RUNTIME_VERSION.match(name)
    if not match:
        return name, ()
    return match.group(1), tuple(int(p) for p in match.group(2).split("."))


def needed_versions(stream: BinaryIO) -> dict[str, tuple[str, ...]]:
    """The `.so`'s version requirements from `.gnu.version_r`: library soname -> version names."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    needs: dict[str, tuple[str, ...]] = {}
    for section in ELFFile(stream).iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for verneed, auxes in section.iter_versions():
                needs[verneed.name] = tuple(aux.name for aux in auxes)
    return needs


def defined_versions(path: str | os.PathLike) -> frozenset[str]:
    """The version names a library defines (`.gnu.version_d`), e.g. every `GLIBCXX_3.4.*` it provides."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection

    names: set[str] = set()
    with open(path, "rb") as stream:
        for section in ELFFile(stream).iter_sections():
            if isinstance(section, GNUVerDefSection):
                for _verdef, auxes in section.iter_versions():
                    names.update(aux.name for aux in auxes)
    return frozenset(names)


def runtime_symbols(stream: BinaryIO, soname: str = "libstdc++.so.6") -> list[str]:
    """Dynamic symbols of the `.so` that the C++ runtime may provide: what it imports from `soname`
    (by version) and what it defines weakly (template instantiations such as `std::regex`'s, which
    the dynamic linker may bind to another library's copy instead)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection

    elf = ELFFile(stream)
    runtime_indexes: set[int] = set()
    versym = dynsym = None
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for verneed, auxes in section.iter_versions():
                if verneed.name == soname:
                    runtime_indexes.update(aux["vna_other"] for aux in auxes)
        elif isinstance(section, GNUVerSymSection):
            versym = section
        elif section.name == ".dynsym":
            dynsym = section
    if dynsym is None:
        return []
    names = []
    for i, symbol in enumerate(dynsym.iter_symbols()):
        if not symbol.name:
            continue
        if symbol["st_shndx"] == "SHN_UNDEF":
            index = versym.get_symbol(i)["ndx"] if versym is not None else None
            if isinstance(index, int) and index & 0x7FFF in runtime_indexes:
                names.append(symbol.name)
        elif symbol["st_info"]["bind"] == "STB_WEAK":
            names.append(symbol.name)
    return names


def mapped_libstdcxx(maps: str = "/proc/self/maps") -> tuple[str, ...]:
    """Distinct libstdc++ files mapped into this process (empty off Linux or before any is loaded)."""
    try:
        with open(maps) as lines:
            return tuple(sorted({os.path.realpath(line.split()[-1]) for line in lines if "libstdc++" in line and "/" in line}))
    except OSError:
        return ()


def system_libstdcxx() -> str | None:
    """The libstdc++ the system compiler links against (what `LD_PRELOAD` should name)."""
    return next((p for p in SYSTEM_LIBSTDCXX if os.path.exists(p)), None)


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def bound_elsewhere(symbols: list[str], libstdcxx: str) -> list[str] | None:
    """Symbols libstdc++ defines that the global scope would bind into another library instead.

    Lookup for a `dlopen`ed object starts in the process's global scope. If a library there (loaded
    with `RTLD_GLOBAL`, such as the CUDA libraries torch preloads) carries its own copy of a libstdc++
    symbol, the package's `.so` binds to that copy, built by another compiler, rather than to libstdc++.
    `LD_PRELOAD` of libstdc++ puts libstdc++ first in that scope. None when `dlsym` is not available.
    """
    try:
        libc = ctypes.CDLL(None)
        dlsym, dladdr = libc.dlsym, libc.dladdr
        runtime = ctypes.CDLL(libstdcxx, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):
        return None
    dlsym.restype, dlsym.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]

    def owner(address: int | None) -> str | None:
        info = _DlInfo()
        if not address or not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
            return None
        return os.path.realpath(info.dli_fname.decode(errors="replace"))

    want = os.path.realpath(libstdcxx)
    elsewhere = []
    for name in symbols:
        encoded = name.encode()
        if owner(dlsym(runtime._handle, encoded)) != want:
            continue  # not libstdc++'s symbol: nothing to clash with
        where = owner(dlsym(None, encoded))  # None: not in the global scope, the `.so` binds it in its own scope
        if where is not None and where != want:
            elsewhere.append(f"{name} -> {where}")
    return elsewhere


def _newest(versions: frozenset[str] | tuple[str, ...], family: str = "GLIBCXX") -> tuple[int, ...]:
    keys = [version_key(v)[1] for v in versions if version_key(v)[0] == family]
    return max(keys) if keys else ()


def check_shared_object(stream: BinaryIO, name: str, maps: str = "/proc/self/maps", system: str | None = None) -> LibstdcxxCheck:
    """Compare one `.so` (an open binary stream) with the libstdc++ mapped in this process.

    Args:
        stream: the `.so`, seekable.
        name: how to call it in messages.
        maps: the process map to read (a seam for tests).
        system: the compiler's libstdc++ (default: the first of `SYSTEM_LIBSTDCXX` that exists).
    """
    try:
        import elftools  # noqa: F401
    except ImportError:
        return LibstdcxxCheck(Verdict.UNDECIDED, "pyelftools is not installed", name)
    mapped = mapped_libstdcxx(maps)
    if not mapped:
        return LibstdcxxCheck(Verdict.UNDECIDED, "no libstdc++ is mapped in this process (or /proc is not readable)", name)
    if len(mapped) > 1:
        return LibstdcxxCheck(Verdict.CLASH, f"two libstdc++ copies are mapped in this process ({', '.join(mapped)})", name, mapped)
    try:
        needed = needed_versions(stream).get("libstdc++.so.6", ())
        stream.seek(0)
        symbols = runtime_symbols(stream)
        provided = defined_versions(mapped[0])
        system = system if system is not None else system_libstdcxx()
        compiler = defined_versions(system) if system and os.path.realpath(system) != mapped[0] else provided
    except Exception as exc:  # a truncated or foreign ELF: let the child probe decide
        return LibstdcxxCheck(Verdict.UNDECIDED, f"cannot read the ELF data ({type(exc).__name__}: {exc})", name, mapped)
    runtime_needs = tuple(sorted((v for v in needed if _RUNTIME_VERSION.match(v)), key=version_key))
    missing = tuple(v for v in runtime_needs if v not in provided)
    if missing:
        return LibstdcxxCheck(Verdict.CLASH, f"`{name}` needs {', '.join(missing)}, which {mapped[0]} does not define",
                              name, mapped, runtime_needs, missing)
    if _newest(compiler) > _newest(provided):
        newest = ".".join(map(str, _newest(compiler)))
        return LibstdcxxCheck(
            Verdict.CLASH, f"{mapped[0]} (up to GLIBCXX_{'.'.join(map(str, _newest(provided)))}) is older than the compiler's "
            f"libstdc++ {system} (GLIBCXX_{newest}) that `{name}` was built against", name, mapped, runtime_needs)
    found = bound_elsewhere(symbols, mapped[0])
    if found is None:
        return LibstdcxxCheck(Verdict.UNDECIDED, "the dynamic linker cannot be asked where symbols bind (no dlsym)", name, mapped,
                              runtime_needs)
    elsewhere = tuple(found)
    if elsewhere:
        return LibstdcxxCheck(Verdict.CLASH, f"{len(elsewhere)} libstdc++ symbols of `{name}` bind into another library "
                              f"({elsewhere[0]})", name, mapped, runtime_needs, (), elsewhere)
    return LibstdcxxCheck(Verdict.FITS, f"{mapped[0]} defines all {len(runtime_needs)} libstdc++ versions `{name}` needs, "
                          f"and none of its {len(symbols)} C++ runtime symbols binds into another library", name, mapped, runtime_needs)


def package_shared_objects(path: Path) -> Iterator[tuple[str, BinaryIO]]:
    """The `.so` entries of an AOTInductor package, each opened for reading (seekable: stored entries)."""
    with zipfile.ZipFile(path) as zf:
        for entry in zf.namelist():
            if entry.endswith(".so") and "/data/aotinductor/" in entry:
                with zf.open(entry) as stream:
                    yield entry.rsplit("/", 1)[-1], stream


def check_package(path: Path, maps: str = "/proc/self/maps", system: str | None = None) -> LibstdcxxCheck:
    """`check_shared_object` for the package's `.so` (the first CLASH or UNDECIDED wins, else FITS)."""
    result = LibstdcxxCheck(Verdict.UNDECIDED, f"no .so found in `{path.name}`")
    try:
        for name, stream in package_shared_objects(path):
            result = check_shared_object(stream, name, maps, system)
            if result.verdict is not Verdict.FITS:
                return result
    except (zipfile.BadZipFile, OSError) as exc:
        return LibstdcxxCheck(Verdict.UNDECIDED, f"cannot read `{path.name}` ({exc})")
    return result
