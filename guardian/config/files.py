"""Read a file guardian was pointed at without letting it hang, flood or crash guardian.

Input: a path (and a size limit). Output: its bytes (``read_bytes``, ``read_regular``) or its
stripped UTF-8 text (``read_secret``); refused, before anything is read, when the path is not
a regular file (a FIFO, a device such as ``/dev/zero`` behind a symlink, a directory, a
socket) and when the file is larger than its limit (checked with ``fstat`` and by never
reading more than the limit plus one byte, whatever the file claims or becomes). Opening never
waits for a FIFO's writer. The refusal is ``Unreadable`` from ``read_regular``, one
``ConfigErrors`` line naming the file from ``read_bytes``, and a ``ConfigError`` naming the
config field from ``read_secret`` and ``check_ca_file``; a secret's content never enters one.

Called by ``guardian.config.read`` (config and playbook files, ``MAX_BYTES``), by the daemon's
file watch (``read_bytes``), and by the clients for the secret files a config names
(``read_secret``: tokens, passwords; ``check_ca_file``: CA bundles).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from guardian.errors import ConfigError, ConfigErrors

MAX_BYTES = 1 << 20
"""A config or playbook file holds at most 1 MiB (and so does a CA bundle)."""
MAX_SECRET_BYTES = 64 << 10
"""A token or password file holds at most 64 KiB."""


def read_bytes(file: Path) -> bytes:
    """The bytes of a regular file of at most ``MAX_BYTES``; ``ConfigErrors`` otherwise.

    Opening never waits for a FIFO's writer, and no more than ``MAX_BYTES + 1`` bytes are
    read, whatever the file claims or becomes.
    """
    try:
        return read_regular(file, MAX_BYTES)
    except Unreadable as exc:
        if exc.size is not None:
            raise _too_large(file, exc.size) from None
        fix = "; give a YAML file" if exc.kind else ""
        raise ConfigErrors([ConfigError(f"{file}: {exc}{fix}")]) from None


def read_secret(file: str, field: str, limit: int = MAX_SECRET_BYTES) -> str:
    """The stripped UTF-8 text of the secret file ``file`` (a mounted Secret), read as config
    files are (a regular file, at most ``MAX_SECRET_BYTES``, never waiting on a FIFO);
    ``ConfigError`` naming ``field`` otherwise. Its content never enters a message."""
    try:
        data = read_regular(Path(file), limit)
    except Unreadable as exc:
        if exc.kind:
            problem = f"{file} is not a regular file ({exc.kind}); give a file holding it"
        elif exc.size is not None:
            problem = (
                f"{file} is too large ({exc.size} bytes, at most {limit}); "
                "give a file holding only it"
            )
        else:
            problem = f"cannot read {file}: {exc.strerror}"
        raise ConfigError(f"{field}: {problem}") from None
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{field}: {file}: not UTF-8 text; save it as UTF-8") from None


def check_ca_file(file: str, field: str) -> None:
    """Refuse ``file`` as ``read_secret`` would (up to ``MAX_BYTES``: system bundles are a few
    hundred KiB), before a TLS library that reads it by path can hang on it."""
    read_secret(file, field, MAX_BYTES)


class Unreadable(Exception):
    """Why a file was not read: ``kind`` when it is no regular file, ``size`` when too large,
    else the system's ``strerror``."""

    def __init__(
        self, reason: str, kind: str = "", size: int | None = None, strerror: str = ""
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.size = size
        self.strerror = strerror


def read_regular(file: Path, limit: int) -> bytes:
    """The bytes of ``file`` if it is a regular file of at most ``limit`` bytes; ``Unreadable``
    otherwise. Opening never waits for a FIFO's writer; at most ``limit + 1`` bytes are read,
    whatever the file claims or becomes."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror}", strerror=str(exc.strerror)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            raise Unreadable(f"not a regular file ({kind})", kind=kind)
        if info.st_size > limit:
            raise _too_big(info.st_size, limit)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise _too_big(size, limit)
        return b"".join(chunks)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror}", strerror=str(exc.strerror)) from None
    finally:
        os.close(fd)


def _too_big(size: int, limit: int) -> Unreadable:
    return Unreadable(f"too large ({size} bytes, at most {limit})", size=size)


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a file")


def _too_large(file: Path, size: int) -> ConfigErrors:
    message = f"{file}: too large ({size} bytes); a config or playbook file holds at most 1 MiB"
    return ConfigErrors([ConfigError(message)])
