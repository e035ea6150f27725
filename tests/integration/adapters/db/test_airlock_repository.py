"""Airlock stores against SQLite and PostgreSQL, and tamper detection on the real audit table."""

import pytest
from sqlalchemy import delete, text, update

from gateway.adapters.db.airlock_repository import (
    SqlAuditLog,
    SqlEgressRequestRepository,
    SqlProjectPolicyRepository,
)
from gateway.adapters.db.engine import make_engine, migrate
from gateway.adapters.db.tables import audit_events
from gateway.domain.audit import AuditEvent
from gateway.services.audit import verify
from tests.contracts.airlock_store import AirlockStoreContract


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_url"
    )
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def requests(engine):
    return SqlEgressRequestRepository(engine)


@pytest.fixture
def policies(engine):
    return SqlProjectPolicyRepository(engine)


@pytest.fixture
def audit(engine):
    return SqlAuditLog(engine)


class TestSqlAirlockStores(AirlockStoreContract):
    pass


def _fill(audit, n=4):
    for i in range(n):
        audit.record(AuditEvent("carol", "egress.decision", "egress_request", "er-1", "p1", {"file_id": str(i)}))


def test_editing_one_row_is_detected(audit, engine):
    _fill(audit)
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 2).values(actor="mallory"))
    problems = verify(audit)
    assert any("entry 2 was altered" in p for p in problems)


def test_deleting_a_middle_row_is_detected(audit, engine):
    _fill(audit)
    with engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 3))
    assert any("entry 3 is missing" in p for p in verify(audit))


def test_deleting_the_newest_row_is_detected(audit, engine):
    _fill(audit)
    with engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 4))
    assert any("head records entry 4" in p for p in verify(audit))


def test_rewriting_a_row_with_a_recomputed_hash_still_breaks_the_chain(audit, engine):
    from gateway.domain.audit import entry_hash

    _fill(audit)
    entry = list(audit.entries())[1]
    forged = AuditEvent("mallory", entry.event.action, entry.event.object_type, entry.event.object_id,
                        entry.event.project, entry.event.details)
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 2).values(
            actor="mallory", hash=entry_hash(2, entry.at, forged, entry.prev_hash)))
    assert any("entry 3 does not link" in p for p in verify(audit))


def test_concurrent_writers_keep_one_unbroken_chain(audit, engine):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: audit.record(AuditEvent("w", "x", "task", str(i))), range(40)))
    assert audit.head()[0] == 40
    assert verify(audit) == []
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from audit_events")).scalar() == 40
