"""Prometheus metrics of one server, in a registry of its own (two apps in one process never collide).

Labels hold only names the server chose (the models it serves, HTTP status codes), never text from a request,
so a stream of requests for made-up models cannot grow the label sets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pt2kit.serve.triton import ModelStats

UNKNOWN_MODEL = "_unknown"  # the label for requests naming a model the server does not serve

_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    """`pt2kit_requests_total{model,code}` and the per-model histograms of request, queue and inference time and
    batch size."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, models: list[str]):
        self.models = set(models)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("pt2kit_requests_total", "Inference requests answered, by model and HTTP status code",
                                ["model", "code"], registry=self.registry)
        self.request_duration = Histogram("pt2kit_request_duration_seconds", "Time from receiving a request to answering it",
                                          ["model"], buckets=_SECONDS, registry=self.registry)
        self.queue_duration = Histogram("pt2kit_queue_duration_seconds", "Time a request waited in the batch queue",
                                        ["model"], buckets=_SECONDS, registry=self.registry)
        self.inference_duration = Histogram("pt2kit_inference_duration_seconds", "Time of one model call (one batch)",
                                            ["model"], buckets=_SECONDS, registry=self.registry)
        self.batch_size = Histogram("pt2kit_batch_size", "Rows along the batch dim in one model call",
                                    ["model"], buckets=_ROWS, registry=self.registry)
        self.stats = {model: ModelStats(model) for model in models}  # Triton's statistics extension

    def label(self, model: str) -> str:
        return model if model in self.models else UNKNOWN_MODEL

    def request(self, model: str, code: int, seconds: float) -> None:
        model = self.label(model)
        self.requests.labels(model, str(code)).inc()
        self.request_duration.labels(model).observe(seconds)
        if model in self.stats:
            self.stats[model].record_request(code == 200, seconds)

    def queue_seconds(self, model: str, seconds: float) -> None:
        self.queue_duration.labels(model).observe(seconds)

    def batch(self, model: str, rows: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(rows)
        self.inference_duration.labels(model).observe(seconds)

    def model_call(self, model: str, rows: int, requests: int, queue_ns: int, phase_ns: tuple[int, int, int]) -> None:
        """Triton's per-call statistics: `requests` requests of `rows` rows in all, after `queue_ns` of waiting in all."""
        self.stats[model].record_batch(rows, requests, queue_ns, phase_ns)

    def render(self) -> bytes:
        return generate_latest(self.registry)
