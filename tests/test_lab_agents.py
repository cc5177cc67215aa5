"""The storm's agents follow a DaemonSet's rollout, on the ``lab`` fixture's 20-node lab.

- A DaemonSet updated pod by pod (``OnDelete``, pods deleted a few at a time) to the storming
  template: the agents ``lab load`` runs are exactly its updated pods at each step, and none
  before the update.
- An agent reads a list's version from the head of the API server's answer, as decoding it
  whole would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab_fixture import NODES, Lab, _lab, eventually
from tests.telemetry import (
    DAEMONSET,
    NAME,
    NAMESPACE,
    STORM,
    agent_pods,
    load_log_size,
    load_reports,
)

pytestmark = pytest.mark.lab


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
        pods = agent_pods(lab)
        return len(pods) == NODES and all(p["status"].get("phase") == "Running" for p in pods)

    eventually(all_running, what="the old agents on every node")
    since = load_log_size(lab)
    started = _lab("load", "--filler-pods", "20", "--per-pod-qps", "0.5", env=env)
    assert started.returncode == 0, started.stderr
    try:

        def reported(agents: int, updated: int) -> bool:
            reports = [r for r in load_reports(lab, since) if "updated" in r]
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
    pods = sorted(agent_pods(lab), key=lambda p: int(p["spec"]["nodeName"].rsplit("-", 1)[1]))
    old = [p for p in pods if STORM not in p["metadata"].get("annotations", {})]
    for pod in old[: updated - (len(pods) - len(old))]:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}"
        assert lab.api("DELETE", path).status_code == 200


def _agents_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "lab_agents", Path(__file__).parent.parent / "lab" / "agents.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lab_agents"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_an_agent_reads_a_list_s_version_from_its_head(lab: Lab) -> None:
    agents = _agents_module()
    version_of = agents._list_resource_version
    # the API server's own bodies: a whole list and a page (its metadata has a continue token)
    for path in ("/api/v1/nodes", "/api/v1/pods?limit=2"):
        body = lab.api("GET", path).content
        assert agents._HEAD_VERSION.match(body) is not None, "read from the head, not decoded"
        assert version_of(body) == json.loads(body)["metadata"]["resourceVersion"]
    # a body another server wrote, the list's own version after an item's: decoded whole
    other = b'{"items":[{"metadata":{"resourceVersion":"5"}}],"metadata":{"resourceVersion":"9"}}'
    assert version_of(other) == "9"
    nested = (
        b'{"kind":"NodeList","apiVersion":"v1","metadata":{"continue":"x","resourceVersion":"8"}'
        b',"items":[]}'
    )
    assert version_of(nested) == "8"
