"""The executor's state machine, pure: (execution, facts) → the next move.

Input: an execution as stored and ``Facts`` (what the shell read: its playbook, step records,
applied phases, the time, and the outcome of the I/O it just did for it). Output: a ``Move``:
the ``Write`` to persist at once (the compare-and-set, step record, applied phase, audit rows),
the approval to ask for, the I/O the shell must do next (``Need``: preview, plan, apply, verify,
undo) and what to tell after the write (``Notify``, ``Boundary``); the values are in
``guardian.executor.moves``. The lifecycle:

    proposed → awaiting_approval → approved → running (step k, phase j) → ... →
    succeeded | failed | undone,   or  denied | expired

No I/O, no clock. Called by ``guardian.executor.shell`` (``Runner``) and
``guardian.executor.decisions`` (expiry).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from guardian.actions import Plan
from guardian.audit.records import Execution
from guardian.executor.moves import (
    Ask,
    Boundary,
    Checked,
    Facts,
    Failure,
    Final,
    Move,
    Need,
    Notify,
    Planned,
    Previewed,
    Sent,
    Undid,
)
from guardian.executor.ports import AuditWrite, StepWrite, Write
from guardian.planning.plans import blast_radius, present
from guardian.playbooks.model import Playbook, Step


def next_move(ex: Execution, facts: Facts) -> Move:
    """The next move of ``ex`` given ``facts``."""
    book, outcome = facts.book, facts.outcome
    if isinstance(outcome, Undid):
        return _undone(ex, facts, outcome)
    if book is None:
        return finish(ex, facts.now, "failed", f"playbook {ex.playbook} is no longer loaded")
    if ex.state == "proposed":
        return _open_step(ex, book, facts)
    if ex.state == "approved":
        return _plan_step(ex, book, facts)
    if ex.state == "running":
        return _run_phase(ex, book, facts)
    return Move()  # awaiting approval, or final


def _open_step(ex: Execution, book: Playbook, facts: Facts) -> Move:
    now, at = facts.now, (ex.step, ex.phase)
    if ex.step >= len(book.steps):
        return finish(ex, now, "succeeded", "every step done")
    step = book.steps[ex.step]
    named = {"step": ex.step, "step_name": step.name}
    if step.when is not None and not present(step.when, ex.context):
        skipped = AuditWrite(
            "skipped", "guardian", "runner", {**named, "reason": f"{step.when} is not given"}
        )
        moves = {"step": ex.step + 1, "phase": 0}
        record = StepWrite(ex.step, step.name, "skipped")
        return Move(Write("proposed", at, now, moves, record, audit=(skipped,)), go_on=True)
    if step.approval == "auto":
        approved = AuditWrite("approved", "guardian", "auto", named)
        return Move(
            Write("proposed", at, now, {"state": "approved"}, audit=(approved,)), go_on=True
        )
    outcome = facts.outcome
    if not isinstance(outcome, Previewed):
        return Move(need=Need("preview", step))
    if outcome.refused:  # a protected target: nobody is asked to approve it
        return fail(ex, step, facts, f"plan: {outcome.refused}")
    expires = now + timedelta(seconds=facts.approval_timeout)
    asked = AuditWrite("awaiting_approval", "guardian", "runner", {**named, "expires_at": expires})
    shown = {"step": step.name, "action": step.action, "plan": outcome.plan}
    return Move(ask=Ask(now, expires, (asked,)), tell=(Notify("awaiting_approval", shown),))


def _plan_step(ex: Execution, book: Playbook, facts: Facts) -> Move:
    now, at = facts.now, (ex.step, ex.phase)
    step = book.steps[ex.step]
    running = Write("approved", at, now, {"state": "running", "phase": 0})
    saved = {s.step: s for s in facts.records}.get(ex.step)
    if saved is not None and saved.plan is not None:
        return Move(running, go_on=True)
    outcome = facts.outcome
    if not isinstance(outcome, Planned):
        return Move(need=Need("plan", step))
    if outcome.plan is None:
        return fail(ex, step, facts, f"plan: {outcome.error}")
    plan = outcome.plan
    too_many = blast_radius(plan, ex.step, facts.records, facts.max_changes)
    if too_many:
        return fail(ex, step, facts, too_many)
    record = StepWrite(
        ex.step, step.name, "planned", plan={**plan.to_record(), "started": now.isoformat()}
    )
    planned = AuditWrite(
        "planned",
        "guardian",
        "runner",
        {
            "step": ex.step,
            "step_name": step.name,
            "changes": len(plan.changes),
            "target": plan.target,
        },
    )
    # the plan is a boundary of its own: a process killed here re-plans nothing
    kept = Write("approved", at, now, step=record, audit=(planned,))
    return Move(kept, tell=(Boundary(f"planned {ex.step}"),), go_on=True)


def _run_phase(ex: Execution, book: Playbook, facts: Facts) -> Move:
    step = book.steps[ex.step]
    record = {s.step: s for s in facts.records}[ex.step]
    assert record.plan is not None
    plan = Plan.from_record(record.plan)
    batches = plan.batches() or [0]
    phase = plan.only(batches[ex.phase])
    outcome = facts.outcome
    if isinstance(outcome, Sent):
        return _sent(ex, step, facts, outcome, (phase, len(batches)))
    if isinstance(outcome, Checked):
        return _checked(ex, step, facts, outcome, len(batches))
    started = datetime.fromisoformat(record.plan["started"])
    if (facts.now - started).total_seconds() > step.timeout:
        return fail(ex, step, facts, f"timed out after {step.timeout}s")
    if (ex.step, ex.phase) not in facts.applied:
        return Move(need=Need("apply", step, phase))
    return Move(need=Need("verify", step, phase))


def _sent(ex: Execution, step: Step, facts: Facts, sent: Sent, phase: tuple[Plan, int]) -> Move:
    if sent.error:
        return fail(ex, step, facts, sent.error)
    plan, batches = phase
    detail = {
        "step": ex.step,
        "step_name": step.name,
        "phase": ex.phase,
        "changes": [c.description for c in plan.changes],
    }
    applied = AuditWrite("applied", "guardian", "runner", detail)
    write = Write(
        "running",
        (ex.step, ex.phase),
        facts.now,
        applied=(ex.step, ex.phase, facts.owner),
        audit=(applied,),
    )
    tell = (
        Notify("applied", {"step": step.name, "phase": ex.phase, "of": batches}),
        Boundary(f"applied {ex.step}/{ex.phase}"),
    )
    return Move(write, tell=tell, need=Need("verify", step, plan))


def _checked(ex: Execution, step: Step, facts: Facts, checked: Checked, batches: int) -> Move:
    if checked.error:
        return fail(ex, step, facts, checked.error)
    if checked.problems:
        return fail(ex, step, facts, "verify: " + "; ".join(checked.problems))
    now, at = facts.now, (ex.step, ex.phase)
    named = {"step": ex.step, "step_name": step.name}
    if ex.phase + 1 < batches:
        verified = AuditWrite("verified", "guardian", "runner", {**named, "phase": ex.phase})
        return Move(
            Write("running", at, now, {"phase": ex.phase + 1}, audit=(verified,)), go_on=True
        )
    record = StepWrite(
        ex.step, step.name, "succeeded", result={"verified": True, "phases": batches}
    )
    done = AuditWrite("step_succeeded", "guardian", "runner", named)
    moves = {"state": "proposed", "step": ex.step + 1, "phase": 0, "expires_at": None}
    tell = (Notify("step_succeeded", {"step": step.name}, prior=True), Boundary(f"done {ex.step}"))
    return Move(Write("running", at, now, moves, record, audit=(done,)), tell=tell, go_on=True)


def fail(ex: Execution, step: Step, facts: Facts, problem: str) -> Move:
    """The step failed: undo first if the step says so, else the execution fails."""
    failure = Failure(ex.step, step.name, problem, facts.now)
    if step.on_failure == "undo":
        return Move(need=Need("undo", failure=failure))
    return _failed(ex, failure, (), "failed", f"{step.name}: {problem}")


def _undone(ex: Execution, facts: Facts, undid: Undid) -> Move:
    f = undid.failure
    message = f"{f.name}: {f.problem}; undid {len(undid.changes)} changes"
    undone = AuditWrite("undone", "guardian", "runner", {"changes": list(undid.changes)})
    return _failed(ex, f, (undone,), "undone", message, facts.now)


def _failed(
    ex: Execution,
    f: Failure,
    more: tuple[AuditWrite, ...],
    state: Final,
    message: str,
    now: datetime | None = None,
) -> Move:
    record = StepWrite(f.step, f.name, "failed", result={"problem": f.problem})
    detail = {"step": f.step, "step_name": f.name, "problem": f.problem}
    failed = AuditWrite("step_failed", "guardian", "runner", detail)
    end = finish(ex, now or f.at, state, message)
    assert end.write is not None
    write = Write(
        end.write.expected,
        end.write.at,
        end.write.now,
        end.write.moves,
        record,
        audit=(failed, *more, *end.write.audit),
    )
    return Move(write, tell=end.tell)


def finish(ex: Execution, now: datetime, state: Final, message: str) -> Move:
    """End the execution in ``state`` (succeeded, failed, undone) with ``message``."""
    final = AuditWrite(state, "guardian", "runner", {"message": message})
    write = Write(
        ex.state, (ex.step, ex.phase), now, {"state": state, "message": message}, audit=(final,)
    )
    return Move(write, tell=(Notify(state, {"message": message}),))


def expiry(ex: Execution, now: datetime) -> Write:
    """The pending approval of ``ex`` ran out: it moves to ``expired``."""
    expired = AuditWrite("expired", "guardian", "timer", {"step": ex.step})
    return Write(
        "awaiting_approval", (ex.step, ex.phase), now, {"state": "expired"}, audit=(expired,)
    )
