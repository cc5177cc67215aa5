"""What the watch's change log makes of workload objects (``guardian.clients.change_track``).

Pure: objects as the API server sends them, in the order a LIST and a watch would deliver
them; the clock is explicit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.clients.change_track import ChangeTracker, progress, rolling, service_account

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
JSON = dict[str, Any]


def workload(
    name: str,
    generation: int = 1,
    image: str = "v1",
    replicas: int = 3,
    created: datetime = T0,
    status: JSON | None = None,
    account: str | None = "agent",
) -> JSON:
    pod: JSON = {"containers": [{"name": "c", "image": image}]}
    if account is not None:
        pod["serviceAccountName"] = account
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": generation,
            "creationTimestamp": created.isoformat().replace("+00:00", "Z"),
        },
        "spec": {"replicas": replicas, "template": {"spec": pod}},
        "status": status or {},
    }


def everything(tracker: ChangeTracker) -> list[Any]:
    return tracker.changes(T0 - timedelta(days=2), T0 + timedelta(days=2))


def test_a_creation_starts_at_its_creation_timestamp_not_when_it_was_seen() -> None:
    tracker = ChangeTracker(cluster="lab")
    seen = T0 + timedelta(minutes=3)
    tracker.observe("DaemonSet", "ADDED", workload("agent", account=None), seen)
    [change] = everything(tracker)
    assert change.created is True
    assert change.started == T0
    assert change.service_account == "default"
    assert change.cluster == "lab"
    assert change.previous_revision == ""


def test_a_template_update_is_a_change_and_keeps_the_previous_template() -> None:
    tracker = ChangeTracker()
    done = {"observedGeneration": 1, "updatedReplicas": 3}
    tracker.listed("Deployment", [workload("web", status=done)], T0 + timedelta(hours=1))
    seen = T0 + timedelta(hours=2)
    update = workload("web", generation=2, image="v2", status=done)
    tracker.observe("Deployment", "MODIFIED", update, seen)
    creation, change = everything(tracker)
    assert (change.created, change.started, change.generation) == (False, seen, 2)
    assert change.previous_revision == "1"
    assert change.service_account == "agent"
    assert change.updated == 0 and change.in_flight  # the controller has not observed gen 2
    assert (
        tracker.previous_template("Deployment", "ns", "web") == workload("web")["spec"]["template"]
    )
    assert creation.created and not creation.in_flight


def test_a_scale_bumps_the_generation_but_is_not_a_change() -> None:
    tracker = ChangeTracker()
    done = {"observedGeneration": 4, "updatedReplicas": 3}
    tracker.listed("Deployment", [workload("web", generation=4, status=done)], T0)
    scaled = workload("web", generation=5, replicas=10)
    tracker.observe("Deployment", "MODIFIED", scaled, T0 + timedelta(minutes=1))
    assert everything(tracker) == []
    assert tracker.previous_template("Deployment", "ns", "web") is None


def test_progress_follows_the_status_of_the_new_generation() -> None:
    tracker = ChangeTracker()
    tracker.listed("DaemonSet", [workload("agent", status={"observedGeneration": 1})], T0)
    steps = [
        ({"observedGeneration": 1, "desiredNumberScheduled": 20, "updatedNumberScheduled": 20}, 0),
        ({"observedGeneration": 2, "desiredNumberScheduled": 20, "updatedNumberScheduled": 4}, 4),
        ({"observedGeneration": 2, "desiredNumberScheduled": 20, "updatedNumberScheduled": 20}, 20),
    ]
    for minute, (status, updated) in enumerate(steps, start=1):
        obj = workload("agent", generation=2, image="v2", status=status)
        tracker.observe("DaemonSet", "MODIFIED", obj, T0 + timedelta(minutes=minute))
        change = everything(tracker)[-1]
        assert (change.desired, change.updated) == (20, updated)
    assert change.started == T0 + timedelta(minutes=1)
    assert not change.in_flight


def test_the_first_list_dates_a_creation_by_its_timestamp_and_a_rolling_update_by_the_list() -> (
    None
):
    tracker = ChangeTracker()
    at = T0 + timedelta(hours=1)
    rolling_update = workload(
        "rolling", generation=3, status={"observedGeneration": 3, "updatedReplicas": 1}
    )
    finished = workload(
        "finished", generation=3, status={"observedGeneration": 3, "updatedReplicas": 3}
    )
    tracker.listed("Deployment", [workload("new"), rolling_update, finished], at)
    by_name = {c.name: c for c in everything(tracker)}
    assert set(by_name) == {"new", "rolling"}
    assert by_name["new"].created and by_name["new"].started == T0
    assert not tracker.approximate(by_name["new"])
    assert not by_name["rolling"].created and by_name["rolling"].started == at
    assert tracker.approximate(by_name["rolling"])


def test_a_relist_forgets_deleted_workloads_and_freezes_their_change() -> None:
    tracker = ChangeTracker()
    tracker.observe("StatefulSet", "ADDED", workload("db"), T0)
    assert everything(tracker)[0].in_flight
    tracker.listed("StatefulSet", [], T0 + timedelta(minutes=5))
    [change] = everything(tracker)
    assert not change.in_flight
    tracker.observe("StatefulSet", "ADDED", workload("db", created=T0 + timedelta(minutes=6)), T0)
    assert len(everything(tracker)) == 2


def test_a_template_change_found_by_a_relist_is_dated_by_that_list() -> None:
    tracker = ChangeTracker()
    done = {"observedGeneration": 2, "updatedReplicas": 3}
    tracker.listed("Deployment", [workload("web", generation=2, status=done)], T0)
    relisted_at = T0 + timedelta(minutes=10)
    tracker.listed("Deployment", [workload("web", generation=3, image="v3")], relisted_at)
    [change] = everything(tracker)
    assert change.started == relisted_at and tracker.approximate(change)


def test_changes_are_chosen_by_start_and_dropped_after_the_retention() -> None:
    tracker = ChangeTracker(retention=timedelta(hours=24))
    tracker.listed("Deployment", [workload("ancient", created=T0 - timedelta(hours=30))], T0)
    tracker.observe("Deployment", "ADDED", workload("old", created=T0 - timedelta(hours=20)), T0)
    tracker.observe("Deployment", "ADDED", workload("recent"), T0)
    assert [c.name for c in everything(tracker)] == ["old", "recent"]
    assert [c.name for c in tracker.changes(T0 - timedelta(hours=1), T0)] == ["recent"]
    tracker.observe("Deployment", "MODIFIED", workload("recent"), T0 + timedelta(hours=5))
    assert [c.name for c in everything(tracker)] == ["recent"]


def test_progress_and_service_account_of_each_kind() -> None:
    status = {"desiredNumberScheduled": 7, "updatedNumberScheduled": 2, "observedGeneration": 1}
    ds = {"spec": {}, "status": status}
    assert progress("DaemonSet", ds) == (7, 2)
    deploy = {"spec": {"replicas": 5}, "status": {"updatedReplicas": 5, "observedGeneration": 1}}
    assert progress("Deployment", deploy) == (5, 5) and not rolling("Deployment", deploy)
    rollout = {"spec": {}, "status": {"updatedReplicas": 0, "observedGeneration": "abc123"}}
    assert progress("Rollout", rollout) == (1, 0) and rolling("Rollout", rollout)
    assert service_account({"spec": {"template": {"spec": {"serviceAccountName": "x"}}}}) == "x"
