"""A fake kubelet: watches pods through the API like a node agent and reports their status back.

Pods never run in the emulated API server. This thread plays the node: for every new pod it pulls images
(from a set of "local" images), runs the init containers in order and then the containers, and patches the
pod's status through the official client exactly as a kubelet would (phase, container states, exit codes,
termination messages, reasons such as ErrImagePull, OOMKilled, Evicted, DeadlineExceeded). What a container
*does* is emulated on a host directory per volume, honouring the pod's volumeMounts (subPath, readOnly):

- `setup` (the helper init container): installs the helper and creates the mount directories it is given;
- `exec-N` executors through the helper: the helper's argument protocol (stdin, stdout, stderr, ignore_error)
  is honoured, and the program itself must be the fake program `tre-fake` (see KubeletCommands);
- stager containers run the real stager code (gateway.adapters.compute.k8s.stager) in-process against the
  pod's volume directory and the test's object store;
- `done` exits 0.

Container logs (stdout then stderr) are handed to the emulator, which serves them on pods/log.
The real behaviour of the helper scripts is proven separately by running the pod manifests under podman.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gateway.adapters.compute.k8s import stager
from gateway.adapters.compute.k8s.manifests import HELPER, TREE_SUBDIR, VOLUME_DIR
from gateway.services.ports import ObjectStore
from tests.contracts.compute_backend import Commands
from tests.integration.adapters.compute.k8s_support.emulator import EmulatedApiServer

log = logging.getLogger(__name__)

FAKE = "tre-fake"
OOM = -137


class KubeletCommands(Commands):
    """Executor commands for the fake node: the program `tre-fake` with an operation."""

    def write(self, path: str, text: str) -> tuple[str, ...]:
        return (FAKE, "write", path, text)

    def copy(self, source: str, target: str) -> tuple[str, ...]:
        return (FAKE, "copy", source, target)

    def exit(self, code: int) -> tuple[str, ...]:
        return (FAKE, "exit", str(code))

    def sleep(self, seconds: float) -> tuple[str, ...]:
        return (FAKE, "sleep", str(seconds))

    # beyond the contract
    def echo(self, text: str, stream: str = "stdout") -> tuple[str, ...]:
        return (FAKE, "echo" if stream == "stdout" else "echo-err", text)

    def cat(self) -> tuple[str, ...]:
        return (FAKE, "cat")

    def wait(self, gate: str) -> tuple[str, ...]:
        return (FAKE, "wait", gate)

    def oom(self) -> tuple[str, ...]:
        return (FAKE, "oom")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Stop(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class _PodRun:
    name: str
    namespace: str
    uid: str
    deleted: threading.Event = field(default_factory=threading.Event)
    evicted: str | None = None
    deadline: float | None = None
    thread: threading.Thread | None = None

    def check(self) -> None:
        if self.deleted.is_set():
            raise _Stop("deleted")
        if self.evicted is not None:
            raise _Stop("evicted")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Stop("deadline")

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            self.deleted.wait(min(left, 0.02))


class _ContainerFS:
    """A container's view of its volumes: path -> host path through the longest matching mount."""

    def __init__(self, mounts: list[tuple[str, Path, bool]]) -> None:
        self.mounts = sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    def host(self, path: str, *, write: bool = False) -> Path:
        for mount_path, host, read_only in self.mounts:
            if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
                if write and read_only:
                    raise OSError(errno.EROFS, "Read-only file system", path)
                return host / path[len(mount_path):].lstrip("/")
        raise OSError(errno.EROFS if write else errno.ENOENT,
                      "Read-only file system" if write else "No such file or directory", path)

    def read(self, path: str) -> bytes:
        return self.host(path).read_bytes()

    def write(self, path: str, data: bytes) -> None:
        target = self.host(path, write=True)
        if not target.parent.is_dir():
            raise OSError(errno.ENOENT, "No such file or directory", path)
        target.write_bytes(data)

    def mkdirs(self, path: str) -> None:
        self.host(path, write=True).mkdir(parents=True, exist_ok=True)

    def exists(self, path: str) -> bool:
        try:
            return self.host(path).exists()
        except OSError:
            return False


class FakeKubelet:
    def __init__(self, server: EmulatedApiServer, store: ObjectStore, root: Path,
                 images: frozenset[str] = frozenset(), namespace_prefix: str = "") -> None:
        self.server = server
        self.namespace_prefix = namespace_prefix
        self.store = store
        self.root = root
        self.images = set(images)
        self.core = client.CoreV1Api(client.ApiClient(client.Configuration(host=server.url)))
        self.runs: dict[str, _PodRun] = {}
        self.gates: dict[str, threading.Event] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="fake-kubelet", daemon=True)

    # ------------------------------------------------------------ control

    def start(self) -> FakeKubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for run in list(self.runs.values()):
            run.deleted.set()
        self._thread.join(5)

    def gate(self, name: str) -> threading.Event:
        with self._lock:
            return self.gates.setdefault(name, threading.Event())

    def open_gate(self, name: str) -> None:
        self.gate(name).set()

    def run_of(self, pod_name: str) -> _PodRun | None:
        with self._lock:
            for run in self.runs.values():
                if run.name == pod_name:
                    return run
        return None

    def evict(self, pod_name: str, message: str = "The node was low on resource: memory.") -> None:
        """Node-pressure eviction: the kubelet kills the pod and marks it Failed/Evicted."""
        run = self.run_of(pod_name)
        assert run is not None, pod_name
        run.evicted = message

    def volume_dir(self, claim: str) -> Path:
        return self.root / "claims" / claim

    # ------------------------------------------------------------ watching pods

    def _watch(self) -> None:
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    listed = json.loads(self.core.list_pod_for_all_namespaces(_preload_content=False).data)
                    for pod in listed.get("items") or []:
                        self._seen("ADDED", pod)
                    rv = listed["metadata"]["resourceVersion"]
                response = self.core.list_pod_for_all_namespaces(
                    watch=True, resource_version=rv, timeout_seconds=1, _preload_content=False,
                    _request_timeout=(5, 10))
                buffer = b""
                for chunk in response.stream(amt=None, decode_content=False):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            rv = ""
                            break
                        self._seen(event["type"], event["object"])
                        rv = event["object"]["metadata"].get("resourceVersion") or rv
            except Exception as exc:  # noqa: BLE001 - keep the node alive
                if not self._stop.is_set():
                    log.warning("fake kubelet watch: %r", exc)
                    time.sleep(0.1)

    def _seen(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        if not str(meta.get("namespace", "")).startswith(self.namespace_prefix):
            return  # pods of other namespaces are not scheduled on this node
        with self._lock:
            run = self.runs.get(uid)
            if kind == "DELETED" or meta.get("deletionTimestamp"):
                if run is not None:
                    run.deleted.set()
                return
            if run is not None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            run = _PodRun(meta["name"], meta["namespace"], uid)
            deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
            if deadline:
                run.deadline = time.monotonic() + float(deadline)
            self.runs[uid] = run
        run.thread = threading.Thread(target=self._run_pod, args=(run, pod), name=f"pod-{run.name}", daemon=True)
        run.thread.start()

    # ------------------------------------------------------------ running one pod

    def _patch(self, run: _PodRun, status: dict[str, Any]) -> None:
        if run.deleted.is_set():
            raise _Stop("deleted")
        try:
            self.core.patch_namespaced_pod_status(run.name, run.namespace, {"status": status},
                                                  _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                raise _Stop("deleted") from None
            raise

    def _volumes(self, run: _PodRun, pod: dict[str, Any]) -> dict[str, Path]:
        found = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if "persistentVolumeClaim" in volume:
                path = self.volume_dir(volume["persistentVolumeClaim"]["claimName"])
            else:
                path = self.root / "pods" / run.uid / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            found[volume["name"]] = path
        return found

    def _run_pod(self, run: _PodRun, pod: dict[str, Any]) -> None:
        spec = pod["spec"]
        inits = spec.get("initContainers") or []
        mains = spec.get("containers") or []
        status: dict[str, Any] = {
            "phase": "Pending",
            "startTime": _now(),
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()}],
            "initContainerStatuses": [self._waiting(c, "PodInitializing") for c in inits],
            "containerStatuses": [self._waiting(c, "PodInitializing") for c in mains],
        }
        try:
            volumes = self._volumes(run, pod)
            self._patch(run, status)
            for index, container in enumerate(inits):
                if not self._run_container(run, pod, status, "initContainerStatuses", index, container, volumes):
                    return
            status["phase"] = "Running"
            codes = []
            for index, container in enumerate(mains):
                if not self._run_container(run, pod, status, "containerStatuses", index, container, volumes,
                                           init=False):
                    return
                codes.append(status["containerStatuses"][index]["state"]["terminated"]["exitCode"])
            status["phase"] = "Succeeded" if not any(codes) else "Failed"
            self._patch(run, status)
        except _Stop as stop:
            self._stopped(run, status, stop.why)
        except Exception:  # noqa: BLE001
            log.exception("fake kubelet failed on %s", run.name)

    def _stopped(self, run: _PodRun, status: dict[str, Any], why: str) -> None:
        if why == "deleted":
            return
        for key in ("initContainerStatuses", "containerStatuses"):
            for entry in status[key]:
                if "running" in entry["state"]:
                    entry["state"] = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": _now(),
                                                     "startedAt": entry["state"]["running"]["startedAt"]}}
        status["phase"] = "Failed"
        if why == "evicted":
            status["reason"] = "Evicted"
            status["message"] = run.evicted
            status["conditions"] = [*status["conditions"], {
                "type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                "message": run.evicted, "lastTransitionTime": _now()}]
        else:
            status["reason"] = "DeadlineExceeded"
            status["message"] = "Pod was active on the node longer than the specified deadline"
        try:
            self._patch(run, status)
        except _Stop:
            pass

    @staticmethod
    def _waiting(container: dict[str, Any], reason: str) -> dict[str, Any]:
        return {"name": container["name"], "image": container["image"], "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": reason}}}

    def _run_container(self, run: _PodRun, pod: dict[str, Any], status: dict[str, Any], key: str, index: int,
                       container: dict[str, Any], volumes: dict[str, Path], *, init: bool = True) -> bool:
        entry = status[key][index]
        if container["image"] not in self.images:
            entry["state"] = {"waiting": {"reason": "ErrImagePull",
                                          "message": f'pull access denied for {container["image"]}'}}
            self._patch(run, status)
            run.sleep(0.05)
            entry["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                          "message": f'Back-off pulling image "{container["image"]}"'}}
            self._patch(run, status)
            return False  # stays Pending, as a real node would, until the pod is deleted
        started = _now()
        entry["state"] = {"running": {"startedAt": started}}
        self._patch(run, status)
        code, reason, message, output = self._execute(run, container, volumes)
        run.check()
        self.server.emulator.logs[(run.namespace, run.name, container["name"])] = output  # type: ignore[union-attr]
        entry["state"] = {"terminated": {"exitCode": code, "reason": reason, "message": message,
                                         "startedAt": started, "finishedAt": _now()}}
        if code != 0 and init:
            status["phase"] = "Failed"
            self._patch(run, status)
            return False
        self._patch(run, status)
        return True

    # ------------------------------------------------------------ what containers do

    def _execute(self, run: _PodRun, container: dict[str, Any], volumes: dict[str, Path]) -> tuple[int, str, str, str]:
        mounts = []
        for mount in container.get("volumeMounts") or []:
            host = volumes[mount["name"]]
            if mount.get("subPath"):
                host = host / mount["subPath"]
                host.mkdir(parents=True, exist_ok=True)  # the kubelet creates a missing subPath
            mounts.append((mount["mountPath"], host, bool(mount.get("readOnly"))))
        fs = _ContainerFS(mounts)
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        name = container["name"]
        if name == "setup":
            # [busybox, sh, -c, SETUP, busybox, DIR...]: install the helper, create the directories.
            fs.write(HELPER, b"static busybox")
            for directory in argv[5:]:
                fs.mkdirs(f"{VOLUME_DIR}/{TREE_SUBDIR}{directory}")
            return 0, "Completed", "", ""
        if name in ("stage-in", "stage-out"):
            args = stager.build_parser().parse_args(argv[3:])  # after `python -m module`
            result = stager.run_stage(args.stage, self.store, args.task, fs.host(str(args.volume)))
            return result.exit_code, "Completed" if result.exit_code == 0 else "Error", result.message, \
                result.message + "\n"
        if argv[:1] == [HELPER] and not fs.exists(HELPER):
            return 127, "ContainerCannotRun", "", f"exec: {HELPER}: no such file or directory\n"
        if argv == [HELPER, "true"]:
            return 0, "Completed", "", ""
        if argv[:3] == [HELPER, "sh", "-c"] and len(argv) >= 9:
            return self._helper(run, fs, argv[5], argv[6], argv[7], argv[8] == "1", argv[9:])
        return 127, "Error", "", f"unknown container command {argv!r}\n"

    def _helper(self, run: _PodRun, fs: _ContainerFS, stdin: str, stdout: str, stderr: str, ignore: bool,
                command: list[str]) -> tuple[int, str, str, str]:
        """The helper's protocol: redirect, run, record the exit code, exit 0 when ignore_error."""
        out, err = io.StringIO(), io.StringIO()
        code = 0
        data = b""
        if stdin:
            try:
                data = fs.read(stdin)
            except OSError as exc:
                err.write(f"sh: can't open '{stdin}': {exc.strerror}\n")
                code = 1
        if code == 0:
            code = self._program(run, fs, command, data, out, err)
        if code == OOM:
            return 137, "OOMKilled", "", out.getvalue() + err.getvalue()
        logged = ""
        for path, text in ((stdout, out.getvalue()), (stderr, err.getvalue())):
            if path:
                try:
                    fs.write(path, text.encode())
                except OSError as exc:
                    logged += f"sh: can't create {path}: {exc.strerror}\n"
                    code = code or 1
            else:
                logged += text
        message = json.dumps({"exit_code": code})
        return (0 if ignore else code), ("Completed" if code == 0 or ignore else "Error"), message, logged

    def _program(self, run: _PodRun, fs: _ContainerFS, command: list[str], stdin: bytes, out: io.StringIO,
                 err: io.StringIO) -> int:
        if not command or command[0] != FAKE:
            err.write(f"sh: {command[0] if command else ''}: not found\n")
            return 127
        op, args = command[1], command[2:]
        operations: dict[str, Callable[[], int]] = {
            "write": lambda: self._write(fs, args[0], args[1].encode(), err),
            "copy": lambda: self._copy(fs, args[0], args[1], err),
            "exit": lambda: int(args[0]),
            "sleep": lambda: (run.sleep(float(args[0])), 0)[1],
            "wait": lambda: self._wait(run, args[0]),
            "echo": lambda: (out.write(args[0] + "\n"), 0)[1],
            "echo-err": lambda: (err.write(args[0] + "\n"), 0)[1],
            "cat": lambda: (out.write(stdin.decode()), 0)[1],
            "oom": lambda: OOM,
        }
        return operations[op]()

    @staticmethod
    def _write(fs: _ContainerFS, path: str, data: bytes, err: io.StringIO) -> int:
        try:
            fs.write(path, data)
            return 0
        except OSError as exc:
            err.write(f"{FAKE}: {path}: {exc.strerror}\n")
            return 1

    def _copy(self, fs: _ContainerFS, source: str, target: str, err: io.StringIO) -> int:
        try:
            data = fs.read(source)
        except OSError as exc:
            err.write(f"{FAKE}: {source}: {exc.strerror}\n")
            return 1
        return self._write(fs, target, data, err)

    def _wait(self, run: _PodRun, gate: str) -> int:
        event = self.gate(gate)
        while not event.wait(0.02):
            run.check()
        return 0
