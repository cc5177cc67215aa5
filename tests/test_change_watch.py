"""The change log from the watch (``guardian.clients.change_watch``) on the lab's API server.

Real control plane: kube-apiserver, controllers and KWOK nodes run the workloads; the
API server is restarted for real (``lab fault kube-apiserver start``), which is also how
the 410 Gone is produced: the restarted API server's watch cache begins at etcd's current
revision, so a watch from an older resourceVersion gets an ERROR event with code 410
("too old resource version").
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from guardian.clients.change_watch import WatchChangeLog
from guardian.clients.kube import Conflict, Kube
from guardian.evaluation.changes import WorkloadChange
from tests.lab_fixture import NODES, ROOT, Lab, eventually
from tests.test_crd_actions import _crd

pytestmark = pytest.mark.lab
NS = "change-watch"
APPS = f"/apis/apps/v1/namespaces/{NS}"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Iterator[Kube]:
    """An admin client; the module's objects live in a namespace of their own, removed after."""
    admin = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    admin.create("/api/v1/namespaces", {"metadata": {"name": NS}})
    admin.create(f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "agent"}})
    yield admin
    admin.delete(f"/api/v1/namespaces/{NS}")


@pytest.fixture(scope="module")
def watched(lab: Lab, kube: Kube) -> Iterator[tuple[WatchChangeLog, Kube]]:
    """A change log with a client of its own, so that its requests can be counted."""
    client = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=5, burst=10)
    log = WatchChangeLog(client, cluster="lab").start()
    eventually(lambda: log.synced, 60, "every resource listed once")
    yield log, client
    began = time.monotonic()
    assert log.stop()
    assert time.monotonic() - began < 3


def workload(kind: str, name: str, image: str = "registry.invalid/app:1") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "serviceAccountName": "agent",
                "containers": [{"name": "app", "image": image}],
            },
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = 2
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"metadata": {"name": name}, "spec": spec}


def found(log: WatchChangeLog, kind: str, name: str) -> list[WorkloadChange]:
    now = datetime.now(UTC)
    changes = log.changes(now - timedelta(hours=1), now + timedelta(minutes=1))
    return [c for c in changes if (c.kind, c.namespace, c.name) == (kind, NS, name)]


def test_the_log_costs_no_request_in_steady_state(
    watched: tuple[WatchChangeLog, Kube], kube: Kube
) -> None:
    log, client = watched
    before = client.requests
    kube.create(f"{APPS}/deployments", workload("Deployment", "quiet"))
    eventually(lambda: bool(found(log, "Deployment", "quiet")), 30, "the creation seen")
    time.sleep(15)
    assert client.requests == before
    assert all(s.lists == 1 for s in log.stats.values() if s.available)


def test_a_new_daemonset_is_a_creation_with_its_service_account_and_progress(
    watched: tuple[WatchChangeLog, Kube], kube: Kube
) -> None:
    log, _ = watched
    created = kube.create(f"{APPS}/daemonsets", workload("DaemonSet", "agent"))
    stamp = datetime.fromisoformat(created["metadata"]["creationTimestamp"])
    eventually(lambda: bool(found(log, "DaemonSet", "agent")), 30, "the creation seen")

    def progress() -> tuple[int, int]:
        change = found(log, "DaemonSet", "agent")[0]
        return change.updated, change.desired

    eventually(lambda: progress() == (NODES, NODES), 90, f"progress {NODES}/{NODES}")
    [change] = found(log, "DaemonSet", "agent")
    assert change.created and change.started == stamp
    assert (change.service_account, change.cluster, change.generation) == ("agent", "lab", 1)
    assert not change.in_flight and not log.approximate(change)


def test_a_template_update_is_a_change_and_a_scale_is_not(
    watched: tuple[WatchChangeLog, Kube], kube: Kube
) -> None:
    log, _ = watched
    path = f"{APPS}/deployments/web"
    kube.create(f"{APPS}/deployments", workload("Deployment", "web"))
    eventually(lambda: len(found(log, "Deployment", "web")) == 1, 30, "the creation seen")
    kube.patch(path, {"spec": {"replicas": 4}})
    eventually(
        lambda: found(log, "Deployment", "web")[0].desired == 4, 30, "the scale seen as progress"
    )
    assert len(found(log, "Deployment", "web")) == 1
    before = datetime.now(UTC)
    image = {"name": "app", "image": "registry.invalid/app:2"}
    kube.patch(path, {"spec": {"template": {"spec": {"containers": [image]}}}}, kind="strategic")
    eventually(lambda: len(found(log, "Deployment", "web")) == 2, 30, "the update seen")
    creation, update = found(log, "Deployment", "web")
    assert not update.created and before - timedelta(seconds=1) <= update.started
    assert (update.generation, update.previous_revision) == (3, "2")
    assert not creation.in_flight
    old = log.previous_template("Deployment", NS, "web") or {}
    assert old["spec"]["containers"][0]["image"] == "registry.invalid/app:1"
    eventually(
        lambda: found(log, "Deployment", "web")[1].updated == 4, 60, "the update's progress 4/4"
    )


@pytest.fixture
def rollouts(kube: Kube) -> Iterator[None]:
    """Argo Rollouts' CRD, installed as ``tests/test_crd_actions.py`` does, and removed after
    (that module checks first that it is not installed)."""
    try:
        kube.create(CRDS, _crd("argoproj.io", "v1alpha1", "rollouts", "Rollout"))
    except Conflict:  # another module installed it: leave it there
        yield
        return
    eventually(lambda: kube.exists("/apis/argoproj.io/v1alpha1/rollouts"), 60, "the CRD served")
    yield
    kube.delete(f"{CRDS}/rollouts.argoproj.io")
    eventually(lambda: not kube.exists("/apis/argoproj.io/v1alpha1"), 60, "the CRD removed")


@pytest.mark.usefixtures("rollouts")
def test_an_argo_rollout_shows_up_once_its_crd_exists(kube: Kube) -> None:
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", **workload("R", "canary")}
    kube.create(f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts", rollout)
    log = WatchChangeLog(kube).start()
    try:
        eventually(lambda: bool(found(log, "Rollout", "canary")), 30, "the Rollout seen")
        [change] = found(log, "Rollout", "canary")
        assert change.created and change.service_account == "agent"
        assert (change.desired, change.updated) == (2, 0) and change.in_flight
    finally:
        assert log.stop()


def test_the_watch_survives_an_api_server_restart_with_one_list_after_the_410(
    lab: Lab, watched: tuple[WatchChangeLog, Kube], kube: Kube
) -> None:
    log, _ = watched
    before = {kind: (s.lists, s.gone, s.errors) for kind, s in log.stats.items() if s.synced}
    kube.create(f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "advance"}})
    restart = subprocess.run(
        [str(ROOT / "lab" / "lab"), "fault", "kube-apiserver", "start"],
        env={**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert restart.returncode == 0, restart.stderr
    kube.create(f"{APPS}/statefulsets", {**workload("StatefulSet", "after"), "kind": "StatefulSet"})
    eventually(lambda: bool(found(log, "StatefulSet", "after")), 120, "a change after restart")

    def relisted(kind: str) -> bool:
        stats, (lists, gone, _) = log.stats[kind], before[kind]
        return stats.gone > gone and stats.lists > lists and bool(stats.resource_version)

    eventually(lambda: all(map(relisted, before)), 120, "every watcher listed after its 410")
    for kind, (lists, gone, errors) in before.items():
        stats = log.stats[kind]
        assert (stats.lists - lists, stats.gone - gone) == (1, 1), kind
        assert stats.errors > errors, kind
        assert stats.synced and stats.resource_version
