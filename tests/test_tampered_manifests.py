"""A `.pt2` program is data: a manifest edited to hold code, imports, odd types or huge numbers runs nothing.

Each case rewrites `extra/pt2kit/manifest.json` of one small program and reads the result under every command that
reads artifacts (`inspect`, `run`, `verify`, `serve`'s app) and the Python API (`pt2kit.load`). Each must end in exit
2 / an `ArtifactError` with one line, never a traceback or "unexpected", and the code planted in the file (a marker
file written when it runs, or a module in the working folder that writes one when imported) must never run.
"""

from __future__ import annotations

import copy
import json
import sys
import zipfile
from pathlib import Path

import pytest

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.errors import ArtifactError, UntrustedImportError

MARKER_NAME = "pwned.txt"
# code that writes the marker when evaluated as Python (sympify, eval) - the parser must refuse it as text
CODE = f"__import__('pathlib').Path('{MARKER_NAME}').touch() or 2"
EVIL_MODULE = "pt2kit_evil_module"  # written into the working folder; importing it writes the marker
TARGET = f"{case('dyn_concat_self')}:model"
TYPES_TARGET = f"{case('dataclass_output')}:model"


@pytest.fixture(scope="session")
def programs(tmp_path_factory) -> dict[str, Path]:
    """`dyn_concat_self` (a derived dim: relations, expressions) and `dataclass_output` (pytree types), exported once."""
    folder = tmp_path_factory.mktemp("tamper")
    derived, types = folder / "derived.pt2", folder / "types.pt2"
    pt2kit.export_program(pt2kit.load_target(TARGET), derived)
    pt2kit.export_program(pt2kit.load_target(TYPES_TARGET), types, check_specialization=False)
    return {"derived": derived, "types": types}


def _set(path: str, value):
    """A change that sets `path` (`inputs.0.shape.1`) in the manifest to `value`."""
    def change(m):
        *parents, last = path.split(".")
        node = m
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return change


def _delete(path: str):
    def change(m):
        *parents, last = path.split(".")
        node = m
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[int(last) if isinstance(node, list) else last]
    return change


def _raw(text: str):
    return text  # replaces the whole entry with this text


TYPE = {"type": f"{EVIL_MODULE}.Thing", "serialized_name": f"pt2kit:{EVIL_MODULE}.Thing", "strategy": "attributes"}
# (id, program, change or raw text, words the one error line must hold)
CASES = [
    ("code-in-input-shape", "derived", _set("inputs.0.shape.1", CODE), ["inputs[0].shape[1]", "not a size expression"]),
    ("code-in-relation-expr", "derived", _set("relations.0.expr", CODE), ["relations[0].expr", "not a size expression"]),
    ("code-in-output-shape", "derived", _set("outputs.0.shape.1", CODE), ["outputs[0].shape[1]"]),
    ("code-in-dim-symbol", "derived", _set("dims.0.symbol", CODE), ["dims[0].symbol"]),
    ("code-in-dtype", "derived", _set("inputs.0.dtype", CODE), ["inputs[0].dtype", "not a dtype"]),
    ("torch-function-as-dtype", "derived", _set("extra", {"dtype": "load"}), ["extra.dtype"]),
    ("lambda-in-shape", "derived", _set("inputs.1.shape.1", "(lambda: 2)()"), ["inputs[1].shape[1]"]),
    ("attribute-in-shape", "derived", _set("inputs.1.shape.1", "s0.__class__"), ["inputs[1].shape[1]"]),
    ("code-in-cuda-graph-dim", "derived", _set("load_options", {"cuda_graph_batch": {"dim": 3, "sizes": ["x"]}}),
     ["load_options.cuda_graph_batch.dim"]),
    ("import-named-by-manifest", "derived", _set("pytree_imports", [EVIL_MODULE]), [EVIL_MODULE, "--trust-import"]),
    ("type-in-working-folder", "types", _set("pytree_types.0", TYPE), [EVIL_MODULE, "--trust-import"]),
    ("type-that-is-a-function", "types", _set("pytree_types.0", {**TYPE, "type": "os.system", "serialized_name": "pt2kit:os.system"}),
     ["os.system", "a class"]),
    ("type-with-a-finalizer", "types",
     _set("pytree_types.0", {**TYPE, "type": "subprocess.Popen", "serialized_name": "pt2kit:subprocess.Popen"}), ["__del__"]),
    ("import-that-is-not-a-name", "derived", _set("pytree_imports", ["os; import x"]), ["pytree_imports[0]"]),
    ("serialized-name-shadowing", "types", _set("pytree_types.0.serialized_name", "collections.OrderedDict"),
     ["serialized_name"]),
    ("huge-static-size", "derived", _set("inputs.0.shape.0", 10**30), ["inputs[0].shape[0]"]),
    ("huge-dim-max", "derived", _set("dims.0.max", 10**400), ["dims[0].max"]),
    ("huge-constant-in-expr", "derived", _set("relations.0.expr", "9" * 40 + "*s0"), ["too large"]),
    ("huge-power", "derived", _set("relations.0.expr", "s0**9**9"), ["power"]),
    ("long-expression", "derived", _set("relations.0.expr", "+".join(["s0"] * 200)), ["longer than"]),
    ("float-size", "derived", _set("inputs.0.shape.0", 2.5), ["inputs[0].shape[0]"]),
    ("bool-size", "derived", _set("inputs.0.shape.0", True), ["inputs[0].shape[0]"]),
    ("string-min", "derived", _set("dims.0.min", "1"), ["dims[0].min"]),
    ("inputs-not-a-list", "derived", _set("inputs", {"x": 1}), ["inputs"]),
    ("leaf-not-an-object", "derived", _set("inputs.0", "x"), ["inputs[0]"]),
    ("threads-as-text", "derived", _set("load_options", {"threads": "8"}), ["load_options.threads"]),
    ("missing-leaf-name", "derived", _delete("inputs.0.name"), ["inputs[0]", "name"]),
    ("missing-relation-expr", "derived", _delete("relations.0.expr"), ["relations[0]", "expr"]),
    ("missing-dim-min", "derived", _delete("dims.0.min"), ["dims[0]", "min"]),
    ("unknown-leaf-field", "derived", _set("inputs.0.__class__", "x"), ["unknown field"]),
    ("manifest-not-an-object", "derived", _raw("[1, 2]"), ["manifest"]),
    ("not-json", "derived", _raw("{'a': " + CODE + "}"), ["damaged"]),
    ("deeply-nested-json", "derived", _raw("[" * 100_000 + "]" * 100_000), ["damaged"]),
    ("garbage-in-spec", "derived", _set("in_spec", '[1, {"type": "pt2kit:' + EVIL_MODULE + '.Thing", "context": "null"}]'),
     ["in_spec"]),
]


def _tamper(source: Path, dest: Path, change, entry: str = "extra/pt2kit/manifest.json") -> Path:
    """A copy of `source` whose `entry` is changed (a function of the parsed JSON) or replaced (text)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith(entry):
                if isinstance(change, str):
                    data = change.encode()
                else:
                    manifest = copy.deepcopy(json.loads(data))
                    change(manifest)
                    data = json.dumps(manifest).encode()
            zout.writestr(item, data)
    return dest


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder holding a module that writes the marker when imported, importable from here."""
    (tmp_path / f"{EVIL_MODULE}.py").write_text(
        f"import pathlib\npathlib.Path({str(tmp_path / MARKER_NAME)!r}).touch()\nclass Thing:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    assert not (tmp_path / MARKER_NAME).exists(), "code from the file ran"
    assert EVIL_MODULE not in sys.modules, "a module the file named was imported"


@pytest.mark.parametrize("name, program, change, words", CASES, ids=[c[0] for c in CASES])
def test_tampered_manifest_runs_nothing_under_every_reader(name, program, change, words, programs, folder, cli):
    path = _tamper(programs[program], folder / f"{name}.pt2", change)
    target = TARGET if program == "derived" else TYPES_TARGET
    for args in (["inspect", path], ["run", path], ["verify", target, path, "--samples", "1"]):
        result = cli(*args)
        check_one_line_error(result, *words)
        assert "unexpected" not in result.err, result.err
    with pytest.raises(ArtifactError) as raised:
        pt2kit.load(path)
    assert all(word in str(raised.value) for word in words), str(raised.value)
    pytest.importorskip("fastapi")
    from pt2kit.serve import ServeOptions, build_app

    with pytest.raises(ArtifactError):
        build_app([path], ServeOptions(warm_up=False))


def test_a_class_named_in_the_program_spec_is_not_imported(programs, folder, cli):
    """The program's own pytree spec (torch's `models/model.json`) keeps constants such as a dtype or a class; pt2kit
    decodes them (`pt2kit.pytrees.spec_codec`) under the same rule as the manifest's names."""
    def plant(text: str) -> str:
        old = '[[\\"dtype\\", {\\"dtype\\": \\"float32\\"}]]'
        assert old in text
        return text.replace(old, f'[[\\"dtype\\", {{\\"type\\": \\"{EVIL_MODULE}.Thing\\"}}]]')

    with zipfile.ZipFile(programs["types"]) as zf:
        name = next(n for n in zf.namelist() if n.endswith("models/model.json"))
        text = plant(zf.read(name).decode())
    path = _tamper(programs["types"], folder / "spec.pt2", text, entry="models/model.json")
    for args in (["inspect", path], ["run", path, "--input", "x=float32[2,8]"]):
        check_one_line_error(cli(*args), EVIL_MODULE, "--trust-import")
    with pytest.raises(UntrustedImportError):
        pt2kit.load(path)


def test_a_trusted_module_is_imported_and_the_refusal_names_the_option(programs, folder, cli):
    """The control: the planted module does run when imported, so the cases above prove something."""
    trusted = "pt2kit_trusted_module"
    (folder / f"{trusted}.py").write_text(
        f"import pathlib\npathlib.Path({str(folder / 'trusted.txt')!r}).touch()\nclass Thing:\n    pass\n")
    record = {"type": f"{trusted}.Thing", "serialized_name": f"pt2kit:{trusted}.Thing", "strategy": "attributes"}
    path = _tamper(programs["types"], folder / "trusted.pt2", _set("pytree_types.0", record))
    with pytest.raises(UntrustedImportError) as raised:
        pt2kit.load(path)
    assert raised.value.module == trusted and f"--trust-import {trusted}" in str(raised.value)
    check_one_line_error(cli("inspect", path), f"--trust-import {trusted}")
    assert not (folder / "trusted.txt").exists()
    try:
        registration = pt2kit.register_types(path, trust_imports=[trusted])
        assert (folder / "trusted.txt").exists() and f"{trusted}.Thing" in registration.types
    finally:
        sys.modules.pop(trusted, None)


def test_an_unfindable_type_comes_back_as_a_stand_in_with_a_note(programs, folder):
    record = {"type": "no_such_module_anywhere.Thing", "serialized_name": "pt2kit:no_such_module_anywhere.Thing",
              "strategy": "attributes"}
    path = _tamper(programs["types"], folder / "standin.pt2", _set("pytree_types.0", record))
    registration = pt2kit.register_types(path)
    assert any("no_such_module_anywhere.Thing" in note and "stand-in" in note for note in registration.notes)


def test_inspect_says_what_loading_runs(programs, cli):
    result = cli("inspect", programs["derived"], "--json")
    assert result.code == 0 and result.json()["native_code"] is False
    assert "runs no code" in cli("inspect", programs["derived"]).out


def test_trust_import_takes_only_module_names(programs, cli):
    check_one_line_error(cli("inspect", programs["derived"], "--trust-import", "os; rm -rf"), "is not a module name")
    with pytest.raises(pt2kit.UsageError, match="not a module name"):
        pt2kit.load(programs["derived"], trust_imports=["__import__('os')"])
