"""One evaluation on a real Prometheus: statuses, no_data, low traffic, bounds, failures, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardian.app.cli import main
from guardian.clients.prometheus import PrometheusClient, QueryRefused
from guardian.config import load_config
from guardian.errors import PrometheusUnavailable
from guardian.evaluation.run import evaluate
from guardian.testing.prometheus import free_port
from tests.conftest import StartPrometheus
from tests.faults import FailingProxy
from tests.traffic import Burst, coredns, ratio_slo, steady, timeline

pytestmark = pytest.mark.prometheus

T0 = datetime(2024, 7, 1, tzinfo=UTC).timestamp()
END = 4 * 86400.0  # data covers T0 .. T0 + 4 days
BURST = (END - 1800, END - 600)  # 20% errors, 30 to 10 minutes before the data ends
DURING = datetime.fromtimestamp(T0 + END - 900, UTC)
CALM = datetime.fromtimestamp(T0 + END - 86400, UTC)


def _at(seconds_after_end: float) -> datetime:
    return datetime.fromtimestamp(T0 + END + seconds_after_end, UTC)


@pytest.fixture(scope="module")
def config_path(start_prometheus: StartPrometheus, tmp_path_factory: pytest.TempPathFactory):
    times = timeline(T0, END, 60)
    series = steady(times, 40.0, [Burst(*BURST, 0.2)], {"job": "busy"})
    series += steady(times, 0.01, [Burst(*BURST, 0.5)], {"job": "quiet"})
    series += coredns(times, {"job": "coredns"})
    server = start_prometheus(times, series)
    slos = ratio_slo("busy", 'job="busy"', 99.9, "google-30d")
    slos += ratio_slo("quiet", 'job="quiet"', 99.9, "google-30d", min_events=500)
    slos += ratio_slo("absent", 'job="nothing-here"', 99.9, "google-30d")
    slos += """
  - name: never-failed
    objective: 99.9
    sli:
      ratio:
        errors: sum(rate(app_errors_total{job="busy",code="404"}[{{window}}]))
        total: sum(rate(app_requests_total{job="busy"}[{{window}}]))"""
    slos += (
        "\n  - name: dns\n    objective: 99\n"
        "    sli: {coredns_errors: {selector: 'job=\"coredns\"'}}"
        "\n  - name: dns-slow\n    objective: 99\n    windows: six\n"
        "    sli: {coredns_errors: {selector: 'job=\"coredns\"'}}"
    )
    path = tmp_path_factory.mktemp("cfg") / "guardian.yaml"
    path.write_text(
        f"version: guardian/v1\nprometheus: {{url: '{server.url}'}}\n"
        f"evaluation: {{max_staleness: 2m}}\n"
        "window_sets: {six: [{severity: page, long: 6h, short: 30m, budget_fraction: 0.05}]}\n"
        f"slos:{slos}\n",
        encoding="utf-8",
    )
    return path


def _status(path: Path, at: datetime) -> dict[str, str]:
    config = load_config(path)
    evaluation, error = evaluate(config.slos, PrometheusClient(config.prometheus), at)
    assert error == ""
    return {s.name: s.status for s in evaluation.slos}


def test_a_burst_pages_and_calm_is_ok(config_path: Path) -> None:
    assert _status(config_path, DURING)["busy"] == "page"
    assert _status(config_path, CALM)["busy"] == "ok"


def test_missing_series_are_no_data_never_ok(config_path: Path) -> None:
    config = load_config(config_path)
    evaluation, _ = evaluate(config.slos, PrometheusClient(config.prometheus), CALM)
    absent = next(s for s in evaluation.slos if s.name == "absent")
    assert absent.status == "no_data"
    assert absent.reason == "no data for window 5m, 30m, 1h, 2h, 6h, 1d, 3d"


def test_error_series_that_never_existed_mean_zero_errors(config_path: Path) -> None:
    config = load_config(config_path)
    evaluation, _ = evaluate(config.slos, PrometheusClient(config.prometheus), DURING)
    result = next(s for s in evaluation.slos if s.name == "never-failed")
    assert result.status == "ok"
    assert {w.long_error_ratio for w in result.windows} == {0.0}
    assert result.budget_remaining == 1.0


def test_stale_data_is_no_data(config_path: Path) -> None:
    # Three minutes after the last sample the 5m window still has data, but it is stale.
    statuses = _status(config_path, _at(180))
    assert statuses["dns"] == "no_data"
    config = load_config(config_path)
    evaluation, _ = evaluate(config.slos, PrometheusClient(config.prometheus), _at(180))
    dns = next(s for s in evaluation.slos if s.name == "dns")
    assert dns.reason == "stale data: newest sample is 180s old (limit 120s)"
    assert not any(pair.firing for pair in dns.windows), "no alert on stale data"
    assert _status(config_path, _at(60))["dns"] == "ok"


def test_data_gone_past_the_short_window_is_no_data(config_path: Path) -> None:
    assert set(_status(config_path, _at(3600)).values()) == {"no_data"}


def test_series_that_stopped_are_stale_even_when_long_windows_still_have_data(
    config_path: Path,
) -> None:
    # 20 minutes after the last sample a 6h/30m pair still sees data; the series has stopped.
    config = load_config(config_path)
    client = PrometheusClient(config.prometheus)
    evaluation, _ = evaluate([config.slo("dns-slow")], client, _at(1200))
    result = evaluation.slos[0]
    assert result.status == "no_data"
    assert result.reason == "stale data: no sample within Prometheus' lookback (the series stopped)"
    assert result.windows[0].long_error_ratio is not None


def test_low_traffic_guard_holds_back_the_page(config_path: Path) -> None:
    config = load_config(config_path)
    evaluation, _ = evaluate(config.slos, PrometheusClient(config.prometheus), DURING)
    quiet = next(s for s in evaluation.slos if s.name == "quiet")
    page = quiet.windows[0]
    assert page.long_burn is not None and page.long_burn > page.factor
    assert page.low_traffic and not page.firing
    assert page.long_events == pytest.approx(36, rel=0.05)  # 0.01/s over an hour
    assert quiet.status != "page"
    unguarded = replace(config.slo("quiet"), min_events=0)
    evaluation, _ = evaluate([unguarded], PrometheusClient(config.prometheus), DURING)
    assert evaluation.slos[0].status == "page"


def test_queries_are_bounded_by_windows_not_slos(config_path: Path) -> None:
    config = load_config(config_path)
    many = [replace(config.slo("busy"), name=f"busy-{i}") for i in range(200)]
    client = PrometheusClient(config.prometheus)
    evaluation, error = evaluate(many, client, DURING)
    assert error == ""
    assert evaluation.queries == client.queries == 8
    assert {s.status for s in evaluation.slos} == {"page"}


def test_eval_json_contract_and_exit_code(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["eval", "-c", str(config_path), "--at", "2024-07-04T23:45:00Z", "-o", "json"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["at"] == "2024-07-04T23:45:00Z"
    busy = next(s for s in doc["slos"] if s["name"] == "busy")
    assert set(busy) >= {"name", "objective", "status", "budget_remaining", "windows"}
    assert busy["status"] == "page" and busy["objective"] == 99.9
    first = busy["windows"][0]
    assert set(first) >= {
        "severity",
        "long",
        "short",
        "factor",
        "long_error_ratio",
        "short_error_ratio",
        "long_burn",
        "short_burn",
        "firing",
    }
    assert (first["severity"], first["long"], first["short"]) == ("page", "1h", "5m")
    assert first["factor"] == pytest.approx(14.4)
    assert first["long_burn"] == pytest.approx(first["long_error_ratio"] / 0.001, rel=1e-9)
    assert main(["eval", "-c", str(config_path), "--at", "2024-07-04T00:00:00Z"]) == 0


def test_bad_at_is_a_usage_error(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "-c", str(config_path), "--at", "yesterday"]) == 2
    assert capsys.readouterr().err == (
        "guardian: --at: must be an RFC 3339 time like 2024-12-11T23:30:00Z (got 'yesterday')\n"
    )


def test_unreachable_prometheus_exits_3_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    path = tmp_path / "g.yaml"
    slo = ratio_slo("x", 'job="x"', 99.9, "google-30d")
    path.write_text(
        f"version: guardian/v1\nprometheus: {{url: 'http://127.0.0.1:{port}', timeout: 2s}}\n"
        f"slos:{slo}\n"
    )
    assert main(["eval", "-c", str(path), "-o", "json"]) == 3
    captured = capsys.readouterr()
    assert captured.err == (
        f"guardian: cannot query Prometheus at http://127.0.0.1:{port}: connection refused\n"
        "guardian: blind: every SLO is no_data (1 of 1); no page now means nothing\n"
    )
    doc = json.loads(captured.out)
    assert [s["status"] for s in doc["slos"]] == ["no_data"]


def test_one_transient_failure_is_retried_once(config_path: Path) -> None:
    config = load_config(config_path)
    upstream = config.prometheus.url
    waits: list[float] = []
    with FailingProxy(upstream, failures=1) as proxy:
        settings = replace(config.prometheus, url=proxy.url)
        client = PrometheusClient(settings, sleep=waits.append)
        assert client.instant("vector(1)")[0].value == 1.0
        assert proxy.requests == 2
    assert waits == [0.5]
    with FailingProxy(upstream, failures=2, status=502) as proxy:
        client = PrometheusClient(replace(config.prometheus, url=proxy.url), sleep=waits.append)
        with pytest.raises(PrometheusUnavailable, match="HTTP 502"):
            client.instant("vector(1)")
        assert proxy.requests == 2  # one retry, not more


def test_a_failing_window_makes_only_its_slos_no_data(config_path: Path) -> None:
    config = load_config(config_path)
    with FailingProxy(config.prometheus.url, failures=0, matching="[5m]") as proxy:
        client = PrometheusClient(replace(config.prometheus, url=proxy.url), sleep=lambda _: None)
        evaluation, error = evaluate(config.slos, client, CALM)
    assert error.startswith(f"cannot query Prometheus at {proxy.url}: HTTP 503")
    statuses = {s.name: s.status for s in evaluation.slos}
    assert statuses["busy"] == "no_data"  # google-30d needs the 5m window
    assert statuses["dns-slow"] == "ok"  # 6h/30m never asked for 5m


def test_a_failing_period_query_loses_the_budget_not_the_alerts(config_path: Path) -> None:
    config = load_config(config_path)
    with FailingProxy(config.prometheus.url, failures=0, matching="[30d]") as proxy:
        client = PrometheusClient(replace(config.prometheus, url=proxy.url), sleep=lambda _: None)
        evaluation, error = evaluate(config.slos, client, DURING)
    assert "HTTP 503" in error
    busy = next(s for s in evaluation.slos if s.name == "busy")
    assert busy.status == "page"
    assert busy.budget_remaining is None
    assert busy.budget_note == error


def test_a_page_outranks_a_partial_failure_in_the_exit_code(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(config_path)
    with FailingProxy(config.prometheus.url, failures=0, matching="[30d]") as proxy:
        text = config_path.read_text().replace(config.prometheus.url, proxy.url)
        path = tmp_path / "partial.yaml"
        path.write_text(text)
        assert main(["eval", "-c", str(path), "--at", "2024-07-04T23:45:00Z", "-o", "json"]) == 1
        assert main(["eval", "-c", str(path), "--at", "2024-07-04T00:00:00Z", "-o", "json"]) == 3
    assert "HTTP 503" in capsys.readouterr().err


def test_an_answer_that_is_not_prometheus_json_is_unavailable(config_path: Path) -> None:
    config = load_config(config_path)
    page = b"<html>login required</html>"
    with FailingProxy(config.prometheus.url, failures=5, status=200, payload=page) as proxy:
        client = PrometheusClient(replace(config.prometheus, url=proxy.url), sleep=lambda _: None)
        with pytest.raises(PrometheusUnavailable, match=r"bad answer .*: not JSON"):
            client.instant("vector(1)")
        assert proxy.requests == 1, "a bad answer is not retried"


def test_invalid_promql_is_refused_once_not_retried(config_path: Path) -> None:
    config = load_config(config_path)
    with FailingProxy(config.prometheus.url, failures=0) as proxy:
        client = PrometheusClient(replace(config.prometheus, url=proxy.url))
        with pytest.raises(
            QueryRefused, match=r"Prometheus refused the query \(400: .*parse error"
        ):
            client.instant("sum((")
        assert proxy.requests == 1


def test_secrets_do_not_reach_error_messages(config_path: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    config = load_config(config_path)
    port = free_port()
    settings = replace(
        config.prometheus, url=f"http://127.0.0.1:{port}", bearer_token_file=str(token)
    )
    with pytest.raises(PrometheusUnavailable) as caught:
        PrometheusClient(settings, sleep=lambda _: None).instant("vector(1)")
    assert "s3cr3t" not in caught.value.message


def test_table_output_shows_every_slo_and_why_data_is_missing(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "-c", str(config_path), "--at", "2024-07-04T23:45:00Z"]) == 1
    captured = capsys.readouterr()
    for text in ("busy (99.9%)", "page 1h/5m", "14.4", "absent (99.9%)", "no data for window"):
        assert text in captured.out
    assert captured.err == (
        "guardian: warning: absent: no_data: no data for window 5m, 30m, 1h, 2h, 6h, 1d, 3d\n"
    )
