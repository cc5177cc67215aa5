"""Shared fixtures: a real Prometheus per test module, filled with exactly known data."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from guardian.testing.openmetrics import Series, write_counters
from guardian.testing.prometheus import PrometheusServer, backfill

StartPrometheus = Callable[..., PrometheusServer]
pytest_plugins = ["tests.lab_fixture", "tests.store_fixture"]

# The modules that take longest (the slowest tests of a run on 2 cores, ``--durations``) run
# first: ``make test`` hands whole modules to its workers in this order
# (``pytest_xdist_make_scheduler`` below, ``--no-loadscope-reorder``), so the last minutes
# are not one long module alone.
SLOWEST_FIRST = (
    "test_lab_scale.py",  # 2,000 nodes up, the DaemonSet on every one, down
    "test_incident.py",  # the incident's data in Prometheus, replayed
    "test_demo.py",  # the live act
    "test_rules.py",  # three days of recorded rules
    "test_dns_cascade.py",  # a lab of its own, the storm and the cascade
    "test_runner.py",
    "test_daemon.py",
    "test_rollout_guard.py",
    "test_lab_fleet.py",  # two labs and Thanos
    "test_actions.py",
    "test_lab.py",
    "test_slack.py",
    "test_lab_agents.py",  # on the worker's 20-node lab (the 2,000-node module needs none)
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole modules per worker, the labs-of-their-own modules on one (``tests/scheduling.py``)."""
    from tests.scheduling import ModulesOwnLabsTogether

    return ModulesOwnLabsTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within


@pytest.fixture(scope="module")
def start_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartPrometheus]:
    """Backfill series into a fresh TSDB and start Prometheus on a free loopback port."""
    servers: list[PrometheusServer] = []

    def start(
        timestamps: Sequence[float],
        series: Sequence[Series],
        rule_files: Sequence[Path] = (),
        evaluation_interval: str = "1s",
    ) -> PrometheusServer:
        root = tmp_path_factory.mktemp("prom")
        data = root / "data.om"
        write_counters(data, timestamps, series)
        backfill(data, root / "tsdb")
        server = PrometheusServer(
            root / "tsdb", rule_files=rule_files, evaluation_interval=evaluation_interval
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def write_config(path: Path, text: str) -> Path:
    """Write a config file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path
