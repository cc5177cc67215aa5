"""The lab as a pytest fixture: one real control plane per session, torn down at the end."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
NODES = 20


@dataclass(frozen=True)
class Lab:
    """A running lab: its directory, state and an admin session."""

    directory: Path
    state: dict[str, Any]

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.state["ports"])

    def api(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        token = (self.directory / "pki" / "admin.token").read_text().strip()
        return requests.request(
            method,
            f"https://127.0.0.1:{self.ports['kube-apiserver']}{path}",
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
            verify=str(self.directory / "pki" / "ca.crt"),
            timeout=20,
            **kwargs,
        )

    def promql(self, query: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/query"
        result: list[dict[str, Any]] = requests.get(
            url, params={"query": query}, timeout=10
        ).json()["data"]["result"]
        return result


def _lab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "lab" / "lab"), *args], env=env, capture_output=True, text=True, check=False
    )


@contextlib.contextmanager
def running_lab(directory: Path, nodes: int) -> Iterator[Lab]:
    """``lab up`` in ``directory``, then ``lab down``, checking nothing keeps running."""
    env = {**os.environ, "GUARDIAN_LAB_DIR": str(directory)}
    up = _lab("up", "--nodes", str(nodes), env=env)
    assert up.returncode == 0, up.stderr[-3000:]
    state = json.loads((directory / "state.json").read_text())
    try:
        yield Lab(directory, state)
    finally:
        down = _lab("down", env=env)
        assert down.returncode == 0, down.stderr
        pids = json.loads((directory / "state.json").read_text())["pids"]
        assert pids == {}
        for pid in state["pids"].values():
            assert not _alive(pid), f"pid {pid} still running after lab down"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab"), NODES) as running:
        yield running


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def eventually(
    check: Callable[[], bool],
    timeout: float = 60,
    what: str = "",
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` every half second until it holds; fail after ``timeout`` seconds,
    with what ``detail`` says then (a daemon's log, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    told = f"\n{detail()}" if detail is not None else ""
    pytest.fail(f"not within {timeout:.0f}s: {what}{told}")
