"""The runner: playbook executions as a persisted state machine.

Input: a ``Store``, the playbooks, a way to reach the API server per kubeconfig context
(``KubeFor``), the SLO signals verification needs (``Signals``) and a ``Notifier``. Output:
executions moved through

    proposed → awaiting_approval → approved → running (step k, phase j) → ... →
    succeeded | failed | undone,   or  denied | expired

one persisted boundary at a time. A step's plan is stored before anything is applied and
every applied phase is recorded (once: a unique key), so a process killed anywhere and
started again continues from the store: it re-plans nothing, re-applies no recorded phase,
and loses no pending approval. A decision names the step it was shown for (and, from a
Slack button, the phase and the request's nonce) and is one compare-and-set on exactly
that: a decision for any step but the one awaiting approval now is refused. Every change
of state, and every refusal, is written to the audit log.
Called by the CLI (``playbook run``, ``approvals``), the policy, and the daemon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from guardian.actions import CATALOGUE, Plan, Refused, execute, undo
from guardian.actions.base import Guardrails, KubeAPI, verify_until
from guardian.audit.records import OPEN_STATES, AmbiguousPrefix, Execution
from guardian.clients.store import Store
from guardian.errors import GuardianError
from guardian.playbooks import template
from guardian.playbooks.model import Playbook, Step

log = logging.getLogger(__name__)

KubeFor = Callable[[str | None], KubeAPI]
"""The API server for a kubeconfig context (``None``: the default one)."""


class Signals(Protocol):
    """What step verification reads from Prometheus."""

    def short_burn(self, slo: str) -> float | None:
        """The SLO's burn rate over its shortest window now (``None``: no data)."""

    def holds(self, promql: str) -> bool:
        """True when ``promql`` returns at least one sample now."""


class Notifier(Protocol):
    """Where people hear about executions (Slack, or the log)."""

    def notify(self, event: str, execution: Execution, detail: Mapping[str, Any]) -> None:
        """``event`` happened to ``execution`` (proposed, awaiting_approval, step, final)."""

    def announce(self, slo: str, text: str) -> None:
        """A notification without an execution (blind mode, a ticket)."""


class Silent:
    """A notifier that tells no one but the log (console use: the CLI prints instead)."""

    def notify(self, event: str, execution: Execution, detail: Mapping[str, Any]) -> None:
        del event, execution, detail

    def announce(self, slo: str, text: str) -> None:
        log.warning("%s: %s", slo, text)


@dataclass(frozen=True)
class Decision:
    """The answer to an approve/deny request."""

    ok: bool
    message: str


@dataclass(frozen=True)
class StepCheck:
    """What a dry run found for one step."""

    step: str
    action: str
    approval: str
    plan: Plan | None
    skipped: str = ""
    problems: tuple[str, ...] = ()


@dataclass
class Runner:
    """Moves executions; one instance per process (``owner`` names it in leases)."""

    store: Store
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

    # proposing and deciding ----------------------------------------------------------------

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

    def approve(
        self,
        execution_id: str,
        actor: str,
        via: str,
        groups: tuple[str, ...] = (),
        *,
        step: int,
        phase: int | None = None,
        nonce: str | None = None,
    ) -> Decision:
        """Approve ``step`` (0-based) of the execution, if it is the step awaiting approval
        and ``actor`` may; every refusal is audited. A Slack button also names the ``phase``
        and the ``nonce`` of the request it was shown for; the console names the step."""
        return self._decide(execution_id, actor, via, groups, "approved", step, phase, nonce)

    def deny(
        self,
        execution_id: str,
        actor: str,
        via: str,
        groups: tuple[str, ...] = (),
        *,
        step: int,
        phase: int | None = None,
        nonce: str | None = None,
    ) -> Decision:
        """Deny ``step`` of the execution (and so the execution), if ``actor`` may."""
        return self._decide(execution_id, actor, via, groups, "denied", step, phase, nonce)

    def refuse(
        self, execution_id: str | None, actor: str, via: str, verb: str, reason: str, **detail: Any
    ) -> Decision:
        """Audit a refused decision (``verb``: approve or deny) and return it."""
        self.store.record(
            "refused", self.clock(), execution_id, actor, via, action=verb, reason=reason, **detail
        )
        return Decision(False, reason)

    def _decide(
        self,
        execution_id: str,
        actor: str,
        via: str,
        groups: tuple[str, ...],
        to: str,
        step_index: int,
        phase: int | None,
        nonce: str | None,
    ) -> Decision:
        now = self.clock()
        verb = "approve" if to == "approved" else "deny"
        asked = {"step": step_index, **({"request": nonce} if nonce else {})}
        try:
            ex = self.store.find(execution_id)
        except KeyError as exc:
            given = {"given": execution_id[:64], **asked}
            return self.refuse(None, actor, via, verb, _not_found(execution_id, exc), **given)
        book = self.playbooks.get(ex.playbook)
        reason = self._refusal(ex, book, actor, groups, to, step_index, phase, now)
        if not reason:
            current = self.store.request(ex.id, ex.step)
            if current is None:  # asked for before approvals carried a step and a nonce
                current_nonce = self.store.reopen(ex.id, ex.step, ex.phase, now)
            else:
                current_nonce = current.nonce
            if nonce is not None and nonce != current_nonce:
                reason = (
                    f"this message is out of date for step {step_index + 1} of execution "
                    f"{ex.id}; nothing was decided: use the execution's current message"
                )
            elif not self.store.decide(ex.id, ex.step, ex.phase, current_nonce, to, actor, now):
                reason = f"step {step_index + 1} of execution {ex.id} was already decided"
            nonce = current_nonce
        if reason or book is None:
            return self.refuse(ex.id, actor, via, verb, reason, **asked)
        step = book.steps[ex.step]
        self.store.record(
            to, now, ex.id, actor, via, step=ex.step, step_name=step.name, request=nonce
        )
        self.notifier.notify(to, self.store.get(ex.id), {"by": actor, "via": via})
        return Decision(
            True, f"step {ex.step + 1} ({step.name}) of execution {ex.id} {to} by {actor}"
        )

    def _refusal(
        self,
        ex: Execution,
        book: Playbook | None,
        actor: str,
        groups: tuple[str, ...],
        to: str,
        step_index: int,
        phase: int | None,
        now: datetime,
    ) -> str:
        """Why ``actor`` may not decide ``step_index`` of ``ex`` now ("" if they may)."""
        if (
            ex.state != "awaiting_approval"
            or ex.step != step_index
            or (phase is not None and ex.phase != phase)
        ):
            return (
                f"step {step_index + 1} of execution {ex.id} is not awaiting approval: "
                f"the execution is {_where(ex)}; nothing was decided"
            )
        if book is None or ex.step >= len(book.steps):
            return f"playbook {ex.playbook} of execution {ex.id} is not loaded"
        if ex.expires_at is not None and now >= ex.expires_at:
            self._expire(ex, now)
            return f"the approval of execution {ex.id} expired at {ex.expires_at:%H:%M:%S} UTC"
        if not _may_approve(book, actor, groups):
            return f"{actor} is not an approver of playbook {book.name}"
        if to == "approved" and actor == ex.requested_by:
            return f"{actor} asked for execution {ex.id} and cannot also approve it"
        return ""

    def expire_due(self) -> list[str]:
        """Expire every pending approval past its deadline; returns their IDs."""
        now = self.clock()
        expired = []
        for ex in self.store.executions(["awaiting_approval"]):
            if ex.expires_at is not None and now >= ex.expires_at and self._expire(ex, now):
                expired.append(ex.id)
        return expired

    def _expire(self, ex: Execution, now: datetime) -> bool:
        if not self.store.transition(
            ex.id, "awaiting_approval", now, at=(ex.step, ex.phase), state="expired"
        ):
            return False
        self.store.record("expired", now, ex.id, "guardian", "timer", step=ex.step)
        self.notifier.notify("expired", self.store.get(ex.id), {})
        return True

    # advancing -----------------------------------------------------------------------------

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
        return self.store.setting("paused", "false") == "true"

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

    def _advance(self, execution_id: str) -> Execution:
        now = self.clock()
        if self.paused():
            return self.store.get(execution_id)  # kill switch: nothing moves
        if not self.store.claim(execution_id, self.owner, now, now + timedelta(seconds=self.lease)):
            return self.store.get(execution_id)  # another process is moving it
        try:
            while not self.paused():
                ex = self.store.get(execution_id)
                if self.stopping.is_set() and ex.state != "running":
                    break  # shutting down: finish the step in flight, start no other
                if not self._one(ex):
                    break
                self.store.claim(
                    execution_id,
                    self.owner,
                    self.clock(),
                    self.clock() + timedelta(seconds=self.lease),
                )
            return self.store.get(execution_id)
        finally:
            self.store.release(execution_id, self.owner)

    def _one(self, ex: Execution) -> bool:
        """One transition; False when the execution waits or is over."""
        book = self.playbooks.get(ex.playbook)
        if book is None:
            return self._finish(ex, "failed", f"playbook {ex.playbook} is no longer loaded")
        if ex.state == "proposed":
            return self._open_step(ex, book)
        if ex.state == "approved":
            return self._plan_step(ex, book)
        if ex.state == "running":
            return self._run_phase(ex, book)
        return False  # awaiting approval, or final

    def _open_step(self, ex: Execution, book: Playbook) -> bool:
        now = self.clock()
        if ex.step >= len(book.steps):
            return self._finish(ex, "succeeded", "every step done")
        step = book.steps[ex.step]
        if step.when is not None and not _present(step.when, ex.context):
            self.store.save_step(ex.id, ex.step, step.name, "skipped", now)
            self._audit(
                "skipped",
                now,
                ex,
                step=ex.step,
                step_name=step.name,
                reason=f"{step.when} is not given",
            )
            return self.store.transition(
                ex.id, "proposed", now, at=(ex.step, ex.phase), step=ex.step + 1, phase=0
            )
        if step.approval == "auto":
            self.store.record(
                "approved", now, ex.id, "guardian", "auto", step=ex.step, step_name=step.name
            )
            return self.store.transition(
                ex.id, "proposed", now, at=(ex.step, ex.phase), state="approved"
            )
        expires = now + timedelta(seconds=self.approval_timeout)
        try:
            plan = self._preview(ex, step)
        except Refused as exc:  # a protected target: nobody is asked to approve it
            return self._fail(ex, step, f"plan: {exc.message}")
        nonce = self.store.ask(ex.id, ex.step, ex.phase, now, expires)
        if nonce is None:
            return True
        self._audit(
            "awaiting_approval",
            now,
            ex,
            step=ex.step,
            step_name=step.name,
            expires_at=expires,
            request=nonce,
        )
        self.notifier.notify(
            "awaiting_approval",
            self.store.get(ex.id),
            {"step": step.name, "action": step.action, "plan": plan, "request": nonce},
        )
        return False

    def _preview(self, ex: Execution, step: Step) -> dict[str, Any] | None:
        """The plan the approver will be asked about (read-only; re-made once approved)."""
        try:
            return self._make_plan(ex, step).to_json()
        except Refused:
            raise
        except (GuardianError, template.TemplateError, ValidationError) as exc:
            return {"error": _text(exc)}

    def _make_plan(self, ex: Execution, step: Step) -> Plan:
        action = CATALOGUE[step.action]
        params = action.params.model_validate(template.render(step.params, ex.context))
        context = template.render(step.context, ex.context) if step.context else None
        return action.plan(self.kube_for(context), params, self._guardrails())

    def _guardrails(self) -> Guardrails:
        return Guardrails(self.protected_subjects, self.max_changes)

    def _plan_step(self, ex: Execution, book: Playbook) -> bool:
        now = self.clock()
        step = book.steps[ex.step]
        saved = {s.step: s for s in self.store.steps(ex.id)}.get(ex.step)
        if saved is None or saved.plan is None:
            try:
                plan = self._make_plan(ex, step)
            except (GuardianError, template.TemplateError, ValidationError) as exc:
                return self._fail(ex, step, f"plan: {_text(exc)}")
            already = sum(
                len(s.plan["changes"])
                for s in self.store.steps(ex.id)
                if s.plan and s.step < ex.step
            )
            if already + len(plan.changes) > self.max_changes:
                return self._fail(
                    ex,
                    step,
                    f"blast radius: {already + len(plan.changes)} changes would exceed the "
                    f"maximum of {self.max_changes}",
                )
            record = {**plan.to_record(), "started": now.isoformat()}
            self.store.save_step(ex.id, ex.step, step.name, "planned", now, plan=record)
            self._audit(
                "planned",
                now,
                ex,
                step=ex.step,
                step_name=step.name,
                changes=len(plan.changes),
                target=plan.target,
            )
            self.on_boundary(f"planned {ex.step}")
        return self.store.transition(
            ex.id, "approved", now, at=(ex.step, ex.phase), state="running", phase=0
        )

    def _run_phase(self, ex: Execution, book: Playbook) -> bool:
        step = book.steps[ex.step]
        record = {s.step: s for s in self.store.steps(ex.id)}[ex.step]
        assert record.plan is not None
        plan = Plan.from_record(record.plan)
        batches = plan.batches() or [0]
        started = datetime.fromisoformat(record.plan["started"])
        if (self.clock() - started).total_seconds() > step.timeout:
            return self._fail(ex, step, f"timed out after {step.timeout}s")
        batch = batches[ex.phase]
        try:
            kube = self._kube(ex, step)
        except (GuardianError, template.TemplateError) as exc:
            return self._fail(ex, step, f"kubeconfig: {_text(exc)}")
        if (ex.step, ex.phase) not in self.store.applied_phases(ex.id):
            try:
                execute(kube, plan.only(batch))
            except GuardianError as exc:
                return self._fail(ex, step, f"apply: {exc.message}")
            self.on_boundary(f"sent {ex.step}/{ex.phase}")
            now = self.clock()
            self.store.mark_applied(ex.id, ex.step, ex.phase, self.owner, now)
            self._audit(
                "applied",
                now,
                ex,
                step=ex.step,
                step_name=step.name,
                phase=ex.phase,
                changes=[c.description for c in plan.only(batch).changes],
            )
            self.notifier.notify(
                "applied",
                self.store.get(ex.id),
                {"step": step.name, "phase": ex.phase, "of": len(batches)},
            )
            self.on_boundary(f"applied {ex.step}/{ex.phase}")
        problems = self._verify(ex, step, plan.only(batch), kube)
        now = self.clock()
        if problems:
            return self._fail(ex, step, "verify: " + "; ".join(problems))
        if ex.phase + 1 < len(batches):
            self._audit("verified", now, ex, step=ex.step, step_name=step.name, phase=ex.phase)
            return self.store.transition(
                ex.id, "running", now, at=(ex.step, ex.phase), phase=ex.phase + 1
            )
        self.store.save_step(
            ex.id,
            ex.step,
            step.name,
            "succeeded",
            now,
            result={"verified": True, "phases": len(batches)},
        )
        self._audit("step_succeeded", now, ex, step=ex.step, step_name=step.name)
        self.notifier.notify("step_succeeded", self.store.get(ex.id), {"step": step.name})
        moved = self.store.transition(
            ex.id,
            "running",
            now,
            at=(ex.step, ex.phase),
            state="proposed",
            step=ex.step + 1,
            phase=0,
            expires_at=None,
        )
        self.on_boundary(f"done {ex.step}")
        return moved

    def _audit(self, kind: str, now: datetime, ex: Execution, **detail: Any) -> None:
        """An audit row written by the runner itself, and a log line with the execution."""
        self.store.record(kind, now, ex.id, "guardian", "runner", **detail)
        shown = {
            k: v for k, v in detail.items() if k in ("step_name", "phase", "message", "problem")
        }
        log.info(
            "execution %s (%s): %s %s",
            ex.id,
            ex.playbook,
            kind,
            " ".join(f"{k}={v}" for k, v in shown.items()),
            extra={"execution": ex.id},
        )

    def _kube(self, ex: Execution, step: Step) -> KubeAPI:
        context = template.render(step.context, ex.context) if step.context else None
        return self.kube_for(context)

    def _verify(self, ex: Execution, step: Step, plan: Plan, kube: KubeAPI) -> list[str]:
        action = CATALOGUE[step.action]
        within = step.verify.within if step.verify else 60

        def check() -> list[str]:
            try:
                problems = action.verify(kube, plan)
            except GuardianError as exc:
                problems = [exc.message]
            if step.verify is not None:
                problems.extend(self._signals(ex, step))
            return problems

        def sleep(seconds: float) -> None:  # keep the execution's lease while waiting
            self.sleep(seconds)
            now = self.clock()
            self.store.claim(ex.id, self.owner, now, now + timedelta(seconds=self.lease))

        return verify_until(check, within, sleep=sleep)

    def _signals(self, ex: Execution, step: Step) -> list[str]:
        assert step.verify is not None
        problems = []
        if step.verify.burn_falls:
            at_start = (ex.context.get("slo") or {}).get("short_burn")
            now = self.signals.short_burn(ex.slo) if ex.slo else None
            if now is None:
                problems.append(f"no data for {ex.slo or 'the SLO'}'s short-window burn rate")
            elif at_start is not None and now >= float(at_start):
                problems.append(
                    f"short-window burn rate {now:.2f} has not fallen below {at_start:.2f}"
                )
        if step.verify.promql and not self.signals.holds(step.verify.promql):
            problems.append(f"{step.verify.promql} returned nothing")
        return problems

    def _fail(self, ex: Execution, step: Step, problem: str) -> bool:
        now = self.clock()
        self.store.save_step(ex.id, ex.step, step.name, "failed", now, result={"problem": problem})
        self._audit("step_failed", now, ex, step=ex.step, step_name=step.name, problem=problem)
        if step.on_failure == "undo":
            undone = self._undo(ex)
            return self._finish(
                ex, "undone", f"{step.name}: {problem}; undid {len(undone)} changes"
            )
        return self._finish(ex, "failed", f"{step.name}: {problem}")

    def _undo(self, ex: Execution) -> list[str]:
        """Undo every applied phase of this execution, newest first."""
        done: list[str] = []
        records = {s.step: s for s in self.store.steps(ex.id)}
        book = self.playbooks[ex.playbook]
        for step_index, phase in reversed(self.store.applied_phases(ex.id)):
            record = records[step_index]
            assert record.plan is not None
            plan = Plan.from_record(record.plan)
            batch = (plan.batches() or [0])[phase]
            kube = self._kube(ex, book.steps[step_index])
            done.extend(undo(kube, plan.only(batch)))
        self._audit("undone", self.clock(), ex, changes=done)
        return done

    def _finish(self, ex: Execution, state: str, message: str) -> bool:
        now = self.clock()
        if self.store.transition(
            ex.id, ex.state, now, at=(ex.step, ex.phase), state=state, message=message
        ):
            self._audit(state, now, ex, message=message)
            self.notifier.notify(state, self.store.get(ex.id), {"message": message})
        return False

    # dry run -------------------------------------------------------------------------------

    def dry_run(self, playbook: str, context: Mapping[str, Any]) -> list[StepCheck]:
        """Plan every step and check each change with ``dryRun=All``; nothing changes."""
        book = self.playbooks[playbook]
        checks = []
        for step in book.steps:
            if step.when is not None and not _present(step.when, context):
                checks.append(
                    StepCheck(
                        step.name,
                        step.action,
                        step.approval,
                        None,
                        skipped=f"{step.when} is not given",
                    )
                )
                continue
            try:
                action = CATALOGUE[step.action]
                params = action.params.model_validate(template.render(step.params, context))
                where = template.render(step.context, context) if step.context else None
                kube = self.kube_for(where)
                plan = action.plan(kube, params, self._guardrails())
                self._guardrails().check(plan)
                execute(kube, plan, dry_run=True)
            except (GuardianError, template.TemplateError, ValidationError) as exc:
                checks.append(
                    StepCheck(step.name, step.action, step.approval, None, problems=(_text(exc),))
                )
                continue
            checks.append(StepCheck(step.name, step.action, step.approval, plan))
        return checks


def _present(path: str, context: Mapping[str, Any]) -> bool:
    try:
        return bool(template.lookup(path, context))
    except template.TemplateError:
        return False


def _where(ex: Execution) -> str:
    """Where an execution stands, for a refusal: its state, and its step while open."""
    state = ex.state.replace("_", " ")
    return f"{state} at step {ex.step + 1}" if ex.state in OPEN_STATES else state


def _not_found(given: str, exc: KeyError) -> str:
    if isinstance(exc, AmbiguousPrefix):
        return (
            f"execution ID prefix {given[:64]!r} matches more than one execution; give more of it"
        )
    return f"no execution {given[:64]!r} (give its ID or a unique prefix of 4 or more)"


def _may_approve(book: Playbook, actor: str, groups: tuple[str, ...]) -> bool:
    if not book.approver_users and not book.approver_groups:
        return True
    return actor in book.approver_users or any(g in book.approver_groups for g in groups)


def _text(exc: Exception) -> str:
    if isinstance(exc, GuardianError):
        return exc.message
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        message = str((first.get("ctx") or {}).get("error", first["msg"]))
        return f"{where}: {message}" if where else message
    return str(exc)


__all__ = ["Decision", "KubeFor", "Notifier", "Runner", "Signals", "Silent", "StepCheck"]
