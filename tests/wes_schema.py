"""Validate JSON bodies against the upstream GA4GH WES 1.1.0 schemas (and against our own wes.yaml).

`validate_wes_upstream("RunLog", body)` checks `body` against components/schemas/RunLog of the upstream
WES 1.1.0 OpenAPI document in ../shared/specs. Nothing is ever fetched: the upstream document is the
variant whose service-info `$ref` points at the vendored service-info file next to it, and every `$ref`
must resolve to one of the local documents registered here (the service-info URL of the non-vendored
variant is mapped to the same local copy).

OpenAPI 3.0 schemas are JSON Schema draft 4 plus a few keywords; the one that changes what is valid,
`nullable: true`, is translated into a `null` alternative of the schema's type before validating.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.upstream_schema import (
    REPO,
    SERVICE_INFO_URL,
    SPECS_DIR,
    UPSTREAM_SERVICE_INFO,
    format_checker,
    refuse_remote,
)

UPSTREAM_WES = SPECS_DIR / "workflow_execution_service.openapi.1.1.0.vendored-service-info.yaml"
OUR_WES = REPO / "openapi" / "wes.yaml"
OURS_URI = "urn:tre-gateway-tests:wes-ours"


def _openapi_to_draft4(node: Any) -> Any:
    """A copy of an OpenAPI 3.0 document in which `nullable: true` schemas also accept null."""
    if isinstance(node, list):
        return [_openapi_to_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _openapi_to_draft4(value) for key, value in node.items()}
    if out.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "type" not in out and ("$ref" in out or "allOf" in out or "anyOf" in out or "oneOf" in out):
            out = {"anyOf": [{key: value for key, value in out.items() if key != "nullable"}, {"type": "null"}]}
    return out


def _load(path: Path) -> dict[str, Any]:
    return _openapi_to_draft4(yaml.safe_load(path.read_text()))  # type: ignore[no-any-return]


def _upstream_uri() -> str:
    return UPSTREAM_WES.resolve().as_uri()


def _load_registry() -> Registry:
    wes = _load(UPSTREAM_WES)
    service_info = DRAFT4.create_resource(_load(UPSTREAM_SERVICE_INFO))
    ours = _load(OUR_WES) if OUR_WES.exists() else {}
    return Registry(retrieve=refuse_remote).with_resources(  # type: ignore[call-arg]
        [
            (_upstream_uri(), DRAFT4.create_resource(wes)),
            # The vendored document's relative `$ref` resolves next to it, i.e. to this URI.
            (UPSTREAM_SERVICE_INFO.resolve().as_uri(), service_info),
            (SERVICE_INFO_URL, service_info),
            (OURS_URI, DRAFT4.create_resource(copy.deepcopy(ours))),
        ]
    )


_REGISTRY = _load_registry()
_FORMATS = format_checker()


def _validate(uri: str, schema_name: str, body: Any) -> None:
    schema = {"$ref": f"{uri}#/components/schemas/{schema_name}"}
    validator = jsonschema.Draft4Validator(schema, registry=_REGISTRY, format_checker=_FORMATS)
    validator.validate(body)


def validate_wes_upstream(schema_name: str, body: Any) -> None:
    """Validate `body` against components/schemas/<schema_name> of the upstream WES 1.1.0 document.

    Raises jsonschema.ValidationError (with the failing path) when the body does not conform, and
    referencing.exceptions.Unresolvable for a schema name upstream does not define.
    """
    _validate(_upstream_uri(), schema_name, body)


def validate_wes_ours(schema_name: str, body: Any) -> None:
    """Validate `body` against components/schemas/<schema_name> of our openapi/wes.yaml."""
    _validate(OURS_URI, schema_name, body)
