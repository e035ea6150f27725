"""The JSON-LD contexts crates name, served from files bundled with the package: nothing is fetched.

rdflib would download any remote context it meets. Before a document reaches it, every context URL in
the document (anywhere, not only at the top) is replaced by the bundled context's content, and a URL
that is not bundled is refused: a crate cannot make the gateway open a network connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from gateway.domain.errors import InvalidRequest

# Context URL (as crates write it, without a trailing slash) -> bundled file under data/contexts/.
_BUNDLED = {
    "https://w3id.org/ro/crate/1.1/context": "ro-crate-1.1.json",
    "https://w3id.org/ro/crate/1.2/context": "ro-crate-1.2.json",
    # The draft context was superseded by 1.2; see data/contexts/SOURCE.txt.
    "https://w3id.org/ro/crate/1.2-DRAFT/context": "ro-crate-1.2.json",
    "https://w3id.org/ro/terms/workflow-run/context": "workflow-run.json",
}


def bundled_context_urls() -> frozenset[str]:
    return frozenset(_BUNDLED)


@cache
def _load(file_name: str) -> Any:
    text = resources.files("gateway.adapters.crates").joinpath("data", "contexts", file_name).read_text("utf-8")
    return json.loads(text)["@context"]


def bundled_context(url: str) -> Any:
    """The `@context` value of the bundled document for `url`; InvalidRequest when it is not bundled."""
    key = _normalise(url)
    if key not in _BUNDLED:
        known = ", ".join(sorted(_BUNDLED))
        raise InvalidRequest(
            f"@context {url!r} is not one this gateway knows (it never fetches contexts); known: {known}"
        )
    return json.loads(json.dumps(_load(_BUNDLED[key])))  # a private copy: callers may change it


def inline_contexts(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `document` with every remote context replaced by its bundled content.

    Handles contexts given as a URL, a list, or an object, at any depth, including `@import`.
    Raises InvalidRequest for a context URL that is not bundled.
    """
    return {key: _inline_value(key, value) for key, value in document.items()}


def _inline_value(key: str, value: Any) -> Any:
    if key == "@context":
        return _inline_context(value)
    if isinstance(value, dict):
        return {k: _inline_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_inline_value("", v) for v in value]
    return value


def _inline_context(context: Any, depth: int = 0) -> Any:
    if depth > 8:  # bundled contexts nest at most twice; deeper means a loop
        raise InvalidRequest("@context nests too deeply")
    if isinstance(context, str):
        return _inline_context(bundled_context(context), depth + 1)
    if isinstance(context, list):
        return [_inline_context(c, depth) for c in context]
    if isinstance(context, dict):
        inlined = dict(context)
        imported = inlined.pop("@import", None)
        # Scoped contexts inside term definitions may name remote contexts too.
        for term, definition in inlined.items():
            if isinstance(definition, dict) and "@context" in definition:
                inlined[term] = {**definition, "@context": _inline_context(definition["@context"], depth + 1)}
        if imported is None:
            return inlined
        if not isinstance(imported, str):
            raise InvalidRequest("@import in a @context must be a URL")
        base = _inline_context(imported, depth + 1)
        if not isinstance(base, dict):
            raise InvalidRequest(f"@import {imported!r} must name a context object")
        return {**base, **inlined}
    return context  # null resets the context; anything else is left for the JSON-LD parser to reject


def _normalise(url: str) -> str:
    url = url.strip().rstrip("/")
    # Crates write both http and https for w3id.org; the bundled files are the same either way.
    return "https://" + url.removeprefix("http://") if url.startswith("http://w3id.org/") else url
