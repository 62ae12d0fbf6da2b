"""Write, build and call the C++ runner (`pt2kit cpp-runner`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pt2kit import progress
from pt2kit.errors import ArtifactError, BuildFailed, UsageError

TEMPLATE = Path(__file__).resolve().parent
SOURCES = ("pt2kit_runner.cpp", "CMakeLists.txt")


@dataclass(frozen=True)
class CppRunner:
    """A built runner: its source folder, the executable, and how long the build took."""

    folder: Path
    executable: Path
    seconds: float
    cmake_prefix_path: str

    def __str__(self) -> str:
        return (f"built {self.executable} in {self.seconds:.1f}s (libtorch from {self.cmake_prefix_path})\n"
                f"  run it: {self.executable} MODEL.aoti.pt2 INPUTS.pt OUTPUTS.pt\n"
                f"  INPUTS.pt: torch.save({{'x': t0, ...}}, 'INPUTS.pt') (or a list in the package's input order); "
                f"outputs: torch.load('OUTPUTS.pt')")

    def to_json(self) -> dict:
        return {"ok": True, "folder": str(self.folder), "executable": str(self.executable), "seconds": self.seconds,
                "cmake_prefix_path": self.cmake_prefix_path}


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if not found:
        raise UsageError(f"`{name}` is not on the PATH; {hint}")
    return found


def build_cpp_runner(folder: str | os.PathLike = "pt2kit_runner", *, jobs: int | None = None) -> CppRunner:
    """Copy the runner's source into `folder` and build it with CMake against torch's libtorch.

    Args:
        folder: where to put `pt2kit_runner.cpp`, `CMakeLists.txt` and `build/`.
        jobs: parallel compile jobs (default: CPU count).

    Returns:
        A `CppRunner` with the executable's path.

    Raises:
        UsageError: cmake or a C++ compiler is missing.
        BuildFailed: the build failed (the log's tail is in the message).

    Example:
        >>> runner = build_cpp_runner("out/runner")
        >>> outputs = run_cpp_runner(runner.executable, "model.aoti.pt2", [torch.randn(4, 16)])
    """
    import torch.utils

    cmake = _tool("cmake", "install CMake 3.18+ (e.g. `apt-get install cmake` or `pip install cmake`)")
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        raise UsageError("no C++ compiler on the PATH; install one (e.g. `apt-get install g++`)")
    from pt2kit.artifact.package import check_output_folder

    folder = check_output_folder(folder, "-o")
    folder.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:  # copy only what changed, so a rebuild in the same folder is incremental
        if not (folder / name).is_file() or (folder / name).read_bytes() != (TEMPLATE / name).read_bytes():
            shutil.copyfile(TEMPLATE / name, folder / name)
    build = folder / "build"
    prefix = torch.utils.cmake_prefix_path
    start = time.perf_counter()
    log = folder / "build.log"
    with log.open("w") as out:
        with progress.stage("cmake configure"):
            _step([cmake, "-S", str(folder), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"], out, log)
        with progress.stage("build pt2kit_runner"):
            _step([cmake, "--build", str(build), "--parallel", str(jobs or os.cpu_count() or 1)], out, log)
    executable = build / "pt2kit_runner"
    if not executable.is_file():
        raise BuildFailed(f"the build finished but `{executable}` is missing; see `{log}`")
    return CppRunner(folder, executable, time.perf_counter() - start, prefix)


def _step(command: list[str], out, log: Path) -> None:
    out.write("$ " + " ".join(command) + "\n")
    out.flush()
    proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = " | ".join(log.read_text().strip().splitlines()[-5:])
        raise BuildFailed(f"`{' '.join(command[:2])}` failed (exit {proc.returncode}); full log in `{log}`: {tail}")


def run_cpp_runner(executable: str | os.PathLike, package: str | os.PathLike, inputs: list | dict, *, timeout: float = 300) -> list:
    """Run the C++ runner on `inputs`; return its output tensors.

    `inputs` is a dict `{name: tensor}` (the runner binds each by the input order the package's manifest
    records, positional and keyword inputs alike) or a list of tensors already in that flat order.

    Raises:
        ArtifactError: the runner exited with an error (its one-line message is included).
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="pt2kit-cpp-") as tmp:
        inputs_path, outputs_path = Path(tmp) / "inputs.pt", Path(tmp) / "outputs.pt"
        if isinstance(inputs, dict):
            torch.save({str(k): t.detach().cpu().contiguous() for k, t in inputs.items()}, inputs_path)
        else:
            torch.save([t.detach().cpu().contiguous() for t in inputs], inputs_path)
        try:
            proc = subprocess.run([str(executable), str(package), str(inputs_path), str(outputs_path)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ArtifactError(f"the C++ runner gave no result for `{package}` within {timeout:g}s; "
                                "pass a larger `timeout` or check the package on smaller inputs") from None
        if proc.returncode != 0:
            raise ArtifactError(f"the C++ runner could not run `{package}` (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return list(torch.load(outputs_path))
