"""Check a manifest read from a file before any of it is used: it is data, and may have been edited.

Every field gets its type and bounds checked, every size expression is parsed with the checked grammar of
`pt2kit.artifact.size_expr`, and every module or type name must be a dotted name (nothing is imported here;
`pt2kit.pytrees.trust` decides that later). A field that fails is one `ArtifactError` naming the field:

    error: the pt2kit manifest in `model.pt2` is damaged: `inputs[0].shape[1]` is not a size ...; export it again
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch.utils import _pytree as pytree

from pt2kit.artifact.size_expr import MAX_INT, SYMBOL, parse_size
from pt2kit.errors import ArtifactError
from pt2kit.pytrees.nodes import PREFIX
from pt2kit.pytrees.trust import MODULE_NAME
from pt2kit.target.inputs import CAST_DTYPES

DOTTED_NAME = MODULE_NAME  # `pkg.mod.Class`: dotted identifiers, no dunder part
_LEAF_KEYS = {"name", "kind", "dtype", "shape", "value", "value_range", "keyword"}
_DIM_KEYS = {"symbol", "name", "min", "max", "used_by"}
_RELATION_KEYS = {"input", "dim", "expr", "named", "min", "max"}
_TEXT_FIELDS = ("capture_mode", "target", "weights_sha256", "torch_version", "pt2kit_version", "created", "in_spec", "out_spec")
# every dtype name torch has (`float32`, `bfloat16`, `float8_e4m3fn`, ...), read without torch's lazy `__getattr__`
DTYPES = frozenset(name for name, value in vars(torch).items() if isinstance(value, torch.dtype))
MAX_TEXT = 1 << 20  # one string field (a pytree spec of a large model is long; nothing is longer)
MAX_ITEMS = 100_000  # one list field


class _Bad(Exception):
    def __init__(self, where: str, why: str):
        super().__init__(f"`{where}` {why}")


def check_manifest_data(data: Any, source: str = "the file") -> None:
    """Raise `ArtifactError` naming the first field of `data` (a manifest's JSON) that is not what pt2kit writes.

    Args:
        data: the parsed JSON.
        source: names the file in the message.
    """
    try:
        _check(data)
    except _Bad as exc:
        raise ArtifactError(f"the pt2kit manifest in {source} is damaged: {exc}; the file was modified or damaged, "
                            "export the model again") from None
    except ArtifactError as exc:  # a size expression refused by the parser: say which file
        raise ArtifactError(f"{source}: {exc}") from None


def _check(data: Any) -> None:
    _mapping(data, "manifest")
    for key in ("inputs", "outputs"):
        for i, leaf in enumerate(_items(data.get(key, []), key)):
            _leaf(leaf, f"{key}[{i}]")
    symbols = set()
    for i, dim in enumerate(_items(data.get("dims", []), "dims")):
        where = f"dims[{i}]"
        _mapping(dim, where, _DIM_KEYS, required=("symbol", "name", "min", "max"))
        if not isinstance(dim["symbol"], str) or not SYMBOL.match(dim["symbol"]):
            raise _Bad(f"{where}.symbol", "is not a size symbol (letters, digits, `_`)")
        symbols.add(dim["symbol"])
        _text(dim["name"], f"{where}.name", limit=200)
        _range(dim, where)
        for j, used in enumerate(_items(dim.get("used_by", []), f"{where}.used_by")):
            _text(used, f"{where}.used_by[{j}]", limit=1000)
    for i, rel in enumerate(_items(data.get("relations", []), "relations")):
        where = f"relations[{i}]"
        _mapping(rel, where, _RELATION_KEYS, required=tuple(_RELATION_KEYS))
        _text(rel["input"], f"{where}.input", limit=1000)
        _integer(rel["dim"], f"{where}.dim", 0, 64)
        parse_size(rel["expr"], f"`{where}.expr`")
        _text(rel["named"], f"{where}.named", limit=1000)
        _range(rel, where)
    for key in ("parameters", "notes", "pytree_imports"):
        for i, item in enumerate(_items(data.get(key, []), key)):
            _text(item, f"{key}[{i}]")
            if key == "pytree_imports" and not DOTTED_NAME.match(item):
                raise _Bad(f"{key}[{i}]", f"= {item[:80]!r} is not a module name")
    for i, record in enumerate(_items(data.get("pytree_types", []), "pytree_types")):
        _type_record(record, f"pytree_types[{i}]")
    for key in _TEXT_FIELDS:
        if data.get(key) is not None:
            _text(data[key], key)
    known = {PREFIX + r["type"] for r in data.get("pytree_types", [])}
    for key in ("in_spec", "out_spec"):
        if data.get(key):
            _spec(data[key], key, known, tuple(data.get("pytree_imports", [])))
    for key in ("parameter_count", "parameter_bytes", "format_version"):
        if key in data:
            _integer(data[key], key, 0, MAX_INT)
    for key in ("extra", "tuned", "load_options"):
        _mapping(data.get(key, {}), key)
    _extra(data.get("extra", {}))
    _load_options(data.get("load_options", {}))


def _leaf(leaf: Any, where: str) -> None:
    _mapping(leaf, where, _LEAF_KEYS, required=("name", "kind"))
    _text(leaf["name"], f"{where}.name", limit=1000)
    if leaf["kind"] not in ("tensor", "constant"):
        raise _Bad(f"{where}.kind", "must be `tensor` or `constant`")
    if leaf["kind"] == "tensor" and leaf.get("dtype") not in DTYPES:
        raise _Bad(f"{where}.dtype", f"= {str(leaf.get('dtype'))[:40]!r} is not a dtype name")
    shape = _items(leaf.get("shape", []), f"{where}.shape", limit=64)
    for d, size in enumerate(shape):
        if isinstance(size, str):
            parse_size(size, f"`{where}.shape[{d}]`")
        else:
            _integer(size, f"{where}.shape[{d}]", 0, MAX_INT)
    if leaf.get("value_range") is not None:
        bounds = _items(leaf["value_range"], f"{where}.value_range", limit=2)
        if len(bounds) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds):
            raise _Bad(f"{where}.value_range", "must be two finite numbers [low, high)")
    if not isinstance(leaf.get("keyword", False), bool):
        raise _Bad(f"{where}.keyword", "must be true or false")
    value = leaf.get("value")
    if isinstance(value, (list, dict)) or (isinstance(value, str) and len(value) > MAX_TEXT):
        raise _Bad(f"{where}.value", "must be a number, a string, true, false or null")


def _type_record(record: Any, where: str) -> None:
    _mapping(record, where, required=("type",))
    name = record["type"]
    if not isinstance(name, str) or not DOTTED_NAME.match(name) or "." not in name:
        raise _Bad(f"{where}.type", f"= {str(name)[:80]!r} is not a `module.Class` name")
    if record.get("serialized_name", PREFIX + name) != PREFIX + name:
        raise _Bad(f"{where}.serialized_name", f"must be `{PREFIX}{name}`")
    if record.get("strategy", "attributes") != "attributes":
        raise _Bad(f"{where}.strategy", "must be `attributes`")
    if record.get("path") is not None:
        _text(record["path"], f"{where}.path", limit=1000)


def _spec(text: str, where: str, known: set[str], imports: tuple[str, ...]) -> None:
    """A pytree spec (`treespec_dumps`): JSON whose node types torch knows, the manifest registers, or its imports do."""
    try:
        protocol, root = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        raise _Bad(where, "is not a pytree spec") from None
    stack, seen = [root], 0
    while stack:
        node = stack.pop()
        seen += 1
        if not isinstance(node, dict) or not isinstance(node.get("children_spec", []), list) or seen > MAX_ITEMS:
            raise _Bad(where, "is not a pytree spec")
        kind = node.get("type")
        if kind is not None and not (isinstance(kind, str) and (kind in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE or kind in known
                                                               or any(kind.startswith(m + ".") for m in imports))):
            raise _Bad(where, f"names the type {str(kind)[:80]!r}, which is neither torch's nor recorded in `pytree_types`")
        stack.extend(node.get("children_spec", []))


def _extra(extra: dict) -> None:
    dtype = extra.get("dtype")
    if dtype is not None and dtype not in CAST_DTYPES and dtype not in DTYPES:
        raise _Bad("extra.dtype", f"= {str(dtype)[:40]!r} is not a dtype name")
    aoti = extra.get("aoti")
    if aoti is None:
        return
    _mapping(aoti, "extra.aoti")
    for key in ("device", "cpu_isa", "machine", "torch_version", "compute_capability", "preset", "build_key"):
        if aoti.get(key) is not None:
            _text(aoti[key], f"extra.aoti.{key}", limit=1000)
    if aoti.get("dtype") is not None and aoti["dtype"] not in CAST_DTYPES:
        raise _Bad("extra.aoti.dtype", "is not a dtype name")


def _load_options(options: dict) -> None:
    if "cuda_graphs" in options and not isinstance(options["cuda_graphs"], bool):
        raise _Bad("load_options.cuda_graphs", "must be true or false")
    if options.get("threads") is not None:
        _integer(options["threads"], "load_options.threads", 0, 4096)
    batch = options.get("cuda_graph_batch")
    if batch is not None:
        _mapping(batch, "load_options.cuda_graph_batch", {"dim", "sizes"}, required=("dim", "sizes"))
        _text(batch["dim"], "load_options.cuda_graph_batch.dim", limit=200)
        for i, size in enumerate(_items(batch["sizes"], "load_options.cuda_graph_batch.sizes", limit=4096)):
            _integer(size, f"load_options.cuda_graph_batch.sizes[{i}]", 1, 1 << 20)


def _mapping(value: Any, where: str, keys: set[str] | None = None, required: tuple[str, ...] = ()) -> None:
    if not isinstance(value, dict):
        raise _Bad(where, f"is a {type(value).__name__}, expected an object")
    if keys is not None and set(value) - keys:
        raise _Bad(where, f"has unknown field(s) {', '.join(sorted(str(k)[:40] for k in set(value) - keys))}")
    missing = [k for k in required if k not in value]
    if missing:
        raise _Bad(where, f"lacks the field(s) {', '.join(missing)}")


def _items(value: Any, where: str, limit: int = MAX_ITEMS) -> list:
    if not isinstance(value, (list, tuple)):  # JSON gives lists; `Manifest.to_json()` keeps tuples
        raise _Bad(where, f"is a {type(value).__name__}, expected a list")
    if len(value) > limit:
        raise _Bad(where, f"has {len(value)} items, more than {limit}")
    return value


def _text(value: Any, where: str, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str):
        raise _Bad(where, f"is a {type(value).__name__}, expected a string")
    if len(value) > limit:
        raise _Bad(where, f"is longer than {limit} characters")


def _integer(value: Any, where: str, low: int, high: int) -> None:
    if type(value) is not int:
        raise _Bad(where, f"= {str(value)[:40]!r} is not an integer")
    if not low <= value <= high:
        raise _Bad(where, f"= {str(value)[:40]} is outside [{low}, {high}]")


def _range(item: dict, where: str) -> None:
    _integer(item["min"], f"{where}.min", -MAX_INT, MAX_INT)
    if item["max"] is not None:
        _integer(item["max"], f"{where}.max", -MAX_INT, MAX_INT)


__all__ = ["DOTTED_NAME", "DTYPES", "check_manifest_data"]
