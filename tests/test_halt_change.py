"""``halt-change`` on the lab's real API server, one test per kind, and its playbook.

Lab tests: a new DaemonSet is quarantined, an updated one frozen (OnDelete) and, with
``rollback``, its updated pods recreated from the previous revision (KWOK runs the pods);
a Deployment paused; a StatefulSet's partition set to replicas − updated; an Argo Rollout
(its CRD installed with a status subresource, no controller) aborted. Each checks that the
server-side dry run changes nothing, that a second apply changes nothing, and that undo
restores what was there; a staging dry run of the shipped playbook checks both of its
steps. Without the lab: the parameters' errors, the shipped playbook,
and how long a ``burn_falls`` verification waits (``guardian.executor.verify.wait_for``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from guardian.actions import CATALOGUE, Plan, execute, undo
from guardian.actions.halt_change import HASH, ROLLED_BACK, HaltChangeParams
from guardian.actions.pause_rollout import QUARANTINE_LABEL
from guardian.audit.records import Execution
from guardian.clients.kube import Kube
from guardian.config.load import load_config
from guardian.executor.verify import wait_for
from guardian.playbooks.load import load_playbooks
from guardian.playbooks.model import Step, Verify
from tests.lab_fixture import NODES, ROOT, Lab, eventually

APPS = "/apis/apps/v1/namespaces/default"
PODS = "/api/v1/namespaces/default/pods"
ROLLOUTS = "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts"
IMAGE_1, IMAGE_2 = "registry.invalid/app:1", "registry.invalid/app:2"
ACTION = CATALOGUE["halt-change"]


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Iterator[Kube]:
    """The lab's API server; every workload a test created here is deleted at the end, so
    no test module after this one finds them (the halted StatefulSet's pod never schedules)."""
    client = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    yield client
    for path in CREATED:
        if client.exists(path):
            client.delete(path)


CREATED: list[str] = []


def _create(kube: Kube, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    created = kube.create(collection, body)
    CREATED.append(f"{collection}/{body['metadata']['name']}")
    return created


def _workload(name: str, replicas: int | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": IMAGE_1}]},
        },
        **spec,
    }
    if replicas is not None:
        body["replicas"] = replicas
    return {"metadata": {"name": name}, "spec": body}


def _settled(kube: Kube, path: str) -> str:
    """The resourceVersion once controllers have stopped updating the object."""
    previous = ""
    for _ in range(60):
        current = str(kube.get(path)["metadata"]["resourceVersion"])
        if current == previous:
            return current
        previous = current
        time.sleep(1.5)
    pytest.fail(f"{path} never settled")


def _pods(kube: Kube, app: str) -> list[dict[str, Any]]:
    items = kube.get(PODS, {"labelSelector": f"app={app}"})["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _running(kube: Kube, app: str) -> int:
    return sum(1 for p in _pods(kube, app) if p["status"].get("phase") == "Running")


def _older_than(kube: Kube, path: str, seconds: int) -> None:
    stamp = kube.get(path)["metadata"]["creationTimestamp"].replace("Z", "+00:00")
    created = datetime.fromisoformat(stamp)
    eventually(
        lambda: (datetime.now(UTC) - created).total_seconds() > seconds, what="an older workload"
    )


def _verified(kube: Kube, plan: Plan) -> None:
    problems: list[str] = []

    def holds() -> bool:
        problems[:] = ACTION.verify(kube, plan)
        return not problems

    eventually(holds, timeout=90, what=f"{plan.target} verified (last: {problems})")


def _dry_run_changes_nothing(kube: Kube, path: str, plan: Plan) -> None:
    before = _settled(kube, path)
    sent = kube.requests
    execute(kube, plan, dry_run=True)
    assert kube.requests > sent
    assert kube.get(path)["metadata"]["resourceVersion"] == before, "dry run changed nothing"


def _second_apply_changes_nothing(kube: Kube, path: str, plan: Plan) -> None:
    before = _settled(kube, path)
    execute(kube, plan)
    assert kube.get(path)["metadata"]["resourceVersion"] == before, "the second apply is a no-op"


@pytest.mark.lab
def test_a_new_daemonset_is_quarantined_and_undo_brings_its_agents_back(kube: Kube) -> None:
    path = f"{APPS}/daemonsets/halt-new"
    _create(kube, f"{APPS}/daemonsets", _workload("halt-new"))
    eventually(lambda: _running(kube, "halt-new") == NODES, what="one agent per node")
    params = HaltChangeParams(kind="DaemonSet", namespace="default", name="halt-new")
    plan = ACTION.plan(kube, params)
    assert [c.description for c in plan.changes] == [
        f"quarantine: nodeSelector {QUARANTINE_LABEL}=true matches no node"
    ]
    assert plan.notes[0].endswith("(guard window 1800s): quarantined")
    both = ACTION.plan(kube, params.model_copy(update={"rollback": True}))
    assert [c.description for c in both.changes] == [c.description for c in plan.changes]
    assert both.notes[0].endswith("; rollback does not apply to a new DaemonSet")
    never = ACTION.plan(kube, params.model_copy(update={"rollback": True, "guard_window": 0}))
    assert [c.description for c in never.changes] == ["freeze: updateStrategy = OnDelete"]
    assert never.notes == ("no previous revision to roll back to: frozen only",)
    _dry_run_changes_nothing(kube, path, plan)
    assert _running(kube, "halt-new") == NODES
    assert ACTION.verify(kube, plan) != [], "nothing is quarantined before the apply"

    execute(kube, plan)
    _verified(kube, plan)
    status = kube.get(path)["status"]
    assert (status["desiredNumberScheduled"], status.get("currentNumberScheduled", 0)) == (0, 0)
    assert _running(kube, "halt-new") == 0
    _second_apply_changes_nothing(kube, path, plan)

    undo(kube, plan)
    assert "nodeSelector" not in kube.get(path)["spec"]["template"]["spec"]
    eventually(lambda: _running(kube, "halt-new") == NODES, what="agents back on every node")


@pytest.mark.lab
def test_an_updated_daemonset_is_frozen_with_on_delete_and_undo_restores_rolling_update(
    kube: Kube,
) -> None:
    path = f"{APPS}/daemonsets/halt-update"
    created = _create(kube, f"{APPS}/daemonsets", _workload("halt-update"))
    original = created["spec"]["updateStrategy"]
    assert original["type"] == "RollingUpdate"
    kube.patch(
        path,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_2}]}}}},
        "strategic",
    )
    _older_than(kube, path, 3)
    params = HaltChangeParams(
        kind="DaemonSet", namespace="default", name="halt-update", guard_window=3
    )
    plan = ACTION.plan(kube, params)
    assert [c.description for c in plan.changes] == ["freeze: updateStrategy = OnDelete"]
    _dry_run_changes_nothing(kube, path, plan)
    assert kube.get(path)["spec"]["updateStrategy"] == original

    execute(kube, plan)
    _verified(kube, plan)
    assert kube.get(path)["spec"]["updateStrategy"] == {"type": "OnDelete"}
    _second_apply_changes_nothing(kube, path, plan)
    undo(kube, plan)
    assert kube.get(path)["spec"]["updateStrategy"] == original


@pytest.mark.lab
def test_a_rollback_recreates_the_updated_pods_from_the_previous_revision_batch_by_batch(
    kube: Kube,
) -> None:
    """OnDelete from the start makes the update partial for sure: the test deletes the pods
    of three nodes, the controller recreates them at the new revision, the other 17 keep the
    old one. The halt must bring exactly those three back to the old revision, two per batch."""
    name, path = "halt-back", f"{APPS}/daemonsets/halt-back"
    _create(kube, f"{APPS}/daemonsets", _workload(name, updateStrategy={"type": "OnDelete"}))
    eventually(lambda: _running(kube, name) == NODES, what="one agent per node")
    old = {p["metadata"]["labels"][HASH] for p in _pods(kube, name)}
    kube.patch(
        path,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_2}]}}}},
        "strategic",
    )
    eventually(lambda: kube.get(path)["status"].get("observedGeneration") == 2, what="observed")
    chosen = sorted(_pods(kube, name), key=lambda p: p["spec"]["nodeName"])[:3]
    for pod in chosen:
        kube.delete(f"{PODS}/{pod['metadata']['name']}")
    nodes = sorted(p["spec"]["nodeName"] for p in chosen)

    def updated() -> list[str]:
        return sorted(
            p["spec"]["nodeName"]
            for p in _pods(kube, name)
            if p["metadata"]["labels"][HASH] not in old and p["status"].get("phase") == "Running"
        )

    eventually(lambda: updated() == nodes and _running(kube, name) == NODES, what="3 updated")
    _older_than(kube, path, 3)
    params = HaltChangeParams(
        kind="DaemonSet", namespace="default", name=name, guard_window=3, rollback=True, batch=2
    )
    plan = ACTION.plan(kube, params)
    [new] = {p["metadata"]["labels"][HASH] for p in _pods(kube, name)} - old
    [was] = old
    assert [c.description.split(":")[0] for c in plan.changes] == [
        "freeze",
        "roll back to revision 1",
        *[f"roll back node {n}" for n in nodes],
    ]
    assert [c.batch for c in plan.changes] == [0, 0, 1, 1, 2]
    assert plan.notes == (f"roll back 3 updated pods ({new} → {was}), 2 nodes per batch",)
    names = {p["metadata"]["name"] for p in _pods(kube, name)}
    _dry_run_changes_nothing(kube, path, plan)
    assert {p["metadata"]["name"] for p in _pods(kube, name)} == names

    for batch in plan.batches():
        execute(kube, plan.only(batch))
        _verified(kube, plan.only(batch))
    eventually(lambda: _running(kube, name) == NODES, what="every node runs an agent")
    pods = _pods(kube, name)
    assert {p["metadata"]["labels"][HASH] for p in pods} == {was}
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {IMAGE_1}
    settled = {p["metadata"]["name"] for p in pods}
    _second_apply_changes_nothing(kube, path, plan)
    assert {p["metadata"]["name"] for p in _pods(kube, name)} == settled, "no pod deleted again"
    annotations = kube.get(path)["metadata"]["annotations"]
    assert annotations[ROLLED_BACK] == new
    again = ACTION.plan(kube, params)
    assert [c.description for c in again.changes] == ["freeze: updateStrategy = OnDelete"]
    assert again.notes == (f"guardian rolled it back from {new} already: frozen only",), (
        "planned again, the roll-back must not take the bad revision for the previous one"
    )

    undo(kube, plan)
    obj = kube.get(path)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_2
    assert obj["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert ROLLED_BACK not in (obj["metadata"].get("annotations") or {})


@pytest.mark.lab
def test_a_deployment_is_paused_and_undo_resumes_it(kube: Kube) -> None:
    path = f"{APPS}/deployments/halt-web"
    _create(kube, f"{APPS}/deployments", _workload("halt-web", replicas=3))
    params = HaltChangeParams(kind="Deployment", namespace="default", name="halt-web")
    plan = ACTION.plan(kube, params)
    assert [c.description for c in plan.changes] == ["pause: spec.paused = true"]
    _dry_run_changes_nothing(kube, path, plan)
    assert kube.get(path)["spec"].get("paused", False) is False
    execute(kube, plan)
    _verified(kube, plan)
    assert kube.get(path)["spec"]["paused"] is True
    _second_apply_changes_nothing(kube, path, plan)
    undo(kube, plan)
    assert kube.get(path)["spec"].get("paused", False) is False

    fresh = ACTION.plan(kube, params.model_copy(update={"rollback": True}))
    assert [c.description for c in fresh.changes] == ["pause: spec.paused = true"]
    assert fresh.notes == (
        "Deployment default/halt-web: no previous revision to roll back to: paused",
    )
    image = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_2}]}}}}
    kube.patch(path, image, "strategic")
    sets = f"{APPS}/replicasets"
    eventually(
        lambda: len(kube.get(sets, {"labelSelector": "app=halt-web"})["items"]) == 2,
        what="a second ReplicaSet",
    )
    back = ACTION.plan(kube, params.model_copy(update={"rollback": True}))
    assert [c.description for c in back.changes] == ["roll back to revision 1"]
    assert back.notes == ("rollback replaces the pause: the previous revision rolls out",)
    execute(kube, back)
    _verified(kube, back)
    assert kube.get(path)["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_1


@pytest.mark.lab
def test_a_statefulset_keeps_its_updated_pods_and_updates_no_other(kube: Kube) -> None:
    """The update's pods never schedule (a nodeSelector no node matches), so the rollout
    stands at one updated pod (ordinal 3) for sure: the partition must be 4 − 1 = 3, not the
    replicas (4, pause-rollout's freeze) nor the current 0."""
    name, path = "halt-db", f"{APPS}/statefulsets/halt-db"
    _create(kube, f"{APPS}/statefulsets", _workload(name, replicas=4, serviceName=name))
    eventually(lambda: kube.get(path)["status"].get("readyReplicas") == 4, what="4 ready")
    original = kube.get(path)["spec"]["updateStrategy"]
    assert original.get("rollingUpdate", {}).get("partition", 0) == 0
    template = {
        "spec": {
            "nodeSelector": {"halt.invalid/nowhere": "true"},
            "containers": [{"name": "app", "image": IMAGE_2}],
        }
    }
    kube.patch(path, {"spec": {"template": template}}, "strategic")

    def one_updated() -> bool:
        status: dict[str, Any] = kube.get(path)["status"]
        return bool(
            status.get("observedGeneration") == 2
            and status.get("updatedReplicas") == 1
            and status.get("updateRevision") != status.get("currentRevision")
        )

    eventually(one_updated, what="pod 3 updated, the rollout stuck on it")
    plan = ACTION.plan(kube, HaltChangeParams(kind="StatefulSet", namespace="default", name=name))
    assert [c.description for c in plan.changes] == [
        "halt: updateStrategy.rollingUpdate.partition = 3 (1 updated)"
    ]
    _dry_run_changes_nothing(kube, path, plan)
    execute(kube, plan)
    _verified(kube, plan)
    assert kube.get(path)["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 3
    status = kube.get(path)["status"]
    revisions = {p["metadata"]["name"]: p["metadata"]["labels"][HASH] for p in _pods(kube, name)}
    assert {n: r == status["updateRevision"] for n, r in revisions.items()} == {
        "halt-db-0": False,
        "halt-db-1": False,
        "halt-db-2": False,
        "halt-db-3": True,
    }
    _second_apply_changes_nothing(kube, path, plan)
    undo(kube, plan)
    assert kube.get(path)["spec"]["updateStrategy"] == original


CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _rollout_version(status: bool) -> dict[str, Any]:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    version: dict[str, Any] = {"name": "v1alpha1", "served": True, "storage": True}
    version["schema"] = {"openAPIV3Schema": schema}
    if status:
        version["subresources"] = {"status": {}}
    return version


def _status_served(kube: Kube) -> bool:
    if not kube.exists("/apis/argoproj.io/v1alpha1"):
        return False
    resources = kube.get("/apis/argoproj.io/v1alpha1")["resources"]
    return "rollouts/status" in {str(r["name"]) for r in resources}


@pytest.fixture(scope="module")
def rollout_crd(kube: Kube) -> Iterator[str]:
    """The Rollout CRD with a status subresource, as Argo Rollouts ships it: created here
    (and deleted at the end), or given the subresource when another module installed it."""
    path = f"{CRDS}/rollouts.argoproj.io"
    existed = kube.exists(path)
    if existed:
        kube.patch(path, {"spec": {"versions": [_rollout_version(True)]}})
    else:
        names = {"plural": "rollouts", "singular": "rollout", "kind": "Rollout"}
        spec = {"group": "argoproj.io", "scope": "Namespaced", "names": names}
        kube.create(
            CRDS,
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "rollouts.argoproj.io"},
                "spec": {**spec, "versions": [_rollout_version(True)]},
            },
        )
    eventually(lambda: _status_served(kube), what="rollouts/status served")
    yield path
    if not existed:
        kube.delete(path)
        eventually(lambda: not kube.exists(path), what="the CRD gone")


@pytest.mark.lab
def test_an_argo_rollout_is_aborted_through_its_status_and_undo_clears_it(
    kube: Kube, rollout_crd: str
) -> None:
    path = f"{ROLLOUTS}/halt-canary"
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "halt-canary"},
        "spec": {"replicas": 4},
    }
    _create(kube, ROLLOUTS, body)
    plan = ACTION.plan(
        kube, HaltChangeParams(kind="Rollout", namespace="default", name="halt-canary")
    )
    assert [(c.path, c.body) for c in plan.changes] == [
        (f"{path}/status", {"status": {"abort": True}})
    ]
    _dry_run_changes_nothing(kube, path, plan)
    assert "abort" not in (kube.get(path).get("status") or {})
    execute(kube, plan)
    _verified(kube, plan)
    assert kube.get(path)["status"]["abort"] is True
    _second_apply_changes_nothing(kube, path, plan)
    undo(kube, plan)
    assert kube.get(path)["status"]["abort"] is False
    assert ACTION.verify(kube, plan) == ["abort: want True, have False"]

    # A Rollout CRD without the status subresource: the abort patches the object itself,
    # as kubectl argo rollouts falls back to on a 404
    kube.patch(rollout_crd, {"spec": {"versions": [_rollout_version(False)]}})
    eventually(lambda: not _status_served(kube), what="rollouts/status no longer served")
    bare = ACTION.plan(
        kube, HaltChangeParams(kind="Rollout", namespace="default", name="halt-canary")
    )
    assert [c.path for c in bare.changes] == [path]
    assert bare.notes == ("the CRD has no status subresource",)
    execute(kube, bare)
    assert kube.get(path)["status"]["abort"] is True
    assert ACTION.verify(kube, bare) == []
    undo(kube, bare)
    assert kube.get(path)["status"]["abort"] is False


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"kind": "StatefulSet", "rollback": True},
            "rollback: only for a DaemonSet or a Deployment",
        ),
        ({"kind": "Rollout", "rollback": True}, "rollback: only for a DaemonSet or a Deployment"),
        ({"kind": "DaemonSet", "batch": 5}, "batch: only for a DaemonSet's roll-back"),
        ({"kind": "Deployment", "rollback": True, "batch": 5}, "batch: only for a DaemonSet's"),
        ({"kind": "DaemonSet", "guard_window": -1}, "greater than or equal to 0"),
    ],
)
def test_parameters_that_cannot_halt_are_refused(params: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        HaltChangeParams.model_validate({"namespace": "default", "name": "x", **params})


def test_the_defaults_are_the_guard_window_and_no_rollback() -> None:
    params = HaltChangeParams(kind="DaemonSet", namespace="default", name="x")
    assert (params.guard_window, params.rollback, params.batch) == (1800, False, None)


def test_the_shipped_playbook_halts_without_approval_and_throttles_with_it() -> None:
    books = load_playbooks([ROOT / "playbooks"], {n: a.params for n, a in CATALOGUE.items()})
    book = books["halt-change"]
    halt, throttle = book.steps
    assert (halt.action, halt.approval, halt.params["kind"]) == (
        "halt-change",
        "auto",
        "{{ change.kind }}",
    )
    assert halt.verify is not None and halt.verify.burn_falls
    assert (throttle.action, throttle.approval, throttle.when) == (
        "throttle-client",
        "required",
        "offender.name",
    )
    config = load_config(ROOT / "config")
    assert config.slos, "the shipped SLOs"
    assert [s.name for s in config.slos if book.trigger.matches(s, "page")] == [], (
        "no shipped SLO starts it by its labels: the change guard proposes it by name"
    )


def _execution(windows: list[dict[str, Any]]) -> Execution:
    now = datetime.now(UTC)
    context = {"slo": {"name": "api", "short_burn": 20.0, "windows": windows}}
    return Execution(
        "e", "halt-change", "api", "", "running", 0, 0, "g", "t", context, "", now, now
    )


def _step(burn_falls: bool, within: int) -> Step:
    return Step("halt", "halt-change", {}, "auto", Verify(burn_falls, None, within), 600, "stop")


def test_a_burn_falls_verification_waits_at_least_the_slos_shortest_window() -> None:
    windows = [{"short": 300, "long": 3600}, {"short": 1800, "long": 21600}]
    assert wait_for(_execution(windows), _step(True, 180)) == 300
    assert wait_for(_execution(windows), _step(True, 600)) == 600, "a longer within stays"
    assert wait_for(_execution(windows), _step(False, 180)) == 180, "no burn read: within"
    assert wait_for(_execution([]), _step(True, 180)) == 180, "no windows known: within"


@pytest.mark.lab
def test_a_staging_dry_run_of_the_playbook_checks_the_halt_and_the_throttle(
    kube: Kube, lab: Lab, tmp_path: Path
) -> None:
    """``guardian playbook run halt-change --dry-run --set change=...``, as the playbook's
    header says: both steps are planned and sent with dryRun=All; nothing changes. The
    throttle reads APF's top talkers: on a quiet lab the offender is not among them, so the
    dry run warns that a run now would refuse it."""
    books = tmp_path / "playbooks"
    books.mkdir()
    shutil.copy(ROOT / "playbooks" / "halt-change.yaml", books)
    config = tmp_path / "config"
    config.mkdir()
    (config / "guardian.yaml").write_text((lab.directory / "guardian.yaml").read_text())
    (config / "policy.yaml").write_text(
        "version: guardian/v1\n"
        f"policy: {{playbooks: [../playbooks], store: {{url: 'sqlite:///{tmp_path}/g.db'}}}}\n"
    )
    path = f"{APPS}/daemonsets/halt-staging"
    _create(kube, f"{APPS}/daemonsets", _workload("halt-staging"))
    version = _settled(kube, path)
    argv = ["playbook", "run", "halt-change", "-c", str(config), "--dry-run", "--since", "1s"]
    sets = ["--set", "change=DaemonSet/default/halt-staging", "--slo", "apiserver-rejections"]
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "guardian"), *argv, *sets, "-o", "json"],
        env={**os.environ, "KUBECONFIG": str(lab.directory / "kubeconfig")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    halt, throttle = doc["steps"]
    assert halt["problems"] == [] and halt["unchecked"] is None
    assert [c["description"] for c in halt["plan"]["changes"]] == [
        f"quarantine: nodeSelector {QUARANTINE_LABEL}=true matches no node"
    ]
    assert doc["context"]["offender"] == {"namespace": "default", "name": "default"}
    assert throttle["problems"] == [] and throttle["plan"] is not None, throttle
    assert "not among the top 3 talkers" in throttle["warning"], "a quiet lab: no talker"
    assert kube.get(path)["metadata"]["resourceVersion"] == version, "the dry run changed it"
