"""``guardian run`` as processes against the lab: leader election, failover, SIGTERM, reload,
Prometheus down, health and metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from guardian.clients.kube import Kube
from guardian.clients.store import Store
from guardian.testing.postgres import PostgresServer
from guardian.testing.slack import SlackEmulator
from tests.lab_fixture import ROOT, Lab, eventually
from tests.store_fixture import fresh_url

pytestmark = pytest.mark.lab

LEASE = {"duration": 6, "renew_deadline": 4, "retry_period": 1}
BOT, APP = "xoxb-daemon-bot-token", "xapp-daemon-app-token"

SHED = """\
version: guardian/v1
name: slow-shed
trigger: {{labels: {{tier: nowhere}}}}
steps:
  - name: cordon
    action: shed-nodes
    params: {{selector: "guardian-test={label}", count: 2, min_nodes: 0,
             max_share_per_step: 0.25, order: name}}
    approval: required
    verify: {{promql: '{verify}', within: 2m}}
  - name: again
    action: shed-nodes
    params: {{selector: "guardian-test={label}", count: 1, min_nodes: 0, order: name}}
    approval: auto
"""


VERIFIED = 'kube_deployment_created{{namespace="default", deployment="verified-{label}"}}'
"""A step verification that holds once the test says so (``_let_verify``: kube-state-metrics
sees the Deployment), whatever the time the daemon needed to get there on a busy machine."""


def _shed(label: str, gated: bool = False) -> str:
    """The playbook: two phases of one cordon, verified at once or, ``gated``, once
    ``_let_verify(kube, label)`` (``VERIFIED``), then one more."""
    verify = VERIFIED.format(label=label) if gated else "vector(1)"
    return SHED.format(label=label, verify=verify)


def _let_verify(kube: Kube, label: str) -> None:
    """Make ``VERIFIED`` hold for ``label`` (a Deployment of no replicas)."""
    kube.create(
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "metadata": {"name": f"verified-{label}"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"verified": label}},
                "template": {
                    "metadata": {"labels": {"verified": label}},
                    "spec": {"containers": [{"name": "none", "image": "none"}]},
                },
            },
        },
    )


class Daemon:
    """One ``guardian run`` process, its log in a file."""

    def __init__(
        self,
        config: Path,
        identity: str,
        env: dict[str, str],
        log: Path,
        extra: list[str] | None = None,
    ) -> None:
        self.identity = identity
        self.log = log
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "guardian"),
                "run",
                "-c",
                str(config),
                "--listen",
                "127.0.0.1:0",
                "--identity",
                identity,
                "--log-format",
                "json",
                *(extra or []),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        self.port = 0
        eventually(self._port, 30, f"{identity} serves http")

    def _port(self) -> bool:
        found = re.search(r"serving http on port (\d+)", self.text())
        self.port = int(found.group(1)) if found else 0
        assert self.process.poll() is None, self.text()[-3000:]
        return bool(found)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=10)

    def leading(self) -> bool:
        try:
            return "leader" in self.get("/readyz").text.splitlines()[0]
        except requests.RequestException:
            return False

    def metric(self, name: str) -> float:
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@pytest.fixture
def rig(lab: Lab, tmp_path: Path, postgres: PostgresServer) -> Iterator[dict[str, Any]]:
    url = fresh_url("postgresql", postgres, tmp_path)
    config = tmp_path / "config"
    config.mkdir()
    (config / "guardian.yaml").write_text((lab.directory / "guardian.yaml").read_text())
    (tmp_path / "playbooks").mkdir()
    name = "guardian-" + re.sub(r"[^a-z0-9-]", "-", tmp_path.name.lower())[-30:].strip("-")
    (config / "daemon.yaml").write_text(
        "version: guardian/v1\n"
        f"policy: {{playbooks: [../playbooks], store: {{url: '{url}'}}}}\n"
        "daemon:\n"
        "  interval: 2s\n"
        "  progress_interval: 1s\n"
        f"  lease: {{name: {name}, namespace: default, duration: {LEASE['duration']}s,\n"
        f"          renew_deadline: {LEASE['renew_deadline']}s,"
        f" retry_period: {LEASE['retry_period']}s}}\n"
    )
    env = {**os.environ, "KUBECONFIG": str(lab.directory / "kubeconfig")}
    env.pop("SLACK_BOT_TOKEN", None)
    kube = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    store = Store.open(url)
    daemons: list[Daemon] = []
    labelled: list[str] = []

    def nodes(label: str, count: int) -> list[str]:
        names = _label(kube, label, count)
        labelled.extend(names)
        return names

    def start(
        identity: str, extra: list[str] | None = None, kubeconfig: Path | None = None
    ) -> Daemon:
        own = {**env, "KUBECONFIG": str(kubeconfig)} if kubeconfig else env
        daemon = Daemon(config, identity, own, tmp_path / f"{identity}.log", extra)
        daemons.append(daemon)
        return daemon

    yield {
        "config": config,
        "playbooks": tmp_path / "playbooks",
        "env": env,
        "kube": kube,
        "store": store,
        "start": start,
        "lease": name,
        "lab": lab,
        "nodes": nodes,
    }
    try:
        for daemon in daemons:
            if daemon.process.poll() is None:
                daemon.stop(signal.SIGKILL)
        _release_nodes(kube, sorted(set(labelled)))
    finally:
        for made in kube.list("/apis/apps/v1/namespaces/default/deployments"):
            if made["metadata"]["name"].startswith("verified-"):
                name = made["metadata"]["name"]
                kube.delete(f"/apis/apps/v1/namespaces/default/deployments/{name}")
        store.close()


def _guardian(rig: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "guardian"), *args, "-c", str(rig["config"])],
        env=rig["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _label(kube: Kube, label: str, count: int) -> list[str]:
    names = sorted(n["metadata"]["name"] for n in kube.list("/api/v1/nodes"))[-count:]
    for name in names:
        kube.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {"guardian-test": label}}})
    return names


def _release_nodes(kube: Kube, names: list[str]) -> None:
    for name in names:
        kube.patch(
            f"/api/v1/nodes/{name}",
            {"metadata": {"labels": {"guardian-test": None}}, "spec": {"unschedulable": None}},
        )


def _cordoned(kube: Kube, names: list[str]) -> list[str]:
    return [n for n in names if kube.get(f"/api/v1/nodes/{n}")["spec"].get("unschedulable")]


def _told(store: Store, execution: str, *daemons: Daemon) -> Callable[[], str]:
    """What a failed wait shows: the execution as the store has it, each daemon's log tail."""

    def text() -> str:
        ex = store.get(execution)
        kinds = [r.kind for r in store.history(execution)]
        lines = [f"execution {execution}: {ex.state}, step {ex.step}, phase {ex.phase}; {kinds}"]
        for daemon in daemons:
            lines += [f"--- {daemon.identity}:", *daemon.text().splitlines()[-40:]]
        return "\n".join(lines)

    return text


def _propose_and_approve(rig: dict[str, Any]) -> str:
    proposed = _guardian(rig, "playbook", "run", "slow-shed", "--as", "alice")
    # the running daemon may claim the new execution before this CLI does: the CLI then
    # prints it still proposed and exits 1, and the daemon moves it to the approval
    claimed = proposed.returncode == 1 and proposed.stdout.rstrip().endswith(": proposed")
    assert proposed.returncode == 0 or claimed, proposed.stdout + proposed.stderr
    store: Store = rig["store"]
    eventually(lambda: bool(store.executions(["awaiting_approval"])), 60, "step 1 awaits bob")
    (execution,) = store.executions(["awaiting_approval"])
    approved = _guardian(
        rig, "approvals", "approve", execution.id, "--step", "1", "--no-run", "--as", "bob"
    )
    assert approved.returncode == 0, approved.stderr
    return execution.id


def test_the_leader_killed_mid_execution_is_replaced_and_no_step_runs_twice(
    rig: dict[str, Any],
) -> None:
    kube, store = rig["kube"], rig["store"]
    names = rig["nodes"]("failover", 4)
    (rig["playbooks"] / "shed.yaml").write_text(_shed("failover", gated=True))
    first, second = rig["start"]("replica-a"), rig["start"]("replica-b")
    eventually(lambda: first.leading() or second.leading(), 30, "a leader is elected")
    leader, follower = (first, second) if first.leading() else (second, first)
    assert not follower.leading() and follower.get("/readyz").status_code == 200
    assert (leader.metric("guardian_leader"), follower.metric("guardian_leader")) == (1.0, 0.0)

    execution = _propose_and_approve(rig)
    eventually(
        lambda: store.applied_phases(execution) == [(0, 0)],
        60,
        "phase 1 applied",
        _told(store, execution, first, second),
    )
    assert store.get(execution).state == "running", "phase 1 waits for its verification"
    killed = time.monotonic()
    leader.stop(signal.SIGKILL)
    eventually(follower.leading, 30, "the follower takes the lease")
    takeover = time.monotonic() - killed
    _let_verify(kube, "failover")
    eventually(
        lambda: store.get(execution).state == "succeeded",
        90,
        "the run finishes",
        _told(store, execution, first, second),
    )
    finished = time.monotonic() - killed

    assert takeover <= LEASE["duration"] + LEASE["retry_period"] + 1, takeover
    assert store.applied_phases(execution) == [(0, 0), (0, 1), (1, 0)]
    kinds = [r.kind for r in store.history(execution)]
    assert kinds.count("applied") == 3 and kinds.count("planned") == 2
    assert len(_cordoned(kube, names)) == 3, "2 by the first step, 1 by the second"
    assert follower.metric('guardian_executions{state="succeeded"}') == 1.0
    assert follower.metric('guardian_approvals_total{decision="approved"}') == 2.0, "bob, auto"
    assert follower.metric("guardian_kubernetes_requests_total") > 0
    assert "guardian_burn_rate{" in follower.get("/metrics").text
    lines = [json.loads(line) for line in follower.text().splitlines()]
    mine = [line for line in lines if line.get("execution") == execution]
    assert mine and all({"time", "level", "logger", "message"} <= set(m) for m in mine)
    assert any("applied" in m["message"] for m in mine), "the new leader logs what it applied"
    print(f"failover: lease taken {takeover:.1f}s after kill -9, run done after {finished:.1f}s")


def test_sigterm_lets_the_step_in_flight_finish_and_releases_the_lease(
    rig: dict[str, Any],
) -> None:
    kube, store = rig["kube"], rig["store"]
    names = rig["nodes"]("sigterm", 4)
    (rig["playbooks"] / "shed.yaml").write_text(_shed("sigterm", gated=True))
    daemon = rig["start"]("replica-term")
    eventually(daemon.leading, 30, "the only replica leads")
    execution = _propose_and_approve(rig)
    eventually(
        lambda: store.applied_phases(execution) == [(0, 0)],
        60,
        "phase 1 applied",
        _told(store, execution, daemon),
    )
    asked = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    time.sleep(3)
    told = _told(store, execution, daemon)
    assert daemon.process.poll() is None, f"the step in flight waits for its verification\n{told()}"
    assert store.applied_phases(execution) == [(0, 0)], told()
    _let_verify(kube, "sigterm")
    assert daemon.stop(signal.SIGTERM, timeout=120) == 0, daemon.text()[-3000:]
    took = time.monotonic() - asked
    stopped = store.get(execution)
    assert (stopped.state, stopped.step) == ("proposed", 1), "step 1 finished, step 2 waits"
    assert store.applied_phases(execution) == [(0, 0), (0, 1)]
    assert "lease released" in daemon.text()
    assert (
        kube.exists(f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{rig['lease']}")
        is False
    )
    assert 0 < took < 60, took

    again = rig["start"]("replica-term-2")
    eventually(
        lambda: store.get(execution).state == "succeeded",
        60,
        "the next replica resumes",
        _told(store, execution, daemon, again),
    )
    assert store.applied_phases(execution) == [(0, 0), (0, 1), (1, 0)]
    assert len(_cordoned(kube, names)) == 3
    assert again.stop() == 0


def test_a_bad_config_is_refused_and_a_good_one_reloads(rig: dict[str, Any]) -> None:
    good = _shed("reload")
    (rig["playbooks"] / "shed.yaml").write_text(good)
    daemon = rig["start"]("replica-reload")
    eventually(daemon.leading, 30, "leader")
    (rig["playbooks"] / "shed.yaml").write_text(good.replace("shed-nodes", "shed-nodez", 1))
    eventually(lambda: "refused, the running config stays" in daemon.text(), 30, "refused")
    line = next(x for x in daemon.text().splitlines() if "refused, the running" in x)
    assert "action: unknown action 'shed-nodez'" in line
    assert daemon.get("/readyz").status_code == 200
    assert daemon.metric('guardian_config_reloads_total{result="refused"}') == 1.0
    listing = _guardian(rig, "playbook", "list")
    assert listing.returncode == 2, "the CLI refuses the same file"

    (rig["playbooks"] / "shed.yaml").write_text(good.replace("slow-shed", "slower-shed"))
    eventually(lambda: "reload (files changed): " in daemon.text(), 30, "reloaded")
    daemon.process.send_signal(signal.SIGHUP)
    eventually(lambda: "reload (SIGHUP): " in daemon.text(), 30, "reloaded on SIGHUP")
    assert daemon.metric('guardian_config_reloads_total{result="ok"}') == 2.0
    assert daemon.stop() == 0


def test_prometheus_down_means_blind_no_action_a_notification_then_recovery(
    rig: dict[str, Any],
) -> None:
    store: Store = rig["store"]
    lab: Lab = rig["lab"]
    emulator = SlackEmulator(BOT, APP, "signing-secret")
    with emulator:
        (rig["config"] / "slack.yaml").write_text(
            f"version: guardian/v1\nslack: {{channel: C_SRE, api_url: '{emulator.base_url}'}}\n"
        )
        rig["env"].update(SLACK_BOT_TOKEN=BOT, SLACK_APP_TOKEN=APP)
        (rig["playbooks"] / "shed.yaml").write_text(_shed("blind"))
        daemon = rig["start"]("replica-blind")
        eventually(daemon.leading, 30, "leader")
        eventually(lambda: daemon.get("/readyz").status_code == 200, 30, "ready")
        lab_cmd = [str(ROOT / "lab" / "lab"), "fault", "prometheus"]
        lab_env = {**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)}
        subprocess.run([*lab_cmd, "kill"], env=lab_env, check=True, capture_output=True)
        try:
            eventually(lambda: daemon.get("/readyz").status_code == 503, 30, "not ready")
            assert "prometheus: " in daemon.get("/readyz").text
            eventually(
                lambda: any(
                    "blind" in m.text and "apiserver-read-latency" in m.text
                    for m in emulator.messages.values()
                ),
                30,
                "a blind-mode notification in Slack",
            )
            blind = [
                r
                for r in store.history()
                if r.kind == "evaluation" and r.detail.get("status") == "no_data"
            ]
            assert blind, "every SLO went blind"
            assert store.executions() == [], "no action while blind"
            assert daemon.get("/healthz").status_code == 200, "alive though blind"
        finally:
            subprocess.run([*lab_cmd, "start"], env=lab_env, check=True, capture_output=True)
        eventually(lambda: daemon.get("/readyz").status_code == 200, 60, "ready again")
        eventually(
            lambda: any(
                r.kind == "evaluation"
                and r.detail.get("slo") == "apiserver-read-latency"
                and r.detail.get("status") == "ok"
                and r.seq > blind[-1].seq
                for r in store.history()
            ),
            90,
            "the SLO is evaluated again",
        )
        assert store.executions() == []
        assert daemon.stop() == 0
        assert BOT not in daemon.text() and APP not in daemon.text()


FLOWCONTROL = "/apis/flowcontrol.apiserver.k8s.io/v1"


def _sa_token(kube: Kube, namespace: str, name: str) -> str:
    token: str = kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {"spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    return token


def _apf_counts(lab: Lab, schema: str) -> tuple[float, float]:
    """Requests the API server dispatched and rejected for ``schema``, from its /metrics."""
    dispatched = rejected = 0.0
    for line in lab.api("GET", "/metrics").text.splitlines():
        if f'flow_schema="{schema}"' not in line:
            continue
        if line.startswith("apiserver_flowcontrol_dispatched_requests_total{"):
            dispatched += float(line.rsplit(" ", 1)[1])
        elif line.startswith("apiserver_flowcontrol_rejected_requests_total{"):
            rejected += float(line.rsplit(" ", 1)[1])
    return dispatched, rejected


def _tight_priority_level(kube: Kube) -> None:
    """ServiceAccounts guardian-429 (guardian's ClusterRole, and its Lease) and flood-429
    (LIST nodes), whose requests for core and apps objects share one seat: the excess is
    rejected with 429. The Lease stays outside, so only bucket-limited calls are counted."""
    from guardian.testing.manifests import apply_manifests

    apply_manifests(kube, ROOT / "deploy" / "rbac" / "guardian-rbac.yaml")
    for name in ("guardian-429", "flood-429"):
        kube.create("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": name}})
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    kube.create(
        f"{rbac}/clusterroles",
        {
            "metadata": {"name": "flood-429"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
        },
    )
    kube.create(
        f"{rbac}/namespaces/default/roles",
        {
            "metadata": {"name": "guardian-429-lease"},
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                       "verbs": ["get", "create", "update", "delete"]}],
        },
    )  # fmt: skip
    for where, kind, role, account in (
        ("clusterrolebindings", "ClusterRole", "guardian", "guardian-429"),
        ("clusterrolebindings", "ClusterRole", "flood-429", "flood-429"),
        ("namespaces/default/rolebindings", "Role", "guardian-429-lease", "guardian-429"),
    ):
        kube.create(
            f"{rbac}/{where}",
            {
                "metadata": {"name": f"{role}-{account}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}],
            },
        )
    kube.create(
        f"{FLOWCONTROL}/prioritylevelconfigurations",
        {
            "metadata": {"name": "tight-429"},
            "spec": {
                "type": "Limited",
                "limited": {
                    "nominalConcurrencyShares": 1,
                    "lendablePercent": 0,
                    "borrowingLimitPercent": 0,
                    "limitResponse": {"type": "Reject"},
                },
            },
        },
    )
    for precedence, name in ((90, "guardian-429"), (91, "flood-429")):
        kube.create(
            f"{FLOWCONTROL}/flowschemas",
            {
                "metadata": {"name": name},
                "spec": {
                    "priorityLevelConfiguration": {"name": "tight-429"},
                    "matchingPrecedence": precedence,
                    "rules": [
                        {
                            "subjects": [
                                {"kind": "ServiceAccount",
                                 "serviceAccount": {"name": name, "namespace": "default"}}
                            ],
                            "resourceRules": [
                                {"verbs": ["*"], "apiGroups": ["", "apps"],
                                 "resources": ["*"], "clusterScope": True,
                                 "namespaces": ["*"]}
                            ],
                        }
                    ],
                },
            },
        )  # fmt: skip


def test_under_429s_guardian_s_own_request_rate_stays_under_its_bucket(
    rig: dict[str, Any],
) -> None:
    """guardian's requests share a one-seat priority level with a flood: the API server
    rejects many of them; every retry still waits for the token bucket."""
    import threading

    kube, store, lab = rig["kube"], rig["store"], rig["lab"]
    qps, burst = 2.0, 2
    _tight_priority_level(kube)
    names = rig["nodes"]("flood", 10)
    (rig["playbooks"] / "shed.yaml").write_text(
        _shed("flood")
        .replace("count: 2", "count: 10")
        .replace("max_share_per_step: 0.25", "max_share_per_step: 1.0, max_share_per_run: 0.5")
    )
    server = f"https://127.0.0.1:{lab.ports['kube-apiserver']}"
    ca = str(lab.directory / "pki" / "ca.crt")
    kubeconfig = rig["config"].parent / "sa.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: lab, cluster: {{server: '{server}',"
        f" certificate-authority: '{ca}'}}}}]\n"
        f"users: [{{name: sa, user: {{token: '{_sa_token(kube, 'default', 'guardian-429')}'}}}}]\n"
        "contexts: [{name: sa, context: {cluster: lab, user: sa}}]\ncurrent-context: sa\n"
    )
    flood_token = _sa_token(kube, "default", "flood-429")
    stop = threading.Event()
    flooded: list[int] = []

    def flood() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {flood_token}"
        while not stop.is_set():
            answer = session.get(f"{server}/api/v1/nodes", verify=ca, timeout=10)
            flooded.append(answer.status_code)

    threads = [threading.Thread(target=flood, daemon=True)]
    daemon = rig["start"]("replica-429", ["--qps", str(qps), "--burst", str(burst)], kubeconfig)
    try:
        eventually(daemon.leading, 30, "leader as guardian-429")
        for thread in threads:
            thread.start()
        before = _apf_counts(lab, "guardian-429")
        began = time.monotonic()
        execution = _propose_and_approve(rig)
        eventually(
            lambda: store.get(execution).state == "succeeded",
            180,
            "the run finishes",
            _told(store, execution, daemon),
        )
        took = time.monotonic() - began
        after = _apf_counts(lab, "guardian-429")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        for path in (  # the one-seat level goes whatever fails once the daemon runs
            f"{FLOWCONTROL}/flowschemas/guardian-429",
            f"{FLOWCONTROL}/flowschemas/flood-429",
            f"{FLOWCONTROL}/prioritylevelconfigurations/tight-429",
        ):
            kube.delete(path)
    sent = (after[0] - before[0]) + (after[1] - before[1])
    rejected = after[1] - before[1]
    print(
        f"429s: guardian sent {sent:.0f} requests in {took:.1f}s ({sent / took:.2f}/s, bucket "
        f"{qps}/s burst {burst}); the API server rejected {rejected:.0f}; the flood got "
        f"{flooded.count(429)} 429s of {len(flooded)}; guardian counted "
        f"{daemon.metric('guardian_kubernetes_requests_total'):.0f} requests, "
        f"{daemon.metric('guardian_kubernetes_retries_total'):.0f} retries"
    )
    assert rejected > 0, "the API server answered guardian with 429s"
    assert daemon.metric("guardian_kubernetes_retries_total") >= rejected
    assert sent <= qps * took + burst, "retries waited for the bucket too"
    assert len(_cordoned(kube, names)) == 10
    assert daemon.stop() == 0


def test_slack_http_mode_shares_the_daemon_s_port(rig: dict[str, Any]) -> None:
    secret = "daemon-signing-secret"
    with SlackEmulator(BOT, APP, secret) as emulator:
        (rig["config"] / "slack.yaml").write_text(
            "version: guardian/v1\n"
            f"slack: {{channel: C_SRE, mode: http, api_url: '{emulator.base_url}'}}\n"
        )
        rig["env"].update(SLACK_BOT_TOKEN=BOT, SLACK_SIGNING_SECRET=secret)
        (rig["playbooks"] / "shed.yaml").write_text(_shed("http"))
        daemon = rig["start"]("replica-http")
        url = f"http://127.0.0.1:{daemon.port}/slack/events"
        form = emulator.slash_payload("playbooks", "U_CAROL", "C_SRE")
        status, body = emulator.signed_post(url, form)
        assert status == 200, "a quick answer comes in the HTTP response itself"
        assert json.loads(body)["text"] == "slow-shed: cordon, again"
        forged, _ = emulator.signed_post(url, form, secret="not-the-secret")
        assert forged == 401
        assert daemon.get("/healthz").status_code == 200, "one port for both"
        assert daemon.stop() == 0
        assert secret not in daemon.text() and BOT not in daemon.text()
