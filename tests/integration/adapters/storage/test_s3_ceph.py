"""The S3 object store against a real Ceph RADOS Gateway (one mon, one memstore OSD) on 127.0.0.1.

Only with `-m ceph` (skipped otherwise): scripts/ceph-rgw.sh starts Ceph (about 15 s) unless it is already
running, and the session stops it again if it started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.adapters.storage.s3_support import S3Endpoint, S3ServerChecks, S3StoreChecks

pytestmark = pytest.mark.ceph

SCRIPT = Path(__file__).resolve().parents[4] / "scripts" / "ceph-rgw.sh"


def _read_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _answers(endpoint: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(endpoint + "/", timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def s3_endpoint(request: pytest.FixtureRequest) -> Iterator[S3Endpoint]:
    if "ceph" not in (request.config.option.markexpr or ""):
        pytest.skip("starts Ceph (about 15 s): run with -m ceph")
    if not all(shutil.which(b) for b in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin")):
        pytest.fail("Ceph is not installed (make test-s3 installs it: apt-get install --no-install-recommends "
                    "ceph-mon ceph-osd radosgw ceph-common)")
    env_file = Path(os.environ.get("CEPH_RGW_DIR", "/tmp/tre-ceph-rgw")) / "env"
    running_before = env_file.exists() and _answers(_read_env(env_file.read_text()).get("CEPH_RGW_ENDPOINT", ""))
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        pytest.fail(f"scripts/ceph-rgw.sh start failed:\n{started.stderr[-3000:]}")
    env = _read_env(started.stdout)
    try:
        yield S3Endpoint(
            env["CEPH_RGW_ENDPOINT"], env["CEPH_RGW_ACCESS_KEY"], env["CEPH_RGW_SECRET_KEY"],
            # Ceph 16 (Debian 12) ignores x-amz-checksum-* and HEAD's partNumber.
            checks_signatures=True, stores_checksums=False, reports_parts=False,
        )
    finally:
        if not running_before:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)


class TestS3ObjectStoreOnCeph(S3StoreChecks):
    pass


class TestS3ObjectStoreOnCephWithAPrefix(S3StoreChecks):
    prefix = "tre/"


class TestS3ServerOnCeph(S3ServerChecks):
    pass
