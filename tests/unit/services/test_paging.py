"""Opaque keyset page tokens and page sizes."""

from __future__ import annotations

import base64

import pytest

from gateway.domain.errors import InvalidRequest
from gateway.services.paging import decode_token, encode_token, page_size


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("seq", [0, 1, 2, 3, 255, 2**31, 2**63 - 1])
def test_token_round_trip(seq: int) -> None:
    token = encode_token(seq)
    assert decode_token(token) == seq
    assert "=" not in token  # safe in a query string without escaping


def test_tokens_differ_per_sequence() -> None:
    assert len({encode_token(n) for n in range(100)}) == 100


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "%%%%",
        b64("k1:"),
        b64("k1:abc"),
        b64("k1:-1"),
        b64("k2:5"),
        b64("5"),
        base64.urlsafe_b64encode(b"k1:\xff").decode(),
        "a",  # impossible base64 length
    ],
)
def test_garbage_is_invalid_request(token: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_token(token)
    assert info.value.msg == "page_token: not a token issued by this server"


def test_padding_is_optional() -> None:
    token = encode_token(42)
    assert decode_token(token + "=" * (-len(token) % 4)) == 42


@pytest.mark.parametrize("requested, expected", [(None, 256), (1, 1), (10, 10), (2047, 2047), (5000, 2047)])
def test_page_size(requested: int | None, expected: int) -> None:
    assert page_size(requested, 256, 2047) == expected


@pytest.mark.parametrize("requested", [0, -1])
def test_page_size_must_be_positive(requested: int) -> None:
    with pytest.raises(InvalidRequest):
        page_size(requested, 256, 2047)
