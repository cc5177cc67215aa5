"""``lab fleet``: one query layer over several labs' Prometheus, as over a fleet of clusters.

``lab fleet up --names east,west`` starts, for each named lab (already up), a Thanos sidecar
beside its Prometheus, then one Thanos Query with every sidecar's gRPC address as an endpoint,
and waits until a query through it returns series of every lab, each with its ``cluster``
label (the lab's Prometheus has ``external_labels: {cluster: NAME}``). Thanos is built from
its Go module by ``lab/build.sh thanos`` (pinned in ``lab/versions.env``, cached by version).
``lab fleet env`` prints ``export FLEET_PROMETHEUS_URL=...`` (Query's Prometheus HTTP API on
127.0.0.1), ``lab fleet status`` each process, whether it answers and its memory, and ``lab
fleet down`` stops them. State and logs live in ``$GUARDIAN_LAB_DIR/fleet``. Registered by
``labctl``; shown by ``tests/test_lab_fleet.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml

import components
from state import LabError, LabState, alive, build, check_name, lab_dir, lab_root, rss_kib

QUERY = "query"


def add_parser(sub: Any) -> None:
    """Register ``lab fleet up|down|status|env``."""
    parser = sub.add_parser("fleet", help="Thanos Query over named labs (lab up --name first)")
    verbs = parser.add_subparsers(dest="fleet_command", required=True, metavar="COMMAND")
    up = verbs.add_parser("up", help="a sidecar per lab and one Thanos Query over them")
    up.add_argument(
        "--names",
        required=True,
        help="the labs, comma-separated (e.g. east,west); each must be up (lab up --name east)",
    )
    verbs.add_parser("down", help="stop the sidecars and Query (the labs keep running)")
    verbs.add_parser("status", help="each fleet process, whether it answers, its memory")
    verbs.add_parser("env", help="print export FLEET_PROMETHEUS_URL=... (Thanos Query)")


def command(args: argparse.Namespace) -> int:
    """Run ``lab fleet COMMAND``."""
    if args.fleet_command == "up":
        return _up(_names(args.names))
    state = LabState.load(fleet_dir())
    if args.fleet_command == "down":
        stopped = components.stop_all(state) if state is not None else []
        print(f"lab fleet down: stopped {', '.join(stopped) or 'nothing'}", file=sys.stderr)
        return 0
    if state is None or not state.pids:
        raise LabError("the fleet is not up; run 'lab fleet up --names east,west'", 2)
    if args.fleet_command == "env":
        print(f"export FLEET_PROMETHEUS_URL={url(state)}")
        return 0
    return _status(state)


def fleet_dir() -> Path:
    """``$GUARDIAN_LAB_DIR/fleet``."""
    return lab_root() / "fleet"


def reads(name: str) -> bool:
    """True when the fleet's sidecar for lab ``name`` runs (``lab down`` says so)."""
    state = LabState.load(fleet_dir())
    pid = state.pids.get(f"sidecar-{name}") if state is not None else None
    return pid is not None and alive(pid)


def url(state: LabState) -> str:
    """The Prometheus HTTP API of the fleet's Thanos Query."""
    return f"http://127.0.0.1:{state.ports[f'{QUERY}-http']}"


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise LabError(f"--names {text!r}: distinct lab names, comma-separated (e.g. east,west)", 2)
    return [check_name(name) for name in names]


def _labs(names: list[str]) -> dict[str, LabState]:
    """Each named lab's state; a ``LabError`` naming the fix when one is not up."""
    labs = {}
    for name in names:
        lab = LabState.load(lab_dir(name))
        pid = lab.pids.get("prometheus") if lab is not None else None
        if lab is None or pid is None or not alive(pid):
            raise LabError(f"--names: the lab {name!r} is not up; run 'lab up --name {name}'", 2)
        labs[name] = lab
    return labs


def _up(names: list[str]) -> int:
    directory = fleet_dir()
    current = LabState.load(directory)
    if current is not None and any(alive(pid) for pid in current.pids.values()):
        raise LabError(f"the fleet is already up in {directory}; run 'lab fleet down' first", 2)
    labs = _labs(names)
    started = time.monotonic()
    thanos = str(build("thanos") / f"thanos-{components._version('THANOS_VERSION')}")
    shutil.rmtree(directory / "logs", ignore_errors=True)
    (directory / "logs").mkdir(parents=True)
    state = LabState(directory=directory, bin=thanos, nodes=0, name="fleet")
    processes = [*(f"sidecar-{name}" for name in names), QUERY]
    state.ports = {
        f"{p}-{kind}": components.free_port() for p in processes for kind in ("grpc", "http")
    }
    state.save()
    with components.stopped_on_failure(state):
        for name, lab in labs.items():
            state.argv[f"sidecar-{name}"] = _sidecar_argv(thanos, state, f"sidecar-{name}", lab)
            _start(state, f"sidecar-{name}", started)
        state.argv[QUERY] = _query_argv(thanos, state, names)
        _start(state, QUERY, started)
        components._wait("every lab through Query", lambda: _through(state, names), 60)
    print(f"lab fleet up in {time.monotonic() - started:.1f}s: {', '.join(names)}", file=sys.stderr)
    print(f"export FLEET_PROMETHEUS_URL={url(state)}")
    return 0


def _start(state: LabState, name: str, started: float) -> None:
    components._spawn(state, name)
    components._wait(name, lambda: _answers(state, name), timeout=60)
    print(f"lab fleet up: {name} ready ({time.monotonic() - started:.1f}s)", file=sys.stderr)


def _sidecar_argv(thanos: str, state: LabState, process: str, lab: LabState) -> list[str]:
    return [
        thanos,
        "sidecar",
        f"--prometheus.url=http://127.0.0.1:{lab.ports['prometheus']}",
        f"--tsdb.path={lab.directory / 'prometheus-data'}",
        f"--grpc-address=127.0.0.1:{state.ports[f'{process}-grpc']}",
        f"--http-address=127.0.0.1:{state.ports[f'{process}-http']}",
        "--log.level=warn",
    ]


def _query_argv(thanos: str, state: LabState, names: list[str]) -> list[str]:
    endpoints = [{"address": f"127.0.0.1:{state.ports[f'sidecar-{name}-grpc']}"} for name in names]
    path = state.directory / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": endpoints}))
    return [
        thanos,
        "query",
        f"--endpoint.sd-config-file={path}",
        f"--grpc-address=127.0.0.1:{state.ports[f'{QUERY}-grpc']}",
        f"--http-address=127.0.0.1:{state.ports[f'{QUERY}-http']}",
        "--log.level=warn",
    ]


def _answers(state: LabState, name: str) -> bool:
    port = state.ports[f"{name}-http"]
    try:
        return requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _through(state: LabState, names: list[str]) -> bool:
    """True when Query returns series of every lab; ``NotReady`` when a process has exited."""
    for name, pid in state.pids.items():
        if not alive(pid):
            raise components.NotReady(f"{name} exited (see logs/{name}.log)")
    return _clusters(state) == set(names)


def _clusters(state: LabState) -> set[str]:
    """The ``cluster`` labels of the ``up`` series Query returns now."""
    answer = requests.get(
        f"{url(state)}/api/v1/query", params={"query": "count by (cluster) (up)"}, timeout=5
    ).json()
    return {series["metric"].get("cluster", "") for series in answer["data"]["result"]}


def _status(state: LabState) -> int:
    healthy, total = True, 0
    for name, pid in state.pids.items():
        ok = alive(pid) and _answers(state, name)
        healthy &= ok
        total += (rss := rss_kib(pid))
        print(f"{name:<28} pid {pid:<8} {'ready' if ok else 'NOT READY':<10} {rss / 1024:8.1f} MiB")
    print(f"{'total (RSS)':<52} {total / 1024:8.1f} MiB")
    try:
        clusters = ", ".join(sorted(_clusters(state))) or "none"
    except (requests.RequestException, ValueError, KeyError) as exc:
        clusters, healthy = f"unknown ({type(exc).__name__})", False
    print(f"clusters through Query: {clusters}")
    return 0 if healthy else 1
