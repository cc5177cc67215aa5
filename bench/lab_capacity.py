"""Benchmark: what the lab costs on this machine, by node count (50, 500 and 2,000 by default).

For each size, ``lab/lab up --nodes N`` in a temporary directory, then: the time to Ready (from
``lab up``'s own progress lines: when the API server answered, when all N nodes were Ready,
the whole command), the idle CPU of each component over ``--idle`` seconds (60; utime+stime
from ``/proc/PID/stat``, in cores: 1.0 is one core busy), its resident memory (``VmRSS``,
the largest of the samples taken every 5 s), and the Leases KWOK renews (every node's, their
oldest ``renewTime``). Nothing runs on the lab meanwhile (no ``lab load``). Then ``lab down``,
checking every PID gone. Results: ``bench/results/lab_capacity-<UTC>.json`` and
``lab_capacity-latest.json``. About 5 minutes on 2 cores; run it alone (no other lab
or heavy work beside it). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TICKS = os.sysconf("SC_CLK_TCK")
PROGRESS = re.compile(r"lab up: (.+) \((\d+(?:\.\d+)?)s\)")


def _lab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(ROOT / "lab" / "lab"), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (and its reaped children), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICKS


def running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (a stopped lab's processes are reparented;
    until reaped they stay as zombies)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def leases(directory: Path, port: int) -> dict[str, Any]:
    """How many node Leases there are and how old the oldest renewal is."""
    token = (directory / "pki" / "admin.token").read_text().strip()
    url = f"https://127.0.0.1:{port}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    context = ssl.create_default_context(cafile=str(directory / "pki" / "ca.crt"))
    with urllib.request.urlopen(request, context=context, timeout=60) as answer:
        items = json.loads(answer.read())["items"]
    now = datetime.now(UTC)
    ages = [(now - datetime.fromisoformat(i["spec"]["renewTime"])).total_seconds() for i in items]
    return {"count": len(items), "oldest_renewal_seconds": round(max(ages, default=0.0), 1)}


def one(nodes: int, idle: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="guardian-capacity-") as tmp:
        env = {**os.environ, "GUARDIAN_LAB_DIR": tmp}
        began = time.monotonic()
        up = _lab("up", "--nodes", str(nodes), env=env)
        wall = time.monotonic() - began
        state = json.loads((Path(tmp) / "state.json").read_text())
        pids: dict[str, int] = state["pids"]
        try:
            progress = {m[1]: float(m[2]) for m in PROGRESS.finditer(up.stderr)}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            rss = dict.fromkeys(pids, 0.0)
            t0 = time.monotonic()
            while time.monotonic() - t0 < idle:
                time.sleep(min(5.0, max(0.0, idle - (time.monotonic() - t0))))
                rss = {name: max(rss[name], rss_mib(pid)) for name, pid in pids.items()}
            seconds = time.monotonic() - t0
            cores = {
                name: round((cpu_seconds(pid) - before[name]) / seconds, 3)
                for name, pid in pids.items()
            }
            heartbeats = leases(Path(tmp), state["ports"]["kube-apiserver"])
        finally:
            _lab("down", env=env)
        gone = not any(running(pid) for pid in pids.values())
    return {
        "nodes": nodes,
        "lab_up_seconds": round(wall, 1),
        "apiserver_ready_seconds": progress.get("kube-apiserver ready"),
        "nodes_ready_seconds": progress.get(f"{nodes} nodes ready"),
        "ready_after_apiserver_seconds": round(
            progress[f"{nodes} nodes ready"] - progress["kube-apiserver ready"], 1
        ),
        "progress": progress,
        "idle_seconds": round(seconds, 1),
        "idle_cpu_cores": cores,
        "idle_cpu_cores_total": round(sum(cores.values()), 3),
        "rss_mib": rss,
        "rss_mib_total": round(sum(rss.values()), 1),
        "leases": heartbeats,
        "everything_stopped": gone,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500,2000", help="node counts (default 50,500,2000)")
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle measured (60)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for nodes in sizes:
        rows.append(one(nodes, args.idle))
        row = rows[-1]
        print(
            f"{nodes:>5} nodes: lab up {row['lab_up_seconds']}s (nodes Ready "
            f"{row['ready_after_apiserver_seconds']}s after the API server), idle CPU "
            f"{row['idle_cpu_cores_total']} cores, RSS {row['rss_mib_total']} MiB",
            flush=True,
        )
    result = {
        "benchmark": "lab_capacity",
        "at": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "sizes": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"lab_capacity-{stamp}.json", "lab_capacity-latest.json"):
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
