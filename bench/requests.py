"""Benchmark: guardian's own API-server requests per minute, LIST-based suspects against the watch.

Starts a lab (``lab/lab up``, 20 nodes by default, ``--nodes``), applies ``deploy/rbac`` and
``deploy/apf`` (guardian's FlowSchema ``guardian`` for the service account
``guardian/guardian``; the RBAC grants the ``list`` and ``watch`` the change log needs).
Then, as guardian's service account (5 QPS, burst 10, as the daemon), four phases of
``--seconds`` (60) each, one after the other so that each is counted alone:

1. steady, suspects: ``guardian.planning.suspects.find_suspects`` every 30 s, as the daemon
   does while an SLO burns (six paginated cluster-wide LISTs each);
2. steady, watch: ``guardian.clients.change_watch.WatchChangeLog`` running; its start (one
   LIST per resource, discovery of Argo Rollouts) is counted apart, before the phase;
3. and 4.: the same two during a burn, with ``lab load`` on (the telemetry DaemonSet whose
   agents flood the API server with LISTs).

Requests are counted by the API server itself, as
``apiserver_flowcontrol_dispatched_requests_total{flow_schema="guardian"}`` (and
``..._rejected_requests_total``) from its ``/metrics`` before and after each phase, beside
the client's own count (``Kube.requests``). Reported per phase as requests per minute and per
second, and the ratio watch / suspects, steady and during the burn (goal: at most
0.5 requests/s). A phase is shorter than one watch (about 5 minutes), so the watch's rate over
hours is also given, computed from its protocol (``watch_per_minute_over_hours``). Results:
``bench/results/requests-<UTC>.json`` and ``requests-latest.json``. About 6 minutes on 2
cores. Nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # run as a script, this file would hide the ``requests`` library

import argparse
import json
import os
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.clients.change_watch import RESOURCES, WatchChangeLog
from guardian.clients.kube import Kube
from guardian.errors import KubernetesError
from guardian.planning.suspects import find_suspects
from guardian.testing.manifests import apply_manifests, service_account_client

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def lab(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(ROOT / "lab" / "lab"), *args], env=env, check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed: {done.stderr[-2000:]}")


class Counter:
    """guardian's FlowSchema's counters, read from the API server's /metrics."""

    def __init__(self, directory: Path, port: int) -> None:
        self.url = f"https://127.0.0.1:{port}/metrics"
        self.token = (directory / "pki" / "admin.token").read_text().strip()
        self.ca = str(directory / "pki" / "ca.crt")

    def read(self) -> dict[str, float]:
        context = ssl.create_default_context(cafile=self.ca)
        request = urllib.request.Request(
            self.url, headers={"Authorization": f"Bearer {self.token}"}
        )
        for _ in range(10):  # /metrics itself may be throttled during the burn
            try:
                with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                    return self._parse(answer.read().decode())
            except OSError:  # URLError, HTTPError (a 429) and timeouts
                time.sleep(1)
        raise SystemExit(f"{self.url}: no answer")

    @staticmethod
    def _parse(text: str) -> dict[str, float]:
        totals = {"dispatched": 0.0, "rejected": 0.0, "rejected_all": 0.0}
        for line in text.splitlines():
            value = (
                float(line.rsplit(" ", 1)[1]) if line.startswith("apiserver_flowcontrol_") else 0
            )
            ours = 'flow_schema="guardian"' in line
            if line.startswith("apiserver_flowcontrol_dispatched_requests_total{") and ours:
                totals["dispatched"] += value
            elif line.startswith("apiserver_flowcontrol_rejected_requests_total{"):
                totals["rejected_all"] += value
                totals["rejected"] += value if ours else 0.0
        return totals


def phase(
    name: str, counter: Counter, kube: Kube, seconds: float, work: Callable[[float], None]
) -> dict[str, Any]:
    """Run ``work(deadline)`` and count what the API server dispatched for guardian."""
    before, sent = counter.read(), kube.requests
    began = time.monotonic()
    work(began + seconds)
    elapsed = time.monotonic() - began
    time.sleep(1)
    after = counter.read()
    dispatched = after["dispatched"] - before["dispatched"]
    return {
        "phase": name,
        "seconds": round(elapsed, 1),
        "apf_dispatched": dispatched,
        "apf_rejected": after["rejected"] - before["rejected"],
        "apf_rejected_all_clients": after["rejected_all"] - before["rejected_all"],
        "client_requests": kube.requests - sent,
        "per_minute": round(60 * dispatched / elapsed, 2),
        "per_second": round(dispatched / elapsed, 3),
    }


def suspects_every_30s(kube: Kube) -> Callable[[float], None]:
    def work(deadline: float) -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                find_suspects(kube, datetime.now(UTC), timedelta(hours=1))
            except KubernetesError as exc:
                print(f"suspects: {exc.message}", file=sys.stderr)
            time.sleep(
                max(0.0, min(30 - (time.monotonic() - started), deadline - time.monotonic()))
            )

    return work


def watching(log: WatchChangeLog) -> Callable[[float], None]:
    def work(deadline: float) -> None:
        time.sleep(max(0.0, deadline - time.monotonic()))
        log.stop()

    return work


def started_log(counter: Counter, kube: Kube) -> tuple[WatchChangeLog, dict[str, Any]]:
    """A started change log, once synced, and what its start cost."""
    before, sent = counter.read(), kube.requests
    log = WatchChangeLog(kube, cluster="lab").start()
    deadline = time.monotonic() + 120
    while not log.synced and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    after = counter.read()
    return log, {
        "apf_dispatched": after["dispatched"] - before["dispatched"],
        "client_requests": kube.requests - sent,
        "synced": log.synced,
    }


def burning(directory: Path, env: dict[str, str], nodes: int) -> None:
    lab("load", "--filler-pods", "300", env=env)
    admin = Kube.from_kubeconfig(str(directory / "kubeconfig"), qps=20, burst=20)
    path = "/apis/apps/v1/namespaces/telemetry/daemonsets/telemetry-agent"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if admin.get(path).get("status", {}).get("numberAvailable", 0) >= nodes // 2:
                return
        except KubernetesError:
            pass
        time.sleep(2)


def run(nodes: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="guardian-requests-") as tmp:
        env = {**os.environ, "GUARDIAN_LAB_DIR": tmp}
        directory = Path(tmp)
        lab("up", "--nodes", str(nodes), env=env)
        try:
            port = json.loads((directory / "state.json").read_text())["ports"]["kube-apiserver"]
            admin = Kube.from_kubeconfig(str(directory / "kubeconfig"), qps=50, burst=50)
            apply_manifests(admin, ROOT / "deploy" / "rbac" / "guardian-rbac.yaml")
            apply_manifests(admin, ROOT / "deploy" / "apf" / "guardian-apf.yaml")
            kube = service_account_client(
                admin, f"https://127.0.0.1:{port}", str(directory / "pki" / "ca.crt")
            )
            counter = Counter(directory, port)
            phases, starts = [], {}
            for state in ("steady", "burn"):
                if state == "burn":
                    burning(directory, env, nodes)
                phases.append(
                    phase(f"{state}, suspects", counter, kube, seconds, suspects_every_30s(kube))
                )
                log, starts[state] = started_log(counter, kube)
                phases.append(phase(f"{state}, watch", counter, kube, seconds, watching(log)))
                starts[state]["stats"] = log.totals()
        finally:
            lab("down", env=env)
    return report(nodes, seconds, phases, starts)


def watch_rate(starts: dict[str, Any]) -> float:
    """The watch's requests per minute over hours, from its protocol rather than measured
    (a phase is shorter than one watch): every watched resource opens a WATCH every
    ``timeoutSeconds`` (300 s on average), and Argo Rollouts' missing CRD costs one
    discovery GET every 10 minutes."""
    watched = int(starts["steady"]["stats"]["lists"])
    missing = len(RESOURCES) - watched
    return round(watched * 60 / 300 + missing * 60 / 600, 2)


def report(
    nodes: int, seconds: float, phases: list[dict[str, Any]], starts: dict[str, Any]
) -> dict[str, Any]:
    by = {p["phase"]: p for p in phases}

    def ratio(state: str) -> float | None:
        lists = by[f"{state}, suspects"]["per_second"]
        return None if not lists else round(by[f"{state}, watch"]["per_second"] / lists, 3)

    return {
        "benchmark": "requests",
        "at": datetime.now(UTC).isoformat(),
        "nodes": nodes,
        "phase_seconds": seconds,
        "phases": phases,
        "watch_start": starts,
        "ratio_watch_vs_suspects": {"steady": ratio("steady"), "burn": ratio("burn")},
        "watch_per_minute_over_hours": watch_rate(starts),
        "ratio_over_hours": {
            state: round(watch_rate(starts) / by[f"{state}, suspects"]["per_minute"], 3)
            if by[f"{state}, suspects"]["per_minute"]
            else None
            for state in ("steady", "burn")
        },
        "goal_per_second": 0.5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    result = run(args.nodes, args.seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"requests-{stamp}.json", "requests-latest.json"):
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    for entry in result["phases"]:
        print(
            f"{entry['phase']:<20} {entry['per_minute']:>8} req/min "
            f"{entry['per_second']:>7} req/s  "
            f"(client {entry['client_requests']}, rejected {entry['apf_rejected']})"
        )
    print(f"watch start: {result['watch_start']}")
    print(f"ratio watch / suspects: {result['ratio_watch_vs_suspects']}")
    print(f"watch over hours (from its protocol): {result['watch_per_minute_over_hours']} req/min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
