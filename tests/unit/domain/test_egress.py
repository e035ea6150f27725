"""Egress checks: sniffing content, the per-file rules, and the release decision."""

from __future__ import annotations

import pytest

from gateway.domain.egress import (
    CheckResult,
    EgressPolicy,
    QuarantinedFile,
    check_files,
    extension_of,
    sniff_media_type,
)

RULES = ["size.file_cap", "size.total_cap", "type.extension_allowed", "type.content_matches"]


# ---------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    "head, media",
    [
        (b"PK\x03\x04\x14\x00rest-of-zip", "application/zip"),
        (b"\x1f\x8b\x08\x00", "application/gzip"),
        (b"\x7fELF\x02\x01\x01", "application/x-executable"),
        (b"SQLite format 3\x00\x10\x00", "application/vnd.sqlite3"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"BZh91AY&SY", "application/x-bzip2"),
        (b"\xfd7zXZ\x00\x00", "application/x-xz"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "application/x-7z-compressed"),
    ],
)
def test_binary_signatures(head: bytes, media: str) -> None:
    assert sniff_media_type(head) == media


@pytest.mark.parametrize(
    "head",
    [
        b"a,b\n1,2\n",
        b"",
        "caf\u00e9, na\u00efve, \u20ac5, \U0001f600\n".encode(),
        b'{"json": true}',
    ],
)
def test_utf8_text_is_text(head: bytes) -> None:
    assert sniff_media_type(head) == "text/plain"


@pytest.mark.parametrize("head", [b"a,b\x00c", b"\x00", "text\u0000".encode(), "x".encode("utf-16")])
def test_nul_bytes_make_it_binary(head: bytes) -> None:
    assert sniff_media_type(head) == "application/octet-stream"


def test_invalid_utf8_in_the_middle_is_binary() -> None:
    assert sniff_media_type(b"hello\xff world, this is long enough") == "application/octet-stream"
    assert sniff_media_type(b"\xc3\x28 invalid continuation byte in a longer sample") == "application/octet-stream"


@pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\U0001f600"])
def test_multibyte_character_cut_at_the_end_of_the_sample_is_still_text(char: str) -> None:
    encoded = char.encode()
    for keep in range(1, len(encoded)):
        head = b"x" * 8190 + encoded[:keep]
        assert sniff_media_type(head) == "text/plain", (char, keep)


@pytest.mark.parametrize("head", [b"abc\xff", b"\xfe\xff", b"a,b\n1,2\n\xff\xfe\xfd", b"text\xc3("])
def test_invalid_bytes_at_the_end_are_not_text(head: bytes) -> None:
    assert sniff_media_type(head) == "application/octet-stream"


@pytest.mark.parametrize(
    "path, ext",
    [("/out/a.CSV", ".csv"), ("/out/archive.tar.gz", ".gz"), ("/out/README", ""), ("/out/.hidden", ""),
     ("/out.d/file", "")],
)
def test_extension_of(path: str, ext: str) -> None:
    assert extension_of(path) == ext


# ---------------------------------------------------------------- checks


def qfile(path: str = "/out/result.csv", size: int = 10, media: str = "text/plain", key: str | None = None,
          destination: str | None = None) -> QuarantinedFile:
    name = path.rsplit("/", 1)[-1]
    return QuarantinedFile(
        destination=destination or f"mem://released/p1/{name}",
        container_path=path,
        quarantine_key=key or f"t1/0/{name}",
        size_bytes=size,
        sha256="0" * 64,
        media_type=media,
    )


def verdicts(results: dict[str, list[CheckResult]], key: str) -> dict[str, bool]:
    return {c.rule_id: c.passed for c in results[key]}


def test_a_clean_file_passes_every_rule_in_a_stable_order() -> None:
    f = qfile()
    results = check_files([f], EgressPolicy())
    assert [c.rule_id for c in results[f.quarantine_key]] == RULES
    assert all(c.passed for c in results[f.quarantine_key])


def test_file_cap_is_inclusive() -> None:
    policy = EgressPolicy(max_file_bytes=100, max_total_bytes=10_000)
    at_cap, over = qfile(size=100, key="k/a"), qfile(size=101, key="k/b")
    results = check_files([at_cap, over], policy)
    assert verdicts(results, "k/a")["size.file_cap"] is True
    assert verdicts(results, "k/b")["size.file_cap"] is False
    assert "101 bytes (cap 100)" in results["k/b"][0].detail


def test_total_cap_counts_all_files_and_fails_each_of_them() -> None:
    policy = EgressPolicy(max_file_bytes=100, max_total_bytes=150)
    a, b = qfile(size=80, key="k/a"), qfile(size=80, key="k/b")
    results = check_files([a, b], policy)
    for key in ("k/a", "k/b"):
        v = verdicts(results, key)
        assert v["size.file_cap"] is True
        assert v["size.total_cap"] is False
    assert "160 bytes in all outputs" in results["k/a"][1].detail
    assert check_files([a], policy)["k/a"][1].passed


@pytest.mark.parametrize(
    "path, allowed",
    [
        ("/out/tool.exe", False),
        ("/out/run.sh", False),
        ("/out/data.parquet", False),
        ("/out/TABLE.CSV", True),
        ("/out/notes.md", True),
        ("/out/README", True),  # "" is in the default list: files without an extension may leave
    ],
)
def test_extension_rule(path: str, allowed: bool) -> None:
    f = qfile(path=path)
    assert verdicts(check_files([f], EgressPolicy()), f.quarantine_key)["type.extension_allowed"] is allowed


def test_extension_rule_follows_the_policy() -> None:
    f = qfile(path="/out/README")
    policy = EgressPolicy(allowed_extensions=frozenset({".csv"}))
    result = check_files([f], policy)[f.quarantine_key][2]
    assert (result.rule_id, result.passed, result.detail) == ("type.extension_allowed", False, "extension '(none)'")


@pytest.mark.parametrize(
    "path, media, matches",
    [
        ("/out/table.csv", "text/plain", True),
        ("/out/data.json", "text/plain", True),
        ("/out/page.html", "text/plain", True),
        ("/out/README", "text/plain", True),
        ("/out/table.csv", "application/zip", False),   # a zip renamed to .csv
        ("/out/table.csv", "application/gzip", False),
        ("/out/table.csv", "application/octet-stream", False),
        ("/out/README", "application/x-executable", False),
        ("/out/report.pdf", "application/pdf", True),
        ("/out/report.pdf", "text/plain", False),
        ("/out/plot.png", "image/png", True),
        ("/out/plot.png", "application/pdf", False),
        ("/out/notes.txt", "application/vnd.sqlite3", False),
    ],
)
def test_content_must_match_the_extension(path: str, media: str, matches: bool) -> None:
    f = qfile(path=path, media=media)
    result = check_files([f], EgressPolicy())[f.quarantine_key][3]
    assert result.rule_id == "type.content_matches"
    assert result.passed is matches
    assert media in result.detail


def test_extension_rule_applies_to_the_name_the_file_leaves_under() -> None:
    f = qfile(path="/out/result.txt", destination="mem://released/p1/installer.exe")
    assert verdicts(check_files([f], EgressPolicy()), f.quarantine_key)["type.extension_allowed"] is False


def test_every_file_gets_its_own_results() -> None:
    a = qfile(path="/out/a.csv", key="k/a")
    b = qfile(path="/out/b.exe", key="k/b", media="application/x-executable")
    results = check_files([a, b], EgressPolicy())
    assert set(results) == {"k/a", "k/b"}
    assert all(c.passed for c in results["k/a"])
    assert [c.rule_id for c in results["k/b"] if not c.passed] == ["type.extension_allowed", "type.content_matches"]


def test_no_files_no_results() -> None:
    assert check_files([], EgressPolicy()) == {}
