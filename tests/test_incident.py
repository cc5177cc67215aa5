"""The bundled 2024-12-11 incident data, replayed: pages come in the order the incident went."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from guardian.app.cli import main
from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.evaluation.change_guard import check_now
from guardian.evaluation.change_log import PrometheusChangeLog
from guardian.testing.prometheus import PrometheusServer
from tests.incident_data import incident_tsdb

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

HERE = Path(__file__).resolve().parent.parent / "examples" / "incident-2024-12-11"
PLAYBOOKS = HERE.parent.parent / "playbooks"
PST = timezone(timedelta(hours=-8))


def _pst(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 12, 11, hour, minute, tzinfo=PST)


def _config(root: Path, url: str) -> Path:
    """The example's directory (guardian.yaml and change-guard.yaml) against ``url``."""
    config = root / "config"
    config.mkdir()
    text = (HERE / "guardian.yaml").read_text().replace("http://127.0.0.1:9090", url)
    (config / "guardian.yaml").write_text(text.replace("evaluation:", "  timeout: 2m\nevaluation:"))
    guard = (HERE / "change-guard.yaml").read_text()
    (config / "change-guard.yaml").write_text(guard.replace("../../playbooks", str(PLAYBOOKS)))
    return config


def _backtest(config: Path, start: datetime, end: datetime, *extra: str) -> dict[str, Any]:
    args = ["backtest", "-c", str(config), "--from", start.isoformat(), "--to", end.isoformat()]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--step", "1m", *extra, "-o", "json"]) == 0
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("incident")
    with PrometheusServer(incident_tsdb(root / "tsdb")) as server:
        config = _config(root, server.url)
        png = root / "chart.png"
        doc = _backtest(config, _pst(12), _pst(21), "--plot", str(png))
        normal = _backtest(config, _pst(0) - timedelta(days=2), _pst(0))
        loaded = load_config(config)
        client = PrometheusClient(loaded.prometheus)
        try:
            now = _pst(15, 20)
            changes = PrometheusChangeLog(client).changes(now - timedelta(hours=6), now)
            assert loaded.change_guard is not None
            alarms = check_now(loaded.slos, loaded.change_guard, changes, client, now, budget=60)
        finally:
            client.close()
    assert doc["step"] == "1m"
    return doc["episodes"], png, doc["decisions"], normal, alarms


def _start(episode: dict[str, str]) -> datetime:
    return datetime.fromisoformat(episode["start"].replace("Z", "+00:00"))


def test_pages_follow_the_incident(replay) -> None:
    episodes = replay[0]
    pages = [e for e in episodes if e["severity"] == "page"]
    assert pages, "the incident must page"
    assert all(_pst(15, 12) < _start(e) < _pst(16, 30) for e in pages)
    first_api = min(_start(e) for e in pages if e["slo"].startswith("apiserver-read"))
    first_dns = min(_start(e) for e in pages if e["slo"].startswith("dns"))
    assert first_api < first_dns, "DNS fails only once caches expire"
    assert {e["slo"] for e in pages} >= {"apiserver-read-east", "apiserver-read-west", "dns-west"}
    assert all(e["end"] is not None for e in pages), "everything recovers by 21:00"


def test_the_chart_is_written(replay) -> None:
    png = replay[1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


def _at(entry: dict[str, Any], key: str = "at") -> datetime:
    return datetime.fromisoformat(entry[key].replace("Z", "+00:00"))


def test_halt_change_is_proposed_for_the_telemetry_daemonset_by_15_20(replay) -> None:
    episodes, decisions = replay[0], replay[2]
    halts = [d for d in decisions if d["kind"] == "propose" and d["playbook"] == "halt-change"]
    first: dict[str, dict[str, Any]] = {}
    for d in halts:
        first.setdefault(d["slo"], d)
    for slo, cluster in (
        ("apiserver-read-east", "prod-east-1"),
        ("apiserver-read-west", "prod-west-2"),
    ):
        assert slo in first, f"no halt-change for {slo}"
        halt = first[slo]
        assert _pst(15, 12) < _at(halt) <= _pst(15, 20), halt
        assert halt["change"] == {
            "kind": "DaemonSet",
            "namespace": "observability",
            "name": "telemetry-agent",
            "started": "2024-12-11T23:12:00Z",
            "cluster": cluster,
        }
        assert f"telemetry-agent in {cluster} began 23:12:00Z" in halt["reason"]
        assert "baseline burn" in halt["reason"]
    page = min(_start(e) for e in episodes if e["severity"] == "page")
    assert min(_at(d) for d in halts) <= page - timedelta(minutes=15), "well before the page"
    assert all(d["change"]["name"] == "telemetry-agent" for d in halts)


def test_no_halt_change_on_the_normal_days(replay) -> None:
    normal = replay[3]
    assert not [d for d in normal["decisions"] if d["playbook"] == "halt-change"]
    assert not [d for d in normal["decisions"] if d["kind"] == "propose"]
    assert not normal["episodes"], "the normal days never page nor open a ticket"


def test_check_now_blames_the_daemonset_from_the_change_log(replay) -> None:
    alarms = replay[4]
    east = alarms["apiserver-read-east"]
    assert east.firing and east.change is not None
    assert (east.change.name, east.change.cluster) == ("telemetry-agent", "prod-east-1")
    assert east.burn_start is not None and _pst(15, 14) <= east.burn_start <= _pst(15, 19)
    assert east.baseline_burn is not None and east.baseline_burn < 0.5
    assert "dns-east" not in alarms, "the change guard watches only the SLOs it selects"
