"""A real OpenID Connect provider (LemonLDAP::NG) on loopback, started once per session.

`scripts/oidc-provider.sh` installs it if missing (Debian packages), writes its configuration into a
temporary directory and serves it on a free 127.0.0.1 port. If it cannot be installed or started the
tests fail; set TRE_GATEWAY_SKIP_OIDC=1 to skip them instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.pg import free_port

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "oidc-provider.sh"
SKIP_VARIABLE = "TRE_GATEWAY_SKIP_OIDC"

# Fixed by the script's configuration.
GATEWAY_CLIENT = ("tre-gateway", "tre-gateway-secret")
OTHER_CLIENT = ("other-app", "other-app-secret")


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    token_endpoint: str

    def token(self, user: str, client: tuple[str, str] = GATEWAY_CLIENT, password: str | None = None) -> str:
        """A real access token (a signed JWT) for a Demo user, by the resource-owner password grant."""
        with httpx.Client(trust_env=False, timeout=10) as http:
            resp = http.post(
                self.token_endpoint,
                auth=client,
                data={
                    "grant_type": "password",
                    "username": user,
                    "password": user if password is None else password,
                    "scope": "openid profile email",
                },
            )
        resp.raise_for_status()
        return str(resp.json()["access_token"])


def _unavailable(message: str) -> None:
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{message} ({SKIP_VARIABLE}=1)")
    pytest.fail(f"{message}; set {SKIP_VARIABLE}=1 to skip the OIDC provider tests", pytrace=False)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    workdir = tmp_path_factory.mktemp("oidc-provider")
    port = free_port()
    try:
        # The first run may install the Debian packages (about half a minute).
        proc = subprocess.run(
            ["bash", str(SCRIPT), "start", str(workdir), str(port)],
            capture_output=True, text=True, timeout=900, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"the OIDC provider could not be started: {exc}")
    if proc.returncode != 0:
        _unavailable(f"the OIDC provider could not be installed or started:\n{proc.stderr[-4000:]}")
    issuer = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            discovery = http.get(issuer + "/.well-known/openid-configuration").json()
        yield OidcProvider(issuer=issuer, token_endpoint=discovery["token_endpoint"])
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(workdir)], capture_output=True, timeout=60, check=False)
