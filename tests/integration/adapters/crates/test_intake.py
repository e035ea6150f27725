"""Safe intake of crates: limits, hostile paths, BagIt verification. Nothing may land outside the target."""

import os
import re
import shutil
import warnings
import zipfile

import pytest

from gateway.adapters.crates.bagit import BagInvalid, intake_crate
from gateway.adapters.crates.safe_unpack import IntakeLimits, UnsafeArchive
from gateway.domain.errors import InvalidRequest
from tests.integration.adapters.crates.archives import (
    metadata_entry,
    request_bag_dir,
    request_bag_zip,
    request_payload,
    write_zip,
)
from tests.unit.domain.crates.examples import FIVE_SAFES


@pytest.fixture
def work(tmp_path):
    """A directory holding only the intake target, so anything written beside it is visible."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def refused(source, work, error=InvalidRequest, limits=None):
    target = work / "target"
    with pytest.raises(error) as caught:
        intake_crate(source, target, limits)
    assert list(work.iterdir()) == [], "a refused crate must leave nothing behind"
    return caught.value.msg


def test_the_official_05_bagit_zip_is_accepted_with_its_sha512_manifest_verified(work):
    received = intake_crate(FIVE_SAFES / "0.5-DRAFT/example-request.bagit.zip", work / "target")
    assert received.verified_manifests == ("sha512",)
    assert received.bag_root == work / "target" / "example-request"
    assert received.crate_root == received.bag_root / "data"
    assert (received.files, received.bytes) == (8, 42926)
    assert received.metadata["@graph"][1]["conformsTo"] == {"@id": "https://w3id.org/5s-crate/0.5-DRAFT"}


def test_a_plain_crate_directory_is_accepted_without_manifests(work):
    received = intake_crate(FIVE_SAFES / "0.4/example-request/data", work / "target")
    assert received.verified_manifests == ()
    assert received.bag_root is None
    assert sorted(p.name for p in received.crate_root.iterdir()) == ["input1.txt", "ro-crate-metadata.json"]


def test_a_zip_with_the_metadata_at_its_top_is_accepted_as_a_crate(work, tmp_path):
    source = write_zip(tmp_path / "crate.zip", [metadata_entry(), ("input1.txt", b"x")])
    assert intake_crate(source, work / "target").crate_root == work / "target"


def test_the_shared_04_request_folder_is_an_incomplete_bag_and_is_refused(work):
    # Its manifest lists index.html and ro-crate-preview.html, which the folder does not contain.
    message = refused(FIVE_SAFES / "0.4/example-request", work, BagInvalid)
    assert message == "'data/index.html' is listed in manifest-sha512.txt but missing from the bag"


def test_a_bag_written_by_the_gateway_round_trips(work, tmp_path):
    received = intake_crate(request_bag_zip(tmp_path), work / "target")
    assert received.verified_manifests == ("sha512",)
    assert received.metadata["@graph"][0]["@id"] == "ro-crate-metadata.json"


# -- BagIt verification --------------------------------------------------------------------------------------


def test_a_payload_file_whose_sha512_does_not_match_is_refused(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    (bag / "data" / "input1.txt").write_text("tampered", "utf-8")
    assert refused(bag, work, BagInvalid) == "checksum mismatch for 'data/input1.txt' in manifest-sha512.txt"


def test_a_manifest_line_with_a_wrong_checksum_is_refused(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    manifest = bag / "manifest-sha512.txt"
    lines = manifest.read_text("utf-8").splitlines()
    lines[0] = "0" * 128 + lines[0][128:]
    manifest.write_text("\n".join(lines) + "\n", "utf-8")
    assert "checksum mismatch for 'data/" in refused(bag, work, BagInvalid)


def test_a_payload_file_missing_from_the_manifest_is_refused(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    (bag / "data" / "smuggled.txt").write_text("not in the manifest", "utf-8")
    assert refused(bag, work, BagInvalid) == "payload file 'data/smuggled.txt' is not listed in manifest-sha512.txt"


def test_a_bag_without_a_sha512_manifest_is_refused(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    (bag / "manifest-sha512.txt").unlink()
    assert "no manifest-sha512.txt" in refused(bag, work, BagInvalid)


def test_a_sha256_manifest_is_verified_when_present(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    (bag / "manifest-sha256.txt").write_text("0" * 64 + "  data/input1.txt\n", "utf-8")
    assert "manifest-sha256.txt" in refused(bag, work, BagInvalid)


def test_a_changed_tag_file_breaks_the_tag_manifest(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    (bag / "bag-info.txt").write_text("External-Identifier: urn:uuid:forged\n", "utf-8")
    assert refused(bag, work, BagInvalid) == "checksum mismatch for 'bag-info.txt' in tagmanifest-sha512.txt"


def test_a_wrong_payload_oxum_is_refused(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    (bag / "tagmanifest-sha512.txt").unlink()
    (bag / "bag-info.txt").write_text("Payload-Oxum: 1.1\n", "utf-8")
    assert "Payload-Oxum says 1.1" in refused(bag, work, BagInvalid)


def test_remote_payload_in_fetch_txt_is_refused(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    (bag / "fetch.txt").write_text("https://example.org/data.bin 10 data/data.bin\n", "utf-8")
    assert "fetch.txt lists remote payload" in refused(bag, work, BagInvalid)


def test_a_manifest_path_leaving_the_bag_is_refused(work, tmp_path):
    bag = request_bag_dir(tmp_path)
    with open(bag / "manifest-sha512.txt", "a", encoding="utf-8") as manifest:
        manifest.write("0" * 128 + "  data/../../outside.txt\n")
    assert "contains '..'" in refused(bag, work, BagInvalid)


# -- hostile archives ------------------------------------------------------------------------------------------


def test_dot_dot_entries_are_refused_before_anything_is_written(work, tmp_path):
    source = write_zip(tmp_path / "evil.zip", [metadata_entry(), ("../x", b"escape")])
    assert refused(source, work) == "entry '../x' contains '..'"
    assert not (work.parent / "x").exists()


def test_absolute_entries_are_refused(work, tmp_path):
    escape = tmp_path / "absolute-escape.txt"
    source = write_zip(tmp_path / "evil.zip", [metadata_entry(), (str(escape), b"escape")])
    assert refused(source, work) == f"entry {str(escape)!r} is an absolute path"
    assert not escape.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("C:/windows/x", "starts with a drive letter"),
        ("data\\..\\x", "contains a backslash"),
        ("data/./x", "empty or '.' path component"),
    ],
)
def test_other_misleading_names_are_refused(work, tmp_path, name, message):
    source = write_zip(tmp_path / "evil.zip", [metadata_entry(), (name, b"x")])
    assert message in refused(source, work)


def test_symlink_entries_are_refused(work, tmp_path):
    source = write_zip(
        tmp_path / "evil.zip", [metadata_entry(), ("input1.txt", b"/etc/passwd")], symlinks=("input1.txt",)
    )
    assert refused(source, work) == "entry 'input1.txt' is a symbolic link; links are not accepted"


def test_duplicate_entries_are_refused(work, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we create on purpose
        source = write_zip(tmp_path / "dup.zip", [metadata_entry(), ("input1.txt", b"a"), ("input1.txt", b"b")])
    assert refused(source, work) == "entry 'input1.txt' appears more than once"


def test_a_zip_bomb_is_refused_by_its_compression_ratio(work, tmp_path):
    source = tmp_path / "bomb.zip"
    with zipfile.ZipFile(source, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(*metadata_entry())
        with archive.open("data/zeros.bin", "w") as out:
            for _ in range(50):
                out.write(bytes(1024 * 1024))
    assert source.stat().st_size < 1024 * 1024
    message = refused(source, work, UnsafeArchive)
    assert re.fullmatch(
        r"entry 'data/zeros.bin' expands \d+ times \(\d+ to 52428800 bytes\); "
        r"the limit is 100 \(a zip bomb\?\)",
        message,
    ), message


def test_the_unpacked_size_limit_applies_even_to_incompressible_content(work, tmp_path):
    source = write_zip(tmp_path / "big.zip", [metadata_entry(), ("blob.bin", os.urandom(64 * 1024))])
    message = refused(source, work, limits=IntakeLimits(max_unpacked_bytes=32 * 1024))
    assert message.startswith("the archive unpacks to") and message.endswith("the limit is 32768")


def test_an_archive_over_the_size_limit_is_refused_unread(work, tmp_path):
    source = write_zip(tmp_path / "big.zip", [metadata_entry()])
    assert "the limit is 10" in refused(source, work, limits=IntakeLimits(max_archive_bytes=10))


def test_too_many_files_are_refused(work, tmp_path):
    entries = [metadata_entry()] + [(f"data/f{i}.txt", b"x") for i in range(10)]
    source = write_zip(tmp_path / "many.zip", entries)
    assert refused(source, work, limits=IntakeLimits(max_files=10)) == "the archive has 11 files; the limit is 10"


def test_too_many_files_in_a_directory_are_refused(work, tmp_path):
    crate = request_payload(tmp_path / "crate")
    for i in range(3):
        (crate / f"f{i}.txt").write_text("x", "utf-8")
    assert refused(crate, work, limits=IntakeLimits(max_files=4)) == "the crate has more than 4 files"


def test_a_directory_containing_a_symlink_is_refused(work, tmp_path):
    crate = request_payload(tmp_path / "crate")
    (crate / "secret").symlink_to("/etc/passwd")
    assert refused(crate, work) == "'secret' is a symbolic link; links are not accepted"


def test_a_crate_without_metadata_is_refused(work, tmp_path):
    source = write_zip(tmp_path / "empty.zip", [("readme.txt", b"hello")])
    assert "no bagit.txt or ro-crate-metadata.json" in refused(source, work)


def test_something_that_is_not_a_zip_is_refused(work, tmp_path):
    source = tmp_path / "not.zip"
    source.write_bytes(b"plain text, not an archive")
    assert refused(source, work).startswith("the archive is not a readable zip file")


def test_the_target_must_be_empty(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine", "utf-8")
    with pytest.raises(ValueError, match="must be an empty directory"):
        intake_crate(FIVE_SAFES / "0.4/example-request/data", target)
    assert (target / "keep.txt").read_text("utf-8") == "mine"


def test_a_preexisting_empty_target_is_kept_but_emptied_on_refusal(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    bag = request_bag_dir(tmp_path)
    shutil.rmtree(bag / "data")
    with pytest.raises(BagInvalid, match="no data/ payload directory"):
        intake_crate(bag, target)
    assert target.is_dir() and list(target.iterdir()) == []
