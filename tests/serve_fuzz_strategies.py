"""Hypothesis strategies for fuzzing the infer route: requests shaped by the OpenAPI schema of the route (and by
the model's metadata), then bent: wrong names, datatypes, shapes, data, binary sizes, headers and raw bytes.

Shared by tests/test_serve_fuzz.py (a few hundred cases in CI) and benchmarks/serve/serve_fuzz.py (10,000 and more).
"""

from __future__ import annotations

import json
import struct

from hypothesis import strategies as st

DATATYPES = ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "BF16", "FP32", "FP64", "BYTES", "fp32", ""]
_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=8))
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                     max_leaves=12)


def _shape(meta_shape: list[int]):
    exact = st.just([1 if s == -1 else s for s in meta_shape])
    near = st.tuples(*[st.integers(0, 70) if s == -1 else st.sampled_from([s, s - 1, s + 1, 0]) for s in meta_shape]).map(list)
    wild = st.lists(st.one_of(st.integers(-3, 2**40), st.floats(), st.text(max_size=3), st.none()), max_size=5)
    return st.one_of(exact, near, wild)


def _data(shape):
    count = 1
    for s in shape if isinstance(shape, list) else []:
        count = count * s if isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**16 else count
    count = min(count, 4096)
    numbers = st.lists(st.floats(-1e6, 1e6, width=32), min_size=count, max_size=count)
    off_by = st.lists(st.floats(-10, 10, width=32), min_size=max(count - 1, 0), max_size=count + 1)
    nested = numbers.map(lambda xs: [xs[: len(xs) // 2], xs[len(xs) // 2:]])
    return st.one_of(numbers, numbers, off_by, nested, st.lists(_JSON_SCALARS, max_size=8), _JSON)


@st.composite
def input_entry(draw, meta: dict):
    spec = draw(st.sampled_from(meta["inputs"]))
    entry = {
        "name": draw(st.one_of(st.just(spec["name"]), st.just(spec["name"]), st.text(max_size=6))),
        "datatype": draw(st.one_of(st.just(spec["datatype"]), st.just(spec["datatype"]), st.sampled_from(DATATYPES))),
        "shape": draw(_shape(spec["shape"])),
    }
    binary = b""
    if draw(st.integers(0, 4)) == 0:  # the binary tensor data extension
        n = draw(st.one_of(st.integers(0, 1024), st.just(4 * _count(entry["shape"]))))
        entry["parameters"] = {"binary_data_size": draw(st.one_of(st.just(n), st.integers(-5, 2**40), st.text(max_size=3)))}
        binary = draw(st.binary(min_size=0, max_size=min(n, 8192))) if n < 2**14 else b""
        binary = binary + bytes(max(0, min(n, 8192) - len(binary)))
    else:
        entry["data"] = draw(_data(entry["shape"]))
    if draw(st.integers(0, 15)) == 0:
        entry[draw(st.text(max_size=5))] = draw(_JSON)
    if draw(st.integers(0, 15)) == 0:
        del entry[draw(st.sampled_from(sorted(entry)))]
    return entry, binary


def _count(shape) -> int:
    count = 1
    for s in shape if isinstance(shape, list) else []:
        count *= s if isinstance(s, int) and 0 <= s < 2**16 else 1
    return min(count, 4096)


@st.composite
def infer_body(draw, meta: dict, output_names: list[str]):
    """(body bytes, headers): mostly OIP-shaped requests with one or more things wrong, some fully valid."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.binary(max_size=256)), {}
    if kind == 1:
        return json.dumps(draw(_JSON)).encode(), {}
    if kind == 2:  # nesting deeper than a JSON parser's recursion
        depth = draw(st.integers(30, 5000))
        name = json.dumps(meta["inputs"][0]["name"]).encode()
        return b'{"inputs": [{"name": ' + name + b', "shape": [1], "datatype": "FP32", "data": ' + b"[" * depth + b"]" * depth + b"}]}", {}
    entries = draw(st.lists(input_entry(meta), min_size=0, max_size=len(meta["inputs"]) + 1))
    request: dict = {"inputs": [e for e, _ in entries]}
    if draw(st.booleans()):
        request["id"] = draw(st.one_of(st.text(max_size=12), st.integers(), st.none()))
    if draw(st.integers(0, 3)) == 0:
        request["outputs"] = draw(st.lists(st.fixed_dictionaries(
            {"name": st.one_of(st.sampled_from(output_names), st.text(max_size=4))},
            optional={"parameters": st.fixed_dictionaries({}, optional={"binary_data": st.one_of(st.booleans(), _JSON_SCALARS),
                                                                        "classification": st.one_of(st.integers(-2, 6), _JSON_SCALARS)})}),
            max_size=3))
    if draw(st.integers(0, 5)) == 0:
        request["parameters"] = draw(st.fixed_dictionaries({}, optional={"binary_data_output": st.one_of(st.booleans(), _JSON_SCALARS)}))
    if draw(st.integers(0, 20)) == 0:
        request[draw(st.text(max_size=5))] = draw(_JSON)
    if draw(st.integers(0, 10)) == 0:
        request[draw(st.sampled_from(["model_name", "model_version"]))] = draw(st.one_of(st.text(max_size=6), _JSON_SCALARS))
    head = json.dumps(request).encode()
    binary = b"".join(b for _, b in entries)
    headers = {}
    if binary or draw(st.integers(0, 10)) == 0:
        length = draw(st.one_of(st.just(str(len(head))), st.just(str(len(head))), st.integers(-5, 10**6).map(str), st.text(alphabet="0123456789abc-+.x", max_size=4)))
        headers["Inference-Header-Content-Length"] = length
    if draw(st.integers(0, 10)) == 0:
        binary += draw(st.binary(max_size=16))
    return head + binary, headers


def valid_body(draw_batch: int, features: int = 16) -> bytes:
    """A valid request for the tests' linear model (batch x features floats)."""
    data = list(struct.unpack(f"{draw_batch * features}f", bytes(4 * draw_batch * features)))
    return json.dumps({"inputs": [{"name": "input", "shape": [draw_batch, features], "datatype": "FP32", "data": data}]}).encode()


_TYPED = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
          "INT64": "int64_contents", "UINT8": "uint_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}


@st.composite
def grpc_infer_request(draw, model: str, meta: dict, output_names: list[str]):
    """A gRPC `ModelInferRequest` (tritonclient's generated message), built from the same bent entries as HTTP bodies:
    raw contents of any length (or a count that does not match the inputs), typed contents of any type, wild shapes."""
    from tritonclient.grpc import service_pb2

    message = service_pb2.ModelInferRequest(model_name=draw(st.one_of(st.just(model), st.just(model), st.text(max_size=5))),
                                            id=draw(st.text(max_size=12)))
    if draw(st.integers(0, 8)) == 0:
        message.model_version = draw(st.sampled_from(["", "1", "2", "x"]))
    entries = draw(st.lists(input_entry(meta), min_size=0, max_size=len(meta["inputs"]) + 1))
    raw = draw(st.booleans())
    for entry, binary in entries:
        shape = [s for s in entry.get("shape", []) if isinstance(s, int) and not isinstance(s, bool)] if isinstance(entry.get("shape"), list) else []
        tensor = message.inputs.add(name=str(entry.get("name", "")), datatype=str(entry.get("datatype", "")),
                                    shape=[max(min(s, 2**62), -(2**62)) for s in shape])
        if raw:
            size = 4 * _count(shape) if draw(st.booleans()) else draw(st.integers(0, 2048))
            message.raw_input_contents.append(binary[:size] + bytes(max(0, size - len(binary))))
        elif draw(st.integers(0, 6)):
            field = _TYPED.get(tensor.datatype, draw(st.sampled_from(sorted(set(_TYPED.values())))))
            numbers = draw(st.lists(st.integers(0, 1) if field == "bool_contents" else st.integers(0, 100), max_size=min(_count(shape) + 1, 512)))
            getattr(tensor.contents, field).extend(bool(n) for n in numbers) if field == "bool_contents" else \
                getattr(tensor.contents, field).extend(numbers)
    if raw and entries and draw(st.integers(0, 8)) == 0:
        message.raw_input_contents.append(b"\0" * draw(st.integers(0, 64)))  # one more than the inputs
    for name in draw(st.lists(st.one_of(st.sampled_from(output_names), st.text(max_size=4)), max_size=3)):
        out = message.outputs.add(name=name)
        if draw(st.integers(0, 3)) == 0:
            out.parameters["classification"].int64_param = draw(st.integers(-2, 6))
    return message
