"""What a newcomer meets first (issue 23.9): the README's setup works as written, the help names what the commands
take, and stderr carries pt2kit's progress and errors, not torch's warnings or Inductor's autotune tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, case
from pt2kit.cli import COMMANDS, READS_ARTIFACTS, build_parser

README = (ROOT / "README.md").read_text()


def _help(command: str) -> str:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return " ".join(action.choices[command].format_help().split())


def test_the_readme_says_how_to_activate_the_venv_before_the_quickstart():
    setup, quickstart = README.split("## Quickstart", 1)
    assert "`. .venv/bin/activate`" in setup and "make demo" in setup
    assert quickstart.lstrip().startswith("```bash\npt2kit ")  # the line that needs the venv active


def test_the_readme_claims_json_only_for_commands_that_have_it():
    without = sorted(name for name, _, _ in COMMANDS if "--json" not in _help(name))
    assert without == ["serve"]
    assert "Every command but `serve`" in README and "Every command: `--json`" not in README


def test_bench_help_lists_every_mode_it_takes():
    text = _help("bench")
    for mode in ("eager", "compile", "export", "aoti", "aoti-raw", "onnxruntime"):
        assert re.search(rf"(?<![\w-]){mode}(?![\w-])", text), mode


def test_verify_help_names_region_archives():
    assert "region archive" in _help("verify")


@pytest.mark.parametrize("name", sorted(READS_ARTIFACTS))
def test_every_command_that_reads_artifacts_takes_trust_import(name):
    assert "--trust-import MODULE" in _help(name)


# runs `pt2kit compile` in this process, counting Inductor's calls that print autotune tables when allowed to
_COUNTING_COMPILE = """
import sys
import torch._inductor.config
import torch._inductor.select_algorithm as sa
from pt2kit.cli import main

# autotune again even where an earlier build stored its choices (compiled kernels still come from Inductor's cache)
torch._inductor.config.autotune_local_cache = False
torch._inductor.config.fx_graph_cache = False

calls = []
original = sa.AlgorithmSelectorCache.log_results
sa.AlgorithmSelectorCache.log_results = staticmethod(lambda *a, **k: (calls.append(1), original(*a, **k))[1])
code = main(sys.argv[1:])
print(f"autotuned {len(calls)}", file=sys.__stdout__)
sys.exit(code)
"""


@pytest.mark.slow
def test_a_max_autotune_compile_keeps_stderr_clean_unless_verbose(tmp_path):
    """Inductor prints autotune tables and choice statistics to stderr, and torch warns (TypedStorage) while
    autotuning: none of it reaches the user unless `-v`. A fresh process, autotuning with no stored choices and an
    empty pt2kit cache; the count shows the build did autotune, so the clean stderr means something."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PT2KIT_CACHE_DIR=str(tmp_path / "pt2kit"))
    proc = subprocess.run([sys.executable, "-c", _COUNTING_COMPILE, "compile", f"{case('linear_relu')}:model",
                           "-o", str(tmp_path / "m.aoti.pt2"), "--preset", "max-autotune", "-q"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split("autotuned ")[1]) > 0, proc.stdout
    assert proc.stderr == "", proc.stderr[-2000:]


def test_verbose_lets_inductor_print(monkeypatch):
    """`-v` leaves Inductor's printing switch as torch set it; the default turns it off for the build only."""
    import torch._inductor.select_algorithm as select_algorithm

    from pt2kit import progress
    from pt2kit.compile.build import quiet_inductor

    assert select_algorithm.PRINT_AUTOTUNE
    with quiet_inductor():
        assert not select_algorithm.PRINT_AUTOTUNE
    assert select_algorithm.PRINT_AUTOTUNE
    monkeypatch.setattr(progress, "_verbose", True)
    with quiet_inductor():
        assert select_algorithm.PRINT_AUTOTUNE
