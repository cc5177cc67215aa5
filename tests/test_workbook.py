"""Detection times on a real Prometheus match the SRE Workbook's formula within one step.

time to fire = (1 - SLO) / error_ratio × long window × factor
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.evaluation.backtest import Episode, episodes
from guardian.evaluation.run import replay
from tests.conftest import StartPrometheus
from tests.traffic import Burst, ratio_slo, steady, timeline

pytestmark = pytest.mark.prometheus

T0 = datetime(2024, 6, 1, tzinfo=UTC).timestamp()
HOUR = 3600.0

# (name, error ratio, burst start and length in seconds, window set, long window, factor)
SCENARIOS = [
    ("workbook-15pct", 0.15, 6.5 * HOUR, 600.0, "fast", 3600.0, 14.4),
    ("total-outage", 1.0, 6.5 * HOUR, 600.0, "fast", 3600.0, 14.4),
    ("slow-2pct", 0.02, 6.5 * HOUR, 3600.0, "fast", 3600.0, 14.4),
    ("slow-5pct-6h", 0.05, 6.5 * HOUR, 3600.0, "six", 6 * 3600.0, 6.0),
]
STEP = 30


def _expected(ratio: float, long: float, factor: float, objective: float = 99.9) -> float:
    return (1 - objective / 100) / ratio * long * factor


@pytest.fixture(scope="module")
def replayed(start_prometheus: StartPrometheus, tmp_path_factory: pytest.TempPathFactory):
    times = timeline(T0, 9 * HOUR, 15)
    series = []
    slos = ""
    for name, ratio, start, length, windows, _long, _factor in SCENARIOS:
        series += steady(times, 50.0, [Burst(start, start + length, ratio)], {"scenario": name})
        slos += ratio_slo(name, f'scenario="{name}"', 99.9, windows)
    server = start_prometheus(times, series)
    path = tmp_path_factory.mktemp("cfg") / "guardian.yaml"
    path.write_text(
        f"""version: guardian/v1
prometheus: {{url: "{server.url}"}}
window_sets:
  fast: [{{severity: page, long: 1h, short: 5m, budget_fraction: 0.02}}]
  six: [{{severity: page, long: 6h, short: 30m, budget_fraction: 0.05}}]
slos:{slos}
""",
        encoding="utf-8",
    )
    config = load_config(path)
    client = PrometheusClient(config.prometheus)
    start = datetime.fromtimestamp(T0 + 6 * HOUR, UTC)
    result = replay(config.slos, client, start, start + timedelta(hours=3), STEP)
    assert result.error == ""
    return result, episodes(result.steps)


def _only(found: list[Episode], slo: str) -> Episode:
    mine = [e for e in found if e.slo == slo]
    assert len(mine) == 1, mine
    return mine[0]


@pytest.mark.parametrize(
    ("name", "ratio", "start", "length", "long", "factor"),
    [(s[0], s[1], s[2], s[3], s[5], s[6]) for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_time_to_fire_matches_the_workbook_formula(
    replayed, name: str, ratio: float, start: float, length: float, long: float, factor: float
) -> None:
    _, found = replayed
    episode = _only(found, name)
    detected = episode.start.timestamp() - (T0 + start)
    expected = _expected(ratio, long, factor)
    assert expected <= detected < expected + STEP, (detected, expected)


def test_workbook_example_fires_after_about_five_minutes_and_resets_five_minutes_after(
    replayed,
) -> None:
    _, found = replayed
    episode = _only(found, "workbook-15pct")
    errors_end = T0 + 6.5 * HOUR + 600
    assert episode.start.timestamp() - (T0 + 6.5 * HOUR) == pytest.approx(5.76 * 60, abs=STEP)
    assert episode.end is not None
    assert episode.end.timestamp() - errors_end == pytest.approx(300, abs=STEP)


def test_replay_uses_one_range_query_per_distinct_window(replayed) -> None:
    result, _ = replayed
    assert result.queries == 4  # 5m, 30m, 1h, 6h; the period is left out of a replay


def test_time_compressed_windows_in_seconds(
    start_prometheus: StartPrometheus, tmp_path: Path
) -> None:
    t0 = datetime(2024, 6, 2, tzinfo=UTC).timestamp()
    times = timeline(t0, 900, 1)
    burst_start = 600.0
    series = steady(times, 200.0, [Burst(burst_start, burst_start + 120, 0.15)], {"job": "lab"})
    server = start_prometheus(times, series)
    path = tmp_path / "lab.yaml"
    path.write_text(
        f"""version: guardian/v1
prometheus: {{url: "{server.url}"}}
window_sets:
  lab: [{{severity: page, long: 2m, short: 10s, factor: 14.4}}]
slos:{ratio_slo("lab", 'job="lab"', 99.9, "lab", period="1h")}
""",
        encoding="utf-8",
    )
    config = load_config(path)
    client = PrometheusClient(config.prometheus)
    start = datetime.fromtimestamp(t0 + 300, UTC)
    result = replay(config.slos, client, start, start + timedelta(seconds=600), 1)
    found = episodes(result.steps)
    assert len(found) == 1
    detected = found[0].start.timestamp() - (t0 + burst_start)
    expected = _expected(0.15, 120, 14.4)  # 11.52 s
    assert expected <= detected < expected + 1
    assert found[0].end is not None
    assert found[0].end.timestamp() - (t0 + burst_start + 120) == pytest.approx(10, abs=1)
    # A start between two seconds is floored like Prometheus floors it, not lost.
    shifted = replay(
        config.slos, client, start + timedelta(milliseconds=500), start + timedelta(seconds=600), 1
    )
    assert episodes(shifted.steps) == found
