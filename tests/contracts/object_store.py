"""What every ObjectStore must do. Subclasses provide a `store` fixture."""

from __future__ import annotations

import hashlib

import pytest

from gateway.domain.errors import InvalidRequest, NotFound
from gateway.services.ports import Area, Location


class ObjectStoreContract:
    def test_put_then_read_back_with_size_and_sha256(self, store):
        stored = store.put_bytes(Area.WORK, "t1/a.txt", b"hello")
        assert stored.size_bytes == 5
        assert stored.sha256 == hashlib.sha256(b"hello").hexdigest()
        with store.open(Area.WORK, "t1/a.txt") as stream:
            assert stream.read() == b"hello"

    def test_put_file_and_fetch_to(self, store, tmp_path):
        src = tmp_path / "src.bin"
        src.write_bytes(b"\x00\x01" * 1000)
        store.put_file(Area.INPUTS, "p/src.bin", src)
        dst = tmp_path / "dst.bin"
        store.fetch_to(Area.INPUTS, "p/src.bin", dst)
        assert dst.read_bytes() == src.read_bytes()

    def test_areas_are_separate(self, store):
        store.put_bytes(Area.QUARANTINE, "t/x", b"secret")
        assert store.exists(Area.QUARANTINE, "t/x")
        assert not store.exists(Area.RELEASED, "t/x")
        with pytest.raises(NotFound):
            store.open(Area.RELEASED, "t/x")

    def test_copy_between_areas(self, store):
        store.put_bytes(Area.QUARANTINE, "t/out.txt", b"ok")
        copied = store.copy(Location(Area.QUARANTINE, "t/out.txt"), Location(Area.RELEASED, "p/out.txt"))
        assert copied.size_bytes == 2
        assert store.open(Area.RELEASED, "p/out.txt").read() == b"ok"

    def test_list_by_prefix_in_key_order(self, store):
        for key in ("b/2", "a/1", "b/1", "c"):
            store.put_bytes(Area.WORK, key, key.encode())
        assert [o.key for o in store.list(Area.WORK, "b/")] == ["b/1", "b/2"]
        assert [o.key for o in store.list(Area.WORK)] == ["a/1", "b/1", "b/2", "c"]

    def test_delete_prefix(self, store):
        store.put_bytes(Area.WORK, "t1/a", b"1")
        store.put_bytes(Area.WORK, "t1/b", b"2")
        store.put_bytes(Area.WORK, "t2/a", b"3")
        assert store.delete_prefix(Area.WORK, "t1/") == 2
        assert [o.key for o in store.list(Area.WORK)] == ["t2/a"]

    @pytest.mark.parametrize("key", ["../x", "a/../../x", "/abs", "a//b", "", "a/./b"])
    def test_unclean_keys_are_refused(self, store, key):
        with pytest.raises(InvalidRequest):
            store.put_bytes(Area.WORK, key, b"x")

    def test_url_round_trip(self, store):
        url = store.url_for(Area.RELEASED, "p1/results/out.csv")
        assert store.locate(url) == Location(Area.RELEASED, "p1/results/out.csv")

    def test_foreign_urls_are_not_located(self, store):
        assert store.locate("https://example.org/x") is None
        assert store.locate("ftp://host/x") is None

    def test_overwrite_replaces_content(self, store):
        store.put_bytes(Area.WORK, "k", b"one")
        store.put_bytes(Area.WORK, "k", b"two")
        assert store.open(Area.WORK, "k").read() == b"two"
