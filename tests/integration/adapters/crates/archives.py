"""Building test archives: well-formed bags and deliberately hostile zips."""

import json
import stat
import zipfile
from pathlib import Path

from gateway.adapters.crates.bagit import write_bag_zip
from tests.unit.domain.crates.examples import FIVE_SAFES, request_04


def request_payload(folder: Path) -> Path:
    """A crate directory: the 0.4 example request's metadata and its input file."""
    folder.mkdir(parents=True)
    (folder / "ro-crate-metadata.json").write_text(json.dumps(request_04()), "utf-8")
    (folder / "input1.txt").write_bytes((FIVE_SAFES / "0.4/example-request/data/input1.txt").read_bytes())
    return folder


def request_bag_zip(tmp: Path) -> Path:
    return write_bag_zip(request_payload(tmp / "payload"), tmp / "request.zip", bag_name="request-1").path


def request_bag_dir(tmp: Path) -> Path:
    """The request bag unpacked by trusted code (ours), ready to be tampered with."""
    with zipfile.ZipFile(request_bag_zip(tmp)) as archive:
        archive.extractall(tmp / "unpacked")  # our own archive, trusted
    return tmp / "unpacked" / "request-1"


def write_zip(path: Path, entries: list[tuple[str, bytes]], *, symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode bits below are meaningful
            mode = (stat.S_IFLNK | 0o777) if name in symlinks else (stat.S_IFREG | 0o644)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def metadata_entry(prefix: str = "") -> tuple[str, bytes]:
    return (prefix + "ro-crate-metadata.json", json.dumps(request_04()).encode())
