"""One watch stream per namespace keeping an in-memory copy of the gateway's pods.

The loop: LIST (remember the list's resourceVersion) -> WATCH from that resourceVersion -> apply each event ->
when the stream ends (server timeout, dropped connection, read timeout) WATCH again from the last
resourceVersion seen, so no transition is missed -> on `410 Gone` (the server no longer has that version)
LIST again -> every `resync_seconds` LIST again anyway and reconcile the copy with it (a missed event
cannot persist longer than that).

Pods the backend deletes itself are forgotten at once (tombstoned by uid, so a late event does not bring
them back); pods that disappear otherwise (deleted by an eviction, a node drain, an administrator) are
remembered as *lost* with what is known about why, so the backend can report the task as preempted.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.adapters.compute.k8s.manifests import LABEL_STAGE, LABEL_TASK
from gateway.adapters.compute.k8s.status import disruption, is_deleting, phase

log = logging.getLogger(__name__)

Pod = dict[str, Any]



_METADATA_KEPT = ("name", "namespace", "uid", "labels", "resourceVersion", "creationTimestamp", "deletionTimestamp")
_STATUS_KEPT = ("phase", "reason", "message", "conditions", "startTime")
_CONTAINER_KEPT = ("name", "image", "state", "lastState", "restartCount")


def slim(pod: Pod) -> Pod:
    """Only what poll() and the status rules read: a cached pod costs a few KiB, not the whole object."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    kept_status: dict[str, Any] = {k: status[k] for k in _STATUS_KEPT if k in status}
    for key in ("initContainerStatuses", "containerStatuses"):
        if status.get(key):
            kept_status[key] = [{k: c[k] for k in _CONTAINER_KEPT if k in c} for c in status[key]]
    return {"metadata": {k: meta[k] for k in _METADATA_KEPT if k in meta}, "status": kept_status}

class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


@dataclass
class _Entry:
    pod: Pod
    seen: float  # monotonic time of the last update


@dataclass(frozen=True)
class Lost:
    """A pod that disappeared without the backend deleting it."""

    stage: str
    reason: str
    succeeded: bool
    at: float = 0.0  # monotonic time it was noticed


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def _uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def _rv(obj: Mapping[str, Any]) -> str | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value else None


class PodCache:
    """Pods of one namespace carrying `label_key`, kept current by one watch stream (a daemon thread)."""

    def __init__(
        self,
        core: Any,
        namespace: str,
        label_key: str,
        *,
        resync_seconds: float = 300.0,
        watch_timeout_seconds: float = 240.0,
        connect_timeout_seconds: float = 10.0,
        tombstone_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.label_key = label_key
        self.resync_seconds = resync_seconds
        self.watch_timeout_seconds = watch_timeout_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.tombstone_seconds = tombstone_seconds
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self.resource_version: str | None = None
        self._pods: dict[str, _Entry] = {}
        self._tombstones: dict[str, tuple[str, float]] = {}  # name -> (uid, monotonic time)
        self._lost: dict[str, Lost] = {}  # pod name -> why
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self._next_resync = 0.0
        self._fresh_list = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"pod-watch-{self.namespace}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def _interrupt(self) -> None:
        """Unblock a read on the current watch response (used by stop)."""
        response = self._response
        if response is None:
            return
        try:
            connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
            sock = getattr(connection, "sock", None)
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------ reading

    def pods_of(self, task_id: str, names: Iterable[str] | None = None) -> dict[str, Pod]:
        """The task's live pods by stage label (pods being deleted are left out).

        With `names` (the pod names the task's pods have), a direct look-up instead of a scan of the namespace.
        """
        with self._lock:
            if names is None:
                entries = list(self._pods.values())
            else:
                entries = [e for e in (self._pods.get(n) for n in names) if e is not None]
            found = {}
            for entry in entries:
                labels = _labels(entry.pod)
                if labels.get(LABEL_TASK) == task_id and not is_deleting(entry.pod):
                    found[str(labels.get(LABEL_STAGE, ""))] = entry.pod
            return found

    def lost_of(self, names: Iterable[str]) -> dict[str, Lost]:
        """Why pods of these names disappeared, by stage, for those that did without the backend deleting them."""
        with self._lock:
            return {lost.stage: lost for lost in (self._lost.get(n) for n in names) if lost is not None}

    def all_pods(self) -> list[Pod]:
        with self._lock:
            return [entry.pod for entry in self._pods.values()]

    # ------------------------------------------------------------ local changes

    def put(self, pod: Pod) -> None:
        """A pod the backend just created (the API's answer): visible before its watch event arrives.

        If the watch already delivered this pod, its copy is at least as new as the API's answer: keep it.
        """
        with self._lock:
            name = _name(pod)
            stone = self._tombstones.get(name)
            if stone is not None and stone[0] != _uid(pod):
                del self._tombstones[name]  # a new pod of a name deleted before
            current = self._pods.get(name)
            if current is not None and _uid(current.pod) == _uid(pod):
                return
            self._apply_locked("ADDED", pod)

    def forget(self, name: str) -> None:
        """The backend deleted this pod: drop it now and ignore late events about it."""
        with self._lock:
            entry = self._pods.pop(name, None)
            self._tombstones[name] = (_uid(entry.pod) if entry else "", self.clock())
            self._lost.pop(name, None)

    # ------------------------------------------------------------ applying events

    def _tombstoned(self, name: str, uid: str) -> bool:
        stone = self._tombstones.get(name)
        if stone is None:
            return False
        stone_uid, at = stone
        if self.clock() - at > self.tombstone_seconds:
            del self._tombstones[name]
            return False
        return not stone_uid or not uid or stone_uid == uid

    def _apply_locked(self, kind: str, pod: Pod) -> None:
        name = _name(pod)
        if not name or self.label_key not in _labels(pod):
            return  # not ours: the server ignored the selector
        if kind == "DELETED":
            entry = self._pods.pop(name, None)
            if not self._tombstoned(name, _uid(pod)):
                self._mark_lost(name, entry.pod if entry else pod, pod)
            return
        if self._tombstoned(name, _uid(pod)):
            return
        current = self._pods.get(name)
        if current is not None and _uid(current.pod) and _uid(pod) and _uid(current.pod) != _uid(pod):
            self._lost.pop(name, None)  # re-created
        self._pods[name] = _Entry(slim(pod), self.clock())

    def _mark_lost(self, name: str, last: Pod, final: Pod) -> None:
        reason = disruption(final) or disruption(last) or "the pod was deleted by someone other than the gateway"
        self._lost[name] = Lost(
            stage=str(_labels(last).get(LABEL_STAGE, "")),
            reason=reason,
            succeeded=phase(last) == "Succeeded" or phase(final) == "Succeeded",
            at=self.clock(),
        )
        self.stats["lost"] += 1

    def _prune(self) -> None:
        """Forget old tombstones and losses (another worker's finished tasks end up here too)."""
        horizon = self.clock() - self.tombstone_seconds
        with self._lock:
            for name in [n for n, (_uid_, at) in self._tombstones.items() if at < horizon]:
                del self._tombstones[name]
            for name in [n for n, lost in self._lost.items() if lost.at < horizon]:
                del self._lost[name]

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if self.resource_version is None or self.clock() >= self._next_resync:
                    self._relist()
                if self._stop.is_set():
                    break
                self._watch_once()
                self._prune()
                backoff = 0.2
            except _Gone:
                self.stats["gone"] += 1
                log.info("pod watch: resourceVersion expired, listing again", extra={"namespace": self.namespace})
                self.resource_version = None
            except Exception as exc:  # noqa: BLE001 - the API server may be away for a while
                if self._stop.is_set():
                    break
                if getattr(exc, "status", None) == 410:
                    self.stats["gone"] += 1
                    self.resource_version = None
                    continue
                self.stats["errors"] += 1
                log.warning("pod watch failed; retrying", extra={"namespace": self.namespace, "error": repr(exc)})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _relist(self) -> None:
        started = self.clock()
        response = self.core.list_namespaced_pod(
            self.namespace, label_selector=self.label_key, _preload_content=False,
            _request_timeout=(self.connect_timeout_seconds, 60),
        )
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        listed = {_name(p): p for p in body.get("items") or [] if _name(p)}
        with self._lock:
            for name, entry in list(self._pods.items()):
                if name not in listed and entry.seen < started:
                    del self._pods[name]
                    if not self._tombstoned(name, _uid(entry.pod)):
                        self._mark_lost(name, entry.pod, entry.pod)
            for name, pod in listed.items():
                entry = self._pods.get(name)
                if entry is not None and entry.seen >= started:
                    continue  # changed locally after the list was taken
                self._apply_locked("MODIFIED", pod)
        self.resource_version = _rv(body) or self.resource_version or ""
        self._next_resync = self.clock() + self.resync_seconds
        self.stats["lists"] += 1
        self._fresh_list = True
        self._synced.set()

    def _watch_once(self) -> None:
        remaining = max(1.0, self._next_resync - self.clock())
        timeout = int(max(1, min(self.watch_timeout_seconds, remaining)))
        kwargs: dict[str, Any] = {
            "label_selector": self.label_key,
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout,
            "_preload_content": False,
            "_request_timeout": (self.connect_timeout_seconds, timeout + 5),
        }
        if self.resource_version:
            kwargs["resource_version"] = self.resource_version
        self.stats["watches"] += 1
        if not self._fresh_list:
            self.stats["resumes"] += 1  # continuing from the last event's resourceVersion, not from a list
        self._fresh_list = False
        response = self.core.list_namespaced_pod(self.namespace, **kwargs)
        self._response = response
        try:
            if self._stop.is_set():  # stop() may have looked for a response before this one existed
                return
            for line in _lines(response):
                if self._stop.is_set():
                    return
                self._handle_line(line)
        except Exception as exc:  # noqa: BLE001
            if _is_stream_end(exc):
                return  # resume from the last resourceVersion
            raise
        finally:
            self._response = None
            try:
                response.release_conn()
            except Exception:  # noqa: BLE001, S110 - the connection may already be gone
                pass

    def _handle_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        with self._lock:
            self._apply_locked(kind, obj)
        if rv:
            self.resource_version = rv
        self.stats["events"] += 1


def _lines(response: Any) -> Iterator[str]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk if isinstance(chunk, bytes) else str(chunk).encode()
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", "replace")
    if buffer.strip():
        yield buffer.decode("utf-8", "replace")


def _is_stream_end(exc: BaseException) -> bool:
    """A read timeout or a dropped connection ends a watch like a server timeout does."""
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    return isinstance(exc, ReadTimeoutError | ProtocolError | TimeoutError | ConnectionError)
