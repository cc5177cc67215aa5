"""Shared fixtures: a real Prometheus per test module, filled with exactly known data."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from guardian.testing.openmetrics import Series, write_counters
from guardian.testing.prometheus import PrometheusServer, backfill

StartPrometheus = Callable[..., PrometheusServer]
pytest_plugins = ["tests.lab_fixture", "tests.store_fixture"]


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
