"""Statements every repository with a `seq` column shares: newest-first keyset pages and lease claims."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Row, Select, Table, or_, select, update


def newest_first(
    engine: Engine, stmt: Select[Any], table: Table, before_seq: int | None, limit: int
) -> tuple[Sequence[Row[Any]], int | None, bool]:
    """Up to `limit` rows of `stmt` older than `before_seq`, newest first: (rows, last seq, more after)."""
    if before_seq is not None:
        stmt = stmt.where(table.c.seq < before_seq)
    stmt = stmt.order_by(table.c.seq.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    page = rows[:limit]
    return page, page[-1].seq if page else None, len(rows) > limit


def claim_leases(
    engine: Engine, table: Table, states: Sequence[str], worker: str, lease_seconds: float, limit: int
) -> list[Row[Any]]:
    """Rows in `states` whose lease is free, expired or already `worker`'s, leased to `worker` (oldest first).

    Each row is won by a conditional update of its own, so two workers never both hold one lease.
    """
    now = time.time()
    free = or_(table.c.lease_owner.is_(None), table.c.lease_expires < now, table.c.lease_owner == worker)
    with engine.connect() as conn:
        candidates = conn.execute(
            select(table.c.seq).where(table.c.state.in_(list(states)), free).order_by(table.c.seq).limit(limit)
        ).scalars().all()
    claimed = []
    for seq in candidates:
        with engine.begin() as conn:
            won = conn.execute(
                update(table).where(table.c.seq == seq, free)
                .values(lease_owner=worker, lease_expires=now + lease_seconds)
            ).rowcount
            if won:
                row = conn.execute(select(table).where(table.c.seq == seq)).first()
                if row is not None:
                    claimed.append(row)
    return claimed
