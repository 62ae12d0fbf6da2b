"""Run rewritten code on a copy of the model, never on the user's objects.

`ModelPatch` deep-copies the model. A rewritten method is compiled in its module's globals and set on a
generated subclass (same name and qualname) that only the copy's instances switch to. A rewritten free
function (a helper the model's methods call) goes into a private copy of its module's globals, and the
model's methods from that module are rebound to read that copy. The rewritten source is registered in
`linecache` under `FILE::name`, so tracebacks and later capture failures point at the rewritten lines.
"""

from __future__ import annotations

import ast
import copy
import inspect
import linecache
import os
import sys
import textwrap
import types
from dataclasses import dataclass

import torch
from torch import nn

from pt2kit.capture.capture import SourceLocation

SYNTHETIC_MARK = "::"


@dataclass
class MethodSource:
    """One function of the model's code (a method of `cls`, or a free function when `cls` is None): where it
    is in the user's file, and its current (rewritten) text."""

    cls: type | None
    name: str
    function: types.FunctionType
    file: str
    first_line: int
    line_count: int
    indent: str
    original: str
    current: str

    @property
    def qualname(self) -> str:
        return f"{self.cls.__qualname__}.{self.name}" if self.cls is not None else self.name

    @property
    def synthetic_file(self) -> str:
        return f"{self.file}{SYNTHETIC_MARK}{self.qualname}"

    @property
    def changed(self) -> bool:
        return self.current != self.original


class ModelPatch:
    """A deep copy of `model` whose methods and helper functions can be replaced by rewritten source.

    Example:
        >>> patch = ModelPatch(model)
        >>> method, line = patch.locate(location)
        >>> patch.update(method, new_text)
        >>> patch.model(x)          # runs the rewritten code; `model` is untouched
    """

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model)
        self.methods: dict[tuple[type | None, str], MethodSource] = {}
        self.needs_torch_import: set[str] = set()
        self._subclasses: dict[type, type] = {}
        self._namespaces: dict[int, dict] = {}  # id(module globals) -> the copy the rewritten code reads

    def original_class(self, module: nn.Module) -> type:
        cls = type(module)
        for base, sub in self._subclasses.items():
            if sub is cls:
                return base
        return cls

    def _user_classes(self) -> list[type]:
        found: dict[type, None] = {}
        for module in self.model.modules():
            for cls in self.original_class(module).__mro__:
                if cls is not object and not cls.__module__.startswith("torch."):
                    found.setdefault(cls)
        return list(found)

    def _candidates(self):
        """(cls or None, name, function) for every method of the model's classes and every free function
        of their modules."""
        seen_modules = set()
        for cls in self._user_classes():
            for name, fn in vars(cls).items():
                fn = inspect.unwrap(getattr(fn, "__func__", fn))  # a decorated method: its own code
                if isinstance(fn, types.FunctionType):
                    yield cls, name, fn
            module = sys.modules.get(cls.__module__)
            if module is not None and id(module) not in seen_modules:
                seen_modules.add(id(module))
                for name, fn in vars(module).items():
                    if isinstance(fn, types.FunctionType) and fn.__module__ == module.__name__:
                        yield None, name, fn

    def locate(self, location: SourceLocation) -> tuple[MethodSource, int] | None:
        """The function holding `location` and the line within its current text, or None when the line is
        not in the model's code (a library, a function the model does not reach through its classes)."""
        for method in self.methods.values():
            if location.file == method.synthetic_file:
                return method, location.line
        best = None
        for cls, name, fn in self._candidates():
            if not _same_file(fn.__code__.co_filename, location.file):
                continue
            try:
                lines, start = inspect.getsourcelines(fn)
            except (OSError, TypeError):
                continue
            if start <= location.line < start + len(lines) and (best is None or len(lines) < len(best[3])):
                best = (cls, name, fn, lines, start)
        if best is None:
            return None
        cls, name, fn, lines, start = best
        if (cls, name) not in self.methods:
            text = textwrap.dedent("".join(lines))
            indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
            self.methods[(cls, name)] = MethodSource(cls, name, fn, location.file, start, len(lines), indent, text, text)
        method = self.methods[(cls, name)]
        if method.changed:
            return None  # the original ran although it was replaced (called through the base class)
        return method, location.line - method.first_line + 1

    def module_attrs(self, cls: type | None) -> dict[str, bool]:
        """Attributes of the copy's instances of `cls` -> whether each is a tensor (parameters, buffers)."""
        attrs: dict[str, bool] = {}
        for module in self.model.modules():
            if cls is not None and self.original_class(module) is cls:
                for name in vars(module):
                    if not name.startswith("_"):
                        attrs[name] = isinstance(getattr(module, name), torch.Tensor)
                attrs.update({n: True for n in module._parameters})
                attrs.update({n: True for n in module._buffers})
                attrs.update({n: False for n in module._modules})
        return attrs

    def update(self, method: MethodSource, text: str) -> None:
        """Compile `text` as the new `method` and switch the copy to use it."""
        method.current = text
        if method.cls is not None:
            self._rebuild(method.cls)
            return
        namespace = self._namespace(method.function.__globals__, method.file)
        namespace[method.name] = self._compile(method, namespace)
        for cls in self._user_classes():
            if _globals_of(cls) is method.function.__globals__:
                self._rebuild(cls)

    def _namespace(self, original: dict, file: str) -> dict:
        """The private copy of a module's globals that rewritten code and rebound methods read."""
        if id(original) not in self._namespaces:
            namespace = dict(original)
            for name, fn in original.items():  # helpers calling a rewritten helper must see the new one
                if isinstance(fn, types.FunctionType) and fn.__globals__ is original:
                    namespace[name] = _rebound(fn, namespace)
            if namespace.get("torch") is not torch:
                namespace["torch"] = torch
                self.needs_torch_import.add(file)
            self._namespaces[id(original)] = namespace
        return self._namespaces[id(original)]

    def _rebuild(self, cls: type) -> None:
        namespace = self._namespaces.get(id(_globals_of(cls)))
        members = {}
        for name, fn in vars(cls).items():
            method = self.methods.get((cls, name))
            if method is not None and method.changed:
                members[name] = self._compile(method, namespace or self._namespace_for_method(method))
            elif namespace is not None and isinstance(fn, types.FunctionType) and fn.__globals__ is _globals_of(cls):
                members[name] = _rebound(fn, namespace)
        sub = type(cls.__name__, (cls,), {"__module__": cls.__module__, "__qualname__": cls.__qualname__, **members})
        old = self._subclasses.get(cls)
        self._subclasses[cls] = sub
        for module in self.model.modules():
            if type(module) is cls or (old is not None and type(module) is old):
                module.__class__ = sub

    def _namespace_for_method(self, method: MethodSource) -> dict:
        original = method.function.__globals__
        if original.get("torch") is torch:
            return original  # read as is: the rewritten method sees later changes to the module, like the original
        return self._namespace(original, method.file)

    def _compile(self, method: MethodSource, namespace: dict):
        filename = method.synthetic_file
        linecache.cache[filename] = (len(method.current), None, method.current.splitlines(keepends=True), filename)
        func_def = ast.parse(method.current).body[0]
        # compiled inside a function taking `__class__`, so zero-argument super() still means the user's class
        factory = ast.FunctionDef(
            name="_pt2kit_factory", args=ast.arguments([], [ast.arg("__class__")], None, [], [], None, []),
            body=[func_def, ast.Return(ast.Name(func_def.name, ast.Load()))], decorator_list=[], returns=None,
            type_params=[],
        )
        local: dict = {}
        exec(compile(ast.fix_missing_locations(ast.Module([factory], [])), filename, "exec"), namespace, local)
        return local["_pt2kit_factory"](method.cls)


def _rebound(fn: types.FunctionType, namespace: dict) -> types.FunctionType:
    """`fn` reading its globals from `namespace`."""
    new = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__, new.__qualname__, new.__dict__ = fn.__kwdefaults__, fn.__qualname__, dict(fn.__dict__)
    return new


def _globals_of(cls: type) -> dict | None:
    module = sys.modules.get(cls.__module__)
    return vars(module) if module is not None else None


def _same_file(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
