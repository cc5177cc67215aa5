"""``lab load``: the 2024-12-11 failure mode, a telemetry DaemonSet that overloads the API server.

``lab load`` creates filler pods (so that LISTs are expensive), a ``telemetry-agent``
DaemonSet in namespace ``telemetry`` and a load process. The load process follows which agent
pods are Running (a namespaced, label-selected LIST every 2 s) and, for each, sends
cluster-wide LISTs of pods and nodes without ``resourceVersion`` (served from etcd) at
``--per-pod-qps``, authenticated as the agents' ServiceAccount ``telemetry/telemetry-agent``
(a bound token from the TokenRequest API, as a pod would have). Pausing
the rollout, quarantining or deleting the DaemonSet removes Running agents and the load falls.
``lab load --stop`` stops the load process and deletes the DaemonSet.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

import components
from state import LabState, alive

NAMESPACE = "telemetry"
NAME = "telemetry-agent"


def add_parser(sub: Any) -> None:
    """Register ``lab load``."""
    load = sub.add_parser("load", help="roll out the telemetry DaemonSet that overloads the API")
    load.add_argument(
        "--per-pod-qps",
        type=float,
        default=20.0,
        help="cluster-wide LISTs per second per Running agent (default 20)",
    )
    load.add_argument(
        "--filler-pods",
        type=int,
        default=600,
        help="pods created first so a LIST of all pods is expensive (default 600)",
    )
    load.add_argument(
        "--workers", type=int, default=400, help="concurrent requests at most (default 400)"
    )
    load.add_argument("--stop", action="store_true", help="stop the load and delete the agents")


def command(args: argparse.Namespace, state: LabState) -> int:
    """Run ``lab load``."""
    if args.stop:
        return _stop(state)
    previous = state.pids.get("load")
    if previous is not None and alive(previous):
        components._terminate(previous)
    objects = _objects(args.filler_pods)
    _apply(state, objects[:-1])
    _settled(state, time.time())
    _apply(state, objects[-1:])
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "run",
        str(state.directory),
        str(args.per_pod_qps),
        str(args.workers),
    ]
    state.argv["load"] = argv
    components._spawn(state, "load")
    print(
        f"lab load: DaemonSet {NAMESPACE}/{NAME} rolling out; load process pid "
        f"{state.pids['load']}, {args.per_pod_qps}/s per Running agent "
        f"(log: {state.directory / 'logs' / 'load.log'})",
        file=sys.stderr,
    )
    return 0


def _stop(state: LabState) -> int:
    pid = state.pids.pop("load", None)
    if pid is not None and alive(pid):
        components._terminate(pid)
    state.save()
    components.api(state, "DELETE", f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{NAME}")
    print("lab load: stopped the load and deleted the DaemonSet", file=sys.stderr)
    return 0


def _objects(filler: int) -> list[tuple[str, dict[str, Any]]]:
    pod_spec = {
        "containers": [{"name": "agent", "image": "registry.invalid/telemetry-agent:1.0"}],
        "tolerations": [{"operator": "Exists"}],
        "nodeSelector": {"type": "kwok"},
    }
    return [
        ("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}),
        (f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", {"metadata": {"name": NAME}}),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {
                "metadata": {"name": NAME},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["pods", "nodes"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "metadata": {"name": NAME},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": NAME,
                },
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
            },
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            {
                "metadata": {"name": "filler"},
                "spec": {
                    "replicas": filler,
                    "selector": {"matchLabels": {"app": "filler"}},
                    "template": {
                        "metadata": {"labels": {"app": "filler"}},
                        "spec": {
                            **pod_spec,
                            "containers": [{"name": "app", "image": "registry.invalid/app:1.0"}],
                        },
                    },
                },
            },
        ),
        (
            f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets",
            {
                "metadata": {"name": NAME, "labels": {"app": NAME}},
                "spec": {
                    "selector": {"matchLabels": {"app": NAME}},
                    "updateStrategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": "25%"},
                    },
                    "template": {
                        "metadata": {"labels": {"app": NAME}},
                        "spec": {**pod_spec, "serviceAccountName": NAME},
                    },
                },
            },
        ),
    ]


def _settled(state: LabState, asked: float, timeout: float = 60) -> None:
    """Wait until the filler's ReplicaSet exists and a second has passed since it was made.

    The filler is the workload that was there before the rollout: its revision must be older
    than the DaemonSet's (creation times have a resolution of one second), whatever the load
    on the machine, or suspects ranked by start time could not tell them apart."""
    path = "/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dfiller"
    deadline = asked + timeout
    while time.time() < deadline:
        answer = components.api(state, "GET", path)
        if answer.status_code == 200 and answer.json().get("items"):
            made = max(
                datetime.fromisoformat(i["metadata"]["creationTimestamp"]).timestamp()
                for i in answer.json()["items"]
            )
            time.sleep(max(0.0, made + 1.5 - time.time()))
            return
        time.sleep(0.2)
    raise SystemExit(f"lab load: the filler's ReplicaSet did not appear within {timeout:.0f}s")


def _apply(state: LabState, objects: list[tuple[str, dict[str, Any]]]) -> None:
    for path, body in objects:
        answer = components.api(state, "POST", path, json=body)
        if answer.status_code not in (201, 409):
            raise SystemExit(
                f"lab load: POST {path}: HTTP {answer.status_code} {answer.text[:200]}"
            )


class Counters:
    """What the load process did since the last report."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: dict[str, int] = {}
        self.seconds = 0.0

    def add(self, code: str, seconds: float) -> None:
        with self.lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            self.seconds += seconds

    def take(self) -> tuple[dict[str, int], float]:
        with self.lock:
            codes, seconds = self.codes, self.seconds
            self.codes, self.seconds = {}, 0.0
        return codes, seconds


def run(directory: Path, per_pod_qps: float, workers: int) -> None:
    """The load process: agents Running × per-pod QPS expensive LISTs per second."""
    state = LabState.load(directory)
    assert state is not None
    base = f"https://127.0.0.1:{state.ports['kube-apiserver']}"
    agent = requests.Session()
    agent.headers["Authorization"] = f"Bearer {_agent_token(state)}"
    ca = str(directory / "pki" / "ca.crt")  # per request: $REQUESTS_CA_BUNDLE would win
    counters = Counters()
    running = 0
    last_check = last_report = 0.0
    sent = 0
    pool = ThreadPoolExecutor(max_workers=workers)
    inflight = threading.Semaphore(workers)
    started = time.monotonic()

    def one(path: str) -> None:
        t0 = time.monotonic()
        try:
            code = str(agent.get(base + path, timeout=30, verify=ca).status_code)
        except requests.RequestException as exc:
            code = type(exc).__name__
        finally:
            inflight.release()
        counters.add(code, time.monotonic() - t0)

    credit = 0.0
    previous = time.monotonic()
    while True:
        now = time.monotonic()
        if now - last_check >= 2:
            running = _running_agents(state)
            last_check = now
        if now - last_report >= 5:
            codes, seconds = counters.take()
            done = sum(codes.values())
            print(
                json.dumps(
                    {
                        "t": round(now - started, 1),
                        "running_agents": running,
                        "target_qps": running * per_pod_qps,
                        "codes": codes,
                        "mean_seconds": round(seconds / done, 3) if done else None,
                    }
                ),
                flush=True,
            )
            last_report = now
        credit = min(credit + (now - previous) * running * per_pod_qps, float(workers))
        previous = now
        while credit >= 1 and inflight.acquire(blocking=False):
            pool.submit(one, "/api/v1/pods" if sent % 2 == 0 else "/api/v1/nodes")
            sent += 1
            credit -= 1
        time.sleep(0.01)


def _agent_token(state: LabState) -> str:
    """A bound token of the agents' ServiceAccount (what each agent pod would mount)."""
    answer = components.api(
        state,
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{NAME}/token",
        json={"spec": {"expirationSeconds": 86400}},
    )
    answer.raise_for_status()
    return str(answer.json()["status"]["token"])


def _running_agents(state: LabState) -> int:
    try:
        answer = components.api(
            state, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3D{NAME}"
        )
        pods = answer.json().get("items", [])
    except (requests.RequestException, ValueError):
        return 0
    return sum(1 for pod in pods if pod.get("status", {}).get("phase") == "Running")


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "run":
    run(Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
