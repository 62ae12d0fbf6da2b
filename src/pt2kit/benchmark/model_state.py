"""What `bench` must leave as it found it: a model's mode flags, parameters, buffers and requires_grad.

`ModelState.capture(module)` records, for every submodule, its `training` flag, and for every
parameter and buffer the object itself, its `requires_grad` and a copy of its values (same device and
dtype). `changes()` lists what differs now, in words; `restore()` puts everything back (objects
reassigned, values, dtypes and devices copied back, flags reset). The harness checks after every
mode's build and first calls, so a mode that changes the model (as `torch.onnx.export` of a wrapper
in training mode once did: every BatchNorm then used batch statistics) is reported by name, and the
modes after it still run on the model the user gave.

Example:
    >>> state = ModelState.capture(model)
    >>> build_something(model)
    >>> changed = state.changes(); state.restore()
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pt2kit.benchmark.report import BenchMode, ModeOutcome, ModeStatus


@dataclass(frozen=True)
class _Tensor:
    owner: str  # the submodule's qualified name ("" for the model itself)
    attr: str  # its attribute name there
    kind: str  # "parameter" or "buffer"
    obj: torch.Tensor
    copy: torch.Tensor
    requires_grad: bool

    @property
    def name(self) -> str:
        return f"{self.owner}.{self.attr}" if self.owner else self.attr


@dataclass(frozen=True)
class ModelState:
    """A snapshot of one module's training flags, parameters and buffers (values copied)."""

    module: nn.Module
    training: tuple[tuple[str, nn.Module, bool], ...]
    tensors: tuple[_Tensor, ...]

    @classmethod
    def capture(cls, module: nn.Module) -> "ModelState":
        """Record `module`'s state now (copies every parameter and buffer, once)."""
        flags = tuple((name, sub, sub.training) for name, sub in module.named_modules(remove_duplicate=False))
        tensors = []
        seen: set[tuple[int, str]] = set()
        for owner, sub in module.named_modules(remove_duplicate=False):
            if (id(sub), "") in seen:
                continue
            seen.add((id(sub), ""))
            for kind, table in (("parameter", sub._parameters), ("buffer", sub._buffers)):
                for attr, value in table.items():
                    if value is not None:
                        with torch.no_grad():
                            copy = value.detach().clone()
                        tensors.append(_Tensor(owner, attr, kind, value, copy, value.requires_grad))
        return cls(module, flags, tuple(tensors))

    def changed_values(self) -> frozenset[str]:
        """Names of the parameters and buffers whose values (alone) differ from the snapshot."""
        return frozenset(t.name for t in self.tensors if (now := _current(self.module, t)) is t.obj
                         and now.dtype == t.copy.dtype and now.device == t.copy.device and now.shape == t.copy.shape
                         and not _same_values(now, t.copy))

    def changes(self, ignore_values: frozenset[str] = frozenset()) -> list[str]:
        """What differs from the snapshot, one short phrase each (empty: nothing changed).

        `ignore_values`: tensors whose new values are expected (a buffer the model's own forward updates).
        """
        found = []
        for was, now in ((False, "training"), (True, "eval")):
            flipped = [f"`{name or type(sub).__name__}`" for name, sub, w in self.training if w == was and sub.training != w]
            if flipped:
                found.append(f"{_some(flipped)} put in {now} mode")
        for t in self.tensors:
            now = _current(self.module, t)
            if now is not t.obj:
                found.append(f"{t.kind} `{t.name}` replaced by another object")
                continue
            if now.requires_grad != t.requires_grad:
                found.append(f"requires_grad of `{t.name}` {t.requires_grad} -> {now.requires_grad}")
            if now.dtype != t.copy.dtype or now.device != t.copy.device or now.shape != t.copy.shape:
                found.append(f"{t.kind} `{t.name}` became {_describe(now)} (was {_describe(t.copy)})")
            elif t.name not in ignore_values and not _same_values(now, t.copy):
                found.append(f"values of {t.kind} `{t.name}`")
        return found

    def restore(self) -> None:
        """Put every flag, tensor object, value and requires_grad back as captured."""
        for _, sub, was in self.training:
            sub.training = was
        with torch.no_grad():
            for t in self.tensors:
                owner = self.module.get_submodule(t.owner)
                table = owner._parameters if t.kind == "parameter" else owner._buffers
                table[t.attr] = t.obj
                if t.obj.dtype != t.copy.dtype or t.obj.device != t.copy.device or t.obj.shape != t.copy.shape:
                    t.obj.data = t.copy.clone()
                elif not _same_values(t.obj, t.copy):
                    t.obj.copy_(t.copy)
                if t.obj.requires_grad != t.requires_grad and t.obj.is_leaf:
                    t.obj.requires_grad_(t.requires_grad)


def _current(module: nn.Module, t: _Tensor) -> torch.Tensor | None:
    try:
        owner = module.get_submodule(t.owner)
    except AttributeError:
        return None
    table = owner._parameters if t.kind == "parameter" else owner._buffers
    return table.get(t.attr)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    # equal_nan: a buffer holding NaN on purpose has not changed
    return bool(torch.equal(a, b)) or bool(a.is_floating_point() and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)} on {t.device}"


def _some(names: list[str], shown: int = 3) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


class StateGuard:
    """Checks the prepared model after each mode's build and calls, restores it, and names the mode that changed it.

    A model whose own forward updates some buffers on every call is found once, by one eager call before
    any mode is built: the values of those buffers are then expected to change (a build that runs the
    model, a mode's call), so they are only restored; any other change is still held against the mode.
    """

    def __init__(self, module: torch.nn.Module, probe_inputs: tuple[tuple, dict], notes: list[str]):
        self.state = ModelState.capture(module)
        self.notes = notes
        args, kwargs = probe_inputs
        try:
            module(*args, **kwargs)
        except Exception:  # the eager failure is reported where the modes are called
            pass
        self.own = self.state.changed_values()
        own = self.state.changes()
        # anything else the forward itself changes (a mode flag, say): calls are then not held against a mode
        self.lenient = bool(self.state.changes(self.own))
        if own:
            self.state.restore()
            notes.append(f"the model changes its own state when called ({'; '.join(own)}); pt2kit restores it after "
                         "every mode's build and calls, so each mode starts from the state it was given")

    def after_build(self, mode: BenchMode) -> ModeOutcome | None:
        """CHANGED_MODEL for `mode` if building it changed the model (restored), else None."""
        return self._check(mode, "building it")

    def after_call(self, mode: BenchMode, doing: str) -> ModeOutcome | None:
        """Like `after_build`, for calls (`doing` says which); eager's own calls are only restored."""
        if self.lenient or mode is BenchMode.EAGER or not doing:
            self.state.restore()
            return None
        return self._check(mode, doing)

    def after_timing(self, bs: int) -> None:
        """After the interleaved timing (and memory probe) of every mode: restore; a change there cannot be
        pinned on one mode, so it is a note."""
        changed = self.state.changes(self.own)
        self.state.restore()
        if changed and not self.lenient:
            self.notes.append(f"the model changed while the modes were timed at batch {bs} ({'; '.join(changed)}); "
                              "pt2kit restored it")

    def _check(self, mode: BenchMode, doing: str) -> ModeOutcome | None:
        changed = self.state.changes(self.own)
        self.state.restore()
        if not changed:
            return None
        return ModeOutcome(mode, ModeStatus.CHANGED_MODEL, f"{doing} changed the model: {'; '.join(changed)} "
                           "(pt2kit restored it; this mode's figures are dropped)")


__all__ = ["ModelState", "StateGuard"]
