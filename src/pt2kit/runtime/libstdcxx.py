"""Decide, without running a package, whether its `.so` fits the libstdc++ this process already uses.

An AOTInductor package's `.so` is built by the machine's own compiler. By the time Python with torch
opens it, some libstdc++ is mapped, and the libraries torch loaded may carry copies of libstdc++ code
of their own (built by another compiler). Where each C++ runtime symbol of the `.so` binds decides
whether it runs or crashes (on the GPU machine: a stack overflow in `std::regex` unless libstdc++ is
preloaded). What is read (pyelftools for the ELF data, `dlsym`/`dladdr` for the dynamic linker):

- the `.so`'s version requirements on libstdc++ (`.gnu.version_r`: `GLIBCXX_3.4.30`, `CXXABI_1.3.9`)
  and the version definitions (`.gnu.version_d`) of the libstdc++ in `/proc/self/maps`, and of the
  system's libstdc++ (what the compiler builds against);
- every dynamic symbol of the `.so` whose name libstdc++ defines: imports tied to libstdc++ by a
  version, imports with no version, and the `.so`'s own definitions (template code such as
  `std::regex`'s); for each, where the process's global scope binds it.

`CLASH` (one-line error, no load): a needed version is missing, two libstdc++ are mapped, the mapped
one is older than the system's, or a symbol binds into another library's copy. `FITS` (load now):
none of that, and the `.so` is tied to libstdc++ by version or the global scope gives every one of
its libstdc++ names from libstdc++ itself (as `LD_PRELOAD` of libstdc++ does). `UNDECIDED` (the
caller opens the package in a child process first, `pt2kit.runtime.loader.probe_load`): not Linux,
no libstdc++ mapped, pyelftools missing, an unreadable ELF, or a `.so` that needs no libstdc++
version while its libstdc++ names are not given by libstdc++ in the global scope, where binding
then depends on the order of its dependencies. That last case is the GPU machine's package without
`LD_PRELOAD` (benchmarks/gpu/gpu_compile.md): there the check cannot see the crash, only that it cannot
rule it out, so the probe still runs; with `LD_PRELOAD` set it decides FITS and no probe runs.
"""

from __future__ import annotations

import ctypes
import io
import os
import re
import struct
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


@dataclass(frozen=True)
class DynamicSymbols:
    """A `.so`'s dynamic symbols, split by how the dynamic linker will bind them."""

    versioned: tuple[str, ...]  # imports tied to libstdc++ by a version (GLIBCXX_*/CXXABI_*): only libstdc++ can provide them
    unversioned: tuple[str, ...]  # imports with no version: bound to the first library in lookup order that has them
    defined: tuple[str, ...]  # its own definitions (templates such as `std::regex`'s, static runtime code): another
                              # library in the global scope that defines the same name takes precedence


def runtime_symbols(stream: BinaryIO, soname: str = "libstdc++.so.6") -> DynamicSymbols:
    """Read the `.so`'s dynamic symbol table (pyelftools finds the sections; the table is unpacked in bulk)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    elf = ELFFile(stream)
    if elf.elfclass != 64 or not elf.little_endian:
        raise ValueError("only 64-bit little-endian ELF is read")
    runtime_indexes: set[int] = set()
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for verneed, auxes in section.iter_versions():
                if verneed.name == soname:
                    runtime_indexes.update(aux["vna_other"] for aux in auxes)
    dynsym, dynstr, versym = (elf.get_section_by_name(n) for n in (".dynsym", ".dynstr", ".gnu.version"))
    if dynsym is None or dynstr is None:
        return DynamicSymbols((), (), ())
    names, versions = dynstr.data(), versym.data() if versym is not None else b""
    versioned, unversioned, defined = [], [], []
    for i, (st_name, st_info, _other, st_shndx, _value, _size) in enumerate(struct.iter_unpack("<IBBHQQ", dynsym.data())):
        if not st_name or st_info >> 4 == 0:  # unnamed, or local
            continue
        name = names[st_name:names.index(b"\0", st_name)].decode(errors="replace")
        if st_shndx != 0:
            defined.append(name)
            continue
        index = struct.unpack_from("<H", versions, 2 * i)[0] & 0x7FFF if versions else 0
        (versioned if index in runtime_indexes else unversioned).append(name)
    return DynamicSymbols(tuple(versioned), tuple(unversioned), tuple(defined))


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


@dataclass(frozen=True)
class Bindings:
    """Where the global scope binds the `.so`'s libstdc++ symbols (only names libstdc++ itself defines)."""

    elsewhere: tuple[str, ...]  # "symbol -> library": bound into a copy in another library
    not_global: tuple[str, ...]  # imports with no version that the global scope does not provide at all
    own_copies: tuple[str, ...] = ()  # libstdc++ names the `.so` defines itself and the global scope does not provide


def global_bindings(symbols: DynamicSymbols, libstdcxx: str, maps: str = "/proc/self/maps") -> Bindings | None:
    """Ask the dynamic linker (`dlsym` in the global scope, then `dladdr`) where each symbol would bind.

    Lookup for a `dlopen`ed object starts in the process's global scope. If a library there (loaded
    with `RTLD_GLOBAL`) carries its own copy of a libstdc++ symbol, the package's `.so` binds to that
    copy, built by another compiler. An import with no version that the global scope lacks binds to
    whichever of the `.so`'s own dependencies has it first: not decidable here. `LD_PRELOAD` of
    libstdc++ puts libstdc++ first in the global scope. None when `dlsym` is not available.
    """
    try:
        libc = ctypes.CDLL(None)
        dlsym, dladdr = libc.dlsym, libc.dladdr
        runtime = ctypes.CDLL(libstdcxx, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):
        return None
    dlsym.restype, dlsym.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    want = os.path.realpath(libstdcxx)
    ranges = _mapped_ranges(want, maps)
    if not ranges:
        return None

    def in_runtime(address: int | None) -> bool:  # a range test, not a dladdr per symbol (9,000 of them: 0.5 s)
        return bool(address) and any(lo <= address < hi for lo, hi in ranges)

    def owner(address: int) -> str:  # only for the message, on the rare symbol bound elsewhere
        info = _DlInfo()
        if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
            return "an unnamed object"
        return os.path.realpath(info.dli_fname.decode(errors="replace"))

    unversioned, defined = set(symbols.unversioned), set(symbols.defined)
    elsewhere, not_global, own_copies = [], [], []
    for name in symbols.versioned + symbols.unversioned + symbols.defined:
        encoded = name.encode()
        if not in_runtime(dlsym(runtime._handle, encoded)):
            continue  # not libstdc++'s symbol: nothing to clash with
        where = dlsym(None, encoded)
        if not where:
            if name in unversioned:
                not_global.append(name)
            elif name in defined:
                own_copies.append(name)
        elif not in_runtime(where):
            elsewhere.append(f"{name} -> {owner(where)}")
    return Bindings(tuple(elsewhere), tuple(not_global), tuple(own_copies))


def _mapped_ranges(library: str, maps: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """The address ranges where `library` (a real path) is mapped in this process."""
    ranges = []
    try:
        with open(maps) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and os.path.basename(fields[5])[:6] == os.path.basename(library)[:6] \
                        and os.path.realpath(fields[5]) == library:
                    lo, hi = fields[0].split("-")
                    ranges.append((int(lo, 16), int(hi, 16)))
    except OSError:
        return []
    return ranges


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _newest(versions: frozenset[str] | tuple[str, ...], family: str = "GLIBCXX") -> tuple[int, ...]:
    keys = [version_key(v)[1] for v in versions if version_key(v)[0] == family]
    return max(keys) if keys else ()


@dataclass(frozen=True)
class VersionMatch:
    """The `.so`'s libstdc++ version needs against what the mapped libstdc++ defines.

    `new_enough`: the mapped libstdc++ is at least as new as what the `.so` was built against. A `.so` tied to
    libstdc++ by version says what it needs (every need defined is enough, whatever compiler built it); one with no
    version needs says nothing, so it is taken as built against the compiler's libstdc++ (`compiler`).
    """

    needs: tuple[str, ...]
    missing: tuple[str, ...]
    new_enough: bool


def compare_versions(needs: tuple[str, ...] | list[str], provided: frozenset[str], compiler: frozenset[str]) -> VersionMatch:
    """Compare version names (`GLIBCXX_3.4.30`, `CXXABI_1.3.9`); pure, so any set can be tested."""
    needs = tuple(sorted((v for v in needs if _RUNTIME_VERSION.match(v)), key=version_key))
    missing = tuple(v for v in needs if v not in provided)
    if needs:
        return VersionMatch(needs, missing, not missing)
    return VersionMatch(needs, missing, _newest(compiler) <= _newest(provided))


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
    versions = compare_versions(runtime_needs, provided, compiler)
    if versions.missing:
        return LibstdcxxCheck(Verdict.CLASH, f"`{name}` needs {', '.join(versions.missing)}, which {mapped[0]} does not define",
                              name, mapped, runtime_needs, versions.missing)
    if not versions.new_enough:
        newest = ".".join(map(str, _newest(compiler)))
        return LibstdcxxCheck(
            Verdict.CLASH, f"{mapped[0]} (up to GLIBCXX_{'.'.join(map(str, _newest(provided)))}) is older than the compiler's "
            f"libstdc++ {system} (GLIBCXX_{newest}) that `{name}` was built against", name, mapped, runtime_needs)
    found = global_bindings(symbols, mapped[0])
    if found is None:
        return LibstdcxxCheck(Verdict.UNDECIDED, "the dynamic linker cannot be asked where symbols bind (no dlsym)", name, mapped,
                              runtime_needs)
    if found.elsewhere:
        return LibstdcxxCheck(Verdict.CLASH, f"{len(found.elsewhere)} libstdc++ symbols of `{name}` bind into another library "
                              f"({found.elsewhere[0]})", name, mapped, runtime_needs, (), found.elsewhere)
    if found.not_global:
        return LibstdcxxCheck(
            Verdict.UNDECIDED, f"`{name}` takes {len(found.not_global)} libstdc++ symbols (e.g. `{found.not_global[0]}`) with no "
            "version and this process's global scope does not provide them: they bind to whichever of its dependencies has them "
            "first", name, mapped, runtime_needs)
    if not runtime_needs and found.own_copies:
        # not linked against libstdc++ by version, yet it carries libstdc++ code: seen on the GPU machine, where such a
        # package crashes in std::regex unless libstdc++ is preloaded (then every one of these names binds to libstdc++)
        return LibstdcxxCheck(
            Verdict.UNDECIDED, f"`{name}` needs no libstdc++ version but carries {len(found.own_copies)} libstdc++ symbols of its "
            f"own (e.g. `{found.own_copies[0]}`) that this process's global scope does not take from libstdc++", name, mapped)
    total = len(symbols.versioned) + len(symbols.unversioned) + len(symbols.defined)
    tie = (f"{mapped[0]} defines all {len(runtime_needs)} libstdc++ versions `{name}` needs" if runtime_needs else
           f"`{name}` needs no libstdc++ version and the global scope gives its libstdc++ names from {mapped[0]} (as "
           "`LD_PRELOAD` of it does)")
    return LibstdcxxCheck(Verdict.FITS, f"{tie}, and none of its {total} dynamic symbols binds into another library's copy of "
                          "libstdc++ code", name, mapped, runtime_needs)


class _StoredMember(io.RawIOBase):
    """A stored (uncompressed) zip member read straight from the archive file.

    `zipfile`'s own member stream seeks backwards by re-reading from the start of the member (checking the
    CRC as it goes), and ELF parsing seeks back and forth: on a 119 MB `.so` that cost 0.75 s, this costs
    milliseconds.
    """

    def __init__(self, file: BinaryIO, start: int, size: int):
        self._file, self._start, self._size, self._pos = file, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        self._file.seek(self._start + self._pos)
        got = self._file.readinto(memoryview(buffer)[:n])
        self._pos += got
        return got


def _member_stream(zf: zipfile.ZipFile, file: BinaryIO, info: zipfile.ZipInfo) -> BinaryIO:
    if info.compress_type != zipfile.ZIP_STORED:
        return io.BytesIO(zf.read(info))  # not how torch writes packages; correct, only slower
    file.seek(info.header_offset)
    header = file.read(30)
    if header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"no local header for `{info.filename}`")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return io.BufferedReader(_StoredMember(file, info.header_offset + 30 + name_len + extra_len, info.file_size))


def package_shared_objects(path: Path) -> Iterator[tuple[str, BinaryIO]]:
    """The `.so` entries of an AOTInductor package, each opened for reading (seekable, read in place)."""
    with open(path, "rb") as file, zipfile.ZipFile(file) as zf:
        for info in zf.infolist():
            if info.filename.endswith(".so") and "/data/aotinductor/" in info.filename:
                yield info.filename.rsplit("/", 1)[-1], _member_stream(zf, file, info)


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
