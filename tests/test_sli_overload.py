"""The overload-aware API-server SLI (``rejected_are_bad``): 429s are bad, on a real Prometheus.

The kubernetes-mixin's SLI counts a request that API Priority and Fairness rejects (429) as
good. Here an API server sheds 10% of its requests and answers the rest fast: the mixin's SLI
reads an error ratio of 0, the overload-aware one 0.10, and the exported recording rules give
Prometheus the same numbers as guardian's own evaluation.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from guardian.app.cli import main
from guardian.clients.prometheus import PrometheusClient
from guardian.config import ApiserverLatencySLI, load_config
from guardian.durations import format_duration
from guardian.evaluation import sli as sli_promql
from guardian.evaluation.run import evaluate
from tests.conftest import StartPrometheus
from tests.test_rules import wait_for_records
from tests.traffic import apiserver_shedding, timeline

ROOT = Path(__file__).resolve().parent.parent
MIXIN = ApiserverLatencySLI(
    metric="apiserver_request_duration_seconds",
    requests_metric="apiserver_request_total",
    verbs="read",
    resource_threshold="1",
    namespace_threshold="5",
    cluster_threshold="30",
    write_threshold="1",
    selector='cluster="a"',
)
SHEDDING = replace(MIXIN, rejected_are_bad=True)


@pytest.mark.parametrize("verbs", ["read", "write", "all"])
def test_429s_join_the_5xx_term_with_the_same_selector(verbs: str) -> None:
    mixin, shedding = replace(MIXIN, verbs=verbs), replace(SHEDDING, verbs=verbs)  # type: ignore[arg-type]
    plain = sli_promql.errors_rate(mixin, 300)
    assert plain.count('code=~"5.."') == 1 and "429" not in plain
    assert sli_promql.errors_rate(shedding, 300) == plain.replace('code=~"5.."', 'code=~"5..|429"')
    assert sli_promql.total_rate(shedding, 300) == sli_promql.total_rate(mixin, 300)
    assert 'subresource!~"proxy|attach|log|exec|portforward",code=~"5..|429"' in (
        sli_promql.errors_rate(shedding, 300)
    )


def test_the_option_is_off_unless_asked_and_the_shipped_overload_slos_use_it() -> None:
    config = load_config(ROOT / "config")
    options = {
        s.name: (s.sli.metric, s.sli.rejected_are_bad)
        for s in config.slos
        if isinstance(s.sli, ApiserverLatencySLI)
    }
    assert options == {
        "apiserver-read-latency": ("apiserver_request_sli_duration_seconds", False),
        "apiserver-write-latency": ("apiserver_request_sli_duration_seconds", False),
        "apiserver-read-overload": ("apiserver_request_duration_seconds", True),
        "apiserver-write-overload": ("apiserver_request_duration_seconds", True),
    }


SLOS = "".join(
    f"""
  - name: {name}
    objective: 99
    windows: short
    period: 1d
    sli:
      apiserver_latency:
        verbs: {verbs}
        metric: apiserver_request_duration_seconds
        rejected_are_bad: {str(rejected).lower()}
        selector: 'cluster="a"'"""
    for name, verbs, rejected in (
        ("mixin-read", "read", False),
        ("mixin-all", "all", False),
        ("shedding-read", "read", True),
        ("shedding-write", "write", True),
        ("shedding-all", "all", True),
    )
)
WINDOWS = """window_sets:
  short:
    - {severity: page, long: 1h, short: 5m, factor: 14.4}
    - {severity: ticket, long: 6h, short: 30m, factor: 6}
"""


@pytest.fixture(scope="module")
def live(start_prometheus: StartPrometheus, tmp_path_factory: pytest.TempPathFactory):
    """Eight hours of shedding up to a few seconds ago, with guardian's rules loaded.

    Backfilled blocks must end before now: Prometheus refuses to append rule results older
    than its newest block.
    """
    now = time.time()
    t0 = float(int(now) - 8 * 3600)
    times = timeline(t0, now - 5 - t0, 15)
    root = tmp_path_factory.mktemp("shedding")
    config = root / "guardian.yaml"
    head = "version: guardian/v1\nprometheus: {url: 'http://x', timeout: 1m}\n"
    config.write_text(f"{head}evaluation: {{max_staleness: 1h}}\n{WINDOWS}slos:{SLOS}\n")
    rules = root / "rules.yml"
    assert main(["rules", "-c", str(config), "-o", str(rules)]) == 0
    server = start_prometheus(times, apiserver_shedding(times, {"cluster": "a"}), [rules])
    config.write_text(config.read_text().replace("http://x", server.url))
    loaded = load_config(config)
    client = PrometheusClient(loaded.prometheus)
    wait_for_records(client, yaml.safe_load(rules.read_text()))
    return loaded, client


def _ratios(live, name: str, at: datetime) -> dict[int, float | None]:
    config, client = live
    evaluation, error = evaluate([config.slo(name)], client, at)
    assert error == ""
    result = evaluation.slos[0]
    assert result.status != "no_data", result.reason
    found: dict[int, float | None] = {}
    for pair in result.windows:
        found[pair.long], found[pair.short] = pair.long_error_ratio, pair.short_error_ratio
    return found


@pytest.mark.prometheus
def test_429s_are_bad_with_the_option_and_good_without(live) -> None:
    at = datetime.fromtimestamp(time.time() - 60, UTC)
    for name in ("shedding-read", "shedding-write", "shedding-all"):
        ratios = _ratios(live, name, at)
        assert set(ratios) == {300, 1800, 3600, 6 * 3600}
        for window, ratio in ratios.items():
            assert ratio == pytest.approx(0.10, rel=1e-9), (name, window)
    for name in ("mixin-read", "mixin-all"):
        for window, ratio in _ratios(live, name, at).items():
            assert ratio == pytest.approx(0.0, abs=1e-12), (name, window)


@pytest.mark.prometheus
def test_the_exported_rules_record_guardian_s_numbers(live) -> None:
    config, client = live
    compared = 0
    for slo in config.slos:
        for window in sorted({w for p in slo.windows for w in (p.long, p.short)}):
            record = f'slo:sli_error:ratio_rate{format_duration(window)}{{slo="{slo.name}"}}'
            stamp = client.instant(f"timestamp({record})")
            assert stamp, f"{record} not recorded yet"
            at = datetime.fromtimestamp(stamp[0].value, UTC)
            recorded = client.instant(record, at)[0].value
            mine = _ratios(live, slo.name, at)[window]
            assert mine is not None
            assert mine == pytest.approx(recorded, rel=1e-9, abs=1e-12), (slo.name, window)
            expected = 0.10 if slo.sli.rejected_are_bad else 0.0  # type: ignore[union-attr]
            assert recorded == pytest.approx(expected, rel=1e-9, abs=1e-12), (slo.name, window)
            compared += 1
    assert compared == 5 * 4


def test_the_streaming_exclusion_of_the_429s_matters_in_this_data() -> None:
    """Half the ``log`` requests are 429: a 429 term without the exclusion would read more."""
    times = timeline(0.0, 3600, 15)
    series = apiserver_shedding(times, {"cluster": "a"})
    rejected = {True: 0.0, False: 0.0}
    total = {True: 0.0, False: 0.0}
    for s in series:
        if s.name != "apiserver_request" or s.labels["verb"] not in ("LIST", "GET"):
            continue
        for streaming in (True, False):
            if streaming or s.labels["subresource"] != "log":
                total[streaming] += s.values[-1]
                rejected[streaming] += s.values[-1] if s.labels["code"] == "429" else 0.0
    assert rejected[False] / total[False] == pytest.approx(0.10, rel=1e-12)
    assert rejected[True] / total[False] > 0.12
