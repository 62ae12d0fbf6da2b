"""Load an AOTInductor package fast and safely: check it fits this machine first, then open the `.so`.

`torch._inductor.aoti_load_package` imports Inductor and probes the CPU's vector ISA by
running the C++ compiler on every fresh process (about 0.8 s with a warm Inductor cache,
about 5 s with an empty one) only to print a warning on a mismatch. pt2kit does that check
itself from the manifest (the ISA the package was built for, recorded at compile time)
against the CPU's feature flags, which needs no compiler, and then opens the package
with `torch._C._aoti.AOTIModelPackageLoader` directly.

A CUDA package's `.so` can crash the process while it opens (a libstdc++ clash, seen on the GPU
machine). `check_libstdcxx` decides that from ELF data and the dynamic linker
(`pt2kit.runtime.libstdcxx`); only when that cannot decide is the package opened in a child
process first (`probe_load`). CPU packages skip both: the load path stays a few milliseconds.

AOTInductor extracts each package's `.so` into a fresh `$TMPDIR/aotinductor_*` folder and removes it
only when the loader is destroyed. A loader still referenced when the process ends (a served
model inside the web app's reference cycles) never is, so every run left the package's size in
`/tmp`; `close_all_packages` runs at exit and closes every package still open. Packages are
unpacked into a folder of the process's own, so what a killed process leaves behind is removed by
the next one (`pt2kit.runtime.extraction`).

A package whose weights are stored per tensor (`--external-weights tensors`) opens without them; they are
mapped from the archive and handed to the loader (`pt2kit.runtime.weights`), with no unpacking.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree as pytree

from pt2kit.errors import ArtifactError
from pt2kit.runtime.extraction import own_extraction_folder, remove_own_folder
from pt2kit.runtime.weights import StoredWeights, load_stored_weights
from pt2kit.artifact.manifest import Manifest

if TYPE_CHECKING:
    from pt2kit.runtime.libstdcxx import LibstdcxxCheck

# the ISA words Inductor writes in AOTI_CPU_ISA -> the torch.cpu probe for each (cpuinfo, no compiler)
_ISA_PROBES = {
    "AVX2": "_is_avx2_supported", "AVX512": "_is_avx512_supported", "AVX512_VNNI": "_is_vnni_supported",
    "AVX512_BF16": "_is_avx512_bf16_supported", "AMX_TILE": "_is_amx_tile_supported", "AMX_FP16": "_is_amx_fp16_supported",
}


@dataclass(frozen=True)
class PackageInfo:
    """What a package was built for: from the manifest, else from AOTInductor's own metadata."""

    device: str
    torch_version: str
    cpu_isa: str = ""
    machine: str = ""
    compute_capability: str = ""

    @classmethod
    def read(cls, path: Path, manifest: Manifest | None) -> "PackageInfo":
        aoti = (manifest.extra.get("aoti") if manifest else None) or {}
        if aoti.get("device"):
            return cls(aoti["device"], aoti.get("torch_version") or manifest.torch_version, aoti.get("cpu_isa", ""),
                       aoti.get("machine", ""), str(aoti.get("compute_capability", "")))
        loader = torch._C._aoti.AOTIModelPackageLoader
        try:
            meta = dict(loader.load_metadata_from_package(str(path), "model"))
        except Exception as exc:
            raise ArtifactError(f"cannot read the AOTInductor metadata of `{path}` ({str(exc).strip()[:200]}); rebuild it with `pt2kit compile`") from None
        device = meta.get("AOTI_DEVICE_KEY", "cpu").split(":")[0]
        return cls(device, manifest.torch_version if manifest else "", meta.get("AOTI_CPU_ISA", ""), meta.get("AOTI_MACHINE", ""),
                   meta.get("AOTI_COMPUTE_CAPABILITY", ""))


def _minor(version: str) -> tuple[int, ...]:
    digits = version.split("+")[0].split(".")[:2]
    return tuple(int(d) for d in digits if d.isdigit())


def check_compatible(path: Path, info: PackageInfo, device_index: int = -1) -> None:
    """Raise `ArtifactError` if the package cannot run here; runs before the `.so` is opened.

    Checks the torch version (major.minor), the device kind and its presence, the CUDA compute
    capability, the CPU architecture and the CPU vector ISA the kernels were compiled for.
    """
    name = path.name
    if info.torch_version and _minor(info.torch_version) != _minor(torch.__version__):
        raise ArtifactError(
            f"`{name}` was compiled with torch {info.torch_version} and this is torch {torch.__version__}; AOTInductor packages "
            f"only load in the torch they were built with: rebuild it here with `pt2kit compile MODEL.pt2 -o {name} --device {info.device}`"
        )
    if info.machine and info.machine != platform.machine():
        raise ArtifactError(f"`{name}` was compiled for {info.machine} and this machine is {platform.machine()}; rebuild it here with `pt2kit compile`")
    if info.device == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA device is visible"
            raise ArtifactError(
                f"`{name}` was compiled for CUDA and cannot run here ({why}); build a CPU package: "
                f"`pt2kit compile MODEL.pt2 -o {path.stem.replace('.aoti', '')}.cpu.aoti.pt2 --device cpu`"
            )
        index = device_index if device_index >= 0 else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        here = f"{major}{minor}"
        if info.compute_capability and info.compute_capability not in (here, f"{major}.{minor}"):
            raise ArtifactError(
                f"`{name}` was compiled for CUDA compute capability {info.compute_capability} and cuda:{index} is {here} "
                f"({torch.cuda.get_device_name(index)}); rebuild it on this GPU with `pt2kit compile ... --device cuda`"
            )
    elif info.device == "cpu":
        missing = [word for word in info.cpu_isa.upper().split() if not _cpu_has(word)]
        if missing:
            raise ArtifactError(
                f"`{name}` was compiled for CPU features {info.cpu_isa} and this CPU lacks {' '.join(missing)}; rebuild it for an "
                f"older ISA: `ATEN_CPU_CAPABILITY=avx2 pt2kit compile MODEL.pt2 -o {name}` (or `default` for no vector ISA)"
            )
    else:
        raise ArtifactError(f"`{name}` was compiled for device `{info.device}`, which pt2kit cannot load; rebuild it for cpu or cuda")


def _cpu_has(word: str) -> bool:
    probe = getattr(torch.cpu, _ISA_PROBES.get(word, ""), None)
    return True if probe is None else bool(probe())  # unknown words: let the loader decide


def libstdcxx_hint() -> str:
    """The one-line fix for the libstdc++ clash that crashes CUDA packages on some machines."""
    from pt2kit.runtime.libstdcxx import SYSTEM_LIBSTDCXX, system_libstdcxx

    system = system_libstdcxx() or SYSTEM_LIBSTDCXX[0]
    return f"run with `LD_PRELOAD={system}` in the environment (e.g. `LD_PRELOAD={system} pt2kit run ...`)"


def loaded_libstdcxx() -> list[str]:
    """Distinct libstdc++ files mapped into this process (Linux; empty elsewhere)."""
    from pt2kit.runtime.libstdcxx import mapped_libstdcxx

    return list(mapped_libstdcxx())


def default_cache_dir() -> Path:
    """pt2kit's cache folder (builds, load probes): `$PT2KIT_CACHE_DIR`, else `$XDG_CACHE_HOME/pt2kit`, else `~/.cache/pt2kit`."""
    if os.environ.get("PT2KIT_CACHE_DIR"):
        return Path(os.environ["PT2KIT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pt2kit"
_PROBE_TIMEOUT_S = 600


class ChildProbeWarning(UserWarning):
    """A CUDA package is opened in a child process first (seconds, once per package file), and why."""


def probe_load(path: Path, device_index: int, cache_dir: Path | None = None, reason: str = "") -> None:
    """Open the package in a child process first; a crash there becomes an `ArtifactError` here.

    Used for CUDA packages when the ELF comparison (`check_libstdcxx`) cannot decide: on some
    machines the generated `.so` segfaults inside `std::regex` unless the system libstdc++ is
    preloaded. The verdict is cached per package, interpreter
    and `LD_PRELOAD`, so only the first load of a package pays for the child (a few seconds).
    """
    stat = path.stat()
    key = hashlib.sha256(json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, sys.executable,
                                     os.environ.get("LD_PRELOAD", ""), torch.__version__, device_index]).encode()).hexdigest()[:24]
    marker = (cache_dir or default_cache_dir()) / "probes" / key
    if marker.exists():
        return
    if reason:  # say why the first load of this package takes seconds, and what lets pt2kit decide without the child
        fix = ("`pip install pyelftools` (a pt2kit dependency) lets pt2kit decide from the .so's ELF data" if "pyelftools" in reason
               else libstdcxx_hint())
        warnings.warn(f"opening `{path.name}` in a child process first (a few seconds, once per package): {reason}; {fix}",
                      ChildProbeWarning, stacklevel=4)
    code = ("import sys, torch; torch._C._aoti.AOTIModelPackageLoader(sys.argv[1], 'model', False, 1, int(sys.argv[2]))")
    try:
        with own_extraction_folder() as folder, tempfile.TemporaryDirectory(dir=folder) as scratch:
            # a child that crashes cannot remove what it unpacked; this folder goes either way
            proc = subprocess.run([sys.executable, "-c", code, str(path), str(device_index)], capture_output=True, text=True,
                                  timeout=_PROBE_TIMEOUT_S, env={**os.environ, "TMPDIR": scratch})
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"opening `{path.name}` in a child process took over {_PROBE_TIMEOUT_S}s (a hung load); "
                            "set PT2KIT_NO_PROBE=1 to load it without the probe") from None
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        libs = ", ".join(loaded_libstdcxx()) or "unknown"
        raise ArtifactError(
            f"loading `{path.name}` crashes the process ({sig} in the package's C++ code; this process uses libstdc++ {libs}): "
            f"a libstdc++ clash; {libstdcxx_hint()}"
        )
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("ok" if proc.returncode == 0 else proc.stderr[-2000:])
    except OSError:
        pass


def check_libstdcxx(path: Path, device_index: int) -> LibstdcxxCheck:
    """Refuse a package whose `.so` clashes with this process's libstdc++, decided from ELF data.

    Only when the ELF data cannot decide (see `pt2kit.runtime.libstdcxx`) is the package opened
    in a child process first (`probe_load`, seconds instead of milliseconds).

    Raises:
        ArtifactError: a clash, in one line with the `LD_PRELOAD` fix.
    """
    from pt2kit.runtime.libstdcxx import Verdict, check_package  # CUDA packages only: CPU loads skip ELF reading

    check = check_package(path)
    if check.verdict is Verdict.CLASH:
        raise ArtifactError(f"`{path.name}` would crash this process: {check.reason}; a libstdc++ clash; {libstdcxx_hint()}")
    if check.verdict is Verdict.UNDECIDED:
        probe_load(path, device_index, reason=check.reason)
    return check


class AotiRunner:
    """A loaded package called through `boxed_run`, with its call spec parsed once (not per call)."""

    def __init__(self, loader, device: torch.device | None = None, weights: dict[str, torch.Tensor] | None = None):
        self.loader = loader
        self.device = device  # where the package reads its inputs
        self.weights = weights  # per-tensor weights the loader uses in place (`user_managed`): kept alive here
        in_spec, out_spec = loader.get_call_spec()
        self.in_spec = pytree.treespec_loads(in_spec)
        self.out_spec = pytree.treespec_loads(out_spec)
        kwargs_spec = None
        if self.in_spec.num_children == 2:
            kwargs_spec = self.in_spec.child(1) if hasattr(self.in_spec, "child") else self.in_spec.children_specs[1]
        self._kwarg_order = list(kwargs_spec.context) if kwargs_spec is not None and kwargs_spec.context else []

    def close(self) -> None:
        """Destroy the loader now: AOTInductor removes the folder it extracted the package to. The runner is unusable after."""
        self.loader = None
        self.weights = None

    def run_flat(self, leaves: list[Any]) -> Any:
        """Run on the flat input leaves (constants are skipped: they are baked into the package)."""
        outputs = self.loader.boxed_run([x for x in leaves if isinstance(x, torch.Tensor)])
        return pytree.tree_unflatten(outputs, self.out_spec)

    def flatten(self, args: tuple, kwargs: dict) -> list[Any]:
        """The input leaves in the package's order (keyword arguments in the order it was exported with)."""
        if not kwargs and all(isinstance(a, torch.Tensor) for a in args):
            return list(args)  # the common case, without a pytree walk (a few microseconds per call)
        if kwargs and self._kwarg_order and set(kwargs) == set(self._kwarg_order):
            kwargs = {k: kwargs[k] for k in self._kwarg_order}
        return pytree.tree_leaves((tuple(args), dict(kwargs)))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run_flat(self.flatten(args, kwargs))


def load_aoti(path: Path, manifest: Manifest | None, device_index: int = -1, *, single_threaded: bool = False) -> AotiRunner:
    """Check compatibility, then open the package. See the module docstring for why not `aoti_load_package`.

    `single_threaded` opens it with AOTInductor's `run_single_threaded` runner, the one a CUDA graph can capture.

    Raises:
        ArtifactError: the package does not fit this machine, or the loader rejects it.
    """
    info = PackageInfo.read(path, manifest)
    check_compatible(path, info, device_index)
    if info.device == "cuda" and not os.environ.get("PT2KIT_NO_PROBE"):
        check_libstdcxx(path, device_index)
    try:
        with own_extraction_folder():
            loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", single_threaded, 1, device_index)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"cannot load AOTInductor package `{path}` ({first}); rebuild it with `pt2kit compile` on this machine") from None
    if info.device == "cuda":
        device = torch.device("cuda", device_index if device_index >= 0 else torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    stored = StoredWeights.find(path)  # `--external-weights tensors`: AOTInductor's loader leaves them to us
    weights = load_stored_weights(loader, path, stored, device) if stored is not None else None
    runner = AotiRunner(loader, device, weights)
    _OPEN.add(runner)
    return runner


_OPEN: weakref.WeakSet[AotiRunner] = weakref.WeakSet()


@atexit.register
def close_all_packages() -> None:
    """Close every package still open (see the module docstring); runs at exit."""
    for runner in list(_OPEN):
        runner.close()
    remove_own_folder()
