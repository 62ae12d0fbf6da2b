"""The README matches the code: every subcommand and flag is documented, and its Python example runs."""

import re
from pathlib import Path

import pytest

from pt2kit.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_every_subcommand_and_flag_is_in_the_cli_reference(name):
    reference = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    assert f"pt2kit {name} " in reference
    block = re.search(rf"^pt2kit {re.escape(name)} .*?(?=^pt2kit |^```)", reference, re.M | re.S).group()
    for action in _subparsers()[name]._actions:
        options = [o for o in action.option_strings if o not in ("-h", "--help")]
        if options:
            assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?=[\] ])", block) for o in options), (
                f"`{options[-1]}` of `pt2kit {name}` is missing from the README"
            )


def test_readme_python_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "out").mkdir()
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "out" / "cnn.pt2").is_file()


def test_linked_docs_exist():
    for link in re.findall(r"\]\(((?:docs|benchmarks)/[^)]+)\)", README):
        assert (ROOT / link).is_file(), link
