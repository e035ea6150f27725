"""Connexion security handlers bound to the app's Authenticator (no module-level state)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connexion.exceptions import OAuthProblem
from connexion.security import NO_VALUE, BasicSecurityHandler, BearerSecurityHandler

from gateway.domain.errors import Unauthenticated
from gateway.domain.identity import Principal
from gateway.services.authentication import ANONYMOUS_ADMIN, Authenticator
from gateway.services.runs import CREDENTIAL_PREFIX

log = logging.getLogger(__name__)


def _token_info(principal: Principal) -> dict[str, Any]:
    return {"sub": principal.user, "principal": principal}


def security_map(
    authenticator: Authenticator | None, engine_principal: Callable[[str], Principal] | None = None
) -> dict[str, type]:
    """Handler classes for the `bearer` and `basic` schemes; with no authenticator, auth is off.

    A workflow engine's run credential (`tre-run.<run>.<secret>`) is honoured in every mode: even with
    auth off, an engine must stay confined to its own run.
    """

    def engine(token: str) -> dict[str, Any]:
        if engine_principal is None:
            raise OAuthProblem(detail="workflow engine credentials are not accepted here")
        try:
            return _token_info(engine_principal(token))
        except Unauthenticated as exc:
            raise OAuthProblem(detail=exc.msg) from None

    def bearer(token: str) -> dict[str, Any]:
        assert authenticator is not None
        if token.startswith(CREDENTIAL_PREFIX):
            return engine(token)
        try:
            return _token_info(authenticator.from_bearer(token))
        except Unauthenticated as exc:
            raise OAuthProblem(detail=exc.msg) from None

    def basic(username: str, password: str) -> dict[str, Any]:
        assert authenticator is not None
        try:
            return _token_info(authenticator.from_basic(username, password))
        except Unauthenticated as exc:
            raise OAuthProblem(detail=exc.msg) from None

    if authenticator is None:

        class OpenHandler(BearerSecurityHandler):
            def _resolve_func(self, security_scheme):  # type: ignore[no-untyped-def]
                return lambda *a, **k: _token_info(ANONYMOUS_ADMIN)

            def _get_verify_func(self, function):  # type: ignore[no-untyped-def]
                def verify(request):  # type: ignore[no-untyped-def]
                    header = request.headers.get("Authorization", "")
                    if header.startswith("Bearer " + CREDENTIAL_PREFIX):
                        return engine(header[len("Bearer "):])
                    return _token_info(ANONYMOUS_ADMIN)

                return verify

        return {"bearer": OpenHandler, "basic": OpenHandler}

    class GatewayBearer(BearerSecurityHandler):
        def _resolve_func(self, security_scheme):  # type: ignore[no-untyped-def]
            return bearer

    class GatewayBasic(BasicSecurityHandler):
        def _resolve_func(self, security_scheme):  # type: ignore[no-untyped-def]
            return basic

    return {"bearer": GatewayBearer, "basic": GatewayBasic}


__all__ = ["security_map", "NO_VALUE"]
