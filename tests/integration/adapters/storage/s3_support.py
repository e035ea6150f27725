"""What every S3 server the store is run against must pass: the ObjectStore contract plus S3 specifics.

Test modules provide a session fixture `s3_endpoint` (an S3Endpoint on 127.0.0.1) and subclass S3StoreChecks.
Each test gets a fresh bucket, emptied and removed afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import random
import traceback
import tracemalloc
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from gateway.adapters.storage import s3 as s3_module
from gateway.adapters.storage.s3 import S3ObjectStore, s3_store_from_settings
from gateway.domain.errors import BackendError, InvalidRequest, NotFound
from gateway.services.ports import Area, Location, check_key
from tests.contracts.object_store import ObjectStoreContract
from tests.pg import free_port

MIB = 1 << 20


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    checks_signatures: bool  # refuses requests signed with a wrong secret
    stores_checksums: bool  # keeps x-amz-checksum-sha256 and returns it on HEAD
    reports_parts: bool = True  # HEAD ?partNumber=1 answers with PartsCount


def settings_for(endpoint: S3Endpoint, tmp_path: Path, bucket: str, **overrides: Any) -> SimpleNamespace:
    """Settings as the gateway's Settings carry them: credentials in files, as mounted Secrets."""
    secrets = tmp_path / f"secrets-{uuid.uuid4().hex[:6]}"
    secrets.mkdir()
    (secrets / "access_key_id").write_text(endpoint.access_key + "\n")
    (secrets / "secret_access_key").write_text(endpoint.secret_key + "\n")
    values: dict[str, Any] = {
        "s3_endpoint_url": endpoint.url,
        "s3_region": "us-east-1",
        "s3_bucket": bucket,
        "s3_prefix": "",
        "s3_access_key_id_file": secrets / "access_key_id",
        "s3_secret_access_key_file": secrets / "secret_access_key",
        "s3_create_bucket": True,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def client_for(endpoint: S3Endpoint, secret: str | None = None, **config: Any) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=secret or endpoint.secret_key,
        config=Config(
            region_name="us-east-1",
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **config,
        ),
    )


def new_bucket_name() -> str:
    return "tre-" + uuid.uuid4().hex[:16]


def drop_bucket(client: Any, bucket: str) -> None:
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", ()):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


def random_file(path: Path, size: int, seed: int = 7) -> str:
    """Write `size` pseudo-random bytes a MiB at a time; return their sha256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = rng.randbytes(min(MIB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


class CallLog:
    """Names of the S3 operations a client makes (botocore's before-call event)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)


def full_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


class _ErrorBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class S3StoreChecks(ObjectStoreContract):
    prefix = ""

    @pytest.fixture
    def store(self, s3_endpoint: S3Endpoint, tmp_path: Path) -> Iterator[S3ObjectStore]:
        bucket = new_bucket_name()
        store = s3_store_from_settings(settings_for(s3_endpoint, tmp_path, bucket, s3_prefix=self.prefix))
        yield store
        drop_bucket(store.client, bucket)

    # ------------------------------------------------------------ naming

    def test_urls_name_bucket_prefix_area_and_key(self, store):
        assert store.url_for(Area.RELEASED, "p1/out.csv") == f"s3://{store.bucket}/{self.prefix}released/p1/out.csv"
        assert store.url_for(Area.INPUTS) == f"s3://{store.bucket}/{self.prefix}inputs/"
        assert store.locate(f"s3://{store.bucket}/{self.prefix}inputs/p1/data.csv") == Location(
            Area.INPUTS, "p1/data.csv"
        )

    def test_only_this_bucket_and_prefix_are_located(self, store):
        assert store.locate(f"s3://other-bucket/{self.prefix}released/p1/x") is None
        assert store.locate(f"s3://{store.bucket}/{self.prefix}elsewhere/p1/x") is None
        assert store.locate(f"s3://{store.bucket}/{self.prefix}released/") is None
        assert store.locate(f"s3://{store.bucket}") is None
        assert store.locate(f"https://{store.bucket}/{self.prefix}released/p1/x") is None
        assert store.locate(f"s3://user@{store.bucket}/{self.prefix}released/p1/x") is None
        if self.prefix:
            assert store.locate(f"s3://{store.bucket}/released/p1/x") is None

    def test_traversal_in_urls_is_kept_literally_and_refused(self, store):
        location = store.locate(store.url_for(Area.RELEASED, "p1/../p2/x.txt"))
        assert location == Location(Area.RELEASED, "p1/../p2/x.txt")
        with pytest.raises(InvalidRequest):
            check_key(location.key)
        for action in (
            lambda: store.open(Area.RELEASED, "p1/../p2/x.txt"),
            lambda: store.exists(Area.RELEASED, "../x"),
            lambda: store.copy(Location(Area.QUARANTINE, "t/../x"), Location(Area.RELEASED, "p/x")),
            lambda: store.copy(Location(Area.QUARANTINE, "t/x"), Location(Area.RELEASED, "p/../../x")),
            lambda: store.presigned_url(Area.RELEASED, "p1/./x"),
            lambda: list(store.list(Area.WORK, "t/../")),
            lambda: store.delete_prefix(Area.WORK, "../"),
        ):
            with pytest.raises(InvalidRequest):
                action()

    # ------------------------------------------------------------ streaming, multipart, checksums

    def test_a_20_mib_upload_goes_multipart_with_the_right_sha256(self, store, tmp_path, s3_endpoint):
        src = tmp_path / "big.bin"
        expected = random_file(src, 20 * MIB)
        calls = CallLog(store.client)
        stored = store.put_file(Area.QUARANTINE, "t1/big.bin", src)
        assert (stored.size_bytes, stored.sha256) == (20 * MIB, expected)
        assert calls.calls.count("UploadPart") == 3 and "PutObject" not in calls.calls
        # The server's view: a multipart object's ETag ends in "-<parts>"; 8 + 8 + 4 MiB here.
        full = f"{self.prefix}quarantine/t1/big.bin"
        head = store.client.head_object(Bucket=store.bucket, Key=full)
        assert head["ETag"].strip('"').endswith("-3")
        if s3_endpoint.reports_parts:
            assert store.client.head_object(Bucket=store.bucket, Key=full, PartNumber=1)["PartsCount"] == 3
        assert head["Metadata"]["sha256"] == expected
        [listed] = store.list(Area.QUARANTINE, "t1/")
        assert (listed.key, listed.size_bytes, listed.sha256) == ("t1/big.bin", 20 * MIB, expected)
        dst = tmp_path / "back.bin"
        store.fetch_to(Area.QUARANTINE, "t1/big.bin", dst)
        assert file_sha256(dst) == expected

    def test_a_small_upload_is_one_put(self, store):
        calls = CallLog(store.client)
        store.put_bytes(Area.WORK, "t/small", b"x" * 1000)
        assert "PutObject" in calls.calls and "CreateMultipartUpload" not in calls.calls

    def test_sha256_goes_as_the_s3_checksum(self, store, s3_endpoint):
        sent: list[str] = []

        def spy(request, **_):
            sent.append(request.headers.get("x-amz-checksum-sha256", b"").decode() or "")

        store.client.meta.events.register("before-send.s3.PutObject", spy)
        stored = store.put_bytes(Area.WORK, "t/sum.txt", b"checked by the server")
        b64 = base64.b64encode(bytes.fromhex(stored.sha256)).decode()
        assert sent == [b64]
        if s3_endpoint.stores_checksums:
            head = store.client.head_object(
                Bucket=store.bucket, Key=f"{self.prefix}work/t/sum.txt", ChecksumMode="ENABLED"
            )
            assert head["ChecksumSHA256"] == b64

    def test_a_server_refusing_checksums_gets_the_upload_without_them(self, store, caplog):
        refused: list[str] = []

        def hook(request, event_name="", **_):
            if any(h.lower().startswith(("x-amz-checksum-", "x-amz-sdk-checksum")) for h in request.headers):
                refused.append(event_name)
                body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InvalidArgument</Code>"
                        b"<Message>x-amz-checksum-sha256 is not supported</Message></Error>")
                return AWSResponse(request.url, 400, {"Content-Type": "application/xml"}, _ErrorBody(body))
            return None

        for op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject"):
            store.client.meta.events.register(f"before-send.s3.{op}", hook)
        stored = store.put_bytes(Area.WORK, "t/a.txt", b"no checksums here")
        assert len(refused) == 1 and store.checksums is False
        assert store.open(Area.WORK, "t/a.txt").read() == b"no checksums here"
        assert stored.sha256 == hashlib.sha256(b"no checksums here").hexdigest()
        store.put_bytes(Area.WORK, "t/b.txt", b"second")
        store.copy(Location(Area.WORK, "t/b.txt"), Location(Area.RELEASED, "p/b.txt"))
        assert len(refused) == 1  # not asked again
        assert [o.sha256 for o in store.list(Area.RELEASED)] == [hashlib.sha256(b"second").hexdigest()]
        assert "refused SHA-256 checksums" in caplog.text

    def test_an_unrelated_refusal_does_not_switch_checksums_off(self, store):
        def refuse_everything(request, **_):
            body = b"<Error><Code>InvalidArgument</Code><Message>quota rules say no</Message></Error>"
            return AWSResponse(request.url, 400, {"Content-Type": "application/xml"}, _ErrorBody(body))

        store.client.meta.events.register("before-send.s3.PutObject", refuse_everything)
        with pytest.raises(BackendError, match="InvalidArgument"):
            store.put_bytes(Area.WORK, "t/a.txt", b"x")
        assert store.checksums is True
        store.client.meta.events.unregister("before-send.s3.PutObject", refuse_everything)
        store.put_bytes(Area.WORK, "t/a.txt", b"x")
        assert store.checksums is True

    def test_open_streams_with_read_n_and_closes(self, store, tmp_path):
        src = tmp_path / "big.bin"
        expected = random_file(src, 12 * MIB, seed=3)
        store.put_file(Area.WORK, "t/big.bin", src)
        digest = hashlib.sha256()
        with store.open(Area.WORK, "t/big.bin") as stream:
            first = stream.read(10)
            assert len(first) == 10
            digest.update(first)
            while chunk := stream.read(MIB):
                assert len(chunk) <= MIB
                digest.update(chunk)
        assert stream.closed
        assert digest.hexdigest() == expected

    def test_a_file_changed_during_upload_is_not_stored(self, store, tmp_path, monkeypatch):
        src = tmp_path / "out.csv"
        src.write_bytes(b"a,b\n1,2\n")
        real_hash = s3_module._hash_file

        def hash_then_change(path):
            result = real_hash(path)
            with open(path, "ab") as out:
                out.write(b"3,4\n")  # e.g. a process still writing the file
            return result

        monkeypatch.setattr(s3_module, "_hash_file", hash_then_change)
        with pytest.raises(BackendError, match="changed while it was being uploaded"):
            store.put_file(Area.QUARANTINE, "t/out.csv", src)
        assert not store.exists(Area.QUARANTINE, "t/out.csv")

    # ------------------------------------------------------------ server-side copy

    @pytest.mark.parametrize("size", [1000, 20 * MIB], ids=["small", "multipart"])
    def test_copy_is_server_side(self, store, tmp_path, size):
        src = tmp_path / "src.bin"
        expected = random_file(src, size, seed=5)
        store.put_file(Area.QUARANTINE, "t/src.bin", src)
        calls = CallLog(store.client)
        copied = store.copy(Location(Area.QUARANTINE, "t/src.bin"), Location(Area.RELEASED, "p/src.bin"))
        assert (copied.key, copied.size_bytes, copied.sha256) == ("p/src.bin", size, expected)
        data_calls = {"GetObject", "PutObject", "UploadPart"} & set(calls.calls)
        assert not data_calls, calls.calls
        assert {"CopyObject", "UploadPartCopy"} & set(calls.calls), calls.calls
        [listed] = store.list(Area.RELEASED, "p/")
        assert listed.sha256 == expected
        dst = tmp_path / "dst.bin"
        store.fetch_to(Area.RELEASED, "p/src.bin", dst)
        assert file_sha256(dst) == expected

    # ------------------------------------------------------------ listing

    def test_list_paginates_skips_markers_and_hashes_foreign_objects(self, store):
        store.page_size = 2
        for key in ("t/e", "t/b", "t/d", "t/a", "t/c"):
            store.put_bytes(Area.INPUTS, key, key.encode())
        area = f"{self.prefix}inputs/"
        store.client.put_object(Bucket=store.bucket, Key=area + "t/dir/", Body=b"")  # a console's folder
        store.client.put_object(Bucket=store.bucket, Key=area + "t/f", Body=b"uploaded by a data manager")
        calls = CallLog(store.client)
        listed = list(store.list(Area.INPUTS, "t/"))
        assert [o.key for o in listed] == ["t/a", "t/b", "t/c", "t/d", "t/e", "t/f"]
        assert listed[-1].sha256 == hashlib.sha256(b"uploaded by a data manager").hexdigest()
        assert listed[0].sha256 == hashlib.sha256(b"t/a").hexdigest()
        assert calls.calls.count("ListObjectsV2") >= 4  # 7 keys, 2 a page
        assert store.delete_prefix(Area.INPUTS, "t/") == 7

    # ------------------------------------------------------------ presigned URLs

    @pytest.mark.parametrize("area", [Area.INPUTS, Area.WORK, Area.QUARANTINE])
    def test_presigned_urls_only_for_released_objects(self, store, area):
        store.put_bytes(area, "p/x.csv", b"1,2")
        with pytest.raises(InvalidRequest, match="only issued for released"):
            store.presigned_url(area, "p/x.csv")

    def test_a_presigned_url_downloads_the_released_object(self, store, s3_endpoint):
        store.put_bytes(Area.RELEASED, "p/result.csv", b"a,b\n1,2\n")
        url = store.presigned_url(Area.RELEASED, "p/result.csv", expires=300)
        assert url.startswith(s3_endpoint.url + "/")  # loopback only
        assert s3_endpoint.secret_key not in url
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as response:
            assert response.read() == b"a,b\n1,2\n"
        if s3_endpoint.checks_signatures:
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open(url.replace("result.csv", "other.csv"), timeout=10)
            assert refused.value.code == 403

    def test_presigned_url_needs_an_existing_object_and_a_sane_lifetime(self, store):
        with pytest.raises(NotFound):
            store.presigned_url(Area.RELEASED, "p/missing.csv")
        store.put_bytes(Area.RELEASED, "p/x", b"1")
        for expires in (0, -5, 8 * 24 * 3600):
            with pytest.raises(InvalidRequest):
                store.presigned_url(Area.RELEASED, "p/x", expires=expires)

    # ------------------------------------------------------------ errors

    def test_a_missing_object_is_not_found(self, store, tmp_path):
        with pytest.raises(NotFound):
            store.open(Area.WORK, "t/missing")
        with pytest.raises(NotFound):
            store.fetch_to(Area.WORK, "t/missing", tmp_path / "dst")
        assert not (tmp_path / "dst").exists()
        with pytest.raises(NotFound):
            store.copy(Location(Area.QUARANTINE, "t/missing"), Location(Area.RELEASED, "p/missing"))
        assert not store.exists(Area.RELEASED, "p/missing")
        assert list(store.list(Area.WORK, "t/")) == []
        assert store.delete_prefix(Area.WORK, "t/") == 0


class S3ServerChecks:
    """Checks that need a whole server rather than a store on a fresh bucket."""

    def test_memory_stays_flat_for_a_large_object(self, s3_endpoint, tmp_path):
        bucket = new_bucket_name()
        client = s3_store_from_settings(settings_for(s3_endpoint, tmp_path, bucket)).client
        store = S3ObjectStore(client, bucket, multipart_threshold=8 * MIB, max_concurrency=2)
        # A few parts in flight and a few read ahead, whatever the object's size: here half of it.
        bound = (2 + 2) * 8 * MIB
        try:
            src = tmp_path / "huge.bin"
            expected = random_file(src, 2 * bound, seed=11)
            tracemalloc.start()
            try:
                stored = store.put_file(Area.QUARANTINE, "t/huge.bin", src)
                _, upload_peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                store.fetch_to(Area.QUARANTINE, "t/huge.bin", tmp_path / "back.bin")
                _, download_peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                with store.open(Area.QUARANTINE, "t/huge.bin") as stream:
                    while stream.read(MIB):
                        pass
                _, read_peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert stored.sha256 == expected == file_sha256(tmp_path / "back.bin")
            assert upload_peak < bound, upload_peak
            assert download_peak < bound, download_peak
            assert read_peak < 8 * MIB, read_peak  # a 1 MiB buffer and the chunk in hand
        finally:
            drop_bucket(client, bucket)

    def test_a_missing_bucket_is_a_backend_error_without_secrets(self, s3_endpoint, tmp_path):
        settings = settings_for(s3_endpoint, tmp_path, new_bucket_name(), s3_create_bucket=False)
        store = s3_store_from_settings(settings)
        for action in (
            lambda: store.put_bytes(Area.WORK, "t/x", b"1"),
            lambda: store.put_file(Area.WORK, "t/x", settings.s3_access_key_id_file),
            lambda: store.open(Area.WORK, "t/x"),
            lambda: store.fetch_to(Area.WORK, "t/x", tmp_path / "dst"),
            lambda: store.exists(Area.WORK, "t/x"),
            lambda: list(store.list(Area.WORK)),
            lambda: store.copy(Location(Area.WORK, "t/x"), Location(Area.RELEASED, "p/x")),
            lambda: store.delete_prefix(Area.WORK, "t/"),
            lambda: store.presigned_url(Area.RELEASED, "p/x"),
        ):
            with pytest.raises(BackendError) as failed:
                action()
            assert "does not exist" in failed.value.msg and store.bucket in failed.value.msg
            assert s3_endpoint.secret_key not in full_traceback(failed.value)

    def test_wrong_credentials_are_a_backend_error_without_secrets(self, s3_endpoint, tmp_path):
        if not s3_endpoint.checks_signatures:
            pytest.skip("this S3 server does not check signatures")
        bucket = new_bucket_name()
        good = s3_store_from_settings(settings_for(s3_endpoint, tmp_path, bucket))
        wrong_secret = "WRONG-secret-" + uuid.uuid4().hex
        try:
            settings = settings_for(s3_endpoint, tmp_path, bucket, s3_create_bucket=False)
            settings.s3_secret_access_key_file.write_text(wrong_secret)
            store = s3_store_from_settings(settings)
            for action in (lambda: store.put_bytes(Area.WORK, "t/x", b"1"), lambda: store.open(Area.WORK, "t/x")):
                with pytest.raises(BackendError) as failed:
                    action()
                assert "access refused" in failed.value.msg
                text = full_traceback(failed.value)
                assert wrong_secret not in text and s3_endpoint.secret_key not in text
        finally:
            drop_bucket(good.client, bucket)

    def test_an_unreachable_endpoint_is_a_backend_error_without_secrets(self, s3_endpoint, tmp_path):
        dead = S3Endpoint(f"http://127.0.0.1:{free_port()}", s3_endpoint.access_key, s3_endpoint.secret_key,
                          False, False)
        store = s3_store_from_settings(settings_for(dead, tmp_path, new_bucket_name(), s3_create_bucket=False))
        for action in (lambda: store.put_bytes(Area.WORK, "t/x", b"1"), lambda: store.open(Area.WORK, "t/x")):
            with pytest.raises(BackendError) as failed:
                action()
            assert "EndpointConnectionError" in failed.value.msg
            assert s3_endpoint.secret_key not in full_traceback(failed.value)
