"""The API-server SLI, checked against sums computed in Python from the generated counters.

Independent of guardian's PromQL: if the streaming-subresource exclusion, the per-scope
thresholds or the 5xx term went missing, these numbers would differ.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.evaluation.run import evaluate
from guardian.testing.openmetrics import Series
from tests.conftest import StartPrometheus
from tests.traffic import apiserver, timeline

pytestmark = pytest.mark.prometheus

T0 = datetime(2024, 8, 1, tzinfo=UTC).timestamp()
STEP = 60
GOOD_LE = {"resource": "1", "namespace": "5", "cluster": "30"}
READS, WRITES = ("LIST", "GET"), ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def data(start_prometheus: StartPrometheus, tmp_path_factory: pytest.TempPathFactory):
    times = timeline(T0, 86400, STEP)
    series = apiserver(times, {"cluster": "a"}, seed=11, slow=0.05)
    server = start_prometheus(times, series)
    path = tmp_path_factory.mktemp("sli") / "guardian.yaml"
    slos = "".join(
        f"""
  - name: api-{verbs}
    objective: 99
    sli: {{apiserver_latency: {{verbs: {verbs}, selector: 'cluster="a"'}}}}"""
        for verbs in ("read", "write", "all")
    )
    path.write_text(f"version: guardian/v1\nprometheus: {{url: '{server.url}'}}\nslos:{slos}\n")
    return times, series, path


def _increase(series: Series, end: int, window: int) -> float:
    return series.values[end] - series.values[end - window // STEP]


def _expected(
    series: list[Series], verbs: tuple[str, ...], end: int, window: int, streaming: bool = False
) -> float:
    bad = total = 0.0
    for s in series:
        labels = s.labels
        if labels["verb"] not in verbs or (labels["subresource"] == "log" and not streaming):
            continue
        if s.name == "apiserver_request":
            total += _increase(s, end, window)
            bad += _increase(s, end, window) if labels["code"].startswith("5") else 0.0
        elif s.name.endswith("_count"):
            bad += _increase(s, end, window)
        elif s.name.endswith("_bucket"):
            good = "1" if labels["verb"] in WRITES else GOOD_LE[labels["scope"]]
            bad -= _increase(s, end, window) if labels["le"] == good else 0.0
    return bad / total


@pytest.mark.parametrize("verbs", ["read", "write", "all"])
@pytest.mark.parametrize("window", [300, 3600])
def test_error_ratio_matches_the_counters(data, verbs: str, window: int) -> None:
    times, series, path = data
    end = len(times) - 1 - 90
    config = load_config(path)
    at = datetime.fromtimestamp(times[end], UTC)
    evaluation, error = evaluate(
        [config.slo(f"api-{verbs}")], PrometheusClient(config.prometheus), at
    )
    assert error == ""
    pair = next(p for p in evaluation.slos[0].windows if window in (p.long, p.short))
    measured = pair.long_error_ratio if pair.long == window else pair.short_error_ratio
    chosen = {"read": READS, "write": WRITES, "all": READS + WRITES}[verbs]
    expected = _expected(series, chosen, end, window)
    assert measured == pytest.approx(expected, rel=1e-9)
    assert 0.001 < expected < 0.2  # the slow tail and the 5xx are both in it


def test_the_streaming_exclusion_matters_in_this_data(data) -> None:
    times, series, _ = data
    end = len(times) - 1 - 90
    without = _expected(series, READS, end, 3600)
    with_logs = _expected(series, READS, end, 3600, streaming=True)
    assert with_logs > 1.1 * without
