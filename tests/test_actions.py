"""Actions on the lab's real API server: plan, dry run, apply, verify, undo."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from guardian.actions import CATALOGUE, execute, undo
from guardian.actions.pause_rollout import QUARANTINE_LABEL, PauseRolloutParams
from guardian.actions.throttle_client import ThrottleClientParams, names
from guardian.clients.kube import Kube
from guardian.clients.ratelimit import TokenBucket
from guardian.errors import PermanentKubernetesError
from tests.lab_fixture import NODES, ROOT, Lab, eventually, running_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Kube:
    return Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)


@pytest.fixture(autouse=True)
def _nodes_schedulable_after(kube: Kube) -> Iterator[None]:
    """A test that fails between a cordon and its undo leaves no node cordoned for the next
    test, nor for the modules that share this worker's lab. The shed tests assert their undo
    before this runs; the drain test asserts its own below."""
    yield
    for node in kube.list("/api/v1/nodes"):
        if node["spec"].get("unschedulable"):
            kube.patch(
                f"/api/v1/nodes/{node['metadata']['name']}", {"spec": {"unschedulable": None}}
            )


def _workload(kind: str, name: str, image: str = "registry.invalid/app:1") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image}]},
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = 3
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"metadata": {"name": name}, "spec": spec}


COLLECTION = {
    "Deployment": "/apis/apps/v1/namespaces/default/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/default/statefulsets",
    "DaemonSet": "/apis/apps/v1/namespaces/default/daemonsets",
}


def _settled(kube: Kube, path: str) -> str:
    """The resourceVersion once controllers have stopped updating the object."""
    previous = ""
    for _ in range(60):
        current = kube.get(path)["metadata"]["resourceVersion"]
        if current == previous:
            return current
        previous = current
        time.sleep(1.5)
    pytest.fail(f"{path} never settled")


def _create(kube: Kube, kind: str, name: str) -> dict[str, Any]:
    return kube.create(COLLECTION[kind], _workload(kind, name))


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_pause_rollout_plan_dry_run_apply_verify_undo(kube: Kube, kind: str) -> None:
    name = f"pause-{kind.lower()}"
    created = _create(kube, kind, name)
    path = f"{COLLECTION[kind]}/{name}"
    original = created["spec"]
    action = CATALOGUE["pause-rollout"]
    plan = action.plan(kube, PauseRolloutParams(kind=kind, namespace="default", name=name))
    assert [c.op for c in plan.changes] == ["patch"]
    assert "paused" in plan.diff() or "updateStrategy" in plan.diff()

    before = _settled(kube, path)
    sent = kube.requests
    execute(kube, plan, dry_run=True)
    assert kube.requests > sent
    assert kube.get(path)["metadata"]["resourceVersion"] == before, "dry run changed nothing"

    execute(kube, plan)
    assert action.verify(kube, plan) == []
    spec = kube.get(path)["spec"]
    expected = {
        "Deployment": lambda s: s["paused"] is True,
        "StatefulSet": lambda s: s["updateStrategy"]["rollingUpdate"]["partition"] == 3,
        "DaemonSet": lambda s: s["updateStrategy"] == {"type": "OnDelete"},
    }[kind]
    assert expected(spec)
    execute(kube, plan)  # idempotent: a second apply changes nothing more
    assert action.verify(kube, plan) == []

    undo(kube, plan)
    restored = kube.get(path)["spec"]
    if kind == "Deployment":
        assert restored.get("paused", False) is False
    else:
        assert restored["updateStrategy"] == original["updateStrategy"]


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_rollback_restores_the_previous_template_and_undo_the_new_one(
    kube: Kube, kind: str
) -> None:
    name = f"shop-{kind.lower()}"
    path = f"{COLLECTION[kind]}/{name}"
    _create(kube, kind, name)
    eventually(lambda: len(_revisions(kube, kind, name)) == 1, what="first revision")
    kube.patch(
        path,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_2}]}}}},
        "strategic",
    )
    eventually(lambda: len(_revisions(kube, kind, name)) == 2, what="second revision")
    params = PauseRolloutParams(kind=kind, namespace="default", name=name, rollback=True)
    action = CATALOGUE["pause-rollout"]
    plan = action.plan(kube, params)
    assert [c.description for c in plan.changes] == ["roll back to revision 1"]
    assert "app:2" in plan.diff() and "app:1" in plan.diff()

    before = _settled(kube, path)
    execute(kube, plan, dry_run=True)
    assert kube.get(path)["metadata"]["resourceVersion"] == before, "dry run changed nothing"

    execute(kube, plan)
    spec = kube.get(path)["spec"]
    assert spec["template"]["spec"]["containers"][0]["image"] == "registry.invalid/app:1"
    assert spec.get("paused", False) is False, "a rollback is not paused: it must roll out"
    assert action.verify(kube, plan) == []
    undo(kube, plan)
    spec = kube.get(path)["spec"]
    assert spec["template"]["spec"]["containers"][0]["image"] == IMAGE_2


def test_rollback_without_a_previous_revision_is_a_clear_error(kube: Kube) -> None:
    _create(kube, "DaemonSet", "fresh")
    eventually(lambda: len(_revisions(kube, "DaemonSet", "fresh")) == 1, what="first revision")
    params = PauseRolloutParams(kind="DaemonSet", namespace="default", name="fresh", rollback=True)
    with pytest.raises(PermanentKubernetesError, match="fresh: no previous revision"):
        CATALOGUE["pause-rollout"].plan(kube, params)


IMAGE_2 = "registry.invalid/app:2"


def _revisions(kube: Kube, kind: str, app: str) -> list[dict[str, Any]]:
    resource = "replicasets" if kind == "Deployment" else "controllerrevisions"
    items: list[dict[str, Any]] = kube.get(
        f"/apis/apps/v1/namespaces/default/{resource}", {"labelSelector": f"app={app}"}
    )["items"]
    return items


def _agents(kube: Kube, app: str) -> int:
    pods = kube.get("/api/v1/namespaces/default/pods", {"labelSelector": f"app={app}"})["items"]
    return sum(1 for p in pods if p["status"].get("phase") == "Running")


def test_daemonset_quarantine_empties_every_node_and_undo_brings_agents_back(kube: Kube) -> None:
    _create(kube, "DaemonSet", "agent")
    eventually(lambda: _agents(kube, "agent") == NODES, what="one agent per node")
    params = PauseRolloutParams(
        kind="DaemonSet", namespace="default", name="agent", quarantine=True
    )
    plan = CATALOGUE["pause-rollout"].plan(kube, params)
    assert QUARANTINE_LABEL in plan.diff()
    execute(kube, plan)
    eventually(lambda: _agents(kube, "agent") == 0, what="agents gone from every node")
    undo(kube, plan)
    spec = kube.get(f"{COLLECTION['DaemonSet']}/agent")["spec"]
    assert "nodeSelector" not in spec["template"]["spec"]
    eventually(lambda: _agents(kube, "agent") == NODES, what="agents back")


def test_throttle_client_classifies_the_subject_into_its_own_level(kube: Kube, lab: Lab) -> None:
    params = ThrottleClientParams(subject="user", name="telemetry-agent", shares=1)
    action = CATALOGUE["throttle-client"]
    plan = action.plan(kube, params)
    name = names(params)
    execute(kube, plan, dry_run=True)
    assert not kube.exists(f"/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/{name}")
    execute(kube, plan)
    assert action.verify(kube, plan) == []
    schema = kube.get(f"/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/{name}")
    token = (lab.directory / "pki" / "telemetry.token").read_text().strip()
    answer = requests.get(
        f"https://127.0.0.1:{lab.ports['kube-apiserver']}/api/v1/nodes?limit=1",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(lab.directory / "pki" / "ca.crt"),
        timeout=10,
    )
    assert answer.headers["X-Kubernetes-PF-FlowSchema-UID"] == schema["metadata"]["uid"]
    undo(kube, plan)
    assert not kube.exists(f"/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/{name}")
    assert not kube.exists(
        f"/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/{name}"
    )


def test_a_missing_object_is_permanent_and_not_retried(kube: Kube) -> None:
    sent = kube.requests
    with pytest.raises(PermanentKubernetesError, match="HTTP 404"):
        CATALOGUE["pause-rollout"].plan(
            kube, PauseRolloutParams(kind="Deployment", namespace="default", name="nope")
        )
    assert kube.requests - sent == 1


def test_every_request_waits_for_the_token_bucket(lab: Lab) -> None:
    kube = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=5, burst=1)
    sent: list[float] = []
    for _ in range(6):
        kube.get("/version")
        sent.append(time.monotonic())
    stamps = list(kube.bucket.grant_times)
    assert all(grant <= done for grant, done in zip(stamps, sent, strict=True))
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.2 - 0.01
    assert isinstance(kube.bucket, TokenBucket) and kube.bucket.granted == 6


def _act(lab: Lab, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig or lab.directory / "kubeconfig")}
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "guardian"), "act", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_guardian_act_dry_run_changes_nothing_and_bad_input_is_one_line(
    kube: Kube, lab: Lab
) -> None:
    _create(kube, "Deployment", "cli")
    path = f"{COLLECTION['Deployment']}/cli"
    before = _settled(kube, path)
    sets = ["--set", "kind=Deployment", "--set", "namespace=default", "--set", "name=cli"]
    done = _act(lab, "pause-rollout", *sets, "--dry-run", "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["dry_run"] is True and doc["changes"][0]["body"] == {"spec": {"paused": True}}
    assert kube.get(path)["metadata"]["resourceVersion"] == before
    applied = _act(lab, "pause-rollout", *sets)
    assert applied.returncode == 0, applied.stderr
    assert "applied: pause: spec.paused = true" in applied.stdout
    assert kube.get(path)["spec"]["paused"] is True
    bad = _act(lab, "pause-rollout", "--set", "kind=Pod", "--set", "namespace=d", "--set", "name=x")
    assert bad.returncode == 2
    assert bad.stderr.startswith("guardian: --set kind: ")
    missing = _act(
        lab,
        "pause-rollout",
        "--set",
        "kind=Deployment",
        "--set",
        "namespace=default",
        "--set",
        "name=ghost",
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "guardian: GET /apis/apps/v1/namespaces/default/deployments/ghost: HTTP 404 "
        'deployments.apps "ghost" not found'
    ]


def test_guardian_act_halts_a_change_and_a_halt_that_cannot_be_is_one_line(
    kube: Kube, lab: Lab
) -> None:
    """``guardian act halt-change`` (the catalogue entry): --set values become its typed
    parameters (guard_window a number, rollback a boolean); the apply waits for verify."""
    _create(kube, "DaemonSet", "act-halt")
    path = f"{COLLECTION['DaemonSet']}/act-halt"
    before = _settled(kube, path)
    sets = ["--set", "kind=DaemonSet", "--set", "namespace=default", "--set", "name=act-halt"]
    done = _act(lab, "halt-change", *sets, "--dry-run", "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["dry_run"] is True and doc["action"] == "halt-change"
    assert [c["description"] for c in doc["changes"]] == [
        f"quarantine: nodeSelector {QUARANTINE_LABEL}=true matches no node"
    ]
    assert kube.get(path)["metadata"]["resourceVersion"] == before
    frozen = _act(lab, "halt-change", *sets, "--set", "guard_window=0", "--wait", "90s")
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    assert "applied: freeze: updateStrategy = OnDelete" in frozen.stdout
    assert "verify:" not in frozen.stdout
    assert kube.get(path)["spec"]["updateStrategy"] == {"type": "OnDelete"}
    bad = _act(lab, "halt-change", *sets[:-2], "--set", "name=x", "--set", "batch=3")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "guardian: --set halt-change: batch: only for a DaemonSet's roll-back "
        "(kind DaemonSet, rollback)"
    ]
    kube.delete(path)


def _protected(subject: str, reason: str) -> str:
    return (
        f"guardian: throttle-client: subject {subject} is protected ({reason}); "
        "guardian never throttles it"
    )


def test_guardian_act_never_throttles_itself_nor_the_kubelets(kube: Kube, lab: Lab) -> None:
    """The lab's kubeconfig is the user admin (groups system:masters, system:authenticated):
    guardian learns that from a SelfSubjectReview and refuses to throttle it."""
    cases = [
        ("user", "admin", "guardian's own identity"),
        ("group", "system:nodes", "kubelets"),
        ("group", "system:masters", "cluster administrators"),
    ]
    for kind, name, reason in cases:
        for dry_run in (["--dry-run"], []):
            sets = ["--set", f"subject={kind}", "--set", f"name={name}"]
            done = _act(lab, "throttle-client", *sets, *dry_run)
            assert done.returncode == 2, done.stdout
            assert done.stderr.splitlines() == [_protected(f"{kind} {name}", reason)]
    schemas = kube.list("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas")
    assert [s["metadata"]["name"] for s in schemas if "admin" in s["metadata"]["name"]] == []
    allowed = _act(
        lab, "throttle-client", "--set", "subject=group", "--set", "name=noisy", "--dry-run"
    )
    assert allowed.returncode == 0, allowed.stderr


def test_guardian_act_sheds_no_control_plane_node_and_a_tenth_at_most(
    kube: Kube, lab: Lab, tmp_path: Path
) -> None:
    control_plane: list[dict[str, Any]] = [
        {"metadata": {"name": "cp-0", "labels": {"node-role.kubernetes.io/control-plane": ""}}},
        {"metadata": {"name": "cp-1", "labels": {"node-role.kubernetes.io/master": ""}}},
        {
            "metadata": {"name": "cp-2"},
            "spec": {
                "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
            },
        },
    ]
    for node in control_plane:
        kube.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", **node})
    try:
        everything = ["--set", "percent=100", "--set", "min_nodes=0"]
        done = _act(lab, "shed-nodes", *everything, "--dry-run", "-o", "json")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        shed = [c["path"].rsplit("/", 1)[-1] for c in doc["changes"]]
        assert len(shed) == NODES // 10 and all(n.startswith("kwok-node-") for n in shed)
        assert doc["notes"][1:] == [
            f"share per run holds: one run sheds at most 10% of {NODES} schedulable worker "
            f"nodes ({NODES // 10}; max_share_per_run 0.1); {NODES - NODES // 10} fewer than "
            "asked",
            "control plane is never shed: left out 3 node(s): cp-0, cp-1, cp-2",
        ]
        table = _act(lab, "shed-nodes", *everything, "--dry-run")
        assert f"note: {doc['notes'][1]}" in table.stdout.splitlines()
        assert _schedulable(kube) == NODES + 3, "a dry run changed nothing"
        config = tmp_path / "guardian.yaml"
        config.write_text(
            "version: guardian/v1\nprometheus: {url: 'http://127.0.0.1:9'}\n"
            "policy: {max_changes: 1}\n"
        )
        radius = _act(lab, "shed-nodes", "-c", str(config), "--set", "count=2", "--dry-run")
        assert radius.returncode == 2
        assert radius.stderr.splitlines() == [
            "guardian: shed-nodes: blast radius: 2 changes would exceed the maximum of 1 "
            "(policy.max_changes); ask for fewer"
        ]
    finally:
        for node in control_plane:
            kube.delete(f"/api/v1/nodes/{node['metadata']['name']}")


def _schedulable(kube: Kube) -> int:
    return sum(1 for n in kube.list("/api/v1/nodes") if not n["spec"].get("unschedulable"))


def test_shed_nodes_cordons_in_batches_and_the_floor_holds(kube: Kube) -> None:
    from guardian.actions.shed_nodes import ShedNodesParams

    params = ShedNodesParams(
        percent=50,
        min_nodes=NODES - 3,
        max_share_per_step=0.05,
        max_share_per_run=0.2,
        order="name",
    )
    action = CATALOGUE["shed-nodes"]
    plan = action.plan(kube, params)
    assert [c.batch for c in plan.changes] == [0, 1, 2]
    assert plan.notes[1] == f"floor holds: {NODES // 2 - 3} fewer than asked"
    execute(kube, plan, dry_run=True)
    assert _schedulable(kube) == NODES
    batches: list[int] = []
    execute(kube, plan, between_batches=lambda b: batches.append(b) is None)
    assert batches == [0, 1]
    assert action.verify(kube, plan) == []
    assert _schedulable(kube) == NODES - 3
    undo(kube, plan)
    assert _schedulable(kube) == NODES


def test_a_stop_between_batches_leaves_the_rest_alone(kube: Kube) -> None:
    from guardian.actions.shed_nodes import ShedNodesParams

    plan = CATALOGUE["shed-nodes"].plan(
        kube,
        ShedNodesParams(
            count=4, min_nodes=1, max_share_per_step=0.1, max_share_per_run=0.2, order="name"
        ),
    )
    outcome = execute(kube, plan, between_batches=lambda b: False)
    assert outcome.problems == ["stopped after batch 1"]
    assert _schedulable(kube) == NODES - 2
    undo(kube, plan)
    assert _schedulable(kube) == NODES


def test_drain_evicts_but_a_pod_disruption_budget_stops_it(kube: Kube, lab: Lab) -> None:
    from guardian.actions.shed_nodes import ShedNodesParams
    from guardian.errors import TransientKubernetesError

    kube.create("/api/v1/namespaces", {"metadata": {"name": "drain"}})
    for app, guarded in (("free", False), ("kept", True)):
        kube.create(
            "/apis/apps/v1/namespaces/drain/deployments",
            {
                "metadata": {"name": app},
                "spec": {
                    "replicas": NODES,
                    "selector": {"matchLabels": {"app": app}},
                    "template": {
                        "metadata": {"labels": {"app": app}},
                        "spec": {
                            "containers": [{"name": "a", "image": "x.invalid/a"}],
                            "topologySpreadConstraints": [
                                {
                                    "maxSkew": 1,
                                    "topologyKey": "kubernetes.io/hostname",
                                    "whenUnsatisfiable": "DoNotSchedule",
                                    "labelSelector": {"matchLabels": {"app": app}},
                                }
                            ],
                        },
                    },
                },
            },
        )
        if guarded:
            kube.create(
                "/apis/policy/v1/namespaces/drain/poddisruptionbudgets",
                {
                    "metadata": {"name": app},
                    "spec": {"minAvailable": NODES, "selector": {"matchLabels": {"app": app}}},
                },
            )

    def running(app: str) -> int:
        pods = kube.get("/api/v1/namespaces/drain/pods", {"labelSelector": f"app={app}"})
        return sum(1 for p in pods["items"] if p["status"].get("phase") == "Running")

    eventually(lambda: running("free") == NODES and running("kept") == NODES, what="pods up")
    strict = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    strict.total_timeout = 5
    plan = CATALOGUE["shed-nodes"].plan(
        strict,
        ShedNodesParams(count=1, min_nodes=1, mode="drain", order="name", selector="type=kwok"),
    )
    evictions = [c.path for c in plan.changes if c.op == "post"]
    assert any("/pods/free-" in p for p in evictions) and any("/pods/kept-" in p for p in evictions)
    with pytest.raises(TransientKubernetesError, match=r"HTTP 429.*disruption budget"):
        execute(strict, plan)
    assert running("kept") == NODES, "the budget held"
    undo(kube, plan)
    assert _schedulable(kube) == NODES, "the drained node is schedulable again"


def test_suspects_rank_the_newest_rollout_first_and_read_cheaply(kube: Kube, lab: Lab) -> None:
    kube.create("/api/v1/namespaces", {"metadata": {"name": "suspects"}})
    kube.create("/apis/apps/v1/namespaces/suspects/daemonsets", _workload("DaemonSet", "telemetry"))
    eventually(lambda: _agents_in(kube, "suspects", "telemetry") == NODES, what="agents")
    time.sleep(1.1)
    kube.create("/apis/apps/v1/namespaces/suspects/deployments", _workload("Deployment", "late"))
    eventually(lambda: _agents_in(kube, "suspects", "late") == 3, what="late pods")
    time.sleep(1.1)  # creation timestamps have one-second resolution
    helm = {
        "metadata": {
            "name": "sh.helm.release.v1.agent.v2",
            "labels": {"owner": "helm", "name": "agent", "version": "2"},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": "c2VjcmV0"},
    }
    kube.create("/api/v1/namespaces/suspects/secrets", helm)
    env = {**os.environ, "KUBECONFIG": str(lab.directory / "kubeconfig")}
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "guardian"), "suspects", "--since", "10m", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    mine = [s for s in doc["suspects"] if s["namespace"] == "suspects"]
    assert [(s["kind"], s["name"]) for s in mine] == [
        ("HelmRelease", "agent"),
        ("Deployment", "late"),
        ("DaemonSet", "telemetry"),
    ]
    assert mine[2]["touches"] == NODES and mine[1]["touches"] == 3
    assert "c2VjcmV0" not in done.stdout
    assert doc["requests"] <= 12, "six paginated LISTs, a page or two each"


def _agents_in(kube: Kube, namespace: str, app: str) -> int:
    pods = kube.get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": f"app={app}"})
    return sum(1 for p in pods["items"] if p["status"].get("phase") == "Running")


def test_scale_apiserver_adds_ready_replicas_up_to_the_maximum(kube: Kube) -> None:
    from guardian.actions.scale_apiserver import ScaleApiserverParams

    kube.create("/api/v1/namespaces", {"metadata": {"name": "hosted-cp"}})
    workload = _workload("Deployment", "kube-apiserver", "registry.invalid/kube-apiserver:v1")
    workload["spec"]["replicas"] = 2
    kube.create("/apis/apps/v1/namespaces/hosted-cp/deployments", workload)
    action = CATALOGUE["scale-apiserver"]
    params = ScaleApiserverParams(
        kind="Deployment", namespace="hosted-cp", name="kube-apiserver", add=2, max_replicas=3
    )
    plan = action.plan(kube, params)
    assert [c.description for c in plan.changes] == ["scale 2 → 3 replicas"]
    execute(kube, plan)
    eventually(lambda: action.verify(kube, plan) == [], what="3 ready API-server replicas")
    at_max = action.plan(kube, params)
    assert at_max.changes == () and at_max.notes == ("already at 3 replicas, the maximum is 3",)
    undo(kube, plan)
    path = "/apis/apps/v1/namespaces/hosted-cp/deployments/kube-apiserver"
    assert kube.get(path)["spec"]["replicas"] == 2


def test_shed_by_deleting_nodes_and_undo_recreates_them(kube: Kube) -> None:
    from guardian.actions.shed_nodes import ShedNodesParams

    plan = CATALOGUE["shed-nodes"].plan(
        kube, ShedNodesParams(count=1, min_nodes=1, mode="delete", order="name")
    )
    path = plan.changes[0].path
    execute(kube, plan)
    assert CATALOGUE["shed-nodes"].verify(kube, plan) == []
    assert not kube.exists(path)
    undo(kube, plan)

    def ready() -> bool:
        node = kube.get(path)
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    eventually(lambda: kube.exists(path) and ready(), what="re-created node Ready again")


def test_an_invalid_change_is_422_and_not_retried(kube: Kube) -> None:
    _create(kube, "Deployment", "invalid")
    sent = kube.requests
    with pytest.raises(PermanentKubernetesError, match="HTTP 422"):
        kube.patch(f"{COLLECTION['Deployment']}/invalid", {"spec": {"replicas": -1}})
    assert kube.requests - sent == 1


@pytest.fixture(scope="module")
def management(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A second, separate control plane: the management cluster of a hosted control plane."""
    with running_lab(tmp_path_factory.mktemp("management"), 2) as running:
        yield running


def _two_contexts(workload: Lab, management: Lab, path: Path) -> Path:
    """One kubeconfig: context ``workload`` (current) and context ``management``."""
    docs = {
        name: yaml.safe_load((lab.directory / "kubeconfig").read_text())
        for name, lab in (("workload", workload), ("management", management))
    }
    merged = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "workload",
        "clusters": [{**docs[n]["clusters"][0], "name": n} for n in docs],
        "users": [{**docs[n]["users"][0], "name": n} for n in docs],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in docs],
    }
    path.write_text(yaml.safe_dump(merged))
    return path


def test_scale_apiserver_reaches_the_management_cluster_through_its_context(
    kube: Kube, lab: Lab, management: Lab, tmp_path: Path
) -> None:
    mgmt = Kube.from_kubeconfig(str(management.directory / "kubeconfig"), qps=50, burst=100)
    mgmt.create("/api/v1/namespaces", {"metadata": {"name": "tenant-cp"}})
    workload = _workload("Deployment", "kube-apiserver", "registry.invalid/kube-apiserver:v1")
    workload["spec"]["replicas"] = 1
    collection = "/apis/apps/v1/namespaces/tenant-cp/deployments"
    mgmt.create(collection, workload)
    kubeconfig = _two_contexts(lab, management, tmp_path / "kubeconfig")
    sets = ["--set", "kind=Deployment", "--set", "namespace=tenant-cp"]
    sets += ["--set", "name=kube-apiserver", "--set", "add=1", "--set", "max_replicas=3"]

    elsewhere = _act(lab, "scale-apiserver", *sets, kubeconfig=kubeconfig)
    assert elsewhere.returncode == 1, "the current context is the workload cluster"
    assert "HTTP 404" in elsewhere.stderr

    done = _act(
        lab,
        "scale-apiserver",
        *sets,
        "--context",
        "management",
        "--wait",
        "90s",
        "-o",
        "json",
        kubeconfig=kubeconfig,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verified"] is True and doc["problems"] == []
    deployment = mgmt.get(f"{collection}/kube-apiserver")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"]["readyReplicas"] == 2, "act waited for the new replica"
    assert not kube.exists("/api/v1/namespaces/tenant-cp")
