"""Undo of an execution: every applied phase reversed, newest first.

Input: the execution, its playbook, its step records and applied (step, phase) pairs, and a
way to reach the API server per kubeconfig context. Output: the changes undone (their
descriptions). Called by ``guardian.executor.shell`` when a step with ``on_failure: undo``
fails, and by ``guardian.executor.undoing`` when a person undoes the execution.
"""

from __future__ import annotations

from collections.abc import Iterable

from guardian.actions import Plan, undo
from guardian.audit.records import Execution, StepRecord
from guardian.planning.plans import KubeFor, kube_of
from guardian.playbooks.model import Playbook


def undo_applied(
    ex: Execution,
    book: Playbook,
    records: Iterable[StepRecord],
    applied: Iterable[tuple[int, int]],
    kube_for: KubeFor,
) -> list[str]:
    """Undo every applied phase of ``ex``, newest first; returns what was done."""
    done: list[str] = []
    by_step = {s.step: s for s in records}
    for step_index, phase in reversed(list(applied)):
        record = by_step[step_index]
        assert record.plan is not None
        plan = Plan.from_record(record.plan)
        batch = (plan.batches() or [0])[phase]
        kube = kube_of(kube_for, book.steps[step_index], ex.context)
        done.extend(undo(kube, plan.only(batch)))
    return done
