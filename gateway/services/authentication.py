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


class CachedMemberships:
    """Memberships remembered for `ttl` seconds per user: they are read on every request, change rarely.

    A change made through this object is seen at once; one made by another process within `ttl`.
    """

    def __init__(self, inner: MembershipRepository, ttl: float, clock: Callable[[], float]) -> None:
        self.inner, self.ttl, self.clock = inner, ttl, clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def projects_of(self, user: str) -> frozenset[str]:
        now = self.clock()
        hit = self._cache.get(user)
        if hit is not None and hit[0] > now:
            return hit[1]
        projects = self.inner.projects_of(user)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[user] = (now + self.ttl, projects)
        return projects

    def add_member(self, project: str, user: str) -> None:
        self.inner.add_member(project, user)
        self._cache.pop(user, None)


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
