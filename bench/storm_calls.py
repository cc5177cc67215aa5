"""Benchmark: guardian's own reads while the storm saturates the API server, against the same
reads from an ordinary service account.

Starts a lab (``lab/lab up``, 500 nodes by default, ``--nodes``), applies ``deploy/rbac`` and
``deploy/apf`` (guardian's FlowSchema ``guardian``, precedence 250, and its priority level
``guardian``: 10 nominal shares, none lent, for the service account ``guardian/guardian``),
and makes an ordinary service account ``bench/ordinary`` bound to the same ClusterRole
``guardian``: same rights, no FlowSchema of its own (it falls in ``service-accounts``, priority
level ``workload-low``, like the storm's agents). Two callers, one per identity, each send
``READS`` in turn at ``--rate`` (5/s, guardian's client QPS), one at a time, each as one raw
HTTP request with a bound token (no retry, so every 429 counts): the reads guardian's
planning and actions make during an incident (a page of nodes, the pods of a node, the DaemonSet and
its pods, the workloads and revisions the suspects and the change guard list, its
FlowSchema; the DaemonSet answers 404 in the calm phase, before ``lab load`` makes it).
First ``--calm`` seconds (30) without load, then ``lab load --filler-pods 300`` (its rate
shrunk to ``--max-qps`` LISTs per second when given), and once its agents' requests are being
rejected (APF's rejected count for ``service-accounts`` grows), ``--seconds`` (60) during the
storm, both callers at once.

Per identity and phase: requests, answers by code, rejected (429), failed (timeouts, resets),
latency p50, p99 and max of every request (a rejected one included), and the FlowSchema and
priority level the API server put it in (its ``X-Kubernetes-PF-*-UID`` answer headers); the
ratios ordinary / guardian; the storm's agents' answers over the same window and their rate
(the load log); the concurrency limits of the two priority levels
(``apiserver_flowcontrol_*_limit_seats``); the cores each of the lab's processes and the
whole machine used during the storm (``/proc``); the mean queue wait and execution APF
measured in guardian's priority level meanwhile.
Goal: guardian 0 rejected, p99 under 1 s. Results:
``bench/results/storm_calls-<UTC>.json`` and ``storm_calls-latest.json``. About 5 minutes on
2 cores; run it alone (no other lab or heavy work beside it). Nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # run as a script, bench/requests.py would hide the ``requests`` library

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
DS = "/apis/apps/v1/namespaces/telemetry/daemonsets/telemetry-agent"
READS: list[tuple[str, str, dict[str, str], str]] = [
    ("nodes", "/api/v1/nodes", {"limit": "500"}, "application/json"),
    (
        "pods of a node",
        "/api/v1/pods",
        {"fieldSelector": "spec.nodeName=kwok-node-0", "limit": "500"},
        "application/json",
    ),
    ("the DaemonSet", DS, {}, "application/json"),
    (
        "its pods",
        "/api/v1/namespaces/telemetry/pods",
        {"labelSelector": "app=telemetry-agent", "limit": "500"},
        "application/json",
    ),
    ("daemonsets", "/apis/apps/v1/daemonsets", {"limit": "500"}, "application/json"),
    ("replicasets (metadata)", "/apis/apps/v1/replicasets", {"limit": "500"}, METADATA),
    ("controllerrevisions (metadata)", "/apis/apps/v1/controllerrevisions", {}, METADATA),
    (
        "its FlowSchema",
        "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/guardian",
        {},
        "application/json",
    ),
]
"""What guardian reads during an incident: ``shed_nodes`` (nodes, a node's pods),
``halt_change`` and ``touched`` (the DaemonSet, its pods by selector), ``suspects`` (workloads,
ReplicaSets and ControllerRevisions as metadata), ``throttle_client`` (FlowSchemas)."""


class Api:
    """The lab's API server as the admin (exempt from APF)."""

    def __init__(self, directory: Path) -> None:
        state = json.loads((directory / "state.json").read_text())
        self.base = f"https://127.0.0.1:{state['ports']['kube-apiserver']}"
        self.ca = str(directory / "pki" / "ca.crt")
        self.session = requests.Session()
        token = (directory / "pki" / "admin.token").read_text().strip()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, self.base + path, json=body, verify=self.ca, timeout=60)

    def create(self, path: str, body: dict[str, Any]) -> None:
        answer = self.call("POST", path, body)
        if answer.status_code not in (201, 409):
            raise SystemExit(f"POST {path}: HTTP {answer.status_code} {answer.text[:300]}")

    def token(self, namespace: str, name: str) -> str:
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        answer = self.call("POST", path, {"spec": {"expirationSeconds": 7200}})
        answer.raise_for_status()
        return str(answer.json()["status"]["token"])

    def metrics(self) -> list[Sample]:
        """The API server's /metrics, read and parsed once for every reader below."""
        return [
            sample
            for family in text_string_to_metric_families(self.call("GET", "/metrics").text)
            for sample in family.samples
        ]

    @staticmethod
    def seats(metrics: list[Sample]) -> dict[str, dict[str, float]]:
        """Each priority level's nominal and current concurrency limits, in seats."""
        found: dict[str, dict[str, float]] = {}
        for s in metrics:
            for metric in ("nominal_limit_seats", "current_limit_seats"):
                if s.name == f"apiserver_flowcontrol_{metric}":
                    found.setdefault(s.labels["priority_level"], {})[metric] = float(s.value)
        return found

    @staticmethod
    def apf_seconds(metrics: list[Sample], level: str) -> dict[str, float]:
        """Sums and counts of APF's queue wait and execution histograms of ``level``, so far
        (``apiserver_flowcontrol_request_wait_duration_seconds``, ``..._execution_seconds``)."""
        kinds = {
            "apiserver_flowcontrol_request_wait_duration_seconds": "wait",
            "apiserver_flowcontrol_request_execution_seconds": "execution",
        }
        found: dict[str, float] = {}
        for s in metrics:
            histogram, _, part = s.name.rpartition("_")
            wanted = histogram in kinds and part in ("sum", "count")
            if wanted and s.labels.get("priority_level") == level:
                key = f"{kinds[histogram]}_{part}"
                found[key] = found.get(key, 0.0) + s.value
        return found

    @staticmethod
    def rejected(metrics: list[Sample]) -> dict[str, float]:
        """APF's rejected requests so far, by FlowSchema (from /metrics)."""
        totals: dict[str, float] = {}
        for s in metrics:
            if s.name == "apiserver_flowcontrol_rejected_requests_total":
                schema = s.labels["flow_schema"]
                totals[schema] = totals.get(schema, 0.0) + s.value
        return totals


def _apply(api: Api, path: Path) -> None:
    import yaml  # the bench's only YAML: guardian's manifests

    collections = {
        "Namespace": "/api/v1/namespaces",
        "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        "FlowSchema": "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
        "PriorityLevelConfiguration": (
            "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations"
        ),
    }
    for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
        namespace = doc["metadata"].get("namespace", "")
        api.create(collections[doc["kind"]].format(ns=namespace), doc)


def identities(api: Api) -> dict[str, str]:
    """Bound tokens of guardian's service account and of an ordinary one with its rights."""
    _apply(api, ROOT / "deploy" / "rbac" / "guardian-rbac.yaml")
    _apply(api, ROOT / "deploy" / "apf" / "guardian-apf.yaml")
    api.create("/api/v1/namespaces", {"metadata": {"name": "bench"}})
    api.create("/api/v1/namespaces/bench/serviceaccounts", {"metadata": {"name": "ordinary"}})
    api.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": "bench-ordinary-as-guardian"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "guardian",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "ordinary", "namespace": "bench"}],
        },
    )
    return {
        "guardian": api.token("guardian", "guardian"),
        "ordinary": api.token("bench", "ordinary"),
    }


def caller(api: Api, token: str, seconds: float, rate: float, out: list[dict[str, Any]]) -> None:
    """``READS`` in turn, one at a time, at most ``rate`` per second, for ``seconds``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    began = time.monotonic()
    at, index = began, 0
    while time.monotonic() - began < seconds:
        time.sleep(max(0.0, at - time.monotonic()))
        name, path, params, accept = READS[index % len(READS)]
        index += 1
        t0 = time.monotonic()
        try:
            answer = session.get(
                api.base + path,
                params=params,
                headers={"Accept": accept},
                verify=api.ca,
                timeout=30,
            )
            answer.content  # noqa: B018  read the whole body, as guardian's client does
            code = str(answer.status_code)
            schema = answer.headers.get("X-Kubernetes-PF-FlowSchema-UID", "")
            level = answer.headers.get("X-Kubernetes-PF-PriorityLevel-UID", "")
        except requests.RequestException as exc:
            code, schema, level = type(exc).__name__, "", ""
        out.append(
            {
                "read": name,
                "code": code,
                "seconds": time.monotonic() - t0,
                "fs": schema,
                "pl": level,
            }
        )
        at = max(at + 1 / rate, time.monotonic())


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(calls: list[dict[str, Any]], names: dict[str, str]) -> dict[str, Any]:
    codes: dict[str, int] = {}
    for call in calls:
        codes[call["code"]] = codes.get(call["code"], 0) + 1
    seconds = [c["seconds"] for c in calls]
    return {
        "requests": len(calls),
        "codes": codes,
        "rejected": codes.get("429", 0),
        "failed": sum(n for code, n in codes.items() if not code.isdigit()),
        "p50_seconds": percentile(seconds, 0.5),
        "p99_seconds": percentile(seconds, 0.99),
        "max_seconds": round(max(seconds), 3) if seconds else None,
        "flow_schemas": sorted({names.get(c["fs"], c["fs"]) for c in calls if c["fs"]}),
        "priority_levels": sorted({names.get(c["pl"], c["pl"]) for c in calls if c["pl"]}),
        "slowest_reads": sorted(
            {
                c["read"]: round(c["seconds"], 3) for c in sorted(calls, key=lambda c: c["seconds"])
            }.items(),
            key=lambda kv: -kv[1],
        )[:3],
    }


def both(api: Api, tokens: dict[str, str], seconds: float, rate: float) -> dict[str, Any]:
    calls: dict[str, list[dict[str, Any]]] = {who: [] for who in tokens}
    threads = [
        threading.Thread(target=caller, args=(api, token, seconds, rate, calls[who]))
        for who, token in tokens.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = uid_names(api)
    return {who: summary(found, names) for who, found in calls.items()}


def uid_names(api: Api) -> dict[str, str]:
    names = {}
    for kind in ("flowschemas", "prioritylevelconfigurations"):
        items = api.call("GET", f"/apis/flowcontrol.apiserver.k8s.io/v1/{kind}").json()["items"]
        names.update({i["metadata"]["uid"]: i["metadata"]["name"] for i in items})
    return names


def saturated(api: Api, timeout: float = 240) -> float:
    """Seconds until the storm's agents are being rejected (``service-accounts`` grows by 50
    in 5 s); the timeout's when they never are."""
    began = time.monotonic()
    before = api.rejected(api.metrics()).get("service-accounts", 0.0)
    while time.monotonic() - began < timeout:
        time.sleep(5)
        now = api.rejected(api.metrics()).get("service-accounts", 0.0)
        if now - before >= 50:
            return round(time.monotonic() - began, 1)
        before = now
    return round(timeout, 1)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used (``/proc/PID/stat``), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cores(directory: Path, measure: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """``measure()``, and the cores each of the lab's processes used meanwhile (its CPU
    seconds over the wall seconds), the machine's total beside them."""
    pids = json.loads((directory / "state.json").read_text())["pids"]
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    total = _machine_cpu()
    began = time.monotonic()
    result = measure()
    wall = time.monotonic() - began
    used = {  # 0 for a process that ended meanwhile
        name: round(max(0.0, cpu_seconds(pid) - before[name]) / wall, 2)
        for name, pid in pids.items()
    }
    used = dict(sorted(used.items(), key=lambda kv: -kv[1]))
    used["machine (all processes)"] = round((_machine_cpu() - total) / wall, 2)
    return result, used


def _machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``: all but idle and iowait)."""
    # user nice system idle iowait irq softirq steal (guest and guest_nice are in user, nice)
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def run(
    nodes: int, calm: float, seconds: float, rate: float, max_qps: float | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="guardian-storm-calls-") as tmp:
        env = {**os.environ, "GUARDIAN_LAB_DIR": tmp}
        directory = Path(tmp)
        lab("up", "--nodes", str(nodes), env=env)
        try:
            api = Api(directory)
            tokens = identities(api)
            phases = {"calm": both(api, tokens, calm, rate)}
            shrunk = ["--max-qps", f"{max_qps:g}"] if max_qps is not None else []
            lab("load", "--filler-pods", "300", *shrunk, env=env)
            waited = saturated(api)
            log = directory / "logs" / "load.log"
            offset = log.stat().st_size
            metrics = api.metrics()
            before, apf_before = api.rejected(metrics), api.apf_seconds(metrics, "guardian")
            phases["storm"], storm_cores = cores(
                directory, lambda: both(api, tokens, seconds, rate)
            )
            metrics = api.metrics()
            after, apf_after = api.rejected(metrics), api.apf_seconds(metrics, "guardian")
            seats = api.seats(metrics)
            agents = [
                json.loads(line)
                for line in log.read_bytes()[offset:].decode().splitlines()
                if line.startswith("{")
            ]
            lab("load", "--stop", env=env)
        finally:
            lab("down", env=env)
    storm = phases["storm"]
    return {
        "benchmark": "storm_calls",
        "at": datetime.now(UTC).isoformat(),
        "nodes": nodes,
        "rate_per_identity": rate,
        "calm_seconds": calm,
        "storm_seconds": seconds,
        "storm_max_qps": max_qps,  # None: lab load's default
        "storm_saturated_after_seconds": waited,
        "phases": phases,
        "apf_rejected_during_storm": {
            schema: after[schema] - before.get(schema, 0.0)
            for schema in after
            if after[schema] - before.get(schema, 0.0)
        },
        "storm_agents": _agents(agents, seconds),
        "cores_during_storm": storm_cores,
        "guardian_level_mean_seconds_during_storm": _means(apf_before, apf_after),
        "machine_cores": os.cpu_count(),
        "seats_after_storm": {
            level: seats[level] for level in ("guardian", "workload-low") if level in seats
        },
        "ratio_ordinary_vs_guardian": {
            "p99": ratio(storm["ordinary"]["p99_seconds"], storm["guardian"]["p99_seconds"]),
            "rejected": ratio(storm["ordinary"]["rejected"], storm["guardian"]["rejected"])
            if storm["guardian"]["rejected"]
            else None,
        },
        "goal": {"guardian_rejected": 0, "guardian_p99_seconds_under": 1.0},
        "goal_met": storm["guardian"]["rejected"] == 0
        and (storm["guardian"]["p99_seconds"] or 99) < 1.0,
    }


def _means(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Mean queue wait and mean execution of the requests APF finished meanwhile."""
    means: dict[str, float | None] = {}
    for kind in ("wait", "execution"):
        count = after.get(f"{kind}_count", 0.0) - before.get(f"{kind}_count", 0.0)
        total = after.get(f"{kind}_sum", 0.0) - before.get(f"{kind}_sum", 0.0)
        means[f"{kind}_in_queue" if kind == "wait" else kind] = (
            round(total / count, 3) if count else None
        )
    return means


def _agents(lines: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The storm's agents from the load log's reports read during the storm. Each report
    counts the answers since the one before, so they cover from one interval before the first
    report (``t``) to the last; with one report or none, the storm's ``seconds``."""
    codes: dict[str, int] = {}
    for line in lines:
        for code, n in line.get("codes", {}).items():
            codes[code] = codes.get(code, 0) + n
    last = lines[-1] if lines else {}
    times = [float(line["t"]) for line in lines if "t" in line]
    span = seconds
    if len(times) >= 2 and times[-1] > times[0]:
        span = (times[-1] - times[0]) * len(times) / (len(times) - 1)
    return {
        "agents": last.get("running_agents"),
        "per_agent_qps": last.get("per_agent_qps"),
        "target_qps": last.get("target_qps"),
        "codes": codes,
        "answers_per_second": round(sum(codes.values()) / span, 1) if span > 0 else None,
        "rejected_share": round(codes.get("429", 0) / sum(codes.values()), 3) if codes else None,
    }


def lab(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(ROOT / "lab" / "lab"), *args], env=env, check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed: {done.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--calm", type=float, default=30, help="seconds without load (30)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds in the storm (60)")
    parser.add_argument("--rate", type=float, default=5, help="reads per second per identity")
    parser.add_argument(
        "--max-qps",
        type=float,
        help="the storm's LISTs per second, all agents together (default: lab load's)",
    )
    args = parser.parse_args()
    result = run(args.nodes, args.calm, args.seconds, args.rate, args.max_qps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"storm_calls-{stamp}.json", "storm_calls-latest.json"):
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    for phase, by in result["phases"].items():
        for who, s in by.items():
            print(
                f"{phase:<6} {who:<9} {s['requests']:>4} reads, {s['rejected']:>3} rejected, "
                f"{s['failed']:>3} failed, p50 {s['p50_seconds']}s p99 {s['p99_seconds']}s "
                f"({', '.join(s['flow_schemas'])} / {', '.join(s['priority_levels'])})"
            )
    print(f"ratio ordinary / guardian: {result['ratio_ordinary_vs_guardian']}")
    print(f"cores used during the storm: {result['cores_during_storm']}")
    print(f"guardian's level, mean seconds: {result['guardian_level_mean_seconds_during_storm']}")
    print(f"storm's agents: {result['storm_agents']}; goal met: {result['goal_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
