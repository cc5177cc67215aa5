"""``lab dns``: a DNS client population resolving Service names through the lab's CoreDNS.

``lab dns start`` creates ``--services`` Services in namespace ``dns-clients`` (ClusterIP, as
any workload's), waits until CoreDNS answers every name, then starts the client process
(``lab down`` stops it with the rest). The process stands for ``--nodes`` nodes, each with a
node-local cache (a thread with its own UDP socket and cache): lookups arrive at ``--qps`` in
all, spread over the nodes; a name in a node's cache is answered there until its record's
TTL runs out, as node-local caches do, and only misses are sent to CoreDNS over UDP (1 s
timeout). An answer other than NOERROR is not cached, so a failing CoreDNS sees every miss.
Every 5 s the process logs one JSON line (``logs/dns.log``): lookups, cache hits, queries sent,
the rcodes (or ``timeout``) CoreDNS answered and the lookups that failed. ``--ttl`` rewrites
the Corefile with that TTL (the kubernetes plugin's record TTL and the cache's) and restarts
CoreDNS first. ``--shared-flow`` creates FlowSchema ``lab-storm-and-coredns``: the storm's
agents (``lab load``) and CoreDNS in one APF flow of priority level workload-low.

``lab dns restart-coredns`` is the fault of a crash-looping or rescheduled CoreDNS: it stops
CoreDNS and starts it again, returning once it answers on UDP (synced with the API server or
not) and saying whether it synced. ``lab dns stop`` stops the clients, deletes the FlowSchema.

What CoreDNS v1.14.7's kubernetes plugin does (``plugin/kubernetes/handler.go``,
``kubernetes.go``; client-go v0.35's reflector): once its informers have synced it answers
from their store and keeps doing so when the API server rejects its watches (a 429 on a watch
backs off and watches again; a failed re-list keeps the old store), so a running CoreDNS
serves stale records, never SERVFAIL, through a storm. A CoreDNS started while its first
watch-list (or LIST) cannot get through waits ``startup_timeout`` (5 s) without answering,
then serves unsynced: a Service name it does not know is SERVFAIL (not NXDOMAIN) until the
informers sync, retried with client-go's backoff (0.8 s doubling to 30 s). Measured on this
lab (10 nodes, ``lab load``'s storm shedding about 200 requests/s): as kube-system/coredns
(workload-high), and as a service account beside the storm's in workload-low (FlowSchema
service-accounts, a flow per user), CoreDNS restarted during the storm synced within 2 s, as
APF's fair queuing means it to. In the storm's flow (``--shared-flow``) it answered SERVFAIL
until a retry found room in the flow's queues: after 10 to 12 s in some runs, not before
the storm stopped (28 to 41 s) in others; once the storm stopped it synced within 6 to 40 s.
Tests: tests/test_dns_cascade.py.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import components
import load
from state import LabState, alive

NAMESPACE = "dns-clients"
FLOW_SCHEMA = "lab-storm-and-coredns"
FLOWCONTROL = "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas"
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def add_parser(sub: Any) -> None:
    """Register ``lab dns``."""
    dns = sub.add_parser("dns", help="DNS clients resolving Services through CoreDNS")
    dns.add_argument("action", choices=("start", "stop", "restart-coredns"))
    dns.add_argument("--qps", type=float, default=50.0, help="lookups per second (default 50)")
    dns.add_argument(
        "--nodes", type=int, default=10, help="node-local caches the lookups spread over (10)"
    )
    dns.add_argument("--services", type=int, default=20, help="Service names (default 20)")
    dns.add_argument(
        "--shared-flow",
        action="store_true",
        help=f"put CoreDNS in the storm's APF flow (FlowSchema {FLOW_SCHEMA}); without it "
        "APF's fair queuing serves CoreDNS beside the storm",
    )
    dns.add_argument(
        "--ttl",
        type=int,
        default=None,
        help="rewrite the Corefile with this TTL (record and cache) and restart CoreDNS first",
    )


def command(args: argparse.Namespace, state: LabState) -> int:
    """Run ``lab dns``."""
    if args.action == "stop":
        _stop_clients(state)
        components.api(state, "DELETE", f"{FLOWCONTROL}/{FLOW_SCHEMA}")
        print("lab dns: stopped the DNS clients", file=sys.stderr)
        return 0
    if args.action == "restart-coredns":
        synced = restart_coredns(state)
        print(
            f"lab dns: CoreDNS restarted, {'synced' if synced else 'NOT synced'} with the API "
            "server",
            file=sys.stderr,
        )
        return 0
    if args.nodes < 1 or args.services < 1 or args.qps <= 0:
        raise SystemExit("lab dns: --qps, --nodes and --services must be positive")
    if args.shared_flow:
        _share_the_storms_flow(state)
    if args.ttl is not None:
        components._write_corefile(state, args.ttl)
        try:
            components.restart(state, "coredns")
        except components.NotReady as exc:
            raise SystemExit(f"lab dns: {exc}; start the DNS clients before the storm") from None
    names = _services(state, args.services)
    _wait_resolved(state, names)
    _stop_clients(state)
    state.argv["dns"] = [
        sys.executable,
        str(Path(__file__).resolve()),
        "run",
        str(state.directory),
        str(args.qps),
        str(args.nodes),
        ",".join(names),
    ]
    components._spawn(state, "dns")
    print(
        f"lab dns: {args.nodes} node caches resolving {len(names)} Services at {args.qps}/s; "
        f"pid {state.pids['dns']} (log: {state.directory / 'logs' / 'dns.log'})",
        file=sys.stderr,
    )
    return 0


def _stop_clients(state: LabState) -> None:
    components.stop_one(state, "dns")


def _share_the_storms_flow(state: LabState) -> None:
    """A FlowSchema that puts the storm's agents and CoreDNS in one flow of workload-low.

    Precedence 500 wins over Kubernetes' own (kube-system-service-accounts 900,
    service-accounts 9000); without a distinguisher its requests are one flow, so fair
    queuing no longer keeps CoreDNS out of the queues the storm fills."""
    coredns_namespace, coredns = components.COREDNS_SA
    subjects = [
        {"kind": "ServiceAccount", "serviceAccount": {"namespace": ns, "name": name}}
        for ns, name in ((load.NAMESPACE, load.NAME), (coredns_namespace, coredns))
    ]
    every = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"]}
    body = {
        "metadata": {"name": FLOW_SCHEMA},
        "spec": {
            "matchingPrecedence": 500,
            "priorityLevelConfiguration": {"name": "workload-low"},
            "rules": [
                {
                    "subjects": subjects,
                    "resourceRules": [{**every, "clusterScope": True}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }
    answer = components.api(state, "POST", FLOWCONTROL, json=body)
    if answer.status_code not in (201, 409):
        raise SystemExit(f"lab dns: FlowSchema {FLOW_SCHEMA}: HTTP {answer.status_code}")


def _services(state: LabState, count: int) -> list[str]:
    """Create ``count`` Services (and their namespace); their DNS names."""
    components.api(state, "POST", "/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
    names = []
    for index in range(count):
        name = f"svc-{index}"
        body = {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}
        answer = components.api(
            state, "POST", f"/api/v1/namespaces/{NAMESPACE}/services", json=body
        )
        if answer.status_code not in (201, 409):
            raise SystemExit(f"lab dns: creating Service {name}: HTTP {answer.status_code}")
        names.append(f"{name}.{NAMESPACE}.svc.cluster.local")
    return names


def _wait_resolved(state: LabState, names: list[str], timeout: float = 60) -> None:
    port = state.ports["coredns"]
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        pending = [n for n in pending if query(port, n)[0] != "NOERROR"]
        if pending:
            time.sleep(0.5)
    if pending:
        raise SystemExit(f"lab dns: CoreDNS did not resolve {pending[0]} within {timeout:.0f}s")


def restart_coredns(state: LabState, timeout: float = 60) -> bool:
    """Stop CoreDNS and start it again; return once it answers, True when it synced."""
    pid = state.pids.get("coredns")
    if pid is not None and alive(pid):
        components._terminate(pid)
    components._spawn(state, "coredns")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(state.ports["coredns"], "kubernetes.default.svc.cluster.local")[0] != "timeout":
            return components.answers(state, "coredns")
        time.sleep(0.2)
    raise SystemExit(f"lab dns: CoreDNS did not answer within {timeout:.0f}s of its restart")


def query(port: int, name: str, timeout: float = 1.0) -> tuple[str, int]:
    """An A query for ``name`` to 127.0.0.1:``port``: (rcode or ``timeout``, first TTL)."""
    ident = random.randrange(65536)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + b"\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))  # answers come to loopback only
        sock.sendto(packet, ("127.0.0.1", port))
        try:
            answer = sock.recv(4096)
        except (TimeoutError, ConnectionRefusedError):
            return "timeout", 0
    flags, _, count = struct.unpack(">HHH", answer[2:8])
    rcode = RCODES.get(flags & 0xF, str(flags & 0xF))
    if rcode != "NOERROR" or count == 0:
        return rcode, 0
    offset = _skip_name(answer, 12) + 4
    offset = _skip_name(answer, offset)
    return rcode, int(struct.unpack(">I", answer[offset + 4 : offset + 8])[0])


def _skip_name(packet: bytes, offset: int) -> int:
    while packet[offset] != 0:
        if packet[offset] >= 0xC0:  # a compression pointer ends the name
            return offset + 2
        offset += packet[offset] + 1
    return offset + 1


class Tally:
    """What the clients did since the last report."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, *keys: str) -> None:
        with self.lock:
            for key in keys:
                self.counts[key] = self.counts.get(key, 0) + 1

    def take(self) -> dict[str, int]:
        with self.lock:
            counts, self.counts = self.counts, {}
        return counts


def _node(port: int, names: list[str], qps: float, tally: Tally) -> None:
    """One node: lookups at ``qps``, answered from its cache until the TTL runs out."""
    cache: dict[str, float] = {}  # name -> expiry (monotonic)
    due = time.monotonic() + random.random() / qps
    while True:
        time.sleep(max(0.0, due - time.monotonic()))
        due = max(due + 1 / qps, time.monotonic() - 1)
        name = random.choice(names)
        if cache.get(name, 0.0) > time.monotonic():
            tally.add("lookups", "cache_hits")
            continue
        rcode, ttl = query(port, name)
        tally.add("lookups", "sent", rcode)
        if rcode == "NOERROR":
            cache[name] = time.monotonic() + ttl
        else:
            cache.pop(name, None)
            tally.add("failed")


def run(directory: Path, qps: float, nodes: int, names: list[str]) -> None:
    """The client process: ``nodes`` caching nodes, ``qps`` lookups per second in all."""
    state = LabState.load(directory)
    assert state is not None
    port = state.ports["coredns"]
    tally = Tally()
    for _ in range(nodes):
        threading.Thread(target=_node, args=(port, names, qps / nodes, tally), daemon=True).start()
    started = time.monotonic()
    while True:
        time.sleep(5)
        print(json.dumps({"t": round(time.monotonic() - started, 1), **tally.take()}), flush=True)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "run":
    run(Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(","))
