"""The store's schema, and the row helpers every part of the store shares.

One SQLAlchemy Core ``MetaData``: executions, steps, applied phases, audit, approval requests,
chat message refs, settings and the pipeline's state per SLO. Used by the parts of
``guardian.clients.store``; ``guardian.clients.database`` creates the tables that are missing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    update,
)

from guardian.audit.records import Execution

metadata = MetaData()

executions = Table(
    "executions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("playbook", String(63), nullable=False),
    Column("slo", String(63), nullable=False, default=""),
    Column("target", String(300), nullable=False, default=""),
    Column("state", String(32), nullable=False, index=True),
    Column("step", Integer, nullable=False, default=0),
    Column("phase", Integer, nullable=False, default=0),
    Column("requested_by", String(200), nullable=False),
    Column("requested_via", String(32), nullable=False),
    Column("context", JSON, nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("owner", String(200)),
    Column("lease_until", DateTime(timezone=True)),
)

steps = Table(
    "steps",
    metadata,
    Column("execution_id", String(32), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("name", String(63), nullable=False),
    Column("status", String(32), nullable=False),
    Column("plan", JSON),
    Column("applied_phases", Integer, nullable=False, default=0),
    Column("result", JSON),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

applied = Table(
    "applied",
    metadata,
    Column("execution_id", String(32), nullable=False),
    Column("step", Integer, nullable=False),
    Column("phase", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("owner", String(200), nullable=False),
    UniqueConstraint("execution_id", "step", "phase", name="one_apply_per_phase"),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("execution_id", String(32), index=True),
    Column("actor", String(200), nullable=False, default=""),
    Column("via", String(32), nullable=False, default=""),
    Column("detail", JSON, nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("nonce", String(32), primary_key=True),
    Column("execution_id", String(32), nullable=False, index=True),
    Column("step", Integer, nullable=False),
    Column("phase", Integer, nullable=False),
    Column("asked_at", DateTime(timezone=True), nullable=False),
    Column("decision", String(32)),
    Column("decided_by", String(200)),
    Column("decided_at", DateTime(timezone=True)),
)
"""One row per approval asked for: the step and phase it was shown for, and a nonce that
the Slack buttons carry. Deciding is a compare-and-set on all of them (``Store.decide``)."""

messages = Table(
    "messages",
    metadata,
    Column("execution_id", String(32), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("ts", String(64), nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(63), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""Stored settings by key: the kill switch (``paused``)."""

pipeline_state = Table(
    "pipeline_state",
    metadata,
    Column("slo", String(63), primary_key=True),
    Column("status", String(32)),
    Column("announced", String(32)),
    Column("decision", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""Per SLO, what the pipeline last wrote about it: the status it audited, the decision kind
it last saw (announcements) and the decision it audited (``kind:playbook:reason``)."""


class Undone(Exception):
    """Raised inside a transaction to roll it back."""


def move(
    conn: Any,
    execution_id: str,
    expected: str | Sequence[str],
    at: tuple[int, int] | None,
    **values: Any,
) -> bool:
    """The compare-and-set every move of an execution is: set ``values`` if its state is
    still ``expected`` (and, given ``at``, it is still at that (step, phase)), in ``conn``'s
    transaction; False when someone else moved it first."""
    wanted = [expected] if isinstance(expected, str) else list(expected)
    where = [executions.c.id == execution_id, executions.c.state.in_(wanted)]
    if at is not None:
        where += [executions.c.step == at[0], executions.c.phase == at[1]]
    done = conn.execute(update(executions).where(*where).values(**values))
    return bool(done.rowcount == 1)


def open_request(conn: Any, execution_id: str, step: int, phase: int, now: datetime) -> str:
    nonce = secrets.token_hex(8)
    conn.execute(
        insert(approvals).values(
            nonce=nonce, execution_id=execution_id, step=step, phase=phase, asked_at=now
        )
    )
    return nonce


def execution_of(row: Any) -> Execution:
    values = dict(row)
    for key in ("created_at", "updated_at", "expires_at", "lease_until"):
        values[key] = aware(values[key])
    return Execution(**values)


def aware(moment: datetime | None) -> Any:
    """SQLite returns naive datetimes: every time stored is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def plain(value: Any) -> Any:
    """A JSON-safe copy (datetimes as ISO text)."""
    return None if value is None else json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")
