"""Absolute URLs the API hands out (log streams, TES tasks, crates): the public URL when one is set,
else the host the caller reached."""

from __future__ import annotations

from flask import request

from gateway.bootstrap import Components


def site_url(c: Components) -> str:
    return (c.settings.public_url or request.host_url).rstrip("/")
