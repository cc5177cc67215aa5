"""Secret files a config names (tokens, passwords, CA bundles) are read as config files are:
a FIFO, a device or a huge file is refused with one line at once, never waited on or read
whole, and the secret itself never enters the message."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from guardian.clients.prometheus import PrometheusClient
from guardian.clients.slack import secret
from guardian.config.model import PrometheusSettings
from guardian.errors import ConfigError

SETTINGS = PrometheusSettings(url="http://127.0.0.1:9")


def _fifo(tmp: Path) -> str:
    path = tmp / "token"
    os.mkfifo(path)  # nobody ever writes: a plain open() would wait forever
    return str(path)


def _zero(tmp: Path) -> str:
    path = tmp / "token"
    path.symlink_to("/dev/zero")
    return str(path)


def _huge(tmp: Path) -> str:
    path = tmp / "token"
    with path.open("wb") as handle:
        handle.truncate(50 << 20)
    return str(path)


def _latin1(tmp: Path) -> str:
    path = tmp / "token"
    path.write_bytes(b"s3cr\xe9t\n")
    return str(path)


def _directory(tmp: Path) -> str:
    path = tmp / "token"
    path.mkdir()
    return str(path)


Make = Callable[[Path], str]
CASES: list[tuple[str, Make, str]] = [
    ("fifo", _fifo, "{f} is not a regular file (a FIFO); give a file holding it"),
    ("dev-zero", _zero, "{f} is not a regular file (a character device); give a file holding it"),
    (
        "huge",
        _huge,
        "{f} is too large (52428800 bytes, at most 65536); give a file holding only it",
    ),
    ("latin-1", _latin1, "{f}: not UTF-8 text; save it as UTF-8"),
    ("directory", _directory, "{f} is not a regular file (a directory); give a file holding it"),
]


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_bearer_token_file_is_one_line_at_once(
    tmp_path: Path, make: Make, message: str
) -> None:
    file = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        PrometheusClient(replace(SETTINGS, bearer_token_file=file))
    assert time.monotonic() - started < 5
    assert caught.value.message == "prometheus: bearer_token_file: " + message.format(f=file)


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_slack_token_file_is_one_line_at_once(
    tmp_path: Path, make: Make, message: str
) -> None:
    file = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        secret(None, file, "bot_token")
    assert caught.value.message == "slack: bot_token_file: " + message.format(f=file)
    assert "s3cr" not in caught.value.message


def test_a_ca_file_that_is_a_fifo_is_refused_before_tls_reads_it(tmp_path: Path) -> None:
    file = _fifo(tmp_path)
    with pytest.raises(ConfigError) as caught:
        PrometheusClient(replace(SETTINGS, tls_ca_file=file))
    assert caught.value.message == (
        f"prometheus: tls_ca_file: {file} is not a regular file (a FIFO); give a file holding it"
    )


def test_good_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  xoxb-123\n")
    assert secret(None, str(token), "bot_token") == "xoxb-123"
    password = tmp_path / "password"
    password.write_text("pa:ss@word\n")
    client = PrometheusClient(
        replace(SETTINGS, basic_auth_username="u", basic_auth_password_file=str(password))
    )
    assert client._auth == ("u", "pa:ss@word")
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as caught:
        secret(None, str(missing), "bot_token")
    assert caught.value.message == (
        f"slack: bot_token_file: cannot read {missing}: No such file or directory"
    )
