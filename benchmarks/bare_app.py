"""The latency baseline: a bare connexion app serving openapi/tes.yaml with constant handlers.

Same framework, same specification, same validation settings (strict request validation and response
validation) as the gateway, but no authentication, no database and no domain logic. Each handler
returns a fixed document, by default the very documents the gateway returned for the same requests,
so response validation costs the same on both sides.

    python -m benchmarks.bare_app --port 8123 --documents docs.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import connexion
import uvicorn
import yaml
from connexion.resolver import Resolver

from benchmarks.common import REPO

SPEC = REPO / "openapi" / "tes.yaml"

DEFAULT_DOCUMENTS: dict[str, Any] = {
    "GetTask": {"id": "0", "state": "QUEUED"},
    "ListTasks": {"tasks": []},
    "CreateTask": {"id": "0"},
    "CancelTask": {},
    "GetServiceInfo": {
        "id": "org.example.bare",
        "name": "bare",
        "type": {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"},
        "organization": {"name": "bare", "url": "http://127.0.0.1/"},
        "version": "0",
    },
}


def create_bare_app(documents: dict[str, Any], validate_responses: bool = True) -> connexion.FlaskApp:
    spec = yaml.safe_load(SPEC.read_text())
    spec.pop("security", None)  # no authentication: the baseline measures the framework alone
    for path in spec["paths"].values():
        for operation in path.values():
            if isinstance(operation, dict):
                operation.pop("security", None)

    def constant(operation_id: str) -> Callable[..., Any]:
        document = documents.get(operation_id, DEFAULT_DOCUMENTS[operation_id])

        def handler(**_: Any) -> Any:
            return document  # returned as is: connexion only reads it (validation, serialisation)

        return handler

    app = connexion.FlaskApp(__name__)
    app.add_api(
        spec,
        base_path="/ga4gh/tes/v1",
        resolver=Resolver(constant),
        validate_responses=validate_responses,
        strict_validation=True,
    )
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--documents", type=Path, help="JSON object: operationId -> response document")
    p.add_argument("--no-response-validation", action="store_true",
                   help="a second reference point: what response validation costs the framework")
    args = p.parse_args()
    documents = json.loads(args.documents.read_text()) if args.documents else {}
    app = create_bare_app(documents, validate_responses=not args.no_response_validation)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
