"""The store on SQLite and on a real PostgreSQL: compare-and-set, leases, applied-once, audit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from guardian.errors import DataUnavailable
from guardian.store import Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _new(store: Store) -> str:
    ex = store.create(
        "pause-suspect-rollout",
        "apiserver-read-latency",
        "DaemonSet kube-system/telemetry",
        "awaiting_approval",
        "U_REQUESTER",
        "slack",
        {"suspects": [{"name": "telemetry", "started": NOW}]},
        NOW,
        NOW + timedelta(minutes=15),
    )
    return ex.id


def test_an_execution_reads_back_as_written(store: Store) -> None:
    ex = store.get(_new(store))
    assert ex.state == "awaiting_approval" and ex.step == 0 and ex.phase == 0
    assert ex.context == {"suspects": [{"name": "telemetry", "started": NOW.isoformat()}]}
    assert ex.expires_at == NOW + timedelta(minutes=15)
    assert store.find(ex.id[:6]).id == ex.id
    with pytest.raises(KeyError):
        store.get("nope")


def test_a_transition_happens_once_even_when_two_try_at_the_same_time(store: Store) -> None:
    execution = _new(store)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def approve() -> None:
        barrier.wait()
        wins.append(store.transition(execution, "awaiting_approval", NOW, state="approved"))

    threads = [threading.Thread(target=approve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert store.get(execution).state == "approved"


def test_a_lease_keeps_others_out_until_it_runs_out(store: Store) -> None:
    execution = _new(store)
    assert store.claim(execution, "a", NOW, NOW + timedelta(seconds=15))
    assert not store.claim(execution, "b", NOW + timedelta(seconds=5), NOW + timedelta(seconds=20))
    assert store.claim(execution, "a", NOW + timedelta(seconds=5), NOW + timedelta(seconds=20))
    assert store.claim(execution, "b", NOW + timedelta(seconds=21), NOW + timedelta(seconds=36))
    store.release(execution, "b")
    assert store.get(execution).owner is None


def test_a_phase_is_marked_applied_once(store: Store) -> None:
    execution = _new(store)
    store.save_step(execution, 0, "pause", "running", NOW, plan={"changes": []})
    assert store.mark_applied(execution, 0, 0, "a", NOW)
    assert not store.mark_applied(execution, 0, 0, "b", NOW)
    assert store.mark_applied(execution, 0, 1, "a", NOW)
    assert store.applied_phases(execution) == [(0, 0), (0, 1)]
    [record] = store.steps(execution)
    assert record.applied_phases == 2 and record.plan == {"changes": []}


def test_the_audit_log_keeps_order_and_details(store: Store) -> None:
    execution = _new(store)
    store.record("approval", NOW, execution, "U_SRE", "slack", step=0, decision="approve")
    store.record("refused", NOW, execution, "U_X", "slack", reason="not an approver")
    kinds = [(r.kind, r.actor) for r in store.history(execution)]
    assert kinds == [("proposed", "U_REQUESTER"), ("approval", "U_SRE"), ("refused", "U_X")]
    assert store.history(execution)[1].detail == {"step": 0, "decision": "approve"}
    assert store.history(limit=1)[0].kind == "refused"


def test_settings_hold_the_kill_switch(store: Store) -> None:
    assert store.setting("paused", "false") == "false"
    store.set_setting("paused", "true", NOW)
    store.set_setting("paused", "true", NOW)
    assert store.setting("paused") == "true"


def test_an_unreachable_database_is_unavailable_without_its_password() -> None:
    with pytest.raises(DataUnavailable) as caught:
        Store.open("postgresql+psycopg://guardian:s3cret@127.0.0.1:1/guardian")
    assert "s3cret" not in caught.value.message
    assert caught.value.message.startswith("store postgresql+psycopg://guardian:***@127.0.0.1:1/")


def test_an_id_prefix_is_taken_literally_and_must_have_four_characters(store: Store) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    ex = store.create("book", "slo", "", "proposed", "alice", "console", {}, now)
    assert store.find(ex.id[:4]).id == ex.id
    for prefix in (ex.id[:3], "%", "____", ex.id[:3] + "_", ex.id[:3] + "%"):
        with pytest.raises(KeyError):
            store.find(prefix)


def test_a_transition_at_a_step_and_phase_fails_once_the_execution_moved_on(
    store: Store,
) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    ex = store.create("book", "slo", "", "running", "alice", "console", {}, now)
    assert store.transition(ex.id, "running", now, at=(0, 0), phase=1)
    assert not store.transition(ex.id, "running", now, at=(0, 0), phase=1), "already at phase 1"
    assert store.get(ex.id).phase == 1
