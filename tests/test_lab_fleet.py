"""Two named labs side by side and the fleet query layer (Thanos Query) over them.

``lab up --name east --nodes 3`` and ``lab up --name west --nodes 5`` (different sizes, so a
per-cluster answer cannot come from the wrong cluster), then ``lab fleet up --names
east,west``; everything comes down at the end (east first, which says the fleet still reads
it) with every process checked gone. Marked ``lab`` and ``slow``; ``make test`` runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.lab_fixture import ROOT, _alive, eventually

pytestmark = [pytest.mark.lab, pytest.mark.slow]
NODES = {"east": 3, "west": 5}
DAEMONSETS = "/apis/apps/v1/namespaces/default/daemonsets"


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "lab" / "lab"), *args],
        env={**os.environ, "GUARDIAN_LAB_DIR": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _by_cluster(url: str, promql: str) -> dict[str, float]:
    return {s["metric"]["cluster"]: float(s["value"][1]) for s in _query(url, promql)}


@dataclass(frozen=True)
class Fleet:
    root: Path
    query: str
    states: dict[str, dict[str, Any]]

    def prometheus(self, name: str) -> str:
        return f"http://127.0.0.1:{self.states[name]['ports']['prometheus']}"

    def api(self, name: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        directory = Path(self.states[name]["directory"])
        token = (directory / "pki" / "admin.token").read_text().strip()
        return requests.request(
            method,
            f"https://127.0.0.1:{self.states[name]['ports']['kube-apiserver']}{path}",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(directory / "pki" / "ca.crt"),
            timeout=20,
            **kwargs,
        )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    started = time.monotonic()
    pids: list[int] = []
    fleet_up = False
    try:
        for name, nodes in NODES.items():
            up = _run(root, "up", "--name", name, "--nodes", str(nodes))
            assert up.returncode == 0, up.stderr[-3000:]
            pids += json.loads((root / "labs" / name / "state.json").read_text())["pids"].values()
        up = _run(root, "fleet", "up", "--names", ",".join(NODES))
        assert up.returncode == 0, up.stderr[-3000:]
        pids += json.loads((root / "fleet" / "state.json").read_text())["pids"].values()
        fleet_up = True
        assert up.stdout.startswith("export FLEET_PROMETHEUS_URL=http://127.0.0.1:")
        query = up.stdout.strip().split("=", 1)[1]
        states = {
            name: json.loads((root / "labs" / name / "state.json").read_text()) for name in NODES
        }
        print(f"two labs and the fleet up in {time.monotonic() - started:.0f}s")
        yield Fleet(root, query, states)
    finally:
        # every down runs before any is checked: a failed check must not leave the rest up
        east = _run(root, "down", "--name", "east")  # before the fleet: it says the fleet reads it
        down = _run(root, "fleet", "down")
        west = _run(root, "down", "--name", "west")
        assert east.returncode == 0, east.stderr
        assert down.returncode == 0, down.stderr
        assert west.returncode == 0, west.stderr
        if fleet_up:
            assert "the fleet still has a sidecar on 'east'; run 'lab fleet down'" in east.stderr
            assert "fleet" not in west.stderr
        for directory in (root / "fleet", *(root / "labs" / name for name in NODES)):
            if (directory / "state.json").exists():
                assert json.loads((directory / "state.json").read_text())["pids"] == {}
        assert [pid for pid in pids if _alive(pid)] == [], "still running after the downs"
        print(f"two labs and the fleet up and down in {time.monotonic() - started:.0f}s")


def test_each_lab_has_its_own_directory_ports_and_cluster_label(fleet: Fleet) -> None:
    east, west = fleet.states["east"], fleet.states["west"]
    assert not set(east["ports"].values()) & set(west["ports"].values())
    assert not set(east["pids"].values()) & set(west["pids"].values())
    for name, count in NODES.items():
        env = _run(fleet.root, "env", "--name", name)
        assert env.returncode == 0, env.stderr
        assert f"KUBECONFIG={fleet.root / 'labs' / name / 'kubeconfig'} " in env.stdout
        assert f"PROMETHEUS_URL={fleet.prometheus(name)} " in env.stdout
        nodes = fleet.api(name, "GET", "/api/v1/nodes").json()["items"]
        assert len(nodes) == count
        # its own Prometheus: every series labelled with its own name, and said so to Thanos
        assert {s["metric"]["cluster"] for s in _query(fleet.prometheus(name), "up")} == {name}
        config = requests.get(f"{fleet.prometheus(name)}/api/v1/status/config", timeout=5)
        assert f"cluster: {name}" in config.json()["data"]["yaml"].split("scrape_configs")[0]
    default = _run(fleet.root, "env")
    assert default.returncode == 2
    assert "the lab 'lab' is not up; run 'lab up'" in default.stderr


def test_a_query_through_thanos_returns_each_clusters_series(fleet: Fleet) -> None:
    through = _query(fleet.query, "up")
    for name in NODES:
        own = _query(fleet.prometheus(name), "up")
        assert own and all(s["value"][1] == "1" for s in own)
        assert sorted(s["metric"]["job"] for s in through if s["metric"]["cluster"] == name) == (
            sorted(s["metric"]["job"] for s in own)
        )
    assert {s["metric"]["cluster"] for s in through} == set(NODES)


def test_per_cluster_answers_differ_as_the_clusters_do(fleet: Fleet) -> None:
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {
                    "containers": [{"name": "probe", "image": "registry.invalid/probe:1"}],
                    "tolerations": [{"operator": "Exists"}],
                },
            },
        },
    }
    for name in NODES:
        created = fleet.api(name, "POST", DAEMONSETS, json=daemonset)
        assert created.status_code == 201, created.text
    promql = 'kube_daemonset_status_desired_number_scheduled{daemonset="probe"}'
    eventually(
        lambda: _by_cluster(fleet.query, promql) == {"east": 3.0, "west": 5.0},
        timeout=60,
        what=f"{promql} through Thanos, per cluster, is each lab's node count",
    )
    for name, count in NODES.items():  # the same figure as the lab's own Prometheus has
        assert _by_cluster(fleet.prometheus(name), promql) == {name: float(count)}


def test_fleet_status_and_env_name_each_process_bound_to_loopback(fleet: Fleet) -> None:
    status = _run(fleet.root, "fleet", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    names = [line.split()[0] for line in status.stdout.splitlines() if " pid " in line]
    assert names == ["sidecar-east", "sidecar-west", "query"]
    assert "clusters through Query: east, west" in status.stdout
    env = _run(fleet.root, "fleet", "env")
    assert env.stdout.strip() == f"export FLEET_PROMETHEUS_URL={fleet.query}"
    pids = json.loads((fleet.root / "fleet" / "state.json").read_text())["pids"].values()
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False)
    mine = [
        line for line in listening.stdout.splitlines() if any(f"pid={p}," in line for p in pids)
    ]
    assert len(mine) == 6, listening.stdout  # gRPC and HTTP of two sidecars and Query
    for line in mine:
        assert line.split()[3].startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")), line
    again = _run(fleet.root, "fleet", "up", "--names", "east")
    assert again.returncode == 2
    assert "the fleet is already up" in again.stderr


def test_bad_names_are_one_line_errors_naming_the_fix(tmp_path: Path) -> None:
    bad = _run(tmp_path, "up", "--name", "East")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "lab: --name 'East': a lab name is lowercase letters, digits and '-', starts with a "
        "letter, at most 32 characters (e.g. --name east)"
    ]
    missing = _run(tmp_path, "fleet", "up", "--names", "east,north")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "lab: --names: the lab 'east' is not up; run 'lab up --name east'"
    )
    assert not (tmp_path / "fleet" / "state.json").exists()
