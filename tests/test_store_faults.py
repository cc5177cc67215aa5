"""Store faults: each is one line naming the store (password masked), what is wrong and the
fix, exit 3 from every command that opens the store, and the file left byte for byte."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine, text

from guardian.app import cli
from guardian.app.daemon.metrics import Live as _Live
from guardian.app.daemon.run import Daemon
from guardian.clients.database import CONNECT_TIMEOUT
from guardian.clients.store import Store
from guardian.errors import StoreUnavailable
from guardian.testing.postgres import PostgresServer
from tests.store_fixture import fresh_url, guardian, store_config

FIX_URL = "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
LEFT = "guardian left it as it is"
SOURCE = "$GUARDIAN_STORE_URL"


@dataclass
class Fault:
    """A store URL that fails, the file it points at (kept unchanged), and the message."""

    url: str
    message: str
    file: Path | None = None


def _guardian_db(path: Path, journal: str = "wal") -> Path:
    store = Store.open(f"sqlite:///{path}")
    store.record("pause", datetime.now(UTC), None, "alice", "console")
    store.close()
    if journal != "wal":
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA journal_mode={journal}")
    return path


def _garbage(tmp: Path) -> Fault:
    db = tmp / "guardian.db"
    db.write_bytes(b"this is no database, it is someone's notes\n" * 200)
    return Fault(
        f"sqlite:///{db}",
        f"store sqlite:///{db}: the file is not a SQLite database; correct {SOURCE} to "
        f"guardian's database or a new file ({LEFT})",
        db,
    )


def _truncated(tmp: Path) -> Fault:
    db = _guardian_db(tmp / "guardian.db")
    whole = db.read_bytes()
    db.write_bytes(whole[: len(whole) // 2])
    return Fault(
        f"sqlite:///{db}",
        f"store sqlite:///{db}: the file is truncated ({len(whole) // 2} of {len(whole)} "
        f"bytes); restore it from a backup, or correct {SOURCE} to a new file ({LEFT})",
        db,
    )


def _foreign_columns(tmp: Path) -> Fault:
    db = tmp / "guardian.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, val TEXT)")
        conn.execute("INSERT INTO settings VALUES ('theme', 'dark')")
    return Fault(
        f"sqlite:///{db}",
        f"store sqlite:///{db}: table settings lacks guardian's columns value, updated_at: "
        f"not guardian's database, or one of another version; correct {SOURCE} to guardian's "
        f"database or an empty one ({LEFT})",
        db,
    )


def _another_app(tmp: Path) -> Fault:
    db = tmp / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO users VALUES (1, 'ada')")
    return Fault(
        f"sqlite:///{db}",
        f"store sqlite:///{db}: the database holds other tables (orders, users) and none of "
        f"guardian's; correct {SOURCE} to guardian's database or an empty one ({LEFT})",
        db,
    )


def _locked(tmp: Path) -> Fault:
    db = _guardian_db(tmp / "guardian.db", journal="delete")
    return Fault(
        f"sqlite:///{db}?timeout=1",
        f"store sqlite:///{db}?timeout=1: database is locked; another process held it past "
        "the 1 s busy timeout; try again once it is done",
        db,
    )


def _missing_directory(tmp: Path) -> Fault:
    db = tmp / "no" / "such" / "guardian.db"
    return Fault(
        f"sqlite:///{db}",
        f"store sqlite:///{db}: unable to open database file; check that the directory "
        "exists and guardian may write there",
    )


def _fifo(tmp: Path) -> Fault:
    db = tmp / "guardian.db"
    os.mkfifo(db)
    return Fault(
        f"sqlite:///{db}",
        f"store sqlite:///{db}: {db} is not a regular file; correct {SOURCE} to a SQLite file",
    )


def _directory(tmp: Path) -> Fault:
    db = tmp / "guardian.db"
    db.mkdir()
    return Fault(
        f"sqlite:///{db}",
        f"store sqlite:///{db}: {db} is not a regular file; correct {SOURCE} to a SQLite file",
    )


def _url(url: str, message: str) -> Callable[[Path], Fault]:
    return lambda tmp: Fault(url, message)


FAULTS: dict[str, Callable[[Path], Fault]] = {
    "garbage file": _garbage,
    "truncated file": _truncated,
    "guardian's table names, other columns": _foreign_columns,
    "another app's database": _another_app,
    "held by another writer past the busy timeout": _locked,
    "a directory that does not exist": _missing_directory,
    "a FIFO (never opened, never read)": _fifo,
    "a directory": _directory,
    "bad port": _url(
        "postgresql+psycopg://u@127.0.0.1:99999/db",
        "store postgresql+psycopg://u@127.0.0.1:99999/db: port 99999 is out of range; use a "
        f"port from 1 to 65535 in {SOURCE}",
    ),
    "unknown backend": _url(
        "mysql+nosuch://",
        "store mysql+nosuch://: guardian keeps its store in SQLite or PostgreSQL, not mysql; "
        f"correct {SOURCE} to {FIX_URL}",
    ),
    "unknown driver": _url(
        "postgresql+nosuch://u@127.0.0.1/db",
        "store postgresql+nosuch://u@127.0.0.1/db: no database driver postgresql+nosuch "
        f"(NoSuchModuleError); correct {SOURCE} to {FIX_URL}",
    ),
    "malformed URL": _url(
        "not a url",
        f"store: {SOURCE} is not a SQLAlchemy URL (not shown: it may hold a password); "
        f"write it as {FIX_URL}",
    ),
    "a port that is no number, a password in front": _url(
        "postgresql+psycopg://u:Sx9@Tz8@127.0.0.1:12ab/db",
        f"store: {SOURCE} is not a SQLAlchemy URL (not shown: it may hold a password); "
        f"write it as {FIX_URL}",
    ),
}

HOLD = (
    "import sqlite3, sys, time\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN EXCLUSIVE')\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def holder() -> Iterator[Callable[[Path], None]]:
    """``hold(path)``: a second process takes ``BEGIN EXCLUSIVE`` on the database."""
    started: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> None:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None and process.stdout.readline() == "held\n"

    yield hold
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture(params=list(FAULTS))
def fault(
    request: pytest.FixtureRequest, tmp_path: Path, holder: Callable[[Path], None]
) -> Iterator[Fault]:
    made = FAULTS[request.param](tmp_path)
    if made.file is not None and "timeout=" in made.url:
        holder(made.file)
    before = made.file.read_bytes() if made.file is not None else None
    listing = sorted(p.name for p in tmp_path.iterdir())
    yield made
    if made.file is not None:
        assert made.file.read_bytes() == before, "the store file was changed"
        assert sorted(p.name for p in tmp_path.iterdir()) == listing, "files were added"


def test_store_open_refuses_each_fault_with_one_exact_line(fault: Fault) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(fault.url, SOURCE)
    assert caught.value.message == fault.message
    assert caught.value.exit_code == 3


@pytest.mark.parametrize("command", [["approvals", "list"], ["history"]])
def test_commands_that_open_the_store_say_one_line_and_exit_3(
    fault: Fault,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = store_config(tmp_path.parent / f"{tmp_path.name}-config")
    monkeypatch.setenv("GUARDIAN_STORE_URL", fault.url)
    assert cli.main([*command, "-c", str(config)]) == 3
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"guardian: {fault.message}\n")


def test_guardian_run_stops_at_start_up_with_one_line_and_exit_3(
    fault: Fault, tmp_path: Path
) -> None:
    config = store_config(tmp_path.parent / f"{tmp_path.name}-config")
    done = guardian("run", "-c", str(config), env={"GUARDIAN_STORE_URL": fault.url})
    assert (done.returncode, done.stdout, done.stderr) == (3, "", f"guardian: {fault.message}\n")


def test_a_writer_holding_a_wal_store_lets_readers_on_and_writers_fail_in_one_line(
    tmp_path: Path, holder: Callable[[Path], None]
) -> None:
    db = _guardian_db(tmp_path / "guardian.db")
    holder(db)
    config = store_config(tmp_path.parent / f"{tmp_path.name}-config")
    env = {"GUARDIAN_STORE_URL": f"sqlite:///{db}?timeout=1"}
    reading = guardian("history", "-c", str(config), env=env)
    assert reading.returncode == 0, reading.stderr
    assert " pause " in reading.stdout
    writing = guardian("pause", "-c", str(config), "--as", "alice", env=env)
    assert (writing.returncode, writing.stderr) == (
        3,
        f"guardian: store sqlite:///{db}?timeout=1: database is locked; another process held "
        "it past the 1 s busy timeout; try again once it is done\n",
    )


def test_a_store_that_goes_away_while_open_fails_in_one_line(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with PostgresServer() as server:
        store = Store.open(server.url, SOURCE)
        store.executions()
        registry.register(_Live(cast(Daemon, SimpleNamespace(store=store, clients={}))))
        assert "guardian_store_up 1.0" in generate_latest(registry).decode()
    with pytest.raises(StoreUnavailable) as caught:
        store.executions()
    message = caught.value.message
    assert message.startswith(f"store {server.url}: ") and "\n" not in message
    assert message.endswith(
        "; check that PostgreSQL runs at that host and port and accepts guardian"
    )
    with pytest.raises(StoreUnavailable) as pinged:
        store.ping()  # what /readyz shows
    assert pinged.value.message.startswith(f"store {server.url}: ")
    scraped = generate_latest(registry).decode()  # /metrics still answers
    assert "guardian_store_up 0.0" in scraped and "guardian_executions" not in scraped
    store.close()


def test_a_fault_in_a_store_named_in_the_config_file_says_which_setting_to_correct(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _garbage(tmp_path).file
    config = tmp_path / "guardian.yaml"
    store_config(tmp_path)
    config.write_text(
        config.read_text().replace("{url_env: GUARDIAN_STORE_URL}", f"{{url: 'sqlite:///{db}'}}")
    )
    assert cli.main(["approvals", "list", "-c", str(config)]) == 3
    assert capsys.readouterr().err == (
        f"guardian: store sqlite:///{db}: the file is not a SQLite database; correct "
        f"policy.store.url to guardian's database or a new file ({LEFT})\n"
    )


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_postgresql_that_never_answers_is_given_up_after_the_connect_timeout(
    silent_server: int,
) -> None:
    began = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(f"postgresql+psycopg://u:Sx9@127.0.0.1:{silent_server}/db", SOURCE)
    took = time.monotonic() - began
    assert took < 3 * CONNECT_TIMEOUT, f"took {took:.1f}s"
    message = caught.value.message
    assert message.startswith(f"store postgresql+psycopg://u:***@127.0.0.1:{silent_server}/db: ")
    assert "timeout expired" in message and "Sx9" not in message
    assert message.endswith("; check that PostgreSQL answers at that host and port")


def test_guardian_s_own_database_of_an_older_version_gets_the_tables_it_lacks(
    tmp_path: Path,
) -> None:
    db = _guardian_db(tmp_path / "guardian.db")
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE approvals")
        conn.execute("DROP TABLE messages")
    store = Store.open(f"sqlite:///{db}")
    [row] = store.history()
    assert (row.kind, row.actor) == ("pause", "alice")
    assert store.message("nope") is None
    store.close()
    with sqlite3.connect(db) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert {"approvals", "messages"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_user_without_the_rights_it_needs_is_told_which(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'visitor'")).first():
            conn.execute(text("CREATE ROLE visitor LOGIN"))
    admin.dispose()
    owned = fresh_url("postgresql", postgres, tmp_path)
    admin = create_engine(owned, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # the default since PostgreSQL 15, said for older ones
        conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    admin.dispose()
    url = owned.replace(f"//{postgres.user}@", "//visitor@", 1)
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(url, SOURCE)
    assert caught.value.message == (
        f"store {url}: permission denied for schema public; grant the user what guardian "
        "needs (CREATE on the schema for the first start, then reading and writing its "
        f"tables), or correct {SOURCE}"
    )


def test_a_shared_postgresql_database_gets_guardians_tables_beside_the_others(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """A SQLite file with other tables is another application's and is refused; a PostgreSQL
    database is often shared, so guardian adds its tables there and leaves the others."""
    url = fresh_url("postgresql", postgres, tmp_path)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)"))
        conn.execute(text("INSERT INTO orders VALUES (1, 9.5)"))
    store = Store.open(url)
    store.record("pause", datetime.now(UTC), None, "alice", "console")
    assert [row.kind for row in store.history()] == ["pause"]
    store.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, total FROM orders")).all() == [(1, 9.5)]
    engine.dispose()
