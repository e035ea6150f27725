"""A moto S3 server for tests: a subprocess on a free loopback port, with proxies ignored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.pg import free_port


@contextmanager
def moto_server(log_dir: Path, start_timeout: float = 60.0) -> Iterator[str]:
    """Yield the server's URL; stop it afterwards. Fails with moto's log if it exits or does not answer."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                opener.open(url + "/moto-api/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not answer on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
