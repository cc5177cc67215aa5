"""Benchmark: shed KWOK nodes at QPS 10, against the limit the token bucket sets.

Starts a lab (``lab/lab up``; 510 nodes by default, ``--nodes``), applies ``deploy/rbac`` and
``deploy/apf``, and runs ``shed-nodes`` (cordon ``--shed`` nodes, batches of 10%) as
guardian's service account
through the gentle client at ``--qps`` (10) and ``--burst`` (10). Reports, side by side:

- wall time against the bucket's limit, ``(requests - burst) / qps``, as a ratio (target
  <= 1.1);
- the peak request rate over any one-second window against ``qps + burst``, and over any
  ten-second window against ``10 * qps + burst`` (it must never be above);
- guardian's requests as the API server counted them for its FlowSchema
  (``apiserver_flowcontrol_dispatched_requests_total{flow_schema="guardian"}``) against the
  client's own count.

Results: ``bench/results/shed-<UTC>.json`` and ``shed-latest.json``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from guardian.actions import CATALOGUE, execute, undo
from guardian.actions.shed_nodes import ShedNodesParams
from guardian.clients.kube import Kube
from guardian.testing.manifests import apply_manifests, service_account_client

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def lab(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(ROOT / "lab" / "lab"), *args], env=env, check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed: {done.stderr[-2000:]}")


def dispatched(directory: Path, port: int) -> float:
    """guardian's FlowSchema's dispatched requests, from the API server's /metrics."""
    token = (directory / "pki" / "admin.token").read_text().strip()
    text = requests.get(
        f"https://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(directory / "pki" / "ca.crt"),
        timeout=30,
    ).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_flowcontrol_dispatched_requests_total{")
        and 'flow_schema="guardian"' in line
    )


def peak(stamps: list[float], window: float) -> int:
    """Most requests sent within any ``window`` seconds."""
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run(nodes: int, shed: int, qps: float, burst: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="guardian-shed-") as tmp:
        env = {**os.environ, "GUARDIAN_LAB_DIR": tmp}
        directory = Path(tmp)
        # More API concurrency than the lab's default, so 510 nodes come up quickly; the
        # client-side bucket, not the server, is what this measures.
        lab(
            "up",
            "--nodes",
            str(nodes),
            "--max-requests-inflight",
            "100",
            "--max-mutating-requests-inflight",
            "50",
            env=env,
        )
        try:
            state = json.loads((directory / "state.json").read_text())
            port = state["ports"]["kube-apiserver"]
            admin = Kube.from_kubeconfig(str(directory / "kubeconfig"), qps=100, burst=100)
            apply_manifests(admin, ROOT / "deploy" / "rbac" / "guardian-rbac.yaml")
            apply_manifests(admin, ROOT / "deploy" / "apf" / "guardian-apf.yaml")
            kube = service_account_client(
                admin, f"https://127.0.0.1:{port}", str(directory / "pki" / "ca.crt"), qps, burst
            )
            before = dispatched(directory, port)
            params = ShedNodesParams(
                count=shed, min_nodes=nodes - shed, order="name", max_share_per_step=0.1
            )
            started = time.monotonic()
            plan = CATALOGUE["shed-nodes"].plan(kube, params)
            execute(kube, plan)
            wall = time.monotonic() - started
            sent = kube.requests
            stamps = list(kube.bucket.grant_times)
            time.sleep(2)
            counted = dispatched(directory, port) - before
            problems = CATALOGUE["shed-nodes"].verify(admin, plan)
            undo(admin, plan)
        finally:
            lab("down", env=env)
    limit = (sent - burst) / qps
    return {
        "benchmark": "shed",
        "at": datetime.now(UTC).isoformat(),
        "nodes": nodes,
        "shed": len(plan.changes),
        "batches": max(c.batch for c in plan.changes) + 1,
        "qps": qps,
        "burst": burst,
        "requests": sent,
        "wall_seconds": wall,
        "bucket_limit_seconds": limit,
        "ratio_vs_bucket": wall / limit,
        "peak_1s": peak(stamps, 1.0),
        "peak_1s_allowed": qps + burst,
        "peak_10s": peak(stamps, 10.0),
        "peak_10s_allowed": 10 * qps + burst,
        "apf_dispatched_for_guardian": counted,
        "verify_problems": problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=510)
    parser.add_argument("--shed", type=int, default=500)
    parser.add_argument("--qps", type=float, default=10)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    report = run(args.nodes, args.shed, args.qps, args.burst)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"shed-{stamp}.json", "shed-latest.json"):
        (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key:<30} {value}")
    return 0 if not report["verify_problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
