"""The Five Safes reference crates in the shared folder beside the repository, and small crate builders."""

import copy
import json
from pathlib import Path

FIVE_SAFES = Path(__file__).resolve().parents[4] / ".." / "shared" / "five-safes-crate"

WORKFLOW = "https://workflowhub.eu/workflows/289?version=1"
DISTRIBUTION = "https://workflowhub.eu/workflows/289/ro_crate?version=1"


def load(relative: str) -> dict:
    return json.loads((FIVE_SAFES / relative).read_text("utf-8"))


def request_04() -> dict:
    return load("0.4/example-request/data/ro-crate-metadata.json")


def result_04() -> dict:
    return load("0.4/example-result/data/ro-crate-metadata.json")


def entity(document: dict, entity_id: str) -> dict:
    return next(e for e in document["@graph"] if e["@id"] == entity_id)


def without(document: dict, entity_id: str) -> dict:
    changed = copy.deepcopy(document)
    changed["@graph"] = [e for e in changed["@graph"] if e["@id"] != entity_id]
    return changed
