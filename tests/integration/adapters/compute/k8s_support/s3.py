"""moto's S3 server as a subprocess on 127.0.0.1, for the stager's real entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.pg import free_port


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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    log_path = directory / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 20
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto exited: {log_path.read_text()[-2000:]}")
            try:
                opener.open(url + "/moto-api/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)
        secrets = directory / "s3-secret"
        secrets.mkdir()
        (secrets / "access_key_id").write_text("KUBETESTKEY0001\n")
        (secrets / "secret_access_key").write_text("kube-test-secret-never-in-env-or-logs\n")
        yield MotoS3(url, secrets / "access_key_id", secrets / "secret_access_key")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
