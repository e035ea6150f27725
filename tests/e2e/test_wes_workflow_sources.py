"""workflow_url naming a TRE's own workflow registry mirror: fetched only under an allowed prefix."""

from __future__ import annotations

import http.server
import threading
import time
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess
from tests.pg import free_port

pytestmark = pytest.mark.podman

WORKFLOWS = Path(__file__).parent / "workflows"


class _Recorder(http.server.SimpleHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        type(self).paths.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


def test_workflow_fetched_from_an_allowed_mirror_only(gateway_factory) -> None:
    port = free_port()
    _Recorder.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), partial(_Recorder, directory=str(WORKFLOWS)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        allowed = f"http://127.0.0.1:{port}/tools/"
        gw: GatewayProcess = gateway_factory(egress_review="automatic", wes_workflow_url_prefixes=allowed)
        gw.start()
        client = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token()}"})
        form = {"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_params": '{"name": "ada"}'}

        def multipart(url: str) -> dict[str, tuple[None, str]]:
            # No attachments, but still multipart/form-data as WES asks.
            return {k: (None, v) for k, v in {**form, "workflow_url": url}.items()}

        refused = client.post("/ga4gh/wes/v1/runs", files=multipart(f"http://127.0.0.1:{port}/echo.cwl"))
        assert refused.status_code == 400 and "workflow_url" in refused.json()["msg"]
        assert _Recorder.paths == []  # nothing outside the allowed prefix is ever requested

        created = client.post("/ga4gh/wes/v1/runs", files=multipart(allowed + "greet.cwl"))
        assert created.status_code == 200, created.text
        run_id = created.json()["run_id"]
        assert _Recorder.paths == ["/tools/greet.cwl"]
        deadline = time.monotonic() + 90
        while (log := client.get(f"/ga4gh/wes/v1/runs/{run_id}").json())["state"] != "COMPLETE":
            assert log["state"] in ("QUEUED", "INITIALIZING", "RUNNING"), client.get(log["run_log"]["stderr"]).text
            assert time.monotonic() < deadline
            time.sleep(0.25)
        assert log["outputs"]["greeting"]["basename"] == "greeting.txt"
        assert log["outputs"]["greeting"]["size"] == len("hello ada\n")
    finally:
        server.shutdown()
