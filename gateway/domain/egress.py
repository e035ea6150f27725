"""Safe outputs: what a task produced, the automated checks on it, and the release decision.

Outputs are first copied to quarantine. Each file is checked here (pure functions over its
metadata and first bytes); tabular content checks live in `disclosure`, human review in `airlock`.
"""

from __future__ import annotations

import codecs
import posixpath
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class QuarantinedFile:
    """One output file held in quarantine, waiting for release to `destination`."""

    destination: str  # the URL the task asked for
    container_path: str
    quarantine_key: str
    size_bytes: int
    sha256: str
    media_type: str


@dataclass(frozen=True)
class CheckResult:
    rule_id: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class EgressPolicy:
    max_file_bytes: int = 1 << 30
    max_total_bytes: int = 4 << 30
    # Extensions (lower case, with dot) that may leave; "" admits files without an extension.
    allowed_extensions: frozenset[str] = frozenset(
        {".txt", ".csv", ".tsv", ".json", ".md", ".log", ".png", ".pdf", ".html", ""}
    )


# Magic numbers of formats that must never pass as text, whatever their name says.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x7fELF", "application/x-executable"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
)

_EXTENSION_TYPES = {
    ".txt": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".png": "image/png",
}


def sniff_media_type(head: bytes) -> str:
    """Media type from content: a known binary signature, else text if it decodes as UTF-8 without NULs."""
    for magic, media in _BINARY_SIGNATURES:
        if head.startswith(magic):
            return media
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        # A multi-byte character cut at the end of the sample is still text: the incremental decoder
        # buffers an incomplete trailing sequence instead of failing, but rejects every invalid byte.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def extension_of(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[1].lower()


def _type_matches_extension(ext: str, sniffed: str) -> bool:
    expected = _EXTENSION_TYPES.get(ext, "text/plain")
    if sniffed == "text/plain":
        return expected.startswith("text/") or expected == "application/json"
    return sniffed == expected


def check_files(files: list[QuarantinedFile], policy: EgressPolicy) -> dict[str, list[CheckResult]]:
    """Automated disclosure checks per quarantine key. Rule ids are stable and documented."""
    results: dict[str, list[CheckResult]] = {}
    total = sum(f.size_bytes for f in files)
    for f in files:
        # The name the file leaves under is what the policy governs, not its name inside the container.
        ext = extension_of(urlsplit(f.destination).path or f.container_path)
        checks = [
            CheckResult(
                "size.file_cap",
                f.size_bytes <= policy.max_file_bytes,
                f"{f.size_bytes} bytes (cap {policy.max_file_bytes})",
            ),
            CheckResult(
                "size.total_cap",
                total <= policy.max_total_bytes,
                f"{total} bytes in all outputs (cap {policy.max_total_bytes})",
            ),
            CheckResult(
                "type.extension_allowed",
                ext in policy.allowed_extensions,
                f"extension {ext or '(none)'!r}",
            ),
            CheckResult(
                "type.content_matches",
                _type_matches_extension(ext, f.media_type),
                f"content sniffed as {f.media_type}",
            ),
        ]
        results[f.quarantine_key] = checks
    return results
