"""The dispatcher/reconciler loop: leases active tasks and advances each; removes orphaned jobs.

Several dispatchers (the in-process one of `serve`, `tre-gateway worker` replicas) can run against
one database: a task is driven only by the holder of its lease, and a lease that is not renewed
(its worker died) expires so another worker resumes the task where the backend says it is.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from gateway.domain.errors import DomainError
from gateway.domain.states import ACTIVE_STATES, TaskState
from gateway.domain.task import Task, system_log
from gateway.services.observer import NullObserver, Observer
from gateway.services.ports import ComputeBackend, StaleTask, TaskRepository
from gateway.services.runner import TaskRunner

log = logging.getLogger(__name__)


class Follower(Protocol):
    """Work the dispatcher drives on each pass besides tasks (workflow runs, crate submissions)."""

    def run_once(self) -> int:
        """Take what can move one step further; return how many items were looked at."""
        ...

    def any_active(self) -> bool:
        """Whether anything will still move without a person acting (drain waits for it)."""
        ...


@dataclass
class Dispatcher:
    repo: TaskRepository
    runner: TaskRunner
    backend: ComputeBackend
    worker_id: str
    # Work driven alongside tasks, in order: workflow runs, then what follows runs (crate submissions).
    followers: tuple[Follower, ...] = ()
    poll_interval: float = 0.5
    lease_seconds: float = 30.0
    batch_size: int = 64
    threads: int = 4
    reconcile_every: float = 60.0
    observer: Observer = field(default_factory=NullObserver)
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _last_reconcile: float = field(default=0.0, init=False)

    def wake(self) -> None:
        self._wake.set()

    def run_once(self, pool: ThreadPoolExecutor | None = None) -> int:
        """Advance every task this worker can lease by one step; return how many were leased."""
        tasks = self.repo.claim_active(self.worker_id, self.lease_seconds, self.batch_size)
        if pool is None or len(tasks) <= 1:
            for task in tasks:
                self._advance(task)
        else:
            list(pool.map(self._advance, tasks))
        return len(tasks) + sum(follower.run_once() for follower in self.followers)

    def drain(self, timeout: float = 60.0) -> None:
        """Run until no task is active (tests, benchmarks) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(self.threads) as pool:
            while time.monotonic() < deadline:
                if self.run_once(pool) == 0 and not self._any_active():
                    return
        raise TimeoutError("tasks still active after drain timeout")

    def _any_active(self) -> bool:
        if any(follower.any_active() for follower in self.followers):
            return True
        counts = self.repo.count_by_state()
        return any(counts.get(s, 0) for s in ACTIVE_STATES)

    def _advance(self, task: Task) -> None:
        try:
            before = task.state
            # Keep stepping while the task moves, so a new task reaches RUNNING in one pass.
            for _ in range(4):
                task = self.runner.advance(task)
                if task.state is before or task.state.is_terminal:
                    break
                before = task.state
        except StaleTask:
            pass  # changed by the API (e.g. cancelled) meanwhile: the next pass sees the new state
        except DomainError as exc:
            self.observer.backend_error("advance")
            log.warning("backend error", extra={"task_id": task.id, "error": exc.msg})
            self._fail(task, exc.msg)
        except Exception:  # noqa: BLE001 - one broken task must not stop the loop
            self.observer.backend_error("advance")
            log.exception("unexpected error advancing task", extra={"task_id": task.id})
        finally:
            self.repo.release_lease(task.id, self.worker_id)

    def _fail(self, task: Task, detail: str) -> None:
        current = self.repo.get(task.id)
        if current is None or current.state.is_terminal:
            return
        try:
            self.backend.cancel(task.id)
            self.backend.cleanup(task.id)
            target = TaskState.CANCELED if current.state is TaskState.CANCELING else TaskState.SYSTEM_ERROR
            reason = None if target is TaskState.CANCELED else system_log("backend_error", detail)
            if target is TaskState.CANCELED:
                self.runner.on_cancel(task.id)
            self.runner.persist(current.moved_to(target, at=self.runner.now(), reason=reason), current.state)
        except (StaleTask, DomainError):
            pass

    def reconcile_orphans(self) -> list[str]:
        """Remove containers/pods whose task is finished or unknown (e.g. after a crash)."""
        removed = []
        for task_id in sorted(self.backend.known_task_ids()):
            task = self.repo.get(task_id)
            if task is None or task.state.is_terminal or task.state is TaskState.PAUSED:
                self.backend.cancel(task_id)
                self.backend.cleanup(task_id)
                removed.append(task_id)
        if removed:
            log.info("removed orphaned jobs", extra={"task_ids": removed})
        self._last_reconcile = time.monotonic()
        return removed

    def run_forever(self, stop: threading.Event) -> None:
        log.info("dispatcher started", extra={"worker": self.worker_id, "backend": self.backend.name})
        with ThreadPoolExecutor(self.threads) as pool:
            while not stop.is_set():
                try:
                    if time.monotonic() - self._last_reconcile > self.reconcile_every:
                        self.reconcile_orphans()
                    busy = self.run_once(pool)
                except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                    log.exception("dispatcher pass failed")
                    busy = 0
                if not busy:
                    self._wake.wait(self.poll_interval)
                else:
                    self._wake.wait(min(self.poll_interval, 0.2))
                self._wake.clear()
