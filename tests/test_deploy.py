"""deploy/: guardian's APF objects and least-privilege RBAC, applied to the lab and used."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from guardian.actions import CATALOGUE, execute, undo
from guardian.actions.pause_rollout import PauseRolloutParams
from guardian.actions.scale_apiserver import ScaleApiserverParams
from guardian.actions.shed_nodes import ShedNodesParams
from guardian.actions.throttle_client import ThrottleClientParams
from guardian.clients.kube import Kube
from guardian.errors import PermanentKubernetesError
from guardian.planning.suspects import find_suspects
from guardian.testing.manifests import COLLECTIONS, apply_manifests, service_account_client
from tests.lab_fixture import ROOT, Lab

pytestmark = pytest.mark.lab

PATHS = COLLECTIONS


@pytest.fixture(scope="module")
def admin(lab: Lab) -> Kube:
    return Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)


@pytest.fixture(scope="module")
def guardian_sa(lab: Lab, admin: Kube) -> Kube:
    """A client authenticated as guardian's service account, bound to deploy/rbac."""
    apply_manifests(admin, ROOT / "deploy" / "rbac" / "guardian-rbac.yaml")
    apply_manifests(admin, ROOT / "deploy" / "apf" / "guardian-apf.yaml")
    server = f"https://127.0.0.1:{lab.ports['kube-apiserver']}"
    return service_account_client(admin, server, str(lab.directory / "pki" / "ca.crt"))


def test_guardian_s_requests_use_its_own_priority_level(
    lab: Lab, admin: Kube, guardian_sa: Kube
) -> None:
    token = guardian_sa.api_client.configuration.api_key["authorization"]
    answer = requests.get(
        f"https://127.0.0.1:{lab.ports['kube-apiserver']}/apis/apps/v1/namespaces/default/deployments/x",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(lab.directory / "pki" / "ca.crt"),
        timeout=10,
    )
    schema = admin.get(f"{PATHS['FlowSchema']}/guardian")
    level = admin.get(f"{PATHS['PriorityLevelConfiguration']}/guardian")
    assert answer.headers["X-Kubernetes-PF-FlowSchema-UID"] == schema["metadata"]["uid"]
    assert answer.headers["X-Kubernetes-PF-PriorityLevel-UID"] == level["metadata"]["uid"]


def test_every_action_runs_as_the_least_privilege_role(admin: Kube, guardian_sa: Kube) -> None:
    admin.create(
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "metadata": {"name": "rbac-check"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "rbac-check"}},
                "template": {
                    "metadata": {"labels": {"app": "rbac-check"}},
                    "spec": {"containers": [{"name": "a", "image": "x.invalid/a:1"}]},
                },
            },
        },
    )
    cases = [
        (
            "pause-rollout",
            PauseRolloutParams(kind="Deployment", namespace="default", name="rbac-check"),
        ),
        ("throttle-client", ThrottleClientParams(subject="group", name="noisy")),
        ("shed-nodes", ShedNodesParams(count=2, min_nodes=1, order="name")),
        (
            "scale-apiserver",
            ScaleApiserverParams(
                kind="Deployment", namespace="default", name="rbac-check", max_replicas=2
            ),
        ),
    ]
    for name, params in cases:
        action = CATALOGUE[name]
        plan = action.plan(guardian_sa, params)
        execute(guardian_sa, plan, dry_run=True)
        execute(guardian_sa, plan)
        deadline = time.monotonic() + 60
        while action.verify(guardian_sa, plan) and time.monotonic() < deadline:
            time.sleep(0.5)  # new replicas take a moment to be ready
        assert action.verify(guardian_sa, plan) == [], name
        undo(guardian_sa, plan)
    found = find_suspects(guardian_sa, datetime.now(UTC), timedelta(minutes=30))
    assert any(s.name == "rbac-check" for s in found)


def test_anything_else_is_forbidden_and_not_retried(guardian_sa: Kube) -> None:
    sent = guardian_sa.requests
    with pytest.raises(PermanentKubernetesError, match="HTTP 403"):
        guardian_sa.get("/api/v1/namespaces/kube-system/secrets/anything")
    assert guardian_sa.requests - sent == 1


def test_429_is_retried_after_retry_after(admin: Kube, lab: Lab) -> None:
    """A user squeezed into a one-seat, reject-only level: 429s come back, retries win."""
    for collection, doc in (
        (
            PATHS["ClusterRole"],
            {
                "metadata": {"name": "node-reader"},
                "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
            },
        ),
        (
            PATHS["ClusterRoleBinding"],
            {
                "metadata": {"name": "node-reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "node-reader",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": "telemetry-agent",
                    }
                ],
            },
        ),
    ):
        if not admin.exists(f"{collection}/node-reader"):
            admin.create(collection, doc)
    params = ThrottleClientParams(subject="user", name="telemetry-agent", shares=1)
    plan = CATALOGUE["throttle-client"].plan(admin, params)
    execute(admin, plan)
    try:
        token = (lab.directory / "pki" / "telemetry.token").read_text().strip()
        server = f"https://127.0.0.1:{lab.ports['kube-apiserver']}"
        agent = Kube.from_token(
            server, token, str(lab.directory / "pki" / "ca.crt"), qps=500, burst=500
        )
        agent.total_timeout = 120
        failures: list[BaseException] = []

        def hammer() -> None:
            try:
                for _ in range(10):
                    agent.get("/api/v1/nodes")
            except BaseException as exc:
                failures.append(exc)

        for _ in range(10):  # bounded: rounds until the level has pushed back at least once
            threads = [threading.Thread(target=hammer) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if agent.retries:
                break
        assert failures == []
        assert agent.retries > 0, "the tiny level should have answered some requests with 429"
    finally:
        undo(admin, plan)
