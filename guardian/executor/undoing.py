"""A person's undo of an execution: every applied step reversed, newest first, once.

Input: an execution ID or prefix, who asks (user, groups, via) and, from a Slack button, the
number of applied phases the message showed. Output: a ``Decision``; the changes each applied
step's stored plan recorded reversed on the API server (``guardian.executor.undo``), then the
execution moved to ``undone`` by one compare-and-set with its audit row (who, when, what was
undone, the pending approval it cancelled), or the refusal audited. The rules are
``guardian.approval.rules.undo_refusal``. The undo holds the execution's lease, so nothing
moves it meanwhile and a second undo waits, then finds it undone. When the runner holds the
lease (a step is being verified), the undo asks it to stop (a setting the runner's wait reads
every couple of seconds, ``UndoWanted``: the step fails "stopped: ... asked to undo"), waits
up to ``UNDO_WAIT`` seconds for the lease, then undoes. The kill switch does not stop an undo
(it only restores). A part of ``Runner`` (``guardian.executor.shell``), with the runner's
lease keeping and verification wait; called by ``guardian.app.chatops`` (the Undo button,
``/guardian undo``) and ``guardian.app.commands.approvals`` (``guardian approvals undo``).
Tested in ``tests/test_undo_execution.py`` (SQLite and PostgreSQL; the console on the lab)
and, the Undo button on the lab, ``tests/test_slack.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from guardian.approval.rules import not_found, undo_refusal
from guardian.audit.records import STATES, Execution
from guardian.errors import GuardianError
from guardian.executor.decisions import Deciding, Decision, Groups
from guardian.executor.ports import AuditWrite, Write
from guardian.executor.undo import undo_applied
from guardian.planning.plans import KubeFor
from guardian.playbooks.template import TemplateError

UNDO_WAIT = 30.0
"""Seconds an undo waits for the runner to stop the step in flight and give the lease back."""


class UndoWanted(Exception):
    """Raised in a verification's wait when a person asked to undo the execution."""

    def __init__(self, actor: str) -> None:
        super().__init__(actor)
        self.actor = actor


def undo_key(execution_id: str) -> str:
    """The setting that asks the runner to stop the execution's step for an undo."""
    return f"undo:{execution_id}"


class Undoing(Deciding):
    """The undo of ``Runner``: what it needs beyond ``Deciding`` is declared here."""

    kube_for: KubeFor
    lease: int
    owner: str
    sleep: Callable[[float], None]

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
        owner = f"undo-{uuid.uuid4().hex[:8]}"
        if not self._take(found.id, owner, actor):
            busy = (
                f"execution {found.id} did not stop for the undo within {UNDO_WAIT:.0f}s; "
                "nothing was undone: try again"
            )
            return self.refuse(found.id, actor, via, "undo", busy)
        try:
            now = self.store.get(found.id)
            if now.state == "undone" and f"stopped: {actor} asked to undo" in now.message:
                return Decision(True, f"execution {now.id} is undone: {now.message}")
            reason = self._undo_refusal(found.id, actor, groups, shown)  # as it is now
            if reason:
                return self.refuse(found.id, actor, via, "undo", reason)
            return self._undo(found.id, actor, via)
        finally:
            self.store.release(found.id, owner)

    def _take(self, execution_id: str, owner: str, actor: str) -> bool:
        """Take the execution's lease; when the runner holds it, ask it to stop and wait."""
        if self._claim(execution_id, owner):
            return True
        try:  # two undos at once may both insert the key first: one wins, the flag is set
            self.store.set_setting(undo_key(execution_id), actor, self.clock())
        except Exception:
            if not self.store.setting(undo_key(execution_id)):
                raise
        try:
            deadline = time.monotonic() + UNDO_WAIT
            while time.monotonic() < deadline:
                self.sleep(0.5)
                if self._claim(execution_id, owner):
                    return True
            return False
        finally:
            self.store.set_setting(undo_key(execution_id), "", self.clock())

    def _claim(self, execution_id: str, owner: str) -> bool:
        now = self.clock()
        return self.store.claim(execution_id, owner, now, now + timedelta(seconds=self.lease))

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
            name = book.steps[ex.step].name
            cancelled = f"; the approval of step {ex.step + 1} ({name}) is cancelled"
        message = f"undone by {actor} ({via}): {len(changes)} changes restored{cancelled}"
        now = self.clock()
        write = Write(
            tuple(s for s in STATES if s != "undone"),  # under the lease: only a decision moves it
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

    def _waiting(self, ex: Execution) -> Callable[[float], None]:
        """The sleep of a verification: it keeps the execution's lease, and raises
        ``UndoWanted`` once a person asked to undo the execution (``undo_key``)."""

        def sleep(seconds: float) -> None:
            self.sleep(seconds)
            self._keep_lease(ex.id)
            wanted = self.store.setting(undo_key(ex.id))
            if wanted:
                raise UndoWanted(wanted)

        return sleep

    def _keep_lease(self, execution_id: str) -> None:
        now = self.clock()
        self.store.claim(execution_id, self.owner, now, now + timedelta(seconds=self.lease))
