"""The bundled 2024-12-11 incident data, replayed: pages come in the order the incident went."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from guardian.app.cli import main
from guardian.testing.prometheus import PrometheusServer, backfill

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

HERE = Path(__file__).resolve().parent.parent / "examples" / "incident-2024-12-11"
PST = timezone(timedelta(hours=-8))


def _pst(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 12, 11, hour, minute, tzinfo=PST)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("incident")
    om = root / "incident.om"
    subprocess.run(
        [sys.executable, str(HERE / "generate.py"), "--out", str(om), "--days-before", "0"],
        check=True,
        capture_output=True,
    )
    backfill(om, root / "tsdb", max_block_duration="24h")
    om.unlink()
    with PrometheusServer(root / "tsdb") as server:
        config = root / "guardian.yaml"
        text = (HERE / "guardian.yaml").read_text().replace("http://127.0.0.1:9090", server.url)
        config.write_text(text)
        png = root / "chart.png"
        args = ["backtest", "-c", str(config), "--from", _pst(12).isoformat()]
        args += ["--to", _pst(21).isoformat(), "--step", "1m", "--plot", str(png), "-o", "json"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(args) == 0
    doc = json.loads(out.getvalue())
    assert doc["step"] == "1m"
    return doc["episodes"], png


def _start(episode: dict[str, str]) -> datetime:
    return datetime.fromisoformat(episode["start"].replace("Z", "+00:00"))


def test_pages_follow_the_incident(replay) -> None:
    episodes, _ = replay
    pages = [e for e in episodes if e["severity"] == "page"]
    assert pages, "the incident must page"
    assert all(_pst(15, 12) < _start(e) < _pst(16, 30) for e in pages)
    first_api = min(_start(e) for e in pages if e["slo"].startswith("apiserver-read"))
    first_dns = min(_start(e) for e in pages if e["slo"].startswith("dns"))
    assert first_api < first_dns, "DNS fails only once caches expire"
    assert {e["slo"] for e in pages} >= {"apiserver-read-east", "apiserver-read-west", "dns-west"}
    assert all(e["end"] is not None for e in pages), "everything recovers by 21:00"


def test_the_chart_is_written(replay) -> None:
    _, png = replay
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000
