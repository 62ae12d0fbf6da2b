"""`compile_package`: an exported program -> an AOTInductor package with the manifest inside.

Stages: get the program (load a `.pt2`, take an `ExportedProgram`, or export a `Target`),
optionally cast it (`--dtype`), move it to the device, decide where the weights go (inside the
`.so` or beside it: `compile.external`), look the build up in the cache, else
run `torch._inductor.aoti_compile_and_package` with the preset's settings, then add
`pt2kit/manifest.json` to the archive (as a torch "extra" file, which `load_pt2` also reads).
Everything is written to a temporary path first and renamed at the end.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import torch

from pt2kit import progress
from pt2kit.compile.cache import BuildCache, build_key, program_digest
from pt2kit.compile.dtype import DType, convert_program
from pt2kit.compile.external import ExternalWeights, external_settings, weights_layout
from pt2kit.compile.presets import get_preset
from pt2kit.compile.quantize import get_scheme, import_torchao, quantize_program
from pt2kit.errors import UsageError
from pt2kit.artifact.manifest import MANIFEST_NAME, Manifest, build_manifest, weights_summary
from pt2kit.artifact.package import ArtifactKind, artifact_kind, atomic_path, load_program, read_manifest
from pt2kit.export.program import export_program
from pt2kit.target.resolve import Target

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class CompileResult:
    """What `compile_package` produced.

    Attributes:
        path: the package written.
        seconds: wall time of this call (a cache hit is only the copy).
        size_bytes: size of the package.
        cached: True when the package came from the build cache.
        preset, device, dtype: the settings it was built with.
        inductor_configs: the exact Inductor settings passed to the build.
        build_seconds: how long the real AOTInductor build took (the original one on a cache hit).
        weights_layout: `so` (inside the `.so`), `blob` (one `*_weights.blob` beside it) or `tensors` (one file per
            tensor beside it); `external_weights` says whether it is beside it.
        weights_bytes: the size of the program's weights as built (after `--dtype`).
        released_eager: `release_eager` moved the eager model's weights to the meta device before the build.
    """

    path: Path
    seconds: float
    size_bytes: int
    cached: bool
    preset: str
    device: str
    inductor_configs: Mapping[str, Any] = field(default_factory=dict)
    dtype: str | None = None
    build_seconds: float = 0.0
    key: str = ""
    quantize: str | None = None
    weights_layout: str = "so"
    weights_bytes: int = 0
    released_eager: bool = False

    @property
    def external_weights(self) -> bool:
        """The weights sit in the archive beside the `.so` (`--external-weights`), not inside it."""
        return self.weights_layout != "so"

    def __str__(self) -> str:
        how = "from the build cache" if self.cached else "built"
        dtype = (f", {self.dtype}" if self.dtype else "") + (f", quantized {self.quantize}" if self.quantize else "")
        lines = [f"compiled -> {self.path} ({how} in {self.seconds:.1f}s; preset {self.preset}, {self.device}{dtype})",
                 f"  package  {self.size_bytes / 1e6:.2f} MB (weights {self.weights_bytes / 1e6:.2f} MB, "
                 f"{_WHERE[self.weights_layout]})",
                 f"  settings {json.dumps(dict(self.inductor_configs), sort_keys=True)}"]
        if self.cached:
            lines.append(f"  the original build took {self.build_seconds:.1f}s; pass --no-cache to build again")
        if self.weights_layout == "blob":
            lines.append("  the blob is unpacked at every load and held twice while building; `--external-weights tensors` "
                         "maps the weights in place instead (docs/compile.md)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "ok": True, "path": str(self.path), "seconds": self.seconds, "size_bytes": self.size_bytes, "cached": self.cached,
            "preset": self.preset, "device": self.device, "dtype": self.dtype, "inductor_configs": dict(self.inductor_configs),
            "build_seconds": self.build_seconds, "key": self.key, "quantize": self.quantize,
            "external_weights": self.external_weights, "weights_bytes": self.weights_bytes, "released_eager": self.released_eager,
            "weights_layout": self.weights_layout,
        }


_WHERE = {"so": "inside the .so", "blob": "outside the .so, in a blob beside it",
          "tensors": "outside the .so, one file per tensor beside it"}


def _program_and_manifest(source) -> tuple[torch.export.ExportedProgram, Manifest]:
    if isinstance(source, Target):
        result = export_program(source, None)
        return result.program, result.manifest
    if isinstance(source, torch.export.ExportedProgram):
        return source, _fresh_manifest(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if artifact_kind(path) is ArtifactKind.AOTI:
            raise UsageError(f"`{path}` is already an AOTInductor package; compile the `.pt2` program it came from")
        with progress.stage("load program"):
            ep = load_program(path)
            manifest = read_manifest(path) or _fresh_manifest(ep)
        return ep, manifest
    raise UsageError(f"cannot compile a `{type(source).__name__}`; pass a .pt2 path, an ExportedProgram or a pt2kit.Target")


def _fresh_manifest(ep: torch.export.ExportedProgram) -> Manifest:
    try:
        names = [p for p in inspect.signature(ep.module().forward).parameters if p not in ("args", "kwargs")]
    except (TypeError, ValueError):
        names = []
    return build_manifest(ep, parameters=names)


def _aoti_compile(ep: torch.export.ExportedProgram, package_path: Path, inductor_configs: dict[str, Any]) -> None:
    """The AOTInductor build itself (a seam: tests replace it to simulate a crash midway)."""
    import torch._inductor

    # no_grad: Inductor applies `freezing` (and with it weight prepacking) only when grad mode is off; with it on,
    # `cpu-freeze` built exactly what `default` builds
    with torch.no_grad(), quiet_inductor(), warnings.catch_warnings():
        # Inductor's oneDNN int8 lowering (`--quantize int8-dynamic` on CPU) warns about its own `torch.tensor(tensor)`
        warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
        torch._inductor.aoti_compile_and_package(ep, package_path=str(package_path), inductor_configs=dict(inductor_configs))


@contextlib.contextmanager
def quiet_inductor() -> Iterator[None]:
    """Keep Inductor's autotune tables, choice statistics and warnings off stderr unless `-v` (progress.is_verbose)."""
    if progress.is_verbose():
        yield
        return
    import torch._inductor.config
    import torch._inductor.select_algorithm as select_algorithm

    printing = select_algorithm.PRINT_AUTOTUNE
    select_algorithm.PRINT_AUTOTUNE = False
    try:
        with torch._inductor.config.patch(max_autotune_report_choices_stats=False), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        select_algorithm.PRINT_AUTOTUNE = printing


def _release_eager(module: torch.nn.Module, ep: torch.export.ExportedProgram) -> bool:
    """Move `module`'s weights to the meta device, unless the program still shares them; True when it did.

    After a move to CUDA the program holds its own copy, and the eager one only costs host memory for the whole
    build (a second copy of the weights).
    """
    def storages(tensors):
        return {t.untyped_storage().data_ptr() for t in tensors if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.numel()}

    program = storages(list(ep.state_dict.values()) + list(ep.constants.values()))
    eager = storages(list(module.parameters()) + list(module.buffers()))
    if not eager or program & eager:
        return False
    module.to("meta")
    import gc

    gc.collect()
    return True


def _aoti_metadata(package: Path) -> dict[str, str]:
    loader = torch._C._aoti.AOTIModelPackageLoader
    if hasattr(loader, "load_metadata_from_package"):
        return dict(loader.load_metadata_from_package(str(package), "model"))
    return {}


def add_manifest(package: Path, manifest: Manifest) -> None:
    """Store `manifest` in an AOTInductor archive as `<root>/extra/pt2kit/manifest.json` (rewriting any old one)."""
    with zipfile.ZipFile(package) as zf:
        names = zf.namelist()
    root = next(n.split("/")[0] for n in names if "/" in n)
    entry = f"{root}/extra/{MANIFEST_NAME}"
    if entry in names:  # rebuild without the old entry (zip has no delete), streaming: an entry may hold gigabytes
        rebuilt = package.with_name(package.name + ".tmp")
        with zipfile.ZipFile(package) as src, zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                if info.filename != entry:
                    with src.open(info) as data, dst.open(info, "w", force_zip64=info.file_size > 2**31) as out:
                        shutil.copyfileobj(data, out, 1 << 24)
        os.replace(rebuilt, package)
    with zipfile.ZipFile(package, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr(entry, manifest.dumps())


def compile_package(
    source,
    output: str | os.PathLike,
    *,
    device: str = "cpu",
    preset: str = "default",
    dtype: str | DType | None = None,
    use_cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    inductor_configs: Mapping[str, Any] | None = None,
    low_precision_io: bool = False,
    quantize: str | None = None,
    external_weights: str | bool | ExternalWeights = ExternalWeights.AUTO,
    release_eager: bool = False,
) -> CompileResult:
    """Build an AOTInductor package from a program, with the pt2kit manifest inside.

    Args:
        source: a `.pt2` program path, an `ExportedProgram`, or a `Target` (exported first).
        output: the package to write (must end in `.pt2`, e.g. `model.aoti.pt2`).
        device: `cpu` or `cuda`.
        preset: a name from `pt2kit.compile.PRESETS` (docs/compile.md lists their settings).
        dtype: `bf16`, `fp16` or `fp32`: cast floating weights first (computing in that dtype); None keeps them.
        low_precision_io: with `dtype`, the package takes and returns `dtype` tensors; by default it keeps the
            program's input and output dtypes and casts inside (`pt2kit.compile.dtype.CastInside`).
        quantize: a scheme from `pt2kit.compile.quantize.SCHEMES` (`int8-dynamic`, ...): quantize the linear layers
            with torchao first (needs `pip install 'pt2kit[quant]'`); on CUDA the float parts default to bf16.
        use_cache: reuse an identical earlier build from the cache (`PT2KIT_CACHE_DIR`).
        cache_dir: the cache folder (default `default_cache_dir()`).
        inductor_configs: more `torch._inductor.config` settings, laid over the preset's (`pt2kit tune` uses this).
        external_weights: `auto` (a blob outside the `.so` from `PT2KIT_EXTERNAL_WEIGHTS_BYTES`, default 1 GB), `on`
            (a blob), `tensors` (one file per tensor: the lowest build memory and the fastest load; plain torch loads
            it with `load_pt2(path, load_weights_from_disk=True)`, see `pt2kit.compile.external`), `off`.
        release_eager: with a `Target` source, move its model's weights to the meta device once the program to build
            holds its own copy (after the move to CUDA), so the build does not keep two copies in host memory. The
            model is unusable afterwards. Nothing is released while the program shares the model's tensors (on CPU).

    Returns:
        A `CompileResult` (path, seconds, size, whether the cache hit).

    Raises:
        UsageError: bad device, preset, dtype, scheme or output name; no CUDA device for `cuda`; torchao missing.
        ExportFailed: the quantization scheme cannot be exported (one line naming the scheme and the reason).
        ArtifactError: the source `.pt2` is missing or corrupt.

    Example:
        >>> result = pt2kit.compile_package("model.pt2", "model.aoti.pt2", preset="cpu-freeze")
        >>> pt2kit.load(result.path)(torch.randn(4, 16))
    """
    start = time.perf_counter()
    output = Path(output)
    if device not in DEVICES:
        raise UsageError(f"unknown device `{device}`; use `--device cpu` or `--device cuda`")
    if not output.name.endswith(".pt2"):
        raise UsageError(f"output `{output}` must end in .pt2 (AOTInductor requires it); e.g. `-o {output.stem}.aoti.pt2`")
    chosen = get_preset(preset, device)
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("`--device cuda` needs a CUDA GPU and a CUDA build of torch, and this machine has neither; use `--device cpu`")
    cast = DType.parse(dtype) if dtype is not None else None
    scheme = get_scheme(quantize, device) if quantize is not None else None
    if scheme is not None:
        import_torchao()  # a missing extra fails before the program is read
        cast = cast or scheme.base_dtype(device)
        scheme.check_settings(device, cast, {**chosen.inductor_configs, **(inductor_configs or {})})
    if low_precision_io and cast is None:
        raise UsageError("`--low-precision-io` needs a lower precision to expose; add e.g. `--dtype bf16`")
    io = "low" if low_precision_io else "model"
    external_weights = ExternalWeights.parse(external_weights)
    ep, manifest = _program_and_manifest(source)
    if scheme is not None:
        with progress.stage(f"quantize ({scheme.name}) with torchao"):
            ep, manifest = quantize_program(ep, manifest, scheme, device, dtype=cast, io=io)
    elif cast is not None:
        with progress.stage(f"convert to {cast}"):
            ep, manifest = convert_program(ep, manifest, cast, io=io)
    if device == "cuda":
        from torch.export.passes import move_to_device_pass

        with progress.stage("move to cuda"):
            # an explicit index: "cuda" would not match the "cuda:0" of the moved tensors in export's device asserts
            ep = move_to_device_pass(ep, f"cuda:{torch.cuda.current_device()}")
    released = release_eager and isinstance(source, Target) and _release_eager(source.module, ep)
    with progress.stage("hash program"):
        _, weights_bytes, weights = weights_summary(ep)
        settings = {**chosen.inductor_configs, **(scheme.inductor_configs(device, cast) if scheme else {}),
                    **external_settings(external_weights, weights_bytes), **(inductor_configs or {})}
        key = build_key(program_digest(ep, weights), settings, device,
                        (cast.value if cast else None) if scheme is None else f"{cast.value if cast else 'fp32'}+{scheme.name}")
    layout = weights_layout(settings)
    cache = BuildCache(cache_dir)
    entry = cache.get(key) if use_cache else None
    if entry is not None:
        with progress.stage("copy from build cache"), atomic_path(output) as tmp:
            shutil.copyfile(entry.path, tmp)
        return CompileResult(output, time.perf_counter() - start, output.stat().st_size, True, chosen.name, device,
                             MappingProxyType(settings), cast.value if cast else None, entry.build_seconds, key,
                             scheme.name if scheme else None, layout, weights_bytes, released)
    with atomic_path(output) as tmp:
        build_start = time.perf_counter()
        with progress.stage(f"compile with AOTInductor ({chosen.name}, {device})"):
            _aoti_compile(ep, tmp, settings)
        build_seconds = time.perf_counter() - build_start
        with progress.stage("write manifest"):
            metadata = _aoti_metadata(tmp)
            aoti = {
                "device": device, "preset": chosen.name, "inductor_configs": settings, "dtype": cast.value if cast else None,
                "io": io if cast else None, "quantize": scheme.name if scheme else None, "cpu_isa": metadata.get("AOTI_CPU_ISA", ""), "compute_capability": metadata.get("AOTI_COMPUTE_CAPABILITY", ""),
                "machine": metadata.get("AOTI_MACHINE", ""), "torch_version": torch.__version__, "build_key": key,
                "external_weights": layout != "so", "weights_bytes": weights_bytes, "weights_layout": layout,
            }
            add_manifest(tmp, manifest.replace(torch_version=torch.__version__, extra={**manifest.extra, "aoti": aoti}))
        if use_cache:
            with progress.stage("store in build cache"):
                cache.put(key, tmp, build_seconds)
    return CompileResult(output, time.perf_counter() - start, output.stat().st_size, False, chosen.name, device,
                         MappingProxyType(settings), cast.value if cast else None, build_seconds, key,
                         scheme.name if scheme else None, layout, weights_bytes, released)

