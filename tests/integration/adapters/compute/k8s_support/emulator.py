"""An emulated Kubernetes API server on loopback: kmock's KubernetesEmulator, plus what kmock 0.8 lacks.

kmock keeps objects in memory, serves create/read/patch/delete/list and streams watch events to the official
client over real HTTP. It does not implement (checked in its source, kmock/_internal/k8s.py):
resourceVersions, label selectors, `timeoutSeconds` on watches, watching from a resourceVersion, `410 Gone`,
the pods/log subresource, and it only recognises `watch=true` spelled in lower case (the Python client sends
`watch=True`). This subclass adds exactly those, following the API's documented semantics:

- every write gets the next resourceVersion (a cluster-wide counter, assigned while kmock holds its lock, so
  history order is resourceVersion order); objects get a uid and creationTimestamp;
- LIST filters by namespace and label selector and reports the current resourceVersion;
- WATCH with a resourceVersion replays the recorded history after it (or answers 410 Gone once the history
  was compacted), then streams live events; without one it starts with ADDED for every existing object;
  `timeoutSeconds` ends the stream; test hooks drop every open watch, hold new ones back, or compact history;
- GET pods/NAME/log?container=C&tailLines=N serves what the fake kubelet recorded (in a cluster the API
  server proxies this to the node's kubelet).

`EmulatedApiServer` runs it in a thread with its own event loop, so the synchronous official client (the
backend) and the fake kubelet talk to it over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock

DROP = object()


def parse_selector(text: str | None) -> list[tuple[str, str, str | None]]:
    """Equality and existence label selectors: `k`, `!k`, `k=v`, `k==v`, `k!=v`, comma-separated."""
    terms: list[tuple[str, str, str | None]] = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "!=" in part:
            key, value = part.split("!=", 1)
            terms.append(("!=", key.strip(), value.strip()))
        elif "==" in part or "=" in part:
            key, value = part.replace("==", "=").split("=", 1)
            terms.append(("=", key.strip(), value.strip()))
        elif part.startswith("!"):
            terms.append(("!", part[1:].strip(), None))
        else:
            terms.append(("exists", part, None))
    return terms


def selector_matches(terms: list[tuple[str, str, str | None]], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for op, key, value in terms:
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
    return True


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _RecordingBus(kmock.Bus):  # type: ignore[misc]
    """kmock's event bus for one resource; every event also goes to the emulator's history and live watches."""

    def __init__(self, emulator: ApiEmulator, resource: Any) -> None:
        super().__init__()
        self.emulator = emulator
        self.resource = resource

    async def put(self, *items: Any) -> None:
        for item in items:
            self.emulator._record(self.resource, item)
        await super().put(*items)


class _Buses(dict):  # type: ignore[type-arg]
    def __init__(self, emulator: ApiEmulator) -> None:
        super().__init__()
        self.emulator = emulator

    def __missing__(self, resource: Any) -> _RecordingBus:
        bus = _RecordingBus(self.emulator, resource)
        self[resource] = bus
        return bus


@attrs.define(kw_only=True)
class ApiEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    resource_version: int = 0
    compacted_rv: int = 0
    history: list[tuple[int, Any, dict[str, Any]]] = attrs.field(factory=list)
    logs: dict[tuple[str, str, str], str] = attrs.field(factory=dict)
    created: list[dict[str, Any]] = attrs.field(factory=list)
    watch_params: list[dict[str, str]] = attrs.field(factory=list)
    list_params: list[dict[str, str]] = attrs.field(factory=list)
    log_requests: list[tuple[str, str, str]] = attrs.field(factory=list)
    _queues: set[asyncio.Queue[Any]] = attrs.field(factory=set)
    _gate: asyncio.Event | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._buses = _Buses(self)

    # ------------------------------------------------------------ resourceVersions and history

    def _next_rv(self) -> int:
        self.resource_version += 1
        return self.resource_version

    def _record(self, resource: Any, event: dict[str, Any]) -> None:
        """Called by kmock (under its lock) for every change: stamp the resourceVersion, keep, fan out."""
        rv = self._next_rv()
        obj = event.get("object")
        if isinstance(obj, dict):
            # The event's object shares its metadata dict with the stored version (kmock copies shallowly),
            # so this also stamps the stored object.
            obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        kept = copy.deepcopy(event)
        self.history.append((rv, resource, kept))
        for queue in self._queues:
            queue.put_nowait((resource, kept))

    # ------------------------------------------------------------ requests

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock finds a request's route by scanning its whole request log for it (by identity), which makes
        # every request slower than the one before; only the request being routed needs to be in the log.
        if len(self._requests) > 64:
            del self._requests[:-8]
        if request.resource is not None:
            if request.method == kmock.method.GET and str(request.params.get("watch", "")).lower() == "true" \
                    and request.action != kmock.action.WATCH:
                # kmock routes by the identity of the logged request: log the corrected one instead.
                evolved = attrs.evolve(request, action=kmock.action.WATCH)
                self._requests[:] = [evolved if r is request else r for r in self._requests]
                request = evolved
            if request.resource.plural == "pods" and request.subresource == "log" \
                    and request.method == kmock.method.GET:
                return self._serve_log(request)
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                self.created.append(copy.deepcopy(request.data))
                meta = request.data.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                if request.namespace:
                    meta.setdefault("namespace", request.namespace)
        return await super()._handle(request)

    def _serve_log(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        container = str(request.params.get("container", ""))
        key = (str(request.namespace), str(request.name), container)
        self.log_requests.append(key)
        if key not in self.logs:
            return aiohttp.web.json_response({
                "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 400, "reason": "BadRequest",
                "message": f'container "{container}" in pod "{request.name}" is waiting to start',
            }, status=400)
        text = self.logs[key]
        tail = request.params.get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail):])
        return aiohttp.web.Response(text=text, content_type="text/plain")

    def _matching(self, request: kmock.Request) -> list[dict[str, Any]]:
        terms = parse_selector(request.params.get("labelSelector"))
        found = []
        for (resource, namespace, _name), obj in self._objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            raw = obj.raw
            if selector_matches(terms, raw):
                found.append(copy.deepcopy(raw))
        return found

    async def _serve_list(self, request: kmock.Request) -> dict[str, Any]:
        async with self._lock:
            self.list_params.append({"namespace": str(request.namespace), **dict(request.params)})
            items = self._matching(request)
            rv = str(self.resource_version)
        return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}

    async def _serve_watch(self, request: kmock.Request) -> Any:
        yield b""  # send the headers now
        self.watch_params.append({"namespace": str(request.namespace), **dict(request.params)})
        if self._gate is not None:
            gate = self._gate
            try:
                await asyncio.wait_for(gate.wait(), 30)
            except TimeoutError:
                return
        params = dict(request.params)
        terms = parse_selector(params.get("labelSelector"))
        timeout = float(params.get("timeoutSeconds") or 0)
        since = params.get("resourceVersion")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        gone = False
        async with self._lock:
            self._queues.add(queue)
            if since and since != "0":
                if int(since) < self.compacted_rv:
                    gone = True
                    backlog = []
                else:
                    backlog = [event for rv, resource, event in self.history
                               if rv > int(since) and resource == request.resource]
            else:
                backlog = [{"type": "ADDED", "object": raw} for raw in self._matching(request)]
        try:
            if gone:
                yield {"type": "ERROR", "object": {
                    "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410, "reason": "Expired",
                    "message": f"too old resource version: {since} ({self.compacted_rv})"}}
                return
            for event in backlog:
                if self._event_matches(request, terms, event):
                    yield event
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    return
                if item is DROP:
                    return
                resource, event = item
                if resource == request.resource and self._event_matches(request, terms, event):
                    yield event
        finally:
            self._queues.discard(queue)

    @staticmethod
    def _event_matches(request: kmock.Request, terms: list[tuple[str, str, str | None]], event: dict[str, Any]) -> bool:
        obj = event.get("object") or {}
        namespace = (obj.get("metadata") or {}).get("namespace")
        if request.namespace is not None and namespace != request.namespace:
            return False
        return selector_matches(terms, obj)

    # ------------------------------------------------------------ test hooks (call in the loop thread)

    def drop_watches(self) -> None:
        """Close every open watch stream, as a restarted API server or a broken connection would."""
        for queue in self._queues:
            queue.put_nowait(DROP)

    def hold_watches(self) -> None:
        """New watch requests wait (up to 30 s) until release_watches()."""
        self._gate = asyncio.Event()

    def release_watches(self) -> None:
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    def compact(self) -> None:
        """Forget history (etcd compaction): watches from older resourceVersions get 410 Gone."""
        self.compacted_rv = self.resource_version
        self.history.clear()

    async def silently_patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Change an object without emitting a watch event: only a re-list can notice."""
        async with self._lock:
            for (resource, ns, n), obj in self._objects.items():
                if resource.plural == plural and ns == namespace and n == name and not obj.deleted:
                    patch = copy.deepcopy(patch)
                    patch.setdefault("metadata", {})["resourceVersion"] = str(self._next_rv())
                    obj.patch(patch)
                    return
        raise KeyError(name)

    async def silently_delete(self, plural: str, namespace: str, name: str) -> None:
        async with self._lock:
            for (resource, ns, n), obj in self._objects.items():
                if resource.plural == plural and ns == namespace and n == name and not obj.deleted:
                    self._next_rv()
                    obj.delete()
                    return
        raise KeyError(name)


class EmulatedApiServer:
    """The emulator on a loopback port, served from its own thread and event loop."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: ApiEmulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)

    def start(self) -> EmulatedApiServer:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the emulated API server did not start")
        if self._error is not None:
            raise RuntimeError("the emulated API server failed") from self._error
        return self

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with ApiEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            assert server.host in ("127.0.0.1", "localhost"), server.host  # loopback only
            self._ready.set()
            await self._stopping.wait()
            emulator.release_watches()
            emulator.drop_watches()  # streaming handlers end now, so the server can shut down

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10) -> Any:
        """Run `fn(*args)` (a function or coroutine function) in the server's loop and return its result."""
        assert self._loop is not None

        async def run() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
