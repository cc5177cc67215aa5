"""The rollout guard end to end on the lab: a change, a real burn of a real SLO, the daemon's
cycle (the API server's watch as change log, the change guard, the policy, the executor) and
the shipped halt-change playbook; one test per kind of change (a new and an updated DaemonSet,
a Deployment, a StatefulSet, an Argo Rollout).

The burn is the API server's own: each test sends GETs of objects that do not exist, so its
SLO (404s of one resource among all requests the API server answers) burns while nothing
else does, and stops when the halt is applied. Every workload lives in one namespace that
the change log watches (a namespaced watch), so what other modules left does not arm it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from guardian.app.wiring import KubePool, parts, playbooks_of, runner
from guardian.clients.change_watch import WatchChangeLog
from guardian.clients.kube import Kube
from guardian.clients.store import Store
from guardian.clients.watch_loop import Resource
from guardian.config import load_config
from guardian.errors import GuardianError
from guardian.pipeline import Cycle
from guardian.policy.decide import Decision
from tests.lab_fixture import ROOT, Lab, eventually

pytestmark = pytest.mark.lab

NS = "guard-test"
APPS = f"/apis/apps/v1/namespaces/{NS}"
ROLLOUTS = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
MISSES = {  # the resource whose 404s make each SLO burn
    "new-daemonset": "configmaps",
    "updated-daemonset": "secrets",
    "deployment": "services",
    "statefulset": "limitranges",
    "rollout": "resourcequotas",
    "quiet": "podtemplates",
}
SLO = """
  - name: misses-{key}
    objective: 99
    period: 1h
    windows: lab-fast
    labels: {{tier: guarded}}
    sli:
      ratio:
        errors: >-
          sum(rate(apiserver_request_total{{job="apiserver",code="404",resource="{resource}"}}[{{{{window}}}}]))
          or vector(0)
        total: sum(rate(apiserver_request_total{{job="apiserver"}}[{{{{window}}}}]))"""
CONFIG = """\
version: guardian/v1
prometheus: {{url: "{url}", timeout: 20s}}   # a lab beside other work answers slowly
evaluation: {{max_staleness: 15s}}
window_sets:
  lab-fast:
    - {{severity: page, long: 2m, short: 10s, factor: 14.4}}
slos:{slos}
policy:
  playbooks: [{playbooks}]
  store: {{url: "sqlite:///{store}"}}
change_guard:
  labels: {{tier: guarded}}
  guard_window: 10m
  windows: [{{long: 1m, short: 10s, factor: 2}}]
  baseline: {{window: 10m, ratio: 4}}
"""
RESOURCES = (
    Resource("Deployment", f"{APPS}/deployments"),
    Resource("DaemonSet", f"{APPS}/daemonsets"),
    Resource("StatefulSet", f"{APPS}/statefulsets"),
    Resource("Rollout", ROLLOUTS, discovery="/apis/argoproj.io/v1alpha1"),
)


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Iterator[Kube]:
    client = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=200, burst=200)
    if not client.exists(f"/api/v1/namespaces/{NS}"):
        client.create("/api/v1/namespaces", {"metadata": {"name": NS}})
    created = _rollout_crd(client)
    yield client
    client.delete(f"/api/v1/namespaces/{NS}")
    if created:  # leave the lab as this module found it
        client.delete(f"{CRDS}/rollouts.argoproj.io")
        eventually(lambda: not client.exists("/apis/argoproj.io/v1alpha1"), what="CRD gone")


@pytest.fixture
def watch(kube: Kube) -> Iterator[WatchChangeLog]:
    """A change log of its own per test (one LIST per resource, then WATCHes)."""
    log = WatchChangeLog(kube, resources=RESOURCES).start()
    eventually(lambda: log.synced, what="the change log listed every resource")
    yield log
    log.stop()


@pytest.fixture
def cycle(lab: Lab, watch: WatchChangeLog, tmp_path: Path) -> Iterator[Cycle]:
    books = tmp_path / "playbooks"
    books.mkdir()
    shipped = (ROOT / "playbooks" / "halt-change.yaml").read_text()
    assert "guard_window: 1800" in shipped
    # time compressed as the windows are: a DaemonSet older than 20 s was updated, not created
    (books / "halt-change.yaml").write_text(
        shipped.replace("guard_window: 1800", "guard_window: 20")
    )
    url = f"http://127.0.0.1:{lab.ports['prometheus']}"
    slos = "".join(SLO.format(key=k, resource=r) for k, r in MISSES.items())
    path = tmp_path / "guardian.yaml"
    path.write_text(CONFIG.format(url=url, slos=slos, playbooks=books, store=tmp_path / "g.db"))
    config = load_config(path)
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    pool = KubePool(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    executor = runner(config, store, playbooks_of(config), pool, "test")
    built = parts(config, playbooks_of(config), store, executor, watch)
    # the burn of the test before must be over: a burn still decaying when this test's change
    # begins could be blamed on it (the burn's start is the last run of crossings)
    eventually(
        lambda: all(s.status == "ok" for s in built.cycle.evaluate().slos),
        timeout=240,
        what="the burns of the tests before this one over",
    )
    yield built.cycle
    built.prometheus.close()
    store.close()


def _rollout_crd(kube: Kube) -> bool:
    """Install Argo Rollouts' CRD unless it is; True if this call created it."""
    path = f"{CRDS}/rollouts.argoproj.io"
    created = not kube.exists(path)
    if created:
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        version = {"name": "v1alpha1", "served": True, "storage": True}
        version.update(schema={"openAPIV3Schema": schema}, subresources={"status": {}})
        names = {"plural": "rollouts", "singular": "rollout", "kind": "Rollout"}
        kube.create(
            CRDS,
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "rollouts.argoproj.io"},
                "spec": {"group": "argoproj.io", "scope": "Namespaced", "names": names,
                         "versions": [version]},
            },
        )  # fmt: skip
    eventually(lambda: kube.exists("/apis/argoproj.io/v1alpha1"), what="rollouts served")
    return created


def _workload(name: str, replicas: int | None = None, image: str = "agent:1") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": f"registry.invalid/{image}"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": name}, "spec": spec}


def _age(kube: Kube, path: str) -> float:
    stamp = kube.get(path)["metadata"]["creationTimestamp"].replace("Z", "+00:00")
    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


class Storm:
    """GETs of missing objects of one resource, from four threads, until ``done`` holds."""

    def __init__(self, kube: Kube, resource: str, done: Callable[[], bool]) -> None:
        self.kube, self.resource, self.done = kube, resource, done
        self.stop = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]

    def __enter__(self) -> Storm:
        for thread in self.threads:
            thread.start()
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{NS}/{self.resource}/missing"
        while not self.stop.is_set():
            try:
                self.kube.get(path)
            except GuardianError:
                self.sent += 1

    def _watch(self) -> None:
        while not self.stop.wait(1.0):
            try:
                if self.done():
                    self.stop.set()
            except GuardianError:
                pass


def _halted(cycle: Cycle, key: str, target: str, timeout: float = 240) -> Decision:
    """Tick the cycle until it proposes halt-change for ``misses-{key}``, then advance the
    run as the daemon's progress job does: its first step (approval: auto) is applied."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        for decision in cycle.tick():
            if decision.slo == f"misses-{key}":
                seen.append(f"{decision.kind}: {decision.reason}")
                if decision.kind == "propose":
                    assert decision.playbook == "halt-change", decision
                    assert decision.change is not None and decision.change.target == target
                    cycle.runner.advance_all()  # what the daemon's progress job does
                    return decision
        time.sleep(2)
    now = datetime.now(UTC)
    changes = cycle._changes(now)
    alarms = {n: (a.firing, a.reason) for n, a in cycle._alarms(changes, now).items()}
    pytest.fail(
        f"no halt of {target}; decisions seen: {list(dict.fromkeys(seen))}; "
        f"changes: {[c.target for c in changes]}; alarms now: {alarms}"
    )


def _what_ran(cycle: Cycle, kube: Kube, path: str) -> str:
    """The halt-change executions, their steps and the object's spec, for a failure."""
    lines = [str(kube.get(path)["spec"].get("updateStrategy"))]
    for execution in cycle.store.executions(playbook="halt-change"):
        lines.append(f"{execution.id} {execution.target} {execution.state} {execution.message}")
        for step in cycle.store.steps(execution.id):  # type: ignore[attr-defined]
            lines.append(f"  {step.name} {step.status} {step.result} {step.plan}")
    return "\n".join(lines)


def _execution_target(cycle: Cycle) -> str:
    [execution] = cycle.store.executions(playbook="halt-change")
    return execution.target


def test_a_new_daemonset_is_attributed_and_quarantined(kube: Kube, cycle: Cycle) -> None:
    path = f"{APPS}/daemonsets/agent-new"
    kube.create(f"{APPS}/daemonsets", _workload("agent-new"))

    def quarantined() -> bool:
        selector = kube.get(path)["spec"]["template"]["spec"].get("nodeSelector") or {}
        return "guardian.io/quarantine" in selector

    with Storm(kube, MISSES["new-daemonset"], quarantined):
        _halted(cycle, "new-daemonset", f"DaemonSet {NS}/agent-new")
    assert quarantined()
    assert _execution_target(cycle) == f"DaemonSet {NS}/agent-new"
    [execution] = cycle.store.executions(playbook="halt-change")
    change = execution.context["change"]
    # the nodes its agents ran on when the halt was proposed (as many as it had pods then)
    nodes = {n["metadata"]["name"] for n in kube.list("/api/v1/nodes")}
    assert change["touched"] and set(change["touched"]) <= nodes, change
    assert change["touched"] == sorted(change["touched"])
    assert change["touched_count"] == len(change["touched"])
    # the client to throttle is the blamed change's own service account
    assert execution.context["offender"] == {"namespace": NS, "name": "default"}


def test_an_updated_daemonset_is_attributed_and_frozen(
    kube: Kube, cycle: Cycle, watch: WatchChangeLog
) -> None:
    path = f"{APPS}/daemonsets/agent-old"
    kube.create(f"{APPS}/daemonsets", _workload("agent-old"))
    eventually(
        lambda: kube.get(path).get("status", {}).get("updatedNumberScheduled", 0) > 0,
        timeout=90,
        what="the DaemonSet rolled out",
    )
    time.sleep(max(0.0, 22 - _age(kube, path)))  # older than 20 s: the update is the change
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.invalid/agent:2"}]}}}}  # fmt: skip
    kube.patch(path, patch, kind="strategic")

    def frozen() -> bool:
        return bool(kube.get(path)["spec"]["updateStrategy"]["type"] == "OnDelete")

    with Storm(kube, MISSES["updated-daemonset"], frozen):
        decision = _halted(cycle, "updated-daemonset", f"DaemonSet {NS}/agent-old")
    assert decision.change is not None and not decision.change.created
    assert frozen(), _what_ran(cycle, kube, path)


def test_a_deployment_is_attributed_and_paused(kube: Kube, cycle: Cycle) -> None:
    path = f"{APPS}/deployments/web"
    kube.create(f"{APPS}/deployments", _workload("web", replicas=3))

    def paused() -> bool:
        return bool(kube.get(path)["spec"].get("paused"))

    with Storm(kube, MISSES["deployment"], paused):
        _halted(cycle, "deployment", f"Deployment {NS}/web")
    assert paused()


def test_a_statefulset_is_attributed_and_partitioned(kube: Kube, cycle: Cycle) -> None:
    path = f"{APPS}/statefulsets/db"
    body = _workload("db", replicas=2)
    body["spec"]["serviceName"] = "db"
    kube.create(f"{APPS}/statefulsets", body)

    def partitioned() -> bool:
        strategy = kube.get(path)["spec"].get("updateStrategy") or {}
        # the API server defaults partition to 0; the halt of a new StatefulSet sets replicas
        return int((strategy.get("rollingUpdate") or {}).get("partition") or 0) == 2

    with Storm(kube, MISSES["statefulset"], partitioned):
        _halted(cycle, "statefulset", f"StatefulSet {NS}/db")
    assert partitioned(), _what_ran(cycle, kube, path)


def test_an_argo_rollout_is_attributed_and_aborted(kube: Kube, cycle: Cycle) -> None:
    path = f"{ROLLOUTS}/canary"
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", **_workload("canary", 4)}
    kube.create(ROLLOUTS, body)

    def aborted() -> bool:
        return bool((kube.get(path).get("status") or {}).get("abort"))

    with Storm(kube, MISSES["rollout"], aborted):
        _halted(cycle, "rollout", f"Rollout {NS}/canary")
    assert aborted()


def test_a_rollout_without_a_burn_is_not_halted(kube: Kube, cycle: Cycle) -> None:
    eventually(
        lambda: all(s.status == "ok" for s in cycle.evaluate().slos),
        timeout=180,
        what="the burns of the tests before this one over",
    )
    kube.create(f"{APPS}/deployments", _workload("calm", replicas=2))
    target = f"Deployment {NS}/calm"
    for _ in range(8):
        for decision in cycle.tick():
            assert decision.change is None or decision.change.target != target, decision
            if decision.slo == "misses-quiet":
                assert decision.kind == "ignore", decision
        time.sleep(3)
    assert target not in [e.target for e in cycle.store.executions(playbook="halt-change")]
    assert not kube.get(f"{APPS}/deployments/calm")["spec"].get("paused")
