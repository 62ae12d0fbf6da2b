"""The Open Inference Protocol v2 (KServe / Triton) over a pt2kit manifest: pure functions, no HTTP framework.

`parse_infer_request` turns a request body (JSON, or JSON followed by binary tensor data: the binary tensor data
extension) into an `InferRequest` of tensors already checked against the manifest; `encode_infer_response` turns
output tensors back into a response body. `model_metadata` describes a model from its manifest. Every problem with
a request is a `RequestError` carrying the HTTP status to answer with (400 unless said otherwise).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pt2kit.artifact.contract import check_inputs
from pt2kit.artifact.manifest import Manifest
from pt2kit.errors import InputMismatchError, UsageError

HEADER_LENGTH = "inference-header-content-length"  # the binary tensor data extension's header (HTTP headers are case-insensitive)

# manifest dtype name -> OIP datatype
DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "bfloat16": "BF16", "float32": "FP32", "float64": "FP64",
}
_TORCH_DTYPES = {name: getattr(torch, name) for name in DATATYPES}
# top-level fields other than id, inputs, outputs, parameters, model_name and model_version are ignored, as KServe's
# and Triton's servers do (clients add their own)
_INPUT_KEYS = {"name", "shape", "datatype", "data", "parameters"}
_MAX_ID_LENGTH = 256


class RequestError(UsageError):
    """A request the server refuses; `status` is the HTTP status to answer with (4xx)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InferRequest:
    """One checked inference request: tensors by manifest input name, and what to send back.

    Attributes:
        id: the request's `id`, echoed in the response ("" when not given).
        tensors: input name -> tensor (CPU), already checked against the manifest.
        outputs: the output names asked for, in order (empty: all of them).
        binary_outputs: the output names to return as binary data.
        batch: the size of the request's batch dim (1 when the model has none).
        classification: output name -> k, for outputs asked as Triton's top-k `classification` strings.
    """

    id: str
    tensors: dict[str, torch.Tensor]
    outputs: tuple[str, ...] = ()
    binary_outputs: frozenset[str] = field(default_factory=frozenset)
    batch: int = 1
    classification: dict[str, int] = field(default_factory=dict)


def tensor_inputs(manifest: Manifest):
    """The manifest's tensor inputs (constants are baked in at export and not sent over the wire)."""
    return [spec for spec in manifest.inputs if spec.kind == "tensor"]


def tensor_outputs(manifest: Manifest):
    return [spec for spec in manifest.outputs if spec.kind == "tensor"]


def wire_shape(manifest: Manifest, shape) -> list[int]:
    """A manifest shape as OIP metadata writes it: -1 for every dynamic dim."""
    return [size if isinstance(size, int) else -1 for size in shape]


def model_metadata(name: str, manifest: Manifest, platform: str) -> dict:
    """The OIP model metadata response (`GET /v2/models/{name}`) from the manifest."""
    def describe(spec):
        return {"name": spec.name, "datatype": DATATYPES.get(spec.dtype, spec.dtype.upper()), "shape": wire_shape(manifest, spec.shape)}

    return {
        "name": name, "versions": ["1"], "platform": platform,
        "inputs": [describe(s) for s in tensor_inputs(manifest)],
        "outputs": [describe(s) for s in tensor_outputs(manifest)],
    }


def split_body(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    """The JSON object of a request and the binary data after it (empty without the extension)."""
    if header_length is None:
        json_part, binary = body, memoryview(b"")
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise RequestError(f"header `Inference-Header-Content-Length` must be an integer, got `{header_length[:40]}`") from None
        if not 0 < n <= len(body):
            raise RequestError(f"header `Inference-Header-Content-Length` is {n} but the body has {len(body)} bytes; "
                               "it must be the length of the JSON part")
        json_part, binary = body[:n], memoryview(body)[n:]
    try:
        request = json.loads(json_part)
    except RecursionError:
        raise RequestError("the body's JSON is nested too deeply; send an OIP request with flat or shallow `data`") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"the body is not valid JSON ({exc}); send an OIP request: {{\"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]}}") from None
    if not isinstance(request, dict):
        raise RequestError(f"the request must be a JSON object, got {type(request).__name__}")
    return request, binary


def parse_infer_request(body: bytes, manifest: Manifest, *, header_length: str | None = None, batch_dim: int | None = None,
                        model: str | None = None) -> InferRequest:
    """Decode and check an OIP inference request against `manifest`.

    Args:
        body: the HTTP body.
        manifest: the model's manifest.
        header_length: the `Inference-Header-Content-Length` header, if sent (binary tensor data follows the JSON).
        batch_dim: the position of the batch dim in every input (None: the model has none).
        model: the model the route names; a `model_name` in the body must agree.

    Raises:
        RequestError: anything wrong with the request, in one line.

    Example:
        >>> req = parse_infer_request(b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 1, 2, 3]}]}', m)
        >>> req.tensors["x"].shape
        torch.Size([1, 4])
    """
    request, binary = split_body(body, header_length)
    return check_request(request, binary, manifest, batch_dim=batch_dim, model=model)


def check_request(request: dict, binary: memoryview | bytes, manifest: Manifest, *, batch_dim: int | None = None,
                  model: str | None = None) -> InferRequest:
    """Check a decoded OIP request (`binary`: the tensor bytes its `binary_data_size` inputs claim, in order).

    HTTP's JSON and gRPC's `ModelInferRequest` both come here, so both get the same checks and messages.
    """
    binary = memoryview(binary)
    for key, expected in (("model_name", model), ("model_version", None)):
        value = request.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise RequestError(f"`{key}` must be a string")
        if key == "model_version" and value != "1":
            raise RequestError(f"model version `{value[:20]}` is not served; this server serves version 1 only", 404)
        if expected is not None and key == "model_name" and value != expected:
            raise RequestError(f"`model_name` is `{value[:80]}` but the request was sent to model `{expected}`; send it to "
                               f"/v2/models/{value[:80]}/infer or drop the field")
    request_id = request.get("id", "")
    if not isinstance(request_id, str) or len(request_id) > _MAX_ID_LENGTH:
        raise RequestError(f"`id` must be a string of at most {_MAX_ID_LENGTH} characters")
    parameters = _parameters(request, "the request")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("`inputs` must be a non-empty list of {\"name\", \"shape\", \"datatype\", \"data\"}")
    specs = {spec.name: spec for spec in tensor_inputs(manifest)}
    tensors: dict[str, torch.Tensor] = {}
    offset = 0
    for item in inputs:
        name, tensor, offset = _parse_input(item, specs, binary, offset)
        if name in tensors:
            raise RequestError(f"input `{name}` is given twice")
        tensors[name] = tensor
    if offset != len(binary):
        raise RequestError(f"the body has {len(binary) - offset} bytes of binary data after the JSON that no input claims; "
                           "each binary input needs `\"parameters\": {\"binary_data_size\": N}`")
    missing = [name for name in specs if name not in tensors]
    if missing:
        expected = ", ".join(manifest.describe(specs[n]) for n in missing)
        raise RequestError(f"missing input `{missing[0]}`; the model takes {expected}")
    try:
        check_inputs(manifest, [tensors[spec.name] if spec.kind == "tensor" else spec.value for spec in manifest.inputs])
    except InputMismatchError as exc:
        raise RequestError(" ".join(str(exc).split())) from None
    outputs, binary_outputs, classification = _requested_outputs(request.get("outputs"), manifest, parameters)
    batch = 1
    if batch_dim is not None:
        batch = int(next(iter(tensors.values())).shape[batch_dim])
    return InferRequest(request_id, tensors, outputs, binary_outputs, batch, classification)


def _parameters(obj: dict, where: str) -> dict:
    parameters = obj.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(f"`parameters` of {where} must be a JSON object")
    return parameters


def _parse_input(item: Any, specs: dict, binary: memoryview, offset: int) -> tuple[str, torch.Tensor, int]:
    if not isinstance(item, dict):
        raise RequestError("each entry of `inputs` must be an object with name, shape, datatype and data")
    unknown = set(item) - _INPUT_KEYS
    if unknown:
        raise RequestError(f"unknown input field `{sorted(unknown)[0]}`; an input has: name, shape, datatype, data, parameters")
    name = item.get("name")
    if not isinstance(name, str):
        raise RequestError("each input needs a string `name`")
    spec = specs.get(name)
    if spec is None:
        raise RequestError(f"unknown input `{name[:80]}`; the model takes: {', '.join(specs)}")
    datatype, expected = item.get("datatype"), DATATYPES.get(spec.dtype)
    if datatype != expected:
        raise RequestError(f"input `{name}` has datatype `{str(datatype)[:20]}`, the model takes {expected}")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise RequestError(f"input `{name}` needs `shape`: a list of non-negative integers")
    if len(shape) != len(spec.shape):
        raise RequestError(f"input `{name}` has {len(shape)} dims {shape}, the model takes {len(spec.shape)}: "
                           f"{[s if isinstance(s, int) else -1 for s in spec.shape]}")
    # static sizes before any data is decoded; dynamic ranges and shared dims are checked by the manifest's contract after
    for d, (want, got) in enumerate(zip(spec.shape, shape)):
        if isinstance(want, int) and got != want:
            raise RequestError(f"input `{name}` dim {d} has size {got}, the model takes {want}")
    dtype = _TORCH_DTYPES[spec.dtype]
    count = math.prod(shape)
    parameters = _parameters(item, f"input `{name}`")
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in item:
            raise RequestError(f"input `{name}` has both `data` and `binary_data_size`; send one")
        if type(size) is not int or size < 0:
            raise RequestError(f"input `{name}`: `binary_data_size` must be a non-negative integer")
        itemsize = torch.empty((), dtype=dtype).element_size()
        if size != count * itemsize:
            raise RequestError(f"input `{name}` has binary_data_size {size}, but shape {shape} of {datatype} takes {count * itemsize} bytes")
        if offset + size > len(binary):
            raise RequestError(f"input `{name}` claims {size} bytes of binary data but only {len(binary) - offset} remain in the body")
        return name, _from_binary(name, binary[offset:offset + size], dtype, shape), offset + size
    if "data" not in item:
        raise RequestError(f"input `{name}` has no `data` (or `\"parameters\": {{\"binary_data_size\": N}}` with binary data)")
    return name, _from_json(name, item["data"], spec.dtype, dtype, shape, count), offset


def _from_binary(name: str, chunk: memoryview, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    if dtype is torch.bool:
        array = np.frombuffer(chunk, dtype=np.uint8)
        if array.size and array.max() > 1:
            raise RequestError(f"input `{name}` is BOOL but its binary data has bytes other than 0 and 1")
        return torch.from_numpy(array.astype(np.bool_)).reshape(shape)
    tensor = torch.frombuffer(bytearray(chunk), dtype=dtype) if len(chunk) else torch.empty(0, dtype=dtype)
    return tensor.reshape(shape)


def _from_json(name: str, data: Any, dtype_name: str, dtype: torch.dtype, shape: list[int], count: int) -> torch.Tensor:
    if not isinstance(data, list):
        data = [data]
    try:
        array = np.array(data)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(f"input `{name}` has `data` that is not a flat or nested list of numbers") from None
    if array.size != count:
        raise RequestError(f"input `{name}` has {array.size} values in `data`, but shape {shape} takes {count}")
    kind = array.dtype.kind
    if count == 0:
        kind = "b" if dtype is torch.bool else "i"
    if dtype is torch.bool:
        if kind != "b":
            raise RequestError(f"input `{name}` is BOOL: `data` must hold true/false only")
        return torch.from_numpy(array.reshape(shape).astype(np.bool_))
    if kind not in "biuf":
        raise RequestError(f"input `{name}` has `data` that is not all numbers (found {_kind_name(kind)})")
    if dtype.is_floating_point:
        target = np.float32 if dtype in (torch.bfloat16, torch.float16) else np.dtype(dtype_name)
        return torch.from_numpy(array.reshape(shape).astype(target)).to(dtype)
    if kind == "f":
        raise RequestError(f"input `{name}` is {DATATYPES[dtype_name]}: `data` must hold integers, found a fraction or exponent")
    info = np.iinfo(np.dtype(dtype_name))
    if count and (array.min() < info.min or array.max() > info.max):
        raise RequestError(f"input `{name}` has values outside the range of {DATATYPES[dtype_name]} [{info.min}, {info.max}]")
    return torch.from_numpy(array.reshape(shape).astype(np.dtype(dtype_name)))


def _kind_name(kind: str) -> str:
    return {"U": "strings", "S": "bytes", "O": "null, objects or integers too large"}.get(kind, f"`{kind}`")


def _requested_outputs(outputs: Any, manifest: Manifest, parameters: dict) -> tuple[tuple[str, ...], frozenset[str], dict[str, int]]:
    specs = {spec.name: spec for spec in tensor_outputs(manifest)}
    all_binary = parameters.get("binary_data_output", False)
    if not isinstance(all_binary, bool):
        raise RequestError("`binary_data_output` must be true or false")
    if outputs is None:
        return (), frozenset(specs if all_binary else ()), {}
    if not isinstance(outputs, list):
        raise RequestError("`outputs` must be a list of {\"name\", \"parameters\"?}")
    names, binary, classification = [], set(), {}
    for entry in outputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or set(entry) - {"name", "parameters", "shape", "datatype"}:
            raise RequestError("each entry of `outputs` must be an object with a string `name` and optional `parameters`")
        name = entry["name"]
        if name not in specs:
            raise RequestError(f"unknown output `{name[:80]}`; the model returns: {', '.join(specs)}")
        output_parameters = _parameters(entry, f"output `{name}`")
        wants_binary = output_parameters.get("binary_data", all_binary)
        if not isinstance(wants_binary, bool):
            raise RequestError(f"output `{name}`: `binary_data` must be true or false")
        k = output_parameters.get("classification")
        if k is not None:
            classification[name] = _classification_count(name, k, specs[name])
        names.append(name)
        if wants_binary:
            binary.add(name)
    return tuple(names), frozenset(binary), classification


def _classification_count(name: str, k: Any, spec) -> int:
    if type(k) is not int or k < 1:
        raise RequestError(f"output `{name}`: `classification` must be a positive integer (the top k classes), got `{str(k)[:20]}`")
    if len(spec.shape) not in (1, 2) or spec.dtype not in ("float16", "bfloat16", "float32", "float64"):
        raise RequestError(f"output `{name}` cannot be classified: `classification` needs a float output of shape [classes] "
                           f"or [batch, classes], and it is {spec.dtype} with {len(spec.shape)} dims")
    return k


def classify(tensor: torch.Tensor, k: int) -> tuple[list[bytes], list[int]]:
    """Triton's classification output: per row, the top `k` as `b"score:index"`, highest first (BYTES)."""
    rows = tensor.detach().float().reshape(-1, tensor.shape[-1]) if tensor.dim() else tensor.reshape(1, 1).float()
    k = min(k, rows.shape[-1])
    scores, indices = torch.topk(rows, k, dim=-1)
    strings = [f"{score:f}:{index}".encode() for score, index in zip(scores.reshape(-1).tolist(), indices.reshape(-1).tolist())]
    return strings, [*tensor.shape[:-1], k]


def serialize_bytes(strings: list[bytes]) -> bytes:
    """BYTES tensor data as the binary extension sends it: each element as a 4-byte little-endian length, then its bytes."""
    return b"".join(len(s).to_bytes(4, "little") + s for s in strings)


def encode_infer_response(model_name: str, request: InferRequest, outputs: dict[str, torch.Tensor]) -> tuple[bytes, dict[str, str]]:
    """The response body for `outputs` (name -> tensor), and its extra headers.

    Outputs named in `request.binary_outputs` go as binary data after the JSON (with the
    `Inference-Header-Content-Length` header); the others as JSON lists, row major.
    """
    names = request.outputs or tuple(outputs)
    entries, chunks = [], []
    for name in names:
        tensor = outputs[name].detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if name in request.classification:
            strings, shape = classify(tensor, request.classification[name])
            entry: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": shape}
            if name in request.binary_outputs:
                raw = serialize_bytes(strings)
                entry["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            else:
                entry["data"] = [s.decode() for s in strings]
            entries.append(entry)
            continue
        entry = {"name": name, "datatype": DATATYPES.get(str(tensor.dtype).removeprefix("torch."), "BYTES"), "shape": list(tensor.shape)}
        if name in request.binary_outputs:
            raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            flat = tensor.reshape(-1)
            if flat.dtype in (torch.bfloat16, torch.float16):
                flat = flat.float()
            entry["data"] = flat.tolist()
        entries.append(entry)
    response = {"model_name": model_name, "outputs": entries}
    if request.id:
        response["id"] = request.id
    head = json.dumps(response, separators=(",", ":"), allow_nan=True).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
