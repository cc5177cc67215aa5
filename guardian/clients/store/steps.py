"""Step records of an execution, and the phases applied (each at most once)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from guardian.audit.records import StepRecord
from guardian.clients.store.schema import applied, plain, steps


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
            current = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id, steps.c.step == step)
            ).first()
            if current is None:
                conn.execute(
                    insert(steps).values(
                        execution_id=execution_id,
                        step=step,
                        name=name,
                        status=status,
                        plan=plain(plan),
                        applied_phases=0,
                        result=plain(result),
                        updated_at=now,
                    )
                )
                return
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if plan is not None:
                values["plan"] = plain(plan)
            if result is not None:
                values["result"] = plain(result)
            conn.execute(
                update(steps)
                .where(steps.c.execution_id == execution_id, steps.c.step == step)
                .values(**values)
            )

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
