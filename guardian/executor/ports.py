"""What the executor needs of the store, and the one write that moves an execution.

Input: nothing (declarations). Output: ``Write`` (one transition: the compare-and-set on state,
step and phase, the step record, the applied phase and the audit rows, kept in ONE transaction)
and ``ExecutorStore``, the store methods the executor calls (a port: the store in
``guardian.clients.store`` implements it). Built by ``guardian.executor.machine``, committed by
``guardian.executor.shell``, ``guardian.executor.decisions`` and ``guardian.executor.undoing``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from guardian.audit.kinds import AuditKind
from guardian.audit.ports import AuditWriter, Settings
from guardian.audit.records import ApprovalRequest, Execution, StepRecord


@dataclass(frozen=True)
class AuditWrite:
    """One audit row to append."""

    kind: AuditKind
    actor: str
    via: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepWrite:
    """A step's record to insert or update (its plan is kept once made)."""

    step: int
    name: str
    status: str
    plan: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Write:
    """One transition of an execution, persisted at once or not at all.

    ``expected``/``at``: the compare-and-set (state, or any of several, and (step, phase));
    ``moves``: the columns it sets (none: the execution stays where it is, the rest is still
    written);
    ``applied``: the (step, phase) recorded as applied, with its owner (at most once)."""

    expected: str | tuple[str, ...]
    at: tuple[int, int]
    now: datetime
    moves: Mapping[str, Any] = field(default_factory=dict)
    step: StepWrite | None = None
    applied: tuple[int, int, str] | None = None
    audit: tuple[AuditWrite, ...] = ()


class ExecutorStore(AuditWriter, Settings, Protocol):
    """The store as the executor and the approval decisions use it (and the kill switch:
    ``AuditWriter`` and ``Settings`` are ``guardian.audit.ports``)."""

    def create(
        self,
        playbook: str,
        slo: str,
        target: str,
        state: str,
        requested_by: str,
        requested_via: str,
        context: dict[str, Any],
        now: datetime,
        expires_at: datetime | None = None,
    ) -> Execution: ...

    def get(self, execution_id: str) -> Execution: ...

    def find(self, prefix: str) -> Execution: ...

    def executions(
        self, states: Sequence[str] = (), playbook: str | None = None, limit: int = 100
    ) -> list[Execution]: ...

    def snapshot(
        self, execution_id: str
    ) -> tuple[Execution, list[StepRecord], list[tuple[int, int]]]: ...

    def commit(self, execution_id: str, write: Write) -> Execution | None: ...

    def claim(self, execution_id: str, owner: str, now: datetime, until: datetime) -> bool: ...

    def release(self, execution_id: str, owner: str) -> None: ...

    def ask(
        self,
        execution_id: str,
        step: int,
        phase: int,
        now: datetime,
        expires_at: datetime,
        audit: Sequence[AuditWrite] = (),
    ) -> str | None: ...

    def reopen(self, execution_id: str, step: int, phase: int, now: datetime) -> str: ...

    def request(self, execution_id: str, step: int) -> ApprovalRequest | None: ...

    def decide(
        self,
        execution_id: str,
        step: int,
        phase: int,
        nonce: str,
        decision: str,
        actor: str,
        now: datetime,
        audit: Sequence[AuditWrite] = (),
    ) -> bool: ...
