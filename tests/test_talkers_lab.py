"""The offender from the API server's own data, in the lab: APF's request dump read as
guardian's service account (bound to deploy/rbac), its flow-schema series from the lab's
Prometheus, and throttle-client planned against what they show. With the telemetry load
running the agents' service account is the top talker and may be throttled, a suspect that
is not among the top talkers may not; with a kubelet identity flooding (the admin
impersonating system:node:kwok-node-0 in group system:nodes, which APF classifies as that
kubelet), the kubelets are never throttled, and guardian says so."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from guardian.actions import CATALOGUE, Refused, execute, protected
from guardian.actions.throttle_client import ThrottleClientParams
from guardian.clients.apf import ApfClient
from guardian.clients.kube import Kube
from guardian.clients.prometheus import PrometheusClient
from guardian.config.model import PrometheusSettings
from guardian.errors import PermanentKubernetesError
from guardian.planning.talkers import Talker, talkers_context, top_talkers
from guardian.testing.manifests import apply_manifests, service_account_client
from tests.lab_fixture import ROOT, Lab, _lab, eventually

pytestmark = pytest.mark.lab

AGENT = "system:serviceaccount:telemetry:telemetry-agent"
NODE = "system:node:kwok-node-0"
BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


@pytest.fixture(scope="module")
def admin(lab: Lab) -> Kube:
    return Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)


@pytest.fixture(scope="module")
def guardian_sa(lab: Lab, admin: Kube) -> Kube:
    """guardian's service account, with exactly the rules of deploy/rbac."""
    apply_manifests(admin, ROOT / "deploy" / "rbac" / "guardian-rbac.yaml")
    apply_manifests(admin, ROOT / "deploy" / "apf" / "guardian-apf.yaml")
    server = f"https://127.0.0.1:{lab.ports['kube-apiserver']}"
    return service_account_client(admin, server, str(lab.directory / "pki" / "ca.crt"), 20, 40)


@pytest.fixture(scope="module")
def apf(lab: Lab, guardian_sa: Kube) -> Iterator[ApfClient]:
    url = f"http://127.0.0.1:{lab.ports['prometheus']}"
    prometheus = PrometheusClient(PrometheusSettings(url=url, timeout=30))
    yield ApfClient(guardian_sa, prometheus, window="30s", selector='{cluster="lab"}')
    prometheus.close()


@pytest.fixture
def telemetry_load(lab: Lab) -> Iterator[None]:
    env = {**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)}
    started = _lab("load", "--filler-pods", "300", env=env)
    try:
        assert started.returncode == 0, started.stderr
        yield
    finally:
        assert _lab("load", "--stop", env=env).returncode == 0


def _ranked(apf: ApfClient, guardian_sa: Kube) -> list[Talker]:
    identity, unknown = protected.whoami(guardian_sa)
    assert identity is not None, unknown
    return top_talkers(apf, samples=3, interval=1.0, identity=identity)


def _throttle(subject: str, name: str, talkers: list[Talker], **more: Any) -> ThrottleClientParams:
    namespace, _, account = name.rpartition("/")
    return ThrottleClientParams.model_validate(
        {
            "subject": subject,
            "name": account,
            "namespace": namespace or None,
            "talkers": [t.to_json() for t in talkers],
            **more,
        }
    )


def test_the_telemetry_agents_are_the_top_talker_and_only_they_may_be_throttled(
    apf: ApfClient, guardian_sa: Kube, telemetry_load: None
) -> None:
    seen: list[list[Talker]] = []

    def agents_lead_and_shed() -> bool:
        seen.append(_ranked(apf, guardian_sa))
        top = seen[-1][0] if seen[-1] else None
        return top is not None and top.user == AGENT and (top.rejected or 0.0) > 0.0

    eventually(agents_lead_and_shed, timeout=150, what="the agents lead APF's dump, shed")
    talkers = seen[-1]
    top = talkers[0]
    assert (top.flow_schema, top.priority_level, top.protected) == (
        "service-accounts", "workload-low", False,
    )  # fmt: skip
    assert top.share > 0.5, talkers
    assert top.service_account == ("telemetry", "telemetry-agent")
    mine = [t for t in talkers if t.user == "system:serviceaccount:guardian:guardian"]
    assert all(t.protected and t.why == "guardian's own identity" for t in mine)

    as_context = talkers_context(apf, guardian_sa, samples=1)
    assert as_context is not None
    assert as_context[0]["user"] == AGENT
    agents = _throttle("serviceaccount", "telemetry/telemetry-agent", talkers)
    plan = CATALOGUE["throttle-client"].plan(guardian_sa, agents)
    assert plan.notes == (
        f"top talker 1: {AGENT} ({top.share:.0%} of what APF holds, flow schema service-accounts)",
    )
    outcome = execute(guardian_sa, plan, dry_run=True)  # the server accepts it as guardian
    assert len(outcome.applied) == 2

    bystander = _throttle("serviceaccount", "default/filler", talkers, top=1)
    with pytest.raises(Refused) as refused:
        CATALOGUE["throttle-client"].plan(guardian_sa, bystander)
    assert refused.value.message.startswith(
        f"throttle-client: serviceaccount default/filler is not among the top 1 talkers ({AGENT} "
    )


def _flood_as_kubelet(lab: Lab, stop: threading.Event, answers: list[int]) -> None:
    """LISTs of every pod as the kubelet, back to back, until ``stop``."""
    token = (lab.directory / "pki" / "admin.token").read_text().strip()
    headers = {
        "Authorization": f"Bearer {token}",
        "Impersonate-User": NODE,
        "Impersonate-Group": "system:nodes",
    }
    url = f"https://127.0.0.1:{lab.ports['kube-apiserver']}/api/v1/pods"
    with requests.Session() as session:
        while not stop.is_set():
            try:
                answer = session.get(
                    url, headers=headers, verify=str(lab.directory / "pki" / "ca.crt"), timeout=30
                )
                answers.append(answer.status_code)
            except requests.RequestException:
                answers.append(0)


def test_the_throttle_refuses_system_nodes_when_a_kubelet_is_the_top_talker(
    lab: Lab, admin: Kube, apf: ApfClient, guardian_sa: Kube
) -> None:
    """The agents send a trickle only (``lab load``'s filler pods make a LIST expensive); a
    kubelet identity floods LISTs of every pod (bound to the view role, so they are served)."""
    env = {**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)}
    started = _lab("load", "--filler-pods", "300", "--per-pod-qps", "0.2", env=env)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "talkers-lab-kubelet-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": NODE}],
    }
    stop, answers = threading.Event(), list[int]()
    threads = [
        threading.Thread(target=_flood_as_kubelet, args=(lab, stop, answers)) for _ in range(30)
    ]
    try:  # whatever fails, the storm and the binding go before the next test
        assert started.returncode == 0, started.stderr
        admin.create(BINDINGS, binding)
        for thread in threads:
            thread.start()
        seen: list[list[Talker]] = []

        def kubelet_leads() -> bool:
            seen.append(_ranked(apf, guardian_sa))
            return bool(seen[-1]) and seen[-1][0].user == NODE

        eventually(kubelet_leads, timeout=120, what="the kubelet leads APF's dump")
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        if admin.exists(f"{BINDINGS}/talkers-lab-kubelet-view"):
            admin.delete(f"{BINDINGS}/talkers-lab-kubelet-view")
        assert _lab("load", "--stop", env=env).returncode == 0
    assert 200 in answers
    talkers = seen[-1]
    node = talkers[0]
    assert (node.flow_schema, node.protected, node.why) == ("system-nodes", True, "a kubelet")
    expected = f"throttle-client: top talker {NODE} is protected (a kubelet); not throttling"
    for subject, name in (("group", "system:nodes"), ("user", NODE)):
        with pytest.raises(Refused) as refused:
            CATALOGUE["throttle-client"].plan(guardian_sa, _throttle(subject, name, talkers))
        assert refused.value.message == expected


def test_a_client_without_the_debug_rule_is_told_which_rule_to_grant(lab: Lab, admin: Kube) -> None:
    server = f"https://127.0.0.1:{lab.ports['kube-apiserver']}"
    ca = str(lab.directory / "pki" / "ca.crt")
    bystander = service_account_client(admin, server, ca, namespace="default", name="default")
    with pytest.raises(PermanentKubernetesError) as denied:
        ApfClient(bystander).dump_requests()
    assert denied.value.message == (
        "GET /debug/api_priority_and_fairness/dump_requests: HTTP 403: guardian may not read "
        'APF\'s dump; grant get on nonResourceURLs ["/debug/api_priority_and_fairness/*"] '
        "(deploy/rbac/guardian-rbac.yaml)"
    )
