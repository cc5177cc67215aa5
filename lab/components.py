"""The lab's processes: command lines, start order, readiness checks, stop.

Called by ``labctl``. Every process binds 127.0.0.1 on a free port, runs in its own session
(it outlives ``lab up``) and logs to ``logs/<name>.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
import urllib3
import yaml

import nodes
from pki import Pki
from state import LabError, LabState, alive

urllib3.disable_warnings()

ORDER = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "coredns",
    "kube-state-metrics",
    "prometheus",
]
FAULTABLE = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "coredns",
    "kube-state-metrics",
    "prometheus",
)
KWOK_MODULE = "sigs.k8s.io/kwok@v0.8.0"
UNUSED_METRICS = (
    "etcd_request_duration_seconds",
    "apiserver_request_body_size_bytes",
    "apiserver_watch_list_duration_seconds",
    "apiserver_watch_cache_read_wait_seconds",
    "apiserver_watch_events_sizes",
    "apiserver_response_sizes",
    "apiserver_admission_controller_admission_duration_seconds",
)
"""Histograms nothing in the lab reads, left out of the API server's /metrics: 7,600 of its
17,300 series with 20 nodes. Prometheus scrapes it every 3 s; on 2 busy cores a 2.3 MB answer
took up to 1.1 s to scrape during the storm, and a scrape that times out marks every
API-server series stale."""
APISERVER_SCRAPE = "3s"
"""The API server's scrape interval and timeout (the other targets: 1 s). A short window of
10 s still holds 3 samples, 2 after one failed scrape."""
STAGES = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
]

KWOK_OPTIONS = """apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  nodePlayStageParallelism: 16
  podPlayStageParallelism: 16
  nodeLeaseParallelism: 16
"""
"""KWOK's workers (4 of each by default): 2,000 nodes initialised, their pods made Running and
their Leases renewed every 10 s (a 40 s lease, like a kubelet's) without a backlog."""


class NotReady(Exception):
    """A component did not become ready in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_all(state: LabState, pki: Pki, args: argparse.Namespace) -> None:
    """Start every component in order and wait for each to be ready."""
    names = [
        "etcd",
        "etcd-peer",
        "etcd-metrics",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "coredns",
        "coredns-metrics",
        "coredns-ready",
        "coredns-health",
        "kube-state-metrics",
        "kube-state-metrics-telemetry",
        "prometheus",
    ]
    state.ports = {name: free_port() for name in names}
    state.save()
    d = state.directory
    _write_kubeconfig(state, pki)
    _write_corefile(state)
    _write_prometheus_config(state, pki)
    _write_kwok_stages(state)
    _write_guardian_config(state)
    began = time.monotonic()

    def ready(what: str) -> None:
        print(f"lab up: {what} ({time.monotonic() - began:.1f}s)", file=sys.stderr, flush=True)

    for name in ORDER:
        state.argv[name] = _argv(name, state, pki, args)
        _spawn(state, name)
        _wait(name, lambda n=name: answers(state, n), timeout=60)
        ready(f"{name} ready")
        if name == "kube-apiserver":
            _create_nodes(state, pki)
    _wait("nodes", lambda: _nodes_ready(state) >= state.nodes, timeout=60 + state.nodes / 2)
    ready(f"{state.nodes} nodes ready")
    _wait("prometheus targets", lambda: _targets_up(state), timeout=60)
    ready("every Prometheus target up")
    del d


def _argv(name: str, state: LabState, pki: Pki, args: argparse.Namespace) -> list[str]:
    b, d, p = Path(state.bin), state.directory, state.ports
    kubeconfig = str(d / "kubeconfig")
    if name == "etcd":
        return [
            str(b / "etcd"),
            "--name=lab",
            f"--data-dir={d / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-cluster=lab=http://127.0.0.1:{p['etcd-peer']}",
            f"--listen-metrics-urls=http://127.0.0.1:{p['etcd-metrics']}",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]
    if name == "kube-apiserver":
        return [
            str(b / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p['kube-apiserver']}",
            f"--cert-dir={d / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={pki.tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=true",
            "--allow-privileged=true",
            f"--max-requests-inflight={args.max_requests_inflight}",
            f"--max-mutating-requests-inflight={args.max_mutating_requests_inflight}",
            f"--disabled-metrics={','.join(UNUSED_METRICS)}",
            "--v=1",
        ]
    if name in ("kube-controller-manager", "kube-scheduler"):
        common = [
            str(b / name),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p[name]}",
            "--leader-elect=false",
            "--v=1",
        ]
        if name == "kube-scheduler":
            return common
        return [
            *common,
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--controllers=*,-nodeipam",
            "--concurrent-daemonset-syncs=5",
        ]
    if name == "kwok":
        return [
            str(b / "kwok"),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{p['kwok']}",
            "--node-ip=10.0.0.1",
            "--cidr=10.1.0.0/16",
            "--node-lease-duration-seconds=40",
            f"--config={d / 'kwok-stages.yaml'}",
        ]
    if name == "coredns":
        _coredns_identity(state)
        return [str(b / "coredns"), "-conf", str(d / "Corefile"), "-dns.port", str(p["coredns"])]
    if name == "kube-state-metrics":
        return [
            str(b / f"kube-state-metrics-{_version('KSM_VERSION')}"),
            f"--kubeconfig={kubeconfig}",
            "--host=127.0.0.1",
            f"--port={p['kube-state-metrics']}",
            "--telemetry-host=127.0.0.1",
            f"--telemetry-port={p['kube-state-metrics-telemetry']}",
            "--resources=daemonsets,deployments,statefulsets",
        ]
    return [
        "prometheus",
        f"--config.file={d / 'prometheus.yml'}",
        f"--storage.tsdb.path={d / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{p['prometheus']}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]


def _version(key: str) -> str:
    """A pinned version from ``lab/versions.env`` (what ``lab/build.sh`` built)."""
    for line in (Path(__file__).resolve().parent / "versions.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(key)


def _spawn(state: LabState, name: str) -> None:
    log = (state.directory / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        state.argv[name],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=state.directory,
    )
    state.pids[name] = proc.pid
    state.save()


def restart(state: LabState, name: str) -> None:
    """Start ``name`` again with the command line it was first started with."""
    pid = state.pids.get(name)
    if pid is not None and alive(pid):
        _terminate(pid)
    _spawn(state, name)
    _wait(name, lambda: answers(state, name), timeout=60)


def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (requests.RequestException, OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise NotReady(f"{what} not ready after {timeout:.0f}s")


def api(state: LabState, method: str, path: str, **kwargs: object) -> requests.Response:
    """A call to the lab's API server as the admin user."""
    token = (state.directory / "pki" / "admin.token").read_text().strip()
    return requests.request(
        method,
        f"https://127.0.0.1:{state.ports['kube-apiserver']}{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(state.directory / "pki" / "ca.crt"),
        timeout=10,
        **kwargs,  # type: ignore[arg-type]
    )


def answers(state: LabState, name: str) -> bool:
    """True when ``name`` answers its health endpoint."""
    p = state.ports
    checks: dict[str, Callable[[], bool]] = {
        "etcd": lambda: _get(f"http://127.0.0.1:{p['etcd']}/health"),
        "kube-apiserver": lambda: api(state, "GET", "/readyz").status_code == 200,
        "kube-controller-manager": lambda: _get(
            f"https://127.0.0.1:{p['kube-controller-manager']}/healthz"
        ),
        "kube-scheduler": lambda: _get(f"https://127.0.0.1:{p['kube-scheduler']}/healthz"),
        "kwok": lambda: _get(f"http://127.0.0.1:{p['kwok']}/healthz"),
        "coredns": lambda: _get(f"http://127.0.0.1:{p['coredns-ready']}/ready"),
        "kube-state-metrics": lambda: _get(f"http://127.0.0.1:{p['kube-state-metrics']}/healthz"),
        "prometheus": lambda: _get(f"http://127.0.0.1:{p['prometheus']}/-/ready"),
    }
    try:
        return checks[name]()
    except (requests.RequestException, OSError):
        return False


def _get(url: str) -> bool:
    return requests.get(url, timeout=2, verify=False).status_code == 200


def _write_kubeconfig(state: LabState, pki: Pki) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "lab",
        "clusters": [
            {
                "name": "lab",
                "cluster": {
                    "server": f"https://127.0.0.1:{state.ports['kube-apiserver']}",
                    "certificate-authority": str(pki.ca_cert),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": pki.admin_token}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}],
    }
    _private(state.directory / "kubeconfig", yaml.safe_dump(doc))


DNS_TTL = 30
"""Seconds CoreDNS's answers live: the kubernetes plugin's record TTL and its cache's (``lab
dns start --ttl`` sets another)."""


def _private(path: Path, text: str) -> None:
    """Write a file that holds a token: readable by its owner only from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)  # a file that existed keeps its old mode through O_CREAT


def _write_corefile(state: LabState, ttl: int = DNS_TTL) -> None:
    """CoreDNS's config: the kubernetes plugin as CoreDNS's own identity (``coredns.kubeconfig``,
    see ``_coredns_identity``) with records of TTL ``ttl``, a cache as long, metrics."""
    p = state.ports
    (state.directory / "Corefile").write_text(f""".:{p["coredns"]} {{
    bind 127.0.0.1
    errors
    health 127.0.0.1:{p["coredns-health"]}
    ready 127.0.0.1:{p["coredns-ready"]}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {state.directory / "coredns.kubeconfig"} lab
        pods insecure
        ttl {ttl}
        fallthrough in-addr.arpa ip6.arpa
    }}
    prometheus 127.0.0.1:{p["coredns-metrics"]}
    cache {ttl}
}}
""")


COREDNS_SA = ("kube-system", "coredns")
COREDNS_RULES = [
    {
        "apiGroups": [""],
        "resources": ["endpoints", "services", "pods", "namespaces"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["list", "watch"],
    },
]


def _coredns_identity(state: LabState) -> None:
    """CoreDNS's own identity, as in a cluster: ServiceAccount kube-system/coredns with the
    rules of upstream's ``system:coredns`` ClusterRole and a bound token, written to
    ``coredns.kubeconfig``. Not the admin (group ``system:masters`` is APF-exempt): APF
    classifies CoreDNS like any kube-system service account (FlowSchema
    kube-system-service-accounts, priority level workload-high, a flow of its own), and
    ``lab dns start --shared-flow`` puts it in the storm's flow."""
    namespace, name = COREDNS_SA
    role = f"guardian-lab:{name}"
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    for path, body in [
        (f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}),
        (f"{rbac}/clusterroles", {"metadata": {"name": role}, "rules": COREDNS_RULES}),
        (
            f"{rbac}/clusterrolebindings",
            {
                "metadata": {"name": role},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [subject],
            },
        ),
    ]:
        answer = api(state, "POST", path, json=body)
        if answer.status_code not in (201, 409):
            raise NotReady(f"CoreDNS's identity: POST {path}: HTTP {answer.status_code}")
    answer = api(
        state,
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        json={"spec": {"expirationSeconds": 86400}},
    )
    if answer.status_code != 201:
        raise NotReady(f"CoreDNS's token: HTTP {answer.status_code}")
    kubeconfig = yaml.safe_load((state.directory / "kubeconfig").read_text())
    kubeconfig["users"] = [{"name": name, "user": {"token": answer.json()["status"]["token"]}}]
    kubeconfig["contexts"][0]["context"]["user"] = name
    _private(state.directory / "coredns.kubeconfig", yaml.safe_dump(kubeconfig))


def _write_prometheus_config(state: LabState, pki: Pki) -> None:
    p = state.ports

    def job(name: str, port: int, **extra: object) -> dict[str, object]:
        return {
            "job_name": name,
            "static_configs": [
                {"targets": [f"127.0.0.1:{port}"], "labels": {"cluster": state.name}}
            ],
            **extra,
        }

    doc = {
        "global": {
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"cluster": state.name},  # Thanos's sidecar requires one
        },
        "scrape_configs": [
            job(
                "apiserver",
                p["kube-apiserver"],
                scrape_interval=APISERVER_SCRAPE,
                scrape_timeout=APISERVER_SCRAPE,
                scheme="https",
                authorization={"credentials_file": str(pki.ca_cert.parent / "admin.token")},
                tls_config={"ca_file": str(pki.ca_cert)},
            ),
            job("coredns", p["coredns-metrics"]),
            job("kube-state-metrics", p["kube-state-metrics"], honor_labels=True),
            job("kwok", p["kwok"]),
            job("etcd", p["etcd-metrics"]),
            job("prometheus", p["prometheus"]),
        ],
    }
    (state.directory / "prometheus.yml").write_text(yaml.safe_dump(doc))


def _write_guardian_config(state: LabState) -> None:
    """A guardian config for the lab: its Prometheus, time-compressed windows (``lab-fast``),
    the mixin's latency SLOs, the overload-aware read SLO of ``config/slos.yaml`` (queue wait
    included, 429s bad), the 429 ratio and CoreDNS errors."""
    url = f"http://127.0.0.1:{state.ports['prometheus']}"
    (
        state.directory / "guardian.yaml"
    ).write_text(f"""# Written by lab up: guardian against the lab.
version: guardian/v1
prometheus: {{url: "{url}", timeout: 5s}}
evaluation: {{max_staleness: 15s}}
window_sets:
  lab-fast:   # minutes instead of days: same logic, time-compressed
    - {{severity: page, long: 2m, short: 10s, factor: 14.4}}
    - {{severity: ticket, long: 10m, short: 1m, factor: 3}}
slos:
  - name: apiserver-read-latency
    objective: 99
    period: 1h
    windows: lab-fast
    sli: {{apiserver_latency: {{verbs: read, selector: 'job="apiserver"'}}}}
  - name: apiserver-write-latency
    objective: 99
    period: 1h
    windows: lab-fast
    sli: {{apiserver_latency: {{verbs: write, selector: 'job="apiserver"'}}}}
  - name: apiserver-read-overload   # config/slos.yaml's, on lab-fast windows
    objective: 99
    period: 1h
    windows: lab-fast
    sli:
      apiserver_latency:
        verbs: read
        metric: apiserver_request_duration_seconds
        rejected_are_bad: true
        selector: 'job="apiserver"'
  - name: apiserver-rejections
    objective: 99
    period: 1h
    windows: lab-fast
    sli:
      ratio:
        errors: sum(rate(apiserver_request_total{{job="apiserver",code="429"}}[{{{{window}}}}]))
        total: sum(rate(apiserver_request_total{{job="apiserver"}}[{{{{window}}}}]))
  - name: dns-errors
    objective: 99.9
    period: 1h
    windows: lab-fast
    sli: {{coredns_errors: {{selector: 'job="coredns"'}}}}
""")


def _write_kwok_stages(state: LabState) -> None:
    modcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = Path(modcache) / KWOK_MODULE / "kustomize" / "stage"
    text = "\n---\n".join([*((root / stage).read_text() for stage in STAGES), KWOK_OPTIONS])
    (state.directory / "kwok-stages.yaml").write_text(text)


def _create_nodes(state: LabState, pki: Pki) -> None:
    failed = nodes.create(state)
    if failed:
        raise NotReady(f"{failed[0]} (and {len(failed) - 1} more)" if failed[1:] else failed[0])


def _nodes_ready(state: LabState) -> int:
    return nodes.ready(state)


def _targets_up(state: LabState) -> bool:
    url = f"http://127.0.0.1:{state.ports['prometheus']}/api/v1/targets"
    targets = requests.get(url, timeout=2).json()["data"]["activeTargets"]
    return len(targets) == 6 and all(t["health"] == "up" for t in targets)


@contextlib.contextmanager
def stopped_on_failure(state: LabState) -> Iterator[None]:
    """Starting processes of ``state``: on any failure or Ctrl-C every one started is stopped;
    a component that never got ready is one line (``LabError``) naming the logs."""
    try:
        yield
    except NotReady as exc:
        stop_all(state)
        raise LabError(f"{exc} (logs in {state.directory / 'logs'})") from None
    except BaseException:
        stop_all(state)
        raise


def stop_one(state: LabState, name: str) -> None:
    """Stop the process ``name`` if it runs, and forget it."""
    pid = state.pids.pop(name, None)
    if pid is not None and alive(pid):
        _terminate(pid)
    state.save()


def stop_all(state: LabState) -> list[str]:
    """Stop every recorded process, newest first; returns the names stopped."""
    stopped = []
    for name in reversed(list(state.pids)):
        pid = state.pids[name]
        if alive(pid):
            _terminate(pid)
            stopped.append(name)
    state.pids = {}
    state.save()
    return stopped


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
