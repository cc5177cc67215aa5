"""Runner decisions that need only the store: nothing reaches an API server."""

from __future__ import annotations

from datetime import UTC, datetime

from guardian.actions.base import KubeAPI
from guardian.clients.store import Store
from guardian.executor.runner import Runner
from tests.signals import NoSignals


def _no_cluster(context: str | None) -> KubeAPI:
    raise AssertionError("no API server may be reached")


def test_a_decision_on_a_run_whose_playbook_is_gone_is_refused_and_audited(store: Store) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    ex = store.create("retired", "slo", "", "awaiting_approval", "alice", "console", {}, now)
    runner = Runner(store, {}, _no_cluster, NoSignals(), clock=lambda: now)
    decision = runner.approve(ex.id, "bob", "console", step=0)
    assert not decision.ok
    assert decision.message == f"playbook retired of execution {ex.id} is not loaded"
    assert store.get(ex.id).state == "awaiting_approval"
    assert [r.kind for r in store.history(ex.id)] == ["proposed", "refused"]
    assert runner.advance(ex.id).state == "failed", "a run that cannot go on is ended"


def test_the_kill_switch_stops_every_execution_where_it_stands(store: Store) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    ex = store.create("retired", "slo", "", "approved", "alice", "console", {}, now)
    store.set_setting("paused", "true", now)
    runner = Runner(store, {}, _no_cluster, NoSignals(), clock=lambda: now)
    assert runner.advance(ex.id).state == "approved"
    store.set_setting("paused", "false", now)
    assert runner.advance(ex.id).state == "failed"
    assert store.get(ex.id).message == "playbook retired is no longer loaded"
