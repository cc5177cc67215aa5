"""The store: executions, their step progress, pending approvals, and the append-only audit.

Input: records from the runner, the policy and the CLI. Output: the same records read back,
on SQLite (one file, the default) or PostgreSQL, through one SQLAlchemy Core schema. Every
state change of an execution is a compare-and-set (``UPDATE ... WHERE state = expected``),
so two processes, or a double click, can never move one execution twice. Called by
``guardian.runner``, ``guardian.policy`` and the CLI (``history``, ``approvals``).

The store URL's password reaches only ``open``, which never shows it: every message carries
the URL with it as ``***`` (``masked``) and driver messages are scrubbed (``scrubber``).
Otherwise callers pass only what they mean to keep.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

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
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

from guardian.errors import DataUnavailable, StoreUnavailable

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
        ``BUSY_TIMEOUT``)."""
        parsed = parse_url(url, source)
        name = masked(parsed)
        _check_url(parsed, name, source)
        if parsed.get_backend_name() == "sqlite":
            _check_sqlite_file(parsed, name, source)
        engine = _engine(parsed, name, source, busy_timeout or _busy_timeout(parsed))
        try:
            _prepare(engine, name, source)
        except BaseException:
            engine.dispose()
            raise
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


# opening the store: its URL, its file, its schema, its faults ------------------------------

BUSY_TIMEOUT = 10.0
"""Seconds a SQLite writer waits for another one before the store is unavailable."""

CONNECT_TIMEOUT = 10
"""Seconds to connect to PostgreSQL, unless the URL sets ``connect_timeout``."""

URL_FORM = "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
"""How a store URL is written, for messages."""

_LEFT = "guardian left it as it is"


def parse_url(text: str, source: str = "the URL") -> URL:
    """``text`` as a SQLAlchemy URL. A raw ``@`` in the password is taken as part of it:
    with more than one ``@``, the credentials end at the last. ``StoreUnavailable`` when
    it is no URL, without echoing ``text``, which may hold a password."""
    url: URL | None
    try:
        url = _resplit(text) if text.count("@") > 1 else make_url(text)
    except (ArgumentError, ValueError):
        url = None
    if url is None:
        raise StoreUnavailable(
            f"store: {source} is not a SQLAlchemy URL (not shown: it may hold a password); "
            f"write it as {URL_FORM}"
        )
    return url


def _resplit(text: str) -> URL | None:
    """Credentials end at the last ``@`` before the query (a query value may hold a URI with
    an ``@`` of its own), or at the last ``@`` when none comes before the query."""
    found = re.fullmatch(r"([\w+]+)://(.*)", text, re.DOTALL)
    if found is None:
        return None
    scheme, after = found.groups()
    head = after.split("?", 1)[0]
    cut = head.rfind("@") if "@" in head else after.rfind("@")
    if cut < 0:
        return None
    credentials, rest = after[:cut], after[cut + 1 :]
    user, colon, password = credentials.partition(":")
    try:
        url = make_url(f"{scheme}://{rest}")
    except (ArgumentError, ValueError):
        return None
    return url.set(username=unquote(user), password=unquote(password) if colon else None)


def masked(url: URL) -> str:
    """``url`` as text with its password shown as ``***`` and query parameters that hold
    one left out: the only form in which a store URL is ever printed or logged."""
    query = {
        k: tuple(_masked_value(x) for x in v) if isinstance(v, tuple) else _masked_value(v)
        for k, v in url.query.items()
        if not _secret_key(k)
    }
    return url.set(query=query).render_as_string(hide_password=True)


_EMBEDDED = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#\s]*:)(?P<secret>[^@\s]*)@", re.I)
"""A URI inside a query value (``?dbname=postgresql://u:PASS@host/db``): its password."""


def _masked_value(value: str) -> str:
    """A query value with any password it embeds (a URI's, or libpq's ``password=...``)
    shown as ``***``."""
    value = _EMBEDDED.sub(lambda m: m["head"] + "***@", value)
    return _LIBPQ_PASSWORD.sub(lambda m: m[0][: m.start(1) - m.start(0)] + "***", value)


_LIBPQ_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", re.I)
"""libpq's ``password=...`` inside a value (``?options=...``, a conninfo string)."""


def _embedded_secrets(value: str) -> list[str]:
    """The passwords a query value embeds (for the scrubber)."""
    found = [m["secret"] for m in _EMBEDDED.finditer(value) if m["secret"]]
    found += [m.strip("'") for m in _LIBPQ_PASSWORD.findall(value) if m.strip("'")]
    return found + [unquote(f) for f in found if unquote(f) != f]


def _secret_key(key: str) -> bool:
    """A query parameter that holds a password (``password``, ``sslpassword``, ...)."""
    return "password" in key.lower() or key.lower() in ("passwd", "pwd")


def scrubber(url: URL) -> Callable[[str], str]:
    """A function that makes a driver's message safe to show: ``url``'s password (as
    given, decoded or percent-encoded) and any ``password=...`` become ``***``, and the
    message becomes one line."""
    found: list[str] = [url.password] if isinstance(url.password, str) else []
    for key, value in url.query.items():
        values = [value] if isinstance(value, str) else list(value)
        if _secret_key(key):
            found += values
        for one in values:
            found += _embedded_secrets(one)
    hidden = {form for s in found if s for form in (s, quote(s, safe=""), quote_plus(s))}
    ordered = sorted(hidden, key=len, reverse=True)

    def scrub(text: str) -> str:
        for secret in ordered:
            text = text.replace(secret, "***")
        text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text, flags=re.I)
        return " ".join(text.split())

    return scrub


def _check_url(url: URL, name: str, source: str) -> None:
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreUnavailable(
            f"store {name}: guardian keeps its store in SQLite or PostgreSQL, not {backend}; "
            f"correct {source} to {URL_FORM}"
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise StoreUnavailable(
            f"store {name}: port {url.port} is out of range; use a port from 1 to 65535 in {source}"
        )


def _check_sqlite_file(url: URL, name: str, source: str) -> None:
    """Refuse, before SQLite opens it, what is not a regular file (a FIFO would hang, a
    device never end), a file that is not a SQLite database, and one shorter than its
    header says (truncated). A missing or empty file is a new database."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        return
    if not path.is_file():
        raise StoreUnavailable(
            f"store {name}: {database} is not a regular file; correct {source} to a SQLite file"
        )
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb") as file:
        head = file.read(100)
    if not head.startswith(b"SQLite format 3\x00"):
        raise StoreUnavailable(
            f"store {name}: the file is not a SQLite database; correct {source} to "
            f"guardian's database or a new file ({_LEFT})"
        )
    expected = _sqlite_size(head)
    if size < expected:
        raise StoreUnavailable(
            f"store {name}: the file is truncated ({size} of {expected} bytes); restore it "
            f"from a backup, or correct {source} to a new file ({_LEFT})"
        )


def _sqlite_size(head: bytes) -> int:
    """The size a SQLite file's 100-byte header says it has: 0 when it does not say, 100
    when the header itself is cut short."""
    if len(head) < 100:
        return 100
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the in-header size counts only when these match
    return page_size * pages if valid else 0


def _engine(url: URL, name: str, source: str, busy_timeout: float) -> Engine:
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    try:
        engine = create_engine(
            url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
        )
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreUnavailable(
            f"store {name}: no database driver {url.drivername} "
            f"({type(exc).__name__}); correct {source} to {URL_FORM}"
        ) from None
    except (ValueError, TypeError) as exc:
        raise StoreUnavailable(
            f"store {name}: an option is not valid ({scrubber(url)(str(exc))}); correct the "
            f"options in {source}"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout))
    event.listen(engine, "handle_error", _faults(name, source, scrubber(url), busy_timeout))
    return engine


def _busy_timeout(url: URL) -> float:
    given = url.query.get("timeout") if url.get_backend_name() == "sqlite" else None
    try:
        seconds = float(given) if isinstance(given, str) else BUSY_TIMEOUT
    except ValueError:
        return BUSY_TIMEOUT
    return seconds if 0 < seconds < 3600 else BUSY_TIMEOUT


def _sqlite_pragmas(busy_timeout: float) -> Callable[[Any, Any], None]:
    """Each new SQLite connection waits ``busy_timeout`` for a lock held by another."""

    def pragmas(connection: Any, record: Any) -> None:
        del record
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return pragmas


def _prepare(engine: Engine, name: str, source: str) -> None:
    """Check that the database is guardian's (a SQLite file: guardian's or empty; any
    database: guardian's tables, if present, have guardian's columns) before changing
    anything, then create the missing tables and, on SQLite, switch to WAL (it persists in
    the file)."""
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    ours = sorted(present & set(metadata.tables))
    redo = f"correct {source} to guardian's database or an empty one ({_LEFT})"
    if present and not ours and engine.dialect.name == "sqlite":
        # a SQLite file is one application's; a PostgreSQL database is often shared
        others = sorted(present)
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise StoreUnavailable(
            f"store {name}: the database holds other tables ({shown}) and none of "
            f"guardian's; {redo}"
        )
    for table in ours:
        have = {column["name"] for column in inspector.get_columns(table)}
        missing = [c.name for c in metadata.tables[table].columns if c.name not in have]
        if missing:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            raise StoreUnavailable(
                f"store {name}: table {table} lacks guardian's columns {shown}: not guardian's "
                f"database, or one of another version; {redo}"
            )
    metadata.create_all(engine)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")


_FIXES = (
    (
        "database is locked",
        "another process held it past the {busy:g} s busy timeout; try again once it is done",
    ),
    ("password authentication failed", "correct the user or password in {source}"),
    ("does not exist", "create it, or correct {source}"),
    (
        "unable to open database file",
        "check that the directory exists and guardian may write there",
    ),
    ("readonly database", "let guardian write the file and its directory"),
    (
        "permission denied",
        "grant the user what guardian needs (CREATE on the schema for the first start, then "
        "reading and writing its tables), or correct {source}",
    ),
    ("not a database", "restore it from a backup ({left})"),
    ("malformed", "restore it from a backup ({left})"),
    ("resolve host", "correct the host name in {source}"),
    ("invalid connection option", "remove that option from {source}"),
    ("invalid", "correct that option in {source}"),
    ("timeout expired", "check that PostgreSQL answers at that host and port"),
    ("connection", "check that PostgreSQL runs at that host and port and accepts guardian"),
)


def _faults(
    name: str, source: str, scrub: Callable[[str], str], busy_timeout: float
) -> Callable[[ExceptionContext], None]:
    """A ``handle_error`` listener: a database that fails (connection refused, login
    refused, locked, damaged, a permission missing) raises ``StoreUnavailable`` with the
    driver's message scrubbed and without PostgreSQL's statement excerpt; constraint
    violations and other programming errors pass as they are."""

    def handle(context: ExceptionContext) -> None:
        error = context.sqlalchemy_exception
        if context.is_pre_ping or error is None:
            return
        said = str(context.original_exception).split("\nLINE ", 1)[0]
        connecting = context.connection is None
        failing = isinstance(error, OperationalError) or type(error) is DatabaseError
        refused = isinstance(error, ProgrammingError) and "permission denied" in said
        if not (connecting or failing or refused):
            return
        text = scrub(said) or type(error).__name__
        raise StoreUnavailable(f"store {name}: {text}; {_fix(text, source, busy_timeout)}")

    return handle


def _fix(text: str, source: str, busy_timeout: float) -> str:
    lowered = text.lower()
    for pattern, fix in _FIXES:
        if pattern in lowered:
            return fix.format(busy=busy_timeout, source=source, left=_LEFT)
    return f"check that the database is up and that {source} is right"
