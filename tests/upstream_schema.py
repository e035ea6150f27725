"""What every check against an upstream GA4GH document shares: where the documents are, how remote
`$ref`s are refused, and the `date-time`/`uri` format checks jsonschema leaves to optional extras."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
from referencing import Resource
from referencing.exceptions import NoSuchResource

REPO = Path(__file__).resolve().parents[1]
# The repository's parent folder holds `shared/` (never an absolute machine path here).
SPECS_DIR = REPO / ".." / "shared" / "specs"
UPSTREAM_SERVICE_INFO = SPECS_DIR / "ga4gh-service-info.v1.0.0.yaml"
# How upstream GA4GH documents name the service-info schemas; mapped to the local copy above.
SERVICE_INFO_URL = (
    "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml"
)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def refuse_remote(uri: str) -> Resource[Any]:
    """Every $ref must resolve to a document registered by the caller; nothing is ever fetched."""
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def format_checker() -> jsonschema.FormatChecker:
    """Draft 4's checker plus `date-time` and `uri`, which jsonschema checks only with optional extras."""
    checker = jsonschema.FormatChecker(list(jsonschema.Draft4Validator.FORMAT_CHECKER.checkers))

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            return False
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # rejects impossible dates and times
        return True

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return bool(urlparse(value).scheme) and " " not in value

    return checker
