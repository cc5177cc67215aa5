"""The executor's shell (``Runner``): reads the facts, does the I/O, persists each move once.

Input: a store (``ExecutorStore``), the playbooks, a way to reach the API server per
kubeconfig context (``KubeFor``), the SLO signals verification needs (``Signals``) and a
``Notifier``. Output: executions moved through the lifecycle that
``guardian.executor.machine`` decides, one persisted boundary at a time: the shell reads an
execution with its step records and applied phases, asks the machine for the next move, does
the I/O it needs (plan, apply, verify, undo, on the API server), and writes each transition
with its step record, applied phase and audit rows in ONE compare-and-set transaction
(``ExecutorStore.commit``). A step's plan is stored before anything is applied and every
applied phase is recorded once, so a process killed anywhere and started again continues from
the store: it re-plans nothing, re-applies no recorded phase, and loses no pending approval.
The kill switch (``guardian.audit.switch.KillSwitch``) is read before each move. Built by
``guardian.app.wiring`` (``runner``); called by ``guardian.pipeline.Cycle`` (propose, advance),
``guardian.app.daemon`` (advance_all, expire_due), ``guardian.app.chatops`` and
``guardian.app.commands`` (approvals, playbooks: propose, advance, dry_run); a person's undo
is ``guardian.executor.undoing``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.actions import Plan, Refused, execute
from guardian.actions.base import Guardrails, KubeAPI
from guardian.approval.notify import Notifier, Silent
from guardian.audit.records import OPEN_STATES, Execution, StepRecord
from guardian.audit.switch import KillSwitch
from guardian.errors import GuardianError
from guardian.executor import moves as m
from guardian.executor.machine import next_move
from guardian.executor.ports import ExecutorStore, Write
from guardian.executor.undo import undo_applied
from guardian.executor.undoing import Undoing, UndoWanted
from guardian.executor.verify import Signals, verify
from guardian.planning import plans
from guardian.planning.dry_run import StepCheck, dry_run
from guardian.planning.plans import KubeFor
from guardian.playbooks import template
from guardian.playbooks.model import Playbook

log = logging.getLogger("guardian.executor.shell")


@dataclass
class Runner(Undoing):
    """Moves executions; one instance per process (``owner`` names it in leases)."""

    store: ExecutorStore
    playbooks: Mapping[str, Playbook]
    kube_for: KubeFor
    signals: Signals
    notifier: Notifier = field(default_factory=Silent)
    owner: str = "guardian"
    """Who holds the lease while advancing. Keep it stable across restarts (a pod or host
    name): a restarted process takes its executions back at once, another one waits for the
    lease to run out."""
    approval_timeout: int = 900
    max_changes: int = 200
    protected_subjects: tuple[str, ...] = ()
    """Added to the subjects throttle-client never throttles (``policy.protected_subjects``)."""
    lease: int = 60
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep
    on_boundary: Callable[[str], None] = field(default=lambda where: None)
    """Called at every persisted boundary (``"applied 0/1"``...): a hook for logs and tests."""
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set on shutdown: the step in flight finishes (every phase), no other step starts."""
    _moving: set[str] = field(default_factory=set, init=False, repr=False)
    _moving_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def propose(
        self,
        playbook: str,
        context: Mapping[str, Any],
        requested_by: str,
        via: str,
        slo: str = "",
        target: str = "",
    ) -> Execution:
        """Create an execution of ``playbook`` with its trigger ``context``."""
        book = self.playbooks[playbook]
        execution = self.store.create(
            book.name, slo, target, "proposed", requested_by, via, dict(context), self.clock()
        )
        self.notifier.notify("proposed", execution, {"playbook": book.name})
        return execution

    def advance_all(self) -> list[Execution]:
        """Advance every open execution this process can claim (resumes after a restart).

        One execution that raises is logged and left where it is; the others still move."""
        self.expire_due()
        moved = []
        for ex in self.store.executions(OPEN_STATES):
            try:
                moved.append(self.advance(ex.id))
            except Exception:
                log.exception("execution %s: advancing failed; it stays %s", ex.id, ex.state)
        return moved

    def paused(self) -> bool:
        """True while the kill switch is on (``guardian pause``)."""
        return KillSwitch(self.store).engaged()

    def advance(self, execution_id: str) -> Execution:
        """Move the execution as far as it goes without a human; returns where it stopped.

        Two threads of one process never move the same execution (the second returns at
        once), two processes neither (a lease in the store), and every transition is a
        compare-and-set on state, step and phase. The kill switch is read before each one;
        on shutdown (``stopping``) the step in flight finishes and no other starts."""
        with self._moving_lock:
            if execution_id in self._moving:
                return self.store.get(execution_id)  # this process is already moving it
            self._moving.add(execution_id)
        try:
            return self._advance(execution_id)
        finally:
            with self._moving_lock:
                self._moving.discard(execution_id)

    def dry_run(self, playbook: str, context: Mapping[str, Any]) -> list[StepCheck]:
        """Plan every step and check each change with ``dryRun=All``; nothing changes
        (``guardian.planning.dry_run``)."""
        return dry_run(self.playbooks[playbook], context, self.kube_for, self._guardrails())

    def _advance(self, execution_id: str) -> Execution:
        now = self.clock()
        if self.paused():
            return self.store.get(execution_id)  # kill switch: nothing moves
        if not self.store.claim(execution_id, self.owner, now, now + timedelta(seconds=self.lease)):
            return self.store.get(execution_id)  # another process is moving it
        try:
            while True:  # the kill switch was read just above, and is after each move
                ex, records, applied = self.store.snapshot(execution_id)
                if self.stopping.is_set() and not _in_flight(ex, records):
                    break  # shutting down: finish the step in flight, start no other
                if not self._one(ex, self._facts(ex, records, applied)):
                    break
                self._keep_lease(execution_id)
                if self.paused():
                    break
            return self.store.get(execution_id)
        finally:
            self.store.release(execution_id, self.owner)

    def _facts(
        self, ex: Execution, records: list[StepRecord], applied: list[tuple[int, int]]
    ) -> m.Facts:
        """What the machine decides on: what the store holds, the playbook, the time."""
        book = self.playbooks.get(ex.playbook)
        return m.Facts(
            book,
            tuple(records),
            tuple(applied),
            self.clock(),
            self.owner,
            self.approval_timeout,
            self.max_changes,
        )

    def _one(self, ex: Execution, facts: m.Facts) -> bool:
        """One transition (with the I/O it needs); False when the execution waits or is over."""
        kube: list[KubeAPI] = []  # the API server of this step, reached once
        while True:
            move = next_move(ex, facts)
            before, extra = ex, {}
            if move.ask is not None:
                asked = self._ask(ex, move.ask)
                if asked is None:
                    return True
                ex, extra = asked[0], {"request": asked[1]}
            elif move.write is not None:
                moved = self._commit(ex, move.write)
                if moved is None:
                    return False
                ex = moved
                if move.write.applied is not None:
                    facts = replace(facts, applied=(*facts.applied, move.write.applied[:2]))
            for told in move.tell:
                if isinstance(told, m.Boundary):
                    self.on_boundary(told.where)
                else:
                    shown = before if told.prior else ex
                    self.notifier.notify(told.event, shown, {**told.detail, **extra})
            if move.need is None:
                return move.go_on
            outcome = self._perform(ex, facts, move.need, kube)
            later = move.need.what in ("apply", "verify", "undo")
            facts = replace(facts, outcome=outcome, now=self.clock() if later else facts.now)

    def _commit(self, ex: Execution, write: Write) -> Execution | None:
        moved = self.store.commit(ex.id, write)
        if moved is not None:
            for row in write.audit:
                if row.via == "runner":
                    _log(ex, row.kind, row.detail)
        return moved

    def _ask(self, ex: Execution, ask: m.Ask) -> tuple[Execution, str] | None:
        """Ask for approval (the move, the request and its audit row at once); the execution
        as it is then, and the request's nonce (None: someone else moved it first)."""
        now = ask.now
        nonce = self.store.ask(ex.id, ex.step, ex.phase, now, ask.expires_at, ask.audit)
        if nonce is None:
            return None
        for row in ask.audit:
            _log(ex, row.kind, {**row.detail, "request": nonce})
        asked = replace(ex, state="awaiting_approval", expires_at=ask.expires_at, updated_at=now)
        return asked, nonce

    def _perform(
        self, ex: Execution, facts: m.Facts, need: m.Need, kube: list[KubeAPI]
    ) -> m.Outcome:
        """Do the I/O the machine needs; its outcome."""
        if need.what == "undo":
            assert need.failure is not None and facts.book is not None
            changes = undo_applied(ex, facts.book, facts.records, facts.applied, self.kube_for)
            return m.Undid(need.failure, tuple(changes))
        assert need.step is not None
        if need.what == "preview":
            try:
                plan = plans.preview(self.kube_for, need.step, ex.context, self._guardrails())
            except Refused as exc:
                return m.Previewed(refused=exc.message)
            return m.Previewed(plan)
        if need.what == "plan":
            try:
                made = plans.make_plan(self.kube_for, need.step, ex.context, self._guardrails())
            except plans.PLANNING_ERRORS as exc:
                return m.Planned(error=plans.error_text(exc))
            return m.Planned(made)
        assert need.plan is not None
        if not kube:
            try:
                kube.append(plans.kube_of(self.kube_for, need.step, ex.context))
            except (GuardianError, template.TemplateError) as exc:
                error = f"kubeconfig: {plans.error_text(exc)}"
                return m.Sent(error) if need.what == "apply" else m.Checked(error=error)
        if need.what == "apply":
            return self._apply(ex, need.plan, kube[0])
        try:
            problems = verify(ex, need.step, need.plan, kube[0], self.signals, self._waiting(ex))
        except UndoWanted as exc:  # a person asked to undo: the step stops here
            return m.Checked(error=f"stopped: {exc.actor} asked to undo the execution")
        return m.Checked(tuple(problems))

    def _apply(self, ex: Execution, plan: Plan, kube: KubeAPI) -> m.Sent:
        try:
            execute(kube, plan)
        except GuardianError as exc:
            return m.Sent(f"apply: {exc.message}")
        self.on_boundary(f"sent {ex.step}/{ex.phase}")
        return m.Sent()

    def _guardrails(self) -> Guardrails:
        return Guardrails(self.protected_subjects, self.max_changes)


def _log(ex: Execution, kind: str, detail: Mapping[str, Any]) -> None:
    """A log line for an audit row the runner wrote, with the execution."""
    shown = {k: v for k, v in detail.items() if k in ("step_name", "phase", "message", "problem")}
    log.info(
        "execution %s (%s): %s %s",
        ex.id,
        ex.playbook,
        kind,
        " ".join(f"{k}={v}" for k, v in shown.items()),
        extra={"execution": ex.id},
    )


def _in_flight(ex: Execution, records: list[StepRecord]) -> bool:
    """True while a step is under way: running, or approved with its plan just made."""
    if ex.state == "running":
        return True
    return ex.state == "approved" and any(
        r.step == ex.step and r.status == "planned" for r in records
    )
