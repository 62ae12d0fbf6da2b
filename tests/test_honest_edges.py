"""Honest edges (issue 23.8): exit codes survive a closed pipe, `sys.exit` is blamed on whoever called it, bad
tolerances and ignored options are usage errors, output paths fail before any build, and fallbacks are said."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pt2kit
from conftest import ROOT, case, check_one_line_error

BAD_TARGETS = '''
import argparse
import torch
from torch import nn


class LibraryExits(nn.Module):
    def forward(self, x):
        argparse.ArgumentParser(prog="lib").parse_args(["--no-such-flag"])  # argparse calls sys.exit(2)
        return x


class ModelExits(nn.Module):
    def forward(self, x):
        raise SystemExit(5)


library_exits = LibraryExits()
model_exits = ModelExits()
example_args = (torch.randn(2, 4),)
'''


@pytest.fixture(scope="module")
def wrong_weights(tmp_path_factory):
    """A program of `verify_weights:retrained`, which fails verification against `verify_weights:model`."""
    out = tmp_path_factory.mktemp("pipe") / "retrained.pt2"
    pt2kit.export_program(pt2kit.load_target(f"{case('verify_weights')}:retrained"), out, check_specialization=False)
    return out


def _closed_pipe(*args: str) -> tuple[int, str]:
    """Run `python -m pt2kit ARGS` with its stdout a pipe that the reader closed at once (`... | head -0`)."""
    read, write = os.pipe()
    os.close(read)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "pt2kit", *args], stdout=write, stderr=subprocess.PIPE, text=True,
                          timeout=300, env=env)
    os.close(write)
    return proc.returncode, proc.stderr


def test_a_closed_pipe_keeps_a_failed_verify_exit_code(wrong_weights):
    code, err = _closed_pipe("verify", f"{case('verify_weights')}:model", str(wrong_weights), "--samples", "1", "--json", "-q")
    assert code == 1, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_closed_pipe_keeps_success(wrong_weights):
    code, err = _closed_pipe("inspect", str(wrong_weights), "--json")
    assert code == 0, err
    assert "Traceback" not in err


def test_sys_exit_in_a_library_is_not_blamed_on_the_model(tmp_path, cli):
    models = tmp_path / "exits.py"
    models.write_text(BAD_TARGETS)
    library = cli("export", f"{models}:library_exits", "-o", tmp_path / "a.pt2")
    check_one_line_error(library, "library `argparse`", "sys.exit(2)", "not the model's own code", code=1)
    assert "the model's code" not in library.err
    own = cli("export", f"{models}:model_exits", "-o", tmp_path / "b.pt2")
    check_one_line_error(own, "the model's code called `sys.exit(5)`", f"{models}:", code=2)


@pytest.mark.parametrize("flag", ["--atol", "--rtol"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_tune_refuses_a_tolerance_that_lets_everything_through(flag, value, tmp_path, capsys):
    from pt2kit.cli import main

    with pytest.raises(SystemExit) as exited:  # argparse's usage error, as for every other bad flag
        main(["tune", f"{case('linear_relu')}:model", "-o", str(tmp_path / "t.pt2"), f"{flag}={value}"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "finite number" in err and len(err.strip().splitlines()) == 1


def test_tune_model_refuses_nan_in_python(tmp_path):
    with pytest.raises(pt2kit.UsageError, match="finite"):
        pt2kit.tune_model(f"{case('linear_relu')}:model", tmp_path / "t.pt2", atol=float("nan"))


def test_compile_of_a_program_refuses_dynamic(linear_program, tmp_path, cli):
    result = cli("compile", linear_program, "-o", tmp_path / "x.aoti.pt2", "--dynamic", "input:0=batch[1,8]")
    check_one_line_error(result, "`--dynamic`", "pt2kit export TARGET")
    assert not (tmp_path / "x.aoti.pt2").exists()


@pytest.mark.parametrize("command", [
    ["compile", "{target}", "--partial"],
    ["tune", "{target}"],
    ["migrate", "{archive}"],
])
def test_output_paths_are_checked_before_the_build(command, tmp_path, cli):
    folder = tmp_path / "is_a_folder.pt2"
    folder.mkdir()
    missing = tmp_path / "missing" / "out.pt2"
    args = [a.format(target=f"{case('linear_relu')}:model", archive=tmp_path / "model.pt") for a in command]
    for output in (folder, missing):
        result = cli(*args, "-o", output)
        check_one_line_error(result, str(output.parent if output is missing else output))


def test_tune_checks_keep_before_the_build(tmp_path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("tune", f"{case('linear_relu')}:model", "-o", tmp_path / "t.pt2", "--keep", blocker / "sub")
    check_one_line_error(result, "--keep")


def test_a_stand_in_type_is_said_by_run_in_a_fresh_process(tmp_path):
    """The model's module is not importable in a fresh process: its output type comes back as a stand-in, and
    `pt2kit run` says so instead of failing or hiding it."""
    # A copy of the case file: exporting registers its types in this process, and the shared case module must
    # stay unregistered for test_pytree_types.
    source = tmp_path / "det_model.py"
    source.write_text(Path(case("dataclass_output")).read_text())
    pt2kit.export_program(pt2kit.load_target(f"{source}:model"), tmp_path / "det.pt2", check_specialization=False)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "pt2kit", "run", str(tmp_path / "det.pt2"), "--input", "x=float32[4,8]", "-q"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note:" in proc.stdout and "stand-in" in proc.stdout and "Detections" in proc.stdout
