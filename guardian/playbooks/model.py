"""The frozen playbook model (durations in seconds).

Built by ``guardian.playbooks.load``; read by ``guardian.policy`` (triggers and guards),
``guardian.planning`` (steps made concrete) and ``guardian.executor`` (steps run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from guardian.config.model import SLO


@dataclass(frozen=True)
class Trigger:
    """Which SLOs start the playbook."""

    slos: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    severity: Literal["page", "ticket"]

    def matches(self, slo: SLO, severity: str) -> bool:
        """True when ``slo`` burning at ``severity`` starts this playbook."""
        if self.severity == "page" and severity != "page":
            return False
        by_name = slo.name in self.slos
        labels = dict(slo.labels)
        by_labels = bool(self.labels) and all(labels.get(k) == v for k, v in self.labels)
        return by_name or by_labels


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly quiet window."""

    days: tuple[str, ...]
    start: time
    end: time
    timezone: str

    def covers(self, moment: datetime) -> bool:
        """True when ``moment`` (aware) falls inside the window."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
        now = local.time()
        if self.start <= self.end:
            return day in self.days and self.start <= now < self.end
        # spans midnight: the part after midnight belongs to the previous day's window
        yesterday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(local.weekday() - 1) % 7]
        return (day in self.days and now >= self.start) or (
            yesterday in self.days and now < self.end
        )


@dataclass(frozen=True)
class Guards:
    """When a triggered playbook must still not run."""

    cooldown: int
    max_runs_per_hour: int
    one_per_target: bool
    require_suspect: bool
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()


@dataclass(frozen=True)
class Verify:
    """What must hold after each batch and after the step."""

    burn_falls: bool
    promql: str | None
    within: int


@dataclass(frozen=True)
class Step:
    """One action of a playbook, parameters still templated."""

    name: str
    action: str
    params: dict[str, Any]
    approval: Literal["required", "auto"]
    verify: Verify | None
    timeout: int
    on_failure: Literal["stop", "undo"]
    context: str | None = None
    when: str | None = None


@dataclass(frozen=True)
class Playbook:
    """A codified response."""

    name: str
    description: str
    trigger: Trigger
    guards: Guards
    approver_users: tuple[str, ...]
    approver_groups: tuple[str, ...]
    steps: tuple[Step, ...]
    source: str = ""
    needs: tuple[str, ...] = field(default=())
    """Template roots its steps use (``suspects``, ``params``, ...)."""

    def step(self, name: str) -> Step:
        """The step called ``name``; ``KeyError`` if there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
