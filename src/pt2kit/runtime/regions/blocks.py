"""One block's compiled region: its group's package, opened once per block, with the block's own constants.

The packages are built with `aot_inductor.package_constants_in_so=False`, so the `.so` holds code only. Each
block opens its own loader on the shared package (a separate model container) and hands it the block's
tensors with `load_constants(..., user_managed=True)`: the loader uses them in place, without a copy, so the
region holds a reference to them for as long as it lives.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pt2kit.artifact.manifest import Manifest
from pt2kit.runtime.loader import AotiRunner, load_aoti
from pt2kit.errors import ArtifactError

TOLERANCE = {torch.float32: (1e-4, 1e-4), torch.float64: (1e-7, 1e-7), torch.float16: (1e-2, 1e-2), torch.bfloat16: (2e-2, 2e-2)}


def module_constants(module: nn.Module, fqns: list[str], fallback: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The tensors a package asks for (`get_constant_fqns`), taken from `module` by name.

    Parameters and buffers come from the state dict; other tensor attributes by attribute path; anything else
    (a constant export lifted) from `fallback`, the exported program's own.

    Raises:
        ArtifactError: a constant found nowhere.
    """
    state = module.state_dict()
    found: dict[str, torch.Tensor] = {}
    for fqn in fqns:
        value = state.get(fqn)
        if value is None:
            try:
                value = operator.attrgetter(fqn)(module)
            except AttributeError:
                value = (fallback or {}).get(fqn)
        if not isinstance(value, torch.Tensor):
            raise ArtifactError(f"the compiled region needs the constant `{fqn}`, which `{type(module).__name__}` does not have; "
                                "was the archive built from this model class?")
        found[fqn] = value.detach()
    return found


def open_package(package: Path, contract: Manifest, device_index: int = -1) -> AotiRunner:
    """Open a group's package for one block (checked against this machine first); its constants are still empty."""
    return load_aoti(package, contract, device_index)


def load_weights(runner: AotiRunner, constants: dict[str, torch.Tensor], device: str, device_index: int = -1) -> dict[str, torch.Tensor]:
    """Point the runner at one block's constants; returns the tensors it now uses, which the caller must keep alive."""
    wanted = runner.loader.get_constant_fqns()
    missing = sorted(set(wanted) - set(constants))
    if missing:
        raise ArtifactError(f"the weights for this region lack {', '.join(missing[:5])}; build the archive again")
    target = torch.device(device if device == "cpu" or device_index < 0 else f"{device}:{device_index}")
    held = {k: constants[k].to(target).contiguous() for k in wanted}
    # use_inactive=False, check_full_update=True, user_managed=True: the loader points at `held`, no copy
    runner.loader.load_constants(held, False, True, True)
    return held


def outputs_match(expected: Any, actual: Any) -> tuple[bool, float]:
    """Every output leaf equal within the dtype's tolerance; returns (ok, largest absolute difference)."""
    exp, exp_spec = torch.utils._pytree.tree_flatten(expected)
    act, act_spec = torch.utils._pytree.tree_flatten(actual)
    if len(exp) != len(act):
        return False, float("inf")
    worst = 0.0
    for e, a in zip(exp, act):
        if not isinstance(e, torch.Tensor):
            if e != a:
                return False, float("inf")
            continue
        if not isinstance(a, torch.Tensor) or a.shape != e.shape or a.dtype != e.dtype:
            return False, float("inf")
        a = a.to(e.device)
        if e.is_floating_point():
            atol, rtol = TOLERANCE.get(e.dtype, (1e-4, 1e-4))
            if e.numel():
                worst = max(worst, float((e - a).abs().nan_to_num(0.0).max()))
            if not torch.allclose(e, a, atol=atol, rtol=rtol, equal_nan=True):
                return False, worst
        elif not torch.equal(e, a):
            return False, float("inf")
    return True, worst
