"""Resolve `TARGET` to a module and its example inputs.

`TARGET` is `path/to/file.py:NAME` or `package.module:NAME`. NAME may be an `nn.Module`
instance, an `nn.Module` subclass constructible without arguments, or a callable with
no arguments that returns a module. Example inputs come from `--input`, or else from
module-level `example_args` / `example_kwargs` beside NAME (the ExportDB convention).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from pt2kit.errors import InputSpecError, TargetError
from pt2kit.target.inputs import InputSpec, resolve_inputs


@dataclass
class Target:
    """A resolved model with the inputs to capture it with.

    Attributes:
        spec: the `TARGET` text as given.
        module: the model, in eval mode unless the target set otherwise.
        args, kwargs: example inputs.
        source: the Python module NAME was found in (holds the user's source file).
        dynamic: the module-level `dynamic` spec string, if the file defines one.
    """

    spec: str
    module: nn.Module
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: ModuleType | None = None
    dynamic: str | None = None

    @property
    def source_file(self) -> str | None:
        return getattr(self.source, "__file__", None)

    @property
    def parameter_names(self) -> list[str]:
        return forward_parameters(self.module)


def forward_parameters(module: nn.Module) -> list[str]:
    """Names of `module.forward`'s parameters, `*args`/`**kwargs` excluded."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def load_target(spec: str, inputs: list[InputSpec] | None = None, seed: int = 0) -> Target:
    """Resolve `file.py:NAME` or `pkg.mod:NAME` to a `Target` with example inputs.

    Args:
        spec: the target text.
        inputs: parsed `--input` specs; when empty, `example_args`/`example_kwargs` are used.
        seed: seed for random inputs.

    Raises:
        TargetError: missing file, import failure, no such attribute, not a module.
        InputSpecError: no inputs given and none defined beside NAME, or inputs that do not bind.

    Example:
        >>> t = load_target("tests/cases/branch_on_sum.py:model")
        >>> t.module(*t.args)
    """
    source, name = import_source(spec)
    module = _build_module(source, name, spec)
    if inputs:
        positional, named = resolve_inputs(inputs, seed)
        args, kwargs = tuple(positional), named
    elif hasattr(source, "example_args") or hasattr(source, "example_kwargs"):
        args, kwargs = _examples(source, spec)
    else:
        params = ", ".join(f"{p}=float32[...]" for p in forward_parameters(module)) or "x=float32[...]"
        raise InputSpecError(
            f"no example inputs for `{spec}`: pass `--input` (e.g. {params}) "
            f"or define `example_args = (...)` beside `{name}`"
        )
    args, kwargs = bind_inputs(module, args, kwargs, spec)
    dynamic = getattr(source, "dynamic", None)
    return Target(spec, module, args, kwargs, source, dynamic if isinstance(dynamic, str) else None)


def _examples(source: ModuleType, spec: str) -> tuple[tuple, dict]:
    """`example_args` (a tuple or list) and `example_kwargs` (a dict) defined beside NAME."""
    args = getattr(source, "example_args", ()) or ()
    kwargs = getattr(source, "example_kwargs", {}) or {}
    if not isinstance(args, (tuple, list)):
        raise InputSpecError(f"`example_args` beside `{spec}` is a {type(args).__name__}; make it a tuple, e.g. `example_args = (x,)`")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise InputSpecError(f"`example_kwargs` beside `{spec}` is not a dict of names; write e.g. `example_kwargs = {{\"x\": x}}`")
    return tuple(args), dict(kwargs)


def import_source(spec: str) -> tuple[ModuleType, str]:
    """Import the file or module of `file.py:NAME` / `pkg.mod:NAME`; returns it and `NAME` (not yet looked up).

    Raises:
        TargetError: a malformed spec, a missing file or module, or an error raised while importing it.
    """
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise TargetError(f"target `{spec}` is not of the form `path/to/file.py:NAME` or `package.module:NAME`")
    if where.endswith(".py") or "/" in where or "\\" in where:
        return _import_file(Path(where)), name
    try:
        return importlib.import_module(where), name
    except ModuleNotFoundError as exc:
        if exc.name and where.startswith(exc.name):
            raise TargetError(f"no Python module `{where}`; check the name, or give a path like `{where.replace('.', '/')}.py:{name}`") from None
        raise _user_code_error(spec, exc) from None
    except (Exception, SystemExit) as exc:  # the user's module runs here: any error, even sys.exit, is theirs
        raise _user_code_error(spec, exc) from None


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise TargetError(f"model file `{path}` does not exist; check the path before `:`")
    path = path.resolve()
    module_name = target_module_name(path)
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent))  # so the file can import its neighbours
    try:
        loader_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's file runs here: any error, even sys.exit, is theirs
        del sys.modules[module_name]
        raise _user_code_error(str(path), exc) from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def target_module_name(path: Path) -> str:
    """The name a target file is imported under: the same in every process (`hash()` of a string is not), as it
    is saved in the program (node metadata, pytree type names), and distinct for two files of the same name.

    Example:
        >>> target_module_name(Path("/work/examples/models.py"))   # 'pt2kit_target_models_' + 12 hex digits
    """
    stem = re.sub(r"\W", "_", path.stem)
    return f"pt2kit_target_{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"


_PT2KIT_SOURCE = str(Path(__file__).resolve().parents[1])  # frames in here are pt2kit's, not the user's
_STDLIB = sysconfig.get_paths()["stdlib"]  # nor are the standard library's (argparse exits for the code that calls it)


def _user_code_error(where: str, exc: BaseException, doing: str = "importing") -> TargetError:
    """The user's code raised (or called sys.exit): say what, at the deepest line of theirs, and to fix it there."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "site-packages" not in f.filename and not f.filename.startswith((_PT2KIT_SOURCE, _STDLIB))]
    frame = (own or frames or [None])[-1]
    at = f" at {frame.filename}:{frame.lineno}" if frame is not None else ""
    if isinstance(exc, SystemExit):
        what = f"called `sys.exit({exc.code!r})`"
    else:
        text = str(exc).strip()
        what = f"raised {type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
    return TargetError(f"{doing} `{where}` {what}{at}; fix the error in that file and rerun")


def _build_module(source: ModuleType, name: str, spec: str) -> nn.Module:
    if not hasattr(source, name):
        found = sorted(
            k for k, v in vars(source).items()
            if not k.startswith("_") and (isinstance(v, nn.Module) or (isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == source.__name__))
        )
        hint = f"modules defined there: {', '.join(found)}" if found else "it defines no nn.Module"
        raise TargetError(f"`{spec}`: no attribute `{name}` in `{getattr(source, '__file__', source.__name__)}`; {hint}")
    obj = getattr(source, name)
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        if not _callable_without_arguments(obj):
            raise TargetError(
                f"`{spec}`: class `{name}{_signature(obj)}` cannot be built without arguments; "
                f"define `model = {name}(...)` in the file and target `:model`"
            )
        return _call_user(obj, spec, name).eval()
    if callable(obj) and not isinstance(obj, type):
        if not _callable_without_arguments(obj):
            raise TargetError(f"`{spec}`: `{name}{_signature(obj)}` needs arguments; target a function with none, or a module instance")
        built = _call_user(obj, spec, name)
        if isinstance(built, nn.Module):
            return built.eval() if built.training else built
        raise TargetError(f"`{spec}`: `{name}()` returned a {type(built).__name__}, not an nn.Module")
    raise TargetError(
        f"`{spec}`: `{name}` is a {type(obj).__name__}, not an nn.Module; target a module instance, "
        "an nn.Module subclass, or a function returning one"
    )


def _callable_without_arguments(obj: Any) -> bool:
    try:
        inspect.signature(obj).bind()
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): try the call
        return True
    return True


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _call_user(factory: Any, spec: str, name: str) -> Any:
    """`factory()`: the user's class or function; whatever it raises (or sys.exit) becomes a `TargetError`."""
    try:
        return factory()
    except (Exception, SystemExit) as exc:
        raise _user_code_error(spec, exc, doing=f"building `{name}()` of") from None


def signature_order(module: nn.Module, kwargs: dict) -> dict:
    """`kwargs` in the order of `forward`'s parameters (names it collects in `**kwargs` last, as given), so
    the program's flat input order does not depend on how a file or dict happened to order its keys."""
    rank = {name: i for i, name in enumerate(forward_parameters(module))}
    return dict(sorted(kwargs.items(), key=lambda item: rank.get(item[0], len(rank))))


def bind_inputs(module: nn.Module, args: tuple, kwargs: dict, spec: str) -> tuple[tuple, dict]:
    """Check inputs fit `forward`, keeping them as given: positional inputs stay positional and named
    ones keyword (in `forward`'s order), so the exported program is called as the model was
    (`torch.export.export(m, args, kwargs)` keeps the same split; see pt2kit.runtime.calling)."""
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return args, kwargs
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        params = ", ".join(forward_parameters(module))
        raise InputSpecError(
            f"inputs do not fit `{type(module).__name__}.forward({params})` of `{spec}`: {exc}; "
            f"name each `--input` after one of: {params}"
        ) from None
    return tuple(args), signature_order(module, kwargs)
