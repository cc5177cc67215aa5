"""A person's undo of an execution: every applied step reversed, newest first, once.

Input: an execution ID or prefix, who asks (user, groups, via) and, from a Slack button, the
number of applied phases the message showed. Output: a ``Decision``; the changes each applied
step's stored plan recorded reversed on the API server (``guardian.executor.undo``), then the
execution moved to ``undone`` by one compare-and-set with its audit row (who, when, what was
undone, the pending approval it cancelled), or the refusal audited. The rules are
``guardian.approval.rules.undo_refusal``. While undoing, the undo holds the execution's
lease, so the runner moves nothing and a second undo at the same time is refused; a second
undo afterwards finds it undone. The kill switch does not stop an undo (it only restores).
A part of ``Runner`` (``guardian.executor.shell``); called by ``guardian.app.chatops`` (the
Undo button, ``/guardian undo``) and ``guardian.app.commands.approvals``
(``guardian approvals undo``). Tested in ``tests/test_undo_execution.py`` (SQLite and
PostgreSQL; the console on the lab) and, the Undo button on the lab, ``tests/test_slack.py``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from guardian.approval.rules import UNDOABLE, not_found, undo_refusal
from guardian.errors import GuardianError
from guardian.executor.decisions import Deciding, Decision, Groups
from guardian.executor.ports import AuditWrite, Write
from guardian.executor.undo import undo_applied
from guardian.planning.plans import KubeFor
from guardian.playbooks.template import TemplateError


class Undoing(Deciding):
    """The undo of ``Runner``: what it needs beyond ``Deciding`` is declared here."""

    kube_for: KubeFor
    lease: int

    def undo(
        self,
        execution_id: str,
        actor: str,
        via: str,
        groups: Groups = (),
        shown: int | None = None,
    ) -> Decision:
        """Undo every applied step of the execution, newest first, if ``actor`` may; every
        refusal is audited. ``shown``: the applied phases the clicked message counted (a
        message that counted fewer than are applied now is out of date)."""
        try:
            found = self.store.find(execution_id)
        except KeyError as exc:
            given = {"given": execution_id[:64]}
            return self.refuse(None, actor, via, "undo", not_found(execution_id, exc), **given)
        reason = self._undo_refusal(found.id, actor, groups, shown)
        if reason:
            return self.refuse(found.id, actor, via, "undo", reason)
        owner, now = f"undo-{uuid.uuid4().hex[:8]}", self.clock()
        if not self.store.claim(found.id, owner, now, now + timedelta(seconds=self.lease)):
            busy = f"execution {found.id} is being moved or undone right now; nothing was done"
            return self.refuse(found.id, actor, via, "undo", busy)
        try:
            reason = self._undo_refusal(found.id, actor, groups, shown)  # as it is now
            if reason:
                return self.refuse(found.id, actor, via, "undo", reason)
            return self._undo(found.id, actor, via)
        finally:
            self.store.release(found.id, owner)

    def _undo_refusal(
        self, execution_id: str, actor: str, groups: Groups, shown: int | None
    ) -> str:
        ex, _, applied = self.store.snapshot(execution_id)
        reason = undo_refusal(ex, self.playbooks.get(ex.playbook), actor, groups, applied)
        if not reason and shown is not None and shown != len(applied):
            return (
                f"this message is out of date for execution {ex.id} ({len(applied)} phases "
                "are applied now); nothing was undone: use the execution's current message"
            )
        return reason

    def _undo(self, execution_id: str, actor: str, via: str) -> Decision:
        """Reverse what was applied, then move to ``undone`` (holding the lease)."""
        ex, records, applied = self.store.snapshot(execution_id)
        book = self.playbooks[ex.playbook]
        try:
            changes = undo_applied(ex, book, records, applied, self.kube_for)
        except (GuardianError, TemplateError) as exc:
            error = exc.message if isinstance(exc, GuardianError) else str(exc)
            self.store.record("undo_failed", self.clock(), ex.id, actor, via, error=error)
            return Decision(
                False,
                f"undo of execution {ex.id} failed: {error}; it stays "
                f"{ex.state.replace('_', ' ')}: undo again once the cause is fixed",
            )
        steps = sorted({book.steps[s].name for s, _ in applied})
        detail: dict[str, Any] = {"changes": changes, "steps": steps}
        cancelled = ""
        if ex.state == "awaiting_approval" and ex.step < len(book.steps):
            request = self.store.request(ex.id, ex.step)
            detail["cancelled"] = {"step": ex.step, "request": request.nonce if request else None}
            cancelled = (
                f"; the approval of step {ex.step + 1} ({book.steps[ex.step].name}) is cancelled"
            )
        message = f"undone by {actor} ({via}): {len(changes)} changes restored{cancelled}"
        now = self.clock()
        write = Write(
            (*UNDOABLE, "approved"),  # an approval that raced the undo: the lease kept it still
            (ex.step, ex.phase),
            now,
            {"state": "undone", "message": message, "expires_at": None},
            audit=(AuditWrite("undone", actor, via, detail),),
        )
        moved = self.store.commit(ex.id, write)
        if moved is None:
            self.store.record("undo_failed", now, ex.id, actor, via, error="moved while undoing")
            return Decision(False, f"execution {ex.id} moved while it was undone: undo again")
        self.notifier.notify("undone", moved, {"by": actor, "via": via, "changes": changes})
        return Decision(True, f"execution {ex.id} {message}")
