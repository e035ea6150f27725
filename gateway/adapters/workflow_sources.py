"""Fetching a workflow document from an allow-listed source (a TRE's internal registry mirror).

Only called for URLs whose prefix an operator listed (`wes_workflow_url_prefixes`); the size cap and
timeout keep a slow or huge source from tying up a request. Proxy settings of the environment are
ignored: the allowed sources are inside the TRE.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from gateway.domain.errors import InvalidRequest

TIMEOUT_SECONDS = 10.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_workflow(url: str, max_bytes: int) -> bytes:
    """The document at `url` (http, https or file), at most `max_bytes`; InvalidRequest on any failure."""
    if not url.startswith(("http://", "https://", "file://")):
        raise InvalidRequest(f"workflow_url: {url!r}: only http, https and file URLs can be fetched")
    try:
        with _OPENER.open(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - scheme checked above
            data: bytes = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise InvalidRequest(f"workflow_url: cannot fetch {url!r}: {exc}") from None
    if len(data) > max_bytes:
        raise InvalidRequest(f"workflow_url: {url!r} is larger than {max_bytes} bytes")
    return data
