"""What `pt2kit survey` runs over: targets given on the command line, in a list file, or in a model file.

Three sources, one result (`SurveyEntry`, built lazily so a broken target fails inside the sweep):

    pt2kit survey models.py:net pkg.mod:factory       # TARGETs, as `pt2kit export` takes them
    pt2kit survey --from targets.txt                   # one `TARGET [--input ..] [--dynamic ..]` a line
    pt2kit survey tests/architectures.py               # every entry of the file's `SURVEY` dict

The `SURVEY` convention (docs/survey.md): a module-level dict, name -> entry. An entry is an
`nn.Module`, a zero-argument factory returning one, or a dict with `model` (either of those) and
optionally `args`, `kwargs` (example inputs), `inputs` (`--input` texts) and `dynamic` (a
`--dynamic` spec). A file without `SURVEY` contributes its module-level `nn.Module` instances.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

from pt2kit.errors import TargetError, UsageError
from pt2kit.target.inputs import InputSpec, parse_input, resolve_inputs
from pt2kit.target.resolve import Target, bind_inputs, import_source, load_target


@dataclass(frozen=True)
class SurveyEntry:
    """One model to survey.

    Attributes:
        name: the row label (`bert`, `torchvision.models:resnet18`).
        spec: a `TARGET` that reproduces the entry in another process (`file.py:NAME`).
        build: makes the `Target` (model and example inputs); may raise.
        dynamic: the entry's own `--dynamic` spec, if it declares one.
        inputs: the `--input` texts the entry was given (for the child process of `--isolate`).
    """

    name: str
    spec: str
    build: Callable[[], Target] = field(compare=False, repr=False)
    dynamic: str | None = None
    inputs: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        """Command-line words that name this entry alone: `SPEC [--input ...] [--dynamic ...]`."""
        words = [self.spec]
        for text in self.inputs:
            words += ["--input", text]
        if self.dynamic:
            words += ["--dynamic", self.dynamic]
        return words


def collect_entries(
    specs: list[str] | tuple[str, ...] = (),
    from_file: str | None = None,
    inputs: list[str] | tuple[str, ...] = (),
    dynamic: str | None = None,
    seed: int = 0,
) -> list[SurveyEntry]:
    """Every entry named by `specs` and the lines of `from_file`, in order.

    Args:
        specs: `file.py:NAME`, `pkg.mod:NAME`, or a bare `file.py` (its `SURVEY` entries).
        from_file: a text file with one `TARGET [--input SPEC]... [--dynamic SPEC]` per line (`#` comments).
        inputs, dynamic: `--input` texts and a `--dynamic` spec for targets that do not give their own.

    Raises:
        UsageError: nothing to survey, a malformed line, or a `SURVEY` entry of the wrong shape.
        TargetError: a file that cannot be imported.
    """
    from pt2kit.shapes.spec import parse_dynamic

    parsed = [parse_input(text) for text in inputs]  # malformed inputs and specs fail before any work
    parse_dynamic(dynamic)
    entries: list[SurveyEntry] = []
    for spec in specs:
        entries += _entries_for(spec, list(inputs), parsed, dynamic, seed)
    if from_file:
        for spec, line_inputs, line_dynamic in _read_list(Path(from_file)):
            line_parsed = [parse_input(text) for text in line_inputs] or parsed
            parse_dynamic(line_dynamic)
            entries += _entries_for(spec, line_inputs or list(inputs), line_parsed, line_dynamic or dynamic, seed)
    if not entries:
        raise UsageError("nothing to survey: give TARGETs (`file.py:NAME`, `pkg.mod:NAME`, `models.py`) or `--from FILE`")
    return entries


def _entries_for(spec: str, input_texts: list[str], parsed: list[InputSpec], dynamic: str | None, seed: int) -> list[SurveyEntry]:
    where, sep, name = spec.rpartition(":")
    if not sep and spec.endswith(".py"):
        return _file_entries(spec, input_texts, parsed, dynamic, seed)
    if sep and where.endswith(".py") and Path(where).is_file():
        source, _ = import_source(spec)
        survey = getattr(source, "SURVEY", None)
        if isinstance(survey, dict) and name in survey:
            return [_dict_entry(where, name, survey[name], input_texts, parsed, dynamic, seed)]
    return [SurveyEntry(spec, spec, lambda: load_target(spec, parsed, seed), dynamic, tuple(input_texts))]


def _file_entries(path: str, input_texts: list[str], parsed: list[InputSpec], dynamic: str | None, seed: int) -> list[SurveyEntry]:
    source, _ = import_source(f"{path}:_")
    survey = getattr(source, "SURVEY", None)
    if survey is not None:
        if not isinstance(survey, dict) or not survey:
            raise UsageError(f"`SURVEY` in `{path}` must be a non-empty dict of name -> model entry (see docs/survey.md)")
        return [_dict_entry(path, name, entry, input_texts, parsed, dynamic, seed) for name, entry in survey.items()]
    names = [k for k, v in vars(source).items() if not k.startswith("_") and isinstance(v, nn.Module)]
    if not names:
        raise TargetError(f"`{path}` defines no `SURVEY` dict and no module-level nn.Module; add `SURVEY = {{'name': model}}`")
    spec_of = lambda n: f"{path}:{n}"  # noqa: E731
    return [SurveyEntry(f"{Path(path).stem}:{n}", spec_of(n), lambda n=n: load_target(spec_of(n), parsed, seed), dynamic, tuple(input_texts)) for n in names]


def _dict_entry(path: str, name: str, entry: Any, input_texts: list[str], parsed: list[InputSpec], dynamic: str | None, seed: int) -> SurveyEntry:
    if not isinstance(entry, dict):
        entry = {"model": entry}
    if "model" not in entry:
        raise UsageError(f"`SURVEY['{name}']` in `{path}` has no `model`; write {{'model': make_model, 'kwargs': {{...}}}}")
    spec = f"{path}:{name}"
    own_inputs = [str(t) for t in entry.get("inputs", ())]
    own_parsed = [parse_input(t) for t in own_inputs]

    def build() -> Target:
        module = _instantiate(entry["model"], spec)
        if "args" in entry or "kwargs" in entry:
            args, kwargs = tuple(entry.get("args", ())), dict(entry.get("kwargs", {}))
        elif own_parsed or parsed:
            positional, named = resolve_inputs(own_parsed or parsed, seed)
            args, kwargs = tuple(positional), named
        else:
            raise UsageError(f"`SURVEY['{name}']` in `{path}` gives no inputs: add `args`, `kwargs` or `inputs`, or pass `--input`")
        args, kwargs = bind_inputs(module, args, kwargs, spec)
        return Target(spec, module, args, kwargs, None, entry.get("dynamic") or dynamic)

    return SurveyEntry(name, spec, build, entry.get("dynamic") or dynamic, tuple(own_inputs or input_texts))


def _instantiate(obj: Any, spec: str) -> nn.Module:
    module = obj if isinstance(obj, nn.Module) else obj() if callable(obj) else None
    if not isinstance(module, nn.Module):
        raise TargetError(f"`{spec}`: `model` must be an nn.Module or a function with no arguments returning one")
    return module.eval() if module.training else module


def _read_list(path: Path) -> list[tuple[str, list[str], str | None]]:
    if not path.is_file():
        raise UsageError(f"target list `{path}` does not exist; check the path after `--from`")
    parser = argparse.ArgumentParser(prog=f"line of {path}", add_help=False, exit_on_error=False)
    parser.add_argument("target")
    parser.add_argument("--input", "-i", action="append", default=[])
    parser.add_argument("--dynamic")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            ns, extra = parser.parse_known_args(shlex.split(text))
        except (argparse.ArgumentError, ValueError, SystemExit) as exc:  # argparse exits on a missing TARGET
            raise UsageError(f"`{path}` line {number}: {exc}; write `TARGET [--input SPEC]... [--dynamic SPEC]`") from None
        if extra:
            raise UsageError(f"`{path}` line {number}: unexpected `{' '.join(extra)}`; write `TARGET [--input SPEC]... [--dynamic SPEC]`")
        rows.append((ns.target, ns.input, ns.dynamic))
    return rows


__all__ = ["SurveyEntry", "collect_entries"]
