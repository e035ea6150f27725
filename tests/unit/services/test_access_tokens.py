"""Personal access tokens: mint, authenticate, revoke, expire."""

from __future__ import annotations

import hashlib

import pytest

from gateway.domain.errors import InvalidRequest, NotFound, Unauthenticated
from gateway.domain.identity import Principal, Role
from gateway.services import access_tokens
from gateway.services.access_tokens import MAX_LIFETIME, AccessTokenService
from tests.fakes import InMemoryAccessTokens

ALICE = Principal("alice", frozenset({Role.RESEARCHER, Role.OUTPUT_CHECKER}), frozenset({"p1", "p2"}))
BOB = Principal("bob", frozenset({Role.RESEARCHER}), frozenset({"p3"}))
ADMIN = Principal("root", frozenset({Role.ADMIN}), frozenset())


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo() -> InMemoryAccessTokens:
    return InMemoryAccessTokens()


@pytest.fixture
def service(repo: InMemoryAccessTokens, clock: Clock) -> AccessTokenService:
    return AccessTokenService(repo=repo, clock=clock)


def test_mint_returns_text_once_and_stores_only_a_hash(service: AccessTokenService, repo: InMemoryAccessTokens,
                                                       clock: Clock) -> None:
    text, record = service.mint(ALICE, 3600, "laptop")
    prefix, token_id, secret = text.split("_", 2)
    assert prefix == "trepat" and token_id == record.token_id
    assert len(secret) >= 40  # 256 random bits
    assert repo.find(token_id) == record
    assert record.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(record)
    assert record.user == "alice"
    assert record.roles == ("output_checker", "researcher")
    assert record.projects == ("p1", "p2")
    assert (record.created_at, record.expires_at) == (clock.now, clock.now + 3600)
    assert record.description == "laptop" and record.revoked_at is None


def test_each_mint_is_a_new_token(service: AccessTokenService) -> None:
    (a, ra), (b, rb) = service.mint(ALICE, 60), service.mint(ALICE, 60)
    assert a != b and ra.token_id != rb.token_id


def test_description_is_truncated(service: AccessTokenService) -> None:
    assert len(service.mint(ALICE, 60, "x" * 1000)[1].description) == 200


@pytest.mark.parametrize("lifetime", [60, 3600, MAX_LIFETIME])
def test_lifetime_within_bounds(service: AccessTokenService, lifetime: int) -> None:
    service.mint(ALICE, lifetime)


@pytest.mark.parametrize("lifetime", [-1, 0, 59, MAX_LIFETIME + 1])
def test_lifetime_out_of_bounds(service: AccessTokenService, repo: InMemoryAccessTokens, lifetime: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        service.mint(ALICE, lifetime)
    assert "lifetime_seconds" in info.value.msg
    assert repo.tokens == {}


def test_authenticate_gives_back_the_minted_identity(service: AccessTokenService) -> None:
    text, _ = service.mint(ALICE, 3600)
    principal = service.authenticate("alice", text)
    assert principal == Principal("alice", ALICE.roles, ALICE.projects)
    assert principal.service is False


def test_secret_with_underscores_is_read_whole(service: AccessTokenService,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_tokens.secrets, "token_urlsafe", lambda n: "se_cr_et_")
    text, record = service.mint(ALICE, 3600)
    assert text == f"trepat_{record.token_id}_se_cr_et_"
    assert service.authenticate("alice", text).user == "alice"
    with pytest.raises(Unauthenticated):
        service.authenticate("alice", f"trepat_{record.token_id}_se")


def test_wrong_user_is_refused(service: AccessTokenService) -> None:
    text, _ = service.mint(ALICE, 3600)
    with pytest.raises(Unauthenticated) as info:
        service.authenticate("bob", text)
    assert info.value.msg == "unknown access token or wrong user name"


def test_wrong_secret_is_refused(service: AccessTokenService) -> None:
    text, _ = service.mint(ALICE, 3600)
    with pytest.raises(Unauthenticated):
        service.authenticate("alice", text[:-1] + ("A" if text[-1] != "A" else "B"))


@pytest.mark.parametrize(
    "text",
    ["", "trepat", "trepat_abc", "password", "ghp_abc_def", "TREPAT_x_y", "trepat__", "trepat_nosuchid_secret"],
)
def test_malformed_or_unknown_token_text(service: AccessTokenService, text: str) -> None:
    service.mint(ALICE, 3600)
    with pytest.raises(Unauthenticated):
        service.authenticate("alice", text)


def test_expiry_is_exact(service: AccessTokenService, clock: Clock) -> None:
    text, _ = service.mint(ALICE, 60)
    clock.now += 59.999
    assert service.authenticate("alice", text).user == "alice"
    clock.now += 0.001
    with pytest.raises(Unauthenticated) as info:
        service.authenticate("alice", text)
    assert "expired" in info.value.msg


def test_revoke_stops_the_token(service: AccessTokenService, repo: InMemoryAccessTokens, clock: Clock) -> None:
    text, record = service.mint(ALICE, 3600)
    other_text, _ = service.mint(ALICE, 3600)
    clock.now += 10
    service.revoke(ALICE, record.token_id)
    assert repo.find(record.token_id).revoked_at == clock.now
    with pytest.raises(Unauthenticated) as info:
        service.authenticate("alice", text)
    assert "revoked" in info.value.msg
    assert service.authenticate("alice", other_text).user == "alice"


def test_revoke_twice_is_harmless(service: AccessTokenService, repo: InMemoryAccessTokens, clock: Clock) -> None:
    _, record = service.mint(ALICE, 3600)
    service.revoke(ALICE, record.token_id)
    first = repo.find(record.token_id).revoked_at
    clock.now += 5
    service.revoke(ALICE, record.token_id)
    assert repo.find(record.token_id).revoked_at == first


def test_others_cannot_revoke_but_admins_can(service: AccessTokenService, repo: InMemoryAccessTokens) -> None:
    _, record = service.mint(ALICE, 3600)
    with pytest.raises(NotFound):
        service.revoke(BOB, record.token_id)
    assert repo.find(record.token_id).revoked_at is None
    service.revoke(ADMIN, record.token_id)
    assert repo.find(record.token_id).revoked_at is not None


def test_revoke_unknown_is_not_found(service: AccessTokenService) -> None:
    with pytest.raises(NotFound):
        service.revoke(ALICE, "0123456789abcdef")


def test_list_for_shows_own_tokens_only(service: AccessTokenService, clock: Clock) -> None:
    _, a1 = service.mint(ALICE, 60)
    clock.now += 1
    _, a2 = service.mint(ALICE, 60)
    service.mint(BOB, 60)
    assert [t.token_id for t in service.list_for(ALICE)] == [a1.token_id, a2.token_id]
