"""The chart a Slack announcement carries: an SLO's burn rates over the last hour.

Input: the config and an SLO's name. Output: a PNG (``guardian.app.plot``) of a replay
over the last hour, or None when Prometheus cannot say within ``evaluation_budget`` (then
matplotlib is not even loaded: the announcement goes without a chart, in time).
Called by the Slack notifier that ``guardian.app.wiring.notifier`` builds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from guardian.clients.prometheus import PrometheusClient
from guardian.config import Config
from guardian.evaluation.run import Replay, evaluation_budget, replay


def burn_chart(config: Config, slo_name: str) -> bytes | None:
    """A PNG of the SLO's burn rates over the last hour (None when Prometheus cannot say
    within ``evaluation_budget``: the announcement it illustrates is sent during a cycle)."""
    try:
        slo = config.slo(slo_name)
    except KeyError:
        return None
    client = PrometheusClient(config.prometheus)
    end = datetime.now(UTC)
    try:
        settings = config.prometheus
        budget = evaluation_budget(settings.timeout, config.daemon.interval)
        start = end - timedelta(hours=1)
        result = replay([slo], client, start, end, 60, settings.source, 1, budget)
    finally:
        client.close()
    if result.error or not result.steps:
        return None
    return _png(result, f"{slo_name}: last hour")


def _png(result: Replay, title: str) -> bytes:
    """The chart of ``result`` as PNG bytes (matplotlib is loaded only when there is one)."""
    import tempfile
    from pathlib import Path

    from guardian.app.plot import plot_replay

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "chart.png"
        plot_replay(result.steps, [], path, title=title)
        return path.read_bytes()
