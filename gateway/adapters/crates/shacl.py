"""Offline validation of a crate's metadata against the bundled Five Safes RO-Crate SHACL shapes.

The shapes come from rocrate-validator's five-safes-crate profile (data/shapes/five-safes-crate). That
tool decides how serious a result is by the folder its shape lives in (must/should/may), not by the
shape's `sh:severity`: several SHOULD checks are SPARQL constraints whose own severity SHACL ignores,
so pyshacl reports them as violations. We follow the folders: MUST -> VIOLATION, SHOULD -> WARNING,
MAY -> INFO.

The shapes also lean on rocrate-validator's base RO-Crate profile, which we do not ship. Its two
inferences are added here by hand (the descriptor is a `ro-crate:ROCrateMetadataFileDescriptor`, the
root a `ro-crate:RootDataEntity`), and its SPARQL prefix set is declared in data/shapes/gateway/.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import pyshacl
from rdflib import RDF, BNode, Graph, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from gateway.adapters.crates.contexts import inline_contexts
from gateway.domain.errors import InvalidRequest

# Relative @ids ("./", "input1.txt") resolve against this base; the shapes are parsed with the same base
# so that their `ro: <./>` names the crate root. It is never dereferenced.
CRATE_BASE = "file:///rocrate/"

SH = Namespace("http://www.w3.org/ns/shacl#")
SCHEMA = Namespace("http://schema.org/")
RO_CRATE = Namespace("https://github.com/crs4/rocrate-validator/profiles/ro-crate/")
_PREFIXES = {
    "http://schema.org/": "schema:",
    "http://purl.org/dc/terms/": "dct:",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf:",
}


class Severity(StrEnum):
    VIOLATION = "Violation"  # MUST
    WARNING = "Warning"  # SHOULD
    INFO = "Info"  # MAY


_LEVELS = {"must": Severity.VIOLATION, "should": Severity.WARNING, "may": Severity.INFO}
_STRICTNESS = [Severity.VIOLATION, Severity.WARNING, Severity.INFO]


@dataclass(frozen=True)
class ShapeResult:
    """One finding. `focus_node` is the crate @id (relative ids stay relative); `path` is compact or None."""

    severity: Severity
    focus_node: str
    path: str | None
    message: str


@dataclass(frozen=True)
class ValidationReport:
    violations: tuple[ShapeResult, ...]
    warnings: tuple[ShapeResult, ...]
    infos: tuple[ShapeResult, ...]

    @property
    def conforms(self) -> bool:
        """True when no MUST-level requirement is broken."""
        return not self.violations

    def summary(self) -> str:
        return f"{len(self.violations)} violation(s), {len(self.warnings)} warning(s), {len(self.infos)} info(s)"


@dataclass(frozen=True)
class _Shapes:
    graph: Graph
    level_of: Mapping[Node, Severity]


def validate_metadata(document: Mapping[str, Any]) -> ValidationReport:
    """Validate a crate's ro-crate-metadata.json (as parsed JSON) against the Five Safes shapes.

    Works offline: contexts come from the bundled files, and a context that is not bundled is refused
    with InvalidRequest, as is a document that is not valid JSON-LD.
    """
    data = _data_graph(document)
    shapes = _shapes()
    _conforms, results_graph, _text = pyshacl.validate(
        data, shacl_graph=shapes.graph, advanced=True, allow_warnings=True, inference="none"
    )
    if not isinstance(results_graph, Graph):  # pyshacl returns a Graph unless asked for serialised text
        raise TypeError("pyshacl returned no results graph")
    found = sorted(
        {_result(results_graph, node, shapes) for node in results_graph.subjects(RDF.type, SH.ValidationResult)},
        key=lambda r: (_STRICTNESS.index(r.severity), r.focus_node, r.path or "", r.message),
    )
    return ValidationReport(
        violations=tuple(r for r in found if r.severity is Severity.VIOLATION),
        warnings=tuple(r for r in found if r.severity is Severity.WARNING),
        infos=tuple(r for r in found if r.severity is Severity.INFO),
    )


def _data_graph(document: Mapping[str, Any]) -> Graph:
    graph = Graph()
    try:
        graph.parse(data=json.dumps(inline_contexts(document)), format="json-ld", base=CRATE_BASE)
    except InvalidRequest:
        raise
    except Exception as e:  # rdflib raises a variety of errors for malformed JSON-LD
        raise InvalidRequest(f"ro-crate-metadata.json is not valid JSON-LD: {e}") from e
    for descriptor in list(graph.subjects(SCHEMA.about, None)):
        if isinstance(descriptor, URIRef) and str(descriptor) == CRATE_BASE + "ro-crate-metadata.json":
            graph.add((descriptor, RDF.type, RO_CRATE.ROCrateMetadataFileDescriptor))
            for root in graph.objects(descriptor, SCHEMA.about):
                graph.add((root, RDF.type, RO_CRATE.RootDataEntity))
    return graph


@cache
def _shapes() -> _Shapes:
    """All shapes in one graph, with the requirement level of each shape node (parsed once per process)."""
    combined = Graph()
    level_of: dict[Node, Severity] = {}
    shapes_dir = resources.files("gateway.adapters.crates").joinpath("data", "shapes")
    for level_name, level in _LEVELS.items():
        for source in _ttl_files(shapes_dir.joinpath("five-safes-crate", level_name)):
            part = Graph().parse(data=source.read_text("utf-8"), format="turtle", publicID=CRATE_BASE)
            for node in set(part.subjects()):
                # A shape defined at several levels counts at the strictest one.
                if node not in level_of or _STRICTNESS.index(level) < _STRICTNESS.index(level_of[node]):
                    level_of[node] = level
            combined += part  # blank nodes keep their identity, so level_of still applies
    for source in _ttl_files(shapes_dir.joinpath("gateway")):
        combined.parse(data=source.read_text("utf-8"), format="turtle", publicID=CRATE_BASE)
    return _Shapes(combined, level_of)


def _ttl_files(folder: Traversable) -> Iterable[Traversable]:
    return sorted((f for f in folder.iterdir() if f.name.endswith(".ttl")), key=lambda f: f.name)


def _result(results: Graph, node: Node, shapes: _Shapes) -> ShapeResult:
    # SPARQL constraints are identified by sh:sourceConstraint; a node shape's IRI can be shared by levels.
    origin = [results.value(node, SH.sourceConstraint), results.value(node, SH.sourceShape)]
    levels = [shapes.level_of[o] for o in origin if o is not None and o in shapes.level_of]
    severity = levels[0] if levels else Severity.VIOLATION
    messages = sorted(str(m) for m in results.objects(node, SH.resultMessage))
    return ShapeResult(
        severity=severity,
        focus_node=_show(results.value(node, SH.focusNode)),
        path=_path(results, results.value(node, SH.resultPath)),
        message=" / ".join(messages) or "constraint not met",
    )


def _show(term: Node | None) -> str:
    """The crate's own spelling of a node: relative ids come back relative to the crate root."""
    if term is None:
        return ""
    text = str(term)
    if isinstance(term, URIRef) and text.startswith(CRATE_BASE):
        return text.removeprefix(CRATE_BASE) or "./"
    return text


def _path(results: Graph, path: Node | None) -> str | None:
    if path is None:
        return None
    if isinstance(path, BNode):
        inverse = results.value(path, SH.inversePath)
        if inverse is not None:
            return "^" + _compact(inverse)
        if results.value(path, RDF.first) is not None:  # a sequence path
            return "/".join(_compact(step) for step in Collection(results, path))
        return "(complex path)"
    return _compact(path)


def _compact(term: Node) -> str:
    text = str(term)
    for namespace, prefix in _PREFIXES.items():
        if text.startswith(namespace):
            return prefix + text.removeprefix(namespace)
    return text
