"""Five Safes crates on disk: safe intake of a BagIt zip or crate directory, and writing result bags.

Intake (`intake_crate`) copies the client's zip or directory into a fresh target with the checks of
`safe_unpack`, finds the bag (at the top, or in the single folder the profile's zips wrap it in) and
verifies it (RFC 8493): `bagit.txt`, a complete and correct `manifest-sha512.txt` (the profile requires
SHA-512), `manifest-sha256.txt` when present, the tag manifests and `Payload-Oxum`. Manifests for weaker
algorithms (md5, sha1) are ignored. A crate that is not a bag (a plain directory, or a zip with
`ro-crate-metadata.json` at its top) is accepted without manifests. Bags naming remote payload in
`fetch.txt` are refused: the gateway fetches nothing on a client's behalf.

`write_bag_zip` packs a payload directory as a bag inside a zip, with freshly computed SHA-512 payload
and tag manifests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.adapters.crates.checksums import SUPPORTED, digests
from gateway.adapters.crates.safe_unpack import IntakeLimits, UnsafeArchive, clear, safe_parts, unpack
from gateway.domain.errors import InvalidRequest

METADATA_FILE = "ro-crate-metadata.json"
REQUIRED_MANIFEST = "sha512"
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_CHUNK = 1024 * 1024


class BagInvalid(InvalidRequest):
    """The bag's declarations and its content disagree; `msg` says where."""


@dataclass(frozen=True)
class ReceivedCrate:
    """A crate copied into the gateway's work area and verified.

    `crate_root` holds ro-crate-metadata.json; `bag_root` is the bag directory when the crate came as a
    bag (then `crate_root` is its `data/`), else None. `verified_manifests` names the algorithms checked.
    """

    crate_root: Path
    bag_root: Path | None
    verified_manifests: tuple[str, ...]
    files: int
    bytes: int
    metadata: dict[str, Any]


def intake_crate(source: Path, target: Path, limits: IntakeLimits | None = None) -> ReceivedCrate:
    """Copy the client's crate at `source` (zip file or directory) into the empty `target`, and verify it.

    Raises InvalidRequest (UnsafeArchive, BagInvalid) with a message for the client; nothing is left in
    `target` then. Nothing is ever written outside `target`.
    """
    limits = limits or IntakeLimits()
    created = not target.exists()
    summary = unpack(source, target, limits)
    try:
        top = _locate_top(target)
        if (top / "bagit.txt").is_file():
            verified = verify_bag(top)
            crate_root, bag_root = top / "data", top
        else:
            verified, crate_root, bag_root = (), top, None
        metadata = read_metadata(crate_root, limits)
    except BaseException:
        clear(target, remove_dir=created)
        raise
    return ReceivedCrate(crate_root, bag_root, verified, summary.files, summary.bytes, metadata)


def read_metadata(crate_root: Path, limits: IntakeLimits | None = None) -> dict[str, Any]:
    """Parse `crate_root/ro-crate-metadata.json`; InvalidRequest when it is missing, too big or not a JSON object."""
    limits = limits or IntakeLimits()
    path = crate_root / METADATA_FILE
    if path.is_symlink() or not path.is_file():
        raise InvalidRequest(f"the crate has no {METADATA_FILE} at its root")
    size = path.stat().st_size
    if size > limits.max_metadata_bytes:
        raise InvalidRequest(f"{METADATA_FILE} is {size} bytes; the limit is {limits.max_metadata_bytes}")
    try:
        document = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequest(f"{METADATA_FILE} is not valid UTF-8 JSON: {e}") from e
    except RecursionError as e:  # absurdly deep nesting, an attack on the parser rather than a crate
        raise InvalidRequest(f"{METADATA_FILE} nests too deeply") from e
    if not isinstance(document, dict):
        raise InvalidRequest(f"{METADATA_FILE} must hold a JSON object")
    return document


def _locate_top(unpacked: Path) -> Path:
    """The bag or crate directory: `unpacked` itself, or its only entry when that is a folder."""
    if (unpacked / "bagit.txt").is_file() or (unpacked / METADATA_FILE).is_file():
        return unpacked
    entries = list(unpacked.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        if (inner / "bagit.txt").is_file() or (inner / METADATA_FILE).is_file():
            return inner
    raise InvalidRequest(f"no bagit.txt or {METADATA_FILE} at the top of the crate (or of its single top-level folder)")


# -- verification ---------------------------------------------------------------------------------------------


def verify_bag(bag: Path) -> tuple[str, ...]:
    """Verify the bag at `bag`; return the manifest algorithms checked. Raises BagInvalid on any mismatch."""
    _check_declaration(bag / "bagit.txt")
    _check_no_fetch(bag / "fetch.txt")
    if not (bag / "data").is_dir():
        raise BagInvalid("the bag has no data/ payload directory")
    algorithms = [a for a in SUPPORTED if (bag / f"manifest-{a}.txt").is_file()]
    if REQUIRED_MANIFEST not in algorithms:
        raise BagInvalid("the bag has no manifest-sha512.txt; Five Safes crates must list SHA-512 payload checksums")
    manifests = {a: _read_manifest(bag, f"manifest-{a}.txt", a, payload=True) for a in algorithms}
    payload = _payload_files(bag)
    actual_bytes = 0
    for relative in payload:
        size, hexes = digests(bag / relative, algorithms)
        actual_bytes += size
        for algorithm, manifest in manifests.items():
            if relative not in manifest:
                raise BagInvalid(f"payload file {relative!r} is not listed in manifest-{algorithm}.txt")
            if manifest[relative] != hexes[algorithm]:
                raise BagInvalid(f"checksum mismatch for {relative!r} in manifest-{algorithm}.txt")
    for algorithm, manifest in manifests.items():
        missing = sorted(set(manifest) - set(payload))
        if missing:
            raise BagInvalid(f"{missing[0]!r} is listed in manifest-{algorithm}.txt but missing from the bag")
    _check_oxum(bag / "bag-info.txt", actual_bytes, len(payload))
    for algorithm in SUPPORTED:
        if (bag / f"tagmanifest-{algorithm}.txt").is_file():
            _check_tag_manifest(bag, algorithm)
    return tuple(algorithms)


def _read_tag_lines(path: Path) -> list[str]:
    try:
        return path.read_text("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise BagInvalid(f"{path.name} is not UTF-8") from e


def _check_declaration(path: Path) -> None:
    if not path.is_file():
        raise BagInvalid("the bag has no bagit.txt")
    # The profile's own example writes "BagIt-version"; labels are matched without regard to case.
    fields = {k.lower(): v for k, v in _tag_fields(_read_tag_lines(path))}
    version = fields.get("bagit-version", "")
    if not re.fullmatch(r"1\.\d+|0\.97", version):
        raise BagInvalid(f"bagit.txt declares BagIt-Version {version!r}; 1.0 is expected")
    if fields.get("tag-file-character-encoding", "").upper().replace("_", "-") != "UTF-8":
        raise BagInvalid("bagit.txt must declare Tag-File-Character-Encoding: UTF-8")


def _check_no_fetch(path: Path) -> None:
    if path.is_file() and any(line.strip() for line in _read_tag_lines(path)):
        raise BagInvalid("fetch.txt lists remote payload; the gateway does not fetch files for a crate")


def _tag_fields(lines: list[str]) -> list[tuple[str, str]]:
    """`Label: value` lines; a line starting with whitespace continues the previous value (RFC 8493)."""
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and fields:
            label, value = fields[-1]
            fields[-1] = (label, f"{value} {line.strip()}")
        elif ":" in line:
            label, value = line.split(":", 1)
            fields.append((label.strip(), value.strip()))
    return fields


def _read_manifest(bag: Path, name: str, algorithm: str, *, payload: bool) -> dict[str, str]:
    """`relative path -> hex digest` from a manifest, refusing paths that leave the bag or repeat."""
    entries: dict[str, str] = {}
    limits = IntakeLimits()
    for number, line in enumerate(_read_tag_lines(bag / name), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise BagInvalid(f"{name} line {number} is not '<checksum> <path>'")
        checksum, raw_path = fields[0].lower(), fields[1].strip()
        if not re.fullmatch(rf"[0-9a-f]{{{_HEX_LENGTH[algorithm]}}}", checksum):
            raise BagInvalid(f"{name} line {number}: {checksum[:20]!r}... is not a {algorithm} checksum")
        path = _decode_manifest_path(raw_path)
        try:
            parts = safe_parts(path, limits)
        except UnsafeArchive as e:
            raise BagInvalid(f"{name} line {number}: {e.msg}") from e
        if payload != (parts[0] == "data"):
            where = "inside data/" if payload else "outside data/"
            raise BagInvalid(f"{name} line {number}: {path!r} must be {where}")
        if path in entries:
            raise BagInvalid(f"{name} lists {path!r} more than once")
        entries[path] = checksum
    return entries


def _decode_manifest_path(raw: str) -> str:
    # RFC 8493 percent-encodes only CR, LF and '%' in manifest paths.
    return raw.replace("%0D", "\r").replace("%0d", "\r").replace("%0A", "\n").replace("%0a", "\n").replace("%25", "%")


def _encode_manifest_path(path: str) -> str:
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _payload_files(bag: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(bag / "data"):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_symlink():
                raise BagInvalid(f"{path.relative_to(bag).as_posix()!r} is a symbolic link")
            found.append(path.relative_to(bag).as_posix())
    return found


def _check_oxum(bag_info: Path, actual_bytes: int, actual_files: int) -> None:
    if not bag_info.is_file():
        return
    oxum = [v for k, v in _tag_fields(_read_tag_lines(bag_info)) if k.lower() == "payload-oxum"]
    if not oxum:
        return
    match = re.fullmatch(r"(\d+)\.(\d+)", oxum[0])
    if match is None:
        raise BagInvalid(f"bag-info.txt Payload-Oxum {oxum[0]!r} is not '<octets>.<files>'")
    if (int(match.group(1)), int(match.group(2))) != (actual_bytes, actual_files):
        raise BagInvalid(f"bag-info.txt Payload-Oxum says {oxum[0]}, the payload is {actual_bytes}.{actual_files}")


def _check_tag_manifest(bag: Path, algorithm: str) -> None:
    name = f"tagmanifest-{algorithm}.txt"
    for relative, expected in _read_manifest(bag, name, algorithm, payload=False).items():
        path = bag / relative
        if path.is_symlink() or not path.is_file():
            raise BagInvalid(f"{relative!r} is listed in {name} but missing from the bag")
        if digests(path, [algorithm])[1][algorithm] != expected:
            raise BagInvalid(f"checksum mismatch for {relative!r} in {name}")


# -- writing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BagSummary:
    path: Path
    files: int
    payload_bytes: int
    # crate path (relative to data/) -> SHA-512 hex, as written to manifest-sha512.txt
    payload_sha512: Mapping[str, str]


def write_bag_zip(
    payload_dir: Path,
    destination: Path,
    *,
    bag_name: str,
    external_identifier: str | None = None,
    bagged_at: datetime | None = None,
    extra_info: Mapping[str, str] | None = None,
) -> BagSummary:
    """Zip `payload_dir` as the payload of a bag named `bag_name`, with regenerated SHA-512 manifests.

    The zip holds one folder `bag_name/` with bagit.txt, bag-info.txt (External-Identifier, a fresh
    urn:uuid unless given; Bagging-Date; Payload-Oxum), manifest-sha512.txt, tagmanifest-sha512.txt and
    data/. Files are streamed; the zip is written next to `destination` and renamed into place, so a
    failure never leaves a partial bag behind. Symbolic links in `payload_dir` are refused.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", bag_name):
        raise ValueError("bag_name must be a simple file name")
    if not (payload_dir / METADATA_FILE).is_file():
        raise ValueError(f"the payload directory has no {METADATA_FILE}")
    bagged_at = bagged_at or datetime.now(UTC)
    stamp = bagged_at.timetuple()[:6]
    payload = _payload_to_write(payload_dir)
    partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            sha512: dict[str, str] = {}
            total = 0
            for relative in payload:
                written, checksum = _add_file(archive, payload_dir / relative, f"{bag_name}/data/{relative}", stamp)
                sha512[relative] = checksum
                total += written
            info = {
                "External-Identifier": external_identifier or f"urn:uuid:{uuid.uuid4()}",
                "Bagging-Date": bagged_at.date().isoformat(),
                "Payload-Oxum": f"{total}.{len(payload)}",
                "Bag-Software-Agent": "TRE Gateway",
                **(extra_info or {}),
            }
            tags = {
                "bagit.txt": "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
                "bag-info.txt": "".join(f"{k}: {v}\n" for k, v in info.items()),
                "manifest-sha512.txt": "".join(
                    f"{checksum}  {_encode_manifest_path('data/' + path)}\n" for path, checksum in sha512.items()
                ),
            }
            tag_sums: dict[str, str] = {}
            for name, text in tags.items():
                tag_sums[name] = _add_text(archive, f"{bag_name}/{name}", text, stamp)
            tag_manifest = "".join(f"{checksum}  {name}\n" for name, checksum in tag_sums.items())
            _add_text(archive, f"{bag_name}/tagmanifest-sha512.txt", tag_manifest, stamp)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return BagSummary(destination, len(payload), total, sha512)


def _payload_to_write(payload_dir: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(payload_dir):
        for name in [*dirs, *files]:
            if (Path(folder) / name).is_symlink():
                raise ValueError(f"{Path(folder, name)} is a symbolic link; result bags hold regular files only")
        dirs.sort()
        for name in sorted(files):
            found.append((Path(folder) / name).relative_to(payload_dir).as_posix())
    return found


def _add_file(archive: zipfile.ZipFile, source: Path, member: str, stamp: tuple[int, ...]) -> tuple[int, str]:
    info = zipfile.ZipInfo(member, date_time=_zip_time(stamp))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o100644 << 16
    hasher = hashlib.sha512()
    size = 0
    with open(source, "rb") as stream, archive.open(info, "w", force_zip64=True) as out:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, hasher.hexdigest()


def _add_text(archive: zipfile.ZipFile, member: str, text: str, stamp: tuple[int, ...]) -> str:
    data = text.encode("utf-8")
    info = zipfile.ZipInfo(member, date_time=_zip_time(stamp))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o100644 << 16
    archive.writestr(info, data)
    return hashlib.sha512(data).hexdigest()


def _zip_time(stamp: tuple[int, ...]) -> tuple[int, int, int, int, int, int]:
    # Zip timestamps start in 1980.
    year, month, day, hour, minute, second = stamp
    return (max(year, 1980), month, day, hour, minute, second)
