"""A workbook page's burn start, read from a real Prometheus: the start of the current run of
short-window crossings, not of an earlier burn that ended within the look-back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.evaluation.burn_began import burn_began
from guardian.evaluation.instant import evaluate
from tests.conftest import StartPrometheus
from tests.traffic import Burst, ratio_slo, steady, timeline

pytestmark = pytest.mark.prometheus

T0 = datetime(2024, 7, 1, tzinfo=UTC).timestamp()
END = 6 * 3600.0
EARLIER = Burst(END - 3300, END - 2700, 0.5)  # within the hour before, and over
CURRENT = Burst(END - 1800, END, 0.5)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


@pytest.fixture(scope="module")
def config(start_prometheus: StartPrometheus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    times = timeline(T0, END, 15)
    server = start_prometheus(times, steady(times, 40.0, [EARLIER, CURRENT], {"job": "busy"}))
    path = tmp_path_factory.mktemp("began") / "guardian.yaml"
    path.write_text(
        f"version: guardian/v1\nprometheus: {{url: '{server.url}'}}\nslos:"
        + ratio_slo("busy", 'job="busy"', 99.9, "google-30d")
    )
    return path


def test_the_burn_began_where_the_current_run_of_crossings_began(config: Path) -> None:
    loaded = load_config(config)
    source = PrometheusClient(loaded.prometheus)
    now = _at(END - 900)
    evaluation, error = evaluate(loaded.slos, source, now)
    assert not error and evaluation.slos[0].status == "page"
    began = burn_began(loaded.slos[0], evaluation.slos[0], source, now)
    assert began is not None
    # the 5m short window crosses 14.4 within seconds of the burst; one 30 s step of slack
    assert 0 <= (began - _at(CURRENT.start)).total_seconds() <= 60, began


def test_no_firing_pair_has_no_start(config: Path) -> None:
    loaded = load_config(config)
    source = PrometheusClient(loaded.prometheus)
    calm = _at(END - 4000)
    evaluation, _ = evaluate(loaded.slos, source, calm)
    assert evaluation.slos[0].status == "ok"
    assert burn_began(loaded.slos[0], evaluation.slos[0], source, calm) is None
