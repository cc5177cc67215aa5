"""The kill switch: one object that says whether guardian is paused, and pauses or resumes it.

Input: the store's settings and audit log (``SwitchStore``: the ports ``Settings`` and
``AuditWriter`` of ``guardian.audit.ports``, which the store implements).
Output: ``engaged()``; ``pause``/``resume`` set the switch and append the audit row
(``pause``/``resume``) in the same call. While it is engaged nothing is proposed or run.
Read by the executor (``guardian.executor``), the pipeline (``guardian.pipeline``) and the
front ends (``guardian.app``); set by ``guardian pause|resume`` and ``/guardian pause|resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from guardian.audit.ports import AuditWriter, Settings

KEY = "paused"
"""The setting that holds the switch (``true`` or ``false``)."""


class SwitchStore(Settings, AuditWriter, Protocol):
    """What the kill switch needs of the store: its settings and its audit log."""


@dataclass(frozen=True)
class KillSwitch:
    """guardian's kill switch, kept in the store so every process sees the same one."""

    store: SwitchStore

    def engaged(self) -> bool:
        """True while guardian is paused."""
        return self.store.setting(KEY, "false") == "true"

    def pause(self, actor: str, via: str, now: datetime) -> None:
        """Engage the switch, and audit who did it and how."""
        self._set(True, actor, via, now)

    def resume(self, actor: str, via: str, now: datetime) -> None:
        """Release the switch, and audit who did it and how."""
        self._set(False, actor, via, now)

    def _set(self, paused: bool, actor: str, via: str, now: datetime) -> None:
        self.store.set_setting(KEY, "true" if paused else "false", now)
        self.store.record("pause" if paused else "resume", now, None, actor, via)
