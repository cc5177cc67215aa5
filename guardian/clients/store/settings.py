"""Stored settings by key: the kill switch's state (``paused``).

Input: a key (and a value to store, with the time). Output: the stored value, or the default.
A part of ``Store`` (``Settings`` of ``guardian.audit.ports``), called through it only by
``guardian.audit.switch.KillSwitch`` (used by the pipeline, the executor, ChatOps and the
``pause``, ``resume`` and ``playbook run`` commands).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from guardian.clients.store.schema import settings


class Settings:
    """Settings: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def setting(self, key: str, default: str = "") -> str:
        """A stored setting (the kill switch: ``paused``)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(settings.c.value).where(settings.c.key == key)).first()
        return str(row.value) if row is not None else default

    def set_setting(self, key: str, value: str, now: datetime) -> None:
        """Store a setting: one upsert (``INSERT ... ON CONFLICT DO UPDATE``), so two first
        writes of one key from two replicas never race (``tests/test_store.py``)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(settings).values(key=key, value=value, updated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[settings.c.key], set_={"value": value, "updated_at": now}
        )
        with self.engine.begin() as conn:
            conn.execute(statement)
