"""Handlers of the gateway's account API: identity and personal access tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.bootstrap import Components
from gateway.services.ports import AccessToken


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def token_document(t: AccessToken) -> dict[str, Any]:
    return {
        "token_id": t.token_id,
        "user": t.user,
        "roles": list(t.roles),
        "projects": list(t.projects),
        "created_at": _iso(t.created_at),
        "expires_at": _iso(t.expires_at),
        "revoked": t.revoked_at is not None,
        "description": t.description,
    }


def handlers(c: Components) -> dict[str, Callable[..., Any]]:
    def WhoAmI(token_info: dict[str, Any]) -> dict[str, Any]:
        p = token_info["principal"]
        return {"user": p.user, "roles": sorted(r.value for r in p.roles), "projects": sorted(p.projects)}

    def ListAccessTokens(token_info: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": [token_document(t) for t in c.access_tokens.list_for(token_info["principal"])]}

    def CreateAccessToken(body: dict[str, Any], token_info: dict[str, Any]) -> dict[str, Any]:
        text, record = c.access_tokens.mint(
            token_info["principal"], int(body.get("lifetime_seconds", 2592000)), body.get("description", "")
        )
        return {**token_document(record), "token": text}

    def RevokeAccessToken(token_id: str, token_info: dict[str, Any]) -> dict[str, Any]:
        c.access_tokens.revoke(token_info["principal"], token_id)
        return {}

    return {
        "WhoAmI": WhoAmI,
        "ListAccessTokens": ListAccessTokens,
        "CreateAccessToken": CreateAccessToken,
        "RevokeAccessToken": RevokeAccessToken,
    }
