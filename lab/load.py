"""``lab load``: the 2024-12-11 failure mode, a telemetry DaemonSet that overloads the API server.

``lab load`` creates ``--filler-pods`` filler pods (so that LISTs are expensive; a filler
Deployment an earlier ``lab load`` left is scaled to that number) and waits until their
Deployment has rolled out, then a ``telemetry-agent`` DaemonSet in namespace ``telemetry``
(its pods annotated ``lab.guardian.io/storm: "true"``) and a load process. The load process
(``agents``) runs one simulated node agent per node whose agent pod is Running with that
annotation, so the storm grows as the rollout spreads: each agent keeps an informer on nodes
(LIST, WATCH, re-LIST after a broken watch) and sends LISTs of its node's pods (field selector
``spec.nodeName``), every pod and every node, with and without ``resourceVersion=0``, at
``--per-pod-qps`` (all agents together at most ``--max-qps``: 2,000 agents are shrunk by rate),
authenticated as the agents' ServiceAccount ``telemetry/telemetry-agent`` (a bound token from
the TokenRequest API, as a pod would have). Halting the rollout (``OnDelete``) stops the storm
growing; rolling back, quarantining or deleting the DaemonSet removes storming pods and the
load falls. ``lab load --stop`` stops the load process and deletes the DaemonSet. Called by
``labctl``; tests: ``tests/test_lab.py``, ``tests/test_lab_scale.py``,
``tests/test_lab_agents.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import agents
import components
from agents import NAME, NAMESPACE, STORM
from state import LabState, alive


def add_parser(sub: Any) -> None:
    """Register ``lab load``."""
    load = sub.add_parser("load", help="roll out the telemetry DaemonSet that overloads the API")
    load.add_argument(
        "--per-pod-qps",
        type=float,
        default=20.0,
        help="LISTs per second per storming agent (default 20)",
    )
    load.add_argument(
        "--max-qps",
        type=float,
        default=2000.0,
        help="LISTs per second of all agents together at most: with more agents each sends "
        "less (default 2000: 100 agents at 20/s, 2,000 at 1/s)",
    )
    load.add_argument(
        "--filler-pods",
        type=int,
        default=600,
        help="pods created first so a LIST of all pods is expensive (default 600)",
    )
    load.add_argument(
        "--workers", type=int, default=400, help="concurrent LISTs at most (default 400)"
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
    _scale_filler(state, args.filler_pods)
    _settled(state, time.time(), timeout=60 + args.filler_pods / 5)
    _apply(state, objects[-1:])
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "run",
        str(state.directory),
        str(args.per_pod_qps),
        str(args.workers),
        str(args.max_qps),
    ]
    state.argv["load"] = argv
    components._spawn(state, "load")
    print(
        f"lab load: DaemonSet {NAMESPACE}/{NAME} rolling out; load process pid "
        f"{state.pids['load']}, {args.per_pod_qps}/s per storming agent "
        f"({args.max_qps:g}/s in all at most) "
        f"(log: {state.directory / 'logs' / 'load.log'})",
        file=sys.stderr,
    )
    return 0


def _stop(state: LabState) -> int:
    components.stop_one(state, "load")
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
                        "metadata": {"labels": {"app": NAME}, "annotations": {STORM: "true"}},
                        "spec": {**pod_spec, "serviceAccountName": NAME},
                    },
                },
            },
        ),
    ]


def _scale_filler(state: LabState, replicas: int) -> None:
    """Give a filler Deployment an earlier ``lab load`` left behind ``replicas`` pods (a scale,
    which is not a change of its pod template)."""
    scale = "/apis/apps/v1/namespaces/default/deployments/filler/scale"
    answer = components.api(state, "GET", scale)
    answer.raise_for_status()
    body = answer.json()
    if body.get("spec", {}).get("replicas") == replicas:
        return
    body["spec"] = {"replicas": replicas}
    put = components.api(state, "PUT", scale, json=body)
    if put.status_code != 200:
        raise SystemExit(f"lab load: PUT {scale}: HTTP {put.status_code} {put.text[:200]}")


def _settled(state: LabState, asked: float, timeout: float = 60) -> None:
    """Wait until the filler Deployment has rolled out (every replica updated and available,
    its generation observed) and a second has passed since its ReplicaSet was made.

    The filler is the workload that was there before the rollout: a change of its own still in
    flight when the DaemonSet starts would be a second suspect, and its revision must be older
    than the DaemonSet's (creation times have a resolution of one second)."""
    deployment = "/apis/apps/v1/namespaces/default/deployments/filler"
    sets = "/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dfiller"
    deadline = asked + timeout
    while time.time() < deadline:
        answer = components.api(state, "GET", deployment)
        if answer.status_code == 200 and _rolled_out(answer.json()):
            made = max(
                datetime.fromisoformat(i["metadata"]["creationTimestamp"]).timestamp()
                for i in components.api(state, "GET", sets).json()["items"]
            )
            time.sleep(max(0.0, made + 1.5 - time.time()))
            return
        time.sleep(0.5)
    raise SystemExit(
        f"lab load: the filler Deployment did not roll out within {timeout:.0f}s "
        "(kubectl -n default get deploy/filler; a smaller --filler-pods is quicker)"
    )


def _rolled_out(deployment: dict[str, Any]) -> bool:
    spec, status = deployment["spec"], deployment.get("status", {})
    want = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == want
        and status.get("availableReplicas") == want
        and status.get("replicas") == want
    )


def _apply(state: LabState, objects: list[tuple[str, dict[str, Any]]]) -> None:
    for path, body in objects:
        answer = components.api(state, "POST", path, json=body)
        if answer.status_code not in (201, 409):
            raise SystemExit(
                f"lab load: POST {path}: HTTP {answer.status_code} {answer.text[:200]}"
            )


def run(directory: Path, per_pod_qps: float, workers: int, max_qps: float) -> None:
    """The load process: the agents of ``agents``, until it is stopped."""
    state = LabState.load(directory)
    assert state is not None
    base = f"https://127.0.0.1:{state.ports['kube-apiserver']}"
    admin = (directory / "pki" / "admin.token").read_text().strip()
    settings = {"per_pod_qps": per_pod_qps, "max_qps": max_qps, "workers": float(workers)}
    asyncio.run(
        agents.main(base, admin, _agent_token(state), directory / "pki" / "ca.crt", settings)
    )


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


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "run":
    run(Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
