"""The house rules of src/pt2kit, read from the code (docs/architecture.md draws the picture).

- Imports point down the layers below, never up or sideways: a module may import its own package and any
  package in a lower layer. This holds for function-local imports too, so no local import can hide a cycle.
- A private name (`_x`) is not used outside the package that defines it.
- Every module stays under 400 lines; every package's `__init__` says what it owns and what it may import.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "pt2kit"

# Bottom to top. Packages in one layer do not import each other; to let one use another, give it its own
# layer above. `serve`, `tune`, `migrate` and `partial` are the top-level stages being added beside `survey`.
LAYERS: list[set[str]] = [
    {"lazy"},  # names imported on first use, for the public API's __init__ files
    {"pt2kit", "errors", "progress", "tables"},  # public API, exception tree, progress on stderr, text tables
    {"target", "pytrees"},
    {"artifact"},  # .pt2 I/O, manifest, input contract, load and run: what every later stage reads
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


def _imports(module: str, path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported pt2kit module, names taken from it) for every import in the file, local ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "pt2kit"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "pt2kit":
                continue
            names = [a.name for a in node.names]
            # `from pt2kit import progress` imports the module pt2kit.progress
            submodules = [n for n in names if f"{base}.{n}" in MODULES]
            found += [(node.lineno, f"{base}.{n}", []) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest:
                found.append((node.lineno, base, rest))
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
        for line, imported, _ in _imports(module, path):
            there = _package(imported)
            if there != here and LAYER_OF.get(there, -1) >= LAYER_OF.get(here, -1):
                wrong.append(f"{path.relative_to(SRC.parent)}:{line}: {here} (layer {LAYER_OF.get(here)}) imports "
                             f"{imported} (layer {LAYER_OF.get(there)})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_private_name_leaves_its_package():
    wrong = []
    for module, path in MODULES.items():
        here = _package(module)
        tree = ast.parse(path.read_text(), filename=str(path))
        module_aliases: dict[str, str] = {}  # local name -> pt2kit module it is bound to
        for line, imported, names in _imports(module, path):
            if _package(imported) == here:
                continue
            wrong += [f"{path.relative_to(SRC.parent)}:{line}: imports {imported}.{n}" for n in names if _is_private(n)]
            if not names:
                module_aliases[imported.rpartition(".")[2]] = imported
        for node in ast.walk(tree):  # `progress._quiet` through a module imported from another package
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in module_aliases
                    and _is_private(node.attr)):
                wrong.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: uses {module_aliases[node.value.id]}.{node.attr}")
    assert not wrong, "private names used outside their package:\n" + "\n".join(wrong)


def test_modules_stay_under_400_lines():
    long = {m: n for m, path in MODULES.items() if (n := len(path.read_text().splitlines())) >= 400}
    assert not long, f"split these modules along a seam a reader would name: {long}"


def test_every_package_says_what_it_owns_and_may_import():
    missing = []
    for init in sorted(SRC.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if "May import" not in doc:
            missing.append(init.parent.name)
    assert not missing, f"these packages' __init__ docstrings do not say what they may import: {missing}"
