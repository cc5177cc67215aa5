"""Approve, deny, refuse and expire: the decisions people (and the timer) make on executions.

Input: an execution ID or prefix, who decides (user, groups, via) and what they were shown
(step, and from a Slack button the phase and the request's nonce). Output: a ``Decision``;
the execution moved by one compare-and-set on exactly that request (the approval's audit row
in the same transaction), or the refusal audited. The rules are
``guardian.approval.rules``. A part of ``Runner`` (``guardian.executor.shell``): approve and
deny are called by ``guardian.app.chatops`` and ``guardian.app.commands.approvals``, refuse by
``guardian.app.chatops`` (a click it cannot read) and by approve and deny themselves,
expire_due by ``guardian.app.daemon.run`` (the expiry job) and ``Runner.advance_all``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, Required, TypedDict, Unpack

from guardian.approval.notify import Notifier
from guardian.approval.rules import already_decided, not_found, out_of_date, refusal
from guardian.audit.records import Execution
from guardian.executor.machine import expiry
from guardian.executor.ports import AuditWrite, ExecutorStore
from guardian.playbooks.model import Playbook


@dataclass(frozen=True)
class Decision:
    """The answer to an approve/deny request."""

    ok: bool
    message: str


Groups = tuple[str, ...]
"""The groups of who decides (from Slack: their user groups)."""


class Asked(TypedDict):
    """What a decision names: the step (0-based) and, from a Slack button, the phase and
    the request's nonce it was shown for."""

    step: Required[int]
    phase: NotRequired[int | None]
    nonce: NotRequired[str | None]


class Deciding:
    """The decisions of ``Runner``: what it needs is declared here, the Runner has it."""

    store: ExecutorStore
    playbooks: Mapping[str, Playbook]
    notifier: Notifier
    clock: Callable[[], datetime]

    def approve(
        self, execution_id: str, actor: str, via: str, groups: Groups = (), **asked: Unpack[Asked]
    ) -> Decision:
        """Approve ``step`` (0-based) of the execution, if it is the step awaiting approval
        and ``actor`` may; every refusal is audited. A Slack button also names the ``phase``
        and the ``nonce`` of the request it was shown for; the console names the step."""
        return self.decide(execution_id, actor, via, groups, "approved", asked)

    def deny(
        self, execution_id: str, actor: str, via: str, groups: Groups = (), **asked: Unpack[Asked]
    ) -> Decision:
        """Deny ``step`` of the execution (and so the execution), if ``actor`` may."""
        return self.decide(execution_id, actor, via, groups, "denied", asked)

    def refuse(
        self, execution_id: str | None, actor: str, via: str, verb: str, reason: str, **detail: Any
    ) -> Decision:
        """Audit a refused decision (``verb``: approve or deny) and return it."""
        self.store.record(
            "refused", self.clock(), execution_id, actor, via, action=verb, reason=reason, **detail
        )
        return Decision(False, reason)

    def decide(
        self,
        execution_id: str,
        actor: str,
        via: str,
        groups: tuple[str, ...],
        to: str,
        asked: Asked,
    ) -> Decision:
        """Move the step ``asked`` names (at its phase, if given) of the execution to ``to``
        (approved or denied), bound to the request ``nonce`` if given, or refuse."""
        now = self.clock()
        shown, nonce = (asked["step"], asked.get("phase")), asked.get("nonce")
        verb = "approve" if to == "approved" else "deny"
        asking = {"step": shown[0], **({"request": nonce} if nonce else {})}
        try:
            ex = self.store.find(execution_id)
        except KeyError as exc:
            given = {"given": execution_id[:64], **asking}
            return self.refuse(None, actor, via, verb, not_found(execution_id, exc), **given)
        book = self.playbooks.get(ex.playbook)
        refused = refusal(ex, book, actor, groups, to, shown, now)
        if refused.expired:
            self.expire(ex, now)
        if refused.reason or book is None:
            return self.refuse(ex.id, actor, via, verb, refused.reason, **asking)
        step = book.steps[ex.step]
        reason = self._cas(ex, to, actor, via, step.name, nonce, now)
        if reason:
            return self.refuse(ex.id, actor, via, verb, reason, **asking)
        self.notifier.notify(to, self.store.get(ex.id), {"by": actor, "via": via})
        return Decision(
            True, f"step {ex.step + 1} ({step.name}) of execution {ex.id} {to} by {actor}"
        )

    def _cas(
        self,
        ex: Execution,
        to: str,
        actor: str,
        via: str,
        step_name: str,
        nonce: str | None,
        now: datetime,
    ) -> str:
        """Decide the open request of the execution's step (one transaction, with its audit
        row); why not ("" when decided)."""
        current = self.store.request(ex.id, ex.step)
        if current is None:  # asked for before approvals carried a step and a nonce
            current_nonce = self.store.reopen(ex.id, ex.step, ex.phase, now)
        else:
            current_nonce = current.nonce
        if nonce is not None and nonce != current_nonce:
            return out_of_date(ex, ex.step)
        detail = {"step": ex.step, "step_name": step_name, "request": current_nonce}
        row = AuditWrite("approved" if to == "approved" else "denied", actor, via, detail)
        if not self.store.decide(ex.id, ex.step, ex.phase, current_nonce, to, actor, now, (row,)):
            return already_decided(ex, ex.step)
        return ""

    def expire_due(self) -> list[str]:
        """Expire every pending approval past its deadline; returns their IDs."""
        now = self.clock()
        expired = []
        for ex in self.store.executions(["awaiting_approval"]):
            if ex.expires_at is not None and now >= ex.expires_at and self.expire(ex, now):
                expired.append(ex.id)
        return expired

    def expire(self, ex: Execution, now: datetime) -> bool:
        """Move ``ex`` from awaiting approval to expired (audited, notified); False if it
        had moved."""
        moved = self.store.commit(ex.id, expiry(ex, now))
        if moved is None:
            return False
        self.notifier.notify("expired", moved, {})
        return True
