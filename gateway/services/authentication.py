"""Turning credentials into a Principal: bearer JWTs (OIDC or dev) and Basic with an access token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.domain.errors import Unauthenticated
from gateway.domain.identity import Principal, Role, parse_roles
from gateway.services.access_tokens import AccessTokenService
from gateway.services.ports import MembershipRepository


class TokenVerifier(Protocol):
    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid token; raises Unauthenticated otherwise."""
        ...


@dataclass
class ClaimNames:
    # `sub` is an opaque id at most IdPs; the user name is a separate claim.
    username: str = "preferred_username"
    roles: str = "roles"
    projects: str = "projects"


@dataclass
class Authenticator:
    verifier: TokenVerifier
    access_tokens: AccessTokenService
    memberships: MembershipRepository
    claims: ClaimNames
    claim_list: Callable[[Any], list[str]]

    def from_bearer(self, token: str) -> Principal:
        claims = self.verifier.verify(token)
        user = claims.get(self.claims.username)
        if not isinstance(user, str) or not user.strip():
            raise Unauthenticated(f"the token has no {self.claims.username!r} claim")
        roles = parse_roles(self.claim_list(claims.get(self.claims.roles)))
        projects = frozenset(self.claim_list(claims.get(self.claims.projects)))
        return Principal(user=user, roles=roles, projects=projects | self.memberships.projects_of(user))

    def from_basic(self, username: str, password: str) -> Principal:
        principal = self.access_tokens.authenticate(username, password)
        return Principal(
            user=principal.user,
            roles=principal.roles,
            projects=principal.projects | self.memberships.projects_of(principal.user),
        )


ANONYMOUS_ADMIN = Principal(
    user="anonymous", roles=frozenset({Role.ADMIN, Role.RESEARCHER}), projects=frozenset({"default"})
)
