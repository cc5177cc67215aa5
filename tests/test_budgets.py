"""Every evaluation guardian makes has an overall budget, not only a per-query deadline.

A Prometheus that never answers (a real loopback server that reads the request and stays
silent) must not hold ``guardian slack``'s answers, a playbook's trigger context, a step's
verification, a Slack burn chart or a backtest for one query timeout per window. The config
used has a 5 s query timeout and a 2 s daemon interval: the budget is 1.6 s, where one
timeout per window (nine queries) would be 45 s.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from guardian.actions import CATALOGUE
from guardian.app.charts import burn_chart
from guardian.app.cli import main
from guardian.clients.prometheus import PrometheusClient
from guardian.config import Config, load_config
from guardian.evaluation.run import PrometheusSignals, evaluation_budget
from guardian.planning.trigger import trigger_context
from guardian.playbooks import load_playbooks
from guardian.testing.slack import SlackEmulator
from tests.faults import Answer, OddPrometheus, elapsed, odd_config

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 1.6
BOT = "xoxb-budget-test"
APP = "xapp-budget-test"
CHANNEL = "C_SRE"

PLAYBOOK = """\
version: guardian/v1
name: pause-agent
trigger: {slos: [x]}
steps:
  - name: pause
    action: pause-rollout
    params: {kind: DaemonSet, namespace: default, name: agent}
"""


def _config(directory: Path, url: str, extra: str = "") -> Path:
    return odd_config(directory, url, "5s", "daemon: {interval: 2s}\n" + extra)


@pytest.fixture
def silent() -> OddPrometheus:
    with OddPrometheus(Answer(hang=True)) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, silent: OddPrometheus) -> Config:
    loaded = load_config(_config(tmp_path, silent.url))
    settings = loaded.prometheus
    assert evaluation_budget(settings.timeout, loaded.daemon.interval) == BUDGET
    return loaded


def test_verification_signals_end_within_the_budget(config: Config) -> None:
    signals = PrometheusSignals.of(config, PrometheusClient(config.prometheus))
    started = time.monotonic()
    assert signals.short_burn("x") is None  # no data: the step's verification fails
    took = elapsed(started)
    assert took < 3 * BUDGET, f"took {took:.1f}s"


def test_a_trigger_context_ends_within_the_budget(tmp_path: Path, config: Config) -> None:
    books_dir = tmp_path / "playbooks"
    books_dir.mkdir()
    (books_dir / "pause.yaml").write_text(PLAYBOOK)
    actions = {name: action.params for name, action in CATALOGUE.items()}
    book = load_playbooks([books_dir], actions, ["x"])["pause-agent"]
    started = time.monotonic()
    # the playbook needs no suspects: the API server is not asked
    context, slo = trigger_context(config, book, None, {}, PrometheusClient(config.prometheus))  # type: ignore[arg-type]
    took = elapsed(started)
    assert took < 3 * BUDGET, f"took {took:.1f}s"
    assert slo == "x"
    assert context["slo"]["status"] == "no_data"
    assert context["slo"]["short_burn"] is None


def test_a_burn_chart_ends_within_the_budget(config: Config) -> None:
    started = time.monotonic()
    assert burn_chart(config, "x") is None  # the message goes without a chart
    took = elapsed(started)
    assert took < 3 * BUDGET, f"took {took:.1f}s"


def test_a_backtest_stops_at_its_first_failed_query(
    tmp_path: Path, silent: OddPrometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    # No overall budget (its size is the operator's choice), but one silent query is enough
    # to know: it ends after one timeout (5 s), not one per window (8 x 5 s on 2 threads).
    path = _config(tmp_path, silent.url)
    started = time.monotonic()
    code = main(
        [
            "backtest",
            "-c",
            str(path),
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-01T01:00:00Z",
            "--step",
            "1m",
        ]
    )
    took = elapsed(started)
    assert code == 3
    assert took < 3 * 5, f"took {took:.1f}s"
    parallel = load_config(path).prometheus.parallel_queries
    assert len(silent.queries) == parallel  # the ones in flight; none sent after the failure
    assert capsys.readouterr().err.strip() == (
        f"guardian: cannot query Prometheus at {silent.url}: no complete answer within 5s"
    )


def test_guardian_slack_answers_status_within_the_budget(
    tmp_path: Path, silent: OddPrometheus
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(  # never reached: nothing burns while Prometheus is silent
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    with SlackEmulator(BOT, APP) as emulator:
        slack = (
            f"policy: {{store: {{url: 'sqlite:///{tmp_path}/g.db'}}}}\n"
            f"slack: {{channel: {CHANNEL}, allowed_channels: [{CHANNEL}], "
            f"api_url: '{emulator.base_url}'}}\n"
        )
        config = _config(tmp_path, silent.url, slack)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "SLACK_BOT_TOKEN": BOT,
            "SLACK_APP_TOKEN": APP,
        }
        command = [str(ROOT / ".venv" / "bin" / "guardian"), "slack", "-c", str(config)]
        daemon = subprocess.Popen(
            [*command, "--interval", "1h"],  # only the slash command evaluates
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            emulator.wait_connected(timeout=30)
            started = time.monotonic()
            emulator.slash("status", "U_CAROL", CHANNEL)
            emulator.wait_for(lambda: bool(emulator.responses), timeout=60)
            took = elapsed(started)
        finally:
            daemon.terminate()
            _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert took < 3 * BUDGET, f"took {took:.1f}s"
    assert emulator.responses[0]["text"].splitlines()[0] == (
        "x: no_data (no answer within the evaluation's deadline (1.6s))"
    )
