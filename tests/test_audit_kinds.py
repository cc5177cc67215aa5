"""Audit kinds are a closed set: the store appends no other kind, and mypy refuses a
misspelt one where a caller writes it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardian.audit.kinds import AUDIT_KINDS, audit_kind
from guardian.clients.store import Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_the_store_refuses_a_kind_guardian_does_not_write_and_writes_nothing(
    store: Store,
) -> None:
    with pytest.raises(ValueError, match="'pasue' is not one guardian writes"):
        store.record("pasue", NOW, None, "alice", "console")  # type: ignore[arg-type]
    assert store.history() == []
    store.record("pause", NOW, None, "alice", "console")
    assert [(r.kind, r.actor, r.via) for r in store.history()] == [("pause", "alice", "console")]


def test_every_kind_is_a_short_stable_string() -> None:
    assert {"proposed", "approved", "pause", "resume", "evaluation", "decision"} <= AUDIT_KINDS
    assert {"notify_failed", "refused", "expired", "step_failed", "undone"} <= AUDIT_KINDS
    assert all(kind.isidentifier() and len(kind) <= 32 for kind in AUDIT_KINDS)
    assert audit_kind("decision") == "decision"


def test_mypy_refuses_a_misspelt_kind(tmp_path: Path) -> None:
    caller = tmp_path / "caller.py"
    caller.write_text(
        "from datetime import datetime\n"
        "from guardian.audit.ports import AuditWriter\n\n\n"
        "def audit(log: AuditWriter, now: datetime) -> None:\n"
        '    log.record("pause", now)\n'
        '    log.record("pasue", now)\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(caller)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "caller.py:7:" in errors[0], done.stdout
