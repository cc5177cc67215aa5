"""Opening the store's database without showing its password or changing what is not ours.

Input: a store URL (from the config or an environment variable) and the store's tables.
Output: a SQLAlchemy ``Engine`` on guardian's database (or an empty one, its tables then
created), or one ``StoreUnavailable`` line naming the store with its password masked and the
fix. Refused before anything is written: a URL that does not parse, an unknown backend or
driver, a port outside 1-65535, a SQLite path that is no regular file or no SQLite file (or a
truncated one), a SQLite file of another application, and tables of guardian's names without
guardian's columns. Faults of any later call (a lock held past the busy timeout, a lost
connection, a missing right) become the same kind of line, shown through
``guardian.clients.database_url`` (the password masked, driver messages scrubbed). Called by
``guardian.clients.store.Store.open``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, inspect
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.exc import (
    DatabaseError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)

from guardian.clients.database_url import URL_FORM, masked, parse_url, scrubber
from guardian.errors import StoreUnavailable


def open_engine(url: str, metadata: MetaData, source: str, busy_timeout: float | None) -> Engine:
    """An engine on ``url`` once it is known to be guardian's database (or an empty one),
    the missing ``metadata`` tables created; ``StoreUnavailable`` otherwise (the module
    docstring says which faults). ``source`` names where the URL came from, for the fix."""
    parsed = parse_url(url, source)
    name = masked(parsed)
    _check_url(parsed, name, source)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_file(parsed, name, source)
    engine = _engine(parsed, name, source, busy_timeout or _busy_timeout(parsed))
    try:
        _prepare(engine, metadata, name, source)
    except BaseException:
        engine.dispose()
        raise
    return engine


# opening the store: its URL, its file, its schema, its faults ------------------------------

BUSY_TIMEOUT = 10.0
"""Seconds a SQLite writer waits for another one before the store is unavailable."""

CONNECT_TIMEOUT = 10
"""Seconds to connect to PostgreSQL, unless the URL sets ``connect_timeout``."""

_LEFT = "guardian left it as it is"


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


def _prepare(engine: Engine, metadata: MetaData, name: str, source: str) -> None:
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
