"""The change guard with plain numbers: when it fires, what it blames, and what it refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from guardian.config.model import SLO, ChangeGuardSettings, RatioSLI, WindowPair
from guardian.config.windows import GOOGLE
from guardian.evaluation.change_guard import arming, burn_start, guarded, judge
from guardian.evaluation.change_replay import replay_alarms
from guardian.evaluation.changes import WorkloadChange
from guardian.evaluation.queries import WindowData
from guardian.evaluation.results import Evaluation, SLOResult, evaluate_slo

T0 = datetime(2024, 12, 11, 23, 12, tzinfo=UTC)
SLO_ = SLO(
    name="apiserver-read-east",
    objective=99,
    period=30 * 86400,
    sli=RatioSLI("e[{{window}}]", "t[{{window}}]"),
    window_set="google-30d",
    windows=GOOGLE,
    min_events=1000,
    max_staleness=120,
    labels=(("cluster", "prod-east-1"),),
)
GUARD = ChangeGuardSettings(
    slos=(SLO_.name,), windows=(WindowPair("page", 600, 120, fixed_factor=2.0),)
)


def _change(minutes: float, name: str = "telemetry-agent", **kw: object) -> WorkloadChange:
    values: dict[str, object] = {
        "kind": "DaemonSet",
        "namespace": "observability",
        "name": name,
        "started": T0 + timedelta(minutes=minutes),
        "created": True,
        "generation": 1,
        "desired": 5000,
        "updated": 400,
        "cluster": "prod-east-1",
        **kw,
    }
    return WorkloadChange(**values)  # type: ignore[arg-type]


def _result(long_burn: float, short_burn: float, events: float = 50_000) -> SLOResult:
    """The SLO on the change pair: burns as multiples of its 1% budget."""
    data = {
        600: WindowData(long_burn / 100, events / 600),
        120: WindowData(short_burn / 100, events / 600),
    }
    return evaluate_slo(guarded(SLO_, GUARD), data, age=None)


def test_fires_with_a_change_in_flight_and_blames_it() -> None:
    change = _change(0)
    start = T0 + timedelta(minutes=5)
    alarm = judge(SLO_, GUARD, _result(2.9, 5.7), [change], start, baseline=0.23)
    assert alarm.firing and alarm.change == change and alarm.burn_start == start
    assert alarm.reason == (
        "DaemonSet observability/telemetry-agent in prod-east-1 began 23:12:00Z, burn since "
        "23:17:00Z: 10m/2m burn 2.90/5.70 > 2, baseline burn 0.23"
    )
    assert alarm.playbook == "halt-change"


def test_the_same_burn_below_the_change_factor_does_not_fire() -> None:
    alarm = judge(SLO_, GUARD, _result(1.9, 5.7), [_change(0)], T0, baseline=0.23)
    assert not alarm.firing and alarm.reason == "change windows within budget"


def test_nothing_arms_the_guard_without_a_change_in_flight_or_recent() -> None:
    now = T0 + timedelta(minutes=20)
    done_long_ago = _change(-120, updated=5000)
    in_flight_long_ago = _change(-120, name="slow-rollout")
    recent_done = _change(-10, name="quick", updated=5000)
    later = _change(30, name="future")
    armed = arming(SLO_, GUARD, [done_long_ago, in_flight_long_ago, recent_done, later], now)
    assert armed == [in_flight_long_ago, recent_done]
    assert arming(SLO_, GUARD, [done_long_ago], now) == []


def test_the_baseline_refuses_when_the_slo_was_already_burning() -> None:
    start = T0 + timedelta(minutes=5)
    alarm = judge(SLO_, GUARD, _result(3.0, 5.0), [_change(0)], start, baseline=1.0)
    assert not alarm.firing and alarm.change is None
    assert alarm.reason == (
        "already burning before the change: 10m/2m burn 3.00/5.00 > 2, under 4× the baseline "
        "burn 1.00 (1h before it began)"
    )
    assert judge(SLO_, GUARD, _result(4.1, 5.0), [_change(0)], start, baseline=1.0).firing


def test_low_traffic_holds_the_guard_back() -> None:
    start = T0 + timedelta(minutes=5)
    quiet = judge(SLO_, GUARD, _result(5.0, 9.0, events=900), [_change(0)], start, 0.1)
    assert not quiet.firing and quiet.reason == "low traffic: 900 events in the long window"
    own_floor = replace(GUARD, min_events=500)
    result = evaluate_slo(
        guarded(SLO_, own_floor),
        {600: WindowData(0.05, 900 / 600), 120: WindowData(0.09, 900 / 600)},
        age=None,
    )
    assert judge(SLO_, own_floor, result, [_change(0)], start, 0.1).firing


def test_a_change_of_another_cluster_never_arms_the_slo() -> None:
    now = T0 + timedelta(minutes=8)
    west = _change(0, cluster="prod-west-2")
    unlabelled = _change(0, name="no-cluster", cluster="")
    assert arming(SLO_, GUARD, [west, unlabelled], now) == [unlabelled]
    fleet = replace(SLO_, labels=())
    assert arming(fleet, GUARD, [west, unlabelled], now) == [west, unlabelled]


def test_a_change_after_the_burn_started_is_never_blamed_alone() -> None:
    start = T0 + timedelta(minutes=5)
    after = _change(6, name="late")
    alarm = judge(SLO_, GUARD, _result(3.0, 6.0), [after], start, baseline=None)
    assert alarm.firing and alarm.change is None
    assert alarm.reason == (
        "burning since 23:17:00Z (10m/2m burn 3.00/6.00 > 2), but no change began before that"
    )


def test_of_two_changes_the_one_before_the_burn_start_is_blamed() -> None:
    start = T0 + timedelta(minutes=5)
    before, after = _change(0, name="early"), _change(6, name="late")
    alarm = judge(SLO_, GUARD, _result(3.0, 6.0), [after, before], start, baseline=0.2)
    assert alarm.change == before
    assert alarm.ranked == (before, after)


def test_the_burn_start_is_the_first_step_of_the_current_run() -> None:
    at = [T0 + timedelta(minutes=m) for m in range(6)]
    assert burn_start(list(zip(at, [3.0, 0.5, 2.5, 3.0, None, 4.0], strict=True)), 2.0) == at[5]
    assert burn_start(list(zip(at, [0.1, 2.5, 3.0, 4.0, 5.0, 6.0], strict=True)), 2.0) == at[1]
    assert burn_start(list(zip(at, [0.1, 2.5, 3.0, 1.0, 1.0, 1.0], strict=True)), 2.0) == at[1]
    assert burn_start(list(zip(at, [0.1] * 6, strict=True)), 2.0) is None


def test_a_dip_no_longer_than_the_gap_does_not_restart_the_burn() -> None:
    at = [T0 + timedelta(seconds=30 * s) for s in range(10)]
    flicker = [0.1, 2.5, 3.0, 1.9, 1.8, 2.6, None, 3.0, 1.0, 2.2]
    points = list(zip(at, flicker, strict=True))
    assert burn_start(points, 2.0, gap=120) == at[1], "dips of 60 s and 30 s are one burn"
    assert burn_start(points, 2.0, gap=45) == at[5], "the 60 s dip ends the first run"
    assert burn_start(points, 2.0) == at[9], "without a gap every dip starts a new run"
    long_dip = [0.1, 2.5, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.5, 3.0]
    assert burn_start(list(zip(at, long_dip, strict=True)), 2.0, gap=120) == at[8]


def _step(minute: int, long_burn: float, short_burn: float) -> Evaluation:
    return Evaluation(T0 + timedelta(minutes=minute), (_result(long_burn, short_burn),))


def test_the_replay_form_reads_the_burn_start_on_its_own_steps() -> None:
    steps = [_step(0, 0.2, 0.2), _step(1, 0.5, 2.5), _step(2, 1.5, 4.0), _step(3, 2.5, 5.0)]
    asked: list[datetime] = []

    def changes_at(at: datetime) -> list[WorkloadChange]:
        asked.append(at)
        return [_change(0.5)]

    alarms = replay_alarms([SLO_], GUARD, steps, changes_at, lambda slo, change: 0.2)
    assert [sorted(a) for a in alarms] == [[], [], [], [SLO_.name]]
    alarm = alarms[3][SLO_.name]
    assert alarm.firing and alarm.burn_start == steps[1].at and alarm.change == _change(0.5)
    assert asked == [steps[3].at], "the change log is read only where a change pair fires"


def test_the_backtest_report_lists_the_decisions_in_json_and_in_a_table() -> None:
    from rich.console import Console

    from guardian.app.decisions import Entry
    from guardian.app.report import backtest_json, backtest_table
    from guardian.policy.decide import Decision

    halt = Decision(SLO_.name, "propose", "ok", "change guard: …", "halt-change", _change(0))
    page = Decision(SLO_.name, "notify", "page", "burning; no playbook matches")
    entries = [Entry(T0 + timedelta(minutes=7), halt), Entry(T0 + timedelta(minutes=28), page)]
    doc = backtest_json(T0, T0 + timedelta(hours=1), 60, [], 12, entries)
    assert doc["decisions"] == [
        {
            "at": "2024-12-11T23:19:00Z",
            "slo": SLO_.name,
            "kind": "propose",
            "playbook": "halt-change",
            "reason": "change guard: …",
            "change": {
                "kind": "DaemonSet",
                "namespace": "observability",
                "name": "telemetry-agent",
                "started": "2024-12-11T23:12:00Z",
                "cluster": "prod-east-1",
            },
        },
        {
            "at": "2024-12-11T23:40:00Z",
            "slo": SLO_.name,
            "kind": "notify",
            "playbook": None,
            "reason": "burning; no playbook matches",
            "change": None,
        },
    ]
    assert backtest_json(T0, T0, 60, [], 0)["decisions"] == []
    console = Console(record=True, width=200)
    console.print(backtest_table([], entries))
    text = console.export_text()
    assert "guardian backtest: decisions" in text
    assert "2024-12-11T23:19:00Z" in text and "DaemonSet observability/telemetry-agent" in text


def test_check_now_asks_nothing_without_a_change_and_is_blind_without_prometheus() -> None:
    import time

    from guardian.clients.prometheus import PrometheusClient
    from guardian.config.model import PrometheusSettings
    from guardian.evaluation.change_guard import check_now
    from guardian.testing.prometheus import free_port

    client = PrometheusClient(PrometheusSettings(url=f"http://127.0.0.1:{free_port()}", timeout=2))
    now = T0 + timedelta(minutes=8)
    try:
        assert check_now([SLO_], GUARD, [_change(-120, updated=5000)], client, now) == {}
        began = time.monotonic()
        alarms = check_now([SLO_], GUARD, [_change(0)], client, now, budget=5)
        assert time.monotonic() - began < 10
    finally:
        client.close()
    alarm = alarms[SLO_.name]
    assert not alarm.firing and alarm.change is None
    assert alarm.reason.startswith("blind: cannot query Prometheus at http://127.0.0.1:")
