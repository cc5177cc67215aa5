"""The lab at the incident's scale, and the storm's agents following a DaemonSet's rollout.

- ``lab up --nodes 2000``: every node Ready with a Lease KWOK renews, ``lab load``'s
  DaemonSet Running on all 2,000 and one agent per node, then ``lab down`` leaves nothing
  running (``running_lab`` checks every PID gone). Marked ``lab`` and ``slow``.
- On the ``lab`` fixture's 20-node lab: a DaemonSet updated pod by pod (``OnDelete``, pods deleted a
  few at a time) to the storming template; the agents ``lab load`` runs are exactly its
  updated pods at each step, and none before the update.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.lab_fixture import NODES, Lab, _lab, eventually, running_lab

pytestmark = pytest.mark.lab
NAMESPACE, NAME = "telemetry", "telemetry-agent"
DAEMONSET = f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{NAME}"
STORM = "lab.guardian.io/storm"
SCALE = 2000


def _reports(lab: Lab, since: int) -> list[dict[str, Any]]:
    """The load process's report lines written after byte ``since`` of its log."""
    with (lab.directory / "logs" / "load.log").open("rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _log_size(lab: Lab) -> int:
    path = lab.directory / "logs" / "load.log"
    return path.stat().st_size if path.exists() else 0


def _pods(lab: Lab) -> list[dict[str, Any]]:
    answer = lab.api(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": f"app={NAME}"}
    )
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


@pytest.mark.slow
def test_two_thousand_nodes_come_up_with_heartbeats_agents_and_go_down(tmp_path: Path) -> None:
    began = time.monotonic()
    with running_lab(tmp_path / "lab", SCALE) as lab:
        up = time.monotonic() - began
        env = {**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)}
        leases = lab.api("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
        renewed = [
            datetime.fromisoformat(item["spec"]["renewTime"])
            for item in leases.json()["items"]
            if item["metadata"]["name"].startswith("kwok-node-")
        ]
        assert len(renewed) == SCALE
        # created with its node, a lease is young whether or not KWOK renews it: every one must
        # be renewed after a moment taken once the lab is up (KWOK renews every 10 s or so)
        mark = datetime.now(UTC)

        def all_renewed_since_mark() -> bool:
            items = lab.api(
                "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
            ).json()["items"]
            times = [
                datetime.fromisoformat(i["spec"]["renewTime"])
                for i in items
                if i["metadata"]["name"].startswith("kwok-node-")
            ]
            return len(times) == SCALE and min(times) > mark

        eventually(all_renewed_since_mark, 60, "every node's lease renewed after the lab was up")
        since = _log_size(lab)
        started = _lab("load", "--filler-pods", "100", "--per-pod-qps", "0.05", env=env)
        assert started.returncode == 0, started.stderr
        try:

            def every_node_has_its_agent() -> bool:
                reports = _reports(lab, since)
                return bool(reports) and reports[-1]["running_agents"] == SCALE

            eventually(every_node_has_its_agent, timeout=180, what=f"{SCALE} agents started")
            rolled = time.monotonic() - began - up
            running = [p for p in _pods(lab) if p["status"].get("phase") == "Running"]
            assert len({p["spec"]["nodeName"] for p in running}) == SCALE
        finally:
            assert _lab("load", "--stop", env=env).returncode == 0
    print(f"{SCALE} nodes: lab up {up:.0f}s, DaemonSet Running everywhere {rolled:.0f}s later")


def _benign(template_image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": NAME, "labels": {"app": NAME}},
        "spec": {
            "selector": {"matchLabels": {"app": NAME}},
            "updateStrategy": {"type": "OnDelete"},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "containers": [{"name": "agent", "image": template_image}],
                    "tolerations": [{"operator": "Exists"}],
                    "nodeSelector": {"type": "kwok"},
                    "serviceAccountName": NAME,
                },
            },
        },
    }


def test_the_agents_started_are_the_pods_the_rollout_updated(lab: Lab) -> None:
    env = {**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)}
    lab.api("POST", "/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
    lab.api(
        "POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", json={"metadata": {"name": NAME}}
    )
    created = lab.api(
        "POST",
        f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets",
        json=_benign("registry.invalid/telemetry-agent:0.9"),
    )
    assert created.status_code == 201, created.text

    def all_running() -> bool:
        pods = _pods(lab)
        return len(pods) == NODES and all(p["status"].get("phase") == "Running" for p in pods)

    eventually(all_running, what="the old agents on every node")
    since = _log_size(lab)
    started = _lab("load", "--filler-pods", "20", "--per-pod-qps", "0.5", env=env)
    assert started.returncode == 0, started.stderr
    try:

        def reported(agents: int, updated: int) -> bool:
            reports = [r for r in _reports(lab, since) if "updated" in r]
            return bool(reports) and (
                (reports[-1]["running_agents"], reports[-1]["updated"]) == (agents, updated)
            )

        # lab load kept the DaemonSet that was there: its pods do not storm
        eventually(lambda: reported(0, NODES), what="no agent for the old template")
        patch = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {STORM: "true"}},
                    "spec": {
                        "containers": [
                            {"name": "agent", "image": "registry.invalid/telemetry-agent:1.0"}
                        ]
                    },
                }
            }
        }
        answer = lab.api(
            "PATCH",
            DAEMONSET,
            json=patch,
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert answer.status_code == 200, answer.text
        eventually(lambda: reported(0, 0), what="the update applied to no pod yet")
        for updated in (5, 15):
            _replace_pods(lab, updated)
            eventually(
                lambda n=updated: reported(n, n), what=f"{updated} agents, {updated} updated"
            )
    finally:
        assert _lab("load", "--stop", env=env).returncode == 0


def _replace_pods(lab: Lab, updated: int) -> None:
    """Delete the old pods of the first nodes until ``updated`` run the new template."""
    pods = sorted(_pods(lab), key=lambda p: int(p["spec"]["nodeName"].rsplit("-", 1)[1]))
    old = [p for p in pods if STORM not in p["metadata"].get("annotations", {})]
    for pod in old[: updated - (len(pods) - len(old))]:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}"
        assert lab.api("DELETE", path).status_code == 200
