"""The program's calling convention: which inputs are positional and which are keyword, and binding a
user's call to it.

`torch.export.export(m, args, kwargs)` keeps the split it was given: a program exported from
`example_kwargs` takes those inputs by keyword, one exported from `example_args` by position, and a
plain `torch.export.load(p).module()` accepts only that form. `pt2kit.load` accepts any form the
model's own `forward` accepts (positional or by name, as Python binds a call) and rearranges it into
the program's.

    >>> sig = CallSignature.of(manifest)                 # ('input_ids', 'attention_mask') by keyword
    >>> args, kwargs = sig.bind((ids,), {"attention_mask": mask})
    >>> args, kwargs
    ((), {'input_ids': ids, 'attention_mask': mask})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.utils import _pytree as pytree

from pt2kit.artifact.manifest import Manifest
from pt2kit.errors import InputMismatchError


@dataclass(frozen=True)
class CallSignature:
    """The top-level inputs of a program, as it must be called.

    Attributes:
        positional: names of the positional inputs, in order (`forward`'s parameter names).
        keyword: names of the keyword inputs, in the order the program was exported with.
        parameters: `forward`'s parameter names, in order (binds a positional call by name).
        constants: keyword inputs fixed at export (a flag, a number) with their values: filled in when not given.
    """

    positional: tuple[str, ...]
    keyword: tuple[str, ...]
    parameters: tuple[str, ...] = ()
    constants: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, manifest: Manifest) -> "CallSignature":
        """Read from the manifest's input spec (written by every pt2kit version), so a manifest from before
        keyword inputs were kept (all positional) reads the same as it always did."""
        params = tuple(manifest.parameters)
        constants = tuple((leaf.name, leaf.value) for leaf in manifest.inputs if leaf.kind == "constant")
        if manifest.in_spec:
            spec = pytree.treespec_loads(manifest.in_spec)
            args_spec, kwargs_spec = (spec.child(0), spec.child(1)) if hasattr(spec, "child") else spec.children_specs
            n = args_spec.num_children
            positional = tuple(params[i] if i < len(params) else f"args[{i}]" for i in range(n))
            return cls(positional, tuple(kwargs_spec.context or ()), params, constants)
        keyword = tuple(dict.fromkeys(_top(leaf.name) for leaf in manifest.inputs if leaf.keyword))
        positional = tuple(dict.fromkeys(_top(leaf.name) for leaf in manifest.inputs if not leaf.keyword))
        return cls(positional, keyword, params, constants)

    def describe(self) -> str:
        """`forward(x, *, mask)`: how the program itself is called."""
        parts = list(self.positional) + (["*"] + list(self.keyword) if self.keyword else [])
        return f"forward({', '.join(parts)})"

    def bind(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """Rearrange a call as the model would take it into the program's own form.

        A call already in the program's form is returned unchanged. Otherwise positional values bind to
        `forward`'s parameters in order and keyword values by name, as Python binds a call.

        Raises:
            InputMismatchError: an input is missing, unknown, or given twice.
        """
        if len(args) == len(self.positional) and kwargs.keys() == set(self.keyword):
            return tuple(args), {k: kwargs[k] for k in self.keyword}
        # forward's own order binds a positional call; without it (`forward(*args)`), the program's
        order = self.parameters if len(self.parameters) >= len(self.positional) else self.positional + self.keyword
        if len(args) > len(order):
            raise InputMismatchError(
                f"got {len(args)} positional inputs, the artifact takes at most {len(order)}: {self.describe()}")
        bound = dict(zip(order, args))
        for name, value in kwargs.items():
            if name in bound:
                raise InputMismatchError(f"input `{name}` is given twice (by position and by name); the artifact takes {self.describe()}")
            bound[name] = value
        unknown = [n for n in bound if n not in self.positional and n not in self.keyword]
        if unknown:
            raise InputMismatchError(f"unexpected input {', '.join(f'`{n}`' for n in unknown)}; the artifact takes {self.describe()}")
        constants = dict(self.constants)
        for name in self.positional + self.keyword:
            if name not in bound and name in constants:
                bound[name] = constants[name]
        missing = [n for n in self.positional + self.keyword if n not in bound]
        if missing:
            raise InputMismatchError(f"missing input {', '.join(f'`{n}`' for n in missing)}; the artifact takes {self.describe()}")
        return tuple(bound[n] for n in self.positional), {n: bound[n] for n in self.keyword}


def _top(leaf_name: str) -> str:
    """`mask['a'][0]` -> `mask`."""
    return leaf_name.split("[", 1)[0].split(".", 1)[0]


__all__ = ["CallSignature"]
