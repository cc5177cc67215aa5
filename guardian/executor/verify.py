"""Verification of one applied phase: the action reads its objects back, and the SLO signals.

Input: the step, the phase's plan, the API server, the execution (its SLO and the burn rate
when it was triggered) and the ``Signals`` from Prometheus. Output: the problems left once the
step's ``verify.within`` has passed (empty: verified); while it waits, ``sleep`` is called
(the shell keeps the execution's lease in it). Called by ``guardian.executor.shell``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from guardian.actions import CATALOGUE, Plan
from guardian.actions.base import KubeAPI, verify_until
from guardian.audit.records import Execution
from guardian.errors import GuardianError
from guardian.playbooks.model import Step


class Signals(Protocol):
    """What step verification reads from Prometheus."""

    def short_burn(self, slo: str) -> float | None:
        """The SLO's burn rate over its shortest window now (``None``: no data)."""

    def holds(self, promql: str) -> bool:
        """True when ``promql`` returns at least one sample now."""


def verify(
    ex: Execution,
    step: Step,
    plan: Plan,
    kube: KubeAPI,
    signals: Signals,
    sleep: Callable[[float], None],
) -> list[str]:
    """Check the phase until it holds or ``step.verify.within`` (default 60 s) has passed."""
    action = CATALOGUE[step.action]
    within = step.verify.within if step.verify else 60

    def check() -> list[str]:
        try:
            problems = action.verify(kube, plan)
        except GuardianError as exc:
            problems = [exc.message]
        if step.verify is not None:
            problems.extend(signal_problems(ex, step, signals))
        return problems

    return verify_until(check, within, sleep=sleep)


def signal_problems(ex: Execution, step: Step, signals: Signals) -> list[str]:
    """What the step's ``verify`` asks of Prometheus that does not hold now."""
    assert step.verify is not None
    problems = []
    if step.verify.burn_falls:
        at_start = (ex.context.get("slo") or {}).get("short_burn")
        now = signals.short_burn(ex.slo) if ex.slo else None
        if now is None:
            problems.append(f"no data for {ex.slo or 'the SLO'}'s short-window burn rate")
        elif at_start is not None and now >= float(at_start):
            problems.append(f"short-window burn rate {now:.2f} has not fallen below {at_start:.2f}")
    if step.verify.promql and not signals.holds(step.verify.promql):
        problems.append(f"{step.verify.promql} returned nothing")
    return problems
