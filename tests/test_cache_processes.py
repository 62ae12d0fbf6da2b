"""The build cache hits across processes: the same target exported by another process (another hash seed),
or from another folder, has the same build key, so `compile` and `tune` find the first process's build.

`bench` never reads the cache (its `build_s` must be a real build); its programs are checked to hash the same.
Cache hits are asserted from the JSON's `cached` fields and the cache folder, never from timings.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from zipfile import ZipFile

import pytest

from pt2kit.artifact.manifest import weights_summary
from pt2kit.artifact.package import load_program
from pt2kit.compile.cache import program_digest
from pt2kit.target.resolve import target_module_name

from conftest import case, run_subprocess

CASE = "batchnorm_dropout"


def env_with(cache: os.PathLike, seed: str) -> dict:
    """A child environment: its own hash seed (so `hash()` differs between children) and the given cache."""
    return {**os.environ, "PYTHONHASHSEED": seed, "PT2KIT_CACHE_DIR": str(cache)}


def digest(program) -> str:
    ep = load_program(program)
    return program_digest(ep, weights_summary(ep)[2])


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """The case file in two folders: the same model at two paths."""
    folder = tmp_path_factory.mktemp("cache-procs")
    other = folder / "elsewhere"
    other.mkdir()
    shutil.copy(case(CASE), other / f"{CASE}.py")
    return folder, case(CASE), str(other / f"{CASE}.py")


def test_programs_of_export_and_bench_in_new_processes_and_folders_hash_the_same(copies):
    """`export` here, `bench` here and `bench` of the copy elsewhere, each in its own process (its own hash seed):
    one digest. (`bench` never reads the cache; this is the key it would use.)"""
    folder, here, there = copies
    env = env_with(folder / "cache", "1")
    exported = folder / "exported.pt2"
    result = run_subprocess("export", f"{here}:model", "-o", exported, "-q", env=env)
    assert result.code == 0, result.err
    programs = [exported]
    for path, seed in ((here, "2"), (there, "3")):
        keep = folder / f"bench{seed}"
        result = run_subprocess("bench", f"{path}:model", "--modes", "export", "--warmup", "0", "--iters", "1", "--keep", keep,
                                "-q", env=env_with(folder / "cache", seed))
        assert result.code == 0, result.err
        programs.append(keep / "program.pt2")
    assert len({digest(p) for p in programs}) == 1
    # the name the file was imported under is saved in the program: now the same in every process
    name = target_module_name(Path(here).resolve()).encode()
    assert all(name in program_json(p) for p in programs[:2])


def program_json(path: Path) -> bytes:
    with ZipFile(path) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("models/model.json")))


def test_the_module_name_of_a_target_file_is_stable_and_distinct(tmp_path):
    a, b = tmp_path / "a" / "m.py", tmp_path / "b" / "m.py"
    assert target_module_name(a) == target_module_name(a) != target_module_name(b)
    assert target_module_name(tmp_path / "my-model.py").startswith("pt2kit_target_my_model_")


@pytest.mark.slow
def test_compile_and_tune_in_new_processes_come_from_the_cache(copies):
    """compile builds once; a second process, and a copy of the file elsewhere, hit; a second tune hits throughout."""
    folder, here, there = copies
    cache = folder / "aoti-cache"  # its own cache: the first build really builds
    docs = []
    for i, (path, seed) in enumerate([(here, "11"), (here, "12"), (there, "13")]):
        result = run_subprocess("compile", f"{path}:model", "-o", folder / f"c{i}.aoti.pt2", "--json", "-q",
                                env=env_with(cache, seed))
        assert result.code == 0, result.err
        docs.append(result.json())
    assert [d["cached"] for d in docs] == [False, True, True]
    entries = sorted(os.listdir(cache))
    assert len(entries) == 2  # one package and its record

    tune = ["--dtypes", "fp32", "--recipes", "default", "--threads", "1", "--samples", "0", "--iters", "2", "--json", "-q"]
    runs = [run_subprocess("tune", f"{here}:model", "-o", folder / f"t{seed}.aoti.pt2", *tune, env=env_with(cache, seed))
            for seed in ("14", "15")]
    assert all(r.code == 0 for r in runs), [r.err for r in runs]
    after_first = sorted(os.listdir(cache))
    second = runs[1].json()["candidates"]
    assert second and all(c["cached"] for c in second), second
    assert sorted(os.listdir(cache)) == after_first  # the second tune added nothing: every build came from the cache
