"""Non-pytree types in a model's inputs and outputs: find them, register them, restore them at load.

`torch.export` flattens inputs and outputs with `torch.utils._pytree`; an object of a type it does
not know (a transformers `DynamicCache`, a user's own dataclass or result object) stops the export
with "Found <class ...> in output, which is not a known type". pt2kit runs the model eagerly once,
walks what it returned, and registers every such type as a pytree node that flattens by attribute:
values holding tensors or numbers become children (graph inputs/outputs), everything else (a dtype, a
device, a class, a string) is kept in the spec as a constant. The program then returns the same
object eager returned. The manifest records each registration so `pt2kit.load` can repeat it in a
process that never saw the model's source.

    >>> reports = find_non_pytree(model(**inputs))        # detection only (diagnose uses this)
    >>> reports = register_pytree_types(model(**inputs))   # detection + registration
"""

from __future__ import annotations

import dataclasses
import enum
import types
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch.utils import _pytree as pytree

from pt2kit.pytrees.nodes import DATA_LEAVES, PREFIX, attributes, register_attribute_node, slot_names
from pt2kit.pytrees.spec_codec import encode, import_type, type_name
from pt2kit.pytrees.trust import import_named

_PRIMITIVE_LEAVES = DATA_LEAVES + (str, bytes, complex, torch.dtype, torch.device, torch.layout,
                                    torch.memory_format, type, enum.Enum, type(Ellipsis), slice, range,
                                    types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType)
# torch's, the standard library's and pt2kit's own containers need no import at load time
_BUILTIN_MODULES = ("builtins", "collections", "torch", "typing")


@dataclass(frozen=True)
class TypeReport:
    """One type in a model's inputs or outputs that `torch.utils._pytree` does not know.

    Attributes:
        type_name: `module.QualName` of the type.
        path: where it was first seen, e.g. `output['cache']` or `output['cache'].layers[0]`.
        supported: True when pt2kit can register it (it flattens by attribute).
        registered: True once pt2kit registered it in this process.
        reason: why it cannot be registered (empty when supported).
    """

    type_name: str
    path: str
    supported: bool
    registered: bool = False
    reason: str = ""

    def __str__(self) -> str:
        if self.registered:
            return f"registered `{self.type_name}` (at {self.path}) as a pytree node, flattened by attribute"
        if self.supported:
            return f"`{self.type_name}` at {self.path} is not a pytree type; pt2kit export registers it automatically"
        return (f"`{self.type_name}` at {self.path} is not a pytree type and cannot be flattened by attribute ({self.reason}); "
                f"register it yourself: torch.utils._pytree.register_pytree_node({self.type_name.rpartition('.')[2]}, flatten_fn, unflatten_fn, "
                f"serialized_type_name={self.type_name!r})")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def record(self) -> dict:
        """The manifest entry `pt2kit.load` uses to register the type again."""
        return {"type": self.type_name, "serialized_name": PREFIX + self.type_name, "strategy": "attributes", "path": self.path}


def find_non_pytree(tree: Any, root: str = "output") -> list[TypeReport]:
    """Every type in `tree` that `torch.utils._pytree` treats as an opaque leaf but is not a plain value.

    Looks inside such objects' attributes too (a cache holds a list of layer objects), so the list is
    complete for one call of `register_pytree_types`. Registers nothing.

    Args:
        tree: a model's outputs (or `(args, kwargs)` with `root="input"`).
        root: the name the paths in the reports start with.

    Returns:
        One `TypeReport` per type, in the order first seen.

    Example:
        >>> [r.type_name for r in find_non_pytree(gpt2(ids, use_cache=True))]
        ['transformers.cache_utils.DynamicCache', 'transformers.cache_utils.DynamicLayer']
    """
    found: dict[type, TypeReport] = {}
    _walk(tree, root, found, set())
    return list(found.values())


def register_pytree_types(tree: Any, root: str = "output") -> list[TypeReport]:
    """Register every supported non-pytree type in `tree` (see `find_non_pytree`) as a pytree node.

    Registration is process-wide, as torch's own is. A type already registered (by the user or a
    library) is left as it is and not reported.

    Returns:
        The reports, with `registered=True` on each type registered now.
    """
    found: dict[type, TypeReport] = {}
    _walk(tree, root, found, set())
    reports = []
    for cls, report in found.items():
        if report.supported:
            register_attribute_node(cls)  # the live object's class: nothing is imported by name
            report = dataclasses.replace(report, registered=True)
        reports.append(report)
    return reports


def spec_imports(spec: pytree.TreeSpec) -> list[str]:
    """Modules whose import registers the third-party pytree types a spec uses (e.g. `transformers.modeling_outputs`)."""
    modules: dict[str, None] = {}
    for t in _spec_types(spec):
        name = getattr(t, "__module__", "") or ""
        if name and not _is_ours(t) and name.split(".")[0] not in _BUILTIN_MODULES and not name.startswith("pt2kit"):
            modules.setdefault(name)
    return list(modules)


def restore_registrations(records: list[dict] | tuple[dict, ...], imports: list[str] | tuple[str, ...] = (),
                          source: str = "the file") -> list[str]:
    """Repeat the registrations a manifest records, before its program is loaded.

    Imports each module in `imports` (they register their own types on import) if it is imported already or
    trusted (`pt2kit.pytrees.trust`). A recorded type whose module cannot be found here gets a stand-in type, so
    the program still loads: such an output comes back as a plain object with the same attributes.

    Args:
        records: the manifest's `pytree_types`.
        imports: the manifest's `pytree_imports`.
        source: names the file in errors and notes.

    Returns:
        Notes on what could not be restored exactly (empty when everything was).

    Raises:
        UntrustedImportError: a module the file names could be imported but is not trusted; nothing was imported.
    """
    notes = []
    for name in imports:
        if import_named(name, source) is None:
            notes.append(f"module `{name}` named by {source} cannot be imported here; outputs of its types will not load")
    for record in records:
        serialized = record.get("serialized_name") or PREFIX + record["type"]
        if serialized in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE:
            continue
        try:
            cls = import_type(record["type"], source)
        except (ImportError, AttributeError):
            cls = type(record["type"].rpartition(".")[2], (_StandIn,), {"__module__": "pt2kit.pytrees.types"})
            notes.append(f"`{record['type']}` is not importable here; it comes back as a stand-in object with the same attributes")
            register_attribute_node(cls, serialized)
            continue
        if cls not in pytree.SUPPORTED_NODES:
            register_attribute_node(cls, serialized)
    return notes


def register_model_types(module: torch.nn.Module, args: tuple, kwargs: dict, parameters: list[str] | None = None) -> list[TypeReport]:
    """Register the non-pytree types in a model's inputs and in what one eager call returns.

    This is what `export_program` runs before capture. An eager failure is not raised here: the
    capture that follows runs the model eagerly again and reports it with the user's line.

    Returns:
        One report per type found (already-registered types are not reported).
    """
    parameters = list(parameters or [])
    reports = []
    for i, value in enumerate(args):
        reports += register_pytree_types(value, parameters[i] if i < len(parameters) else f"args[{i}]")
    for name, value in kwargs.items():
        reports += register_pytree_types(value, name)
    try:
        with torch.no_grad():
            outputs = module(*args, **kwargs)
    except Exception:  # capture reports eager failures itself
        return reports
    return reports + register_pytree_types(outputs, "output")


def manifest_fields(program: torch.export.ExportedProgram) -> dict[str, tuple]:
    """`pytree_types` and `pytree_imports` for the manifest of `program`, read from its call specs.

    Read from the program rather than from this export's reports, so a type registered by an earlier
    export in the same process is still recorded.
    """
    records: dict[str, dict] = {}
    imports: dict[str, None] = {}
    for spec in (program.call_spec.in_spec, program.call_spec.out_spec):
        if spec is None:
            continue
        for cls in _spec_types(spec):
            if _is_ours(cls):
                records.setdefault(type_name(cls), {
                    "type": type_name(cls), "serialized_name": PREFIX + type_name(cls), "strategy": "attributes",
                })
        imports.update(dict.fromkeys(spec_imports(spec)))
    return {"pytree_types": tuple(records.values()), "pytree_imports": tuple(imports)}


def _spec_types(spec: pytree.TreeSpec) -> Iterator[type]:
    if spec.is_leaf():
        return
    yield spec.type
    for child in (spec.children() if hasattr(spec, "children") else spec.children_specs):
        yield from _spec_types(child)


class _StandIn:
    """Takes the place of a recorded type that cannot be imported at load time."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


# --- detection ---------------------------------------------------------------------------------

def _walk(obj: Any, path: str, found: dict[type, TypeReport], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if _is_ours(type(obj)):  # registered earlier: its attributes may hold types not registered yet
        for name, value in attributes(obj):
            _walk(value, f"{path}.{name}", found, seen)
        return
    if _is_node(obj):
        for key, child in _children_with_keys(obj):
            _walk(child, path + pytree.keystr((key,)), found, seen)
        return
    if isinstance(obj, _PRIMITIVE_LEAVES) or obj is None:
        return
    cls = type(obj)
    if cls not in found:
        reason = _unsupported_reason(obj)
        found[cls] = TypeReport(type_name(cls), path, not reason, reason=reason)
    for name, value in attributes(obj):
        _walk(value, f"{path}.{name}", found, seen)


def _is_ours(cls: type) -> bool:
    node = pytree.SUPPORTED_SERIALIZED_TYPES.get(cls)
    return node is not None and str(node.serialized_type_name).startswith(PREFIX)


def _is_node(obj: Any) -> bool:
    return not pytree.tree_structure(obj, is_leaf=lambda x: x is not obj).is_leaf()


def _children_with_keys(obj: Any) -> list[tuple[Any, Any]]:
    pairs, _ = pytree.tree_flatten_with_path(obj, is_leaf=lambda x: x is not obj)
    return [(path[0], child) for path, child in pairs]


def _unsupported_reason(obj: Any) -> str:
    cls = type(obj)
    if isinstance(obj, torch.nn.Module):
        return "an nn.Module; return its tensors instead"
    if callable(obj) and not hasattr(obj, "__dict__"):
        return "a function or builtin object"
    if not hasattr(obj, "__dict__") and not slot_names(cls):
        return "it has neither __dict__ nor __slots__"
    if "<locals>" in cls.__qualname__:
        return "it is defined inside a function, so it cannot be imported by name at load time"
    for name, value in attributes(obj):
        if not _is_data_shaped(value):
            try:
                encode(value)
            except TypeError as exc:
                return f"attribute `{name}`: {exc}"
    return ""


def _is_data_shaped(value: Any) -> bool:
    """Whether `value` will hold only graph values once nested types are registered."""
    if isinstance(value, DATA_LEAVES) and not isinstance(value, enum.Enum):
        return True
    if _is_node(value):
        return all(_is_data_shaped(c) for _, c in _children_with_keys(value))
    # an object that will be registered itself (its own problems are reported on its own line)
    return not isinstance(value, _PRIMITIVE_LEAVES) and value is not None and (hasattr(value, "__dict__") or bool(slot_names(type(value))))



__all__ = [
    "TypeReport", "find_non_pytree", "manifest_fields", "register_model_types", "register_pytree_types",
    "restore_registrations", "spec_imports",
]
