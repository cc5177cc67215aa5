"""Rules export: valid for promtool, and Prometheus computes exactly guardian's burn rates."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from guardian.app.cli import main
from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.config.model import SLO
from guardian.durations import format_duration
from guardian.evaluation.rules import ALERT
from guardian.evaluation.run import evaluate
from guardian.testing.prometheus import binary
from tests.conftest import StartPrometheus
from tests.traffic import Burst, apiserver, coredns, histogram, ratio_slo, steady, timeline

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parent.parent

SLOS = """
  - name: api-read
    objective: 99
    labels: {team: platform}
    sli: {apiserver_latency: {verbs: read, selector: 'cluster="a"'}}
  - name: api-write
    objective: 99.5
    period: 28d
    sli: {apiserver_latency: {verbs: write, selector: 'cluster="a"'}}
  - name: api-all
    objective: 99.9
    min_events: 100
    sli: {apiserver_latency: {verbs: all, selector: 'cluster="a"'}}
  - name: dns
    objective: 99.9
    sli: {coredns_errors: {selector: 'cluster="a"'}}
  - name: web-latency
    objective: 99
    sli: {latency: {metric: http_request_duration_seconds, le: "0.5"}}"""


def _rules(config: Path, out: Path) -> dict[str, object]:
    assert main(["rules", "-c", str(config), "-o", str(out)]) == 0
    loaded: dict[str, object] = yaml.safe_load(out.read_text())
    return loaded


def test_shipped_config_rules_pass_promtool(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    _rules(ROOT / "config", out)
    done = subprocess.run(
        [binary("promtool"), "check", "rules", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rule_names_follow_sloth(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"version: guardian/v1\nprometheus: {{url: 'http://x:9090'}}\nslos:{SLOS}\n")
    doc = _rules(config, tmp_path / "r.yml")
    names = {r.get("record") or r.get("alert") for g in doc["groups"] for r in g["rules"]}  # type: ignore[index,union-attr]
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d", "28d"):
        assert f"slo:sli_error:ratio_rate{window}" in names
    for name in (
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "GuardianBurnRate",
    ):
        assert name in names
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]  # type: ignore[index,union-attr,operator]
    assert {(a["labels"]["slo"], a["labels"]["long"], a["labels"]["short"]) for a in alerts} >= {
        ("api-read", "1h", "5m"),
        ("api-read", "3d", "6h"),
    }
    guarded = [a for a in alerts if a["labels"]["slo"] == "api-all" and "sli_total" in a["expr"]]
    assert [a["labels"]["severity"] for a in guarded] == ["page", "page"]


@pytest.fixture(scope="module")
def live(start_prometheus: StartPrometheus, tmp_path_factory: pytest.TempPathFactory):
    """Three days of data up to a few seconds ago, with guardian's rules loaded.

    Backfilled blocks must end before now: Prometheus refuses to append rule results older
    than its newest block.
    """
    now = time.time()
    t0 = float(int(now) - 3 * 86400 - 3600)
    times = timeline(t0, now - 5 - t0, 15)
    series = apiserver(times, {"cluster": "a"}) + coredns(times, {"cluster": "a"})
    series += histogram(times, {"job": "web"})
    burst_start = now - 1800 - t0
    series += steady(times, 20.0, [Burst(burst_start, burst_start + 3600, 0.2)], {"job": "r"})
    root = tmp_path_factory.mktemp("live")
    config = root / "guardian.yaml"
    body = SLOS + ratio_slo("ratio", 'job="r"', 99.9, "google-30d")
    # On a busy machine a query of three days' rates takes seconds, and the module minutes
    # after the data ends: neither may turn a comparison into no_data.
    prometheus = "prometheus: {url: 'http://x', timeout: 1m}\nevaluation: {max_staleness: 1h}"
    config.write_text(f"version: guardian/v1\n{prometheus}\nslos:{body}\n")
    rules = root / "rules.yml"
    _rules(config, rules)
    server = start_prometheus(times, series, rule_files=[rules])
    text = config.read_text().replace("http://x", server.url)
    config.write_text(text)
    rules_mode = text.replace(f"url: '{server.url}'", f"url: '{server.url}', source: rules")
    (root / "rules-mode.yaml").write_text(rules_mode)
    client = PrometheusClient(load_config(config).prometheus)
    doc: dict[str, Any] = yaml.safe_load(rules.read_text())
    wait_for_records(client, doc)
    return load_config(config), load_config(root / "rules-mode.yaml"), client, doc


def wait_for_records(client: PrometheusClient, doc: dict[str, Any]) -> None:
    """Wait until Prometheus holds every ``slo:`` record of the rules file ``doc``."""
    records = sum(1 for g in doc["groups"] for r in g["rules"] if r.get("record", "")[:4] == "slo:")
    deadline = time.monotonic() + 120  # every group evaluated once: seconds on a busy machine
    while time.monotonic() < deadline:
        if len(client.instant('{__name__=~"slo:.+"}')) == records:
            return
        time.sleep(0.5)


def _recorded(client: PrometheusClient, record: str, slo: str) -> tuple[datetime, float]:
    stamp = client.instant(f'timestamp({record}{{slo="{slo}"}})')
    assert stamp, f"{record} for {slo} not recorded yet"
    at = datetime.fromtimestamp(stamp[0].value, UTC)
    value = client.instant(f'{record}{{slo="{slo}"}}', at)
    return at, value[0].value


def _input_read(
    client: PrometheusClient, record: str, slo: SLO, at: datetime, burn: float
) -> datetime:
    """The timestamp of the sample of ``record`` that the rule recorded at ``at`` read.

    ``slo:current_burn_rate:ratio`` divides another group's record by the budget; that group
    may not have written its evaluation before ``at`` yet (on a busy machine, several), so
    the rule can read a sample some seconds older than ``at``: the one of the last half
    minute's samples whose ratio over the budget is the rule's value.
    """
    lookback = timedelta(seconds=30)
    stamps = client.range(f'timestamp({record}{{slo="{slo.name}"}})', at - lookback, at, 1)
    assert stamps, f"{record} for {slo.name} not recorded before {at}"
    offs: dict[float, float] = {}
    for ts in sorted({ts for _, ts in stamps[0].points}, reverse=True):  # newest first
        value = client.instant(f'{record}{{slo="{slo.name}"}}', datetime.fromtimestamp(ts, UTC))
        offs[ts] = abs(value[0].value / slo.budget - burn)
        if offs[ts] <= 1e-9 * abs(burn):
            break
    return datetime.fromtimestamp(min(offs, key=lambda ts: offs[ts]), UTC)


def test_prometheus_computes_exactly_guardian_s_burn_rates(live) -> None:
    config, _, client, _ = live
    compared = nonzero = 0
    for slo in config.slos:
        windows = sorted({w for p in slo.windows for w in (p.long, p.short)})
        for window in windows:
            record = f"slo:sli_error:ratio_rate{format_duration(window)}"
            at, recorded = _recorded(client, record, slo.name)
            evaluation, error = evaluate([slo], client, at)
            assert error == ""
            pair = next(p for p in evaluation.slos[0].windows if window in (p.long, p.short))
            mine = pair.long_error_ratio if pair.long == window else pair.short_error_ratio
            assert mine is not None
            assert abs(mine - recorded) <= 1e-9 * abs(recorded), (slo.name, window, mine, recorded)
            nonzero += recorded > 0
            compared += 1
        at, burn = _recorded(client, "slo:current_burn_rate:ratio", slo.name)
        at = _input_read(
            client, f"slo:sli_error:ratio_rate{format_duration(windows[0])}", slo, at, burn
        )
        evaluation, _ = evaluate([slo], client, at)
        shortest = min(evaluation.slos[0].windows, key=lambda p: p.short)
        assert shortest.short_burn is not None
        assert abs(shortest.short_burn - burn) <= 1e-9 * abs(burn)
    assert compared == 6 * 7
    assert nonzero == 6 * 7, nonzero


def test_rules_source_reads_the_recorded_ratios(live) -> None:
    _raw, from_rules, client, _ = live
    at, recorded = _recorded(client, "slo:sli_error:ratio_rate1h", "ratio")
    evaluation, error = evaluate(from_rules.slos, client, at, "rules")
    assert error == ""
    result = next(s for s in evaluation.slos if s.name == "ratio")
    assert result.status == "page", result.reason  # 20% errors for the last half hour
    assert result.windows[0].long_error_ratio == recorded
    assert result.budget_remaining is not None
    assert evaluation.queries == 9  # seven windows and two periods (30d, 28d)
    assert all(s.status != "no_data" for s in evaluation.slos), [s.reason for s in evaluation.slos]


def _alerts_and_inputs(doc: dict[str, Any], slo: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The exported alerts of ``slo`` and the records they read, all from its ``-sli`` group.

    The alerts' inputs come from one rule group, so they are written at one timestamp per
    evaluation; an alert reading another group's records could not be checked at one instant.
    """
    groups = {g["name"]: g["rules"] for g in doc["groups"]}
    alerts = groups[f"guardian-slo-{slo}-alerts"]
    recorded = {r["record"] for r in groups[f"guardian-slo-{slo}-sli"]}
    read = sorted({name for a in alerts for name in re.findall(r"slo:[\w:]+", a["expr"])})
    assert set(read) <= recorded, (slo, set(read) - recorded)
    for alert in alerts:
        assert "for" not in alert, "guardian fires at once; a `for:` makes the alert lag it"
    return alerts, read


def _written_together(client: PrometheusClient, records: list[str], slo: str) -> datetime:
    """The newest instant at which the rule group had written every one of ``records``.

    A group writes its rules in order, so while an evaluation is being written the newest
    timestamps differ; the oldest of them is a complete evaluation.
    """
    newest = [client.instant(f'timestamp({r}{{slo="{slo}"}})') for r in records]
    assert all(newest), f"{slo}: not every input of its alerts is recorded yet"
    at = datetime.fromtimestamp(min(s[0].value for s in newest), UTC)
    for record in records:
        stamp = client.instant(f'timestamp({record}{{slo="{slo}"}})', at)
        assert stamp[0].value == at.timestamp(), (slo, record, "no sample at", at)
    return at


def test_exported_alerts_fire_with_guardian(live) -> None:
    """Each exported alert's condition, evaluated by Prometheus on the recorded series at the
    instant they were recorded, fires exactly for the pairs guardian fires at that instant.

    Both sides read the same inputs at the same timestamp: nothing depends on when Prometheus
    happens to evaluate its rule groups (which lag one another and guardian's "now").
    """
    config, _, client, doc = live
    from_guardian: set[tuple[str, str, str]] = set()
    from_alerts: set[tuple[str, str, str]] = set()
    for slo in config.slos:
        alerts, inputs = _alerts_and_inputs(doc, slo.name)
        at = _written_together(client, inputs, slo.name)
        evaluation, error = evaluate([slo], client, at)
        result = evaluation.slos[0]
        assert error == "" and result.status != "no_data", (slo.name, result.reason)
        from_guardian |= {
            (slo.name, format_duration(p.long), format_duration(p.short))
            for p in result.windows
            if p.firing
        }
        from_alerts |= {
            (slo.name, a["labels"]["long"], a["labels"]["short"])
            for a in alerts
            if client.instant(a["expr"], at)
        }
    assert ("ratio", "1h", "5m") in from_guardian  # 20% errors for the last half hour
    assert len(from_guardian) < sum(len(s.windows) for s in config.slos)  # not all fire
    assert from_alerts == from_guardian


def test_prometheus_raises_the_exported_alert(live) -> None:
    """Prometheus loads the exported alert and raises it with its labels (the condition itself
    is compared with guardian above, at aligned instants; this one is far above its threshold
    for the whole test, so when exactly the rule group runs does not matter)."""
    _config, _, client, doc = live
    wanted = {"alertname": ALERT, "alertstate": "firing", "slo": "ratio", "long": "1h"}
    selector = ",".join(f'{k}="{v}"' for k, v in wanted.items())
    deadline = time.monotonic() + 30
    while not (alerts := client.instant(f"ALERTS{{{selector}}}")):
        assert time.monotonic() < deadline, "the alert never fired in Prometheus"
        time.sleep(0.5)
    rule = next(a for a in _alerts_and_inputs(doc, "ratio")[0] if a["labels"]["long"] == "1h")
    # the long window's record lends its ``window`` label to the alert
    assert alerts[0].labels == {
        **rule["labels"],
        "__name__": "ALERTS",
        "alertname": ALERT,
        "alertstate": "firing",
        "window": "1h",
    }
