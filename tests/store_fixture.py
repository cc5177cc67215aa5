"""The store on SQLite and on a real PostgreSQL server, as pytest fixtures; and a
PostgreSQL login that needs a password (``password_login``), to see it refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from sqlalchemy import create_engine, text

from guardian.clients.store import Store
from guardian.testing.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def fresh_url(kind: str, postgres: PostgresServer | None, tmp_path: Path) -> str:
    """A URL of an empty database: a new SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'guardian.db'}"
    assert postgres is not None
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    server = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return fresh_url(request.param, server, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.close()


@dataclass(frozen=True)
class PasswordLogin:
    """A PostgreSQL role that logs in only with ``password`` (scram-sha-256)."""

    user: str
    password: str
    host: str
    port: int
    database: str

    def url(self, credentials: str, query: str = "") -> str:
        """The URL with ``credentials`` written as given (raw, unescaped)."""
        return f"postgresql+psycopg://{credentials}@{self.host}:{self.port}/{self.database}{query}"


LOCKED_PASSWORD = "Zq7@Kp9/Wm3:Xy5"
"""The right password: a raw ``@``, ``/`` and ``:`` in it."""


@pytest.fixture(scope="session")
def password_login(postgres: PostgresServer) -> PasswordLogin:
    """Role ``locked`` on the shared server, refused without its password: one line put
    first in pg_hba.conf (every other role keeps trust), and the server reloaded."""
    hba = postgres.directory / "data" / "pg_hba.conf"
    rule = "host all locked 127.0.0.1/32 scram-sha-256\n"
    if not hba.read_text().startswith(rule):
        hba.write_text(rule + hba.read_text())
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        quoted = LOCKED_PASSWORD.replace("'", "''")
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'locked'")).first()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(text(f"{verb} ROLE locked LOGIN PASSWORD '{quoted}'"))
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = 'locked'")).first():
            conn.execute(text("CREATE DATABASE locked OWNER locked"))
        conn.execute(text("SELECT pg_reload_conf()"))
    admin.dispose()
    login = PasswordLogin("locked", LOCKED_PASSWORD, "127.0.0.1", postgres.port, "locked")
    deadline = time.monotonic() + 30
    probe = create_engine(login.url("locked:wrong"))
    while True:  # the reload is asynchronous: wait until a wrong password is refused
        try:
            probe.connect().close()
        except Exception:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("pg_hba.conf reload did not take effect")
        time.sleep(0.2)
    probe.dispose()
    return login


def store_config(directory: Path, url_env: str = "GUARDIAN_STORE_URL") -> Path:
    """A config file whose store URL comes from the environment variable ``url_env``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "guardian.yaml"
    path.write_text(
        "version: guardian/v1\n"
        "prometheus: {url: 'http://127.0.0.1:9'}\n"
        "slos: [{name: api-read, objective: 99, sli: {apiserver_latency: {}}}]\n"
        f"policy: {{store: {{url_env: {url_env}}}}}\n",
        encoding="utf-8",
    )
    return path


def guardian(*args: str, env: dict[str, str], timeout: float = 120) -> CompletedProcess[str]:
    """``python -m guardian ARGS`` in a process of its own, with ``env`` added."""
    return subprocess.run(
        [sys.executable, "-m", "guardian", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
