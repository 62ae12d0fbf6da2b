"""`--external-weights auto|on|off`: keep a package's weights out of its shared library.

By default AOTInductor links the weights into the package's `.so`. A shared library with more than
2 GB of data needs large-model relocations, and past that size Inductor appends the weights to the
`.so` and memory-maps its own file; either way one file holds code and gigabytes of data, and the
linker copies all of it. With `aot_inductor.package_constants_in_so=False` and
`aot_inductor.package_constants_on_disk_format="binary_blob"` the `.so` holds code only and the
weights sit beside it in the archive as one `*_weights.blob`, which `AOTIModelPackageLoader` (and so
`pt2kit.load` and plain `aoti_load_package`) unpacks and reads at load into the weights on the device.

`auto` chooses external weights when the program's weights reach `PT2KIT_EXTERNAL_WEIGHTS_BYTES`
(default 1 GB: half the 2 GB a `.so` can address, so a 1.1B-parameter bf16 model is external and
GPT-2 is not).

`tensors` keeps the weights outside the `.so` one tensor at a time instead
(`package_constants_on_disk_format="pickle_weights"`: a `torch.save` file per weight storage under
`data/weights/`). Inductor then never gathers the weights into one buffer and the packager never reads a blob
back, so a build holds the program's weights once (1.2-1.4x the weights at the peak for 1-2 GB Llamas on
CPU, against 3.1-3.2x with the blob), and `pt2kit.load` maps them straight from the archive instead of
unpacking a blob into a temporary folder first (`pt2kit.runtime.weights`; the C++ runner reads them too). The
price: AOTInductor's package loader does not load these weights itself. Plain torch loads such a package with
`torch.export.pt2_archive._package.load_pt2(path, load_weights_from_disk=True)`; a bare
`aoti_load_package(path)` opens it without weights and its first call crashes. So `auto` and `on` keep the
blob, which every loader reads.
"""

from __future__ import annotations

import os
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from pt2kit.errors import UsageError

THRESHOLD_ENV = "PT2KIT_EXTERNAL_WEIGHTS_BYTES"
DEFAULT_THRESHOLD_BYTES = 1_000_000_000
EXTERNAL_SETTINGS: Mapping[str, Any] = MappingProxyType({
    "aot_inductor.package_constants_in_so": False,
    "aot_inductor.package_constants_on_disk_format": "binary_blob",
})
TENSOR_SETTINGS: Mapping[str, Any] = MappingProxyType({
    "aot_inductor.package_constants_in_so": False,
    "aot_inductor.package_constants_on_disk_format": "pickle_weights",
})
BLOB_SUFFIX = "_weights.blob"  # how AOTInductor names the file in data/aotinductor/<model>/


class ExternalWeights(str, Enum):
    """Where the weights go: `auto` (by size), `on` (a blob beside the `.so`), `tensors` (one file per tensor
    beside it, mapped at load), `off` (inside the `.so`)."""

    AUTO = "auto"
    ON = "on"
    TENSORS = "tensors"
    OFF = "off"

    @classmethod
    def parse(cls, value: "str | bool | ExternalWeights") -> "ExternalWeights":
        """`auto`/`on`/`off` (or True/False) -> the member.

        Raises:
            UsageError: any other value.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            return cls.ON if value else cls.OFF
        try:
            return cls(str(value).lower())
        except ValueError:
            raise UsageError(f"unknown --external-weights `{value}`; use `--external-weights auto`, `on`, `tensors` or `off`") from None


def threshold_bytes() -> int:
    """The size from which `auto` keeps the weights outside the `.so` (`PT2KIT_EXTERNAL_WEIGHTS_BYTES`).

    Raises:
        UsageError: the variable is set but is not a non-negative integer.
    """
    text = os.environ.get(THRESHOLD_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_THRESHOLD_BYTES
    if not text.isdigit():
        raise UsageError(f"{THRESHOLD_ENV}=`{os.environ[THRESHOLD_ENV]}` is not a byte count; "
                         f"e.g. `{THRESHOLD_ENV}={DEFAULT_THRESHOLD_BYTES}` (or unset it)")
    return int(text)


def supported() -> bool:
    """Whether this torch's AOTInductor can package the weights as a blob outside the `.so`."""
    from torch._inductor import config

    return hasattr(config.aot_inductor, "package_constants_on_disk_format") and hasattr(config.aot_inductor, "package_constants_in_so")


def tensors_supported() -> bool:
    """Whether this torch can package the weights per tensor and load them back (`load_pt2(load_weights_from_disk=)`)."""
    import inspect

    try:
        from torch.export.pt2_archive._package import load_pt2
    except ImportError:
        return False
    return supported() and "load_weights_from_disk" in inspect.signature(load_pt2).parameters


def external_settings(mode: "str | bool | ExternalWeights", weights_bytes: int) -> dict[str, Any]:
    """The Inductor settings that place the weights: `EXTERNAL_SETTINGS` for a blob, `TENSOR_SETTINGS` per tensor, else `{}`.

    Raises:
        UsageError: a bad mode or threshold, or `on` with a torch whose AOTInductor cannot do it.

    Example:
        >>> external_settings("auto", 2_200_000_000)["aot_inductor.package_constants_in_so"]
        False
    """
    mode = ExternalWeights.parse(mode)
    if mode is ExternalWeights.OFF:
        return {}
    if mode is ExternalWeights.AUTO and weights_bytes < threshold_bytes():
        return {}
    if mode is ExternalWeights.TENSORS:
        if not tensors_supported():
            import torch

            raise UsageError(f"torch {torch.__version__}'s AOTInductor cannot package the weights per tensor; "
                             "use `--external-weights on` (one blob)")
        return dict(TENSOR_SETTINGS)
    if not supported():
        if mode is ExternalWeights.ON:
            import torch

            raise UsageError(f"torch {torch.__version__}'s AOTInductor cannot keep weights outside the .so; "
                             "use a newer torch or `--external-weights off`")
        return {}
    return dict(EXTERNAL_SETTINGS)


def weights_layout(settings: Mapping[str, Any]) -> str:
    """Where these Inductor settings put the weights: `so` (inside the `.so`), `blob` or `tensors` (beside it)."""
    return {"binary_blob": "blob", "pickle_weights": "tensors"}.get(settings.get("aot_inductor.package_constants_on_disk_format"), "so")


def is_external(settings: Mapping[str, Any]) -> bool:
    """Whether these Inductor settings build a package whose weights are outside the `.so`."""
    return weights_layout(settings) != "so"
