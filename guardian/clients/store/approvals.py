"""Approval requests: ask (with a nonce), read back, decide by compare-and-set.

Input: an execution's ID, step and phase, a nonce, the decision and who makes it, audit rows.
Output: a request's nonce (``ask``: None when the execution had moved; ``reopen``), the newest
``ApprovalRequest`` of a step (``request``), whether a decision won (``decide``); the audit rows
in the same transaction. A part of ``Store``, called through it by ``guardian.executor.shell``
(ask), ``guardian.executor.decisions`` (request, reopen, decide), ``guardian.approval.blocks``
and ``guardian.app.commands.approvals`` (request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Engine, select, update

from guardian.audit.records import ApprovalRequest
from guardian.clients.store.executions import append_audit
from guardian.clients.store.schema import Undone, approvals, aware, move, open_request
from guardian.executor.ports import AuditWrite


class Approvals:
    """Approvals: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def ask(
        self,
        execution_id: str,
        step: int,
        phase: int,
        now: datetime,
        expires_at: datetime,
        audit: Sequence[AuditWrite] = (),
    ) -> str | None:
        """Move the execution from ``proposed`` to ``awaiting_approval`` at (step, phase),
        open an approval request for it and append the ``audit`` rows (each with the
        request's nonce added as ``request``), in one transaction; returns the nonce, or
        None when the execution had moved (someone else asked first)."""
        with self.engine.begin() as conn:
            values = {"state": "awaiting_approval", "expires_at": expires_at, "updated_at": now}
            if not move(conn, execution_id, "proposed", (step, phase), **values):
                return None
            nonce = open_request(conn, execution_id, step, phase, now)
            rows = [replace(a, detail={**a.detail, "request": nonce}) for a in audit]
            append_audit(conn, execution_id, now, rows)
            return nonce

    def reopen(self, execution_id: str, step: int, phase: int, now: datetime) -> str:
        """Open a request for an execution already awaiting approval without one (asked
        before approvals carried a step and a nonce); returns its nonce."""
        with self.engine.begin() as conn:
            return open_request(conn, execution_id, step, phase, now)

    def request(self, execution_id: str, step: int) -> ApprovalRequest | None:
        """The newest approval request for the execution's ``step``, if there is one."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(approvals)
                .where(approvals.c.execution_id == execution_id, approvals.c.step == step)
                .order_by(approvals.c.asked_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return ApprovalRequest(
            row.nonce,
            row.execution_id,
            row.step,
            row.phase,
            aware(row.asked_at),
            row.decision,
            row.decided_by,
        )

    def decide(
        self,
        execution_id: str,
        step: int,
        phase: int,
        nonce: str,
        decision: str,
        actor: str,
        now: datetime,
        audit: Sequence[AuditWrite] = (),
    ) -> bool:
        """Decide the approval request ``nonce``: a compare-and-set on exactly (execution,
        step, phase, nonce), undecided, with the execution still awaiting approval at that
        step and phase. The execution moves to ``decision`` and the ``audit`` rows are
        appended in the same transaction; False (nothing changed) when any of it no longer
        holds."""
        try:
            with self.engine.begin() as conn:
                marked = conn.execute(
                    update(approvals)
                    .where(
                        approvals.c.nonce == nonce,
                        approvals.c.execution_id == execution_id,
                        approvals.c.step == step,
                        approvals.c.phase == phase,
                        approvals.c.decision.is_(None),
                    )
                    .values(decision=decision, decided_by=actor, decided_at=now)
                )
                if marked.rowcount != 1:
                    return False
                at = (step, phase)
                if not move(
                    conn, execution_id, "awaiting_approval", at, state=decision, updated_at=now
                ):
                    raise Undone
                append_audit(conn, execution_id, now, audit)
        except Undone:
            return False
        return True
