"""Triton's model configuration and statistics extensions, from a manifest and counters the server keeps.

`model_config(service, ...)` is the JSON Triton answers on `GET /v2/models/{name}/config` (and, parsed into its
protobuf, on gRPC's `ModelConfig`): `max_batch_size`, inputs and outputs with their dims (without the batch dim when
the model batches along dim 0, as Triton writes them), `dynamic_batching` and one instance. `perf_analyzer` reads it
to shape its requests. `ModelStats` keeps Triton's statistics (`GET /v2/models/{name}/stats`, gRPC
`ModelStatistics`): request counts and times, and cumulative queue, compute input, compute infer and compute output
nanoseconds, per model and per batch size.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from pt2kit.serve.protocol import DATATYPES, tensor_inputs, tensor_outputs

# Triton's model-config data types (model_config.proto), from the OIP datatypes
TRITON_TYPES = {oip: f"TYPE_{oip}" for oip in DATATYPES.values()} | {"BYTES": "TYPE_STRING"}

_PHASES = ("compute_input", "compute_infer", "compute_output")


def model_config(service, *, max_queue_delay_ms: float = 0.0, instances: int = 1) -> dict:
    """Triton's model configuration of `service` (a `ModelService`), as its HTTP API writes it.

    A model that batches along dim 0 gets `max_batch_size` > 0 and dims without the batch dim; any other model
    gets `max_batch_size` 0 and its full shape (-1 for each dynamic dim).
    """
    batches_at_0 = service.batch_dim is not None and service.batch_dim.position == 0 and \
        all(position == 0 for position in service.batch_dim.outputs.values())
    max_batch = service.max_batch_size if batches_at_0 else 0

    def describe(spec, kind: str) -> dict:
        dims = [size if isinstance(size, int) else -1 for size in spec.shape]
        entry = {"name": spec.name, "data_type": TRITON_TYPES.get(DATATYPES.get(spec.dtype, ""), "TYPE_INVALID"),
                 "dims": dims[1:] if max_batch else dims}
        if kind == "input":
            entry |= {"format": "FORMAT_NONE", "is_shape_tensor": False, "allow_ragged_batch": False, "optional": False}
        return entry

    config = {
        "name": service.name, "platform": service.platform, "backend": "pt2kit",
        "version_policy": {"latest": {"num_versions": 1}}, "max_batch_size": max_batch,
        "input": [describe(s, "input") for s in tensor_inputs(service.manifest)],
        "output": [describe(s, "output") for s in tensor_outputs(service.manifest)],
        "instance_group": [{"name": f"{service.name}_0", "kind": "KIND_GPU" if service.device.type == "cuda" else "KIND_CPU",
                            "count": instances}],
    }
    if max_batch:
        config["dynamic_batching"] = {"max_queue_delay_microseconds": int(max_queue_delay_ms * 1000), "preferred_batch_size": [],
                                      "preserve_ordering": False}
    return config


@dataclass
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def to_json(self) -> dict:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Triton's statistics of one model; `record_*` may be called from any thread."""

    name: str
    success: _Duration = field(default_factory=_Duration)
    fail: _Duration = field(default_factory=_Duration)
    queue: _Duration = field(default_factory=_Duration)
    phases: dict[str, _Duration] = field(default_factory=lambda: {p: _Duration() for p in _PHASES})
    batches: dict[int, dict[str, _Duration]] = field(default_factory=dict)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_request(self, ok: bool, seconds: float) -> None:
        """One answered request: `ok` for a 200, its time from arrival to answer."""
        with self.lock:
            (self.success if ok else self.fail).add(int(seconds * 1e9))

    def record_batch(self, rows: int, requests: int, queue_ns: int, phase_ns: tuple[int, int, int]) -> None:
        """One model call of `rows` rows for `requests` requests that waited `queue_ns` in all."""
        with self.lock:
            self.inference_count += rows
            self.execution_count += 1
            self.last_inference_ms = int(time.time() * 1000)
            self.queue.add(queue_ns, requests)
            per_batch = self.batches.setdefault(rows, {p: _Duration() for p in _PHASES})
            for phase, ns in zip(_PHASES, phase_ns):
                self.phases[phase].add(ns, requests)
                per_batch[phase].add(ns)

    def record_share(self, own_rows: int, rows: int, requests: int, queue_ns: int, phase_ns: tuple[int, int, int],
                     counts_call: bool) -> None:
        """One request of `own_rows` rows, a share of a model call that ran `requests` requests of `rows` rows in all
        (a front end of `--frontends` sees only its own requests): its rows, its queue time, and the call's time
        divided among the requests, so per-request averages read as `record_batch`'s; `counts_call` on one request
        of each call counts the call (execution count, per-batch-size figures)."""
        with self.lock:
            self.inference_count += own_rows
            self.queue.add(queue_ns, 1)
            for phase, ns in zip(_PHASES, phase_ns):
                self.phases[phase].add(ns // max(requests, 1), 1)
            if counts_call:
                self.execution_count += 1
                self.last_inference_ms = int(time.time() * 1000)
                per_batch = self.batches.setdefault(rows, {p: _Duration() for p in _PHASES})
                for phase, ns in zip(_PHASES, phase_ns):
                    per_batch[phase].add(ns)

    def to_json(self) -> dict:
        """One entry of Triton's `model_stats` list."""
        with self.lock:
            empty = {"count": 0, "ns": 0}
            return {
                "name": self.name, "version": "1", "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count, "execution_count": self.execution_count,
                "inference_stats": {"success": self.success.to_json(), "fail": self.fail.to_json(), "queue": self.queue.to_json(),
                                    **{p: d.to_json() for p, d in self.phases.items()}, "cache_hit": empty, "cache_miss": empty},
                "batch_stats": [{"batch_size": rows, **{p: d.to_json() for p, d in phases.items()}}
                                for rows, phases in sorted(self.batches.items())],
                "memory_usage": [],
            }
