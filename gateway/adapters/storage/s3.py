"""Object store on one S3 bucket (AWS S3, Ceph RADOS Gateway, MinIO, ...): one key prefix per area.

Layout: `<prefix><area>/<key>` in `bucket`; URLs are `s3://<bucket>/<prefix><area>/<key>`, with the key
written as is (S3 URIs are not percent-encoded). `locate` takes such a URL apart literally: a '..' in it
is kept, and refused later by `check_key`, never normalised away.

Data is streamed both ways, so memory stays flat whatever the object's size:
- uploads go through the client's managed transfer (`upload_fileobj`): one PUT below the multipart
  threshold, a multipart upload above it, at most a few parts in memory at a time;
- `open` returns a buffered stream over the GET body; `fetch_to` is a managed (ranged, parallel) download;
- `copy` is server-side (CopyObject, or UploadPartCopy parts above the threshold): no byte comes here.

Every object carries its SHA-256 as user metadata (`x-amz-meta-sha256`), set when it is written, so
`list` can report it without reading the object. `put_file` hashes the file once before the upload (the
metadata must go with the first request) and again while streaming the upload; if the two differ the
file changed meanwhile and the object is deleted again. The SHA-256 is also sent as the S3 checksum
(`ChecksumAlgorithm='SHA256'`) so the server verifies what it received; a server that refuses
checksums gets the upload again without them, and this store stops sending them.

Vendor errors become domain errors: a missing object is NotFound; anything else (missing bucket,
refused credentials, unreachable endpoint) is BackendError whose message names the operation and the
S3 error code but never a credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError as TransferRetriesExceeded
from s3transfer.exceptions import S3DownloadFailedError, S3UploadFailedError

from gateway.domain.errors import BackendError, DomainError, InvalidRequest, NotFound
from gateway.services.ports import Area, Location, StoredObject, check_key

log = logging.getLogger(__name__)
_T = TypeVar("_T")

CHUNK = 1 << 20
MIB = 1 << 20
SHA256_META = "sha256"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit
_HEX64 = re.compile(r"[0-9a-f]{64}")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})
# Codes with which servers that do not implement flexible checksums refuse them.
_CHECKSUM_REFUSED = frozenset({"InvalidArgument", "InvalidRequest", "NotImplemented", "BadRequest", "InvalidDigest"})
_FAILURES = (
    ClientError, BotoCoreError, Boto3Error, TransferRetriesExceeded, S3UploadFailedError, S3DownloadFailedError
)


class S3ObjectStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        multipart_threshold: int = 8 * MIB,
        multipart_chunksize: int | None = None,
        max_concurrency: int = 4,
        checksums: bool = True,
        page_size: int = 1000,
        redact: Iterable[str] = (),
    ) -> None:
        """`client` is a boto3 S3 client; `redact` lists strings (credentials) never to put in a message."""
        if not bucket:
            raise ValueError("an S3 object store needs a bucket")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix + "/" if prefix else ""
        chunksize = max(multipart_chunksize or multipart_threshold, 5 * MIB)  # S3's smallest part
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=chunksize,
            max_concurrency=max_concurrency,
            io_chunksize=256 * 1024,
            max_io_queue=64,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        # Parts read ahead of the upload threads: with the threads' own parts, memory is bounded by
        # about (max_concurrency + this) * chunksize, whatever the object's size.
        self.transfer.max_in_memory_upload_chunks = max_concurrency
        self.checksums = checksums
        self.page_size = page_size
        self._redact = tuple(s for s in redact if s)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ naming

    def _area_prefix(self, area: Area) -> str:
        return f"{self.prefix}{Area(area).value}/"

    def _key(self, area: Area, key: str) -> str:
        return self._area_prefix(area) + check_key(key)

    def url_for(self, area: Area, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._area_prefix(area)}{key}"

    def locate(self, url: str) -> Location | None:
        if url[:5].lower() != "s3://":
            return None
        bucket, slash, path = url[5:].partition("/")
        if bucket != self.bucket or not slash:
            return None
        for area in Area:
            base = self._area_prefix(area)
            if path.startswith(base) and len(path) > len(base):
                return Location(area, path[len(base):])
        return None

    # ------------------------------------------------------------ writing

    def put_bytes(self, area: Area, key: str, data: bytes) -> StoredObject:
        full = self._key(area, key)
        sha256 = hashlib.sha256(data).hexdigest()
        return self._upload(full, key, lambda: io.BytesIO(data), sha256, len(data))

    def put_file(self, area: Area, key: str, source: Path) -> StoredObject:
        full = self._key(area, key)
        sha256, size = _hash_file(source)
        return self._upload(full, key, lambda: open(source, "rb"), sha256, size)

    def _upload(
        self, full: str, key: str, opener: Callable[[], BinaryIO], sha256: str, size: int
    ) -> StoredObject:
        def attempt(with_checksum: bool) -> _HashingReader:
            extra: dict[str, Any] = {"Metadata": {SHA256_META: sha256}, "ContentType": "application/octet-stream"}
            if with_checksum:
                extra["ChecksumAlgorithm"] = "SHA256"
            with opener() as source:
                reader = _HashingReader(source)
                self.client.upload_fileobj(reader, self.bucket, full, ExtraArgs=extra, Config=self.transfer)
            return reader

        try:
            reader = self._checksummed(attempt)
        except _FAILURES as exc:
            raise self._error(exc, "upload", full) from exc
        if reader.hexdigest() != sha256 or reader.size != size:
            self._delete_keys([full])
            raise BackendError(f"object {key!r} changed while it was being uploaded; it was not stored")
        return StoredObject(key=key, size_bytes=size, sha256=sha256)

    def copy(self, source: Location, destination: Location) -> StoredObject:
        src = self._key(source.area, source.key)
        dst = self._key(destination.area, destination.key)
        head = self._head(src, source.key)
        sha256 = self._sha256_of(src, head)

        def attempt(with_checksum: bool) -> None:
            extra: dict[str, Any] = {
                "Metadata": {SHA256_META: sha256},
                "MetadataDirective": "REPLACE",
                "ContentType": head.get("ContentType") or "application/octet-stream",
                # The object we hashed, not one written over it since.
                "CopySourceIfMatch": head["ETag"],
            }
            if with_checksum:
                extra["ChecksumAlgorithm"] = "SHA256"
            self.client.copy(
                {"Bucket": self.bucket, "Key": src}, self.bucket, dst, ExtraArgs=extra, Config=self.transfer
            )

        try:
            self._checksummed(attempt)
        except _FAILURES as exc:
            raise self._missing_or_error(exc, "copy", src, source.key) from exc
        return StoredObject(key=destination.key, size_bytes=int(head["ContentLength"]), sha256=sha256)

    def _checksummed(self, attempt: Callable[[bool], _T]) -> _T:
        """`attempt(with_checksum)`; if the server refuses the checksum, once more without it.

        Checksums are given up for good only when the attempt without them then succeeds, so that an
        unrelated 400 does not switch them off.
        """
        if not self.checksums:
            return attempt(False)
        try:
            return attempt(True)
        except ClientError as exc:
            if not _checksum_refused(exc):
                raise
            refusal = exc
        result = attempt(False)
        with self._lock:
            if self.checksums:
                self.checksums = False
                log.warning(
                    "the S3 server refused SHA-256 checksums (%s); sending objects without them from now on",
                    _code(refusal),
                )
        return result

    # ------------------------------------------------------------ reading

    def open(self, area: Area, key: str) -> BinaryIO:
        full = self._key(area, key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full)
        except _FAILURES as exc:
            raise self._missing_or_error(exc, "read", full, key) from exc
        raw = _BodyReader(response["Body"], lambda exc: self._error(exc, "read", full))
        return io.BufferedReader(raw, CHUNK)

    def fetch_to(self, area: Area, key: str, destination: Path) -> None:
        full = self._key(area, key)
        self._head(full, key)  # NotFound before the destination is touched
        try:
            with open(destination, "wb") as out:
                # Ranged parts of a large object are pinned to one ETag by the transfer manager itself.
                self.client.download_fileobj(self.bucket, full, out, Config=self.transfer)
        except _FAILURES as exc:
            destination.unlink(missing_ok=True)
            raise self._missing_or_error(exc, "download", full, key) from exc

    def exists(self, area: Area, key: str) -> bool:
        full = self._key(area, key)
        try:
            self._head(full, key)
        except NotFound:
            return False
        return True

    def list(self, area: Area, prefix: str = "") -> Iterator[StoredObject]:
        base = self._area_prefix(area)
        for full, _size in self._keys(base + _check_prefix(prefix)):
            key = full[len(base):]
            try:
                check_key(key)  # skip "directory" markers and keys this store would never write
            except InvalidRequest:
                continue
            try:
                head = self._head(full, key)
            except NotFound:
                continue  # deleted since it was listed
            yield StoredObject(key=key, size_bytes=int(head["ContentLength"]), sha256=self._sha256_of(full, head))

    def _keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every key under `prefix`, in key order (S3 lists in UTF-8 byte order, i.e. code point order)."""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size})
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"], int(item["Size"])
        except _FAILURES as exc:
            raise self._error(exc, "list", prefix) from exc

    def _sha256_of(self, full: str, head: dict[str, Any]) -> str:
        """From our metadata; else the server's full-object checksum; else by reading the object."""
        recorded = str(head.get("Metadata", {}).get(SHA256_META, "")).lower()
        if _HEX64.fullmatch(recorded):
            return recorded
        checksum = str(head.get("ChecksumSHA256") or "")
        # A multipart object's (ETag "...-N") SHA-256 checksum is one of its parts' checksums, not of its bytes.
        single_part = "-" not in str(head.get("ETag", "-"))
        full_object = head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        if checksum and single_part and full_object and "-" not in checksum:
            try:
                return base64.b64decode(checksum, validate=True).hex()
            except (binascii.Error, ValueError):
                pass
        # Written by someone else (e.g. a data manager's upload into `inputs`): hash it once, streaming.
        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full, IfMatch=head["ETag"])["Body"]
            with body:
                for chunk in body.iter_chunks(CHUNK):
                    digest.update(chunk)
        except _FAILURES as exc:
            raise self._error(exc, "read", full) from exc
        return digest.hexdigest()

    def _head(self, full: str, key: str) -> dict[str, Any]:
        try:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
            if self.checksums:
                kwargs["ChecksumMode"] = "ENABLED"
            return dict(self.client.head_object(**kwargs))
        except _FAILURES as exc:
            raise self._missing_or_error(exc, "look up", full, key) from exc

    # ------------------------------------------------------------ deleting

    def delete_prefix(self, area: Area, prefix: str) -> int:
        keys = [full for full, _size in self._keys(self._area_prefix(area) + _check_prefix(prefix))]
        return self._delete_keys(keys)

    def _delete_keys(self, keys: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start:start + 1000]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except _FAILURES as exc:
                raise self._error(exc, "delete", batch[0]) from exc
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise BackendError(
                    f"object store: could not delete {len(errors)} object(s), e.g. {first.get('Key')!r}: "
                    f"{self._clean(str(first.get('Code')))}"
                )
            deleted += len(batch)
        return deleted

    # ------------------------------------------------------------ released objects

    def presigned_url(self, area: Area, key: str, expires: int = 3600) -> str:
        """A time-limited GET URL for a released object; no other area is ever handed out this way."""
        try:
            area = Area(area)
        except ValueError:
            raise InvalidRequest(f"unknown area {area!r}") from None
        if area is not Area.RELEASED:
            raise InvalidRequest(f"presigned URLs are only issued for released objects, not for {area.value!r}")
        if not 1 <= int(expires) <= MAX_PRESIGN_SECONDS:
            raise InvalidRequest(f"expires must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
        full = self._key(area, key)
        self._head(full, key)
        try:
            return str(
                self.client.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=int(expires)
                )
            )
        except _FAILURES as exc:
            raise self._error(exc, "presign", full) from exc

    # ------------------------------------------------------------ set-up

    def ensure_bucket(self, region: str = "us-east-1") -> None:
        """Create the bucket if it does not exist (development set-ups)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _status(exc) != 404:
                raise self._error(exc, "check bucket", "") from exc
        except _FAILURES as exc:
            raise self._error(exc, "check bucket", "") from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error(exc, "create bucket", "") from exc
        except _FAILURES as exc:
            raise self._error(exc, "create bucket", "") from exc

    # ------------------------------------------------------------ errors

    def _missing_or_error(self, exc: Exception, action: str, full: str, key: str) -> DomainError:
        if isinstance(exc, ClientError) and _is_missing(exc):
            return self._missing(exc, action, full, key)
        return self._error(exc, action, full)

    def _missing(self, exc: ClientError, action: str, full: str, key: str) -> DomainError:
        """A 404 is NotFound only if it is the object that is missing, not the bucket."""
        if _code(exc) == "NoSuchBucket":
            return self._error(exc, action, full)
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as bucket_exc:
            if _status(bucket_exc) == 404:
                return self._clean_error(
                    f"object store: {action} s3://{self.bucket}/{full} failed: bucket {self.bucket!r} does not exist"
                )
            return self._error(bucket_exc, action, full)
        except _FAILURES as bucket_exc:
            return self._error(bucket_exc, action, full)
        area = full[len(self.prefix):].split("/", 1)[0]
        return NotFound(f"object {key!r} not found in {area}")

    def _error(self, exc: BaseException, action: str, full: str) -> BackendError:
        where = f"s3://{self.bucket}/{full}" if full else f"bucket {self.bucket!r}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code == "NoSuchBucket" or (code in _MISSING_OBJECT and not full):
                detail = f"bucket {self.bucket!r} does not exist"
            elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"):
                detail = f"access refused ({code}): check the S3 credentials and the bucket policy"
            elif code == "PreconditionFailed" or _status(exc) == 412:
                detail = "the object changed while it was being read"
            else:
                message = str(exc.response.get("Error", {}).get("Message", "")).strip()[:200]
                detail = f"{code} (HTTP {_status(exc)})" + (f": {message}" if message else "")
        else:
            detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        return BackendError(self._clean(f"object store: {action} {where} failed: {detail}"))

    def _clean_error(self, text: str) -> BackendError:
        return BackendError(self._clean(text))

    def _clean(self, text: str) -> str:
        text = _USERINFO.sub("***@", text)
        for secret in self._redact:
            text = text.replace(secret, "***")
        return text


# ---------------------------------------------------------------- helpers


class _HashingReader:
    """A read-only, deliberately non-seekable view of a stream that hashes what is read through it.

    Non-seekable so that the transfer manager reads it once, front to back, a part at a time.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, amount: int = -1) -> bytes:
        data = self._source.read(amount)
        self._digest.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _BodyReader(io.RawIOBase):
    """The GET body as a raw stream; failures while streaming become BackendError."""

    def __init__(self, body: Any, fail: Callable[[BaseException], BackendError]) -> None:
        self._body = body
        self._fail = fail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except _FAILURES as exc:
            raise self._fail(exc) from exc
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _check_prefix(prefix: str) -> str:
    """A listing prefix may end mid-name or with '/', but may not hold '.' or '..' segments."""
    if "\x00" in prefix or "\\" in prefix or prefix.startswith("/"):
        raise InvalidRequest(f"prefix {prefix!r} is not a clean relative path")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise InvalidRequest(f"prefix {prefix!r} is not a clean relative path")
    return prefix


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or str(_status(exc))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_missing(exc: ClientError) -> bool:
    return _code(exc) in _MISSING_OBJECT or _code(exc) == "NoSuchBucket"


def _checksum_refused(exc: ClientError) -> bool:
    return _status(exc) in (400, 501) and _code(exc) in _CHECKSUM_REFUSED


# ---------------------------------------------------------------- composition


def s3_store_from_settings(settings: Any) -> S3ObjectStore:
    """Build the store from Settings' `s3_*` fields (read with getattr, so each has a default here).

    Credentials come from files (Kubernetes Secrets mounted as files); with neither file set, boto3's
    usual chain applies (environment, shared config, workload identity).
    """
    import boto3
    from botocore.config import Config

    from gateway.config import SettingsError

    bucket = str(getattr(settings, "s3_bucket", "") or "")
    if not bucket:
        raise SettingsError("object_store=s3 needs s3_bucket")
    endpoint = str(getattr(settings, "s3_endpoint_url", "") or "") or None
    region = str(getattr(settings, "s3_region", "") or "") or "us-east-1"
    key_id = _read_secret(settings, "s3_access_key_id_file")
    secret = _read_secret(settings, "s3_secret_access_key_file")
    if bool(key_id) != bool(secret):
        raise SettingsError("set both s3_access_key_id_file and s3_secret_access_key_file, or neither")
    ca_bundle = getattr(settings, "s3_ca_bundle", None)
    config = Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": str(getattr(settings, "s3_addressing_style", "") or "path")},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
        # Only the checksums this store asks for (SHA-256): botocore's default CRC32 trailers are not
        # understood by every S3-compatible server.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
        verify=str(ca_bundle) if ca_bundle else None,
    )
    threshold = int(getattr(settings, "s3_multipart_threshold_bytes", 0) or 8 * MIB)
    store = S3ObjectStore(
        client,
        bucket,
        str(getattr(settings, "s3_prefix", "") or ""),
        multipart_threshold=threshold,
        redact=[s for s in (key_id, secret) if s],
    )
    if getattr(settings, "s3_create_bucket", False):
        store.ensure_bucket(region)
    return store


def _read_secret(settings: Any, name: str) -> str | None:
    from gateway.config import SettingsError

    path = getattr(settings, name, None)
    if not path:
        return None
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {path} ({exc.strerror})") from None
    if not value:
        raise SettingsError(f"{name}: {path} is empty")
    return value
