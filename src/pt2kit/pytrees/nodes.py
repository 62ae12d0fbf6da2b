"""Register a class as a pytree node that flattens by attribute.

Children are the attributes that hold only tensors and numbers (graph values); every other attribute
(a dtype, a string, an enum, a class) rides in the context as a constant. `pt2kit.pytrees.types` decides
which classes need this; this module is the flattening itself.
"""

from __future__ import annotations

import enum
from typing import Any, Iterator

import torch
from torch.utils import _pytree as pytree

from pt2kit.pytrees.spec_codec import decode, encode, type_name

PREFIX = "pt2kit:"  # serialized type names of the nodes pt2kit registers start with this
# leaves torch.export passes through as they are (graph values or constants)
DATA_LEAVES = (torch.Tensor, torch.SymInt, torch.SymFloat, torch.SymBool, bool, int, float)


def slot_names(cls: type) -> list[str]:
    names = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else [s for s in slots if s not in ("__dict__", "__weakref__")]
    return names


def attributes(obj: Any) -> Iterator[tuple[str, Any]]:
    for name in slot_names(type(obj)):
        if hasattr(obj, name):
            yield name, getattr(obj, name)
    yield from getattr(obj, "__dict__", {}).items()


def _is_data(value: Any) -> bool:
    """A child (a program input/output) when it holds only tensors and numbers (plain or symbolic)."""
    leaves = pytree.tree_leaves(value)
    return all(isinstance(leaf, DATA_LEAVES) and not isinstance(leaf, enum.Enum) for leaf in leaves)


_NUMBER_KINDS = {torch.SymInt: "int", torch.SymFloat: "float", torch.SymBool: "bool", int: "int", float: "float", bool: "bool"}
_NUMBER_TYPES = {"int": int, "float": float, "bool": bool}


def _flatten(obj: Any) -> tuple[list[Any], Any]:
    """Children: tensors and numbers. Context: their names, the other attributes (constants), and which
    children are numbers (an AOTInductor package returns a number output as a 0-dim tensor; unflatten
    turns it back)."""
    names, children, constants, numbers = [], [], [], []
    for name, value in attributes(obj):
        if _is_data(value):
            names.append(name)
            children.append(value)
            mask = _number_mask(value)
            if _has_number(mask):
                numbers.append((name, mask))
        else:
            constants.append((name, value))
    return children, (tuple(names), tuple(constants), tuple(numbers))


def _flatten_with_keys(obj: Any):
    children, context = _flatten(obj)
    return [(pytree.GetAttrKey(name), child) for name, child in zip(context[0], children)], context


def _unflatten_for(cls: type):
    def unflatten(children, context):
        names, constants, numbers = context
        kinds = dict(numbers)
        obj = cls.__new__(cls)
        for name, value in list(zip(names, children)) + list(constants):
            if name in kinds:
                value = _restore_numbers(value, kinds[name])
            if hasattr(obj, "__dict__") and name not in slot_names(cls):
                obj.__dict__[name] = value
            else:
                object.__setattr__(obj, name, value)
        return obj

    return unflatten


def _number_mask(value: Any) -> Any:
    """The kind (`"int"`, ...) of each number in `value`, in its dict/list/tuple structure, as hashable
    tuples: `("d", ((key, mask), ...))`, `("l", (mask, ...))`; None where there is no number."""
    if type(value) in _NUMBER_KINDS:
        return _NUMBER_KINDS[type(value)]
    if type(value) is dict:
        return ("d", tuple((k, _number_mask(v)) for k, v in value.items()))
    if type(value) in (list, tuple):
        return ("l", tuple(_number_mask(v) for v in value))
    return None


def _has_number(mask: Any) -> bool:
    if isinstance(mask, str):
        return True
    if isinstance(mask, tuple) and len(mask) == 2:
        items = (m for _, m in mask[1]) if mask[0] == "d" else mask[1]
        return any(_has_number(m) for m in items)
    return False


def _restore_numbers(value: Any, mask: Any) -> Any:
    """Undo a runtime's numbers-as-0-dim-tensors where `mask` says eager had a number."""
    if isinstance(mask, str):
        return _NUMBER_TYPES[mask](value.item()) if isinstance(value, torch.Tensor) and value.dim() == 0 else value
    if not (isinstance(mask, tuple) and len(mask) == 2):
        return value
    if type(value) is dict and mask[0] == "d":
        kinds = dict(mask[1])
        return {k: _restore_numbers(v, kinds.get(k)) for k, v in value.items()}
    if type(value) in (list, tuple) and mask[0] == "l":
        return type(value)(_restore_numbers(v, m) for v, m in zip(value, mask[1]))
    return value


def _to_dumpable(context) -> Any:
    names, constants, numbers = context
    return {"children": list(names), "constants": [[name, encode(value)] for name, value in constants],
            "numbers": [[name, encode(mask)] for name, mask in numbers]}


def _from_dumpable(data) -> Any:
    return (tuple(data["children"]), tuple((name, decode(value)) for name, value in data["constants"]),
            tuple((name, decode(mask)) for name, mask in data.get("numbers", ())))


def register_attribute_node(cls: type, serialized_name: str | None = None) -> None:
    if cls in pytree.SUPPORTED_NODES:
        return
    pytree.register_pytree_node(
        cls, _flatten, _unflatten_for(cls),
        serialized_type_name=serialized_name or PREFIX + type_name(cls),
        to_dumpable_context=_to_dumpable, from_dumpable_context=_from_dumpable,
        flatten_with_keys_fn=_flatten_with_keys,
    )


__all__ = ["DATA_LEAVES", "PREFIX", "attributes", "register_attribute_node", "slot_names"]
