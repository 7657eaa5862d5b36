"""Prometheus metrics of the endpoint, exposed by the ingress at `GET /metrics`.

One registry per ingress replica (the app runs exactly one ingress replica, so one scrape
target sees every request). Model replicas do not open ports: each translation result carries
the size of the batch it ran in and the replica's model load time, and the ingress records them,
so the batch-size histogram and load times cover every model replica. (Ray's own metrics,
`ray_serve_*` and the training gauges `ray_crossnet_train_*`, come from Ray's metrics agent:
see infra/prometheus/.)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUESTS = "crossnet_serve_requests_total"
LATENCY = "crossnet_serve_request_latency_seconds"
BATCH_SIZE = "crossnet_serve_batch_size"
IN_FLIGHT = "crossnet_serve_in_flight_requests"
MODEL_LOAD = "crossnet_serve_model_load_seconds"
FORWARD = "crossnet_serve_model_forward_seconds"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # prometheus-client appends _total to counters; the names above are the exported ones.
        self.requests = Counter(
            REQUESTS.removesuffix("_total"), "HTTP requests by endpoint and status code",
            ("endpoint", "status"), registry=self.registry,
        )
        self.latency = Histogram(
            LATENCY, "Request latency at the ingress (receive to response)", ("endpoint",),
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            BATCH_SIZE, "Requests per model batch (@serve.batch)", buckets=_BATCH_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge(IN_FLIGHT, "Translation requests accepted and not yet answered", registry=self.registry)
        self.model_load = Gauge(
            MODEL_LOAD, "Time a model replica took to fetch and load its checkpoint", ("replica",),
            registry=self.registry,
        )
        self.forward = Histogram(
            FORWARD, "Model forward time per batch (resize, translate, resize back)", buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_model(self, result: dict) -> None:
        """Records what a model replica reported with a translation result."""
        if result.get("batch_size"):
            self.batch_size.observe(result["batch_size"])
            self.forward.observe(result.get("forward_s", 0.0))
        if result.get("replica") and result.get("load_s") is not None:
            self.model_load.labels(result["replica"]).set(result["load_s"])

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
