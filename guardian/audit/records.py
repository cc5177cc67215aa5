"""The records guardian keeps: executions, their steps, approval requests and audit rows.

Plain frozen values, no I/O. Written and read back by the store (``guardian.clients.store``);
read by the executor, the approval stage, the pipeline and the front ends (``guardian.app``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Execution:
    """One playbook run as stored."""

    id: str
    playbook: str
    slo: str
    target: str
    state: str
    step: int
    phase: int
    requested_by: str
    requested_via: str
    context: dict[str, Any]
    message: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class StepRecord:
    """A step's plan and result."""

    execution_id: str
    step: int
    name: str
    status: str
    plan: dict[str, Any] | None
    applied_phases: int
    result: dict[str, Any] | None


@dataclass(frozen=True)
class ApprovalRequest:
    """An approval asked for: what it was shown for, and how it was decided (if it was)."""

    nonce: str
    execution_id: str
    step: int
    phase: int
    asked_at: datetime
    decision: str | None = None
    decided_by: str | None = None


class AmbiguousPrefix(KeyError):
    """More than one execution ID starts with the prefix given."""


@dataclass(frozen=True)
class AuditRow:
    """One line of the audit log."""

    seq: int
    at: datetime
    kind: str
    execution_id: str | None
    actor: str
    via: str
    detail: dict[str, Any] = field(default_factory=dict)


MIN_PREFIX = 4
"""The shortest ID prefix ``find`` accepts."""

STATES = (
    "proposed",
    "awaiting_approval",
    "approved",
    "running",
    "succeeded",
    "failed",
    "undone",
    "denied",
    "expired",
)
OPEN_STATES = ("proposed", "awaiting_approval", "approved", "running")
