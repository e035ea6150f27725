"""Streaming file digests, for BagIt manifests and for describing released outputs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1024 * 1024
SUPPORTED = ("sha256", "sha512")


@dataclass(frozen=True)
class FileDigests:
    size: int
    sha256: str
    sha512: str


def digests(path: Path, algorithms: Iterable[str] = SUPPORTED) -> tuple[int, dict[str, str]]:
    """Size and hex digests of the file at `path`, read once in chunks."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    return size, {name: h.hexdigest() for name, h in hashers.items()}


def file_digests(path: Path) -> FileDigests:
    """Size, SHA-256 and SHA-512 of a file: what a released output's File entity records."""
    size, hexes = digests(path)
    return FileDigests(size, hexes["sha256"], hexes["sha512"])
