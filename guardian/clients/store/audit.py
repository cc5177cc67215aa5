"""The append-only audit log: append a row, read rows back, count them by kind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from guardian.audit.records import AuditRow
from guardian.clients.store.schema import audit, aware, executions, plain


class AuditLog:
    """AuditLog: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def record(
        self,
        kind: str,
        now: datetime,
        execution_id: str | None = None,
        actor: str = "",
        via: str = "",
        **detail: Any,
    ) -> None:
        """Append one audit row."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(audit).values(
                    at=now,
                    kind=kind,
                    execution_id=execution_id,
                    actor=actor,
                    via=via,
                    detail=plain(detail),
                )
            )

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
