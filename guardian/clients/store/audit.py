"""The append-only audit log: append a row, read rows back, count them by kind.

Only the kinds of ``guardian.audit.kinds`` are appended: any other is a ``ValueError`` and
nothing is written. ``append`` writes one row inside a transaction the caller holds (the
executions part writes an execution's rows with its transitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from guardian.audit.kinds import AuditKind, audit_kind
from guardian.audit.records import AuditRow
from guardian.clients.store.schema import audit, aware, executions, plain


class AuditLog:
    """AuditLog: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def record(
        self,
        kind: AuditKind,
        now: datetime,
        execution_id: str | None = None,
        actor: str = "",
        via: str = "",
        **detail: Any,
    ) -> None:
        """Append one audit row; ``ValueError`` for a kind guardian does not write."""
        with self.engine.begin() as conn:
            append(conn, kind, now, execution_id, actor, via, detail)

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Executions by state, and audit rows by kind (for metrics)."""
        with self.engine.connect() as conn:
            states = conn.execute(
                select(executions.c.state, func.count()).group_by(executions.c.state)
            ).all()
            kinds = conn.execute(select(audit.c.kind, func.count()).group_by(audit.c.kind)).all()
        return {str(k): int(n) for k, n in states}, {str(k): int(n) for k, n in kinds}

    def history(self, execution_id: str | None = None, limit: int = 200) -> list[AuditRow]:
        """Audit rows, oldest first (the last ``limit`` of them)."""
        query = select(audit).order_by(audit.c.seq.desc()).limit(limit)
        if execution_id:
            query = query.where(audit.c.execution_id == execution_id)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        return [
            AuditRow(r.seq, aware(r.at), r.kind, r.execution_id, r.actor, r.via, r.detail)
            for r in reversed(rows)
        ]


def append(
    conn: Connection,
    kind: AuditKind,
    now: datetime,
    execution_id: str | None,
    actor: str,
    via: str,
    detail: Mapping[str, Any],
) -> None:
    """Append one audit row in ``conn``'s transaction; ``ValueError`` (before anything is
    written) for a kind guardian does not write."""
    values = {"at": now, "kind": audit_kind(kind), "execution_id": execution_id}
    conn.execute(insert(audit).values(**values, actor=actor, via=via, detail=plain(dict(detail))))
