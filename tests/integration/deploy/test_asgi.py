"""gateway.asgi:app_from_env() under the server the chart runs: gunicorn with uvicorn workers, with the chart's own
command line (only the bind address and the temp dir changed), on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import SettingsError
from tests.integration.deploy.conftest import PROFILES, Helm
from tests.pg import free_port

GUNICORN = Path(sys.executable).parent / "gunicorn"


def chart_api_pod(helm: Helm) -> dict[str, Any]:
    (api,) = [o for o in helm.objects(PROFILES["default"])
              if o["kind"] == "Deployment" and o["metadata"]["name"] == "tre-gateway-api"]
    return dict(api["spec"]["template"]["spec"])


def test_nothing_is_built_at_import(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code = "import gateway.asgi as m; assert not hasattr(m, 'app') and not hasattr(m, 'application')"
    env = {**os.environ, "TRE_GATEWAY_DATA_DIR": str(data)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert not data.exists(), "importing gateway.asgi touched the data directory"


def test_bad_settings_stop_it_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.asgi import app_from_env

    with pytest.raises(SettingsError):
        app_from_env({"TRE_GATEWAY_AUTH": "ldap"})
    assert "configuration error: auth" in capsys.readouterr().err


def test_gunicorn_serves_the_factory_with_the_charts_command(helm: Helm, tmp_path: Path) -> None:
    """As in an API pod: the init container migrates, then gunicorn starts its processes. (Without the migration
    first, two processes starting at once race to create the schema and one of them fails to boot.)"""
    pod = chart_api_pod(helm)
    (migrate,) = pod["initContainers"]
    (server,) = pod["containers"]
    argv = [*server["command"], *server["args"]]
    assert argv[0] == "gunicorn" and migrate["command"][0] == "tre-gateway"
    port = free_port()
    argv = [str(GUNICORN)] + [
        f"--bind=127.0.0.1:{port}" if a.startswith("--bind=")
        else f"--worker-tmp-dir={tmp_path}" if a.startswith("--worker-tmp-dir=")
        else a
        for a in argv[1:]
    ] + ["--workers=2"]
    env = {
        **os.environ,
        "TRE_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "TRE_GATEWAY_AUTH": "dev",
        "TRE_GATEWAY_LOG_JSON": "false",
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    bindir = Path(sys.executable).parent
    subprocess.run([str(bindir / migrate["command"][0]), *migrate["command"][1:]], env=env, check=True,
                   capture_output=True, timeout=120)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_healthy(base, proc, log)
        assert health.json() == {"status": "ok"}
        assert httpx.get(base + "/metrics", timeout=5).text.startswith("# HELP")
        # The API is up and authenticates: no token, no tasks.
        assert httpx.get(base + "/ga4gh/tes/v1/tasks", timeout=5).status_code == 401
        info = httpx.get(base + "/ga4gh/tes/v1/service-info", timeout=5)
        assert info.status_code == 200, info.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "uvicorn.workers.UvicornWorker" in text
    assert text.count("Booting worker") == 2
    assert "Traceback" not in text, text[-3000:]


def _wait_healthy(base: str, proc: subprocess.Popen[Any], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            response = httpx.get(base + "/healthz", timeout=1)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("gunicorn did not become healthy:\n" + log.read_text(errors="replace")[-3000:])
