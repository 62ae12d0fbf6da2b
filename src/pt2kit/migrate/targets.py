"""TARGETs for the stages after migrate: the TorchScript model as the reference, the migrated program as the model.

`pt2kit verify`, `bench` and `survey` take `file.py:NAME`. A three-line file makes either side a TARGET:

    # scripted.py: compare an artifact with the TorchScript model itself
    import torch
    from pt2kit.migrate import scripted_module
    model = scripted_module("model.pt")
    example_args = (torch.randn(4, 8),)

    # migrated.py: benchmark the migrated program (bench exports and compiles it like any model)
    from pt2kit.migrate import migrated_module
    model, example_args = migrated_module("model.pt2")
"""

from __future__ import annotations

import os

import torch

from pt2kit.artifact.package import load_program
from pt2kit.artifact.package import read_manifest
from pt2kit.migrate.archive import load_archive, named_module


def scripted_module(path: str | os.PathLike) -> torch.nn.Module:
    """The TorchScript archive's model behind a `forward` with the scripted parameter names.

    Raises:
        ArtifactError: `path` is not a TorchScript archive.
    """
    archive = load_archive(path)
    return named_module(archive.module, archive.parameters, "Scripted")


class _Program(torch.nn.Module):
    def __init__(self, program: torch.nn.Module):
        super().__init__()
        self.program = program

    def forward(self, *args, **kwargs):
        return self.program(*args, **kwargs)

    def train(self, mode: bool = True):
        # an exported program has no train mode (its module refuses `.train()`); it was captured in eval mode,
        # and the stages that call `.eval()` on a TARGET only need that to hold
        if mode:
            raise NotImplementedError("a migrated program runs in eval mode only")
        return self


def migrated_module(path: str | os.PathLike) -> tuple[torch.nn.Module, tuple]:
    """A migrated `.pt2` as `(model, example_args)` for a TARGET file: the program's module, named as its
    manifest names its inputs, and the example inputs saved with it.

    Raises:
        ArtifactError: not a loadable program.
    """
    program = load_program(path)
    manifest = read_manifest(path)
    names = list(manifest.parameters) if manifest and manifest.parameters else []
    args, _ = program.example_inputs or ((), {})
    return named_module(_Program(program.module()), names or [f"args_{i}" for i in range(len(args))], "Migrated"), tuple(args)


__all__ = ["migrated_module", "scripted_module"]
