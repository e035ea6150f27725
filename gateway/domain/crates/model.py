"""A Five Safes RO-Crate as its flattened JSON-LD document: entities in `@graph`, looked up by `@id`.

`Crate` works on the compacted JSON the profile prescribes; it does no JSON-LD processing (that needs
contexts, which only the adapters hold). Property values follow RO-Crate conventions: a single value or a
list, references are `{"@id": ...}` objects.

A `Crate` owns a private copy of the document it was given and is changed in place by the functions of
this package (phases, requester, outputs); `to_json()` hands out a copy again, so callers never share
mutable state with it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from gateway.domain.crates.vocab import (
    FIVE_SAFES_PROFILE_BASE,
    METADATA_FILE,
    ProfileVersion,
)
from gateway.domain.errors import InvalidRequest

Entity = dict[str, Any]


def as_list(value: Any) -> list[Any]:
    """A JSON-LD property value as a list: absent is empty, a single value is a one-element list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def reference_ids(value: Any) -> list[str]:
    """The `@id`s a property value refers to; literals in the value are skipped."""
    return [v["@id"] for v in as_list(value) if isinstance(v, dict) and isinstance(v.get("@id"), str)]


def references(ids: Iterable[str]) -> dict[str, str] | list[dict[str, str]]:
    """A property value referring to `ids`: a single object for one, a list otherwise (RO-Crate style)."""
    refs = [{"@id": i} for i in ids]
    return refs[0] if len(refs) == 1 else refs


def types_of(entity: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(t for t in as_list(entity.get("@type")) if isinstance(t, str))


class Crate:
    """The metadata of one crate. Raises InvalidRequest when the document is not a flattened RO-Crate graph."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        if not isinstance(document, Mapping):
            raise InvalidRequest("ro-crate-metadata.json: the document must be a JSON object")
        if "@context" not in document:
            raise InvalidRequest("ro-crate-metadata.json: the document has no @context")
        graph = document.get("@graph")
        if not isinstance(graph, list):
            raise InvalidRequest("ro-crate-metadata.json: the document needs an @graph list of entities")
        seen: set[str] = set()
        for position, entity in enumerate(graph):
            if not isinstance(entity, dict):
                raise InvalidRequest(f"ro-crate-metadata.json: @graph item {position} is not a JSON object")
            entity_id = entity.get("@id")
            if not isinstance(entity_id, str) or not entity_id:
                raise InvalidRequest(f"ro-crate-metadata.json: @graph item {position} has no @id string")
            if entity_id in seen:
                raise InvalidRequest(f"ro-crate-metadata.json: @id {entity_id!r} is used by more than one entity")
            seen.add(entity_id)
        self._document: dict[str, Any] = copy.deepcopy(dict(document))
        self._graph: list[Entity] = self._document["@graph"]

    def to_json(self) -> dict[str, Any]:
        """The current document, as a copy safe to serialise or change."""
        return copy.deepcopy(self._document)

    # -- @context ------------------------------------------------------------------------------------

    @property
    def context(self) -> Any:
        return copy.deepcopy(self._document["@context"])

    def context_urls(self) -> list[str]:
        """The remote contexts the document names at its top level, in order."""
        return [c for c in as_list(self._document["@context"]) if isinstance(c, str)]

    def context_defines(self, term: str) -> bool:
        """Whether an inline part of the top-level @context defines `term` (remote contexts are not read)."""
        return any(isinstance(c, dict) and term in c for c in as_list(self._document["@context"]))

    def define_context_terms(self, terms: Mapping[str, str]) -> None:
        """Add term definitions the document uses beyond its remote contexts, in one inline context object."""
        missing = {t: iri for t, iri in terms.items() if not self.context_defines(t)}
        if not missing:
            return
        contexts = as_list(self._document["@context"])
        inline = next((c for c in contexts if isinstance(c, dict)), None)
        if inline is None:
            contexts.append(dict(missing))
        else:
            inline.update(missing)
        self._document["@context"] = contexts

    # -- entities ------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Entity]:
        return iter(self._graph)

    def __contains__(self, entity_id: object) -> bool:
        return any(e["@id"] == entity_id for e in self._graph)

    def get(self, entity_id: str) -> Entity | None:
        """The live entity with this `@id`, or None."""
        return next((e for e in self._graph if e["@id"] == entity_id), None)

    def require(self, entity_id: str, what: str) -> Entity:
        entity = self.get(entity_id)
        if entity is None:
            raise InvalidRequest(f"{what} {entity_id!r} is referenced but not described in the crate")
        return entity

    def of_type(self, type_name: str) -> list[Entity]:
        return [e for e in self._graph if type_name in types_of(e)]

    def put(self, entity: Mapping[str, Any]) -> Entity:
        """Add an entity, or replace the one with the same `@id` in place. Returns the stored entity."""
        entity_id = entity.get("@id")
        if not isinstance(entity_id, str) or not entity_id:
            raise ValueError("an entity needs an @id string")
        stored: Entity = copy.deepcopy(dict(entity))
        for position, existing in enumerate(self._graph):
            if existing["@id"] == entity_id:
                self._graph[position] = stored
                return stored
        self._graph.append(stored)
        return stored

    def remove(self, entity_ids: Iterable[str]) -> None:
        """Delete these entities and every reference to them from other entities."""
        doomed = set(entity_ids)
        self._graph[:] = [e for e in self._graph if e["@id"] not in doomed]
        for entity in self._graph:
            for key in [k for k in entity if not k.startswith("@")]:
                values = as_list(entity[key])
                kept = [v for v in values if not (isinstance(v, dict) and v.get("@id") in doomed)]
                if len(kept) == len(values):
                    continue
                if not kept:
                    del entity[key]
                else:
                    entity[key] = kept[0] if len(kept) == 1 else kept

    def is_referenced(self, entity_id: str) -> bool:
        """Whether any entity refers to `entity_id` through a property."""
        return any(
            entity_id in reference_ids(value)
            for entity in self._graph
            for key, value in entity.items()
            if not key.startswith("@")
        )

    def add_reference(self, entity: Entity, key: str, target_id: str) -> None:
        """Make `entity[key]` also refer to `target_id` (no duplicates; a single value stays unwrapped)."""
        current = as_list(entity.get(key))
        if target_id in reference_ids(current):
            return
        current.append({"@id": target_id})
        entity[key] = current[0] if len(current) == 1 else current

    def drop_reference(self, entity: Entity, key: str, target_id: str) -> None:
        """Stop `entity[key]` referring to `target_id`; the key goes when nothing is left."""
        kept = [v for v in as_list(entity.get(key)) if not (isinstance(v, dict) and v.get("@id") == target_id)]
        if not kept:
            entity.pop(key, None)
        else:
            entity[key] = kept[0] if len(kept) == 1 else kept

    # -- the parts every Five Safes crate has --------------------------------------------------------

    def find_descriptor(self) -> Entity | None:
        return self.get(METADATA_FILE)

    def find_root(self) -> Entity | None:
        descriptor = self.find_descriptor()
        if descriptor is None:
            return None
        about = reference_ids(descriptor.get("about"))
        return self.get(about[0]) if len(about) == 1 else None

    def root(self) -> Entity:
        """The root data entity, found through the metadata descriptor's `about`."""
        descriptor = self.find_descriptor()
        if descriptor is None:
            raise InvalidRequest(f"the crate has no metadata descriptor entity {METADATA_FILE!r}")
        about = reference_ids(descriptor.get("about"))
        if len(about) != 1:
            raise InvalidRequest(f"{METADATA_FILE}: 'about' must reference exactly one root data entity")
        return self.require(about[0], "root data entity")

    def main_entity(self) -> Entity:
        """The requested workflow: the root's single `mainEntity`."""
        ids = reference_ids(self.root().get("mainEntity"))
        if len(ids) != 1:
            raise InvalidRequest("the root data entity must have exactly one mainEntity (the requested workflow)")
        return self.require(ids[0], "mainEntity")

    def profile_version(self) -> ProfileVersion:
        """The Five Safes profile version the root declares with `conformsTo`."""
        declared = [i.rstrip("/") for i in reference_ids(self.root().get("conformsTo"))]
        five_safes = [i for i in declared if i.startswith(FIVE_SAFES_PROFILE_BASE)]
        if not five_safes:
            raise InvalidRequest(
                f"the root data entity does not declare conformsTo a Five Safes profile ({FIVE_SAFES_PROFILE_BASE}...)"
            )
        known = {v.iri: v for v in ProfileVersion}
        for iri in five_safes:
            if iri in known:
                return known[iri]
        supported = ", ".join(v.value for v in ProfileVersion)
        raise InvalidRequest(
            f"unknown Five Safes profile version {five_safes[0].removeprefix(FIVE_SAFES_PROFILE_BASE)!r}; "
            f"supported: {supported}"
        )

    def mentioned_of_type(self, type_name: str) -> list[Entity]:
        """Entities of this type that the root lists in `mentions` (where the profile keeps actions)."""
        found = (self.get(i) for i in reference_ids(self.root().get("mentions")))
        return [e for e in found if e is not None and type_name in types_of(e)]

    def workflow_run(self) -> Entity:
        """The request's single CreateAction: the workflow run the client asks for."""
        runs = self.mentioned_of_type("CreateAction")
        if len(runs) != 1:
            raise InvalidRequest("the crate must request exactly one workflow run (a CreateAction the root mentions)")
        return runs[0]

    def mention(self, entity_id: str) -> None:
        """List `entity_id` in the root's `mentions` (the profile finds every action that way)."""
        self.add_reference(self.root(), "mentions", entity_id)

    def add_part(self, entity_id: str) -> None:
        """List a data entity in the root's `hasPart`."""
        self.add_reference(self.root(), "hasPart", entity_id)
