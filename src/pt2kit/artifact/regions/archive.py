"""The region archive: one zip file holding the region packages, each block's weights and a manifest.

    pt2kit/regions.json          RegionManifest: region -> module path, contract, package, weights
    packages/<group>.pt2         one AOTInductor package per group, built without its weights inside
    weights/<region>.safetensors each block's constants, loaded into its group's package at run time

Written atomically (`pt2kit.artifact.package.atomic_path`); `artifact_kind` reports it as `regions`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from pt2kit.artifact.manifest import Manifest
from pt2kit.artifact.package import REGIONS_NAME, atomic_path
from pt2kit.errors import ArtifactError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RegionEntry:
    """One compiled block: where it sits in the model, what it accepts, and which package and weights it uses."""

    path: str
    module_class: str
    group: str
    package: str  # the archive entry of its group's package
    weights: str  # the archive entry of its constants
    weights_sha256: str
    contract: Manifest
    seconds: float  # eager time inside the block per run, when compiled
    share: float
    calls: int

    def to_json(self) -> dict:
        data = asdict(self)
        data["contract"] = self.contract.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RegionEntry":
        return cls(**{**data, "contract": Manifest.from_json(data["contract"])})


@dataclass(frozen=True)
class EagerEntry:
    """A part of the model left in Python, and why (`blockers` in `pt2kit diagnose`'s JSON format)."""

    path: str
    module_class: str
    share: float
    reason: str
    blockers: tuple[dict, ...] = ()

    def to_json(self) -> dict:
        return {**asdict(self), "blockers": list(self.blockers)}

    @classmethod
    def from_json(cls, data: dict) -> "EagerEntry":
        return cls(**{**data, "blockers": tuple(data.get("blockers", ()))})


@dataclass(frozen=True)
class RegionManifest:
    """The archive's manifest (`pt2kit/regions.json`)."""

    target: str
    model_class: str
    device: str
    torch_version: str
    pt2kit_version: str
    eager_seconds: float  # the whole model's eager time per run, when compiled
    regions: tuple[RegionEntry, ...]
    eager: tuple[EagerEntry, ...] = ()
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def share(self) -> float:
        return sum(r.share for r in self.regions)

    def to_json(self) -> dict:
        return {**asdict(self), "regions": [r.to_json() for r in self.regions], "eager": [e.to_json() for e in self.eager],
                "kind": "pt2kit-regions"}

    @classmethod
    def from_json(cls, data: dict) -> "RegionManifest":
        data = {k: v for k, v in data.items() if k != "kind"}
        return cls(**{**data, "regions": tuple(RegionEntry.from_json(r) for r in data["regions"]),
                      "eager": tuple(EagerEntry.from_json(e) for e in data.get("eager", ()))})


def weights_blob(tensors: dict[str, torch.Tensor]) -> tuple[bytes, str]:
    """A block's constants as safetensors bytes (on the CPU, contiguous, unshared) and their SHA-256."""
    blob = save_safetensors({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})
    return blob, hashlib.sha256(blob).hexdigest()


def write_archive(path: str | os.PathLike, manifest: RegionManifest, packages: dict[str, Path], weights: dict[str, bytes]) -> Path:
    """Write the archive at `path` atomically: nothing is left there if any step fails."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(REGIONS_NAME, json.dumps(manifest.to_json(), indent=1, default=str))
            for name, file in packages.items():
                zf.write(file, name)
            for name, blob in weights.items():
                zf.writestr(name, blob)
    return Path(path)


def read_manifest(path: str | os.PathLike) -> RegionManifest:
    """The manifest of a region archive.

    Raises:
        ArtifactError: missing, not a zip, not a region archive, or a manifest this pt2kit cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"region archive `{path}` does not exist; build it with `pt2kit compile TARGET --partial -o {path.name}`")
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read(REGIONS_NAME))
    except KeyError:
        raise ArtifactError(f"`{path}` is not a region archive (no {REGIONS_NAME}); build one with `pt2kit compile TARGET --partial`") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArtifactError(f"`{path}` is corrupt or truncated ({exc}); build it again with `pt2kit compile TARGET --partial`") from None
    version = data.get("format_version", 0) if isinstance(data, dict) else 0
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ArtifactError(f"`{path}` was written by a newer pt2kit (format {version}); upgrade pt2kit")
    try:
        return RegionManifest.from_json(data)
    except ArtifactError as exc:
        raise ArtifactError(f"`{path}`: {exc}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:  # a file is data: any shape may come
        raise ArtifactError(f"the manifest of `{path}` is damaged ({exc}); build it again with `pt2kit compile TARGET --partial`") from None


def read_weights(path: Path, entry: RegionEntry) -> dict[str, torch.Tensor]:
    """One block's constants, checked against the SHA-256 the manifest recorded."""
    with zipfile.ZipFile(path) as zf:
        blob = zf.read(entry.weights)
    if hashlib.sha256(blob).hexdigest() != entry.weights_sha256:
        raise ArtifactError(f"the weights of region `{entry.path}` in `{path}` fail their checksum; build the archive again")
    return load_safetensors(blob)


def extract_package(path: Path, name: str, folder: Path) -> Path:
    """Copy one group's package out of the archive (the AOTInductor loader reads a file)."""
    out = folder / Path(name).name
    if not out.exists():
        with zipfile.ZipFile(path) as zf, zf.open(name) as src, open(out, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    return out
