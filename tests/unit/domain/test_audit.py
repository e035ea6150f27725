"""Hash chaining of audit entries (pure domain)."""

from dataclasses import replace

from gateway.domain.audit import GENESIS, AuditEntry, AuditEvent, entry_hash, verify_chain


def chain(n):
    entries, prev = [], GENESIS
    for seq in range(1, n + 1):
        event = AuditEvent("alice", "task.submitted", "task", f"t{seq}", "p1", {"seq": seq})
        at = f"2026-01-01T00:00:0{seq}Z"
        digest = entry_hash(seq, at, event, prev)
        entries.append(AuditEntry(seq, at, event, prev, digest))
        prev = digest
    return entries


def test_intact_chain_verifies():
    entries = chain(4)
    assert verify_chain(entries, 4, entries[-1].hash) == []
    assert verify_chain([], 0, GENESIS) == []


def test_any_field_change_changes_the_hash():
    event = AuditEvent("alice", "x", "task", "t1", "p1", {"a": 1})
    base = entry_hash(1, "t", event, GENESIS)
    assert entry_hash(1, "t", replace(event, details={"a": 2}), GENESIS) != base
    assert entry_hash(1, "t", replace(event, project=None), GENESIS) != base
    assert entry_hash(2, "t", event, GENESIS) != base
    assert entry_hash(1, "u", event, GENESIS) != base


def test_edited_missing_and_truncated_entries_are_reported():
    entries = chain(4)
    edited = [*entries[:1], replace(entries[1], event=replace(entries[1].event, actor="mallory")), *entries[2:]]
    assert any("entry 2 was altered" in p for p in verify_chain(edited, 4, entries[-1].hash))
    missing = [e for e in entries if e.seq != 2]
    assert any("entry 2 is missing" in p for p in verify_chain(missing, 4, entries[-1].hash))
    assert any("head records entry 4" in p for p in verify_chain(entries[:3], 4, entries[-1].hash))
