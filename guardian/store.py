"""The store: executions, their step progress, pending approvals, and the append-only audit.

Input: records from the runner, the policy and the CLI. Output: the same records read back,
on SQLite (one file, the default) or PostgreSQL, through one SQLAlchemy Core schema. Every
state change of an execution is a compare-and-set (``UPDATE ... WHERE state = expected``),
so two processes, or a double click, can never move one execution twice. Called by
``guardian.runner``, ``guardian.policy`` and the CLI (``history``, ``approvals``).

Secrets never reach this module: callers pass only what they mean to keep.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from guardian.errors import DataUnavailable

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
class AuditRow:
    """One line of the audit log."""

    seq: int
    at: datetime
    kind: str
    execution_id: str | None
    actor: str
    via: str
    detail: dict[str, Any] = field(default_factory=dict)


class Store:
    """Executions, steps, audit and settings behind one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``url`` and create the tables that are missing."""
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(engine)
        except OperationalError as exc:
            raise DataUnavailable(f"store {_safe(url)}: {str(exc.orig).strip()}") from None
        return cls(engine)

    # executions ---------------------------------------------------------------------------

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
    ) -> Execution:
        """A new execution, with its ``created`` audit row."""
        row = {
            "id": uuid.uuid4().hex[:10],
            "playbook": playbook,
            "slo": slo,
            "target": target,
            "state": state,
            "step": 0,
            "phase": 0,
            "requested_by": requested_by,
            "requested_via": requested_via,
            "context": _plain(context),
            "message": "",
            "created_at": now,
            "updated_at": now,
            "expires_at": expires_at,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(executions).values(**row))
            conn.execute(
                insert(audit).values(
                    at=now,
                    kind="proposed",
                    execution_id=row["id"],
                    actor=requested_by,
                    via=requested_via,
                    detail={"playbook": playbook, "slo": slo, "target": target, "state": state},
                )
            )
        return self.get(str(row["id"]))

    def get(self, execution_id: str) -> Execution:
        """The execution ``execution_id``; ``KeyError`` if there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
        if row is None:
            raise KeyError(execution_id)
        return _execution(row._mapping)

    def find(self, prefix: str) -> Execution:
        """The execution whose ID starts with ``prefix`` (unique, at least
        ``MIN_PREFIX`` characters, taken literally); ``KeyError`` otherwise."""
        if len(prefix) < MIN_PREFIX:
            raise KeyError(prefix)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(executions)
                .where(executions.c.id.startswith(prefix, autoescape=True))
                .limit(2)
            ).all()
        if len(rows) != 1:
            raise KeyError(prefix)
        return _execution(rows[0]._mapping)

    def executions(
        self, states: Sequence[str] = (), playbook: str | None = None, limit: int = 100
    ) -> list[Execution]:
        """Executions, newest first, optionally in ``states`` or of ``playbook``."""
        query = select(executions).order_by(executions.c.created_at.desc()).limit(limit)
        if states:
            query = query.where(executions.c.state.in_(list(states)))
        if playbook:
            query = query.where(executions.c.playbook == playbook)
        with self.engine.connect() as conn:
            return [_execution(r._mapping) for r in conn.execute(query)]

    def transition(
        self,
        execution_id: str,
        expected: str | Sequence[str],
        now: datetime,
        at: tuple[int, int] | None = None,
        **values: Any,
    ) -> bool:
        """Move the execution if its state is still ``expected`` (and, given ``at``, it is
        still at that (step, phase)); False when it was not: someone else moved it first."""
        wanted = [expected] if isinstance(expected, str) else list(expected)
        if "context" in values:
            values["context"] = _plain(values["context"])
        where = [executions.c.id == execution_id, executions.c.state.in_(wanted)]
        if at is not None:
            where += [executions.c.step == at[0], executions.c.phase == at[1]]
        with self.engine.begin() as conn:
            done = conn.execute(update(executions).where(*where).values(updated_at=now, **values))
            return done.rowcount == 1

    def claim(self, execution_id: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take the right to advance the execution until ``until`` (a lease); False if held."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(executions)
                .where(
                    executions.c.id == execution_id,
                    (executions.c.owner.is_(None))
                    | (executions.c.owner == owner)
                    | (executions.c.lease_until < now),
                )
                .values(owner=owner, lease_until=until)
            )
            return done.rowcount == 1

    def release(self, execution_id: str, owner: str) -> None:
        """Give the lease back."""
        with self.engine.begin() as conn:
            conn.execute(
                update(executions)
                .where(executions.c.id == execution_id, executions.c.owner == owner)
                .values(owner=None, lease_until=None)
            )

    # steps --------------------------------------------------------------------------------

    def save_step(
        self,
        execution_id: str,
        step: int,
        name: str,
        status: str,
        now: datetime,
        plan: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Insert or update a step's record (its plan is kept once made)."""
        with self.engine.begin() as conn:
            current = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id, steps.c.step == step)
            ).first()
            if current is None:
                conn.execute(
                    insert(steps).values(
                        execution_id=execution_id,
                        step=step,
                        name=name,
                        status=status,
                        plan=_plain(plan),
                        applied_phases=0,
                        result=_plain(result),
                        updated_at=now,
                    )
                )
                return
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if plan is not None:
                values["plan"] = _plain(plan)
            if result is not None:
                values["result"] = _plain(result)
            conn.execute(
                update(steps)
                .where(steps.c.execution_id == execution_id, steps.c.step == step)
                .values(**values)
            )

    def steps(self, execution_id: str) -> list[StepRecord]:
        """The execution's step records, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id).order_by(steps.c.step)
            ).all()
        return [
            StepRecord(r.execution_id, r.step, r.name, r.status, r.plan, r.applied_phases, r.result)
            for r in rows
        ]

    def mark_applied(
        self, execution_id: str, step: int, phase: int, owner: str, now: datetime
    ) -> bool:
        """Record that ``phase`` of ``step`` was applied; False if it already was."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(applied).values(
                        execution_id=execution_id, step=step, phase=phase, at=now, owner=owner
                    )
                )
                conn.execute(
                    update(steps)
                    .where(steps.c.execution_id == execution_id, steps.c.step == step)
                    .values(applied_phases=phase + 1, updated_at=now)
                )
        except IntegrityError:
            return False
        return True

    def applied_phases(self, execution_id: str) -> list[tuple[int, int]]:
        """(step, phase) pairs recorded as applied, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(applied.c.step, applied.c.phase)
                .where(applied.c.execution_id == execution_id)
                .order_by(applied.c.step, applied.c.phase)
            ).all()
        return [(r.step, r.phase) for r in rows]

    # audit --------------------------------------------------------------------------------

    def record(
        self,
        kind: str,
        now: datetime,
        execution_id: str | None = None,
        actor: str = "",
        via: str = "",
        **detail: Any,
    ) -> None:
        """Append one audit row."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(audit).values(
                    at=now,
                    kind=kind,
                    execution_id=execution_id,
                    actor=actor,
                    via=via,
                    detail=_plain(detail),
                )
            )

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Executions by state, and audit rows by kind (for metrics)."""
        with self.engine.connect() as conn:
            states = conn.execute(
                select(executions.c.state, func.count()).group_by(executions.c.state)
            ).all()
            kinds = conn.execute(select(audit.c.kind, func.count()).group_by(audit.c.kind)).all()
        return {str(k): int(n) for k, n in states}, {str(k): int(n) for k, n in kinds}

    def ping(self) -> None:
        """Raise ``DataUnavailable`` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as exc:
            raise DataUnavailable(f"store: {type(exc).__name__}") from None

    def history(self, execution_id: str | None = None, limit: int = 200) -> list[AuditRow]:
        """Audit rows, oldest first (the last ``limit`` of them)."""
        query = select(audit).order_by(audit.c.seq.desc()).limit(limit)
        if execution_id:
            query = query.where(audit.c.execution_id == execution_id)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        return [
            AuditRow(r.seq, _aware(r.at), r.kind, r.execution_id, r.actor, r.via, r.detail)
            for r in reversed(rows)
        ]

    # chat messages ------------------------------------------------------------------------

    def message(self, execution_id: str) -> tuple[str, str] | None:
        """(channel, ts) of the execution's chat message, if one was posted."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(messages.c.channel, messages.c.ts).where(
                    messages.c.execution_id == execution_id
                )
            ).first()
        return (str(row.channel), str(row.ts)) if row is not None else None

    def save_message(self, execution_id: str, channel: str, ts: str) -> None:
        """Remember where the execution's chat message is (first one wins)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(messages).values(execution_id=execution_id, channel=channel, ts=ts)
                )
        except IntegrityError:
            pass

    # settings -----------------------------------------------------------------------------

    def setting(self, key: str, default: str = "") -> str:
        """A stored setting (the kill switch: ``paused``)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(settings.c.value).where(settings.c.key == key)).first()
        return str(row.value) if row is not None else default

    def set_setting(self, key: str, value: str, now: datetime) -> None:
        """Store a setting."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(settings).where(settings.c.key == key).values(value=value, updated_at=now)
            )
            if done.rowcount == 0:
                conn.execute(insert(settings).values(key=key, value=value, updated_at=now))

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


MIN_PREFIX = 4
"""The shortest ID prefix ``find`` accepts."""


def _execution(row: Any) -> Execution:
    values = dict(row)
    for key in ("created_at", "updated_at", "expires_at", "lease_until"):
        values[key] = _aware(values[key])
    return Execution(**values)


def _aware(moment: datetime | None) -> Any:
    """SQLite returns naive datetimes: every time stored is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _plain(value: Any) -> Any:
    """A JSON-safe copy (datetimes as ISO text)."""
    return None if value is None else json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


def _safe(url: str) -> str:
    """The URL without any password."""
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}@{tail}"


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    del record
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


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
