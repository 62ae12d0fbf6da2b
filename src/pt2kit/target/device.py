"""`--device`: the device text a user gives, checked once against this machine."""

from __future__ import annotations

import re

from pt2kit.errors import UsageError

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(text: str, flag: str = "--device") -> str:
    """`cpu`, `cuda` or `cuda:N`, checked against this machine; returns `cpu` or `cuda:N` (an explicit index).

    Raises:
        UsageError: not a device pt2kit runs on, no CUDA GPU for `cuda`, or no GPU of that index.

    Example:
        >>> parse_device("cuda")   # on a one-GPU machine
        'cuda:0'
    """
    m = _DEVICE.match(str(text).strip())
    if m is None or (m[1] == "cpu" and m[2] is not None):
        raise UsageError(f"`{flag} {text}` is not a device; use `cpu`, `cuda` or `cuda:N` (N a GPU index, e.g. `cuda:0`)")
    if m[1] == "cpu":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"`{flag} {text}`: this torch ({torch.__version__}) sees no CUDA GPU; use `{flag} cpu`")
    count = torch.cuda.device_count()
    index = int(m[2]) if m[2] is not None else torch.cuda.current_device()
    if index >= count:
        raise UsageError(f"`{flag} {text}`: this machine has {count} CUDA GPU(s), `cuda:0` to `cuda:{count - 1}`; pick one of those")
    return f"cuda:{index}"


__all__ = ["parse_device"]
