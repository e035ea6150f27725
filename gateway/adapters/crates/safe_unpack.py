"""Copying an untrusted zip archive or directory into a fresh target directory, and nothing else.

Every entry is checked before anything is written: relative POSIX paths only (no absolute paths, drive
letters, backslashes, `.` or `..` parts), no duplicates, no symlinks or device files, no encrypted zip
members, and the limits on archive size, unpacked size, file count and compression ratio. Contents are
streamed in chunks and counted as they are written, so a member whose header lies about its size is
cut off at the limit. On any rejection the target is emptied again: a refused crate leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gateway.domain.errors import InvalidRequest

MiB = 1024 * 1024
_CHUNK = MiB


@dataclass(frozen=True)
class IntakeLimits:
    """Bounds on what a client may send. The defaults suit request crates (metadata plus small inputs)."""

    max_archive_bytes: int = 256 * MiB
    max_unpacked_bytes: int = 1024 * MiB
    max_files: int = 5_000
    # Uncompressed/compressed size of a zip member (and of the whole archive). Text compresses about
    # 10:1; a bomb made of zeros reaches 1000:1. Members below `ratio_floor_bytes` are exempt: a few
    # kilobytes of repetitive text can reach a high ratio without being able to hurt.
    max_compression_ratio: float = 100.0
    ratio_floor_bytes: int = 1 * MiB
    max_path_length: int = 1024
    max_metadata_bytes: int = 16 * MiB


@dataclass(frozen=True)
class UnpackSummary:
    files: int
    bytes: int


class UnsafeArchive(InvalidRequest):
    """The archive or directory was refused before or while it was copied; `msg` says why."""


def unpack(source: Path, target: Path, limits: IntakeLimits) -> UnpackSummary:
    """Copy a zip file or a directory `source` into `target`, which must be absent or empty.

    Raises UnsafeArchive (an InvalidRequest) with a message for the client, after removing anything
    already written; the target directory itself is removed again when this call created it.
    """
    created = _prepare_target(target)
    try:
        if source.is_symlink():
            raise UnsafeArchive("the crate source is a symbolic link")
        if source.is_dir():
            return _copy_directory(source, target, limits)
        if source.is_file():
            return _extract_zip(source, target, limits)
        raise UnsafeArchive("the crate must be a zip archive or a directory")
    except BaseException:
        clear(target, remove_dir=created)
        raise


def clear(target: Path, *, remove_dir: bool) -> None:
    """Delete everything inside `target` (and `target` itself when `remove_dir`)."""
    if remove_dir:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def safe_parts(name: str, limits: IntakeLimits) -> tuple[str, ...]:
    """The path components of an archive entry name, or UnsafeArchive if the name could escape or mislead."""
    shown = name[:200]
    if len(name) > limits.max_path_length:
        raise UnsafeArchive(f"entry name {shown!r}... is longer than {limits.max_path_length} characters")
    if "\x00" in name or "\\" in name:
        raise UnsafeArchive(f"entry {shown!r} contains a backslash or NUL; only POSIX paths are accepted")
    if name.startswith("/"):
        raise UnsafeArchive(f"entry {shown!r} is an absolute path")
    parts = name.rstrip("/").split("/")
    if parts and len(parts[0]) >= 2 and parts[0][1] == ":":
        raise UnsafeArchive(f"entry {shown!r} starts with a drive letter")
    if any(p == ".." for p in parts):
        raise UnsafeArchive(f"entry {shown!r} contains '..'")
    if any(p in ("", ".") for p in parts):
        raise UnsafeArchive(f"entry {shown!r} contains an empty or '.' path component")
    return tuple(parts)


def _prepare_target(target: Path) -> bool:
    if target.is_symlink():
        raise UnsafeArchive("the target directory is a symbolic link")
    if target.exists():
        if not target.is_dir() or any(target.iterdir()):
            raise ValueError(f"intake target {target} must be an empty directory")
        return False
    target.mkdir(parents=True)
    return True


# -- zip -----------------------------------------------------------------------------------------------


def _extract_zip(source: Path, target: Path, limits: IntakeLimits) -> UnpackSummary:
    archive_bytes = source.stat().st_size
    if archive_bytes > limits.max_archive_bytes:
        raise UnsafeArchive(f"the archive is {archive_bytes} bytes; the limit is {limits.max_archive_bytes}")
    try:
        with zipfile.ZipFile(source) as archive:
            files = _checked_members(archive.infolist(), limits)
            written = 0
            for info, parts in files:
                with archive.open(info) as stream:
                    written += _write_stream(stream, target, parts, info.file_size, limits.max_unpacked_bytes - written)
            return UnpackSummary(len(files), written)
    except zipfile.BadZipFile as e:
        raise UnsafeArchive(f"the archive is not a readable zip file: {e}") from e
    except (zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
        raise UnsafeArchive(f"the archive cannot be read safely: {e}") from e


def _checked_members(
    infos: list[zipfile.ZipInfo], limits: IntakeLimits
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    # Directory entries count too: a million empty directories is also an attack.
    if len(infos) > 2 * limits.max_files:
        raise UnsafeArchive(f"the archive has {len(infos)} entries; at most {limits.max_files} files are allowed")
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    file_paths: set[tuple[str, ...]] = set()
    dir_paths: set[tuple[str, ...]] = set()
    declared = compressed = 0
    for info in infos:
        parts = safe_parts(info.filename, limits)
        _check_member_type(info)
        if info.flag_bits & 0x1:
            raise UnsafeArchive(f"entry {info.filename!r} is encrypted")
        if info.is_dir():
            dir_paths.add(parts)
            continue
        if parts in file_paths:
            raise UnsafeArchive(f"entry {info.filename!r} appears more than once")
        file_paths.add(parts)
        dir_paths.update(parts[:i] for i in range(1, len(parts)))
        _check_ratio(f"entry {info.filename!r}", info.file_size, info.compress_size, limits)
        declared += info.file_size
        compressed += info.compress_size
        files.append((info, parts))
    clash = file_paths & dir_paths
    if clash:
        raise UnsafeArchive(f"entry {'/'.join(sorted(clash)[0])!r} is both a file and a directory")
    if len(files) > limits.max_files:
        raise UnsafeArchive(f"the archive has {len(files)} files; the limit is {limits.max_files}")
    if declared > limits.max_unpacked_bytes:
        raise UnsafeArchive(f"the archive unpacks to {declared} bytes; the limit is {limits.max_unpacked_bytes}")
    _check_ratio("the archive", declared, compressed, limits)
    return files


def _check_member_type(info: zipfile.ZipInfo) -> None:
    # Unix tools store the file mode in the high 16 bits; zero means "no mode recorded" (a plain file).
    mode = info.external_attr >> 16
    if mode == 0:
        return
    if stat.S_ISLNK(mode):
        raise UnsafeArchive(f"entry {info.filename!r} is a symbolic link; links are not accepted")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode) != 0:
        raise UnsafeArchive(f"entry {info.filename!r} is not a regular file or directory")


def _check_ratio(what: str, size: int, compressed: int, limits: IntakeLimits) -> None:
    if size < limits.ratio_floor_bytes:
        return
    ratio = size / max(compressed, 1)
    if ratio > limits.max_compression_ratio:
        raise UnsafeArchive(
            f"{what} expands {ratio:.0f} times ({compressed} to {size} bytes); "
            f"the limit is {limits.max_compression_ratio:.0f} (a zip bomb?)"
        )


# -- directory -------------------------------------------------------------------------------------------


def _copy_directory(source: Path, target: Path, limits: IntakeLimits) -> UnpackSummary:
    files = list(_directory_files(source, (), limits))
    if len(files) > limits.max_files:
        raise UnsafeArchive(f"the crate has more than {limits.max_files} files")
    written = 0
    for parts, size in files:
        with open(source.joinpath(*parts), "rb") as stream:
            written += _write_stream(stream, target, parts, size, limits.max_unpacked_bytes - written)
    return UnpackSummary(len(files), written)


def _directory_files(
    folder: Path, prefix: tuple[str, ...], limits: IntakeLimits, seen: list[int] | None = None
) -> Iterator[tuple[tuple[str, ...], int]]:
    seen = seen if seen is not None else [0, 0]  # [files, bytes] so far, shared by the recursion
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            parts = (*prefix, entry.name)
            name = "/".join(parts)
            safe_parts(name, limits)
            if entry.is_symlink():
                raise UnsafeArchive(f"{name!r} is a symbolic link; links are not accepted")
            if entry.is_dir(follow_symlinks=False):
                yield from _directory_files(Path(entry.path), parts, limits, seen)
            elif entry.is_file(follow_symlinks=False):
                size = entry.stat(follow_symlinks=False).st_size
                seen[0] += 1
                seen[1] += size
                if seen[0] > limits.max_files:
                    raise UnsafeArchive(f"the crate has more than {limits.max_files} files")
                if seen[1] > limits.max_unpacked_bytes:
                    raise UnsafeArchive(f"the crate is larger than {limits.max_unpacked_bytes} bytes")
                yield parts, size
            else:
                raise UnsafeArchive(f"{name!r} is not a regular file or directory")


# -- writing -----------------------------------------------------------------------------------------------


def _write_stream(stream: IO[bytes], target: Path, parts: tuple[str, ...], expected: int, budget: int) -> int:
    """Copy `stream` to target/parts, refusing more than `expected` bytes or the remaining `budget`."""
    destination = target.joinpath(*parts)
    # The names were checked already; this guards against a mistake in those checks.
    if not destination.resolve().is_relative_to(target.resolve()):
        raise UnsafeArchive(f"entry {'/'.join(parts)!r} would be written outside the crate directory")
    destination.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    with os.fdopen(os.open(destination, flags, 0o600), "wb") as out:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > expected:
                raise UnsafeArchive(f"entry {'/'.join(parts)!r} is larger than its header says")
            if written > budget:
                raise UnsafeArchive("the crate unpacks to more than the size limit")
            out.write(chunk)
    return written
