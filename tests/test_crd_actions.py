"""Actions on custom resources (Argo Rollouts, Cluster API) served by the lab's API server.

The CRDs are installed for real (open schemas); no controller runs behind them, so these
tests check what guardian reads, patches, verifies and restores, not what a controller does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from guardian.actions import CATALOGUE, execute, undo
from guardian.actions.pause_rollout import PauseRolloutParams
from guardian.actions.scale_apiserver import ScaleApiserverParams
from guardian.actions.shed_nodes import ShedNodesParams
from guardian.clients.kube import Kube
from guardian.errors import PermanentKubernetesError
from tests.lab_fixture import Lab, eventually

pytestmark = pytest.mark.lab

CRDS = [
    ("argoproj.io", "v1alpha1", "rollouts", "Rollout"),
    ("cluster.x-k8s.io", "v1beta1", "machinedeployments", "MachineDeployment"),
    ("controlplane.cluster.x-k8s.io", "v1beta1", "kubeadmcontrolplanes", "KubeadmControlPlane"),
]
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _crd(group: str, version: str, plural: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def _remove_crds(client: Kube) -> None:
    """Delete these CRDs (and so their objects) and wait until none is served."""
    for group, _, plural, _ in CRDS:
        if client.exists(f"{CRD_PATH}/{plural}.{group}"):
            client.delete(f"{CRD_PATH}/{plural}.{group}")
    eventually(
        lambda: not any(client.exists(f"/apis/{g}/{v}") for g, v, _, _ in CRDS),
        what="the CRDs gone",
    )


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Iterator[Kube]:
    """The lab with the CRDs installed by this module, after checking that a Rollout is
    refused while Argo Rollouts is not installed (a CRD another module of the same lab left
    is removed first); the CRDs are removed at the end."""
    client = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    _remove_crds(client)
    missing = PauseRolloutParams(kind="Rollout", namespace="default", name="web")
    with pytest.raises(PermanentKubernetesError, match="Argo Rollouts is not installed"):
        CATALOGUE["pause-rollout"].plan(client, missing)
    for group, version, plural, kind in CRDS:
        client.create(CRD_PATH, _crd(group, version, plural, kind))
    eventually(
        lambda: all(client.exists(f"/apis/{g}/{v}/{p}") for g, v, p, _ in CRDS), what="served"
    )
    yield client
    _remove_crds(client)


def _object(kube: Kube, group: str, version: str, plural: str, kind: str, spec: Any) -> str:
    collection = f"/apis/{group}/{version}/namespaces/default/{plural}"
    kube.create(
        collection,
        {
            "apiVersion": f"{group}/{version}",
            "kind": kind,
            "metadata": {"name": "crd-case"},
            "spec": spec,
        },
    )
    return f"{collection}/crd-case"


def test_pause_an_argo_rollout(kube: Kube) -> None:
    path = _object(kube, "argoproj.io", "v1alpha1", "rollouts", "Rollout", {"replicas": 4})
    action = CATALOGUE["pause-rollout"]
    plan = action.plan(
        kube, PauseRolloutParams(kind="Rollout", namespace="default", name="crd-case")
    )
    execute(kube, plan)
    assert action.verify(kube, plan) == []
    assert kube.get(path)["spec"]["paused"] is True
    undo(kube, plan)
    assert kube.get(path)["spec"]["paused"] is False


def test_shed_by_scaling_a_machine_deployment_above_the_floor(kube: Kube) -> None:
    path = _object(
        kube,
        "cluster.x-k8s.io",
        "v1beta1",
        "machinedeployments",
        "MachineDeployment",
        {"replicas": 10},
    )
    params = ShedNodesParams(percent=80, min_nodes=4, machine_deployment="default/crd-case")
    plan = CATALOGUE["shed-nodes"].plan(kube, params)
    assert [c.description for c in plan.changes] == [
        "scale MachineDeployment default/crd-case 10 → 9"
    ], "at most a tenth per run by default"
    floor = params.model_copy(update={"max_share_per_run": 0.5, "min_nodes": 6})
    plan = CATALOGUE["shed-nodes"].plan(kube, floor)
    assert [c.description for c in plan.changes] == [
        "scale MachineDeployment default/crd-case 10 → 6"
    ]
    assert plan.notes == (
        "10 replicas; shedding 4 (asked 8, floor 6, at most 5 per run)",
        "floor holds: 4 fewer than asked",
    )
    share = params.model_copy(update={"max_share_per_run": 0.5})
    plan = CATALOGUE["shed-nodes"].plan(kube, share)
    assert [c.description for c in plan.changes] == [
        "scale MachineDeployment default/crd-case 10 → 5"
    ]
    execute(kube, plan)
    assert kube.get(path)["spec"]["replicas"] == 5
    undo(kube, plan)
    assert kube.get(path)["spec"]["replicas"] == 10


def test_scale_a_kubeadm_control_plane_and_report_unready_replicas(kube: Kube) -> None:
    path = _object(
        kube,
        "controlplane.cluster.x-k8s.io",
        "v1beta1",
        "kubeadmcontrolplanes",
        "KubeadmControlPlane",
        {"replicas": 3},
    )
    action = CATALOGUE["scale-apiserver"]
    plan = action.plan(
        kube,
        ScaleApiserverParams(
            kind="KubeadmControlPlane", namespace="default", name="crd-case", add=2, max_replicas=5
        ),
    )
    execute(kube, plan)
    assert kube.get(path)["spec"]["replicas"] == 5
    assert action.verify(kube, plan) == ["0 of 5 replicas ready"]  # no controller here
    undo(kube, plan)
    assert kube.get(path)["spec"]["replicas"] == 3
