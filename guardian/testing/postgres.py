"""A real, throw-away PostgreSQL server on loopback for tests (Debian's postgresql package).

Input: nothing but the installed server binaries. Output: a running ``postgres`` on a free
127.0.0.1 port with trust authentication and a ``guardian`` database, whose data directory
is removed on exit. When run as root it runs the server as the ``postgres`` user, which
PostgreSQL requires.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from guardian.testing.prometheus import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/install-postgresql.sh (make setup)")
    return found[-1]


class PostgresServer:
    """``postgres`` as a child process; use as a context manager."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="guardian-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.user = "postgres" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``guardian`` database."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/guardian"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd

    def __enter__(self) -> PostgresServer:
        data = self.directory / "data"
        if os.getuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            self._as_owner(
                [_bin("initdb"), "-D", str(data), "-A", "trust", "-U", self.user, "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )
        log = open(self.directory / "postgres.log", "wb")
        self.process = subprocess.Popen(
            self._as_owner(
                [
                    _bin("postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    "fsync=off",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()  # the child holds its own descriptor
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                text = (self.directory / "postgres.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres did not start: {text}")
            time.sleep(0.2)
        subprocess.run(
            [
                _bin("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "guardian",
            ],
            check=True,
            capture_output=True,
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # smart shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
