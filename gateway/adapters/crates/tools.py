"""The CrateTools port on the local file system: BagIt intake and writing, SHACL validation, digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.adapters.crates.bagit import intake_crate, write_bag_zip
from gateway.adapters.crates.checksums import file_digests
from gateway.adapters.crates.safe_unpack import IntakeLimits


class LocalCrateTools:
    def __init__(self, limits: IntakeLimits | None = None) -> None:
        self.limits = limits or IntakeLimits()

    def intake(self, source: Path, target: Path) -> tuple[Path, tuple[str, ...], dict[str, Any]]:
        received = intake_crate(source, target, self.limits)
        return received.crate_root, received.verified_manifests, received.metadata

    def unpack_workflow(self, source: Path, target: Path) -> tuple[Path, dict[str, Any]]:
        received = intake_crate(source, target, self.limits)
        return received.crate_root, received.metadata

    def violations(self, document: dict[str, Any]) -> list[str]:
        from gateway.adapters.crates.shacl import validate_metadata  # loads rdflib and pyshacl: only when used

        report = validate_metadata(document)
        return [f"{r.focus_node} {r.path or ''}: {r.message}".strip() for r in report.violations]

    def write_bag(self, payload: Path, destination: Path, bag_name: str) -> None:
        write_bag_zip(payload, destination, bag_name=bag_name)

    def digests(self, path: Path) -> tuple[int, str, str]:
        found = file_digests(path)
        return found.size, found.sha256, found.sha512
