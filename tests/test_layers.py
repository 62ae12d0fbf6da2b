"""The house rules of src/pt2kit, read from the code (docs/architecture.md draws the picture).

- Imports point down the layers below, never up or sideways: a module may import its own package and any
  package in a lower layer. This holds for function-local imports too, so no local import can hide a cycle.
- A private name (`_x`) is not used outside the package that defines it: not imported, not reached through a
  module (`pg._x` after `import pt2kit.progress as pg`), not fetched by `getattr(obj, "_x")`.
- Every module stays under 400 lines; every package's `__init__` says what it owns and what it may import, and
  its `May import:` line names exactly the packages its modules import.
- docs/architecture.md's ownership table names every module.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parents[1] / "src" / "pt2kit"

# Bottom to top. Packages in one layer do not import each other; to let one use another, give it its own
# layer above. `serve`, `tune`, `migrate` and `partial` are the top-level stages being added beside `survey`.
LAYERS: list[set[str]] = [
    {"lazy"},  # names imported on first use, for the public API's __init__ files
    {"pt2kit", "errors", "progress", "tables"},  # public API, exception tree, progress on stderr, text tables
    {"target", "pytrees"},
    {"artifact"},  # what is in the file: .pt2 I/O, manifest, input contract, region archives
    {"runtime"},  # how a file is opened and called: loader, libstdc++ check, CUDA graphs, `pt2kit.load`
    {"capture"},  # torch.export capture strategies and the checks run on a capture
    {"shapes"},
    {"rewrite"},
    {"diagnose", "export"},  # diagnosis, and the export stage that writes the .pt2
    {"compile", "cpp"},
    {"verify"},
    {"benchmark"},  # bench checks every mode's outputs with verify's comparison before timing
    {"survey", "serve", "tune", "migrate", "partial"},
    {"cli"},
    {"__main__"},  # `python -m pt2kit`
]
LAYER_OF = {package: i for i, layer in enumerate(LAYERS) for package in layer}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ("pt2kit",) + path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package(module: str) -> str:
    """`pt2kit.export.program` -> `export`; `pt2kit.errors` -> `errors`; `pt2kit` -> `pt2kit`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pt2kit"


class Import(NamedTuple):
    line: int
    module: str  # the pt2kit module imported
    names: list[str]  # names taken from it; empty when the module itself is bound
    bound: dict[str, str]  # local name -> the pt2kit module it is bound to (`import x as y`, `from . import y`)


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@functools.cache
def _imports(module: str, path: Path) -> list[Import]:
    """Every pt2kit import in the file, function-local ones included, with the local names each one binds."""
    tree = _tree(path)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "pt2kit":
                    # `import pt2kit.progress as pg` binds pg to pt2kit.progress; without `as`, it binds `pt2kit`
                    bound = {a.asname: a.name} if a.asname else {"pt2kit": "pt2kit"}
                    found.append(Import(node.lineno, a.name, [], bound))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "pt2kit":
                continue
            # `from pt2kit import progress` (or `from .. import progress as pg`) imports the module pt2kit.progress
            rest = []
            for a in node.names:
                if f"{base}.{a.name}" in MODULES:
                    found.append(Import(node.lineno, f"{base}.{a.name}", [], {a.asname or a.name: f"{base}.{a.name}"}))
                else:
                    rest.append(a.name)
            if rest:
                found.append(Import(node.lineno, base, rest, {}))
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_every_package_has_a_layer():
    unknown = sorted({_package(m) for m in MODULES} - set(LAYER_OF))
    assert not unknown, f"add {unknown} to LAYERS in tests/test_layers.py and to docs/architecture.md"


def test_imports_point_down_the_layers():
    wrong = []
    for module, path in MODULES.items():
        here = _package(module)
        for line, imported, _, _ in _imports(module, path):
            there = _package(imported)
            if there != here and LAYER_OF.get(there, -1) >= LAYER_OF.get(here, -1):
                wrong.append(f"{path.relative_to(SRC.parent)}:{line}: {here} (layer {LAYER_OF.get(here)}) imports "
                             f"{imported} (layer {LAYER_OF.get(there)})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def _private_names_defined() -> dict[str, set[str]]:
    """Package -> the private names its modules define: functions, classes, module globals, `self._x` attributes."""
    defined: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        names = defined.setdefault(_package(module), set())
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
        defined[_package(module)] = {n for n in names if _is_private(n)}
    return defined


# Private reaches the test knows about, each with the change that removes it. An entry that no longer matches
# fails the test, so the list only shrinks.
KNOWN_PRIVATE_REACHES: set[str] = set()  # none today; an entry names a reach that is allowed for now, and why


def test_no_private_name_leaves_its_package():
    defined = _private_names_defined()
    wrong = []
    for module, path in MODULES.items():
        here = _package(module)
        where = path.relative_to(SRC.parent)
        tree = _tree(path)
        bound: dict[str, str] = {}  # local name -> pt2kit module it is bound to
        for line, imported, names, binds in _imports(module, path):
            bound.update(binds)
            if _package(imported) != here:
                wrong += [f"{where}:{line}: imports {imported}.{n}" for n in names if _is_private(n)]
        for node in ast.walk(tree):
            # `progress._quiet`, `pg._quiet` or `pt2kit.progress._quiet` through a module bound by an import
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                owner = _bound_module(node.value, bound)
                if owner and _package(owner) != here:
                    wrong.append(f"{where}:{node.lineno}: uses {owner}.{node.attr}")
            # getattr(obj, "_x") / hasattr / setattr, where another package defines `_x` and this one does not
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                  and _is_private(name := node.args[1].value) and name not in defined.get(here, set())):
                owners = sorted(p for p, names in defined.items() if name in names and p != here)
                if owners:
                    wrong.append(f"{where}: {node.func.id}(..., {name!r}) reaches {', '.join(owners)}'s private name")
    stale = KNOWN_PRIVATE_REACHES - set(wrong)
    assert not stale, f"these known reaches are gone; remove them from KNOWN_PRIVATE_REACHES: {sorted(stale)}"
    wrong = [w for w in wrong if w not in KNOWN_PRIVATE_REACHES]
    assert not wrong, "private names used outside their package:\n" + "\n".join(wrong)


def _bound_module(node: ast.expr, bound: dict[str, str]) -> str | None:
    """The pt2kit module an expression like `pg` or `pt2kit.progress` names, or None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        parent = _bound_module(node.value, bound)
        if parent and f"{parent}.{node.attr}" in MODULES:
            return f"{parent}.{node.attr}"
    return None


def test_modules_stay_under_400_lines():
    long = {m: n for m, path in MODULES.items() if (n := len(path.read_text().splitlines())) >= 400}
    assert not long, f"split these modules along a seam a reader would name: {long}"


def _may_import(doc: str) -> tuple[set[str] | None, set[str]]:
    """(the packages named as allowed, those named otherwise) from a docstring's `May import:` paragraph.

    The allowed ones are the backticked names before the first `;` or sentence end (`any package` allows all
    below); every other backticked package in the paragraph is one the docstring says it does not import.
    """
    paragraph = doc[doc.index("May import:"):].split("\n\n")[0]
    body = paragraph[len("May import:"):]
    head = re.split(r";|\.\s|\.$", body, maxsplit=1)[0]
    tail = body[len(head):]

    def packages(text: str) -> set[str]:
        found = set()
        for name in re.findall(r"`([\w.]+)`", text):
            parts = name.split(".")
            if parts[0] == "pt2kit":
                found.add(parts[1] if len(parts) > 1 and parts[1] in LAYER_OF else "pt2kit")
            elif parts[0] in LAYER_OF:
                found.add(parts[0])
        return found

    allowed = None if "any package" in head else packages(head)
    return allowed, packages(tail) - (allowed or set())


def _imported_packages(package: str) -> set[str]:
    return {_package(imported) for module, path in MODULES.items() if _package(module) == package
            for _, imported, _, _ in _imports(module, path)} - {package}


def test_every_package_says_what_it_owns_and_may_import():
    missing = []
    for init in sorted(SRC.glob("*/__init__.py")):
        doc = ast.get_docstring(_tree(init)) or ""
        if "May import:" not in doc:
            missing.append(init.parent.name)
    assert not missing, f"these packages' __init__ docstrings do not say what they may import: {missing}"


def test_may_import_lines_say_what_the_code_imports():
    wrong = []
    for init in sorted(SRC.glob("*/__init__.py")):
        package = init.parent.name
        allowed, denied = _may_import(ast.get_docstring(_tree(init)) or "May import:")
        imported = _imported_packages(package)
        if allowed is not None:
            if unnamed := imported - allowed:
                wrong.append(f"{package}: imports {sorted(unnamed)}, which its `May import:` line leaves out")
            if unused := allowed - imported:
                wrong.append(f"{package}: `May import:` names {sorted(unused)}, which it does not import")
            if above := {p for p in allowed if LAYER_OF.get(p, 99) >= LAYER_OF[package]}:
                wrong.append(f"{package}: `May import:` names {sorted(above)}, not in a layer below it")
        if denied_but_imported := denied & imported:
            wrong.append(f"{package}: its docstring says it does not import {sorted(denied_but_imported)}, "
                         "but it does")
    assert not wrong, "fix these `May import:` lines (tests/test_layers.py reads them):\n" + "\n".join(wrong)


ARCHITECTURE = SRC.parents[1] / "docs" / "architecture.md"


def test_architecture_table_lists_every_module():
    rows = {}
    for line in ARCHITECTURE.read_text().splitlines():
        if m := re.match(r"\| `(\w+)/` \|(.*)", line):
            rows[m.group(1)] = set(re.findall(r"`([\w/]+\.py)`", m.group(2)))
    missing = []
    for module, path in MODULES.items():
        relative = path.relative_to(SRC)
        package = relative.parts[0] if len(relative.parts) > 1 else "pt2kit"
        name = "/".join(relative.parts[1:]) if len(relative.parts) > 1 else relative.name
        if name.endswith("__init__.py") and package != "pt2kit":  # a package's own row names it
            continue
        if name not in rows.get(package, set()):
            missing.append(f"{package}/{name}")
    assert not missing, f"name these modules in their package's row of docs/architecture.md's table: {missing}"
