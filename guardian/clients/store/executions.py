"""Executions: create, find and list them; move one by compare-and-set; lease it.

``commit`` writes one transition of the executor (``guardian.executor.ports.Write``: the
compare-and-set, the step record, the applied phase and the audit rows) in ONE transaction;
``snapshot`` reads an execution with its step records and applied phases in one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from guardian.audit.records import MIN_PREFIX, AmbiguousPrefix, Execution, StepRecord
from guardian.clients.store.audit import append
from guardian.clients.store.schema import (
    Undone,
    applied,
    execution_of,
    executions,
    move,
    plain,
    steps,
)
from guardian.clients.store.steps import put_applied, put_step
from guardian.executor.ports import AuditWrite, Write


class Executions:
    """Executions: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def create(
        self,
        playbook: str,
        slo: str,
        target: str,
        state: str,
        requested_by: str,
        requested_via: str,
        context: dict[str, Any],
        now: datetime,
        expires_at: datetime | None = None,
    ) -> Execution:
        """A new execution, with its ``created`` audit row."""
        row = {
            "id": uuid.uuid4().hex[:10],
            "playbook": playbook,
            "slo": slo,
            "target": target,
            "state": state,
            "step": 0,
            "phase": 0,
            "requested_by": requested_by,
            "requested_via": requested_via,
            "context": plain(context),
            "message": "",
            "created_at": now,
            "updated_at": now,
            "expires_at": expires_at,
        }
        created = AuditWrite(
            "proposed",
            requested_by,
            requested_via,
            {"playbook": playbook, "slo": slo, "target": target, "state": state},
        )
        with self.engine.begin() as conn:
            conn.execute(insert(executions).values(**row))
            append_audit(conn, str(row["id"]), now, (created,))
        return self.get(str(row["id"]))

    def get(self, execution_id: str) -> Execution:
        """The execution ``execution_id``; ``KeyError`` if there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
        if row is None:
            raise KeyError(execution_id)
        return execution_of(row._mapping)

    def find(self, prefix: str) -> Execution:
        """The execution whose ID starts with ``prefix`` (unique, at least
        ``MIN_PREFIX`` characters, taken literally); ``KeyError`` otherwise
        (``AmbiguousPrefix`` when more than one matches)."""
        if len(prefix) < MIN_PREFIX:
            raise KeyError(prefix)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(executions)
                .where(executions.c.id.startswith(prefix, autoescape=True))
                .limit(2)
            ).all()
        if len(rows) > 1:
            raise AmbiguousPrefix(prefix)
        if not rows:
            raise KeyError(prefix)
        return execution_of(rows[0]._mapping)

    def executions(
        self, states: Sequence[str] = (), playbook: str | None = None, limit: int = 100
    ) -> list[Execution]:
        """Executions, newest first, optionally in ``states`` or of ``playbook``."""
        query = select(executions).order_by(executions.c.created_at.desc()).limit(limit)
        if states:
            query = query.where(executions.c.state.in_(list(states)))
        if playbook:
            query = query.where(executions.c.playbook == playbook)
        with self.engine.connect() as conn:
            return [execution_of(r._mapping) for r in conn.execute(query)]

    def transition(
        self,
        execution_id: str,
        expected: str | Sequence[str],
        now: datetime,
        at: tuple[int, int] | None = None,
        **values: Any,
    ) -> bool:
        """Move the execution if its state is still ``expected`` (and, given ``at``, it is
        still at that (step, phase)); False when it was not: someone else moved it first."""
        if "context" in values:
            values["context"] = plain(values["context"])
        with self.engine.begin() as conn:
            return move(conn, execution_id, expected, at, updated_at=now, **values)

    def snapshot(
        self, execution_id: str
    ) -> tuple[Execution, list[StepRecord], list[tuple[int, int]]]:
        """The execution, its step records in order and its applied (step, phase) pairs in
        order, read together; ``KeyError`` if there is no such execution."""
        with self.engine.connect() as conn:
            row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
            if row is None:
                raise KeyError(execution_id)
            records = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id).order_by(steps.c.step)
            ).all()
            phases = conn.execute(
                select(applied.c.step, applied.c.phase)
                .where(applied.c.execution_id == execution_id)
                .order_by(applied.c.step, applied.c.phase)
            ).all()
        return (
            execution_of(row._mapping),
            [
                StepRecord(
                    r.execution_id, r.step, r.name, r.status, r.plan, r.applied_phases, r.result
                )
                for r in records
            ],
            [(r.step, r.phase) for r in phases],
        )

    def commit(self, execution_id: str, write: Write) -> Execution | None:
        """Persist one transition in ONE transaction: the compare-and-set on the state and
        (step, phase) of ``write`` (setting ``write.moves``), the step record, the applied
        phase and the audit rows. Returns the execution as it is after, or None (nothing
        written) when someone else moved it first or the phase was already recorded."""
        try:
            with self.engine.begin() as conn:
                values = {"updated_at": write.now, **write.moves}
                if not move(conn, execution_id, write.expected, write.at, **values):
                    raise Undone
                if write.step is not None:
                    put_step(conn, execution_id, write.step, write.now)
                if write.applied is not None:
                    put_applied(conn, execution_id, write.applied, write.now)
                append_audit(conn, execution_id, write.now, write.audit)
                row = conn.execute(
                    select(executions).where(executions.c.id == execution_id)
                ).first()
        except (Undone, IntegrityError):
            return None
        assert row is not None
        return execution_of(row._mapping)

    def claim(self, execution_id: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take the right to advance the execution until ``until`` (a lease); False if held."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(executions)
                .where(
                    executions.c.id == execution_id,
                    (executions.c.owner.is_(None))
                    | (executions.c.owner == owner)
                    | (executions.c.lease_until < now),
                )
                .values(owner=owner, lease_until=until)
            )
            return done.rowcount == 1

    def release(self, execution_id: str, owner: str) -> None:
        """Give the lease back."""
        with self.engine.begin() as conn:
            conn.execute(
                update(executions)
                .where(executions.c.id == execution_id, executions.c.owner == owner)
                .values(owner=None, lease_until=None)
            )


def append_audit(
    conn: Any, execution_id: str | None, now: datetime, rows: Sequence[AuditWrite]
) -> None:
    """Append ``rows`` to the audit log in ``conn``'s transaction, in order."""
    for row in rows:
        append(conn, row.kind, now, execution_id, row.actor, row.via, row.detail)
