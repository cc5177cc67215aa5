"""The storage ports: what the stages need of the store, as Protocols the store implements.

Input: nothing. Output: ``AuditWriter`` (append an audit row of an ``AuditKind``),
``AuditReader`` (read rows back), ``MessageRefs`` (where an execution's chat message is),
``Settings`` (stored settings: the kill switch) and ``PipelineMemory`` (what the pipeline
last audited and announced per SLO, so it writes each change once).
``guardian.clients.store.Store`` implements every one of them. Used by the kill switch
(``guardian.audit.switch``: ``Settings``, ``AuditWriter``), the pipeline
(``guardian.pipeline``: those and ``PipelineMemory``), the executor
(``guardian.executor.ports``: ``ExecutorStore`` extends ``AuditWriter`` and ``Settings``) and
the approval stage (``guardian.approval.blocks``: ``MessageStore`` extends ``AuditReader``;
``guardian.approval.notify``: ``NotifierStore`` adds ``MessageRefs`` and ``AuditWriter``).
``guardian.app`` uses the concrete ``Store`` and imports none of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from guardian.audit.kinds import AuditKind
from guardian.audit.records import AuditRow


class AuditWriter(Protocol):
    """Appends audit rows (the store refuses a kind that is not an ``AuditKind``)."""

    def record(
        self,
        kind: AuditKind,
        now: datetime,
        execution_id: str | None = None,
        actor: str = "",
        via: str = "",
        **detail: Any,
    ) -> None: ...


class AuditReader(Protocol):
    """Reads audit rows back, oldest first."""

    def history(self, execution_id: str | None = None, limit: int = 200) -> list[AuditRow]: ...


class MessageRefs(Protocol):
    """Where an execution's chat message is: (channel, ts), the first one saved wins."""

    def message(self, execution_id: str) -> tuple[str, str] | None: ...

    def save_message(self, execution_id: str, channel: str, ts: str) -> None: ...


class Settings(Protocol):
    """Stored settings, by key (the kill switch's ``paused``)."""

    def setting(self, key: str, default: str = "") -> str: ...

    def set_setting(self, key: str, value: str, now: datetime) -> None: ...


class PipelineMemory(Protocol):
    """Per SLO: the status last audited, the decision kind last seen (for announcements)
    and the decision last audited (``kind:playbook:reason``); None before the first."""

    def last_status(self, slo: str) -> str | None: ...

    def remember_status(self, slo: str, status: str, now: datetime) -> None: ...

    def last_announced(self, slo: str) -> str | None: ...

    def remember_announced(self, slo: str, kind: str, now: datetime) -> None: ...

    def last_decision(self, slo: str) -> str | None: ...

    def remember_decision(self, slo: str, decision: str, now: datetime) -> None: ...
