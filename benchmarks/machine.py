"""A generic description of the machine a benchmark ran on (no host names, no paths)."""

from __future__ import annotations

import os
import platform
import sqlite3
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)
    return float("nan")


def os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def kernel() -> str:
    """Major.minor only: the rest of the release string names the build, not the machine's class."""
    parts = platform.release().split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else platform.release()


def describe(podman: str) -> list[tuple[str, str]]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    versions = []
    for dist in ("connexion", "flask", "uvicorn", "sqlalchemy", "httpx"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return [
        ("CPU", cpu_model()),
        ("Cores", f"{usable} usable ({os.cpu_count()} online)"),
        ("RAM", f"{memory_gib():.1f} GiB"),
        ("OS", f"{os_name()}, Linux {kernel()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
        ("Container runtime", podman),
        ("Libraries", ", ".join(versions)),
        ("Date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
