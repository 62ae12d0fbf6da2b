"""The Open Inference Protocol v2 over gRPC: `inference.GRPCInferenceService`, beside the HTTP routes.

Triton's and KServe's clients (and `perf_analyzer`) call the service `inference.GRPCInferenceService`; KServe's
`grpc_predict_v2.proto` is a subset of Triton's `grpc_service.proto` under that same name, with the same field
numbers. The messages come from `tritonclient`'s generated stubs (the `grpc` extra), so `ModelConfig` and
`ModelStatistics` answer in Triton's own types. The server runs on the HTTP server's event loop and shares its
`ServerState`: the same batcher, the same request checks (`protocol.check_request`), the same metrics and statistics.

`raw_input_contents` carry the tensors (one entry per input, in order) or each input's typed `contents`; outputs always
go back as `raw_output_contents`. Status codes: a 400 of HTTP is INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE,
413 RESOURCE_EXHAUSTED, a model that raised INTERNAL; metrics count each answer under the HTTP status it maps to.
"""

from __future__ import annotations

import asyncio
import json
import time

import grpc
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from pt2kit import progress
from pt2kit.serve.batcher import run_model
from pt2kit.serve.http_body import OFF_LOOP_BYTES
from pt2kit.serve.protocol import HEADER_LENGTH, RequestError, check_request, encode_infer_response, model_metadata
from pt2kit.serve.triton import model_config

_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          500: grpc.StatusCode.INTERNAL, 503: grpc.StatusCode.UNAVAILABLE}
# the typed `contents` field that holds each datatype (FP16 and BF16 have none: they travel as raw bytes)
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
             "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _parameters(params) -> dict:
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in params.items()
            if value.WhichOneof("parameter_choice")}


def request_dict(message: service_pb2.ModelInferRequest) -> tuple[dict, bytes]:
    """The OIP JSON form of a gRPC `ModelInferRequest`, and the raw tensor bytes its inputs claim, in order."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise RequestError(f"the request has {len(raw)} `raw_input_contents` for {len(message.inputs)} inputs; send one per input, "
                           "in the order of `inputs`, or none and each input's `contents`")
    inputs = []
    for i, tensor in enumerate(message.inputs):
        entry = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if raw:
            entry["parameters"] = {"binary_data_size": len(raw[i])}
        else:
            field = _CONTENTS.get(tensor.datatype)
            if field is None or not tensor.HasField("contents"):
                raise RequestError(f"input `{tensor.name[:80]}` has no data: send it in `raw_input_contents`"
                                   + ("" if field else f" ({tensor.datatype[:10]} has no typed `contents`)"))
            entry["data"] = list(getattr(tensor.contents, field))
        inputs.append(entry)
    outputs = [{"name": out.name, "parameters": {**_parameters(out.parameters), "binary_data": True}} for out in message.outputs]
    request = {"id": message.id, "model_name": message.model_name, "model_version": message.model_version,
               "parameters": {**_parameters(message.parameters), "binary_data_output": True}, "inputs": inputs}
    if outputs:
        request["outputs"] = outputs
    binary = raw[0] if len(raw) == 1 else b"".join(raw)
    return request, binary


def infer_response(body: bytes, headers: dict[str, str]) -> service_pb2.ModelInferResponse:
    """`encode_infer_response`'s binary body (every output as binary data) as a gRPC `ModelInferResponse`."""
    length = int(headers.get(HEADER_LENGTH, len(body)))
    head = json.loads(body[:length])
    response = service_pb2.ModelInferResponse(model_name=head["model_name"], model_version="1", id=head.get("id", ""))
    offset = length
    for out in head["outputs"]:
        response.outputs.add(name=out["name"], datatype=out["datatype"], shape=out["shape"])
        size = out["parameters"]["binary_data_size"]
        response.raw_output_contents.append(body[offset:offset + size])
        offset += size
    return response


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """`inference.GRPCInferenceService` over a `ServerState` (the RPCs not listed answer UNIMPLEMENTED)."""

    def __init__(self, state, extensions: list[str]):
        self.state = state
        self.extensions = extensions

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.state.ready)

    async def ModelReady(self, request, context):
        service = self.state.services.get(request.name)
        ready = service is not None and request.version in ("", "1") and service.ready and not self.state.draining
        return service_pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):
        from pt2kit import __version__

        return service_pb2.ServerMetadataResponse(name="pt2kit", version=__version__, extensions=self.extensions)

    async def ModelMetadata(self, request, context):
        service = await self._find(request.name, request.version, context)
        return json_format.ParseDict(model_metadata(service.name, service.manifest, service.platform), service_pb2.ModelMetadataResponse())

    async def ModelConfig(self, request, context):
        service = await self._find(request.name, request.version, context)
        config = json_format.ParseDict(model_config(service, max_queue_delay_ms=self.state.max_queue_delay_ms),
                                       model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
        return service_pb2.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request, context):
        names = [request.name] if request.name else list(self.state.services)
        if request.name:
            await self._find(request.name, request.version, context)
        stats = [json_format.ParseDict(self.state.metrics.stats[name].to_json(), service_pb2.ModelStatistics(), ignore_unknown_fields=True)
                 for name in names]
        return service_pb2.ModelStatisticsResponse(model_stats=stats)

    async def ModelInfer(self, request, context):
        start = time.perf_counter()
        name = request.model_name
        status = 200
        try:
            return await self._infer(request)
        except RequestError as exc:
            status = exc.status
            await context.abort(_CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), " ".join(str(exc).split()))
        except Exception as exc:  # a bug: one line, never a traceback to the client
            status = 500
            progress.info(f"error: gRPC ModelInfer: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        finally:
            self.state.metrics.request(name, status, time.perf_counter() - start)

    async def _infer(self, message):
        service = self.state.services.get(message.model_name)
        if service is None:
            raise RequestError(f"unknown model `{message.model_name[:80]}`; this server serves: {', '.join(self.state.services)}", 404)
        refused = self.state.unavailable(service)
        if refused is not None:
            raise refused
        request, binary = request_dict(message)
        batch_dim = service.batch_dim.position if service.batch_dim else None

        def check():
            return check_request(request, binary, service.manifest, batch_dim=batch_dim, model=service.name)

        # typed `contents` become tensors element by element (slow when large: on a thread); raw bytes are one copy
        heavy = not message.raw_input_contents and message.ByteSize() >= OFF_LOOP_BYTES
        checked = await asyncio.to_thread(check) if heavy else check()
        outputs = await run_model(self.state.backend, service, checked)
        return infer_response(*encode_infer_response(service.name, checked, outputs))

    async def _find(self, name: str, version: str, context):
        service = self.state.services.get(name)
        if service is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model `{name[:80]}`; this server serves: {', '.join(self.state.services)}")
        if version not in ("", "1"):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model `{name}` has no version `{version[:20]}`; this server serves version 1 only")
        return service


def _handlers(servicer: InferenceServicer):
    """The service's unary RPCs on `servicer`, as the generated `add_GRPCInferenceServiceServicer_to_server` registers
    them, except that `ModelInfer` parses its own bytes: bytes that are no `ModelInferRequest` get INVALID_ARGUMENT
    with one line (grpcio's deserializer would answer UNKNOWN, a server error, for a client's mistake)."""
    from google.protobuf.message import DecodeError

    async def model_infer(raw: bytes, context):
        try:
            request = service_pb2.ModelInferRequest.FromString(raw)
        except DecodeError:
            servicer.state.metrics.request("", 400, 0.0)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not an inference.ModelInferRequest message "
                                "(protobuf could not parse it); send one built from grpc_service.proto")
        return await servicer.ModelInfer(request, context)

    handlers = {}
    for method in service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        if method.client_streaming or method.server_streaming:  # ModelStreamInfer: not served (UNIMPLEMENTED)
            continue
        response = getattr(service_pb2, method.output_type.name)
        behaviour, parse = getattr(servicer, method.name), getattr(service_pb2, method.input_type.name).FromString
        if method.name == "ModelInfer":
            behaviour, parse = model_infer, None
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=parse,
                                                                     response_serializer=response.SerializeToString)
    return grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers)


async def start_grpc(state, host: str, port: int, extensions: list[str], reuse_port: bool = False) -> grpc.aio.Server:
    """Start the gRPC server on `host:port` in the running event loop (stop it with `await server.stop(grace)`)."""
    options = [("grpc.max_receive_message_length", state.max_body_bytes), ("grpc.max_send_message_length", -1),
               ("grpc.so_reuseport", int(reuse_port))]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((_handlers(InferenceServicer(state, extensions)),))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    progress.info(f"serving gRPC (inference.GRPCInferenceService) on {host}:{port}")
    return server
