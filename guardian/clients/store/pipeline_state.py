"""What the pipeline last wrote per SLO (status audited, decision seen, decision audited).

The store's side of ``guardian.audit.ports.PipelineMemory``, used by ``guardian.pipeline.Cycle``
to write each change once. ``adopt_settings`` moves the same state out of the ``settings``
keys earlier versions kept it under (``status:<slo>``, ``announced:<slo>``,
``decision:<slo>``); ``guardian.clients.store.Store.open`` runs it on every open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from guardian.clients.store.schema import pipeline_state, settings

LEGACY = {"status:": "status", "announced:": "announced", "decision:": "decision"}
"""The ``settings`` keys earlier versions kept this state under: prefix → column."""


class PipelineState:
    """PipelineState: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def last_status(self, slo: str) -> str | None:
        """The SLO's status last audited (an ``evaluation`` row), if any."""
        return self._get(slo, "status")

    def remember_status(self, slo: str, status: str, now: datetime) -> None:
        """Keep ``status`` as the SLO's status last audited."""
        self._put(slo, "status", status, now)

    def last_announced(self, slo: str) -> str | None:
        """The kind of the SLO's decision last seen (``notify`` is announced once), if any."""
        return self._get(slo, "announced")

    def remember_announced(self, slo: str, kind: str, now: datetime) -> None:
        """Keep ``kind`` as the kind of the SLO's decision last seen."""
        self._put(slo, "announced", kind, now)

    def last_decision(self, slo: str) -> str | None:
        """The SLO's decision last audited (``kind:playbook:reason``), if any."""
        return self._get(slo, "decision")

    def remember_decision(self, slo: str, decision: str, now: datetime) -> None:
        """Keep ``decision`` (``kind:playbook:reason``) as the SLO's decision last audited."""
        self._put(slo, "decision", decision, now)

    def _get(self, slo: str, column: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(pipeline_state.c[column]).where(pipeline_state.c.slo == slo)
            ).first()
        return None if row is None or row[0] is None else str(row[0])

    def _put(self, slo: str, column: str, value: str, now: datetime) -> None:
        values = {column: value, "updated_at": now}
        with self.engine.begin() as conn:
            done = conn.execute(
                update(pipeline_state).where(pipeline_state.c.slo == slo).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(insert(pipeline_state).values(slo=slo, **values))


def adopt_settings(engine: Engine) -> None:
    """Move the state earlier versions kept in ``settings`` into ``pipeline_state``, once:
    only while ``pipeline_state`` is empty; the old keys are deleted either way. Two
    processes opening the store at once: the one that loses the race changes nothing."""
    try:
        with engine.begin() as conn:
            rows = conn.execute(
                select(settings).where(or_(*(settings.c.key.startswith(p) for p in LEGACY)))
            ).all()
            if not rows:
                return
            if not conn.execute(select(func.count()).select_from(pipeline_state)).scalar():
                _insert(conn, rows)
            keys = [row.key for row in rows]
            conn.execute(delete(settings).where(settings.c.key.in_(keys)))
    except IntegrityError:
        return


def _insert(conn: Connection, rows: Sequence[Any]) -> None:
    by_slo: dict[str, dict[str, Any]] = {}
    for row in rows:
        prefix, slo = str(row.key).split(":", 1)
        state = by_slo.setdefault(slo, dict.fromkeys(LEGACY.values()))
        state[LEGACY[prefix + ":"]] = str(row.value)
        state["updated_at"] = max(state.get("updated_at", row.updated_at), row.updated_at)
    conn.execute(insert(pipeline_state), [{"slo": slo, **s} for slo, s in by_slo.items()])
