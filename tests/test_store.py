"""The store on SQLite and on a real PostgreSQL: compare-and-set, leases, applied-once, audit;
and its password, which no message, log line or audit row ever shows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guardian.app import cli
from guardian.clients.database_url import masked, parse_url, scrubber
from guardian.clients.store import Store
from guardian.errors import DataUnavailable
from tests.store_fixture import LOCKED_PASSWORD, PasswordLogin, guardian, store_config

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _new(store: Store) -> str:
    ex = store.create(
        "pause-suspect-rollout",
        "apiserver-read-latency",
        "DaemonSet kube-system/telemetry",
        "awaiting_approval",
        "U_REQUESTER",
        "slack",
        {"suspects": [{"name": "telemetry", "started": NOW}]},
        NOW,
        NOW + timedelta(minutes=15),
    )
    return ex.id


def test_an_execution_reads_back_as_written(store: Store) -> None:
    ex = store.get(_new(store))
    assert ex.state == "awaiting_approval" and ex.step == 0 and ex.phase == 0
    assert ex.context == {"suspects": [{"name": "telemetry", "started": NOW.isoformat()}]}
    assert ex.expires_at == NOW + timedelta(minutes=15)
    assert store.find(ex.id[:6]).id == ex.id
    with pytest.raises(KeyError):
        store.get("nope")


def test_a_transition_happens_once_even_when_two_try_at_the_same_time(store: Store) -> None:
    execution = _new(store)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def approve() -> None:
        barrier.wait()
        wins.append(store.transition(execution, "awaiting_approval", NOW, state="approved"))

    threads = [threading.Thread(target=approve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert store.get(execution).state == "approved"


def test_a_lease_keeps_others_out_until_it_runs_out(store: Store) -> None:
    execution = _new(store)
    assert store.claim(execution, "a", NOW, NOW + timedelta(seconds=15))
    assert not store.claim(execution, "b", NOW + timedelta(seconds=5), NOW + timedelta(seconds=20))
    assert store.claim(execution, "a", NOW + timedelta(seconds=5), NOW + timedelta(seconds=20))
    assert store.claim(execution, "b", NOW + timedelta(seconds=21), NOW + timedelta(seconds=36))
    store.release(execution, "b")
    assert store.get(execution).owner is None


def test_a_phase_is_marked_applied_once(store: Store) -> None:
    execution = _new(store)
    store.save_step(execution, 0, "pause", "running", NOW, plan={"changes": []})
    assert store.mark_applied(execution, 0, 0, "a", NOW)
    assert not store.mark_applied(execution, 0, 0, "b", NOW)
    assert store.mark_applied(execution, 0, 1, "a", NOW)
    assert store.applied_phases(execution) == [(0, 0), (0, 1)]
    [record] = store.steps(execution)
    assert record.applied_phases == 2 and record.plan == {"changes": []}


def test_the_audit_log_keeps_order_and_details(store: Store) -> None:
    execution = _new(store)
    store.record("approved", NOW, execution, "U_SRE", "slack", step=0, decision="approve")
    store.record("refused", NOW, execution, "U_X", "slack", reason="not an approver")
    kinds = [(r.kind, r.actor) for r in store.history(execution)]
    assert kinds == [("proposed", "U_REQUESTER"), ("approved", "U_SRE"), ("refused", "U_X")]
    assert store.history(execution)[1].detail == {"step": 0, "decision": "approve"}
    assert store.history(limit=1)[0].kind == "refused"


def test_settings_hold_the_kill_switch(store: Store) -> None:
    assert store.setting("paused", "false") == "false"
    store.set_setting("paused", "true", NOW)
    store.set_setting("paused", "true", NOW)
    assert store.setting("paused") == "true"


def test_first_writes_of_one_setting_from_many_replicas_do_not_race(store: Store) -> None:
    """An update-then-insert lets two first writers both insert; one upsert does not."""
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(key: str, n: int) -> None:
        start.wait()
        try:
            store.set_setting(key, str(n), NOW)
        except BaseException as exc:  # any failure is the finding
            errors.append(exc)

    for i in range(5):
        threads = [threading.Thread(target=write, args=(f"race-{i}", n)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert store.setting(f"race-{i}") in {str(n) for n in range(8)}
    assert errors == []


def test_an_unreachable_database_is_unavailable_without_its_password() -> None:
    with pytest.raises(DataUnavailable) as caught:
        Store.open("postgresql+psycopg://guardian:s3cret@127.0.0.1:1/guardian")
    assert "s3cret" not in caught.value.message
    assert caught.value.message.startswith("store postgresql+psycopg://guardian:***@127.0.0.1:1/")


def test_an_id_prefix_is_taken_literally_and_must_have_four_characters(store: Store) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    ex = store.create("book", "slo", "", "proposed", "alice", "console", {}, now)
    assert store.find(ex.id[:4]).id == ex.id
    for prefix in (ex.id[:3], "%", "____", ex.id[:3] + "_", ex.id[:3] + "%"):
        with pytest.raises(KeyError):
            store.find(prefix)


def test_a_transition_at_a_step_and_phase_fails_once_the_execution_moved_on(
    store: Store,
) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    ex = store.create("book", "slo", "", "running", "alice", "console", {}, now)
    assert store.transition(ex.id, "running", now, at=(0, 0), phase=1)
    assert not store.transition(ex.id, "running", now, at=(0, 0), phase=1), "already at phase 1"
    assert store.get(ex.id).phase == 1


# passwords ---------------------------------------------------------------------------------

WRONG = [  # (credentials as written in the URL, query string, what must never be shown)
    ("locked:Qw1x@Er2y", "", ["Qw1x", "Er2y"]),
    ("locked:Qw1x/Er2y", "", ["Qw1x", "Er2y"]),
    ("locked:Qw1x:Er2y", "", ["Qw1x", "Er2y"]),
    ("locked:Qw1x%40Er2y", "", ["Qw1x", "Er2y"]),
    ("locked", "?password=Qw1xEr2y&sslmode=disable", ["Qw1xEr2y"]),
]


def _refused(login: PasswordLogin, credentials: str, query: str) -> str:
    shown = "locked:***" if ":" in credentials else "locked"
    store = f"postgresql+psycopg://{shown}@127.0.0.1:{login.port}/locked"
    return (
        f"store {store}{'?sslmode=disable' if query else ''}: connection failed: connection to "
        f'server at "127.0.0.1", port {login.port} failed: FATAL: password authentication '
        f'failed for user "locked"; correct the user or password in $GUARDIAN_STORE_URL'
    )


@pytest.mark.parametrize(("credentials", "query", "secret"), WRONG)
def test_a_refused_login_names_the_host_never_the_password(
    password_login: PasswordLogin,
    credentials: str,
    query: str,
    secret: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = password_login.url(credentials, query)
    expected = _refused(password_login, credentials, query)
    with pytest.raises(DataUnavailable) as caught:
        Store.open(url, "$GUARDIAN_STORE_URL")
    assert caught.value.message == expected
    config = store_config(tmp_path)
    monkeypatch.setenv("GUARDIAN_STORE_URL", url)
    assert cli.main(["history", "-c", str(config)]) == 3
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"guardian: {expected}\n")
    started = guardian("run", "-c", str(config), env={"GUARDIAN_STORE_URL": url})
    assert (started.returncode, started.stdout, started.stderr) == (
        3,
        "",
        f"guardian: {expected}\n",
    )
    for piece in secret:
        assert piece not in caught.value.message + err + started.stderr


@pytest.mark.parametrize(("credentials", "query", "secret"), WRONG)
def test_an_unreachable_host_is_named_and_the_password_is_not(
    credentials: str, query: str, secret: list[str]
) -> None:
    url = f"postgresql+psycopg://{credentials}@127.0.0.1:1/locked{query}"
    with pytest.raises(DataUnavailable) as caught:
        Store.open(url, "$GUARDIAN_STORE_URL")
    message = caught.value.message
    shown = "locked:***" if ":" in credentials else "locked"
    assert message.startswith(f"store postgresql+psycopg://{shown}@127.0.0.1:1/locked")
    assert 'connection to server at "127.0.0.1", port 1 failed: Connection refused' in message
    assert all(piece not in message for piece in secret)


def test_a_password_with_a_raw_at_slash_and_colon_logs_in_and_stays_out_of_the_audit(
    password_login: PasswordLogin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = password_login.url(f"locked:{LOCKED_PASSWORD}")
    config = store_config(tmp_path)
    env = {"GUARDIAN_STORE_URL": url}
    paused = guardian("pause", "-c", str(config), "--as", "alice", env=env)
    assert paused.returncode == 0, paused.stderr
    history = guardian("history", "-c", str(config), "-o", "json", env=env)
    assert history.returncode == 0, history.stderr
    store = Store.open(url)
    rows = store.history()
    store.close()
    assert rows and rows[-1].kind == "pause" and rows[-1].actor == "alice"
    seen = paused.stdout + paused.stderr + history.stdout + history.stderr + repr(rows)
    for piece in ("Zq7", "Kp9", "Wm3", "Xy5"):
        assert piece not in seen
    assert masked(parse_url(url)) == (
        f"postgresql+psycopg://locked:***@127.0.0.1:{password_login.port}/locked"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:PASS@at77@db.example:5432/g", "u:***@db.example:5432/g"),
        ("postgresql+psycopg://u:pa/ss@db.example/g", "u:***@db.example/g"),
        ("postgresql+psycopg://u:pa%40ss@db.example/g", "u:***@db.example/g"),
        (
            "postgresql+psycopg://u@db.example/g?password=pa55&sslmode=require",
            "u@db.example/g?sslmode=require",
        ),
        ("postgresql+psycopg://u@db.example/g?sslpassword=pa55", "u@db.example/g"),
        ("postgresql+psycopg://u@db.example/g?PWD=pa55&passwd=pa55", "u@db.example/g"),
        (  # a query value holding a URI with a password of its own
            "postgresql+psycopg://u@db.example/g?dbname=postgresql://v:SEKRIT6@other/x",
            "u@db.example/g?dbname=postgresql%3A%2F%2Fv%3A%2A%2A%2A%40other%2Fx",
        ),
        (  # libpq's password= inside another option
            "postgresql+psycopg://u:p@ss@db.example/g?options=-c%20password%3DSEKRIT7",
            "u:***@db.example/g?options=-c+password%3D%2A%2A%2A",
        ),
    ],
)
def test_a_store_url_is_shown_with_its_password_masked(url: str, shown: str) -> None:
    assert masked(parse_url(url)) == f"postgresql+psycopg://{shown}"


def test_a_driver_message_loses_the_password_in_every_spelling() -> None:
    scrub = scrubber(parse_url("postgresql+psycopg://u:p%40ss w0rd@h/g?password=other1"))
    text = "bad: p@ss w0rd, p%40ss%20w0rd, p%40ss+w0rd, other1, password='x y' password=z\nend"
    assert scrub(text) == "bad: ***, ***, ***, ***, password=*** password=*** end"
    embedded = scrubber(
        parse_url(
            "postgresql+psycopg://u@h/g?dbname=postgresql://v:SEKRIT6@o/x&options=password%3DK7"
        )
    )
    assert embedded("no SEKRIT6, no K7") == "no ***, no ***"
