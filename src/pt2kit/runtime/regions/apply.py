"""`apply_regions`: swap the compiled regions of an archive into a model built by the user's own code.

Each region replaces its submodule's `forward` (the module object, its parameters and hooks stay where they
were). A call whose inputs fit the region's contract runs the compiled code; any other call (a shape outside
the contract, another dtype or device, training mode, inputs that need gradients) runs the original `forward`,
with one `RegionFallbackWarning` per region.
"""

from __future__ import annotations

import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pt2kit.artifact.contract import bind_inputs, check_inputs
from pt2kit.artifact.package import ArtifactKind
from pt2kit.errors import ArtifactError, InputMismatchError, UsageError
from pt2kit.artifact.regions.archive import RegionEntry, RegionManifest, extract_package, read_manifest, read_weights
from pt2kit.runtime.regions.blocks import load_weights, module_constants, open_package

WEIGHTS = ("archive", "module")


class RegionFallbackWarning(UserWarning):
    """A compiled region ran its eager `forward` because a call did not fit (warned once per region)."""


class RegionWeightsWarning(UserWarning):
    """A region runs with the archive's weights while its module holds other values."""


class CompiledRegion:
    """Stands in for one submodule's `forward`: the compiled package when the inputs fit, else the original."""

    def __init__(self, module: nn.Module, entry: RegionEntry, runner, constants: dict[str, torch.Tensor], device: str):
        self.path = entry.path
        self.entry = entry
        self.contract = entry.contract
        # the archive's device: a region's contract is its exported program's manifest, which names no device
        # (reading it there sent every call of a CUDA archive to eager, seen on the GPU machine)
        self.device = device
        self.eager_forward = type(module).forward.__get__(module)
        self._module = weakref.ref(module)
        self._runner = runner
        self._constants = constants  # the loader points at these tensors (user_managed): keep them alive
        self.compiled_calls = 0
        self.eager_calls = 0
        self.warned = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves, reason = self._fit(args, kwargs)
        if reason is None:
            self.compiled_calls += 1
            return self._runner.run_flat(leaves)
        self.eager_calls += 1
        if not self.warned:
            self.warned = True
            warnings.warn(f"pt2kit: region `{self.path or '(model)'}` runs eagerly: {reason} (warned once per region)",
                          RegionFallbackWarning, stacklevel=3)
        return self.eager_forward(*args, **kwargs)

    def _fit(self, args: tuple, kwargs: dict) -> tuple[list, str | None]:
        """The inputs in the package's order, and why they cannot run compiled (None: they can)."""
        module = self._module()
        if module is not None and module.training:
            return [], "the module is in training mode (regions are compiled for inference; call `model.eval()`)"
        try:
            leaves = bind_inputs(self.contract, list(args), dict(kwargs))
            check_inputs(self.contract, leaves)
        except InputMismatchError as exc:
            return [], f"its inputs do not fit the region's contract ({exc})"
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                if leaf.device.type != self.device:
                    return leaves, f"an input is on {leaf.device}, the region was compiled for {self.device}"
                if leaf.requires_grad and torch.is_grad_enabled():
                    return leaves, "an input requires grad and compiled regions do not record autograd (run under `torch.no_grad()`)"
        return leaves, None

    @property
    def runner(self):
        """The loaded package (`pt2kit.runtime.loader.AotiRunner`), without the contract checks and fallback."""
        return self._runner

    def __reduce__(self):
        raise UsageError(f"a model with compiled regions (here `{self.path}`) cannot be copied or pickled; copy or save the "
                         "model first, then call `pt2kit.apply_regions` on the copy")

    def __repr__(self) -> str:
        return f"CompiledRegion({self.path!r}, group={self.entry.group}, compiled_calls={self.compiled_calls}, eager_calls={self.eager_calls})"


def apply_regions(model: nn.Module, path: str | Path, *, weights: str = "archive", device_index: int = -1) -> nn.Module:
    """Swap the compiled regions of a region archive into `model` (in place) and return it.

    Args:
        model: the model, built by your own code, of the class the archive was built from.
        path: an archive from `pt2kit compile TARGET --partial -o PATH`.
        weights: `archive` runs each region with the weights stored in the archive (a warning names a region
            whose module holds other values); `module` runs it with the module's own current tensors, no copy
            (for a model that loaded a newer checkpoint of the same architecture).
        device_index: the CUDA device for a CUDA archive (-1: the current one).

    Returns:
        `model`, whose compiled submodules now run their regions; `regions_of(model)` lists them.

    Raises:
        ArtifactError: not a region archive, built for another torch or machine, or `model` lacks a region's
            submodule (or it has another class).
        UsageError: an unknown `weights` choice.

    Example:
        >>> model = pt2kit.apply_regions(build_model().eval(), "model.regions.pt2")
        >>> with torch.no_grad(): model(x)
    """
    if weights not in WEIGHTS:
        raise UsageError(f"unknown weights `{weights}`; use `weights=\"archive\"` or `weights=\"module\"`")
    path = Path(path)
    manifest = read_manifest(path)
    modules = _find_modules(model, manifest, path)
    regions: list[tuple[nn.Module, CompiledRegion]] = []
    # the loader unpacks its package into its own folder, so the copies taken out of the archive can go at once
    with tempfile.TemporaryDirectory(prefix="pt2kit-regions-") as folder:
        for entry, module in zip(manifest.regions, modules):
            package = extract_package(path, entry.package, Path(folder))
            stored = read_weights(path, entry)
            if weights == "module":
                constants = module_constants(module, list(stored), stored)
            else:
                constants = stored
                _warn_if_weights_differ(module, stored, entry)
            runner = open_package(package, entry.contract, device_index)
            held = load_weights(runner, constants, manifest.device, device_index)
            regions.append((module, CompiledRegion(module, entry, runner, held, manifest.device)))
    for module, region in regions:  # installed only once every region loaded: never a half-applied model
        previous = module.__dict__.get("forward")
        if isinstance(previous, CompiledRegion):
            region.eager_forward = previous.eager_forward
        module.forward = region
    return model


def regions_of(model: nn.Module) -> dict[str, CompiledRegion]:
    """The compiled regions installed in `model`, by module path."""
    return {name: m.__dict__["forward"] for name, m in model.named_modules() if isinstance(m.__dict__.get("forward"), CompiledRegion)}


class RegionsArtifact:
    """A user's module with an archive's regions applied, shaped like `pt2kit.load`'s `Artifact` for `verify_outputs`."""

    kind = ArtifactKind.REGIONS
    manifest = None  # the archive has no whole-model contract: verify draws inputs of the example's shapes
    program = None

    def __init__(self, module: nn.Module, path: str | Path):
        import copy

        self.path = Path(path)
        self.region_manifest: RegionManifest = read_manifest(self.path)
        self.device = self.region_manifest.device
        self.module = apply_regions(copy.deepcopy(module).eval(), self.path)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def summary(self) -> str:
        """How the regions ran: compiled and eager calls of each."""
        regions = regions_of(self.module)
        compiled = sum(r.compiled_calls for r in regions.values())
        eager = [f"`{p or '(model)'}` {r.eager_calls}" for p, r in regions.items() if r.eager_calls]
        text = f"{len(regions)} regions ran {compiled} calls compiled"
        return text + (f"; eager fallbacks: {', '.join(eager)}" if eager else "; none fell back to eager")


def _find_modules(model: nn.Module, manifest: RegionManifest, path: Path) -> list[nn.Module]:
    found, problems = [], []
    for entry in manifest.regions:
        try:
            module = model.get_submodule(entry.path)
        except AttributeError:
            problems.append(f"`{entry.path}` is missing")
            continue
        if type(module).__qualname__ != entry.module_class:
            problems.append(f"`{entry.path}` is a {type(module).__qualname__}, the archive has a {entry.module_class}")
        found.append(module)
    if problems:
        raise ArtifactError(f"`{path}` was built from a {manifest.model_class} ({manifest.target}) and this "
                            f"{type(model).__qualname__} does not match: {'; '.join(problems[:4])}; pass the model the archive was built from")
    return found


def _warn_if_weights_differ(module: nn.Module, stored: dict[str, torch.Tensor], entry: RegionEntry) -> None:
    state = module.state_dict()
    differ = [k for k, v in stored.items() if k in state and (state[k].shape != v.shape or not torch.equal(state[k].detach().cpu(), v))]
    if differ:
        warnings.warn(f"pt2kit: region `{entry.path}` runs with the archive's weights, but the module holds other values for "
                      f"{', '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}; pass `weights=\"module\"` to use the module's",
                      RegionWeightsWarning, stacklevel=3)
