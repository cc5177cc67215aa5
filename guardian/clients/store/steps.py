"""Step records of an execution, and the phases applied (each at most once).

Also the two writes ``Executions.commit`` makes inside one transition's transaction
(``put_step``, ``put_applied``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from guardian.audit.records import StepRecord
from guardian.clients.store.schema import applied, plain, steps
from guardian.executor.ports import StepWrite


class Steps:
    """Steps: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def save_step(
        self,
        execution_id: str,
        step: int,
        name: str,
        status: str,
        now: datetime,
        plan: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Insert or update a step's record (its plan is kept once made)."""
        with self.engine.begin() as conn:
            put_step(conn, execution_id, StepWrite(step, name, status, plan, result), now)

    def steps(self, execution_id: str) -> list[StepRecord]:
        """The execution's step records, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id).order_by(steps.c.step)
            ).all()
        return [
            StepRecord(r.execution_id, r.step, r.name, r.status, r.plan, r.applied_phases, r.result)
            for r in rows
        ]

    def mark_applied(
        self, execution_id: str, step: int, phase: int, owner: str, now: datetime
    ) -> bool:
        """Record that ``phase`` of ``step`` was applied; False if it already was."""
        try:
            with self.engine.begin() as conn:
                put_applied(conn, execution_id, (step, phase, owner), now)
        except IntegrityError:
            return False
        return True

    def applied_phases(self, execution_id: str) -> list[tuple[int, int]]:
        """(step, phase) pairs recorded as applied, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(applied.c.step, applied.c.phase)
                .where(applied.c.execution_id == execution_id)
                .order_by(applied.c.step, applied.c.phase)
            ).all()
        return [(r.step, r.phase) for r in rows]


def put_step(conn: Any, execution_id: str, record: StepWrite, now: datetime) -> None:
    """Insert or update a step's record in ``conn``'s transaction (a plan once made stays)."""
    where = (steps.c.execution_id == execution_id, steps.c.step == record.step)
    values: dict[str, Any] = {"status": record.status, "updated_at": now}
    for key, value in (("plan", record.plan), ("result", record.result)):
        if value is not None:
            values[key] = plain(dict(value))
    if conn.execute(select(steps.c.step).where(*where)).first() is not None:
        conn.execute(update(steps).where(*where).values(**values))
        return
    new = {"execution_id": execution_id, "step": record.step, "name": record.name}
    conn.execute(insert(steps).values(**new, applied_phases=0, **values))


def put_applied(
    conn: Any, execution_id: str, applied_: tuple[int, int, str], now: datetime
) -> None:
    """Record (step, phase, owner) as applied in ``conn``'s transaction; ``IntegrityError``
    (the whole transaction undone) when that phase already was."""
    step, phase, owner = applied_
    conn.execute(
        insert(applied).values(
            execution_id=execution_id, step=step, phase=phase, at=now, owner=owner
        )
    )
    conn.execute(
        update(steps)
        .where(steps.c.execution_id == execution_id, steps.c.step == step)
        .values(applied_phases=phase + 1, updated_at=now)
    )
