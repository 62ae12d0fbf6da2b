"""Constants kept in a program's pytree spec, as JSON: what `pt2kit.pytrees.types` stores for the
attributes it does not make program inputs or outputs (a dtype, a device, a class, an enum, a string)
so that `torch.export.save` can write the spec and `torch.export.load` can read it back.

    >>> decode(encode((torch.float16, torch.device("cpu"))))
    (torch.float16, device(type='cpu'))
"""

from __future__ import annotations

import enum
import importlib
from typing import Any

import torch


def encode(value: Any) -> Any:
    """A JSON-able form of `value`; raises TypeError for a value that has none (a function, a module)."""
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        return {"enum": type_name(type(value)), "name": value.name}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, type):
        return {"type": type_name(value)}
    if isinstance(value, (tuple, list)):
        return {type(value).__name__ if type(value) in (tuple, list) else "tuple": [encode(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return {"dict": [[k, encode(v)] for k, v in value.items()]}
    raise TypeError(f"a {type(value).__name__} cannot be stored in a program's spec")


def decode(value: Any) -> Any:
    """The value `encode` was given."""
    if not isinstance(value, dict):
        return value
    (tag, payload), *_ = value.items()
    if tag == "enum":
        return import_type(payload)[value["name"]]
    if tag == "dtype":
        return getattr(torch, payload)
    if tag == "device":
        return torch.device(payload)
    if tag == "type":
        return import_type(payload)
    if tag in ("tuple", "list"):
        items = [decode(v) for v in payload]
        return tuple(items) if tag == "tuple" else items
    return {k: decode(v) for k, v in payload}


def type_name(cls: type) -> str:
    """`module.QualName` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_type(name: str) -> type:
    """`pkg.mod.Outer.Inner` -> the class: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot import `{name}`")


__all__ = ["decode", "encode", "import_type", "type_name"]
