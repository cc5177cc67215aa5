"""Defects of the front ends found in review (issue 12), each with the test that failed
before its fix: the daemon counted an evaluation ``ok`` while Prometheus was down, labelled
burn-rate windows in seconds, and ``guardian slack --interval x`` blamed ``--since``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from guardian.app.cli import main
from guardian.app.daemon.metrics import Metrics
from guardian.app.daemon.run import Daemon
from guardian.app.wiring import Parts
from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.pipeline import Cycle
from tests.faults import odd_config

DOWN = "http://127.0.0.1:1"
"""A Prometheus nobody answers for: every query is refused."""


def _evaluate_while_down(tmp_path: Path) -> Metrics:
    """One run of the daemon's evaluation job against a Prometheus that is down."""
    config = load_config(odd_config(tmp_path, DOWN, "2s"))
    prometheus = PrometheusClient(config.prometheus)
    nothing = cast(Any, None)  # evaluating reaches neither the store, the runner nor the cluster
    cycle = Cycle(config, {}, nothing, nothing, nothing, prometheus)
    parts = Parts(config, {}, prometheus, cycle)
    metrics = Metrics()
    daemon = SimpleNamespace(
        service=SimpleNamespace(parts=parts), metrics=metrics, leading=False, last_evaluation=0.0
    )
    try:
        Daemon.evaluate_job(cast(Daemon, daemon))
    finally:
        parts.prometheus.close()
    return metrics


def test_an_evaluation_while_prometheus_is_down_counts_as_failed_not_ok(tmp_path: Path) -> None:
    registry = _evaluate_while_down(tmp_path).registry
    assert registry.get_sample_value("guardian_evaluations_total", {"result": "ok"}) is None
    assert registry.get_sample_value("guardian_evaluations_total", {"result": "failed"}) == 1.0


def test_burn_rate_windows_are_labelled_as_prometheus_durations(tmp_path: Path) -> None:
    registry = _evaluate_while_down(tmp_path).registry
    windows = {
        (s.labels["long"], s.labels["short"])
        for family in registry.collect()
        if family.name == "guardian_burn_rate"
        for s in family.samples
    }
    assert windows == {("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h")}


def test_a_bad_interval_is_named_as_the_flag_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = odd_config(tmp_path, DOWN, "2s", "slack: {channel: C0GUARDIAN}\n")
    assert main(["slack", "-c", str(config), "--interval", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("guardian: --interval: "), err


def test_a_reload_gives_the_executor_s_verification_the_new_slos_and_prometheus(
    tmp_path: Path,
) -> None:
    """A reload used to leave verification on the SLOs and Prometheus of the first config."""
    from guardian.app.wiring import configure, runner
    from guardian.clients.store import Store
    from guardian.evaluation.run import PrometheusSignals

    first = load_config(odd_config(tmp_path, "http://127.0.0.1:1", name="first"))
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    executor = runner(first, store, {}, cast(Any, None), "test")
    try:
        before = cast(PrometheusSignals, executor.signals)
        renamed = tmp_path / "renamed"
        renamed.mkdir()
        same_url = load_config(odd_config(renamed, "http://127.0.0.1:1", name="second"))
        configure(executor, same_url, {})
        kept = cast(PrometheusSignals, executor.signals)
        assert [s.name for s in kept.slos] == ["second"]
        assert kept.source is before.source, "the same Prometheus keeps its client"
        moved = tmp_path / "moved"
        moved.mkdir()
        other = load_config(odd_config(moved, "http://127.0.0.1:2", "3s", name="third"))
        configure(executor, other, {})
        now = cast(PrometheusSignals, executor.signals)
        assert [s.name for s in now.slos] == ["third"]
        assert cast(PrometheusClient, now.source).settings.url == "http://127.0.0.1:2"
    finally:
        cast(PrometheusClient, cast(PrometheusSignals, executor.signals).source).close()
        store.close()
