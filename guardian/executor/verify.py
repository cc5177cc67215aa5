"""Verification of one applied phase: the action reads its objects back, and the SLO signals.

Input: the step, the phase's plan, the API server, the execution (its SLO and the burn rate
when it was triggered) and the ``Signals`` from Prometheus. Output: the problems left once the
step's ``verify.within`` has passed (empty: verified); while it waits, ``sleep`` is called
(the shell keeps the execution's lease in it). A step that checks ``burn_falls`` waits at
least the SLO's shortest short window (``wait_for``): a 5m burn rate cannot show a fall
within 3m. Called by ``guardian.executor.shell``; ``wait_for`` is tested in
``tests/test_halt_change.py``.
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
    """Check the phase until it holds or ``wait_for(ex, step)`` seconds have passed."""
    action = CATALOGUE[step.action]
    within = wait_for(ex, step)

    def check() -> list[str]:
        try:
            problems = action.verify(kube, plan)
        except GuardianError as exc:
            problems = [exc.message]
        if step.verify is not None:
            problems.extend(signal_problems(ex, step, signals))
        return problems

    return verify_until(check, within, sleep=sleep)


def wait_for(ex: Execution, step: Step) -> int:
    """How long the step's verification may wait: ``verify.within`` (default 60 s), and with
    ``burn_falls`` at least the shortest short window of the SLO in the execution's context
    (``slo.windows[].short``, seconds), the window whose burn rate it reads."""
    if step.verify is None:
        return 60
    windows = (ex.context.get("slo") or {}).get("windows") or []
    shorts = [int(w["short"]) for w in windows if isinstance(w, dict) and w.get("short")]
    if step.verify.burn_falls and shorts:
        return max(step.verify.within, min(shorts))
    return step.verify.within


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
