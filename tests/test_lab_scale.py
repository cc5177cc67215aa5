"""The lab at the incident's scale: ``lab up --nodes 2000``, every node Ready with a Lease KWOK
renews, ``lab load``'s DaemonSet Running on all 2,000 and one agent per node, then ``lab down``
leaves nothing running (``running_lab`` checks every PID gone). Marked ``lab`` and ``slow``;
a lab of its own (``tests/scheduling.py``). The agents following a rollout pod by pod are
tested on a 20-node lab in ``tests/test_lab_agents.py``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.lab_fixture import Lab, _lab, eventually, running_lab
from tests.telemetry import agent_pods, load_log_size, load_reports

pytestmark = pytest.mark.lab
SCALE = 2000


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
        since = load_log_size(lab)
        started = _lab("load", "--filler-pods", "100", "--per-pod-qps", "0.05", env=env)
        assert started.returncode == 0, started.stderr
        try:
            reached = _while_agents_start(lab, since)
            rolled = time.monotonic() - began - up
            running = [p for p in agent_pods(lab) if p["status"].get("phase") == "Running"]
            assert len({p["spec"]["nodeName"] for p in running}) == SCALE
        finally:
            assert _lab("load", "--stop", env=env).returncode == 0
    agents = ", ".join(f"{n} at {t:.0f}s" for n, t in reached.items())
    print(f"{SCALE} nodes: lab up {up:.0f}s, DaemonSet Running everywhere {rolled:.0f}s later")
    print(f"agents started after lab load: {agents}")


def _while_agents_start(
    lab: Lab, since: int, stall: float = 90, cap: float = 600
) -> dict[int, float]:
    """Wait until an agent runs on every node, as long as the rollout goes on.

    How fast the DaemonSet's 2,000 pods are made, scheduled and Running depends on what else
    the 2 cores do: 107 s on a quiet machine, 123 s beside two processes spinning, and more
    than 180 s once in ``make test`` beside two test workers. So the wait fails when no agent
    has started for ``stall`` seconds, or after ``cap``; either way it says how far the
    rollout got (the load log's last reports, the pods by phase). Returns when a quarter,
    half and all of the agents ran, in seconds."""
    began = last_growth = time.monotonic()
    most, reached = 0, dict[int, float]()
    while True:
        reports = [r for r in load_reports(lab, since) if "running_agents" in r]
        agents = reports[-1]["running_agents"] if reports else 0
        now = time.monotonic()
        for share in (SCALE // 4, SCALE // 2, SCALE):
            if agents >= share:
                reached.setdefault(share, now - began)
        if agents == SCALE:
            return reached
        if agents > most:
            most, last_growth = agents, now
        if now - last_growth > stall or now - began > cap:
            phases: dict[str, int] = {}
            for pod in agent_pods(lab):
                phase = pod["status"].get("phase", "none")
                phases[phase] = phases.get(phase, 0) + 1
            limit = f"none started for {stall:.0f}s" if now - last_growth > stall else "the cap"
            pytest.fail(
                f"{agents} of {SCALE} agents after {now - began:.0f}s ({limit}); pods by phase"
                f" {phases}; the last reports:\n" + "\n".join(json.dumps(r) for r in reports[-3:])
            )
        time.sleep(1)
