"""The store: executions, their step progress, pending approvals, and the append-only audit.

Input: records from the runner, the policy and the CLI. Output: the same records read back,
on SQLite (one file, the default) or PostgreSQL, through one SQLAlchemy Core schema. Every
state change of an execution is a compare-and-set (``UPDATE ... WHERE state = expected``),
so two processes, or a double click, can never move one execution twice. Called by
``guardian.executor.runner``, ``guardian.policy.decide`` and the CLI (``history``, ``approvals``).

The store URL's password reaches only ``open``, which hands it to ``guardian.clients.database`` and
never shows it. Otherwise callers pass only what they mean to keep.
"""

from __future__ import annotations

import json
import secrets
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
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import (
    IntegrityError,
    SQLAlchemyError,
)

from guardian.clients.database import open_engine
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


class Store:
    """Executions, steps, audit and settings behind one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, source: str = "the URL", busy_timeout: float | None = None) -> Store:
        """Connect to ``url``, check that it is guardian's database (or an empty one), and
        create the tables that are missing. ``source`` names where the URL came from, for
        the fix in messages. Any fault, now or in a later call, is a one-line
        ``StoreUnavailable`` naming the store with its password masked; a file or database
        that is not guardian's is left exactly as it is. A SQLite writer waits
        ``busy_timeout`` seconds for another one (default: the URL's ``?timeout=``, else
        ``guardian.clients.database.BUSY_TIMEOUT``)."""
        return cls(open_engine(url, metadata, source, busy_timeout))

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
        ``MIN_PREFIX`` characters, taken literally); ``KeyError`` otherwise
        (``AmbiguousPrefix`` when more than one matches)."""
        if len(prefix) < MIN_PREFIX:
            raise KeyError(prefix)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(executions)
                .where(executions.c.id.startswith(prefix, autoescape=True))
                .limit(2)
            ).all()
        if len(rows) > 1:
            raise AmbiguousPrefix(prefix)
        if not rows:
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
        if "context" in values:
            values["context"] = _plain(values["context"])
        with self.engine.begin() as conn:
            return _move(conn, execution_id, expected, at, updated_at=now, **values)

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

    # approvals ----------------------------------------------------------------------------

    def ask(
        self, execution_id: str, step: int, phase: int, now: datetime, expires_at: datetime
    ) -> str | None:
        """Move the execution from ``proposed`` to ``awaiting_approval`` at (step, phase) and
        open an approval request for it, in one transaction; returns the request's nonce, or
        None when the execution had moved (someone else asked first)."""
        with self.engine.begin() as conn:
            values = {"state": "awaiting_approval", "expires_at": expires_at, "updated_at": now}
            if not _move(conn, execution_id, "proposed", (step, phase), **values):
                return None
            return _open_request(conn, execution_id, step, phase, now)

    def reopen(self, execution_id: str, step: int, phase: int, now: datetime) -> str:
        """Open a request for an execution already awaiting approval without one (asked
        before approvals carried a step and a nonce); returns its nonce."""
        with self.engine.begin() as conn:
            return _open_request(conn, execution_id, step, phase, now)

    def request(self, execution_id: str, step: int) -> ApprovalRequest | None:
        """The newest approval request for the execution's ``step``, if there is one."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(approvals)
                .where(approvals.c.execution_id == execution_id, approvals.c.step == step)
                .order_by(approvals.c.asked_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return ApprovalRequest(
            row.nonce,
            row.execution_id,
            row.step,
            row.phase,
            _aware(row.asked_at),
            row.decision,
            row.decided_by,
        )

    def decide(
        self,
        execution_id: str,
        step: int,
        phase: int,
        nonce: str,
        decision: str,
        actor: str,
        now: datetime,
    ) -> bool:
        """Decide the approval request ``nonce``: a compare-and-set on exactly (execution,
        step, phase, nonce), undecided, with the execution still awaiting approval at that
        step and phase. The execution moves to ``decision``; False (nothing changed) when
        any of it no longer holds."""
        try:
            with self.engine.begin() as conn:
                marked = conn.execute(
                    update(approvals)
                    .where(
                        approvals.c.nonce == nonce,
                        approvals.c.execution_id == execution_id,
                        approvals.c.step == step,
                        approvals.c.phase == phase,
                        approvals.c.decision.is_(None),
                    )
                    .values(decision=decision, decided_by=actor, decided_at=now)
                )
                if marked.rowcount != 1:
                    return False
                at = (step, phase)
                if not _move(
                    conn, execution_id, "awaiting_approval", at, state=decision, updated_at=now
                ):
                    raise _Undone
        except _Undone:
            return False
        return True

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


class _Undone(Exception):
    """Raised inside a transaction to roll it back."""


def _move(
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


def _open_request(conn: Any, execution_id: str, step: int, phase: int, now: datetime) -> str:
    nonce = secrets.token_hex(8)
    conn.execute(
        insert(approvals).values(
            nonce=nonce, execution_id=execution_id, step=step, phase=phase, asked_at=now
        )
    )
    return nonce


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
