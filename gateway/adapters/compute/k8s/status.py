"""Reading pod status: what the kubelet reported, turned into job phases with structured reasons.

Pure functions over the pod as the API returns it (a dict), so every rule is testable without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.adapters.compute.k8s.manifests import SETUP_CONTAINER, executor_container
from gateway.domain.task import system_log
from gateway.services.ports import JobPhase

# Waiting reasons that mean the image cannot be had. ErrImagePull/ImagePullBackOff can be transient
# (a registry hiccup), so they fail the job only after a grace period; the others fail it at once.
PULL_RETRYABLE = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
PULL_FATAL = frozenset({"InvalidImageName", "ErrImageNeverPull"})
CREATE_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
# Pod conditions/reasons that mean the pod was taken away, not that the task failed.
DISRUPTION_REASONS = frozenset({"Evicted", "Preempting", "Shutdown", "NodeShutdown", "Terminated", "NodeLost"})

Pod = Mapping[str, Any]


@dataclass(frozen=True)
class StageOutcome:
    phase: JobPhase
    reason: str | None = None


def phase(pod: Pod) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_deleting(pod: Pod) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def statuses(pod: Pod) -> dict[str, Mapping[str, Any]]:
    """Container name -> status, init containers included."""
    status = pod.get("status") or {}
    found: dict[str, Mapping[str, Any]] = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or []:
            if isinstance(entry, Mapping) and entry.get("name"):
                found[str(entry["name"])] = entry
    return found


def terminated(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not entry:
        return None
    state = (entry.get("state") or {}).get("terminated")
    return state if isinstance(state, Mapping) else None


def running(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not entry:
        return None
    state = (entry.get("state") or {}).get("running")
    return state if isinstance(state, Mapping) else None


def disruption(pod: Pod) -> str | None:
    """Why the pod was evicted or preempted, if it was."""
    status = pod.get("status") or {}
    if status.get("reason") in DISRUPTION_REASONS:
        return str(status.get("message") or status.get("reason"))
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "disrupted")
    return None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def waiting_failure(pod: Pod, *, now: datetime, grace_seconds: float) -> str | None:
    """A structured reason if a container cannot start (image pull, configuration), else None."""
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or now
    waited = (now - created).total_seconds()
    for name, entry in statuses(pod).items():
        waiting = (entry.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if not reason:
            continue
        message = str(waiting.get("message") or reason)
        image = str(entry.get("image") or "")
        if reason in PULL_FATAL or (reason in PULL_RETRYABLE and waited >= grace_seconds):
            return system_log("image_pull_failed", f"image {image} of container {name} cannot be pulled: {reason}",
                              container=name, image=image, message=message[:500])
        if reason in CREATE_FAILURES and waited >= grace_seconds:
            return system_log("container_create_failed", f"container {name} cannot start: {reason}",
                              container=name, message=message[:500])
    return None


def unschedulable(pod: Pod, *, now: datetime, timeout_seconds: float) -> str | None:
    if timeout_seconds <= 0:
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" \
                and condition.get("reason") == "Unschedulable":
            since = parse_time(condition.get("lastTransitionTime")) or now
            if (now - since).total_seconds() >= timeout_seconds:
                return system_log("unschedulable", str(condition.get("message") or "no node can run the pod")[:500])
    return None


def recorded_exit_code(entry: Mapping[str, Any] | None) -> int | None:
    """The executor's own exit code: the container's, or (for ignore_error) the one the helper recorded."""
    state = terminated(entry)
    if state is None:
        return None
    code = int(state.get("exitCode", -1))
    if code != 0:
        return code
    try:
        recorded = json.loads(state.get("message") or "")
        if isinstance(recorded, dict) and isinstance(recorded.get("exit_code"), int):
            return int(recorded["exit_code"])
    except ValueError:
        pass
    return code


def stager_outcome(pod: Pod, *, stage: str, now: datetime, grace_seconds: float,
                   unschedulable_seconds: float) -> StageOutcome:
    lost = disruption(pod)
    if lost:
        return StageOutcome(JobPhase.PREEMPTED, system_log("preempted", f"{stage} pod was evicted: {lost}"))
    current = phase(pod)
    if current == "Succeeded":
        return StageOutcome(JobPhase.SUCCEEDED)
    if current == "Failed":
        entry = next(iter(statuses(pod).values()), None)
        message = str((terminated(entry) or {}).get("message") or "")
        try:
            parsed = json.loads(message)
            if isinstance(parsed, dict) and parsed.get("reason"):
                return StageOutcome(JobPhase.SYSTEM_ERROR, system_log(
                    str(parsed["reason"]), str(parsed.get("detail", "")), stage=stage))
        except ValueError:
            pass
        detail = message or str((pod.get("status") or {}).get("message") or "the stager pod failed")
        return StageOutcome(JobPhase.SYSTEM_ERROR, system_log("staging_failed", detail[:500], stage=stage))
    failure = waiting_failure(pod, now=now, grace_seconds=grace_seconds) or unschedulable(
        pod, now=now, timeout_seconds=unschedulable_seconds)
    if failure:
        return StageOutcome(JobPhase.SYSTEM_ERROR, failure)
    return StageOutcome(JobPhase.RUNNING if current == "Running" else JobPhase.PENDING)


def executor_outcome(pod: Pod, ignore_error: list[bool], *, now: datetime, grace_seconds: float,
                     unschedulable_seconds: float) -> StageOutcome:
    """The executor pod's phase; executor logs are read separately (see executor_states)."""
    entries = statuses(pod)
    lost = disruption(pod)
    if lost:
        return StageOutcome(JobPhase.PREEMPTED, system_log("preempted", f"the executor pod was evicted: {lost}"))
    current = phase(pod)
    if current == "Succeeded":
        return StageOutcome(JobPhase.SUCCEEDED)
    if current == "Failed":
        status = pod.get("status") or {}
        for index, ignored in enumerate(ignore_error):
            state = terminated(entries.get(executor_container(index)))
            if state is None:
                break
            code = recorded_exit_code(entries.get(executor_container(index)))
            if state.get("reason") == "OOMKilled" and int(state.get("exitCode", 0)) != 0:
                return StageOutcome(JobPhase.FAILED, system_log(
                    "oom_killed", f"executor {index} exceeded its memory limit", executor=index,
                    exit_code=code))
            if int(state.get("exitCode", 0)) != 0 and not (ignored and code == 0):
                if status.get("reason") == "DeadlineExceeded":
                    break
                return StageOutcome(JobPhase.FAILED, system_log(
                    "executor_failed", f"executor {index} exited with code {code}", executor=index, exit_code=code))
        if status.get("reason") == "DeadlineExceeded":
            return StageOutcome(JobPhase.FAILED, system_log(
                "deadline_exceeded", str(status.get("message") or "the task ran longer than its time limit")[:500]))
        setup = terminated(entries.get(SETUP_CONTAINER))
        if setup is not None and int(setup.get("exitCode", 0)) != 0:
            return StageOutcome(JobPhase.SYSTEM_ERROR, system_log(
                "helper_failed", f"the helper container failed with code {setup.get('exitCode')}",
                message=str(setup.get("message") or "")[:500]))
        return StageOutcome(JobPhase.SYSTEM_ERROR, system_log(
            "pod_failed", str(status.get("message") or status.get("reason") or "the executor pod failed")[:500]))
    failure = waiting_failure(pod, now=now, grace_seconds=grace_seconds) or unschedulable(
        pod, now=now, timeout_seconds=unschedulable_seconds)
    if failure:
        return StageOutcome(JobPhase.SYSTEM_ERROR, failure)
    return StageOutcome(JobPhase.RUNNING if current == "Running" or _any_started(entries) else JobPhase.PENDING)


def _any_started(entries: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(running(e) or terminated(e) for name, e in entries.items() if name.startswith("exec-"))


@dataclass(frozen=True)
class ExecutorState:
    index: int
    exit_code: int
    finished: bool
    start_time: str | None
    end_time: str | None


def executor_states(pod: Pod, count: int) -> list[ExecutorState]:
    """Executors that started, in order, each with its own exit code."""
    entries = statuses(pod)
    found = []
    for index in range(count):
        entry = entries.get(executor_container(index))
        state = terminated(entry)
        if state is not None:
            code = recorded_exit_code(entry)
            found.append(ExecutorState(index, -1 if code is None else code, True,
                                       _rfc3339(state.get("startedAt")), _rfc3339(state.get("finishedAt"))))
            continue
        active = running(entry)
        if active is not None:
            found.append(ExecutorState(index, 0, False, _rfc3339(active.get("startedAt")), None))
        break
    return found


def finished_at(pod: Pod) -> datetime | None:
    times = [parse_time((terminated(e) or {}).get("finishedAt")) for e in statuses(pod).values()]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _rfc3339(value: Any) -> str | None:
    parsed = parse_time(value)
    if parsed is None:
        return None
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
