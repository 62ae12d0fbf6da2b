"""Example and run-time inputs: the `--input` grammar and tensor files.

Grammar of one `--input` value (NAME= is optional; unnamed inputs are positional)::

    x=float32[4,16]            random normal tensor
    x=float32[4,16]@-1..1      random uniform tensor in [-1, 1)
    ids=int64[2,128]@0..30000  random integers in [0, 30000)
    mask=bool[2,128]           random booleans
    x=@path/to/x.npy           a tensor from .pt, .npy or .safetensors (NAME picks the key)
    @inputs.safetensors        every tensor in the file, each bound by its key
    n=3  scale=0.5  flag=true  Python scalars
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pt2kit.errors import InputSpecError, TensorFileError, first_line

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "f32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "f16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "f64": torch.float64, "double": torch.float64,
    "int64": torch.int64, "i64": torch.int64, "long": torch.int64,
    "int32": torch.int32, "i32": torch.int32, "int": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool,
}
# The cast names of `--dtype` (compile, tune, verify, the manifest's `dtype`), and the torch spellings read as them.
CAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CAST_ALIASES: dict[str, str] = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}

_RANDOM = re.compile(
    r"^(?P<dtype>[a-z0-9]+)\[(?P<shape>[0-9,\s]*)\](?:@(?P<lo>-?[0-9.e+]+)\.\.(?P<hi>-?[0-9.e+]+))?$"
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]'\"]*$")


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.float32` -> `"float32"`, the spelling the grammar and the manifest use."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class InputSpec:
    """One parsed `--input`: a name (or None for positional) and how to make the value."""

    name: str | None
    kind: str  # "random" | "file" | "scalar"
    dtype: torch.dtype | None = None
    shape: tuple[int, ...] = ()
    low: float | None = None
    high: float | None = None
    path: Path | None = None
    value: Any = None
    text: str = ""


def parse_input(text: str) -> InputSpec:
    """Parse one `--input` value.

    Raises:
        InputSpecError: the text does not follow the grammar (the message shows the grammar).
    """
    name, sep, rhs = text.partition("=")
    if not sep:
        name, rhs = None, text
    elif not _NAME.match(name):
        raise InputSpecError(f"`--input {text}`: `{name}` is not an input name; write NAME=SPEC, e.g. `x=float32[4,16]`")
    rhs = rhs.strip()
    if rhs.startswith("@"):
        return InputSpec(name, "file", path=Path(rhs[1:]), text=text)
    m = _RANDOM.match(rhs)
    if m:
        dtype = DTYPES.get(m["dtype"])
        if dtype is None:
            raise InputSpecError(
                f"`--input {text}`: unknown dtype `{m['dtype']}`; use one of {', '.join(sorted(set(map(dtype_name, DTYPES.values()))))}"
            )
        shape_text = m["shape"].replace(" ", "")
        shape = tuple(int(s) for s in shape_text.split(",") if s) if shape_text else ()
        low, high = _parse_range(text, dtype, m["lo"], m["hi"])
        _check_size(text, dtype, shape)
        return InputSpec(name, "random", dtype=dtype, shape=shape, low=low, high=high, text=text)
    scalar = _parse_scalar(rhs)
    if scalar is not None and name is not None:
        return InputSpec(name, "scalar", value=scalar, text=text)
    raise InputSpecError(
        f"`--input {text}` is not a valid input; write e.g. `x=float32[4,16]`, "
        "`ids=int64[2,128]@0..30000`, `x=@x.npy` or `n=3`"
    )


def _parse_range(text: str, dtype: torch.dtype, lo: str | None, hi: str | None) -> tuple[float | None, float | None]:
    """The `@LOW..HIGH` bounds as numbers that fit `dtype`: integers within its limits for integer dtypes, finite
    numbers for floating ones, none for bool."""
    if lo is None:
        return None, None
    if dtype == torch.bool:
        raise InputSpecError(f"`--input {text}`: a bool input takes no `@LOW..HIGH` range; write e.g. `mask=bool[2,128]`")
    bounds = []
    for word in (lo, hi):
        try:
            value = float(word)
        except ValueError:
            raise InputSpecError(f"`--input {text}`: `{word}` is not a number; write LOW..HIGH, e.g. `@-1..1`") from None
        if not math.isfinite(value):
            raise InputSpecError(f"`--input {text}`: `{word}` is not a finite number; write LOW..HIGH, e.g. `@-1..1`")
        if not dtype.is_floating_point and not value.is_integer():
            raise InputSpecError(f"`--input {text}`: `{word}` is not an integer, and `{dtype_name(dtype)}` values are; "
                                 f"write integer bounds, e.g. `@0..100`")
        bounds.append(value)
    low, high = bounds
    if not low < high:
        raise InputSpecError(f"`--input {text}`: empty range `{lo}..{hi}`; write LOW..HIGH with LOW < HIGH")
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        if low < info.min or high - 1 > info.max:
            raise InputSpecError(f"`--input {text}`: `{lo}..{hi}` does not fit `{dtype_name(dtype)}` "
                                 f"([{info.min}, {info.max}]); narrow the range or use a wider dtype such as int64")
    return low, high


def _check_size(text: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    """Refuse a random tensor larger than this machine's memory before trying to allocate it."""
    nbytes = math.prod(shape) * (dtype.itemsize if hasattr(dtype, "itemsize") else torch.empty((), dtype=dtype).element_size())
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: let the allocator decide
        return
    if nbytes > memory:
        raise InputSpecError(f"`--input {text}` needs {nbytes / 2**30:,.1f} GiB, more than this machine's "
                             f"{memory / 2**30:,.1f} GiB of memory; give a smaller shape")


def _parse_scalar(text: str) -> Any:
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return None


def make_value(spec: InputSpec, generator: torch.Generator | None = None) -> Any:
    """Materialize one non-file spec: a random tensor of its dtype and shape, or its scalar."""
    if spec.kind == "scalar":
        return spec.value
    return random_tensor(spec.dtype, spec.shape, spec.low, spec.high, generator)


def random_tensor(dtype, shape, low=None, high=None, generator=None) -> torch.Tensor:
    """A random tensor: normal (or uniform in [low, high)) floats, integers in [low, high), booleans."""
    if dtype == torch.bool:
        return torch.rand(shape, generator=generator) < 0.5
    if dtype.is_floating_point:
        if low is None:
            return torch.randn(shape, generator=generator).to(dtype)
        return (torch.rand(shape, generator=generator) * (high - low) + low).to(dtype)
    lo = int(low) if low is not None else 0
    hi = int(high) if high is not None else 100
    return torch.randint(lo, hi, shape, generator=generator, dtype=dtype)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read every tensor in a `.pt`, `.npy` or `.safetensors` file, keyed by name.

    A `.npy` file or a `.pt` file holding one tensor gives the single key `""`.

    Raises:
        TensorFileError: the file is missing, of an unknown kind, or unreadable.
    """
    if path.is_dir():
        raise TensorFileError(f"input file `{path}` is a folder; name a .pt, .npy or .safetensors file after `@`")
    if not path.is_file():
        raise TensorFileError(f"input file `{path}` does not exist; check the path after `@`")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        if suffix == ".npy":
            import numpy as np

            return {"": torch.from_numpy(np.load(path, allow_pickle=False))}
        if suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, torch.Tensor):
                return {"": obj}
            if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
                return dict(obj)
            raise TensorFileError(f"`{path}` holds a {type(obj).__name__}, not a tensor or a dict of tensors; save one with torch.save(tensor, path)")
    except TensorFileError:
        raise
    except Exception as exc:  # the readers raise many types for a damaged file
        raise TensorFileError(f"cannot read tensors from `{path}` ({first_line(exc, limit=None)}); is the file complete and of the kind its suffix says?") from None
    raise TensorFileError(f"`{path}` has an unknown suffix `{suffix}`; use .pt, .npy or .safetensors")


def resolve_inputs(specs: list[InputSpec], seed: int = 0) -> tuple[list[Any], dict[str, Any]]:
    """Turn parsed specs into values: positional ones in order, named ones by name."""
    generator = torch.Generator().manual_seed(seed)
    positional: list[Any] = []
    named: dict[str, Any] = {}
    given = [spec.name for spec in specs if spec.name is not None]
    twice = sorted({name for name in given if given.count(name) > 1})
    if twice:
        raise InputSpecError(f"`--input {twice[0]}=...` is given {given.count(twice[0])} times; give each input once")
    for spec in specs:
        if spec.kind != "file":
            value = make_value(spec, generator)
        else:
            tensors = read_tensors(spec.path)
            if spec.name is None:
                if set(tensors) == {""}:
                    positional.append(tensors[""])
                else:
                    named.update(tensors)
                continue
            if spec.name in tensors:
                value = tensors[spec.name]
            elif len(tensors) == 1:
                value = next(iter(tensors.values()))
            else:
                raise TensorFileError(
                    f"`{spec.path}` holds {sorted(tensors)} but not `{spec.name}`; name the input after one of its keys"
                )
        if spec.name is None:
            positional.append(value)
        else:
            named[spec.name] = value
    return positional, named
