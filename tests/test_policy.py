"""Policy: every guard, with plain values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from guardian.config.model import SLO, RatioSLI
from guardian.evaluation.change_guard import ChangeAlarm
from guardian.evaluation.changes import WorkloadChange
from guardian.evaluation.results import Evaluation, SLOResult
from guardian.playbooks.model import Guards, MaintenanceWindow, Playbook, Step, Trigger
from guardian.policy.decide import Run, decide

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday
SLO_ = SLO(
    name="apiserver-read-latency",
    objective=99,
    period=30 * 86400,
    sli=RatioSLI("e[{{window}}]", "t[{{window}}]"),
    window_set="google-30d",
    windows=(),
    min_events=0,
    max_staleness=120,
    labels=(("tier", "control-plane"),),
)
STEP = Step("pause", "pause-rollout", {}, "required", None, 600, "stop")


def _book(name: str, by_name: bool = False, **guards: object) -> Playbook:
    values: dict[str, object] = {
        "cooldown": 1800,
        "max_runs_per_hour": 2,
        "one_per_target": True,
        "require_suspect": False,
        "maintenance_windows": (),
        **guards,
    }
    trigger = Trigger(
        (SLO_.name,) if by_name else (), () if by_name else (("tier", "control-plane"),), "page"
    )
    return Playbook(name, "", trigger, Guards(**values), (), (), (STEP,))  # type: ignore[arg-type]


def _eval(status: str, reason: str = "") -> Evaluation:
    return Evaluation(NOW, (SLOResult(SLO_.name, 99, status, 0.5, (), reason),))  # type: ignore[arg-type]


def _one(
    status: str = "page",
    books: tuple[Playbook, ...] = (),
    recent: tuple[Run, ...] = (),
    **kw: object,
) -> tuple[str, str, str | None]:
    [d] = decide(
        _eval(status, "prometheus down"), [SLO_], {b.name: b for b in books}, recent, NOW, **kw
    )  # type: ignore[arg-type]
    return d.kind, d.reason, d.playbook


def _run(book: str, minutes_ago: int, open_: bool = False, slo: str = SLO_.name) -> Run:
    return Run(book, slo, "DaemonSet x/y", NOW - timedelta(minutes=minutes_ago), open_)


BOOK = _book("pause-suspect-rollout")

CASES = [
    (
        "a healthy SLO is ignored",
        dict(status="ok", books=(BOOK,)),
        ("ignore", "within budget", None),
    ),
    (
        "no data is blind: notify, never act",
        dict(status="no_data", books=(BOOK,)),
        ("notify", "blind: prometheus down; guardian will not act", None),
    ),
    (
        "a page with a matching playbook proposes it",
        dict(books=(BOOK,)),
        ("propose", "page: run pause-suspect-rollout", "pause-suspect-rollout"),
    ),
    (
        "a ticket does not start a page-level playbook, but notifies",
        dict(status="ticket", books=(BOOK,)),
        ("notify", "burning; no playbook matches", None),
    ),
    (
        "a ticket below the notify level is ignored",
        dict(status="ticket", books=(BOOK,), notify_from="page"),
        ("ignore", "burning below the notify level", None),
    ),
    (
        "one open incident per SLO",
        dict(books=(BOOK,), recent=(_run("other", 5, open_=True),)),
        ("ignore", "execution of other already open", None),
    ),
    (
        "the kill switch",
        dict(books=(BOOK,), paused=True),
        (
            "notify",
            "paused (kill switch): not proposing pause-suspect-rollout",
            "pause-suspect-rollout",
        ),
    ),
    (
        "a cooldown",
        dict(books=(BOOK,), recent=(_run("pause-suspect-rollout", 10),)),
        (
            "notify",
            "cooldown: pause-suspect-rollout ran for apiserver-read-latency 600s ago (1200s left)",
            "pause-suspect-rollout",
        ),
    ),
    (
        "at most N runs per hour, whatever the SLO",
        dict(
            books=(BOOK,),
            recent=(
                _run("pause-suspect-rollout", 20, slo="dns"),
                _run("pause-suspect-rollout", 40, slo="dns"),
            ),
        ),
        (
            "notify",
            "pause-suspect-rollout ran 2 times in the last hour (at most 2)",
            "pause-suspect-rollout",
        ),
    ),
    (
        "one open run per target",
        dict(books=(BOOK,), recent=(_run("pause-suspect-rollout", 50, open_=True, slo="dns"),)),
        ("notify", "pause-suspect-rollout already has an open execution", "pause-suspect-rollout"),
    ),
    (
        "only when a suspect exists",
        dict(books=(_book("needs-suspect", require_suspect=True),), has_suspect=False),
        ("notify", "no suspect rollout: needs-suspect needs one", "needs-suspect"),
    ),
    (
        "a maintenance window",
        dict(
            books=(
                _book(
                    "quiet",
                    maintenance_windows=(
                        MaintenanceWindow(("tue",), time(11, 0), time(13, 0), "UTC"),
                    ),
                ),
            )
        ),
        ("notify", "maintenance window: not proposing quiet", "quiet"),
    ),
    (
        "a trigger by SLO name beats one by labels",
        dict(books=(BOOK, _book("z-by-name", by_name=True))),
        ("propose", "page: run z-by-name", "z-by-name"),
    ),
]


@pytest.mark.parametrize(("kw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_policy(kw: dict[str, object], expected: tuple[str, str, str | None]) -> None:
    assert _one(**kw) == expected  # type: ignore[arg-type]


def test_one_open_run_per_target_compares_the_targets() -> None:
    """An open run of the playbook on another target does not hold this one back."""
    book = _book("pause-suspect-rollout")
    elsewhere = _run("pause-suspect-rollout", 50, open_=True, slo="dns")  # on DaemonSet x/y

    def one(target: str) -> tuple[str, str]:
        [d] = decide(
            _eval("page"), [SLO_], {book.name: book}, [elsewhere], NOW, targets={book.name: target}
        )
        return d.kind, d.reason

    assert one("Deployment a/b") == ("propose", "page: run pause-suspect-rollout")
    assert one("DaemonSet x/y") == ("notify", "pause-suspect-rollout already has an open execution")


def test_the_target_a_run_would_touch_is_its_top_suspect_only_when_it_reads_suspects() -> None:
    from guardian.planning.suspects import Suspect
    from guardian.planning.trigger import suspect_target

    top = Suspect("DaemonSet", "x", "y", "2", NOW, 20, "y-sa")
    assert suspect_target(_book("needs", require_suspect=True), [top]) == "DaemonSet x/y"
    assert suspect_target(_book("blind"), [top]) == ""
    assert suspect_target(_book("needs", require_suspect=True), []) == ""


# The change guard: a firing alarm proposes the guard's playbook for the change it blames.

CHANGE = WorkloadChange(
    "DaemonSet", "observability", "telemetry-agent", NOW - timedelta(minutes=8), True, 1, 50, 4
)
HALT = replace(  # as shipped: its trigger matches no SLO, only the change guard proposes it
    _book("halt-change", require_suspect=True),
    trigger=Trigger((), (("guardian.io/proposed-by", "change-guard"),), "page"),
)
FIRING = ChangeAlarm(SLO_.name, True, NOW - timedelta(minutes=3), CHANGE, (CHANGE,), "why")


def _guarded(
    status: str = "ok",
    alarm: ChangeAlarm | None = FIRING,
    books: tuple[Playbook, ...] = (HALT, BOOK),
    recent: tuple[Run, ...] = (),
    has_suspect: bool = False,
    **kw: object,
) -> tuple[str, str, str | None, WorkloadChange | None]:
    alarms = None if alarm is None else {SLO_.name: alarm}
    [d] = decide(
        _eval(status, "prometheus down"), [SLO_], {b.name: b for b in books}, recent, NOW,
        alarms=alarms, has_suspect=has_suspect, **kw,
    )  # type: ignore[arg-type]  # fmt: skip
    return d.kind, d.reason, d.playbook, d.change


def test_a_firing_alarm_with_a_blamed_change_proposes_the_halt_before_any_page() -> None:
    assert _guarded("ok") == (
        "propose", "change guard: why: run halt-change", "halt-change", CHANGE
    )  # fmt: skip
    # a page too: the halt comes first, not the page's playbook
    assert _guarded("page")[2] == "halt-change"


def test_a_firing_alarm_without_a_blamed_change_notifies_and_never_halts() -> None:
    alone = replace(FIRING, change=None)
    assert _guarded("ok", alone) == (
        "notify", "change guard: why; not halting anything", None, None
    )  # fmt: skip


def test_without_an_alarm_or_with_a_quiet_one_the_policy_is_unchanged() -> None:
    quiet = replace(FIRING, firing=False)
    for alarm in (None, quiet):
        assert _guarded("ok", alarm)[:3] == ("ignore", "within budget", None)
        assert _guarded("page", alarm, has_suspect=True)[:3] == (
            "propose", "page: run pause-suspect-rollout", "pause-suspect-rollout"
        )  # fmt: skip
    assert _guarded("no_data")[:2] == ("notify", "blind: prometheus down; guardian will not act")


def test_the_halt_keeps_the_usual_guards_with_the_change_as_its_target() -> None:
    assert _guarded(paused=True)[:3] == (
        "notify",
        "change guard: why; paused (kill switch): not proposing halt-change",
        "halt-change",
    )
    cooling = (_run("halt-change", 10),)
    assert _guarded(recent=cooling)[1] == (
        "change guard: why; cooldown: halt-change ran for apiserver-read-latency 600s ago "
        "(1200s left)"
    )
    # an open halt of the same change (for another SLO) holds this one back; of another not
    same = Run("halt-change", "dns", CHANGE.target, NOW - timedelta(hours=2), True)
    other = Run("halt-change", "dns", "Deployment a/b", NOW - timedelta(hours=2), True)
    assert (
        _guarded(recent=(same,))[1]
        == "change guard: why; halt-change already has an open execution"
    )
    assert _guarded(recent=(other,))[0] == "propose"
    assert _guarded(recent=(_run("other", 5, open_=True),))[:2] == (
        "ignore", "execution of other already open"
    )  # fmt: skip


def test_the_halt_playbook_must_be_loaded() -> None:
    assert _guarded(books=(BOOK,))[:3] == (
        "notify",
        "change guard: why; playbook halt-change is not loaded: add it to policy.playbooks",
        "halt-change",
    )


def test_a_refused_or_unblamed_halt_leaves_a_burning_slo_to_the_usual_rules() -> None:
    cooling = (_run("halt-change", 10),)
    assert _guarded("page", recent=cooling, has_suspect=True)[:3] == (
        "propose", "page: run pause-suspect-rollout", "pause-suspect-rollout"
    )  # fmt: skip
    alone = replace(FIRING, change=None)
    assert _guarded("ticket", alone)[:2] == ("notify", "burning; no playbook matches")


def test_two_slos_burning_in_one_evaluation_propose_one_halt_of_the_change() -> None:
    second = replace(SLO_, name="apiserver-write-latency")
    results = tuple(SLOResult(name, 99, "ok", 0.5, ()) for name in (SLO_.name, second.name))
    alarms = {slo.name: replace(FIRING, slo=slo.name) for slo in (SLO_, second)}
    books = {b.name: b for b in (HALT, BOOK)}
    first, then = decide(Evaluation(NOW, results), [SLO_, second], books, [], NOW, alarms=alarms)
    assert (first.kind, first.playbook) == ("propose", "halt-change")
    assert (then.kind, then.reason) == (
        "notify", "change guard: why; halt-change already has an open execution"
    )  # fmt: skip
    other = replace(FIRING, slo=second.name, change=replace(CHANGE, name="other-agent"))
    _, both = decide(Evaluation(NOW, results), [SLO_, second], books, [], NOW,
                     alarms={**alarms, second.name: other})  # fmt: skip
    assert (both.kind, both.change) == ("propose", other.change)
