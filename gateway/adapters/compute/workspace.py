"""A task's host-side workspace: container paths mirrored under one directory, staged in and out.

Used by backends whose containers mount host directories (podman). Every path the task controls
is resolved inside the workspace root before the gateway touches it, and symlinks are never
followed out: a task cannot make the gateway read or publish files that are not its own.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gateway.domain.errors import BackendError, NotFound
from gateway.domain.task import FileType, Output
from gateway.services.ports import Area, CollectedOutput, Job, ObjectStore

TAIL_BYTES = 10 * 1024


@dataclass(frozen=True)
class Mount:
    container_path: str
    read_only: bool


def _parent(path: str) -> str:
    return os.path.dirname(path.rstrip("/")) or "/"


def plan_mounts(job: Job) -> list[Mount]:
    """The directories to bind-mount: parents of files, directories themselves; nested ones folded."""
    writable: set[str] = set(job.volumes)
    readable: set[str] = set()
    for inp in job.inputs:
        readable.add(inp.path if inp.type is FileType.DIRECTORY else _parent(inp.path))
    for out in job.outputs:
        if out.is_wildcard and out.path_prefix:
            writable.add(out.path_prefix)
        else:
            writable.add(out.path if out.type is FileType.DIRECTORY else _parent(out.path))
    for ex in job.executors:
        for target in (ex.stdout, ex.stderr):
            if target:
                writable.add(_parent(target))
        if ex.stdin:
            readable.add(_parent(ex.stdin))
    every = sorted(writable | readable, key=lambda p: (p.count("/"), p))
    kept: list[str] = []
    for path in every:
        if path == "/":
            continue
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    mounts = []
    for path in kept:
        inner_writable = any(w == path or w.startswith(path + "/") or path.startswith(w + "/") for w in writable)
        mounts.append(Mount(path, read_only=not inner_writable))
    return mounts


class Workspace:
    def __init__(self, base: Path, uid: int, gid: int) -> None:
        self.base = base
        self.root = base / "root"
        self.uid = uid
        self.gid = gid

    def host_path(self, container_path: str) -> Path:
        """Where `container_path` lives on the host; refuses anything resolving outside the workspace."""
        candidate = self.root / container_path.lstrip("/")
        real = Path(os.path.realpath(candidate))
        if not real.is_relative_to(self.root.resolve()):
            raise NotFound(f"{container_path} leaves the task workspace")
        return candidate

    def prepare(self, job: Job, store: ObjectStore) -> list[Mount]:
        """Create the mount directories and stage inputs; idempotent through a marker file."""
        mounts = plan_mounts(job)
        marker = self.base / ".staged"
        if marker.exists():
            return mounts
        if self.base.exists():
            shutil.rmtree(self.base)  # a half-staged workspace from a crash: start over
        self.root.mkdir(parents=True)
        (self.base / "logs").mkdir()
        for m in mounts:
            self.host_path(m.container_path).mkdir(parents=True, exist_ok=True)
        try:
            for inp in job.inputs:
                dest = self.host_path(inp.path)
                if inp.content is not None:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_text(inp.content)
                elif inp.source is not None and inp.type is FileType.DIRECTORY:
                    prefix = inp.source.key.rstrip("/") + "/"
                    for obj in store.list(inp.source.area, prefix):
                        target = dest / obj.key[len(prefix):]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        store.fetch_to(inp.source.area, obj.key, target)
                elif inp.source is not None:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    store.fetch_to(inp.source.area, inp.source.key, dest)
        except NotFound as exc:
            raise BackendError(f"input could not be staged: {exc.msg}") from exc
        for dirpath, dirs, files in os.walk(self.root):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)
        os.chown(self.root, self.uid, self.gid)
        marker.touch()
        return mounts

    def tail(self, container_path: str) -> str:
        """The last bytes of a file the executor wrote (never following a symlink)."""
        try:
            path = self.host_path(container_path)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (NotFound, OSError):
            return ""
        with os.fdopen(fd, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            stream.seek(max(0, size - TAIL_BYTES))
            return stream.read().decode("utf-8", "replace")

    def _regular_files(self, directory: Path) -> list[Path]:
        found = []
        for dirpath, dirs, files in os.walk(directory, followlinks=False):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(dirpath, d))]
            for name in files:
                full = Path(dirpath) / name
                if full.is_symlink() or not full.is_file():
                    continue
                found.append(full)
        return sorted(found)

    def collect(self, task_id: str, outputs: tuple[Output, ...], store: ObjectStore) -> tuple[CollectedOutput, ...]:
        """Copy every output into quarantine under `task_id/`. Missing files raise BackendError."""
        found: list[tuple[str, str, Path]] = []
        try:
            for index, out in enumerate(outputs):
                for container_path, relative, destination in self._expand(out):
                    host = self.host_path(container_path)
                    if host.is_symlink() or not host.is_file():
                        raise BackendError(f"output {container_path} is missing or not a regular file")
                    found.append((f"{task_id}/{index}/{relative}", destination, host))
        except NotFound as exc:
            raise BackendError(f"output refused: {exc.msg}") from exc
        # Nothing reaches quarantine unless every output is acceptable.
        collected = []
        for key, destination, host in found:
            stored = store.put_file(Area.QUARANTINE, key, host)
            cpath = "/" + host.relative_to(self.root).as_posix()
            collected.append(CollectedOutput(destination, cpath, stored))
        return tuple(collected)

    def _expand(self, out: Output) -> list[tuple[str, str, str]]:
        """(container path, key suffix, destination url) for each file an output names."""
        if out.is_wildcard and out.path_prefix:
            prefix = out.path_prefix.rstrip("/")
            pattern = str(self.root) + out.path
            matches = []
            for host in sorted(glob.glob(pattern)):
                cpath = "/" + os.path.relpath(host, self.root)
                if os.path.islink(host) or not os.path.isfile(host):
                    continue
                rel = cpath[len(prefix) + 1:]
                matches.append((cpath, rel, out.url.rstrip("/") + "/" + rel))
            return matches
        if out.type is FileType.DIRECTORY:
            directory = self.host_path(out.path)
            if not directory.is_dir() or directory.is_symlink():
                raise BackendError(f"output directory {out.path} is missing")
            result = []
            for host in self._regular_files(directory):
                rel = host.relative_to(directory).as_posix()
                result.append((out.path.rstrip("/") + "/" + rel, rel, out.url.rstrip("/") + "/" + rel))
            return result
        return [(out.path, os.path.basename(out.path), out.url)]

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
