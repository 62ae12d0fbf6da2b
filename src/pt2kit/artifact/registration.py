"""Make a pt2kit `.pt2` loadable with plain `torch.export.load`: `pt2kit.register_types(path)`.

A program whose inputs or outputs hold a type `torch.utils._pytree` does not know (a transformers
`DynamicCache`, a user's dataclass) is saved with that type's pytree spec under pt2kit's serialized
name (`pt2kit:transformers.cache_utils.DynamicCache`). transformers 5 registers none of its caches
when imported, so no name torch or transformers would know makes such a program load by itself.
Plain `torch.export.load` then stops with "... in pytree is not registered"; one call before it
repeats the registrations the manifest records, in any process, without the model's source:

    >>> pt2kit.register_types("gpt2.pt2")
    >>> program = torch.export.load("gpt2.pt2")
    >>> out = program.module()(input_ids=ids, attention_mask=mask)     # out.past_key_values is a DynamicCache

`pt2kit.load` does the same itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pt2kit.artifact.package import read_manifest
from pt2kit.pytrees.trust import trusting
from pt2kit.pytrees.types import restore_registrations


@dataclass(frozen=True)
class TypeRegistration:
    """What `register_types` registered for one artifact.

    Attributes:
        path: the artifact.
        types: `module.QualName` of each type registered as a pytree node (or found registered already).
        imports: modules imported because importing them registers their own types (transformers outputs).
        notes: what could not be restored exactly (a type not importable here comes back as a plain object).
    """

    path: Path
    types: tuple[str, ...]
    imports: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.types and not self.imports:
            return f"{self.path}: nothing to register; plain torch.export.load reads it as it is"
        lines = [f"{self.path}: registered {len(self.types)} pytree type(s) for torch.export.load"]
        lines += [f"  type   {t}" for t in self.types] + [f"  import {m}" for m in self.imports]
        lines += [f"  note   {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"path": str(self.path), "types": list(self.types), "imports": list(self.imports), "notes": list(self.notes)}


def register_types(path: str | os.PathLike, *, trust_imports: Sequence[str] = ()) -> TypeRegistration:
    """Register the pytree types a pt2kit `.pt2` uses, so plain `torch.export.load(path)` reads it.

    Registration is process-wide (as torch's own is) and idempotent; a `.pt2` without such types, or
    without a pt2kit manifest, needs nothing and registers nothing.

    Args:
        path: a `.pt2` program or AOTInductor package written by pt2kit.
        trust_imports: modules the file may make pt2kit import beyond those imported already and `transformers`
            (`pt2kit.pytrees.trust`); a module named by the file and trusted by neither is refused.

    Returns:
        A `TypeRegistration` listing the types and imports.

    Raises:
        ArtifactError: the file is missing, not a `.pt2`, or its manifest is damaged.
        UntrustedImportError: the file names a module to import that is neither imported nor trusted.

    Example:
        >>> pt2kit.register_types("gpt2.pt2")
        >>> torch.export.load("gpt2.pt2").module()(input_ids=ids, attention_mask=mask)
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        return TypeRegistration(path, (), ())
    with trusting(trust_imports):
        notes = restore_registrations(manifest.pytree_types, manifest.pytree_imports, f"`{path}`")
    return TypeRegistration(path, tuple(r["type"] for r in manifest.pytree_types), tuple(manifest.pytree_imports), tuple(notes))


__all__ = ["TypeRegistration", "register_types"]
