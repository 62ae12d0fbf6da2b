"""Run rewritten methods on a copy of the model, never on the user's objects.

`ModelPatch` deep-copies the model; each rewritten method is compiled in its module's globals and set
on a generated subclass (same name and qualname) that the copy's instances switch to. The rewritten
source is registered in `linecache` under `FILE::Class.method`, so tracebacks and later capture
failures point at the rewritten lines.
"""

from __future__ import annotations

import ast
import copy
import inspect
import linecache
import os
import textwrap
from dataclasses import dataclass

import torch
from torch import nn

from pt2kit.capture import SourceLocation

SYNTHETIC_MARK = "::"


@dataclass
class MethodSource:
    """One method of a model class: where it is in the user's file, and its current (rewritten) text."""

    cls: type
    name: str
    file: str
    first_line: int
    line_count: int
    indent: str
    original: str
    current: str

    @property
    def qualname(self) -> str:
        return f"{self.cls.__qualname__}.{self.name}"

    @property
    def synthetic_file(self) -> str:
        return f"{self.file}{SYNTHETIC_MARK}{self.qualname}"

    @property
    def changed(self) -> bool:
        return self.current != self.original


class ModelPatch:
    """A deep copy of `model` whose methods can be replaced by rewritten source.

    Example:
        >>> patch = ModelPatch(model)
        >>> method, line = patch.locate(location)
        >>> patch.update(method, new_text)
        >>> patch.model(x)          # runs the rewritten code; `model` is untouched
    """

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model)
        self.methods: dict[tuple[type, str], MethodSource] = {}
        self._subclasses: dict[type, type] = {}
        self.needs_torch_import: set[str] = set()

    def original_class(self, module: nn.Module) -> type:
        cls = type(module)
        for base, sub in self._subclasses.items():
            if sub is cls:
                return base
        return cls

    def locate(self, location: SourceLocation) -> tuple[MethodSource, int] | None:
        """The method holding `location` and the line within its current text, or None when the line is
        not in a method of a class of the model (a free function, a library)."""
        for method in self.methods.values():
            if location.file == method.synthetic_file:
                return method, location.line
        best: tuple[int, type, str, object] | None = None
        for module in self.model.modules():
            for cls in self.original_class(module).__mro__:
                if cls.__module__.startswith("torch.") or cls is object:
                    continue
                for name, fn in vars(cls).items():
                    fn = getattr(fn, "__func__", fn)
                    code = getattr(fn, "__code__", None)
                    if code is None or not _same_file(code.co_filename, location.file):
                        continue
                    try:
                        lines, start = inspect.getsourcelines(fn)
                    except (OSError, TypeError):
                        continue
                    if start <= location.line < start + len(lines) and (best is None or len(lines) < best[0]):
                        best = (len(lines), cls, name, (lines, start))
        if best is None:
            return None
        _, cls, name, (lines, start) = best
        key = (cls, name)
        if key not in self.methods:
            text = textwrap.dedent("".join(lines))
            indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
            self.methods[key] = MethodSource(cls, name, location.file, start, len(lines), indent, text, text)
        method = self.methods[key]
        if method.changed:
            return None  # the original ran although it was replaced (called through the base class)
        return method, location.line - method.first_line + 1

    def module_attrs(self, cls: type) -> dict[str, bool]:
        """Attributes of the copy's instances of `cls` -> whether each is a tensor (parameters, buffers)."""
        attrs: dict[str, bool] = {}
        for module in self.model.modules():
            if self.original_class(module) is cls:
                for name in vars(module):
                    if not name.startswith("_"):
                        attrs[name] = isinstance(getattr(module, name), torch.Tensor)
                attrs.update({n: True for n in module._parameters})
                attrs.update({n: True for n in module._buffers})
                attrs.update({n: False for n in module._modules})
        return attrs

    def update(self, method: MethodSource, text: str) -> None:
        """Compile `text` as the new `method` and switch the copy's instances to use it."""
        method.current = text
        cls = method.cls
        fn = self._compile(method)
        methods = {m.name: self._compile(m) if m is not method else fn for m in self.methods.values() if m.cls is cls and m.changed}
        sub = type(cls.__name__, (cls,), {"__module__": cls.__module__, "__qualname__": cls.__qualname__, **methods})
        old = self._subclasses.get(cls)
        self._subclasses[cls] = sub
        for module in self.model.modules():
            if type(module) is cls or (old is not None and type(module) is old):
                module.__class__ = sub

    def _compile(self, method: MethodSource):
        filename = method.synthetic_file
        lines = method.current.splitlines(keepends=True)
        linecache.cache[filename] = (len(method.current), None, lines, filename)
        original = getattr(method.cls, method.name)
        original = getattr(original, "__func__", original)
        namespace = original.__globals__
        if not isinstance(namespace.get("torch"), type(torch)) or namespace.get("torch") is not torch:
            namespace = dict(namespace, torch=torch)
            self.needs_torch_import.add(method.file)
        # compiled inside a function taking `__class__`, so zero-argument super() still means the user's class
        func_def = ast.parse(method.current).body[0]
        factory = ast.FunctionDef(
            name="_pt2kit_factory", args=ast.arguments([], [ast.arg("__class__")], None, [], [], None, []),
            body=[func_def, ast.Return(ast.Name(func_def.name, ast.Load()))], decorator_list=[], returns=None,
            type_params=[],
        )
        module_ast = ast.fix_missing_locations(ast.Module([factory], []))
        local: dict = {}
        exec(compile(module_ast, filename, "exec"), namespace, local)
        return local["_pt2kit_factory"](method.cls)


def _same_file(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
