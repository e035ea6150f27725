"""Repairs of known, harmless mistakes in client crates, each one reported so it can be recorded.

The profile's own example result crate writes `"type": "AssessAction"` where JSON-LD needs `"@type"`.
Under the RO-Crate context `type` is not a defined term, so a JSON-LD processor drops it silently and the
action loses its type. Renaming the key restores the evident intent; anything less certain is left alone
for validation to reject.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Repair:
    entity_id: str
    description: str


def repair_type_keys(document: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[Repair, ...]]:
    """Rename `type` to `@type` on `@graph` entities that have no `@type`.

    Returns a repaired copy of the document and the repairs made (empty when nothing needed fixing).
    An entity carrying both keys is not touched: which one was meant cannot be known.
    A document without an `@graph` list is returned unchanged for later checks to reject.
    """
    repaired = copy.deepcopy(dict(document))
    graph = repaired.get("@graph")
    if not isinstance(graph, list):
        return repaired, ()
    repairs: list[Repair] = []
    for entity in graph:
        if not isinstance(entity, dict) or "type" not in entity or "@type" in entity:
            continue
        value = entity["type"]
        if not _looks_like_type(value):
            continue
        entity["@type"] = entity.pop("type")
        repairs.append(Repair(str(entity.get("@id", "")), f"renamed 'type' to '@type' (value {value!r})"))
    return repaired, tuple(repairs)


def _looks_like_type(value: Any) -> bool:
    # Only a type name or a list of them; a structured `type` value is someone's own property.
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
