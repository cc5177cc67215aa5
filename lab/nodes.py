"""The lab's KWOK nodes: node objects → the API server, Ready count ← the API server.

Called by ``components`` (``_create_nodes``, ``_nodes_ready``): ``lab up --nodes N`` creates
``kwok-node-0`` … ``kwok-node-<N-1>`` with ``PARALLEL`` concurrent POSTs over kept-alive
connections (one TLS handshake per worker, not per node), as the admin user (exempt from
API Priority and Fairness). KWOK then marks each node Ready and renews its Lease.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from state import LabState

PARALLEL = 16
"""Concurrent node POSTs (16 at a time, over kept-alive connections)."""


class _Admin:
    """One kept-alive admin session per thread."""

    def __init__(self, state: LabState) -> None:
        self.base = f"https://127.0.0.1:{state.ports['kube-apiserver']}"
        self.token = (state.directory / "pki" / "admin.token").read_text().strip()
        self.ca = str(state.directory / "pki" / "ca.crt")
        self.local = threading.local()

    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.token}"
            self.local.session = session
        return session


def node(index: int) -> dict[str, Any]:
    """The Node object of ``kwok-node-<index>``, with the annotation KWOK manages."""
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
        },
    }


def create(state: LabState) -> list[str]:
    """POST every node, ``PARALLEL`` at a time; returns one line per node that failed
    (HTTP 409, already there, is not a failure)."""
    admin = _Admin(state)

    def one(index: int) -> str | None:
        try:
            answer = admin.session().post(
                f"{admin.base}/api/v1/nodes", json=node(index), verify=admin.ca, timeout=30
            )
        except requests.RequestException as exc:
            return f"creating node kwok-node-{index}: {type(exc).__name__}: {exc}"
        if answer.status_code in (201, 409):
            return None
        return f"creating node kwok-node-{index}: HTTP {answer.status_code} {answer.text[:200]}"

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return [line for line in pool.map(one, range(state.nodes)) if line]


def ready(state: LabState) -> int:
    """How many nodes are Ready, from the API server's table view of nodes (name and status
    columns only, 500 a page): a few bytes a node instead of the whole object."""
    admin = _Admin(state)
    accept = "application/json;as=Table;g=meta.k8s.io;v=v1"
    count, token = 0, ""
    while True:
        answer = admin.session().get(
            f"{admin.base}/api/v1/nodes",
            params={"limit": "500", "continue": token, "includeObject": "None"},
            headers={"Accept": accept},
            verify=admin.ca,
            timeout=30,
        )
        answer.raise_for_status()
        page = answer.json()
        status = next(i for i, c in enumerate(page["columnDefinitions"]) if c["name"] == "Status")
        count += sum(1 for row in page["rows"] if row["cells"][status] == "Ready")
        token = page["metadata"].get("continue", "")
        if not token:
            return count
