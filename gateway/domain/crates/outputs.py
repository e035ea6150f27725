"""Safe outputs: the files a result crate releases, and the disclosure decision that released them.

A result crate carries only outputs that passed disclosure review. Each is a File entity with its size
and checksums, listed in the root's `hasPart` and as a `result` of the workflow run; the DisclosureCheck
action names the reviewers and the decision.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from gateway.domain.crates.agents import Agent
from gateway.domain.crates.model import Crate, reference_ids, references
from gateway.domain.crates.phases import (
    Phase,
    complete_phase,
    fail_phase,
    phase_action,
    phase_status,
    plan_phase,
    require_phase_action,
    set_phase_agents,
    start_phase,
)
from gateway.domain.crates.vocab import METADATA_FILE, SCHEMA_ORG, WORKFLOW_RUN_TERMS, ActionStatus
from gateway.domain.errors import Conflict, InvalidRequest

_HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "sha512": re.compile(r"[0-9a-f]{128}")}

# No RO-Crate context defines sha512 (1.2 defines sha256 as a schema.org term); the Workflow Run Crate
# vocabulary does. Both are declared inline so the values survive JSON-LD processing under any context.
CHECKSUM_TERMS = {"sha256": SCHEMA_ORG + "sha256", "sha512": WORKFLOW_RUN_TERMS + "sha512"}


@dataclass(frozen=True)
class OutputFile:
    """One released output. `path` is its POSIX path inside the crate and becomes its `@id`."""

    path: str
    size: int
    sha256: str
    sha512: str
    encoding_format: str | None = None
    name: str | None = None

    def validated(self) -> OutputFile:
        check_crate_path(self.path)
        if self.size < 0:
            raise InvalidRequest(f"output {self.path!r}: size must not be negative")
        for algorithm in ("sha256", "sha512"):
            value = getattr(self, algorithm)
            if not _HEX[algorithm].fullmatch(value):
                raise InvalidRequest(f"output {self.path!r}: {algorithm} must be lower-case hex of the right length")
        return self


def check_crate_path(path: str) -> None:
    """Refuse paths that could leave the crate directory or clash with its metadata file."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or "\\" in path or "\x00" in path:
        raise InvalidRequest(f"output path {path!r} must be a relative POSIX path")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidRequest(f"output path {path!r} must not contain empty, '.' or '..' parts")
    if path == METADATA_FILE:
        raise InvalidRequest(f"output path {path!r} is reserved for the crate metadata")


def set_run_outputs(crate: Crate, outputs: Sequence[OutputFile]) -> None:
    """Make `outputs` exactly the workflow run's results.

    Earlier results are dropped from the run, from `hasPart`, and from the crate when nothing else
    refers to them; each output is described as a File with `contentSize`, `sha256` and `sha512`.
    """
    checked = [o.validated() for o in outputs]
    paths = [o.path for o in checked]
    if len(set(paths)) != len(paths):
        raise InvalidRequest("each output path may be listed once")
    run = crate.workflow_run()
    previous = [i for i in reference_ids(run.get("result")) if i not in paths]
    run.pop("result", None)
    root = crate.root()
    for stale in previous:
        crate.drop_reference(root, "hasPart", stale)
    crate.remove([i for i in previous if not crate.is_referenced(i)])
    crate.define_context_terms(CHECKSUM_TERMS)
    for output in checked:
        entity = {
            "@id": output.path,
            "@type": "File",
            "name": output.name or PurePosixPath(output.path).name,
            "contentSize": str(output.size),
            "sha256": output.sha256,
            "sha512": output.sha512,
        }
        if output.encoding_format:
            entity["encodingFormat"] = output.encoding_format
        crate.put(entity)
        crate.add_part(output.path)
    if paths:
        run["result"] = references(paths)


@dataclass(frozen=True)
class DisclosureDecision:
    """The reviewers' decision on a run's outputs. `released` are crate paths of outputs described in the crate."""

    reviewers: tuple[Agent, ...]
    released: tuple[str, ...]
    withheld_count: int
    started_at: datetime
    decided_at: datetime

    @property
    def verdict(self) -> str:
        if not self.released:
            return "rejected"
        return "partially approved" if self.withheld_count else "approved"


def record_disclosure(crate: Crate, decision: DisclosureDecision) -> None:
    """Record the DisclosureCheck: reviewers as agents, released outputs as its `result`, the verdict in its name.

    Completed when anything was released, Failed when everything was withheld. Released paths must be
    outputs already described with `set_run_outputs`. The check is planned and started as needed.
    """
    if not decision.reviewers:
        raise InvalidRequest("a disclosure decision needs at least one reviewer")
    if decision.decided_at < decision.started_at:
        raise InvalidRequest("a disclosure decision cannot be made before the review started")
    results = set(reference_ids(crate.workflow_run().get("result")))
    unknown = [p for p in decision.released if p not in results]
    if unknown:
        raise InvalidRequest(f"released outputs are not results of the workflow run: {', '.join(unknown)}")
    if phase_action(crate, Phase.DISCLOSURE_CHECK) is None:
        plan_phase(crate, Phase.DISCLOSURE_CHECK)
    status = phase_status(crate, Phase.DISCLOSURE_CHECK)
    if status is not None and status.is_final:
        raise Conflict("the disclosure check has already been decided")
    if status is ActionStatus.POTENTIAL:
        start_phase(crate, Phase.DISCLOSURE_CHECK, at=decision.started_at)
    set_phase_agents(crate, Phase.DISCLOSURE_CHECK, decision.reviewers)
    summary = f"{len(decision.released)} output(s) released, {decision.withheld_count} withheld"
    if not decision.released:
        fail_phase(crate, Phase.DISCLOSURE_CHECK, at=decision.decided_at, reason=summary, outcome=decision.verdict)
        return
    complete_phase(crate, Phase.DISCLOSURE_CHECK, at=decision.decided_at, outcome=decision.verdict)
    action = require_phase_action(crate, Phase.DISCLOSURE_CHECK)
    action["result"] = references(decision.released)
    action["description"] = summary
