"""moto's S3 server as a subprocess on 127.0.0.1, for the stager's real entry point."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.moto import moto_server


@dataclass(frozen=True)
class MotoS3:
    url: str
    key_file: Path
    secret_file: Path

    def settings(self, bucket: str) -> dict[str, str]:
        """TRE_GATEWAY_* variables for the stager, as the backend puts them in the stager pod."""
        return {
            "TRE_GATEWAY_OBJECT_STORE": "s3",
            "TRE_GATEWAY_S3_BUCKET": bucket,
            "TRE_GATEWAY_S3_ENDPOINT_URL": self.url,
            "TRE_GATEWAY_S3_REGION": "us-east-1",
        }


@contextmanager
def moto_s3(directory: Path) -> Iterator[MotoS3]:
    with moto_server(directory, start_timeout=20) as url:
        secrets = directory / "s3-secret"
        secrets.mkdir()
        (secrets / "access_key_id").write_text("KUBETESTKEY0001\n")
        (secrets / "secret_access_key").write_text("kube-test-secret-never-in-env-or-logs\n")
        yield MotoS3(url, secrets / "access_key_id", secrets / "secret_access_key")
