"""Bearer JWT verification: OpenID Connect (RS*/ES* via JWKS or a PEM key) or dev mode (HS256).

Nothing is fetched at start-up: the OIDC discovery document and JWKS are read on first use and
cached by PyJWT's client.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from gateway.domain.errors import Unauthenticated

ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


def claim_list(value: Any) -> list[str]:
    """Claims arrive as JSON lists or as comma- or space-separated strings, depending on the IdP."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(" ", ",").split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def load_or_create_dev_secret(path: Path) -> str:
    """The dev-mode signing secret, generated once (mode 0600) in the data directory."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


@dataclass
class JwtVerifier:
    """Verifies signature, expiry, issuer and audience; returns the claims."""

    mode: str  # "dev" or "oidc"
    dev_secret: str | None = None
    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    public_key_pem: str | None = None
    leeway: float = 30.0
    _jwks: Any = field(default=None, init=False)
    # Verified tokens until they expire: clients send the same token with every request.
    _verified: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict, init=False)

    def _key(self, token: str) -> Any:
        if self.mode == "dev":
            return self.dev_secret
        if self.public_key_pem:
            return self.public_key_pem
        if self._jwks is None:
            url = self.jwks_url or self._discover_jwks()
            self._jwks = jwt.PyJWKClient(url, cache_keys=True, lifespan=300)
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(f"signing key not found: {exc}") from exc

    def _discover_jwks(self) -> str:
        if not self.issuer:
            raise Unauthenticated("OIDC is configured without issuer or JWKS URL")
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - the TRE's own IdP
            return str(json.load(resp)["jwks_uri"])

    def verify(self, token: str) -> dict[str, Any]:
        hit = self._verified.get(token)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        claims = self._verify(token)
        if len(self._verified) >= 4096:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), claims)
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            key = self._key(token)
            options = {"require": ["exp"], "verify_aud": self.audience is not None}
            return jwt.decode(
                token,
                key,
                algorithms=["HS256"] if self.mode == "dev" else ASYMMETRIC,
                audience=self.audience,
                issuer=self.issuer if self.mode == "oidc" else None,
                leeway=self.leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        except OSError as exc:
            raise Unauthenticated(f"the identity provider could not be reached: {exc}") from None


def mint_dev_token(
    secret: str,
    user: str,
    projects: list[str],
    roles: list[str],
    lifetime_seconds: int = 12 * 3600,
    audience: str | None = None,
) -> str:
    """A dev-mode token with the same claim layout an OIDC provider would send."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "dev-" + secrets.token_hex(6),  # deliberately not the user name, as with real IdPs
        "preferred_username": user,
        "roles": roles,
        "projects": projects,
        "iat": now,
        "exp": now + lifetime_seconds,
        "iss": "tre-gateway-dev",
    }
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
