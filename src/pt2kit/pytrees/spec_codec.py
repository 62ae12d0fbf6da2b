"""Constants kept in a program's pytree spec, as JSON: what `pt2kit.pytrees.types` stores for the
attributes it does not make program inputs or outputs (a dtype, a device, a class, an enum, a string)
so that `torch.export.save` can write the spec and `torch.export.load` can read it back.

    >>> decode(encode((torch.float16, torch.device("cpu"))))
    (torch.float16, device(type='cpu'))
"""

from __future__ import annotations

import enum
import sys
from typing import Any

import torch

from pt2kit.errors import ArtifactError
from pt2kit.pytrees.trust import MODULE_NAME, import_named

# every dtype torch has, read from the module's namespace (not through its lazy `__getattr__`)
_DTYPES = {name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}


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
        cls = import_type(payload)
        if not issubclass(cls, enum.Enum):
            raise ArtifactError(f"the program's pytree spec names `{payload}` as an enum, and it is not one; export the model again")
        return cls[value["name"]]
    if tag == "dtype":
        if payload not in _DTYPES:
            raise ArtifactError(f"the program's pytree spec names {str(payload)[:40]!r} as a dtype, and it is not one; export the model again")
        return _DTYPES[payload]
    if tag == "device":
        return torch.device(str(payload))
    if tag == "type":
        return import_type(payload)
    if tag in ("tuple", "list"):
        items = [decode(v) for v in payload]
        return tuple(items) if tag == "tuple" else items
    return {k: decode(v) for k, v in payload}


def type_name(cls: type) -> str:
    """`module.QualName` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_type(name: str, source: str = "the program") -> type:
    """`pkg.mod.Outer.Inner` -> the class: the longest module prefix that is imported or may be imported
    (`pt2kit.pytrees.trust`), then attributes.

    Raises:
        ImportError: no prefix can be found (the caller may use a stand-in).
        UntrustedImportError: a prefix could be imported but is not trusted (importing runs its code).
        ArtifactError: the name is not a class name, or names something that is not a plain class.
    """
    if not isinstance(name, str) or not MODULE_NAME.match(name) or "." not in name:
        raise ArtifactError(f"{source} names {str(name)[:80]!r} as a class, which is not a `module.Class` name; "
                            "the file was modified or damaged, export the model again")
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:i])) or import_named(".".join(parts[:i]), source)
        if module is None:
            continue
        obj: Any = module
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        if not isinstance(obj, type):
            raise ArtifactError(f"{source} names `{name}` as a class, and it is a {type(obj).__name__}; export the model again")
        if obj.__module__ == "builtins" or any("__del__" in vars(k) for k in obj.__mro__[:-1]):
            raise ArtifactError(f"{source} names `{name}` as a container type; pt2kit does not rebuild builtins or objects "
                                "with a finalizer (`__del__`) from a file; export the model again")
        return obj
    raise ImportError(f"cannot import `{name}`")


__all__ = ["decode", "encode", "import_type", "type_name"]
