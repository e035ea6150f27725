"""Object store on a local directory: one sub-directory per area, keys as relative paths.

URLs are `file://` URLs of the real files, so clients can name inputs and outputs the way TES
examples do. Writes go to a temporary file first and are renamed into place, so a reader never sees
a half-written object.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote, urlparse

from gateway.domain.errors import NotFound
from gateway.services.ports import Area, Location, StoredObject, check_key

CHUNK = 1 << 20


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        for area in Area:
            (self.root / area.value).mkdir(parents=True, exist_ok=True)

    def _path(self, area: Area, key: str) -> Path:
        path = self.root / area.value / check_key(key)
        # A symlink planted inside an area must not lead out of it.
        if not path.resolve().is_relative_to(self.root / area.value):
            raise NotFound(f"object {key!r} not found")
        return path

    def _write(self, area: Area, key: str, source: BinaryIO) -> StoredObject:
        path = self._path(area, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size_bytes=size, sha256=digest.hexdigest())

    def put_file(self, area: Area, key: str, source: Path) -> StoredObject:
        with open(source, "rb") as stream:
            return self._write(area, key, stream)

    def put_bytes(self, area: Area, key: str, data: bytes) -> StoredObject:
        return self._write(area, key, io.BytesIO(data))

    def open(self, area: Area, key: str) -> BinaryIO:
        path = self._path(area, key)
        if not path.is_file():
            raise NotFound(f"object {key!r} not found in {area.value}")
        return open(path, "rb")

    def fetch_to(self, area: Area, key: str, destination: Path) -> None:
        with self.open(area, key) as stream, open(destination, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)

    def copy(self, source: Location, destination: Location) -> StoredObject:
        with self.open(source.area, source.key) as stream:
            return self._write(destination.area, destination.key, stream)

    def list(self, area: Area, prefix: str = "") -> Iterator[StoredObject]:
        base = self.root / area.value
        found = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".part-"):
                    continue
                full = Path(dirpath) / name
                if full.is_symlink():
                    continue
                key = full.relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append((key, full))
        for key, full in sorted(found):
            yield StoredObject(key=key, size_bytes=full.stat().st_size, sha256=_sha256(full))

    def exists(self, area: Area, key: str) -> bool:
        try:
            return self._path(area, key).is_file()
        except NotFound:
            return False

    def delete_prefix(self, area: Area, prefix: str) -> int:
        keys = [o.key for o in self.list(area, prefix)]
        for key in keys:
            self._path(area, key).unlink(missing_ok=True)
        return len(keys)

    def url_for(self, area: Area, key: str = "") -> str:
        path = (self.root / area.value).as_posix() + "/" + key
        return "file://" + quote(path)

    def locate(self, url: str) -> Location | None:
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            return None
        raw = unquote(parsed.path)
        # Judge the literal path: '..' segments are refused by check_key, never normalised away.
        for area in Area:
            base = (self.root / area.value).as_posix() + "/"
            if raw.startswith(base) and len(raw) > len(base):
                return Location(area, raw[len(base):])
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
