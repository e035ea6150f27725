"""The tamper-evident audit trail: each entry carries the hash of the one before it.

Editing any entry changes its hash and breaks the link from the next entry; deleting one leaves a
gap in the sequence or a head that no longer matches the last entry. `verify_chain` finds both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it is chained: who did what to which object."""

    actor: str
    action: str
    object_type: str
    object_id: str
    project: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str  # RFC 3339, UTC
    event: AuditEvent
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, **payload(self.event), "prev_hash": self.prev_hash, "hash": self.hash}


def payload(event: AuditEvent) -> dict[str, Any]:
    return {
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "project": event.project,
        "details": event.details,
    }


def entry_hash(seq: int, at: str, event: AuditEvent, prev_hash: str) -> str:
    canonical = json.dumps(
        {"seq": seq, "at": at, **payload(event), "prev_hash": prev_hash},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def verify_chain(entries: list[AuditEntry], head_seq: int, head_hash: str) -> list[str]:
    """Problems found in `entries` (ordered by seq) given the recorded head; empty means intact."""
    problems: list[str] = []
    prev_hash, expected_seq = GENESIS, 1
    for entry in entries:
        if entry.seq != expected_seq:
            problems.append(f"entry {expected_seq} is missing (next is {entry.seq})")
        if entry.prev_hash != prev_hash:
            problems.append(f"entry {entry.seq} does not link to the entry before it")
        if entry_hash(entry.seq, entry.at, entry.event, entry.prev_hash) != entry.hash:
            problems.append(f"entry {entry.seq} was altered (hash mismatch)")
        prev_hash, expected_seq = entry.hash, entry.seq + 1
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        problems.append(f"the log ends at entry {expected_seq - 1} but the head records entry {head_seq}")
    return problems
