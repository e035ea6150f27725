"""Opaque keyset page tokens for list endpoints."""

from __future__ import annotations

import base64
import binascii

from gateway.domain.errors import InvalidRequest

_PREFIX = "k1:"


def encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    """The sequence a token points after; InvalidRequest for anything this server did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith(_PREFIX):
            raise ValueError(raw)
        seq = int(raw[len(_PREFIX):])
        if seq < 0:
            raise ValueError(raw)
        return seq
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidRequest("page_token: not a token issued by this server") from None


def next_token(has_more: bool, last_seq: int | None) -> str | None:
    """The token of the page after one that ended at `last_seq`, or None on the last page."""
    return encode_token(last_seq) if has_more and last_seq is not None else None


def page_size(requested: int | None, default: int, cap: int) -> int:
    if requested is None:
        return default
    if requested < 1:
        raise InvalidRequest(f"page_size: must be at least 1 (got {requested})")
    return min(requested, cap)
