"""The TRE's workflow mirror: a folder of Workflow RO-Crates the gateway may run, indexed by workflow id.

`index.json` maps the ids crates use (e.g. "https://workflowhub.eu/workflows/289?version=1") to a zip
file beside it (its checksum is what projects approve). A TRE fills the folder from its own review of
each workflow; the gateway never downloads one, so a crate can only name workflows the TRE has already
brought inside.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.domain.errors import BackendError

INDEX = "index.json"


class FolderWorkflowMirror:
    def __init__(self, root: Path | None) -> None:
        self.root = root.resolve() if root else None

    def locate(self, workflow_id: str) -> Path | None:
        if self.root is None or not (self.root / INDEX).is_file():
            return None
        try:
            index = json.loads((self.root / INDEX).read_text())
        except ValueError as exc:
            raise BackendError(f"the workflow mirror's {INDEX} is not valid JSON: {exc}") from exc
        name = index.get(workflow_id) if isinstance(index, dict) else None
        if not isinstance(name, str):
            return None
        path = (self.root / name).resolve()
        # An index entry must not lead out of the mirror.
        if not path.is_relative_to(self.root) or not path.exists():
            return None
        return path
