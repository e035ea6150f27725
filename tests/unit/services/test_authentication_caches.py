"""The per-request caches of authentication: memberships and verified tokens."""

import time

import jwt
import pytest

from gateway.adapters.auth.jwt_tokens import JwtVerifier
from gateway.domain.errors import Unauthenticated
from gateway.services.authentication import CachedMemberships
from tests.fakes import InMemoryMemberships


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_memberships_are_cached_for_the_ttl_and_local_changes_show_at_once():
    inner, clock = InMemoryMemberships(), Clock()
    cached = CachedMemberships(inner, ttl=30, clock=clock)
    inner.add_member("p1", "alice")
    assert cached.projects_of("alice") == {"p1"}
    inner.add_member("p2", "alice")  # another process changed it
    assert cached.projects_of("alice") == {"p1"}
    clock.t = 31
    assert cached.projects_of("alice") == {"p1", "p2"}
    cached.add_member("p3", "alice")
    assert cached.projects_of("alice") == {"p1", "p2", "p3"}


def test_a_cached_token_stops_working_when_it_expires():
    verifier = JwtVerifier(mode="dev", dev_secret="s" * 32, leeway=0)
    token = jwt.encode({"preferred_username": "a", "exp": int(time.time()) + 2}, "s" * 32, algorithm="HS256")
    assert verifier.verify(token)["preferred_username"] == "a"
    assert verifier.verify(token)["preferred_username"] == "a"  # from the cache
    time.sleep(2.1)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)


def test_the_cache_never_accepts_a_different_token():
    verifier = JwtVerifier(mode="dev", dev_secret="s" * 32)
    good = jwt.encode({"preferred_username": "a", "exp": int(time.time()) + 60}, "s" * 32, algorithm="HS256")
    verifier.verify(good)
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    with pytest.raises(Unauthenticated):
        verifier.verify(forged)
