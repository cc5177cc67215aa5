"""What the lab's telemetry DaemonSet and ``lab load``'s agents show a test: the load log's
reports and the DaemonSet's pods (``tests/test_lab_scale.py``, ``tests/test_lab_agents.py``)."""

from __future__ import annotations

import json
from typing import Any

from tests.lab_fixture import Lab

NAMESPACE, NAME = "telemetry", "telemetry-agent"
DAEMONSET = f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{NAME}"
STORM = "lab.guardian.io/storm"


def load_reports(lab: Lab, since: int) -> list[dict[str, Any]]:
    """The load process's report lines written after byte ``since`` of its log."""
    with (lab.directory / "logs" / "load.log").open("rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    # a line the load process is still writing is not a report yet
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]


def load_log_size(lab: Lab) -> int:
    path = lab.directory / "logs" / "load.log"
    return path.stat().st_size if path.exists() else 0


def agent_pods(lab: Lab) -> list[dict[str, Any]]:
    answer = lab.api(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": f"app={NAME}"}
    )
    items: list[dict[str, Any]] = answer.json()["items"]
    return items
