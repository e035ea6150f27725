"""Prometheus metrics, in a registry owned by the app (no global collectors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.domain.states import TaskState

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _TasksByState(Collector):
    def __init__(self, count: Callable[[], dict[TaskState, int]]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("tre_gateway_tasks", "Tasks by state", labels=["state"])
        counts = self.count()
        for state in TaskState:
            family.add_metric([state.value], counts.get(state, 0))
        yield family


class Metrics:
    """Implements the services' Observer port and times API operations."""

    def __init__(self, count_by_state: Callable[[], dict[TaskState, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "tre_gateway_request_seconds",
            "API request latency by operation",
            ["operation", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_to_start = Histogram(
            "tre_gateway_queue_to_start_seconds",
            "Time from task creation to its first executor being started",
            buckets=LATENCY_BUCKETS + (30, 60, 300),
            registry=self.registry,
        )
        self.finished = Counter(
            "tre_gateway_tasks_finished", "Tasks reaching a final state", ["state"], registry=self.registry
        )
        self.backend_errors = Counter(
            "tre_gateway_backend_errors", "Compute backend or store failures", ["operation"], registry=self.registry
        )
        self.registry.register(_TasksByState(count_by_state))

    def observe_request(self, operation: str, status: int, seconds: float) -> None:
        self.requests.labels(operation, str(status)).observe(seconds)

    def task_started(self, queue_seconds: float) -> None:
        self.queue_to_start.observe(max(0.0, queue_seconds))

    def task_finished(self, state: TaskState) -> None:
        self.finished.labels(state.value).inc()

    def backend_error(self, operation: str) -> None:
        self.backend_errors.labels(operation).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
