"""An outbound port for operational signals (metrics); the services never import a metrics library."""

from __future__ import annotations

from typing import Protocol

from gateway.domain.states import TaskState


class Observer(Protocol):
    def task_started(self, queue_seconds: float) -> None: ...

    def task_finished(self, state: TaskState) -> None: ...

    def backend_error(self, operation: str) -> None: ...


class NullObserver:
    def task_started(self, queue_seconds: float) -> None:
        pass

    def task_finished(self, state: TaskState) -> None:
        pass

    def backend_error(self, operation: str) -> None:
        pass
