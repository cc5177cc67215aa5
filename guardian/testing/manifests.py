"""Apply guardian's own manifests (``deploy/``) to a cluster and act as its service account.

Used by the lab tests and the shed benchmark; guardian itself is installed by Helm later.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from guardian.clients.kube import Kube

COLLECTIONS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "FlowSchema": "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
    "PriorityLevelConfiguration": (
        "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations"
    ),
}


def apply_manifests(kube: Kube, path: Path) -> None:
    """Create every object of the YAML file at ``path`` that does not exist yet."""
    for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
        collection = COLLECTIONS[doc["kind"]].format(ns=doc["metadata"].get("namespace", ""))
        if not kube.exists(f"{collection}/{doc['metadata']['name']}"):
            kube.create(collection, doc)


def service_account_client(
    admin: Kube,
    server: str,
    ca_file: str,
    qps: float = 5,
    burst: int = 10,
    namespace: str = "guardian",
    name: str = "guardian",
) -> Kube:
    """A gentle client authenticated as ``namespace/name`` with a one-hour bound token."""
    answer = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    return Kube.from_token(server, answer["status"]["token"], ca_file, qps, burst)
