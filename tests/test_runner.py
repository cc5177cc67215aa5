"""Playbook executions on the lab's API server and Prometheus, persisted in a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from guardian.actions import CATALOGUE
from guardian.clients.kube import Kube
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.store import Store
from guardian.config import load_config
from guardian.evaluation.run import PrometheusSignals
from guardian.executor.runner import Runner
from guardian.playbooks import Playbook, load_playbooks
from tests.lab_fixture import ROOT, Lab

pytestmark = pytest.mark.lab

ACTIONS = {name: action.params for name, action in CATALOGUE.items()}
DAEMONSETS = "/apis/apps/v1/namespaces/default/daemonsets"

PAUSE = """\
version: guardian/v1
name: pause-agent
trigger: {labels: {tier: control-plane}}
approvers: {users: [alice, bob, carol]}
steps:
  - name: pause
    action: pause-rollout
    params:
      kind: "{{ suspects[0].kind }}"
      namespace: "{{ suspects[0].namespace }}"
      name: "{{ suspects[0].name }}"
    verify: {promql: 'up{job="apiserver"} == 1', within: 30s}
"""

CHAIN = """\
version: guardian/v1
name: throttle-and-shed
trigger: {labels: {tier: control-plane}}
steps:
  - name: throttle
    action: throttle-client
    params: {subject: serviceaccount, namespace: "{{ offender.namespace }}",
             name: "{{ offender.name }}"}
    approval: auto
  - name: shed
    action: shed-nodes
    params: {selector: "guardian-test=crash", count: 2, min_nodes: 0, max_share_per_step: 0.25,
             order: name}
    approval: auto
"""

REJECTED = """\
version: guardian/v1
name: throttle-nobody
trigger: {labels: {tier: control-plane}}
steps:
  - name: pause
    action: pause-rollout
    params: {kind: DaemonSet, namespace: default, name: "{{ params.agent }}"}
  - name: throttle
    action: throttle-client
    params: {subject: user, name: "{{ params.user }}"}
"""


def _books(tmp_path: Path, *texts: str) -> dict[str, Playbook]:
    directory = tmp_path / "playbooks"
    directory.mkdir(exist_ok=True)
    for index, text in enumerate(texts):
        (directory / f"{index}.yaml").write_text(text)
    return load_playbooks([directory], ACTIONS)


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Kube:
    return Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)


def _runner(lab: Lab, kube: Kube, store: Store, books: dict[str, Playbook], **kw: Any) -> Runner:
    config = load_config(lab.directory / "guardian.yaml")
    signals = PrometheusSignals(config.slos, PrometheusClient(config.prometheus))
    return Runner(store, books, lambda context: kube, signals, **kw)


def _agent(kube: Kube, name: str) -> dict[str, Any]:
    body = {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "serviceAccountName": "default",
                    "containers": [{"name": "agent", "image": "registry.invalid/agent:1"}],
                },
            },
        },
    }
    return kube.create(DAEMONSETS, body)


def _context(name: str, service_account: str = "default") -> dict[str, Any]:
    return {
        "suspects": [{"kind": "DaemonSet", "namespace": "default", "name": name}],
        "offender": {"namespace": "default", "name": service_account},
        "params": {},
    }


def test_approval_rules_then_the_step_is_applied_verified_and_audited(
    lab: Lab, kube: Kube, store: Store, tmp_path: Path
) -> None:
    name = f"agent-{store.engine.dialect.name}"
    _agent(kube, name)
    runner = _runner(lab, kube, store, _books(tmp_path, PAUSE))
    ex = runner.propose("pause-agent", _context(name), "alice", "slack", "apiserver-rejections")
    assert runner.advance(ex.id).state == "awaiting_approval"

    assert not runner.approve(ex.id, "mallory", "slack", step=0).ok
    assert not runner.approve(ex.id, "alice", "slack", ("S_SRE",), step=0).ok
    assert runner.approve(ex.id, "bob", "slack", step=0).ok
    double = runner.approve(ex.id, "carol", "slack", step=0)
    assert not double.ok and "the execution is approved at step 1" in double.message

    done = runner.advance(ex.id)
    assert done.state == "succeeded", done.message
    spec = kube.get(f"{DAEMONSETS}/{name}")["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    rows = store.history(ex.id)
    assert [r.kind for r in rows] == [
        "proposed",
        "awaiting_approval",
        "refused",
        "refused",
        "approved",
        "refused",
        "planned",
        "applied",
        "step_succeeded",
        "succeeded",
    ]
    refusals = [r.detail["reason"] for r in rows if r.kind == "refused"]
    assert refusals[0] == "mallory is not an approver of playbook pause-agent"
    assert refusals[1] == f"alice asked for execution {ex.id} and cannot also approve it"
    approved = next(r for r in rows if r.kind == "approved")
    assert (approved.actor, approved.via) == ("bob", "slack")


def test_an_approval_after_expiry_is_refused_and_nothing_runs(
    lab: Lab, kube: Kube, tmp_path: Path
) -> None:
    _agent(kube, "agent-late")
    store = Store.open(f"sqlite:///{tmp_path / 'late.db'}")
    now = [datetime.now(UTC)]
    runner = _runner(
        lab, kube, store, _books(tmp_path, PAUSE), approval_timeout=60, clock=lambda: now[0]
    )
    ex = runner.propose("pause-agent", _context("agent-late"), "alice", "console")
    runner.advance(ex.id)
    now[0] += timedelta(seconds=61)
    late = runner.approve(ex.id, "bob", "console", step=0)
    assert not late.ok and "expired" in late.message
    assert store.get(ex.id).state == "expired"
    strategy = kube.get(f"{DAEMONSETS}/agent-late")["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"


def _label_nodes(kube: Kube, count: int) -> list[str]:
    names = sorted(n["metadata"]["name"] for n in kube.list("/api/v1/nodes"))[:count]
    for name in names:
        kube.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {"guardian-test": "crash"}}})
    return names


BOUNDARIES = [
    "planned 0",
    "sent 0/0",
    "applied 0/0",
    "done 0",
    "planned 1",
    "sent 1/0",
    "applied 1/0",
    "sent 1/1",
    "applied 1/1",
    "done 1",
]


def test_a_kill_at_every_boundary_then_a_restart_applies_each_phase_once(
    lab: Lab, kube: Kube, tmp_path: Path, store_url: str
) -> None:
    nodes = _label_nodes(kube, 4)
    books = tmp_path / "playbooks"
    _books(tmp_path, CHAIN)
    url = store_url
    store = Store.open(url)
    try:
        for index, boundary in enumerate(BOUNDARIES):
            runner = _runner(lab, kube, store, load_playbooks([books], ACTIONS))
            offender = f"crash-{store.engine.dialect.name}-{index}"
            ex = runner.propose("throttle-and-shed", _context("x", offender), "a", "t")
            killed = _crash_runner(lab, url, books, boundary)
            assert killed.returncode == -9, f"{boundary}: {killed.stderr[-2000:]}"
            assert store.get(ex.id).state in ("approved", "running", "proposed"), boundary
            finished = _crash_runner(lab, url, books, "")
            assert finished.returncode == 0, finished.stderr[-2000:]
            final = store.get(ex.id)
            assert final.state == "succeeded", f"{boundary}: {final.message}"
            assert store.applied_phases(ex.id) == [(0, 0), (1, 0), (1, 1)], boundary
            applied = [r for r in store.history(ex.id) if r.kind == "applied"]
            assert len(applied) == 3, f"{boundary}: a phase recorded twice"
            cordoned = [
                n for n in nodes[:2] if kube.get(f"/api/v1/nodes/{n}")["spec"].get("unschedulable")
            ]
            assert cordoned == nodes[:2], boundary
            for node in nodes:
                kube.patch(f"/api/v1/nodes/{node}", {"spec": {"unschedulable": None}})
    finally:
        # the worker's lab goes on to other modules: its nodes as they were, no throttle left
        try:
            for node in nodes:
                kube.patch(
                    f"/api/v1/nodes/{node}",
                    {
                        "metadata": {"labels": {"guardian-test": None}},
                        "spec": {"unschedulable": None},
                    },
                )
        finally:
            dialect = store.engine.dialect.name
            _delete_throttles(kube, [f"crash-{dialect}-{i}" for i in range(len(BOUNDARIES))])


def _delete_throttles(kube: Kube, offenders: list[str]) -> None:
    """Delete the FlowSchema and priority level throttle_client made for each offender."""
    from guardian.actions.throttle_client import ThrottleClientParams, names

    apf = "/apis/flowcontrol.apiserver.k8s.io/v1"
    for offender in offenders:
        made = names(
            ThrottleClientParams(subject="serviceaccount", namespace="default", name=offender)
        )
        for kind in ("flowschemas", "prioritylevelconfigurations"):
            if kube.exists(f"{apf}/{kind}/{made}"):
                kube.delete(f"{apf}/{kind}/{made}")


def _crash_runner(
    lab: Lab, url: str, books: Path, boundary: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "crash_runner.py"),
            url,
            str(books),
            str(lab.directory / "kubeconfig"),
            str(lab.directory / "guardian.yaml"),
            boundary,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _versions(kube: Kube) -> dict[str, str]:
    """What the playbook below could touch: its DaemonSet, and the flow schemas."""
    found = {"agent-dry": kube.get(f"{DAEMONSETS}/agent-dry")["metadata"]["resourceVersion"]}
    for item in kube.list("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas"):
        found[item["metadata"]["name"]] = item["metadata"]["resourceVersion"]
    return found


def _settled(kube: Kube) -> dict[str, str]:
    previous: dict[str, str] = {}
    for _ in range(60):
        current = _versions(kube)
        if current == previous:
            return current
        previous = current
        time.sleep(1.5)
    pytest.fail("objects never settled")


def _config_dir(lab: Lab, tmp_path: Path) -> Path:
    """The lab's config plus a policy pointing at ``tmp_path/playbooks`` and a SQLite store."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "guardian.yaml").write_text((lab.directory / "guardian.yaml").read_text())
    (config / "policy.yaml").write_text(
        "version: guardian/v1\n"
        f"policy: {{playbooks: [../playbooks], store: {{url: 'sqlite:///{tmp_path}/g.db'}}}}\n"
    )
    return config


def test_a_dry_run_changes_nothing_and_reports_the_step_the_api_server_rejects(
    lab: Lab, kube: Kube, tmp_path: Path
) -> None:
    _agent(kube, "agent-dry")
    config = _config_dir(lab, tmp_path)
    _books(tmp_path, REJECTED)
    before = _settled(kube)
    args = ["playbook", "run", "throttle-nobody", "-c", str(config), "--dry-run", "-o", "json"]
    good = _guardian(lab, *args, "--set", "agent=agent-dry", "--set", "user=telemetry")
    assert good.returncode == 0, good.stderr
    doc = json.loads(good.stdout)
    assert [s["problems"] for s in doc["steps"]] == [[], []]
    assert (
        doc["steps"][0]["plan"]["changes"][0]["description"] == "freeze: updateStrategy = OnDelete"
    )
    bad = _guardian(lab, *args, "--set", "agent=agent-dry", "--set", "user=")
    assert bad.returncode == 1
    steps = json.loads(bad.stdout)["steps"]
    assert steps[0]["problems"] == []
    assert len(steps[1]["problems"]) == 1 and "HTTP 422" in steps[1]["problems"][0]
    assert _versions(kube) == before, "a dry run changed an object"
    assert Store.open(f"sqlite:///{tmp_path}/g.db").history() == []


def test_the_console_path_proposes_approves_and_keeps_the_history(
    lab: Lab, kube: Kube, tmp_path: Path
) -> None:
    _agent(kube, "agent-cli")
    config = _config_dir(lab, tmp_path)
    _books(
        tmp_path,
        PAUSE.replace('"{{ suspects[0].name }}"', "agent-cli")
        .replace('"{{ suspects[0].kind }}"', "DaemonSet")
        .replace('"{{ suspects[0].namespace }}"', "default"),
    )
    proposed = _guardian(lab, "playbook", "run", "pause-agent", "-c", str(config), "--as", "alice")
    assert proposed.returncode == 0, proposed.stderr
    execution = proposed.stdout.split()[1]
    assert f"approve with: guardian approvals approve {execution} --step 1" in proposed.stdout
    pending = _guardian(lab, "approvals", "list", "-c", str(config), "-o", "json")
    [row] = json.loads(pending.stdout)["pending"]
    assert (row["id"], row["step"], row["step_name"]) == (execution, 1, "pause")
    approve = ["approvals", "approve", "-c", str(config)]
    unbound = _guardian(lab, *approve, execution, "--as", "bob")
    assert unbound.returncode == 2 and "the following arguments are required: --step" in (
        unbound.stderr
    )
    own = _guardian(lab, *approve, execution, "--step", "1", "--as", "alice")
    assert own.returncode == 2
    assert own.stderr.strip() == (
        f"guardian: alice asked for execution {execution} and cannot also approve it"
    )
    ok = _guardian(lab, *approve, execution[:6], "--step", "1", "--as", "bob")
    assert ok.returncode == 0, ok.stderr
    assert f"execution {execution} (pause-agent): succeeded" in ok.stdout
    late = _guardian(lab, *approve, execution[:6], "--step", "1", "--as", "carol")
    assert late.returncode == 2
    assert late.stderr.strip() == (
        f"guardian: step 1 of execution {execution} is not awaiting approval: the execution "
        "is succeeded; nothing was decided"
    )
    history = _guardian(lab, "history", "-c", str(config), "-o", "json")
    kinds = [r["kind"] for r in json.loads(history.stdout)["history"]]
    assert kinds[:2] == ["proposed", "awaiting_approval"] and kinds[-2:] == [
        "succeeded",
        "refused",
    ]
    assert kube.get(f"{DAEMONSETS}/agent-cli")["spec"]["updateStrategy"] == {"type": "OnDelete"}


def _guardian(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(lab.directory / "kubeconfig")}
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "guardian"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


FAILING = """\
version: guardian/v1
name: shed-then-check
trigger: {labels: {tier: control-plane}}
steps:
  - name: cordon
    action: shed-nodes
    params: {selector: "guardian-test=undo", count: 2, min_nodes: 0, max_share_per_step: 0.25,
             order: name}
    approval: auto
    verify: {promql: 'vector(1) == 2', within: 3s}
    on_failure: undo
"""


def test_a_failed_verify_undoes_every_applied_batch(lab: Lab, kube: Kube, tmp_path: Path) -> None:
    names = sorted(n["metadata"]["name"] for n in kube.list("/api/v1/nodes"))[-4:]
    for name in names:
        kube.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {"guardian-test": "undo"}}})
    store = Store.open(f"sqlite:///{tmp_path / 'undo.db'}")
    runner = _runner(lab, kube, store, _books(tmp_path, FAILING))
    ex = runner.propose("shed-then-check", {"params": {}}, "alice", "console")
    done = runner.advance(ex.id)
    assert done.state == "undone"
    assert done.message == ("cordon: verify: vector(1) == 2 returned nothing; undid 1 changes"), (
        "the first batch failed its check, so the second was never applied"
    )
    assert store.applied_phases(ex.id) == [(0, 0)]
    for name in names:
        assert not kube.get(f"/api/v1/nodes/{name}")["spec"].get("unschedulable"), name
        kube.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {"guardian-test": None}}})


def test_a_plan_beyond_the_blast_radius_fails_before_any_change(
    lab: Lab, kube: Kube, tmp_path: Path
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'radius.db'}")
    books = _books(
        tmp_path,
        FAILING.replace("guardian-test=undo", "").replace(
            "count: 2", "count: 5, max_share_per_run: 0.25"
        ),
    )
    runner = _runner(lab, kube, store, books, max_changes=3)
    ex = runner.propose("shed-then-check", {"params": {}}, "alice", "console")
    done = runner.advance(ex.id)
    assert done.state == "undone"
    assert "blast radius: 5 changes would exceed the maximum of 3" in done.message
    assert store.applied_phases(ex.id) == []
    assert all(not n["spec"].get("unschedulable") for n in kube.list("/api/v1/nodes"))


def test_a_step_past_its_timeout_fails_without_applying(
    lab: Lab, kube: Kube, tmp_path: Path
) -> None:
    _agent(kube, "agent-slow")
    store = Store.open(f"sqlite:///{tmp_path / 'timeout.db'}")
    now = [datetime.now(UTC)]

    def later(where: str) -> None:
        if where == "planned 0":
            now[0] += timedelta(seconds=61)  # the step waited too long after planning

    slow = PAUSE.replace("approvers: {users: [alice, bob, carol]}\n", "").replace(
        "    verify:", "    approval: auto\n    timeout: 1m\n    verify:"
    )
    runner = _runner(
        lab, kube, store, _books(tmp_path, slow), clock=lambda: now[0], on_boundary=later
    )
    ex = runner.propose("pause-agent", _context("agent-slow"), "alice", "console")
    done = runner.advance(ex.id)
    assert (done.state, done.message) == ("failed", "pause: timed out after 60s")
    assert store.applied_phases(ex.id) == []
    strategy = kube.get(f"{DAEMONSETS}/agent-slow")["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"


def _label(kube: Kube, label: str, count: int) -> list[str]:
    names = sorted(n["metadata"]["name"] for n in kube.list("/api/v1/nodes"))[-count:]
    for name in names:
        kube.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {"guardian-test": label}}})
    return names


def _unlabel(kube: Kube, names: list[str]) -> None:
    for name in names:
        kube.patch(
            f"/api/v1/nodes/{name}",
            {"metadata": {"labels": {"guardian-test": None}}, "spec": {"unschedulable": None}},
        )


def test_a_second_thread_cannot_move_an_execution_this_process_is_moving(
    lab: Lab, kube: Kube, tmp_path: Path
) -> None:
    """A button press arriving while the daemon's loop advances the same execution."""
    names = _label(kube, "twice", 4)
    store = Store.open(f"sqlite:///{tmp_path / 'twice.db'}")
    book = FAILING.replace("guardian-test=undo", "guardian-test=twice").replace(
        "vector(1) == 2", "vector(1) == 1"
    )
    meanwhile: list[str] = []

    def click(where: str) -> None:
        if where == "planned 0":
            thread = threading.Thread(target=lambda: meanwhile.append(runner.advance(ex.id).state))
            thread.start()
            thread.join()

    runner = _runner(lab, kube, store, _books(tmp_path, book), on_boundary=click)
    ex = runner.propose("shed-then-check", {"params": {}}, "alice", "console")
    assert runner.advance(ex.id).state == "succeeded"
    assert meanwhile == ["approved"], "the second thread returned at once, moving nothing"
    assert store.applied_phases(ex.id) == [(0, 0), (0, 1)]
    kinds = [r.kind for r in store.history(ex.id)]
    assert (kinds.count("applied"), kinds.count("step_succeeded")) == (2, 1)
    _unlabel(kube, names)


def test_the_kill_switch_stops_a_running_execution_between_phases(
    lab: Lab, kube: Kube, tmp_path: Path
) -> None:
    names = _label(kube, "paused", 4)
    store = Store.open(f"sqlite:///{tmp_path / 'paused.db'}")
    book = FAILING.replace("guardian-test=undo", "guardian-test=paused").replace(
        "vector(1) == 2", "vector(1) == 1"
    )

    def pause(where: str) -> None:
        if where == "applied 0/0":
            store.set_setting("paused", "true", datetime.now(UTC))

    runner = _runner(lab, kube, store, _books(tmp_path, book), on_boundary=pause)
    ex = runner.propose("shed-then-check", {"params": {}}, "alice", "console")
    stopped = runner.advance(ex.id)
    assert (stopped.state, stopped.phase) == ("running", 1), "verified, then stopped"
    assert store.applied_phases(ex.id) == [(0, 0)]
    cordoned = [n for n in names if kube.get(f"/api/v1/nodes/{n}")["spec"].get("unschedulable")]
    assert len(cordoned) == 1
    store.set_setting("paused", "false", datetime.now(UTC))
    assert runner.advance(ex.id).state == "succeeded"
    assert store.applied_phases(ex.id) == [(0, 0), (0, 1)]
    _unlabel(kube, names)
