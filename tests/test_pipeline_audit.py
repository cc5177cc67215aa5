"""The pipeline's own audit rows, on the store: an ``evaluation`` row when an SLO's status
changes, a ``decision`` row when its decision changes, a ``notify`` announced once per
episode, nothing proposed while the kill switch is engaged; and a store of the previous
version (that state in ``settings``) keeps it when it gets the ``pipeline_state`` table."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import create_engine, text

from guardian.audit.switch import KillSwitch
from guardian.clients.store import Store
from guardian.config import Config
from guardian.evaluation.results import Evaluation, SLOResult
from guardian.executor.runner import Runner
from guardian.pipeline import Cycle
from guardian.playbooks.model import Guards, Playbook, Trigger
from tests.test_policy import SLO_, STEP

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NAME = SLO_.name
BOOK = Playbook(
    "pause-suspect-rollout",
    "",
    Trigger((NAME,), (), "page"),
    Guards(1800, 2, True, False, ()),  # type: ignore[arg-type]
    (),
    (),
    (STEP,),
)


@dataclass
class FakeRunner:
    """Records announcements and proposals; proposes nothing."""

    announced: list[tuple[str, str]] = field(default_factory=list)
    proposed: list[str] = field(default_factory=list)

    @property
    def notifier(self) -> FakeRunner:
        return self

    def announce(self, slo: str, text: str) -> None:
        self.announced.append((slo, text))

    def propose(self, playbook: str, *args: Any) -> Any:
        self.proposed.append(playbook)
        raise AssertionError("nothing is proposed while the kill switch is engaged")


class NoRollouts:
    """An API server without rollouts (no suspects)."""

    def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        del args, kwargs
        return []


def _cycle(store: Store, runner: FakeRunner, books: dict[str, Playbook] | None = None) -> Cycle:
    config = cast(Config, SimpleNamespace(slos=[SLO_], policy=SimpleNamespace(notify="ticket")))
    return Cycle(config, books or {}, store, cast(Runner, runner), NoRollouts(), None)  # type: ignore[arg-type]


def _eval(status: str, reason: str = "") -> Evaluation:
    return Evaluation(NOW, (SLOResult(NAME, 99, status, 0.5, (), reason),))  # type: ignore[arg-type]


def _rows(store: Store) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [(r.kind, r.actor, r.via, r.detail) for r in store.history()]


def test_each_change_of_status_or_decision_is_audited_once(store: Store) -> None:
    runner = FakeRunner()
    cycle = _cycle(store, runner)
    for minute, (status, reason) in enumerate(
        [("ok", ""), ("ok", ""), ("no_data", "a"), ("no_data", "b"), ("no_data", "b"), ("ok", "")]
    ):
        cycle.act(_eval(status, reason), NOW + timedelta(minutes=minute))
    blind = "blind: {}; guardian will not act"
    policy = ("guardian", "policy")

    def evaluation(status: str, reason: str) -> tuple[str, str, str, dict[str, Any]]:
        return ("evaluation", *policy, {"slo": NAME, "status": status, "reason": reason})

    def decision(kind: str, reason: str) -> tuple[str, str, str, dict[str, Any]]:
        detail = {"slo": NAME, "decision": kind, "playbook": None, "reason": reason}
        return ("decision", *policy, detail)

    assert _rows(store) == [
        evaluation("ok", ""),
        decision("ignore", "within budget"),
        evaluation("no_data", "a"),
        decision("notify", blind.format("a")),
        decision("notify", blind.format("b")),
        evaluation("ok", ""),
        decision("ignore", "within budget"),
    ]
    assert runner.announced == [(NAME, blind.format("a"))], "once per episode"
    order = [list(row.detail) for row in store.history()[:2]]
    assert order == [["slo", "status", "reason"], ["slo", "decision", "playbook", "reason"]]


def test_nothing_is_proposed_while_the_kill_switch_is_engaged(store: Store) -> None:
    KillSwitch(store).pause("alice", "console", NOW)
    runner = FakeRunner()
    [decided] = _cycle(store, runner, {BOOK.name: BOOK}).act(_eval("page"), NOW)
    assert (decided.kind, decided.reason) == (
        "notify",
        "paused (kill switch): not proposing pause-suspect-rollout",
    )
    assert runner.proposed == []
    assert [r.kind for r in store.history()] == ["pause", "evaluation", "decision"]


def test_a_store_of_the_previous_version_keeps_what_the_pipeline_last_wrote(
    store_url: str,
) -> None:
    """The previous version kept this state in ``settings``: opened again, the store has
    the ``pipeline_state`` table, the state is in it, the old keys are gone, the kill switch
    stays where it was, and the next cycle writes and announces nothing it wrote before."""
    store = Store.open(store_url)
    KillSwitch(store).pause("alice", "console", NOW)
    store.close()
    engine = create_engine(store_url)
    text_ = "notify::blind: a; guardian will not act"
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE pipeline_state"))
        for key, value in (("status", "no_data"), ("announced", "notify"), ("decision", text_)):
            conn.execute(
                text("INSERT INTO settings (key, value, updated_at) VALUES (:k, :v, :at)"),
                {"k": f"{key}:{NAME}", "v": value, "at": NOW},
            )
    store = Store.open(store_url)
    try:
        assert store.last_status(NAME) == "no_data"
        assert store.last_announced(NAME) == "notify"
        assert store.last_decision(NAME) == text_
        assert store.setting(f"status:{NAME}", "gone") == "gone"
        assert KillSwitch(store).engaged()
        runner = FakeRunner()
        _cycle(store, runner).act(_eval("no_data", "a"), NOW + timedelta(minutes=1))
        assert [r.kind for r in store.history()] == ["pause"]
        assert runner.announced == []
    finally:
        store.close()
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT key FROM settings ORDER BY key")).scalars().all()
        assert keys == ["paused"]
    engine.dispose()
    again = Store.open(store_url)
    assert again.last_status(NAME) == "no_data", "opening once more changes nothing"
    again.close()


def test_an_slo_name_of_63_characters_is_remembered_on_every_backend(store: Store) -> None:
    """The previous version kept this state under ``decision:<slo>`` in a key of at most 63
    characters: PostgreSQL refused the write, and every cycle failed, for a long SLO name."""
    name = "a" * 63
    slo = replace(SLO_, name=name)
    config = cast(Config, SimpleNamespace(slos=[slo], policy=SimpleNamespace(notify="ticket")))
    runner = FakeRunner()
    cycle = Cycle(config, {}, store, cast(Runner, runner), NoRollouts(), None)  # type: ignore[arg-type]
    blind = Evaluation(NOW, (SLOResult(name, 99, "no_data", None, (), "down"),))
    for _ in range(2):
        cycle.act(blind, NOW)
    assert [r.kind for r in store.history()] == ["evaluation", "decision"]
    assert runner.announced == [(name, "blind: down; guardian will not act")]
