"""Guards: why a matching playbook must not be proposed now, one small function per guard.

Input: the playbook, the SLO and ``Facts`` (the runs already open or recent, the time, the
kill switch, whether a suspect exists and the target a run would touch). Output: the reason
the first guard that refuses gives, or an empty string (the playbook may run). Pure. Called by
``guardian.policy.decide``; the order of ``GUARDS`` is the order the reasons are given in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from guardian.config.model import SLO
from guardian.playbooks.model import Playbook


@dataclass(frozen=True)
class Run:
    """An execution as the policy needs to see it."""

    playbook: str
    slo: str
    target: str
    created_at: datetime
    open: bool


@dataclass(frozen=True)
class Facts:
    """What the guards judge a proposal by."""

    recent: Sequence[Run]
    now: datetime
    paused: bool = False
    has_suspect: bool = True
    targets: Mapping[str, str] | None = None
    """Playbook name → what its run would touch (``planning.trigger.suspect_target``); a
    playbook not named (or no mapping): not known, and then any open run of the playbook
    counts as one on the same target."""

    def runs_of(self, book: Playbook) -> list[Run]:
        return [r for r in self.recent if r.playbook == book.name]

    def target_of(self, book: Playbook) -> str | None:
        return None if self.targets is None else self.targets.get(book.name)


Guard = Callable[[Playbook, SLO, Facts], str]


def kill_switch(book: Playbook, slo: SLO, facts: Facts) -> str:
    return "paused (kill switch): not proposing " + book.name if facts.paused else ""


def maintenance(book: Playbook, slo: SLO, facts: Facts) -> str:
    if any(window.covers(facts.now) for window in book.guards.maintenance_windows):
        return f"maintenance window: not proposing {book.name}"
    return ""


def one_per_target(book: Playbook, slo: SLO, facts: Facts) -> str:
    """At most one open run of the playbook per target."""
    if not book.guards.one_per_target:
        return ""
    target = facts.target_of(book)
    same = [r for r in facts.runs_of(book) if target is None or r.target == target]
    return f"{book.name} already has an open execution" if any(r.open for r in same) else ""


def cooldown(book: Playbook, slo: SLO, facts: Facts) -> str:
    now, seconds = facts.now, book.guards.cooldown
    last = max((r.created_at for r in facts.runs_of(book) if r.slo == slo.name), default=None)
    if last is None or now - last >= timedelta(seconds=seconds):
        return ""
    ago = int((now - last).total_seconds())
    return f"cooldown: {book.name} ran for {slo.name} {ago}s ago ({seconds - ago}s left)"


def hourly_limit(book: Playbook, slo: SLO, facts: Facts) -> str:
    hour = [r for r in facts.runs_of(book) if facts.now - r.created_at < timedelta(hours=1)]
    most = book.guards.max_runs_per_hour
    if len(hour) < most:
        return ""
    return f"{book.name} ran {len(hour)} times in the last hour (at most {most})"


def suspect(book: Playbook, slo: SLO, facts: Facts) -> str:
    if book.guards.require_suspect and not facts.has_suspect:
        return f"no suspect rollout: {book.name} needs one"
    return ""


GUARDS: tuple[Guard, ...] = (
    kill_switch,
    maintenance,
    one_per_target,
    cooldown,
    hourly_limit,
    suspect,
)


def refusal(book: Playbook, slo: SLO, facts: Facts) -> str:
    """Why ``book`` must not run now (empty: it may): the first guard's reason."""
    return next((why for guard in GUARDS if (why := guard(book, slo, facts))), "")
