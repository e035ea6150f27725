"""Personal access tokens: revocable, expiring secrets for clients that can only send HTTP Basic.

The token is shown once at creation; only a SHA-256 of its secret is stored (the secret is 256
random bits, so a slow password hash would add nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain.errors import InvalidRequest, NotFound, Unauthenticated
from gateway.domain.identity import Principal, parse_roles
from gateway.services.ports import AccessToken, AccessTokenRepository

PREFIX = "trepat"
MAX_LIFETIME = 365 * 24 * 3600


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class AccessTokenService:
    repo: AccessTokenRepository
    clock: Callable[[], float]

    def mint(
        self, principal: Principal, lifetime_seconds: int, description: str = ""
    ) -> tuple[str, AccessToken]:
        """A new token carrying the caller's current roles and projects; returns (token text, record)."""
        if not 60 <= lifetime_seconds <= MAX_LIFETIME:
            raise InvalidRequest(f"lifetime_seconds: must be between 60 and {MAX_LIFETIME}")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        record = AccessToken(
            token_id=token_id,
            user=principal.user,
            secret_hash=_hash(secret),
            roles=tuple(sorted(r.value for r in principal.roles)),
            projects=tuple(sorted(principal.projects)),
            created_at=now,
            expires_at=now + lifetime_seconds,
            description=description[:200],
        )
        self.repo.add(record)
        return f"{PREFIX}_{token_id}_{secret}", record

    def authenticate(self, username: str, token: str) -> Principal:
        """The principal behind `token` if it is current and was issued to `username`."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise Unauthenticated("the password is not a personal access token of this gateway")
        record = self.repo.find(parts[1])
        if (
            record is None
            or record.user != username
            or not hmac.compare_digest(record.secret_hash, _hash(parts[2]))
        ):
            raise Unauthenticated("unknown access token or wrong user name")
        if record.revoked_at is not None:
            raise Unauthenticated("this access token has been revoked")
        if record.expires_at <= self.clock():
            raise Unauthenticated("this access token has expired")
        return Principal(
            user=record.user, roles=parse_roles(list(record.roles)), projects=frozenset(record.projects)
        )

    def list_for(self, principal: Principal) -> list[AccessToken]:
        return self.repo.for_user(principal.user)

    def revoke(self, principal: Principal, token_id: str) -> None:
        record = self.repo.find(token_id)
        if record is None or (record.user != principal.user and not principal.is_admin):
            raise NotFound(f"access token {token_id!r} not found")
        self.repo.revoke(token_id, self.clock())
