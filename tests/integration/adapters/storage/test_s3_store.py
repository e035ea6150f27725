"""The S3 object store against moto's S3 server, run as a subprocess on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.adapters.storage.s3 import S3ObjectStore, s3_store_from_settings
from gateway.config import SettingsError
from gateway.services.ports import Area
from tests.integration.adapters.storage.s3_support import (
    CallLog,
    S3Endpoint,
    S3ServerChecks,
    S3StoreChecks,
    drop_bucket,
    new_bucket_name,
    settings_for,
)
from tests.moto import moto_server

pytest.importorskip("moto", reason="moto[server] is a test dependency")

ACCESS_KEY = "TESTMOTOKEYID0001"
SECRET_KEY = "moto-test-secret-must-never-show-up-anywhere"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield S3Endpoint(url, ACCESS_KEY, SECRET_KEY, checks_signatures=False, stores_checksums=True)


class TestS3ObjectStoreOnMoto(S3StoreChecks):
    pass


class TestS3ServerOnMoto(S3ServerChecks):
    pass


class TestS3ObjectStoreWithAPrefix(S3StoreChecks):
    prefix = "tre/dev/"

    def test_the_prefix_keeps_other_tenants_of_the_bucket_apart(self, store):
        store.client.put_object(Bucket=store.bucket, Key="work/not-ours", Body=b"x")
        store.put_bytes(Area.WORK, "ours", b"y")
        assert [o.key for o in store.list(Area.WORK)] == ["ours"]
        assert store.delete_prefix(Area.WORK, "") == 1
        assert store.client.head_object(Bucket=store.bucket, Key="work/not-ours")["ContentLength"] == 1


# ---------------------------------------------------------------- the factory


def test_credentials_come_from_the_files(s3_endpoint, tmp_path):
    bucket = new_bucket_name()
    store = s3_store_from_settings(settings_for(s3_endpoint, tmp_path, bucket))
    seen: list[str] = []
    store.client.meta.events.register(
        "before-send.s3", lambda request, **_: seen.append(request.headers["Authorization"].decode())
    )
    try:
        store.put_bytes(Area.WORK, "t/x", b"1")
        assert seen and all(f"Credential={ACCESS_KEY}/" in a and "AWS4-HMAC-SHA256" in a for a in seen)
        assert all(SECRET_KEY not in a for a in seen)
    finally:
        drop_bucket(store.client, bucket)


def test_the_factory_creates_the_bucket_only_when_asked(s3_endpoint, tmp_path):
    bucket = new_bucket_name()
    store = s3_store_from_settings(settings_for(s3_endpoint, tmp_path, bucket, s3_create_bucket=False))
    calls = CallLog(store.client)
    assert not any(b["Name"] == bucket for b in store.client.list_buckets()["Buckets"])
    s3_store_from_settings(settings_for(s3_endpoint, tmp_path, bucket, s3_create_bucket=True))
    again = s3_store_from_settings(settings_for(s3_endpoint, tmp_path, bucket, s3_create_bucket=True))  # idempotent
    assert any(b["Name"] == bucket for b in store.client.list_buckets()["Buckets"])
    assert calls.calls == ["ListBuckets", "ListBuckets"]
    drop_bucket(again.client, bucket)


def test_factory_defaults(tmp_path):
    class Minimal:
        s3_bucket = "some-bucket"

    store = s3_store_from_settings(Minimal())
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == ("some-bucket", "")
    assert store.client.meta.region_name == "us-east-1"
    assert store.transfer.multipart_threshold == 8 << 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"s3_bucket": ""}, "needs s3_bucket"),
        ({"s3_secret_access_key_file": None}, "both"),
        ({"s3_access_key_id_file": Path("/nonexistent/key")}, "cannot read"),
    ],
)
def test_factory_refuses_incomplete_settings(s3_endpoint, tmp_path, change, message):
    settings = settings_for(s3_endpoint, tmp_path, new_bucket_name(), s3_create_bucket=False)
    for name, value in change.items():
        setattr(settings, name, value)
    with pytest.raises(SettingsError, match=message):
        s3_store_from_settings(settings)


def test_an_empty_secret_file_is_refused_without_echoing_files(s3_endpoint, tmp_path):
    settings = settings_for(s3_endpoint, tmp_path, new_bucket_name(), s3_create_bucket=False)
    settings.s3_secret_access_key_file.write_text("  \n")
    with pytest.raises(SettingsError, match="is empty") as failed:
        s3_store_from_settings(settings)
    assert ACCESS_KEY not in str(failed.value)


def test_a_prefix_is_normalised_and_checked(s3_endpoint, tmp_path):
    store = s3_store_from_settings(settings_for(s3_endpoint, tmp_path, new_bucket_name(), s3_prefix="/tre/x/",
                                                s3_create_bucket=False))
    assert store.prefix == "tre/x/"
    with pytest.raises(Exception, match="clean relative path"):
        s3_store_from_settings(settings_for(s3_endpoint, tmp_path, new_bucket_name(), s3_prefix="tre/../x",
                                            s3_create_bucket=False))
