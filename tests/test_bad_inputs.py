"""Every subcommand, fed malformed input: exit 2, one short `error:` line, no traceback, no file left behind.

One table, one check. Most rows fail before anything is built (paths, specs, numbers, the user's file, tensor
files); the archive rows load a damaged copy of one small program exported once. A handful run through a real
subprocess, so nothing in-process (capsys, pytest's own handlers) can hide a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from pt2kit import progress
from pt2kit.cli import main

MODELS = '''
import sys
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x)


model = Small().eval()
example_args = (torch.randn(3, 4),)
not_a_module = 3


def factory_raises():
    raise ValueError("no weights here")


def factory_exits():
    sys.exit(3)


def needs_args(n):
    return Small()


class CtorRaises(nn.Module):
    def __init__(self):
        super().__init__()
        raise KeyError("config")


class ExitsInForward(nn.Module):
    def forward(self, x):
        sys.exit("bye")


exits_in_forward = ExitsInForward()
'''


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of bad things to point pt2kit at, and one good program (exported once) to damage."""
    d = tmp_path_factory.mktemp("bad-inputs")
    (d / "models.py").write_text(MODELS)
    (d / "exits.py").write_text("import sys\nsys.exit(4)\n")
    (d / "syntax.py").write_text("def broken(:\n")
    (d / "bad_examples.py").write_text("import torch\nmodel = torch.nn.Linear(4, 2)\nexample_args = 5\n")
    (d / "no_examples.py").write_text("import torch\nmodel = torch.nn.Linear(4, 2)\n")
    (d / "a_folder").mkdir()
    (d / "garbage.npy").write_bytes(b"\x93NUMPY not really")
    (d / "garbage.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    (d / "empty.safetensors").write_bytes(b"")
    (d / "x.txt").write_text("1 2 3")
    torch.save("a string", d / "string.pt")
    torch.save({"y": torch.ones(3, 4), "z": torch.ones(3, 4)}, d / "two.pt")
    (d / "targets.txt").write_text("models.py:model --input x=float32[3,\n")
    program = d / "prog.pt2"
    assert main(["export", f"{d / 'models.py'}:model", "-o", str(program), "--dynamic", "x:0=batch[1,16]", "-q"]) == 0
    progress.set_quiet(False)
    data = program.read_bytes()
    (d / "truncated.pt2").write_bytes(data[: len(data) // 2])
    (d / "empty.pt2").write_bytes(b"")
    (d / "text.pt2").write_text("hello")
    with zipfile.ZipFile(d / "other.pt2", "w") as zf:
        zf.writestr("readme.txt", "a zip, but not a .pt2")
    _rewrite(program, d / "weights.pt2", lambda name, b: b[:-4] + b"\0\0\0\0" if "weights/weight_" in name and len(b) > 8 else b)
    _rewrite(program, d / "manifest_garbage.pt2", lambda name, b: b"{not json" if name.endswith("manifest.json") else b)
    _rewrite(program, d / "manifest_tampered.pt2", lambda name, b: _tamper(b) if name.endswith("manifest.json") else b)
    _rewrite(program, d / "no_model.pt2", lambda name, b: None if name.endswith(".json") and "models/" in name else b)
    return d


def _rewrite(src: Path, dst: Path, change) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = change(item.filename, zin.read(item))
            if data is not None:
                zout.writestr(item, data)


def _tamper(manifest: bytes) -> bytes:
    doc = json.loads(manifest)
    doc["weights_sha256"] = "0" * 64
    return json.dumps(doc).encode()


M = "{d}/models.py"
P = "{d}/prog.pt2"
O = "{out}/o.pt2"

# (id, argv, a word the error line must contain). {d}: the inputs folder, {out}: this test's empty folder.
CASES = [
    # the target and the user's file
    ("target-missing-file", ["export", "{d}/nope.py:model", "-o", O], "does not exist"),
    ("target-no-colon", ["export", M, "-o", O], "path/to/file.py:NAME"),
    ("target-unknown-package", ["diagnose", "no_such_pkg_xyz.mod:model"], "no Python module"),
    ("target-no-attribute", ["export", M + ":Missing", "-o", O], "no attribute `Missing`"),
    ("target-not-a-module", ["export", M + ":not_a_module", "-o", O], "not an nn.Module"),
    ("target-factory-raises", ["export", M + ":factory_raises", "-o", O], "ValueError"),
    ("target-factory-exits", ["diagnose", M + ":factory_exits"], "sys.exit(3)"),
    ("target-factory-needs-args", ["export", M + ":needs_args", "-o", O], "needs arguments"),
    ("target-constructor-raises", ["compile", M + ":CtorRaises", "-o", "{out}/o.aoti.pt2"], "KeyError"),
    ("target-file-exits-on-import", ["export", "{d}/exits.py:model", "-o", O], "sys.exit(4)"),
    ("target-file-syntax-error", ["verify", "{d}/syntax.py:model", P], "SyntaxError"),
    ("target-forward-exits", ["export", M + ":exits_in_forward", "-o", O, "-i", "x=float32[2,4]"], "sys.exit"),
    ("target-example-args-not-tuple", ["export", "{d}/bad_examples.py:model", "-o", O], "example_args"),
    ("target-no-example-inputs", ["diagnose", "{d}/no_examples.py:model"], "--input"),
    # --input specs and numbers
    ("input-malformed-number", ["export", M + ":model", "-o", O, "-i", "x=float32[3,4]@1.2.3..4"], "`1.2.3` is not a number"),
    ("input-float-range-on-int", ["run", P, "-i", "x=int64[3,4]@0.5..3"], "not an integer"),
    ("input-range-outside-dtype", ["run", P, "-i", "x=int8[3,4]@0..1000"], "does not fit `int8`"),
    ("input-infinite-bound", ["run", P, "-i", "x=float32[3,4]@0..1e999"], "not a finite number"),
    ("input-empty-range", ["run", P, "-i", "x=float32[3,4]@2..1"], "empty range"),
    ("input-bool-with-range", ["run", P, "-i", "x=bool[3,4]@0..5"], "bool"),
    ("input-shape-larger-than-memory", ["run", P, "-i", "x=float32[100000000,100000000]"], "GiB"),
    ("input-unknown-dtype", ["run", P, "-i", "x=float128[3,4]"], "unknown dtype"),
    ("input-not-a-spec", ["run", P, "-i", "x=float32[3,"], "not a valid input"),
    ("input-bad-name", ["run", P, "-i", "3x=float32[3,4]"], "not an input name"),
    ("input-wrong-size", ["run", P, "-i", "x=float32[3,5]"], "expected 4"),
    ("input-outside-dynamic-range", ["run", P, "-i", "x=float32[40,4]"], "outside the range"),
    ("input-wrong-dtype", ["run", P, "-i", "x=int64[3,4]"], "dtype int64"),
    ("input-unknown-name", ["run", P, "-i", "y=float32[3,4]"], "missing input"),
    ("input-given-twice", ["run", P, "-i", "x=float32[3,4]", "-i", "x=float32[2,4]"], "given 2 times"),
    ("input-does-not-fit-forward", ["diagnose", M + ":model", "-i", "y=float32[3,4]"], "do not fit"),
    # tensor files
    ("tensor-file-missing", ["run", P, "-i", "x=@{d}/nope.npy"], "does not exist"),
    ("tensor-file-is-folder", ["run", P, "-i", "x=@{d}/a_folder"], "is a folder"),
    ("tensor-file-garbage-npy", ["run", P, "-i", "x=@{d}/garbage.npy"], "cannot read tensors"),
    ("tensor-file-garbage-safetensors", ["run", P, "-i", "x=@{d}/garbage.safetensors"], "cannot read tensors"),
    ("tensor-file-empty-safetensors", ["export", M + ":model", "-o", O, "-i", "x=@{d}/empty.safetensors"], "cannot read tensors"),
    ("tensor-file-unknown-suffix", ["run", P, "-i", "x=@{d}/x.txt"], "unknown suffix"),
    ("tensor-file-not-a-tensor", ["run", P, "-i", "x=@{d}/string.pt"], "holds a str"),
    ("tensor-file-key-missing", ["run", P, "-i", "x=@{d}/two.pt"], "not `x`"),
    # --dynamic and --sample specs
    ("dynamic-malformed", ["export", M + ":model", "-o", O, "--dynamic", "x:0=b[1;4]"], "column"),
    ("dynamic-empty-range", ["diagnose", M + ":model", "--dynamic", "x:0=b[5,2]"], "empty range"),
    ("dynamic-no-such-dim", ["export", M + ":model", "-o", O, "--dynamic", "x:9=b[1,5]"], "no dim 9"),
    ("dynamic-bound-above-int64", ["export", M + ":model", "-o", O, "--dynamic", "x:0=b[1,99999999999999999999999]"], "int64"),
    ("dynamic-no-such-input", ["compile", M + ":model", "-o", "{out}/o.aoti.pt2", "--dynamic", "y:0=b[1,5]"], "`y`"),
    ("sample-file-missing", ["export", M + ":model", "-o", O, "--sample", "{d}/nope.safetensors", "--sample", "x=float32[2,4]"], "does not exist"),
    # archives: missing, corrupt, truncated, tampered
    ("archive-missing", ["inspect", "{d}/nope.pt2"], "does not exist"),
    ("archive-is-folder", ["run", "{d}/a_folder"], "does not exist"),
    ("archive-truncated", ["run", "{d}/truncated.pt2", "-i", "x=float32[3,4]"], "corrupt or truncated"),
    ("archive-empty", ["inspect", "{d}/empty.pt2"], "corrupt or truncated"),
    ("archive-not-a-zip", ["compile", "{d}/text.pt2", "-o", "{out}/o.aoti.pt2"], "corrupt or truncated"),
    ("archive-foreign-zip", ["inspect", "{d}/other.pt2"], "not a .pt2"),
    ("archive-damaged-weights", ["run", "{d}/weights.pt2", "-i", "x=float32[3,4]"], "checksum"),
    ("archive-manifest-garbage", ["inspect", "{d}/manifest_garbage.pt2"], "manifest"),
    ("archive-manifest-tampered", ["verify", M + ":model", "{d}/manifest_tampered.pt2"], "do not match"),
    ("archive-program-missing", ["compile", "{d}/no_model.pt2", "-o", "{out}/o.aoti.pt2"], "no_model.pt2"),
    ("archive-model-file-as-artifact", ["verify", M + ":model", M], "corrupt or truncated"),
    # output paths
    ("output-is-folder", ["export", M + ":model", "-o", "{out}"], "is a folder"),
    ("output-folder-missing", ["export", M + ":model", "-o", "{out}/no/o.pt2"], "does not exist"),
    ("output-parent-is-file", ["compile", P, "-o", "{d}/models.py/o.aoti.pt2"], "is a file"),
    ("output-unwritable", ["export", M + ":model", "-o", "/proc/o.pt2"], "cannot write"),
    ("output-without-pt2-suffix", ["compile", P, "-o", "{out}/o.so"], "must end in .pt2"),
    ("run-out-is-folder", ["run", P, "-i", "x=float32[3,4]", "--out", "{out}"], "is a folder"),
    ("run-out-unwritable", ["run", P, "-i", "x=float32[3,4]", "--out", "/proc/y.safetensors"], "cannot write"),
    ("write-patch-is-folder", ["export", M + ":model", "-o", O, "--write-patch", "{out}"], "is a folder"),
    ("bench-keep-is-file", ["bench", M + ":model", "--modes", "eager", "--keep", "{d}/models.py"], "is a file"),
    ("bench-plot-not-png", ["bench", M + ":model", "--plot", "{out}/chart.jpg"], ".png"),
    ("bench-plot-in-folder-missing", ["bench", M + ":model", "--plot", "{out}/no/chart.png"], "does not exist"),
    ("cpp-runner-output-is-file", ["cpp-runner", "-o", "{d}/models.py"], "is a file"),
    ("cpp-runner-output-unwritable", ["cpp-runner", "-o", "/proc/runner"], "cannot write"),
    ("survey-workdir-is-file", ["survey", M + ":model", "--workdir", "{d}/models.py"], "is a file"),
    # devices and numbers out of range
    ("compile-device-with-index", ["compile", P, "-o", "{out}/o.aoti.pt2", "--device", "cuda:x"], "--device"),
    ("bench-device-malformed", ["bench", M + ":model", "--device", "cuda:x"], "not a device"),
    ("bench-device-unknown", ["bench", M + ":model", "--device", "tpu"], "not a device"),
    ("survey-device-malformed", ["survey", M + ":model", "--device", "cuda:x"], "not a device"),
    ("verify-samples-negative", ["verify", M + ":model", P, "--samples", "-1"], "--samples"),
    ("verify-atol-negative", ["verify", M + ":model", P, "--atol", "-1"], "--atol"),
    ("verify-rtol-nan", ["verify", M + ":model", P, "--rtol", "nan"], "--rtol"),
    ("verify-max-size-zero", ["verify", M + ":model", P, "--max-size", "0"], "--max-size"),
    ("export-samples-not-a-number", ["export", M + ":model", "-o", O, "--verify", "--samples", "many"], "--samples"),
    ("bench-iters-zero", ["bench", M + ":model", "--iters", "0"], "iters"),
    ("bench-warmup-negative", ["bench", M + ":model", "--warmup", "-1"], "warm-up"),
    ("bench-threads-zero", ["bench", M + ":model", "--threads", "0"], "--threads"),
    ("bench-batch-sizes-zero", ["bench", M + ":model", "--batch-sizes", "0"], "at least 1"),
    ("bench-batch-sizes-garbage", ["bench", M + ":model", "--batch-sizes", "1,x"], "not a list of integers"),
    ("bench-unknown-mode", ["bench", M + ":model", "--modes", "eager,tensorrt"], "tensorrt"),
    ("bench-dtype-not-floating", ["bench", M + ":model", "--dtype", "int8"], "int8"),
    ("cpp-runner-jobs-zero", ["cpp-runner", "-o", "{out}/runner", "-j", "0"], "--jobs"),
    ("survey-timeout-negative", ["survey", M + ":model", "--timeout", "-1"], "timeout"),
    ("survey-samples-negative", ["survey", M + ":model", "--samples", "-3"], "samples"),
    ("survey-unknown-stage", ["survey", M + ":model", "--stages", "export,bogus"], "bogus"),
    ("survey-unknown-shapes", ["survey", M + ":model", "--shapes", "ragged"], "ragged"),
    ("survey-from-missing", ["survey", "--from", "{d}/nope.txt"], "does not exist"),
    ("survey-unused-dynamic-malformed", ["survey", M + ":model", "--dynamic", "x:0=b[[1"], "column"),
    ("compile-unused-input-malformed", ["compile", P, "-o", "{out}/o.aoti.pt2", "-i", "x=float32[3,"], "not a valid input"),
    ("survey-from-malformed-line", ["survey", "--from", "{d}/targets.txt"], "not a valid input"),
    ("compile-unknown-preset", ["compile", P, "-o", "{out}/o.aoti.pt2", "--preset", "fastest"], "fastest"),
    ("compile-unknown-dtype", ["compile", P, "-o", "{out}/o.aoti.pt2", "--dtype", "int4"], "--dtype"),
    ("compile-already-a-package-dir", ["compile", "{d}/a_folder", "-o", "{out}/o.aoti.pt2"], "does not exist"),
    ("export-unknown-mode", ["export", M + ":model", "-o", O, "--mode", "bogus"], "--mode"),
    ("export-unknown-flag", ["export", M + ":model", "-o", O, "--no-such-flag"], "--no-such-flag"),
    ("export-missing-output", ["export", M + ":model"], "-o"),
    ("no-such-command", ["deploy", M + ":model"], "deploy"),
    ("serve-missing-artifact", ["serve", "{d}/nope.pt2"], "does not exist"),
    ("serve-truncated-archive", ["serve", "{d}/truncated.pt2"], "corrupt or truncated"),
    ("serve-port-out-of-range", ["serve", P, "--port", "70000"], "--port"),
    ("serve-max-batch-zero", ["serve", P, "--max-batch-size", "0"], "--max-batch-size"),
    ("serve-name-for-two", ["serve", P, P, "--name", "x"], "--name"),
    ("serve-ray-autoscale-garbage", ["serve", P, "--ray", "--autoscale", "two"], "MIN,MAX"),
    ("serve-ray-gpus-for-a-cpu-program", ["serve", P, "--ray", "--gpus-per-replica", "0.5"], "runs on the CPU"),
    ("serve-ray-address-nobody-answers", ["serve", P, "--ray", "--ray-address", "127.0.0.1:1"], "nothing answers"),
    ("serve-write-config-not-yaml", ["serve", P, "--write-config", "{out}/serve.json"], "*.yaml"),
    ("serve-write-config-truncated", ["serve", "{d}/truncated.pt2", "--write-config", "{out}/serve.yaml"], "corrupt or truncated"),
    ("tune-missing-target", ["tune", "{d}/nope.py:model", "-o", O], "does not exist"),
    ("tune-output-is-folder", ["tune", M + ":model", "-o", "{out}"], "must end in .pt2"),
    ("tune-negative-time-budget", ["tune", M + ":model", "-o", O, "--time-budget", "-3"], "--time-budget"),
    ("migrate-missing-archive", ["migrate", "{d}/nope.pt", "-o", O], "does not exist"),
    ("migrate-not-torchscript", ["migrate", M, "-o", O], "not a TorchScript archive"),
    ("migrate-program-not-torchscript", ["migrate", P, "-o", O], "not a TorchScript archive"),
]

SUBPROCESS = {"target-file-exits-on-import", "target-forward-exits", "output-is-folder", "compile-device-with-index"}


def _argv(argv: list[str], d: Path, out: Path) -> list[str]:
    return [a.format(d=d, out=out) for a in argv]


def _check(code: int, err: str, needle: str, out: Path, d: Path, before: set[str]) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert needle in errors[0], (needle, errors[0])
    assert len(errors[0]) <= 400, errors[0]
    assert not any(out.iterdir()), sorted(p.name for p in out.iterdir())  # nothing written, no temporary left
    assert set(os.listdir(d)) - {"__pycache__"} == before - {"__pycache__"}, set(os.listdir(d)) ^ before


def test_the_table_covers_every_subcommand():
    from pt2kit.cli import COMMANDS

    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)
    assert {name for name, _, _ in COMMANDS} <= {argv[0] for _, argv, _ in CASES}


@pytest.mark.parametrize("name, argv, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_exit_2_with_one_short_line(name, argv, needle, inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # a command that wrongly wrote beside the cwd would show too
    before = set(os.listdir(inputs))
    capsys.readouterr()
    try:
        code = main(_argv(argv, inputs, out))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    finally:
        progress.set_quiet(False)
    _check(code, capsys.readouterr().err, needle, out, inputs, before)


@pytest.mark.parametrize("name, argv, needle", [c for c in CASES if c[0] in SUBPROCESS], ids=sorted(SUBPROCESS, key=[c[0] for c in CASES].index))
def test_bad_input_in_a_real_process(name, argv, needle, inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    before = set(os.listdir(inputs))
    env = {k: v for k, v in os.environ.items() if k != "PT2KIT_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "pt2kit", *_argv(argv, inputs, out)], capture_output=True, text=True,
                          cwd=out, env=env, timeout=300)
    _check(proc.returncode, proc.stderr, needle, out, inputs, before)


def test_a_temporary_left_by_a_killed_write_is_swept_and_a_live_ones_kept(tmp_path):
    from pt2kit.artifact.package import HOST_TAG, TEMP_MARK, atomic_path, sweep_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".o.pt2{TEMP_MARK}{HOST_TAG}-{dead}-abc"
    stale.mkdir()
    (stale / "o.pt2").write_bytes(b"half")
    live = tmp_path / f".o.pt2{TEMP_MARK}{HOST_TAG}-{os.getppid()}-def"
    live.mkdir()
    assert sweep_temporaries(tmp_path) == [stale]
    with atomic_path(tmp_path / "o.pt2") as tmp:
        tmp.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "o.pt2"])
    shutil.rmtree(live)


def test_a_subprocess_that_times_out_is_a_one_line_error(tmp_path):
    from pt2kit.cpp.runner import run_cpp_runner
    from pt2kit.errors import ArtifactError

    slow = tmp_path / "slow_runner"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(ArtifactError, match="no result for .* within 0.5s"):
        run_cpp_runner(slow, tmp_path / "m.aoti.pt2", [torch.ones(2)], timeout=0.5)
